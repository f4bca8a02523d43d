"""A TCP relay from the host's loopback into a lab namespace (for the web console).

The lab's appliance listens only inside its network namespace, so no boot service ever
sees a host interface.  To let a person on the host open the console, this process
binds ``127.0.0.1:PORT`` in the namespace it was started in (the host's), *then* moves
itself into the lab namespace (``setns``): sockets made before the move stay on the
host's loopback, connections made after it reach the appliance inside the lab::

    python -m appliance.lab.forward --listen 127.0.0.1:8080 --netns sl1234-srv \\
        --to 10.77.0.1:8080
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Move this process (all later sockets) into network namespace ``name``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy one direction; pass an end-of-stream on as a half close (HTTP needs it)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (dst, src):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def listen(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(64)
    return sock


def relay(sock: socket.socket, target: tuple[str, int]) -> None:
    """Accept forever on ``sock`` and relay each connection to ``target``."""
    while True:
        client, _ = sock.accept()
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.lab.forward")
    parser.add_argument("--listen", required=True, type=_hostport, help="HOST:PORT on the host")
    parser.add_argument("--netns", required=True, help="namespace the target lives in")
    parser.add_argument("--to", required=True, type=_hostport, help="HOST:PORT in the namespace")
    parser.add_argument("--ready", type=Path, help="file to create once listening")
    args = parser.parse_args(argv)
    sock = listen(args.listen)
    enter_netns(args.netns)
    if args.ready:
        args.ready.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    relay(sock, args.to)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
