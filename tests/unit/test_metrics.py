"""``/metrics`` parsed by Prometheus' own text parser; console side only."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_webui_kit import MAC1, MAC2, add_host, add_image, make_app, slate
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from appliance import db, metrics, users
from appliance.http.files import send_path
from appliance.http.listeners import PXE, scoped


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_parse_and_count_jobs_by_state(home: Path) -> None:
    app = make_app(home)
    add_host(app, MAC1, "pc1")
    add_host(app, MAC2, "pc2")
    add_image(app)
    with app.app_context():
        jobs = slate(app).jobs
        jobs.restore("pc1", "win11", actor="t")
        failed = jobs.restore("pc2", "win11", actor="t")
        jobs.failed(failed.id, "test")
    conn = db.connect(home / "slate.db")
    users.add(conn, "prom", "viewer", "prometheus pw", "t")
    token = users.new_token(conn, "prom", "t", "scraper")
    metrics.count("slate_http_bytes_served_total", 4096)
    client = app.test_client()
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.content_type == metrics.CONTENT_TYPE
    got = _families(resp.get_data(as_text=True))
    assert got["slate_jobs"][(("state", "pending"),)] == 1
    assert got["slate_jobs"][(("state", "failed"),)] == 1
    assert got["slate_jobs"][(("state", "done"),)] == 0
    assert got["slate_http_bytes_served_total"][()] >= 4096
    assert got["slate_roomcast_sessions"][()] == 0
    assert set(got["slate_notifications"]) == {
        (("state", "pending"),),
        (("state", "sent"),),
        (("state", "gave-up"),),
    }


def test_metrics_need_a_token_and_are_not_on_the_pxe_listener(home: Path) -> None:
    app = make_app(home)
    assert app.test_client().get("/metrics").status_code == 401
    conn = db.connect(home / "slate.db")
    users.add(conn, "prom", "viewer", "prometheus pw", "t")
    token = users.new_token(conn, "prom", "t", "scraper")
    pxe = Client(scoped(app, PXE))
    assert pxe.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_label_values_are_escaped() -> None:
    line = metrics._sample("x", [("a", 'q"\\\n')], 1)
    assert line == 'x{a="q\\"\\\\\\n"} 1'
    (family,) = text_string_to_metric_families(f"# TYPE x gauge\n{line}\n")
    assert family.samples[0].labels == {"a": 'q"\\\n'}


def _value(name: str, **labels: str) -> float:
    got = _families(metrics.render_counters())
    return got.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_bytes_served_counts_what_send_path_answers(tmp_path: Path) -> None:
    path = tmp_path / "undionly.kpxe"
    path.write_bytes(b"x" * 1000)
    before = _value("slate_http_bytes_served_total")
    whole = send_path(path, Request(EnvironBuilder(path="/f").get_environ()), "x")
    ranged = Request(EnvironBuilder(path="/f", headers={"Range": "bytes=100-199"}).get_environ())
    part = send_path(path, ranged, "x")
    head = send_path(path, Request(EnvironBuilder(path="/f", method="HEAD").get_environ()), "x")
    for resp in (whole, part, head):
        resp.close()
    assert (whole.status_code, part.status_code) == (200, 206)
    assert _value("slate_http_bytes_served_total") - before == 1000 + 100  # HEAD sends none


def test_tftp_dhcp_and_chunk_cache_counters_are_exposed(tmp_path: Path) -> None:
    from appliance.roomcast.sender import FrameCache

    (tmp_path / "c").write_bytes(b"frame")
    cache = FrameCache(lambda digest: tmp_path / digest)
    hits, misses = (_value("slate_chunk_cache_requests_total", result=r) for r in ("hit", "miss"))
    assert cache.get("c") == b"frame" and cache.get("c") == b"frame"
    assert _value("slate_chunk_cache_requests_total", result="miss") == misses + 1
    assert _value("slate_chunk_cache_requests_total", result="hit") == hits + 1
    stats = {"received": 7, "sent": 3}
    metrics.source("slate_dhcp_packets_total", "result", lambda: stats)
    try:
        assert _value("slate_dhcp_packets_total", result="received") == 7
        assert _value("slate_dhcp_packets_total", result="sent") == 3
    finally:
        metrics._sources.pop("slate_dhcp_packets_total")
    names = {f.name for f in text_string_to_metric_families(metrics.render_counters())}
    assert {"slate_tftp_requests", "slate_dhcp_packets", "slate_chunk_cache_requests"} <= names
