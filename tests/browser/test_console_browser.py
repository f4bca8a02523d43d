"""The console in a real browser: headless Chromium (Debian's) driven by Playwright.

Log in, register a machine, start a reimage, watch its progress reach 100 % while a
restore client reports through the real client API, see the job in the history.
The appliance runs as in production: a ``slate serve`` process on loopback, the console
on its own HTTPS listener, the client's calls over the client channel over TLS.
Screenshots land in artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from appliance.config import Layout
from appliance.formats.chunkio import compress_chunk, hash_chunk
from appliance.formats.manifest import ZERO, Chunk, Disk, Manifest, Partition
from appliance.store import Store
from bootimage.client.api import pinned_context

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a long lab password"
MAC = "52:54:00:12:34:56"
CHUNK = 4 * 1024 * 1024  # the capture default, so a re-capture shares every chunk


def make_image(store: Store) -> Manifest:
    entries = []
    for seed in range(1, 5):
        data = bytes([seed]) * CHUNK
        store.put_chunk_frame(hash_chunk(data), compress_chunk(data))
        entries.append(Chunk("hash", hash_chunk(data)))
    entries += [ZERO] * 4
    part = Partition(number=1, start=1024 * 1024, size=CHUNK * 4, type="0x83", fs="ext4")
    disk = Disk(index=0, size=CHUNK * 8, table="mbr", partitions=(part,), chunk_size=CHUNK,
                chunks=tuple(entries), model="QEMU HARDDISK", serial="REF001")  # fmt: skip
    return store.commit(
        Manifest(
            image="win11-lab",
            version=store.new_version_id("win11-lab"),
            created="2026-11-25T09:00:00Z",
            note="autumn term",
            source="pc-ref",
            disks=(disk,),
        )
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A real ``slate serve`` process on loopback (DHCP off), as the product runs."""

    def __init__(self, home: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        tls_port, console_port = free_port(), free_port()
        self.console = f"https://127.0.0.1:{console_port}"  # the console's own listener
        self.api = f"https://127.0.0.1:{tls_port}"  # the client channel over TLS
        self.pin = home / "client-cert.pem"  # what the boot environment carries
        args = ["serve", "--interface", "lo", "--address", "127.0.0.1", "--dhcp", "off",
                "--http-port", self.url.rsplit(":", 1)[1], "--tftp-port", str(free_port()),
                "--client-tls-port", str(tls_port), "--no-dns",
                "--console-listen", f"127.0.0.1:{console_port}"]  # fmt: skip
        self.log = open(home / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "--home", str(home), *args],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(home)

    def _wait_ready(self, home: Path) -> None:
        for _ in range(300):
            if self.proc.poll() is not None:
                raise AssertionError("slate serve exited:\n" + (home / "serve.log").read_text())
            try:
                ctx = ssl.create_default_context(cafile=str(home / "console-cert.pem"))
                with urllib.request.urlopen(self.console + "/api/v1/openapi.json", timeout=2,
                                            context=ctx):  # fmt: skip
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("slate serve did not answer:\n" + (home / "serve.log").read_text())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def server(home: Path, slate: Any) -> Iterator[Served]:
    proc = slate("user", "add", "tina", "--role", "technician", "--password-stdin",
                 input=PASSWORD + "\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    make_image(Store(Layout(home)))
    served = Served(home)
    yield served
    served.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
            # The console's certificate is self-signed (made at first start); the tests
            # that trust it by its file are tests/interop/test_http_console_listener.py.
            ignore_https_errors=True,
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


class Client:
    """The restore client's side of the protocol, as the boot environment speaks it:
    over the client channel, TLS pinned to the appliance's certificate."""

    def __init__(self, server: Served, token: str) -> None:
        self.base, self.token = server.api, token
        self.context = pinned_context(server.pin)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.base + "/api/client/v1" + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self.context) as resp:
            return json.loads(resp.read())

    def progress(self, done: int, total: int, phase: str = "writing") -> None:
        rate, eta = 48 * 1024 * 1024, (total - done) / 1e6
        body = {"phase": phase, "done": done, "total": total, "rate": rate, "eta": eta}
        self.call("POST", "/progress", body)


def boot(base: str, mac: str) -> tuple[int, str]:
    """What iPXE does: fetch the boot script; the job id and token are on its kernel line."""
    with urllib.request.urlopen(f"{base}/boot/{mac}.ipxe", timeout=10) as resp:
        script = resp.read().decode()
    job = re.search(r"slate\.job=(\d+)", script)
    token = re.search(r"slate\.token=(\S+)", script)
    assert job and token, script
    return int(job.group(1)), token.group(1)


def log_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "01-login")
    page.fill("#name", "tina")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Dashboard")


def register_machine(page: Page) -> None:
    page.click("nav >> text=Machines")
    page.fill("#mac", MAC.upper().replace(":", "-"))
    page.fill("#name", "pc-101")
    page.fill("#room", "lab-1")
    page.fill("#disk_hint", "serial=SER12")  # a typo, fixed below in place
    page.click("#register button[type=submit]")
    expect(page.locator(".flash.info")).to_contain_text("Registered pc-101")
    expect(page.locator("#hosts")).to_contain_text(MAC)
    row = page.locator("#hosts tr", has_text="pc-101")
    row.locator("summary:has-text('Edit')").click()
    row.locator("input[name=disk_hint]").fill("serial=SER123")
    row.locator("button:has-text('Save')").click()
    expect(page.locator(".flash.info")).to_contain_text("Saved pc-101")
    expect(page.locator("#hosts")).to_contain_text("serial=SER123")
    shot(page, "02-machines")


def start_reimage(page: Page) -> None:
    """Version, machine, a confirmation listing exactly that machine and disk, start."""
    page.click("nav >> text=Reimage")
    page.check(f"input[name=mac][value='{MAC}']")
    shot(page, "03-reimage")
    page.click("button:has-text('Review')")
    expect(page.locator("h1")).to_contain_text("Overwrite 1 machine")
    expect(page.locator("#targets")).to_contain_text("pc-101")
    expect(page.locator("#targets")).to_contain_text("serial=SER123")
    shot(page, "04-confirm")
    page.click("button:has-text('Overwrite 1 machine')")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("#active-jobs")).to_contain_text("pc-101")


def test_progress_steps_reach_the_dashboard_live(server: Served, page: Page) -> None:
    """Progress steps driven through the client API, so each step can be awaited."""
    base = server.url  # the imaging network's listener (boot scripts, chunks)
    log_in(page, server.console)
    register_machine(page)
    start_reimage(page)

    # The machine network-boots; its restore client reports progress.
    job_id, token = boot(base, MAC)
    client = Client(server, token)
    assert client.call("GET", "/job")["image"] == "win11-lab"
    client.call("POST", "/log", {"lines": ["disk vda: 2.0 MiB, serial SER123", "writing"]})
    total = 8 * CHUNK
    row = page.locator(f"#active-jobs tr[data-job='{job_id}']")
    for percent in (10, 45, 80):
        client.progress(total * percent // 100, total)
        # The page updates by itself (server-sent events): no reload here.
        expect(row.locator("progress")).to_have_attribute("value", str(percent))
        expect(row).to_contain_text(f"{percent} %")
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("48.0 MiB/s")
    shot(page, "05-dashboard-progress")

    client.call("POST", "/state", {"state": "verifying"})
    client.progress(total, total, phase="verifying")
    expect(row.locator("progress")).to_have_attribute("value", "100")
    client.call("POST", "/log", {"lines": ["verified 8 chunks", "done, rebooting"]})
    client.call("POST", "/done", {"verified_bytes": total})
    finished = page.locator(f"#ended-jobs tr[data-job='{job_id}']")
    expect(finished).to_contain_text("done")
    expect(page.locator("#no-active")).to_be_visible()
    shot(page, "06-dashboard-done")

    # History and the job's own page with the client's log.
    page.click("nav >> text=Jobs")
    expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("done")
    shot(page, "07-jobs")
    page.click(f"a:has-text('#{job_id}')")
    expect(page.locator("#job-bar progress")).to_have_attribute("value", "100")
    expect(page.locator("#job-log")).to_contain_text("verified 8 chunks")
    shot(page, "08-job")
    page.click("nav >> text=Images")
    expect(page.locator("body")).to_contain_text("autumn term")
    page.click("a:has-text('win11-lab')")
    expect(page.locator("body")).to_contain_text("ext4")
    shot(page, "09-image")


def test_real_restore_client_seen_from_the_console(
    server: Served, page: Page, tmp_path: Path
) -> None:
    """The real restore client process (bootimage.client) restores onto a disk file
    while the console watches; the job ends done at 100 % with the client's log."""
    base = server.url  # the imaging network's listener (boot scripts, chunks)
    log_in(page, server.console)
    register_machine(page)
    start_reimage(page)
    job_id, token = boot(base, MAC)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(8 * CHUNK)
    args = ["--url", base, "--job", str(job_id), "--token", token, "--disk", str(disk),
            "--api", server.api, "--pin", str(server.pin)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootimage.client", *args, "--after", "none", "--no-console"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    finished = page.locator(f"#ended-jobs tr[data-job='{job_id}']")
    expect(finished).to_contain_text("done")  # arrived by server-sent events
    shot(page, "10-real-client-dashboard")
    page.click(f"#ended-jobs a:has-text('#{job_id}')")
    expect(page.locator("#job-bar progress")).to_have_attribute("value", "100")
    expect(page.locator("#job-log")).to_contain_text("verified")
    shot(page, "11-real-client-job")
    data = disk.read_bytes()
    for i in range(8):
        expected = bytes([i + 1]) * CHUNK if i < 4 else bytes(CHUNK)
        assert data[i * CHUNK : (i + 1) * CHUNK] == expected, f"chunk {i} differs"

    # Capture the restored machine as a new image: its chunks are all shared.
    page.click("nav >> text=Reimage")
    page.click("a:has-text('Capture')")
    page.select_option("#mac", MAC)
    page.fill("#cap-image", "pc-101-backup")
    page.fill("#note", "after restore")
    page.click("button:has-text('Capture')")
    expect(page.locator("h1")).to_contain_text("capture pc-101")
    capture_id, capture_token = boot(base, MAC)
    args = ["--url", base, "--job", str(capture_id), "--token", capture_token,
            "--api", server.api, "--pin", str(server.pin)]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "bootimage.client", *args, "--disk", str(disk), "--after", "none",
         "--no-console"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expect(page.locator("#job-state")).to_contain_text("done")  # live, then reloaded
    expect(page.locator("body")).to_contain_text("Captured version")
    page.click("nav >> text=Images")
    page.click("a:has-text('pc-101-backup')")
    expect(page.locator("body")).to_contain_text("after restore")
    expect(page.locator("body")).to_contain_text("4 of 4 chunks")
    shot(page, "15-captured-image")


def test_admin_verifies_and_deletes_a_version_and_reads_the_audit(
    server: Served, page: Page, slate: Any
) -> None:
    proc = slate("user", "add", "ada", "--role", "admin", "--password-stdin",
                 input=PASSWORD + "\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page.goto(server.console + "/login")
    page.fill("#name", "ada")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.click("nav >> text=Images")
    page.click("a:has-text('win11-lab')")
    page.click("button:has-text('Verify')")
    # The page refreshes itself while the verification runs in the background.
    expect(page.locator("body")).to_contain_text("all 4 chunks good")
    shot(page, "12-admin-image-verified")
    page.on("dialog", lambda dialog: dialog.accept())  # the "Delete …?" confirmation
    page.click("button:has-text('Delete version')")
    expect(page.locator(".flash.info")).to_contain_text("Deleted win11-lab@")
    expect(page.locator("body")).to_contain_text("The library is empty")
    page.click("nav >> text=Admin")
    expect(page.locator("#users")).to_contain_text("tina")
    shot(page, "13-admin-users")
    page.click("a:has-text('audit log')")
    expect(page.locator("body")).to_contain_text("image.rm")
    expect(page.locator("body")).to_contain_text("web:ada")
    shot(page, "14-audit")
