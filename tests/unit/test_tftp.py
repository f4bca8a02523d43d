"""TFTP: the pure parts (paths, requests, options) and one server on loopback."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from appliance.tftp import (
    ERR_ACCESS,
    MAX_BLKSIZE,
    Refused,
    TftpServer,
    negotiate,
    parse_request,
    resolve,
    safe_relpath,
)


def rrq(name: bytes, mode: bytes = b"octet", **opts: str) -> bytes:
    body = name + b"\0" + mode + b"\0"
    for k, v in opts.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    return struct.pack("!H", 1) + body


@pytest.mark.parametrize(
    ("name", "rel"),
    [
        ("undionly.kpxe", "undionly.kpxe"),
        ("/undionly.kpxe", "undionly.kpxe"),
        ("/grub//grub.cfg", "grub/grub.cfg"),
        ("./a/./b", "a/b"),
    ],
)
def test_names_are_relative_to_the_root(name: str, rel: str) -> None:
    assert safe_relpath(name) == rel


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../x", "/..", "a\\..\\b", "x\0y"])
def test_escaping_names_are_refused(name: str) -> None:
    with pytest.raises(Refused) as info:
        safe_relpath(name)
    assert info.value.code == ERR_ACCESS


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "inside").symlink_to("ok")
    (root / "ok").write_text("fine")
    with pytest.raises(Refused):
        resolve(root, "link")
    assert resolve(root, "inside") == (root / "ok").resolve()


def test_request_parsing() -> None:
    req = parse_request(rrq(b"/a/b.efi", b"OCTET", BLKSIZE="1468", tsize="0"))
    assert req.filename == "/a/b.efi"
    assert req.options == {"blksize": "1468", "tsize": "0"}
    with pytest.raises(Refused):
        parse_request(struct.pack("!H", 2) + b"up\0octet\0")
    for junk in (
        b"",
        b"\x00",
        b"\x00\x01abc",
        b"\x00\x09xx\0octet\0",
        b"\x00\x01\xff\xfe\0octet\0",
    ):
        with pytest.raises(ValueError):
            parse_request(junk)


def test_option_negotiation() -> None:
    assert negotiate({"blksize": "1468", "tsize": "0", "timeout": "3"}, 1000) == {
        "blksize": "1468",
        "tsize": "1000",
        "timeout": "3",
    }
    assert negotiate({"blksize": "100000"}, 1)["blksize"] == str(MAX_BLKSIZE)
    assert negotiate({"blksize": "4", "timeout": "0", "windowsize": "8"}, 1) == {}


def fetch(port: int, name: bytes, blksize: int | None = None) -> bytes:
    """A minimal lock-step client (the interop tests use tftp-hpa and curl)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    opts = {"blksize": str(blksize)} if blksize else {}
    sock.sendto(rrq(name, **opts), ("127.0.0.1", port))
    out, size = b"", blksize or 512
    while True:
        data, peer = sock.recvfrom(70000)
        op, num = struct.unpack("!HH", data[:4])
        if op == 5:
            raise FileNotFoundError(num)
        if op == 6:
            sock.sendto(struct.pack("!HH", 4, 0), peer)
            continue
        out += data[4:]
        sock.sendto(struct.pack("!HH", 4, num), peer)
        if len(data) - 4 < size:
            return out


def test_server_on_loopback_serves_files_and_generated_content(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40 + b"tail"
    (tmp_path / "f.bin").write_bytes(payload)
    (tmp_path / "exact.bin").write_bytes(b"x" * 1024)  # ends with an empty block
    server = TftpServer(
        tmp_path,
        "127.0.0.1",
        0,
        generator=lambda name, ip: f"for {ip}".encode() if name == "gen/x" else None,
    )
    server.start()
    try:
        assert fetch(server.port, b"f.bin") == payload
        assert fetch(server.port, b"/f.bin", blksize=1468) == payload
        assert fetch(server.port, b"exact.bin") == b"x" * 1024
        assert fetch(server.port, b"gen/x") == b"for 127.0.0.1"
        with pytest.raises(FileNotFoundError):
            fetch(server.port, b"missing")
        # Garbage on the request port is dropped; the server keeps serving.
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        junk.sendto(b"\x00", ("127.0.0.1", server.port))
        junk.sendto(b"\x00\x04\x00\x01", ("127.0.0.1", server.port))
        assert fetch(server.port, b"f.bin") == payload
    finally:
        server.stop()


def test_options_are_acknowledged_on_the_wire(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"z" * 3000)
    server = TftpServer(tmp_path, "127.0.0.1", 0)
    server.start()
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        opts = {"blksize": "1000", "tsize": "0", "timeout": "3", "windowsize": "4"}
        sock.sendto(rrq(b"f", **opts), ("127.0.0.1", server.port))
        data, _ = sock.recvfrom(1000)
        assert data[:2] == b"\x00\x06"  # OACK
        words = data[2:].split(b"\0")[:-1]
        acked = dict(zip(words[::2], words[1::2], strict=True))
        assert acked == {b"blksize": b"1000", b"tsize": b"3000", b"timeout": b"3"}
    finally:
        server.stop()


def test_a_failing_generator_is_an_error_reply_not_a_stuck_client(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"fine")

    def generator(name: str, ip: str) -> bytes | None:
        if name == "boom":
            raise RuntimeError("database is locked")
        return None

    server = TftpServer(tmp_path, "127.0.0.1", 0, generator=generator)
    server.start()
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        sock.sendto(rrq(b"boom"), ("127.0.0.1", server.port))
        data, _ = sock.recvfrom(100)
        assert data[:4] == struct.pack("!HH", 5, ERR_ACCESS)
        # The same client port may ask again at once.
        sock.sendto(rrq(b"ok"), ("127.0.0.1", server.port))
        data, _ = sock.recvfrom(100)
        assert data == struct.pack("!HH", 3, 1) + b"fine"
    finally:
        server.stop()
