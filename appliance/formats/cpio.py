"""A reproducible newc cpio writer: sorted paths, inode numbers in order, owner root,
one fixed mtime, no hard links (each link is written as a file) — so the same tree
gives the same bytes on every build."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Node:
    """An entry that is not in the tree (e.g. /dev/console before devtmpfs exists)."""

    path: str
    mode: int
    rdev: tuple[int, int] = (0, 0)


class CpioWriter:
    def __init__(self, out: BinaryIO, mtime: int) -> None:
        self.out = out
        self.mtime = mtime
        self.ino = 0

    def entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self.ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0, *rdev, len(encoded), 0)
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.out.write(encoded)
        self._pad(110 + len(encoded))
        self.out.write(data)
        self._pad(len(data))

    def _pad(self, n: int) -> None:
        self.out.write(b"\0" * (-n % 4))

    def add_trees(
        self, roots: Sequence[Path], extra: tuple[Node, ...] = (), exclude: Sequence[str] = ()
    ) -> None:
        """Every file under ``roots`` plus ``extra`` nodes, in byte order of their names.
        A later root overrides an earlier one's entry of the same name (an overlay), so
        a cached tree is packed as it is, without copying it."""
        where: dict[str, Path] = {}
        for root in roots:
            where.update((name, root) for name in _walk(root))
        for name in exclude:
            where.pop(name, None)
        nodes = {n.path: n for n in extra}
        for name in sorted(set(where) | set(nodes), key=lambda s: s.encode()):
            if name in nodes:
                node = nodes[name]
                self.entry(name, node.mode, rdev=node.rdev)
                continue
            path = where[name] / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                self.entry(name, st.st_mode, os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                self.entry(name, st.st_mode, path.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                self.entry(name, st.st_mode)
            # Device nodes, fifos and sockets of the build tree are never packed (nor
            # read: reading dev/zero would never end); devtmpfs provides /dev at boot.

    def finish(self) -> None:
        self.entry(TRAILER, 0)
        self._pad(0)


def _walk(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            yield name if rel == "." else f"{rel}/{name}"
