"""`slate lab up|status|down`: a lab left running for exploring the console, with the
console on the host's loopback and every boot service inside the lab's namespaces;
`down` stops exactly what `up` started and removes the hosts `up` registered, no other;
`up` works again after `down` and prints a console login that works.  The console is
HTTPS end to end (the lab's own certificate, its fingerprint printed)."""

from __future__ import annotations

import http.cookiejar
import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from appliance.http.listeners import fingerprint
from appliance.lab import harness
from tests.conftest import require_root


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _console_tls(home: Path) -> ssl.SSLContext:
    """Trust exactly the lab's console certificate (its SAN is 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(home / "console-cert.pem"))


def _host_udp_ports() -> str:
    return subprocess.run(["ss", "-Hlun"], capture_output=True, text=True).stdout


def test_lab_up_status_down(slate, home: Path) -> None:
    require_root()
    port = _free_port()
    up = slate("lab", "up", "--bios", "1", "--uefi", "0", "--no-image", "--port", str(port),
               "--json")  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)
        assert state["console"] == f"https://127.0.0.1:{port}/"
        assert state["console_sha256"] == fingerprint(home / "console-cert.pem")
        # The console answers on the host's loopback (through the forwarder), over TLS ...
        ctx = _console_tls(home)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", timeout=10,
                                    context=ctx) as resp:  # fmt: skip
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"]
        # ... while DHCP and TFTP listen only inside the lab.
        host_ports = _host_udp_ports()
        assert ":67 " not in host_ports and ":69 " not in host_ports, host_ports
        ns = state["namespaces"][-1]
        inside = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlun"],
                                capture_output=True, text=True).stdout  # fmt: skip
        assert ":67 " in inside and ":69 " in inside, inside
        # The machine is a known host and network-boots from the lab's appliance.
        hosts = slate("host", "list", "--json", check=True).stdout
        assert "lab-bios1" in hosts
        serial = Path(state["workdir"]) / "lab-bios1.serial.log"
        deadline = time.monotonic() + 180
        while "iPXE" not in serial.read_text(errors="replace"):
            assert time.monotonic() < deadline, serial.read_text(errors="replace")[-2000:]
            time.sleep(1)
        status = slate("lab", "status", "--json", check=True)
        procs = {p["role"]: p for p in json.loads(status.stdout)["procs"]}
        assert {"serve", "ra", "forward", "qemu:lab-bios1"} <= set(procs)
        assert all(p["alive"] for p in procs.values())
    finally:
        down = slate("lab", "down")
    assert down.returncode == 0, down.stderr
    for p in procs.values():
        assert not harness.Proc(p["role"], p["pid"], p["started"]).alive()
    for name in state["namespaces"]:
        assert not Path(f"/run/netns/{name}").exists()
    assert slate("lab", "status").returncode == 1


def _log_in(port: int, name: str, password: str, ctx: ssl.SSLContext) -> str:
    """Log in the way the console's login form does (session cookie + its CSRF token);
    the account page it leads to."""
    base = f"https://127.0.0.1:{port}"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.HTTPSHandler(context=ctx),
    )
    with opener.open(f"{base}/login", timeout=10) as resp:
        form = resp.read().decode()
    found = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert found, form
    body = urllib.parse.urlencode(
        {"csrf_token": found.group(1), "name": name, "password": password}
    ).encode()
    with opener.open(f"{base}/login", data=body, timeout=30) as resp:
        assert "/login" not in resp.url, resp.url  # redirected into the console
    with opener.open(f"{base}/account", timeout=10) as resp:
        assert "/login" not in resp.url, resp.url
        return str(resp.read().decode())


def _hosts(slate) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {h["name"]: h for h in json.loads(slate("host", "list", "--json", check=True).stdout)}


def test_lab_up_again_after_down_and_its_login(slate, home: Path) -> None:
    """The issue-16 walk: up 2+1 machines, log in, down, up 1+0, down.  A technician's
    own host under a lab name, and a lab host they adopted (renamed), survive both."""
    require_root()
    port = _free_port()
    slate("host", "add", "52:54:00:12:34:56", "--name", "lab-bios2", "--room", "101", check=True)
    up = slate("lab", "up", "--bios", "2", "--uefi", "1", "--no-image", "--port", str(port),
               "--json")  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)
        assert sorted(m["name"] for m in state["machines"]) == ["lab-bios1", "lab-bios3",
                                                                 "lab-uefi1"]  # fmt: skip
        assert "lab-bios2 is a registered host the lab did not make" in up.stderr
        login = state["login"]
        assert login["user"] == "lab" and login["password"], login
        account = _log_in(port, "lab", login["password"], _console_tls(home))
        assert re.search(r"<h1>lab <span[^>]*>admin</span>", account), account[-2000:]
        try:
            _log_in(port, "lab", login["password"] + "x", _console_tls(home))
            raise AssertionError("a wrong password logged in")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        status = slate("lab", "status", check=True).stdout
        assert f"console login: log in as lab, password {login['password']}" in status
        assert json.loads(slate("lab", "status", "--json", check=True).stdout)["login"] == login
        slate("host", "set", "lab-uefi1", "--name", "kept-uefi", check=True)  # adopted
    finally:
        down = slate("lab", "down")
    assert down.returncode == 0, down.stderr
    assert "removed host lab-bios1" in down.stdout and "kept host kept-uefi" in down.stdout
    hosts = _hosts(slate)
    assert set(hosts) == {"lab-bios2", "kept-uefi"}, hosts
    assert (hosts["lab-bios2"]["mac"], hosts["lab-bios2"]["room"]) == ("52:54:00:12:34:56", "101")

    again = slate("lab", "up", "--bios", "1", "--uefi", "0", "--no-image", "--port", str(port))
    try:
        assert again.returncode == 0, again.stderr
        assert f"web console: https://127.0.0.1:{port}/" in again.stdout
        fp = fingerprint(home / "console-cert.pem")
        assert f"console certificate (self-signed) SHA-256: {fp}" in again.stdout
        assert f"console login: log in as lab, password {login['password']}" in again.stdout
        state = json.loads(slate("lab", "status", "--json", check=True).stdout)
        assert [m["name"] for m in state["machines"]] == ["lab-bios1"]
        assert all(p["alive"] for p in state["procs"]), state["procs"]
        _log_in(port, "lab", login["password"], _console_tls(home))
    finally:
        down = slate("lab", "down")
    assert down.returncode == 0, down.stderr
    assert set(_hosts(slate)) == {"lab-bios2", "kept-uefi"}
