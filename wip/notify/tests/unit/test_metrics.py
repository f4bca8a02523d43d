"""``/metrics`` parsed by Prometheus' own text parser; console side only."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_webui_kit import MAC1, MAC2, add_host, add_image, make_app, slate
from werkzeug.test import Client

from appliance import db, metrics, users
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
        (("state", "pending"),), (("state", "sent"),), (("state", "gave-up"),)
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
