"""/boot/ and /bootenv/ through Flask's test client: decisions, recording, files."""

from __future__ import annotations

import re

import pytest
from http_kit import V1, bearer, write_image

from appliance.config import Layout
from appliance.http import create_app
from appliance.settings import Settings

MAC = "aa:bb:cc:00:00:01"


def make(home, policy="silent"):
    layout = Layout(home)
    write_image(layout, "win11", V1)
    app = create_app(layout, Settings(unknown=policy), plugins=False)
    return app, app.test_client(), app.extensions["slate"]


def token_in(script: str) -> str:
    match = re.search(r"slate\.token=([0-9a-f]{64})", script)
    assert match, script
    return match.group(1)


def test_job_boots_environment_with_working_token(home):
    _, client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t")
    job = facade.jobs.restore("pc1", "win11", actor="t")
    r = client.get("/boot/AA-BB-CC-00-00-01.ipxe")
    assert r.status_code == 200
    script = r.get_data(as_text=True)
    assert script.startswith("#!ipxe\n")
    assert f"slate.job={job.id} " in script and f"slate.mac={MAC}" in script
    assert "slate.url=http://localhost " in script
    assert facade.jobs.get(job.id).state == "booting"
    # A second boot (the machine rebooted) gets the same token and stays booting.
    assert token_in(client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)) == token_in(script)
    r = client.get("/api/client/v1/job", headers=bearer(token_in(script)))
    assert r.status_code == 200 and r.get_json()["id"] == job.id


def test_known_host_without_job_boots_local(home):
    _, client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t")
    script = client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    assert "sanboot" in script and "kernel" not in script


def test_scheduled_job_waits(home):
    _, client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t")
    job = facade.jobs.restore("pc1", "win11", actor="t", not_before="2099-01-01T00:00:00Z")
    assert "kernel" not in client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    assert facade.jobs.get(job.id).state == "pending"


@pytest.mark.parametrize(
    ("policy", "marker"), [("silent", "not answering"), ("local", "sanboot"), ("register", "menu")]
)
def test_unknown_machine_recorded_and_never_restored(home, policy, marker):
    _, client, facade = make(home, policy)
    script = client.get("/boot/aabb.cc00.0009.ipxe?platform=efi").get_data(as_text=True)
    assert marker in script and "kernel" not in script
    seen = facade.inventory.seen()
    assert [(s.mac, s.firmware) for s in seen] == [("aa:bb:cc:00:00:09", "uefi")]
    assert facade.jobs.list_jobs(include_ended=True) == []


def test_auto_restore_each_boot_but_not_right_after_one(home):
    _, client, facade = make(home)
    facade.inventory.add_room("lab1", actor="t", auto_restore="win11")
    facade.inventory.add_host(MAC, "pc1", actor="t", room="lab1")
    script = client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    assert "kernel" in script
    (job,) = facade.jobs.list_jobs()
    assert (job.image, job.version, job.created_by, job.state) == (
        "win11",
        V1,
        "auto-restore",
        "booting",
    )
    facade.jobs.transition(job.id, "running")
    facade.jobs.done(job.id)
    # The reboot after the restore starts the restored system...
    assert "sanboot" in client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    # ...and the next power-on restores again.
    assert "kernel" in client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    assert len(facade.jobs.list_jobs(include_ended=True)) == 2


def test_auto_restore_of_missing_image_boots_local(home):
    _, client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t", auto_restore="gone")
    assert "sanboot" in client.get(f"/boot/{MAC}.ipxe").get_data(as_text=True)
    assert facade.jobs.list_jobs() == []


def test_grub_script(home):
    _, client, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t")
    facade.jobs.restore("pc1", "win11", actor="t")
    text = client.get(f"/boot/{MAC}.grub").get_data(as_text=True)
    assert "linux (http,localhost)/bootenv/vmlinuz" in text and "initrd=" not in text


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/boot/not-a-mac.ipxe", 400),
        ("/boot/aa:bb:cc:00:00:01.sh", 404),
        ("/boot/../slate.db", 404),
        ("/boot/..%2Fslate.db", 404),
        ("/boot/%2E%2E%2Fjob-secret.ipxe", 404),
        ("/bootenv/../slate.db", 404),
        ("/bootenv/..%2Fslate.db", 404),
        ("/bootenv/job-secret", 404),
        ("/bootenv/", 404),
    ],
)
def test_boot_paths_refused(home, url, status):
    _, client, _ = make(home)
    r = client.get(url)
    assert r.status_code == status, url
    assert b"slate-job" not in r.data


def test_bootenv_files_with_range(home):
    _, client, facade = make(home)
    facade.layout.bootimage.mkdir(parents=True)
    (facade.layout.bootimage / "vmlinuz").write_bytes(b"K" * 1000 + b"END")
    (facade.layout.bootimage / "initrd.img").write_bytes(b"I" * 5000)
    assert client.get("/bootenv/vmlinuz").data.endswith(b"END")
    r = client.get("/bootenv/initrd.img", headers={"Range": "bytes=4990-"})
    assert r.status_code == 206 and r.data == b"I" * 10
    assert client.get("/bootenv/initrd.img").headers["Accept-Ranges"] == "bytes"


def test_auto_restore_race_yields_the_same_job(home):
    from appliance.boot.decide import Machine
    from appliance.boot.plan import _auto_restore, plan_boot

    _, _, facade = make(home)
    facade.inventory.add_host(MAC, "pc1", actor="t", auto_restore="win11")
    machine = Machine(MAC)
    first = plan_boot(facade.jobs, machine, "silent")
    # A second request that decided "auto-restore" before the first one's job existed:
    again = _auto_restore(
        facade.jobs, machine, first.__class__("auto-restore", MAC, "pc1", image="win11"), "silent"
    )
    assert first.kind == again.kind == "env" and first.job == again.job


def test_ipxe_binaries_for_uefi_http_boot(home):
    _, client, facade = make(home)
    facade.layout.tftp_root.mkdir(parents=True)
    (facade.layout.tftp_root / "snponly.efi").write_bytes(b"MZ" + b"\0" * 100)
    (facade.layout.tftp_root / "undionly.kpxe").write_bytes(b"BIOS")
    r = client.get("/ipxe/snponly.efi")
    assert r.status_code == 200 and r.data.startswith(b"MZ")
    # Only the listed EFI programs: nothing else of the TFTP root or the data directory.
    for path in ("/ipxe/undionly.kpxe", "/ipxe/../slate.db", "/ipxe/..%2Fslate.db"):
        assert client.get(path).status_code == 404
