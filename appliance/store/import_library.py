"""``slate image import-library DIR``: every FOG or Clonezilla image of a folder (FOG's
``/images``, Clonezilla's ``/home/partimag``), one new version each.

:func:`scan` decides before anything is imported: which immediate subdirectories are
images (by :func:`~appliance.store.detect.identify_dir`, on their content), under which
image name (the folder's name made valid), and why every other entry is skipped; two
folders that would become the same image are refused.  :func:`import_entry` then
imports one of them with :func:`~appliance.store.importer.import_image` — a failure
leaves no version and is recorded on the entry, so the caller goes on with the next.
An image already imported gets a new version anyway (its chunks are already stored).
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import SlateError, UsageError
from appliance.formats.manifest import MIB
from appliance.formats.names import is_image_name
from appliance.store.detect import identify_dir
from appliance.store.importer import Progress, import_image
from appliance.store.library import Store

_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
MAX_NAME = 64


@dataclass
class Entry:
    """One entry of the folder: an image to import, or something skipped (and why)."""

    folder: Path
    image: str | None = None
    fmt: str | None = None  # "fog" | "clonezilla"
    what: str | None = None  # "FOG image directory"
    renamed: bool = False  # the image name is not the folder's name
    result: str = "skipped"  # "skipped" | "planned" | "imported" | "failed"
    reason: str | None = None
    version: str | None = None
    found: list[str] = field(default_factory=list)  # what each disk was recognized as
    mib: float | None = None  # logical size of the new version
    added_mib: float | None = None  # compressed bytes it added to the store
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "image": self.image,
            "format": self.fmt,
            "what": self.what,
            "renamed": self.renamed,
            "result": self.result,
            "reason": self.reason,
            "version": self.version,
            "found": list(self.found),
            "mib": self.mib,
            "added_mib": self.added_mib,
            "seconds": self.seconds,
        }


def image_name(folder: str, prefix: str = "") -> str:
    """``prefix`` + the folder's name made a valid image name: accents dropped, every
    run of other characters one ``-``, ``..`` one ``.``, at most 64 characters in all;
    "" when nothing usable is left."""
    text = unicodedata.normalize("NFKD", folder).encode("ascii", "ignore").decode()
    text = _DOTS.sub(".", _BAD.sub("-", text))
    if not prefix:
        text = text.lstrip("._-")
    if not text.strip("._-"):
        return ""
    name = (prefix + text)[:MAX_NAME]
    return name if is_image_name(name) else ""


def scan(root: Path, prefix: str = "", only: Sequence[str] = ()) -> list[Entry]:
    """The entries of ``root`` in name order, each planned or skipped with its reason.
    ``only``: folder or image names to keep (the others are left out); an ``only``
    that matches nothing, or two folders mapping to one image name, is refused."""
    if prefix and not is_image_name(prefix[:MAX_NAME]):
        raise UsageError(f"--prefix {prefix!r} cannot start an image name",
                         hint="use letters, digits, '.', '_' and '-'")  # fmt: skip
    try:
        children = sorted(root.iterdir(), key=lambda p: p.name)
    except FileNotFoundError:
        hint = "give the folder holding the images"
        raise UsageError(f"{root} does not exist", hint=hint) from None
    except NotADirectoryError:
        hint = ("give the folder holding the images (FOG's /images, Clonezilla's"
                " /home/partimag); `slate image import` takes one image")  # fmt: skip
        raise UsageError(f"{root} is not a folder", hint=hint) from None
    entries = [_entry(p, prefix) for p in children]
    if only:
        wanted = set(only)
        unknown = wanted - {e.folder.name for e in entries} - {e.image for e in entries}
        if unknown:
            raise UsageError(
                f"--only {', '.join(sorted(unknown))}: no such folder or image name in {root}",
                hint=f"`slate image import-library {root} --dry-run` lists them",
            )
        entries = [e for e in entries if e.folder.name in wanted or e.image in wanted]
    by_name: dict[str, list[Entry]] = {}
    for e in entries:
        if e.image:
            by_name.setdefault(e.image, []).append(e)
    clashes = [f"{name} ({', '.join(repr(e.folder.name) for e in group)})"
               for name, group in sorted(by_name.items()) if len(group) > 1]  # fmt: skip
    if clashes:
        raise UsageError(
            "two or more folders would become the same image: " + "; ".join(clashes)
            + "; nothing was imported",
            hint="rename one of the folders, or import them apart with --only and --prefix",
        )  # fmt: skip
    return entries


def _entry(path: Path, prefix: str) -> Entry:
    entry = Entry(path)
    try:
        if not path.is_dir():
            entry.reason = "not a folder (`slate image import` takes a single image file)"
            return entry
        found = identify_dir(path)
        names = {p.name for p in path.iterdir()}
    except UsageError as exc:  # encrypted, or neither FOG nor Clonezilla
        entry.reason = (f"encrypted Clonezilla image: {exc.hint}" if "encrypted" in exc.message
                        else "not a FOG or Clonezilla image")  # fmt: skip
        return entry
    except OSError as exc:
        entry.reason = f"cannot be read: {exc.strerror or exc}"
        return entry
    if found.fmt == "clonezilla" and "disk" not in names:
        entry.reason = ("Clonezilla saveparts image (partitions, no disk): not implemented yet;"
                        " import each partclone file with `slate image import`")  # fmt: skip
        return entry
    name = image_name(path.name, prefix)
    if not name:
        entry.reason = "its name has no letter or digit to make an image name of; rename it"
        return entry
    entry.image, entry.fmt, entry.result = name, found.fmt, "planned"
    entry.renamed = name != prefix + path.name
    entry.what = found.what
    return entry


def import_entry(
    store: Store,
    entry: Entry,
    *,
    progress: Callable[[int], Progress] | None = None,
    found: Callable[[str], None] | None = None,
    **kw: Any,
) -> None:
    """Import one planned entry as a new version of ``entry.image``; the outcome
    (version, sizes, time, or the failure's message) is written on the entry."""
    start = time.monotonic()

    def seen(_path: Path, what: str) -> None:
        entry.found.append(what)
        if found:
            found(what)

    try:
        result = import_image(store, [entry.folder], entry.image or "", progress=progress,
                              fmt=entry.fmt or "auto", found=seen, **kw)  # fmt: skip
    except SlateError as exc:
        entry.result, entry.reason = "failed", exc.message
    except Exception as exc:  # an unforeseen error in one image does not stop the others
        entry.result, entry.reason = "failed", f"{type(exc).__name__}: {exc}"
    else:
        m = result.manifest
        entry.result, entry.reason, entry.version = "imported", None, m.version
        entry.mib = round(m.logical_size / MIB, 1)
        entry.added_mib = round(result.new_bytes / MIB, 1)
    entry.seconds = round(time.monotonic() - start, 1)
