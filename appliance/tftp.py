"""Read-only TFTP service for the boot files (RFC 1350 + 2347/2348/2349 options).

Why not ``tftpy.TftpServer``: its one select loop lets a malformed datagram raise out of
``listen()``, accepts uploads, does not know the ``timeout`` option and follows symlinks
out of the root.  tftpy stays our wire codec for requests and replies; this module owns
the sockets: one listening socket bound to the served address, and one thread with its
own socket (same address, new port = the transfer ID) per transfer.

Path rules: names are relative to the root (a leading ``/`` is ignored, as tftpd ``-s``
does — GRUB asks for ``/grub/grub.cfg``); ``..`` components, backslashes, NULs and
anything whose real path (symlinks resolved) leaves the root are refused and logged.
A ``generator(name, client_ip) -> bytes | Path | None`` renders per-machine files
(grub.cfg) or maps a name to a file elsewhere that the server chose (the boot kernel).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketERR,
    TftpPacketOACK,
    TftpPacketRRQ,
    TftpPacketWRQ,
)

from appliance import metrics

log = logging.getLogger("slate.tftp")

OP_DATA, OP_ACK, OP_ERROR = 3, 4, 5
ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_UNKNOWN_TID, ERR_OPTIONS = 1, 2, 4, 5, 8
DEFAULT_BLKSIZE = 512
MAX_BLKSIZE = 65464  # RFC 2348
MAX_TRANSFERS = 512

Generator = Callable[[str, str], bytes | Path | None]


class Refused(Exception):
    """A request the server will not serve; ``code`` is the TFTP error code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


# --- pure parts -------------------------------------------------------------------


def safe_relpath(name: str) -> str:
    """The root-relative form of a requested name; raises :class:`Refused` if it escapes."""
    if "\\" in name or "\0" in name:
        raise Refused(ERR_ACCESS, "backslash or NUL in file name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise Refused(ERR_ACCESS, "'..' in file name")
    if not parts:
        raise Refused(ERR_NOT_FOUND, "empty file name")
    return "/".join(parts)


def resolve(root: Path, name: str) -> Path:
    """The real file under ``root`` for ``name``; symlinks may not lead out of the root."""
    rel = safe_relpath(name)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if real != real_root and not real.startswith(real_root + os.sep):
        raise Refused(ERR_ACCESS, "path leaves the TFTP root (symlink)")
    return Path(real)


@dataclass(frozen=True)
class Request:
    filename: str
    options: dict[str, str]


def parse_request(data: bytes) -> Request:
    """Decode an RRQ (tftpy); anything else raises :class:`Refused` or ValueError."""
    try:
        packet = TftpPacketFactory().parse(data)
    except Exception as exc:  # tftpy raises TftpException, struct.error, UnicodeError...
        raise ValueError(f"malformed packet ({exc})") from exc
    if isinstance(packet, TftpPacketWRQ):
        raise Refused(ERR_ACCESS, "uploads are not accepted (read-only server)")
    if not isinstance(packet, TftpPacketRRQ):
        raise ValueError(f"unexpected {type(packet).__name__} on the request port")
    options = {str(k).lower(): str(v) for k, v in packet.options.items()}
    return Request(str(packet.filename), options)


def negotiate(options: dict[str, str], size: int) -> dict[str, str]:
    """The options we accept (blksize, tsize, timeout), to be sent in an OACK."""
    accepted: dict[str, str] = {}
    if "blksize" in options and options["blksize"].isdigit():
        blksize = int(options["blksize"])
        if blksize >= 8:
            accepted["blksize"] = str(min(blksize, MAX_BLKSIZE))
    if "tsize" in options:
        accepted["tsize"] = str(size)
    if "timeout" in options and options["timeout"].isdigit():
        timeout = int(options["timeout"])
        if 1 <= timeout <= 255:
            accepted["timeout"] = str(timeout)
    return accepted


def error_packet(code: int) -> bytes:
    packet = TftpPacketERR()
    packet.errorcode = code
    return bytes(packet.encode().buffer)


def oack_packet(options: dict[str, str]) -> bytes:
    packet = TftpPacketOACK()
    packet.options = options
    return bytes(packet.encode().buffer)


# --- service ----------------------------------------------------------------------


class TftpServer:
    """Serves ``root`` read-only on ``address:port`` until :meth:`stop`."""

    def __init__(
        self,
        root: Path,
        address: str,
        port: int = 69,
        *,
        generator: Generator | None = None,
        timeout: float = 1.0,
        retries: int = 6,
    ) -> None:
        self.root = Path(root)
        self.address = address
        self.port = port
        self.generator = generator
        self.timeout = timeout
        self.retries = retries
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._active: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Bind and start serving; returns once the socket listens."""
        # tftpy logs every client ERR (e.g. a PXE ROM ending its tsize probe) as an error.
        logging.getLogger("tftpy").setLevel(logging.CRITICAL)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self.port))
        sock.settimeout(0.5)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tftp", daemon=True)
        self._thread.start()
        log.info("serving %s on %s:%d", self.root, self.address, self.port)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(5)
        if self._sock:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                data, peer = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("receive failed")
                continue
            try:
                self._handle(data, peer)
            except Exception:  # one bad request must never stop the service
                log.exception("request from %s:%d failed", *peer)

    def _handle(self, data: bytes, peer: tuple[str, int]) -> None:
        try:
            request = parse_request(data)
        except ValueError as exc:
            log.warning("dropped %d-byte packet from %s:%d: %s", len(data), *peer, exc)
            return
        except Refused as exc:
            log.warning("refused request from %s:%d: %s", *peer, exc)
            self._reply_error(peer, exc.code)
            return
        with self._lock:
            if peer in self._active:
                return  # a retransmitted RRQ of a transfer already running
            if len(self._active) >= MAX_TRANSFERS:
                log.warning("busy: refused %s from %s:%d", request.filename, *peer)
                self._reply_error(peer, ERR_ILLEGAL)
                return
            self._active.add(peer)
        try:
            source = self._open(request.filename, peer[0])
        except Exception as exc:  # Refused, an unreadable file, a failing generator
            with self._lock:
                self._active.discard(peer)
            code = exc.code if isinstance(exc, Refused) else ERR_ACCESS
            if isinstance(exc, Refused) and code != ERR_ACCESS:
                log.info("refused %r to %s: %s", request.filename, peer[0], exc)
            elif isinstance(exc, Refused):
                log.warning("refused %r to %s: %s", request.filename, peer[0], exc)
            else:
                log.exception("cannot open %r for %s", request.filename, peer[0])
            self._reply_error(peer, code)
            metrics.count("slate_tftp_requests_total", result="refused")
            return
        metrics.count("slate_tftp_requests_total", result="served")
        transfer = Transfer(self, request, source, peer)
        threading.Thread(target=transfer.run, name=f"tftp-{peer[0]}", daemon=True).start()

    def _open(self, name: str, client_ip: str) -> Source:
        rel = safe_relpath(name)
        if self.generator is not None:
            content = self.generator(rel, client_ip)
            if isinstance(content, Path):
                return Source.from_file(content)
            if content is not None:
                return Source.from_bytes(content)
        path = resolve(self.root, name)
        if not path.is_file():
            raise Refused(ERR_NOT_FOUND, "no such file")
        return Source.from_file(path)

    def _reply_error(self, peer: tuple[str, int], code: int) -> None:
        if self._sock is not None:
            self._sock.sendto(error_packet(code), peer)

    def _done(self, peer: tuple[str, int]) -> None:
        with self._lock:
            self._active.discard(peer)


class Source:
    """The bytes of one transfer: a file (read with pread) or generated content."""

    def __init__(self, size: int, fd: int | None = None, content: bytes = b"") -> None:
        self.size = size
        self.fd = fd
        self.content = content

    @classmethod
    def from_file(cls, path: Path) -> Source:
        fd = os.open(path, os.O_RDONLY)
        return cls(os.fstat(fd).st_size, fd=fd)

    @classmethod
    def from_bytes(cls, content: bytes) -> Source:
        return cls(len(content), content=content)

    def read(self, offset: int, length: int) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, length, offset)
        return self.content[offset : offset + length]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Transfer:
    """One download, lock-step: send a block, wait for its ACK, retransmit on timeout."""

    def __init__(
        self, server: TftpServer, request: Request, source: Source, peer: tuple[str, int]
    ) -> None:
        self.server = server
        self.request = request
        self.source = source
        self.peer = peer
        self.options = negotiate(request.options, source.size)
        self.blksize = int(self.options.get("blksize", DEFAULT_BLKSIZE))
        self.timeout = float(self.options.get("timeout", server.timeout))

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.server.address, 0))
            sock.settimeout(self.timeout)
            if self._send_all(sock):
                log.info(
                    "sent %s (%d bytes, blksize %d) to %s",
                    self.request.filename,
                    self.source.size,
                    self.blksize,
                    self.peer[0],
                )
        except Exception:
            log.exception("transfer of %s to %s failed", self.request.filename, self.peer[0])
        finally:
            sock.close()
            self.source.close()
            self.server._done(self.peer)

    def _send_all(self, sock: socket.socket) -> bool:
        if self.options and not self._exchange(sock, oack_packet(self.options), 0):
            return False
        block, offset = 1, 0
        while True:
            data = self.source.read(offset, self.blksize)
            packet = struct.pack("!HH", OP_DATA, block & 0xFFFF) + data
            if not self._exchange(sock, packet, block & 0xFFFF):
                return False
            if len(data) < self.blksize:
                return True
            block += 1
            offset += len(data)

    def _exchange(self, sock: socket.socket, packet: bytes, block: int) -> bool:
        """Send ``packet`` until the peer ACKs ``block``; False if it gave up or erred."""
        for _attempt in range(self.server.retries):
            sock.sendto(packet, self.peer)
            while True:
                try:
                    data, peer = sock.recvfrom(65536)
                except TimeoutError:
                    break  # retransmit
                if peer != self.peer:
                    sock.sendto(error_packet(ERR_UNKNOWN_TID), peer)
                    continue
                if len(data) >= 4:
                    opcode, number = struct.unpack("!HH", data[:4])
                    if opcode == OP_ACK and number == block:
                        return True
                    if opcode == OP_ERROR:
                        # PXE ROMs end a tsize probe this way: not a failure of ours.
                        log.info(
                            "%s ended %s (error %d)", self.peer[0], self.request.filename, number
                        )
                        return False
                # A duplicate ACK of an earlier block: ignore (no Sorcerer's Apprentice).
            if self.server._stopping.is_set():
                return False
        log.warning("gave up sending %s to %s: no ACK", self.request.filename, self.peer[0])
        return False
