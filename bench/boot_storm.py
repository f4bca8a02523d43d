"""Boot storm: N PXE clients at once against ``slate serve`` (full mode) vs dnsmasq.

Each simulated machine does what a PXE ROM and then iPXE do: DHCP DISCOVER/REQUEST
with PXE options, TFTP of the boot file it was offered (blksize 1432 + tsize, like a
ROM), a second DHCP as iPXE (user class "iPXE", option 175), then an HTTP GET of the
boot script it was offered.  The figure is the time until every machine has its boot
script.  The baseline, measured in the same run on the same topology, is dnsmasq
(DHCP + ``--enable-tftp``) with a static ``python -m http.server`` for the script.

    .venv/bin/python bench/boot_storm.py            # 40 clients, median of 3 runs
    .venv/bin/python bench/boot_storm.py --clients 40 --runs 5

Runs as root; everything happens inside network namespaces it creates and removes.
The client side runs as ``boot_storm.py client ...`` inside the client namespace.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.dhcp import options as o  # noqa: E402
from appliance.dhcp.packet import BOOTREQUEST, FLAG_BROADCAST, Message, build, parse  # noqa: E402
from appliance.lab.netns import Lab, Netns  # noqa: E402

SERVER, CLIENT, PREFIX = "10.77.0.1", "10.77.0.2", 24
POOL = ("10.77.0.100", "10.77.0.220")
PXE_VENDOR = b"PXEClient:Arch:00000:UNDI:002001"
BOOT_FILE = Path("/usr/lib/ipxe/undionly.kpxe")


# --- the client side (runs inside the client namespace) -------------------------------


@dataclass
class Result:
    mac: str
    ok: bool = False
    seconds: float = 0.0
    error: str = ""
    retries: int = 0
    steps: dict[str, float] = field(default_factory=dict)


class DhcpPort:
    """One UDP socket on port 68 shared by all simulated clients; replies go by xid."""

    def __init__(self, interface: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        self.sock.bind(("0.0.0.0", 68))  # noqa: S104 (bound to one interface above; broadcasts)
        self.waiting: dict[int, queue.Queue[Message]] = {}
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            data, _ = self.sock.recvfrom(4096)
            try:
                msg = parse(data)
            except Exception:  # noqa: S112 (not a DHCP packet: the storm ignores it)
                continue
            q = self.waiting.get(msg.xid)
            if q is not None:
                q.put(msg)

    def exchange(self, msg: Message, want: int, result: Result, tries: int = 5) -> Message:
        q: queue.Queue[Message] = queue.Queue()
        self.waiting[msg.xid] = q
        try:
            for attempt in range(tries):
                if attempt:
                    result.retries += 1
                self.sock.sendto(build(msg), ("255.255.255.255", 67))
                deadline = time.monotonic() + 2.0
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        reply = q.get(timeout=left)
                    except queue.Empty:
                        break
                    if reply.message_type == want:
                        return reply
            raise TimeoutError(f"no DHCP {o.MESSAGE_TYPES.get(want, want)} after {tries} tries")
        finally:
            self.waiting.pop(msg.xid, None)


def dhcp_options(kind: int, ipxe: bool, uuid: bytes, extra: tuple[Any, ...] = ()) -> tuple:
    opts: list[tuple[int, bytes]] = [
        (o.MESSAGE_TYPE, bytes([kind])),
        (o.PARAM_REQUEST, bytes([1, 3, 6, 43, 60, 66, 67])),
        (o.MAX_MESSAGE_SIZE, o.u16(1472)),
        (o.VENDOR_CLASS, PXE_VENDOR),
        (o.CLIENT_ARCH, o.u16(0)),
        (o.CLIENT_NDI, b"\x01\x02\x01"),
        (o.CLIENT_UUID, b"\x00" + uuid),
    ]
    if ipxe:
        opts += [(o.USER_CLASS, b"iPXE"), (o.IPXE_ENCAP, b"\x13\x01\x01")]
    return tuple(opts) + extra


def dhcp_boot(port: DhcpPort, mac: bytes, ipxe: bool, result: Result) -> Message:
    """DISCOVER → OFFER → REQUEST → ACK; returns the ACK."""
    uuid = mac * 2 + b"\x00\x00\x00\x00"
    xid = secrets.randbits(32)
    chaddr = mac + bytes(10)
    discover = Message(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=chaddr,
        flags=FLAG_BROADCAST,
        options=dhcp_options(o.DISCOVER, ipxe, uuid),
    )
    offer = port.exchange(discover, o.OFFER, result)
    server_id = offer.get(o.SERVER_ID) or b""
    request = discover.replace(
        options=dhcp_options(
            o.REQUEST, ipxe, uuid, ((o.REQUESTED_IP, o.ip(offer.yiaddr)), (o.SERVER_ID, server_id))
        )
    )
    return port.exchange(request, o.ACK, result)


def boot_file_of(ack: Message) -> str:
    raw = ack.get(o.BOOTFILE_NAME) or ack.file
    return raw.split(b"\0", 1)[0].decode()


def tftp_get(server: str, name: str, local: str, blksize: int = 1432) -> bytes:
    """Lock-step TFTP download with blksize + tsize, as PXE ROMs do."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, 0))
    sock.settimeout(1.0)
    req = struct.pack("!H", 1) + name.encode() + b"\0octet\0blksize\0%d\0tsize\0" % blksize + b"0\0"
    sock.sendto(req, (server, 69))
    last, out, size, peer = req, bytearray(), blksize, (server, 69)
    expected, tries = 1, 0
    try:
        while True:
            try:
                data, peer = sock.recvfrom(blksize + 4)
            except TimeoutError:
                tries += 1
                if tries > 5:
                    raise TimeoutError(f"TFTP {name}: no data") from None
                sock.sendto(last, peer)
                continue
            op, num = struct.unpack("!HH", data[:4])
            if op == 5:
                raise OSError(f"TFTP {name}: error {num}")
            if op == 6:  # OACK
                size = int(dict(_pairs(data[2:])).get("blksize", blksize))
                last = struct.pack("!HH", 4, 0)
            elif op == 3 and num == expected & 0xFFFF:
                out += data[4:]
                last = struct.pack("!HH", 4, num)
                expected += 1
                if len(data) - 4 < size:
                    sock.sendto(last, peer)
                    return bytes(out)
            sock.sendto(last, peer)
            tries = 0
    finally:
        sock.close()


def _pairs(raw: bytes) -> list[tuple[str, str]]:
    words = raw.split(b"\0")[:-1]
    return [(words[i].decode().lower(), words[i + 1].decode()) for i in range(0, len(words) - 1, 2)]


def http_get(url: str) -> bytes:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=15)
    try:
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status} for {url}")
        return body
    finally:
        conn.close()


def one_machine(port: DhcpPort, n: int, start: float, local: str, expect: bytes) -> Result:
    mac = bytes([0x02, 0x5A, 0x00, 0x00, n >> 8, n & 0xFF])
    result = Result(":".join(f"{b:02x}" for b in mac))
    try:
        ack = dhcp_boot(port, mac, ipxe=False, result=result)
        result.steps["dhcp"] = time.monotonic() - start
        tftp_server = str(ack.siaddr) if ack.siaddr != IPv4Address(0) else SERVER
        data = tftp_get(tftp_server, boot_file_of(ack), local)
        if data != expect:
            raise OSError(f"boot file differs ({len(data)} bytes)")
        result.steps["tftp"] = time.monotonic() - start
        ack2 = dhcp_boot(port, mac, ipxe=True, result=result)
        script = http_get(boot_file_of(ack2))
        if not script.startswith(b"#!ipxe"):
            raise OSError(f"not an iPXE script: {script[:40]!r}")
        result.ok = True
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - start
    return result


def client_main(args: argparse.Namespace) -> int:
    port = DhcpPort(args.interface)
    expect = Path(args.expect).read_bytes()
    results: list[Result] = []
    start_gate = threading.Barrier(args.clients + 1)
    start = 0.0

    def run(n: int) -> None:
        start_gate.wait()
        results.append(one_machine(port, n, start, args.local, expect))

    threads = [threading.Thread(target=run, args=(n + 1,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    start = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    done = [r for r in results if r.ok]
    print(
        json.dumps(
            {
                "clients": args.clients,
                "completed": len(done),
                "seconds": max((r.seconds for r in done), default=0.0),
                "retries": sum(r.retries for r in results),
                "errors": [f"{r.mac}: {r.error}" for r in results if not r.ok],
            }
        )
    )
    return 0 if len(done) == args.clients else 1


# --- the server side and the harness ----------------------------------------------------


class ServeProcess:
    """``slate serve`` running inside a namespace; :meth:`stop` ends it by its PID."""

    def __init__(self, ns: Netns, home: Path, *args: str, log: Path | None = None) -> None:
        self.log = log or home / "serve.log"
        home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "appliance.cli", "--home", str(home), "serve", *args]
        with open(self.log, "wb") as out:
            self.proc = ns.popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.wait_for("ready")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"slate serve exited ({self.proc.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"slate serve not {text} after {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Storm:
    """The topology: one server namespace, one client namespace, on one bridge."""

    def __init__(self) -> None:
        self.lab = Lab()
        self.srv = self.lab.add_host("srv", f"{SERVER}/{PREFIX}")
        self.cl = self.lab.add_host("cl", f"{CLIENT}/{PREFIX}")
        self.tmp = Path(tempfile.mkdtemp(prefix="slate-storm-"))

    def clients(self, count: int) -> dict[str, Any]:
        argv = [sys.executable, str(Path(__file__).resolve()), "client"]
        argv += ["--clients", str(count), "--local", CLIENT, "--expect", str(BOOT_FILE)]
        proc = self.cl.run(argv, check=False, timeout=300, cwd=ROOT)
        try:
            return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            raise RuntimeError(f"storm client failed:\n{proc.stdout}\n{proc.stderr}") from None

    def slate(self, count: int, runs: int) -> list[dict[str, Any]]:
        home = self.tmp / "slate-home"
        serve = ServeProcess(
            self.srv,
            home,
            *("--interface", "eth0", "--dhcp", "full", "--pool", "-".join(POOL)),
        )
        try:
            return [self.clients(count) for _ in range(runs)]
        finally:
            serve.stop()

    def dnsmasq(self, count: int, runs: int) -> list[dict[str, Any]]:
        root, www = self.tmp / "tftp", self.tmp / "www"
        root.mkdir(exist_ok=True)
        (www / "boot").mkdir(parents=True, exist_ok=True)
        (root / BOOT_FILE.name).write_bytes(BOOT_FILE.read_bytes())
        (www / "boot" / "storm.ipxe").write_text("#!ipxe\nexit\n")
        dnsmasq = self.srv.popen(
            [
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                "--interface=eth0", "--bind-interfaces", f"--dhcp-leasefile={self.tmp}/leases",
                f"--dhcp-range={POOL[0]},{POOL[1]},1h", "--enable-tftp", f"--tftp-root={root}",
                "--no-ping", "--dhcp-authoritative",
                "--dhcp-match=set:ipxe,175", f"--dhcp-boot=tag:!ipxe,{BOOT_FILE.name}",
                f"--dhcp-boot=tag:ipxe,http://{SERVER}:8080/boot/storm.ipxe",
                "--log-facility=/dev/null",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        web = self.srv.popen(
            [sys.executable, "-m", "http.server", "8080", "--bind", SERVER, "-d", str(www)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)  # both bind within a fraction of a second
            return [self.clients(count) for _ in range(runs)]
        finally:
            for proc in (dnsmasq, web):
                proc.terminate()
                proc.wait(10)

    def close(self) -> None:
        self.lab.close()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)


def summary(name: str, runs: list[dict[str, Any]]) -> float:
    times = [r["seconds"] for r in runs]
    med = statistics.median(times)
    worst = min(r["completed"] for r in runs)
    retries = sum(r["retries"] for r in runs)
    print(
        f"{name:8s} median {med:6.2f} s  runs {', '.join(f'{t:.2f}' for t in times)}  "
        f"completed (worst run) {worst}/{runs[0]['clients']}  DHCP retries {retries}"
    )
    for r in runs:
        for err in r["errors"][:5]:
            print(f"  {name}: {err}")
    return med


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    client = sub.add_parser("client", help="(internal) the client side, inside a namespace")
    client.add_argument("--clients", type=int, default=40)
    client.add_argument("--interface", default="eth0")
    client.add_argument("--local", default=CLIENT)
    client.add_argument("--expect", default=str(BOOT_FILE))
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.cmd == "client":
        return client_main(args)
    if os.geteuid() != 0:
        print("boot_storm: run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    storm = Storm()
    try:
        print(f"boot storm: {args.clients} PXE clients, {args.runs} runs each")
        slate = summary("slate", storm.slate(args.clients, args.runs))
        base = summary("dnsmasq", storm.dnsmasq(args.clients, args.runs))
        print(f"ratio slate/dnsmasq (median time to all boot scripts): {slate / base:.2f}")
    finally:
        storm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
