"""The machine's kept SSH host keys: secrets, handed only to its own restore job and only
over the TLS client channel (403 over plain HTTP), made once per machine and kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from http_kit import V1, bearer, write_image

from appliance.config import Layout
from appliance.http import create_app
from appliance.http.listeners import TLS_ENVIRON
from appliance.machines import identity
from bootimage.client import linuxroot
from bootimage.client.api import Api
from bootimage.client.identity import kept_host_keys

URL = "/api/client/v1/identity/ssh-host-keys"
TLS = {TLS_ENVIRON: True}  # what HttpServer sets on every request of a TLS listener


@pytest.fixture
def env(home):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    app = create_app(layout, plugins=False)
    f = app.extensions["slate"]
    for n in (1, 2, 3):
        f.inventory.add_host(f"aa:bb:cc:00:00:0{n}", f"pc{n}", actor="test")
    tokens = {
        "pc1": f.jobs.token(f.jobs.restore("pc1", "win11", actor="test").id),
        "pc2": f.jobs.token(f.jobs.restore("pc2", "win11", actor="test").id),
        "capture": f.jobs.token(f.jobs.capture("pc3", "win11", actor="test").id),
    }
    return app, f, tokens


def _get(app, token, **environ):
    return app.test_client().get(URL, headers=bearer(token), environ_base=environ)


def test_plain_http_gets_403_with_the_reason(env) -> None:
    app, _f, tokens = env
    r = _get(app, tokens["pc1"])
    assert r.status_code == 403
    assert "only over the TLS client channel" in r.get_json()["error"]
    assert "https://" in r.get_json()["hint"]
    assert app.test_client().get(URL, environ_base=TLS).status_code == 401  # no token


def test_over_tls_each_machine_its_own_kept_keys(env, tmp_path: Path) -> None:
    app, _f, tokens = env
    r = _get(app, tokens["pc1"], **TLS)
    assert r.status_code == 200
    keys = r.get_json()["keys"]
    assert [k["kind"] for k in keys] == ["ed25519"]
    assert _get(app, tokens["pc1"], **TLS).get_json()["keys"] == keys  # kept, not remade
    other = _get(app, tokens["pc2"], **TLS).get_json()["keys"]
    assert other[0]["public"] != keys[0]["public"]
    path = tmp_path / "key"
    path.write_text(keys[0]["private"])
    path.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert derived.split()[:2] == keys[0]["public"].split()[:2]
    assert keys[0]["public"].rstrip().endswith("root@pc1")
    # The job's payload tells the client where its keys come from.
    job = app.test_client().get("/api/client/v1/job", headers=bearer(tokens["pc1"]),
                                environ_base=TLS).get_json()  # fmt: skip
    assert job["identity"]["ssh_host_keys"] == "stable"
    plain = app.test_client().get("/api/client/v1/job", headers=bearer(tokens["pc2"]))
    assert plain.get_json()["identity"]["ssh_host_keys"] == "fresh"


def test_a_capture_job_and_an_image_without_identity_get_none(env) -> None:
    app, f, tokens = env
    assert _get(app, tokens["capture"], **TLS).status_code == 403
    identity.set_image_enabled(f.db(), "win11", False, actor="test")
    r = _get(app, tokens["pc1"], **TLS)
    assert r.status_code == 403 and "identity is off" in r.get_json()["error"]


def test_kept_keys_are_written_in_place_of_the_image_s(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/os-release").write_text("")
    (root / "etc/ssh/sshd_config").write_text("")
    (root / "etc/ssh/ssh_host_rsa_key").write_text("the master's")
    keys = [{"kind": "ed25519", "private": "PRIVATE\n", "public": "ssh-ed25519 AAAAC3kept x\n"}]
    lines: list[str] = []
    assert linuxroot.apply(root, "pc1", "ab" * 16, lines.append, keys=keys) == []
    assert (root / "etc/ssh/ssh_host_ed25519_key").read_text() == "PRIVATE\n"
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()
    assert any("this machine's kept SSH host key(s) ed25519" in x for x in lines), lines


def test_client_on_plain_http_does_not_ask_for_keys() -> None:
    api = Api("http://127.0.0.1:9", "t")  # nothing listens: asking would fail loudly
    lines: list[str] = []
    assert kept_host_keys(api, {"ssh_host_keys": "stable"}, lines.append) is None
    assert "fresh ones for this restore" in lines[0]
