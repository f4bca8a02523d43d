"""Other tools' images as import sources: a partclone image file (one partition;
uncompressed, gzip/pigz, zstd, xz or lz4; split into ``.aa .ab …`` or ``.000 .001 …``
parts) and FOG's image directory (``/images/NAME``).

Each is unpacked into a sparse raw file in the store's ``tmp`` (named after the import's
session, so gc knows whose it is): only the blocks partclone saved are written, every
checksum is verified before a chunk is stored, and the source says that everything
else is ``unused`` (never sent, never written on restore).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from appliance.errors import IntegrityError, SlateError, UsageError
from appliance.formats import partclone
from appliance.store.detect import compression

_SPLIT = re.compile(r"^(?P<stem>.*)\.(?P<suffix>[a-z]{2,3}|\d{3})$")


# ----------------------------------------------------------------------------- streams


def split_parts(path: Path) -> list[Path]:
    """``path`` and its sibling parts when it is the first part of a split image
    (``x.aa`` → ``x.aa, x.ab …``; ``x.aaa`` → ``x.aab …``; ``x.000`` → ``x.001 …``); a gap
    is an error."""
    m = _SPLIT.match(path.name)
    if not m or m["suffix"] not in ("aa", "aaa", "000"):
        return [path]
    stem, style = m["stem"], _style(m["suffix"])
    found = {}
    for sib in path.parent.iterdir():
        s = _SPLIT.match(sib.name)
        if s and s["stem"] == stem and _style(s["suffix"]) == style:
            found[_part_index(s["suffix"])] = sib
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        name = f"{stem}.{_part_suffix(missing[0], style)}"
        raise IntegrityError(
            f"{path.parent / name} is missing: the split image {path.parent / stem} has"
            f" {len(found)} of at least {max(found) + 1} parts",
            hint="copy every part of the image (.aa, .ab, … or .000, .001, …)",
        )
    return [found[i] for i in range(len(found))]


def _style(suffix: str) -> str:
    return "digits" if suffix.isdigit() else f"letters{len(suffix)}"


def _part_index(suffix: str) -> int:
    if suffix.isdigit():
        return int(suffix)
    index = 0
    for c in suffix:
        index = index * 26 + ord(c) - 97
    return index


def _part_suffix(index: int, style: str) -> str:
    if style == "digits":
        return f"{index:03d}"
    letters = ""
    for _ in range(int(style[-1])):
        index, c = divmod(index, 26)
        letters = chr(97 + c) + letters
    return letters


class _Joined(io.RawIOBase):
    """The parts of a split file read as one stream."""

    def __init__(self, parts: list[Path]) -> None:
        self.parts = list(parts)
        self.fh: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self.fh is None:
                if not self.parts:
                    return 0
                self.fh = open(self.parts.pop(0), "rb")  # noqa: SIM115 - closed in close()
            n = self.fh.readinto(buf)
            if n:
                return n
            self.fh.close()
            self.fh = None

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        super().close()


@contextlib.contextmanager
def open_stream(parts: list[Path]) -> Iterator[tuple[BinaryIO, str]]:
    """The decompressed bytes of a (split, compressed) file, and its compression."""
    with open(parts[0], "rb") as fh:
        comp = compression(fh.read(8))
    joined = io.BufferedReader(_Joined(parts), 1 << 20)
    try:
        if comp == "gzip":
            yield cast(BinaryIO, gzip.GzipFile(fileobj=joined)), "gzip"
        elif comp == "xz":
            with lzma.LZMAFile(joined) as xz:
                yield cast(BinaryIO, xz), "xz"
        elif comp == "zstd":
            dctx = zstandard.ZstdDecompressor()
            yield cast(BinaryIO, dctx.stream_reader(joined, read_across_frames=True)), "zstd"
        elif comp == "lz4":
            with _piped(["lz4", "-dc"], joined, parts[0]) as out:
                yield out, "lz4"
        elif comp:
            raise UsageError(f"{parts[0]} is {comp}-compressed, which Slate does not read",
                             hint="decompress it and import the result")  # fmt: skip
        else:
            yield cast(BinaryIO, joined), ""
    finally:
        joined.close()


@contextlib.contextmanager
def _piped(cmd: list[str], src: BinaryIO, name: Path) -> Iterator[BinaryIO]:
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
    except FileNotFoundError:
        raise SlateError(f"cannot read {name}: {cmd[0]} is not installed",
                         hint=f"install {cmd[0]} (apt-get install {cmd[0]})") from None  # fmt: skip
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    assert stdin and stdout and stderr

    def feed() -> None:
        try:
            shutil.copyfileobj(src, stdin)
        except OSError:
            pass  # the reader stopped early; it reports why
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        yield cast(BinaryIO, stdout)
        stdout.read()
        proc.wait()
        if proc.returncode:
            err = stderr.read().decode(errors="replace").strip()
            raise IntegrityError(f"{name} is truncated or damaged: {cmd[0]}: {err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        t.join()
        stdout.close()
        stderr.close()


def peek_partclone(path: Path) -> partclone.Header | None:
    """The partclone header of a (compressed, split) file, or None if it is not one."""
    parts = split_parts(path)
    with open_stream(parts) as (stream, _comp):
        try:
            head = stream.read(partclone.HEADER_SIZE)
        except Exception:  # damaged compressed data: not recognized here
            return None
    if not partclone.is_partclone(head):
        return None
    return partclone.parse_header(head, str(path))


# ----------------------------------------------------------------------------- scratch


@dataclass
class Scratch:
    """A sparse raw file being assembled in the store's tmp, and what holds data."""

    path: Path
    fd: int
    used: list[tuple[int, int]] = field(default_factory=list)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def mark_written(self) -> None:
        """What other tools wrote into the file (sfdisk, sgdisk, dd: the MBR, the EBRs
        of logical partitions, both GPTs) is data: the file's data extents."""
        self.used.extend(data_extents(self.fd, os.fstat(self.fd).st_size))


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """Data regions of a sparse file (SEEK_DATA/SEEK_HOLE), or the whole file."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here on
                return
            yield (pos, size - pos)  # filesystem without SEEK_DATA: read it all
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield (start, end - start)
        pos = end


@contextlib.contextmanager
def scratch_file(scratch: Path, tag: str, kind: str, size: int) -> Iterator[Scratch]:
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"{tag}.{kind}-") as tmp:
        path = Path(tmp) / "disk.raw"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            yield Scratch(path, fd)
        finally:
            os.close(fd)


def unpack_partclone(parts: list[Path], out: Scratch, base: int, limit: int) -> partclone.Header:
    """Write the used blocks of one partclone image at ``base`` of ``out``; ``limit``
    is the partition's size there (the image must fit it)."""
    name = str(parts[0]) if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"
    with open_stream(parts) as (stream, _comp):
        hdr = partclone.read_header(stream, name)
        if hdr.device_size > limit:
            raise IntegrityError(
                f"{name} does not match the partition table: it holds a"
                f" {hdr.device_size}-byte partition, the table gives {limit} bytes",
                hint="the image's files are from different captures; copy the image again",
            )
        _, used = partclone.read_image(stream, name, lambda o, d: out.write(base + o, d), hdr)
    out.used.extend((base + o, n) for o, n in used)
    return hdr


def write_swap(out: Scratch, base: int, limit: int, name: Path, uuid: str = "",
               label: str = "") -> None:  # fmt: skip
    """Recreate a swap partition's signature with its saved UUID and label, as FOS and
    Clonezilla do on restore (``mkswap -U … -L …``): only the first page is written."""
    cmd = ["mkswap", "-q", *(["-U", uuid] if uuid else []), *(["-L", label] if label else [])]
    with tempfile.NamedTemporaryFile(dir=out.path.parent, prefix="swap-") as tmp:
        tmp.truncate(limit)
        tmp.flush()
        try:
            proc = subprocess.run([*cmd, tmp.name], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise SlateError("mkswap is not installed", hint="apt-get install util-linux") from None
        if proc.returncode:
            raise IntegrityError(f"{name}: mkswap refused it: {proc.stderr.strip()}")
        page = tmp.read(65536)
    at = page.find(b"SWAPSPACE2")  # the signature ends the first page
    page = page[: at + 10] if at >= 0 else page
    out.write(base, page)
    out.used.append((base, len(page)))


# ----------------------------------------------------------------------------- sources


@dataclass
class Disk:
    """One disk assembled from foreign files in a scratch file: what the importer reads
    (``used``: the ranges written; everything else is unused)."""

    size: int
    scratch: Scratch
    what: str


@contextlib.contextmanager
def partclone_disk(path: Path, scratch: Path, tag: str) -> Iterator[Disk]:
    """One partclone image file (maybe compressed and split) as a one-partition disk."""
    parts = split_parts(path)
    with open_stream(parts) as (stream, comp):
        hdr = partclone.read_header(stream, str(path))
    with scratch_file(scratch, tag, "partclone", hdr.device_size) as out:
        unpack_partclone(parts, out, 0, hdr.device_size)
        what = (
            f"partclone image ({hdr.fs}, {hdr.used_blocks} of {hdr.total_blocks} blocks"
            f" of {hdr.block_size} bytes used{f', {comp}' if comp else ''}"
            f"{f', {len(parts)} parts' if len(parts) > 1 else ''})"
        )
        yield Disk(hdr.device_size, out, what)
