"""The appliance's own state, backed up to its area of the library (issue 30: "the
appliance itself is disposable").

What a replacement needs and the library does not hold: a consistent snapshot of the
database (``sqlite3.Connection.backup``, never a copy of a live file: hosts, rooms,
schedules, rules, users, the audit log, the libraries and their pins), the district
signing key (a restored publisher goes on publishing with the same key), the libraries'
credentials files, the job, console and TLS secrets, and the versions' marks
(``.candidate``/``.keep``: a fetched version would otherwise come back promoted and
unkept).  Not the image store: its versions come back from the library.

The files are packed (tar), compressed (zstd) and sealed with AES-256-GCM under a 32-byte
key the technician keeps (``slate library state-key`` makes it once and prints it once;
it stays 0600 in ``district/state.key`` so the daily backup can run).  An object::

    slate-state 1\\n
    {"cipher": "AES-256-GCM", "created": "...", "key": "SHA256:...", "nonce": "..."}\\n
    ciphertext and tag

The two header lines are authenticated with it (GCM's associated data), so no byte of
the object can change unnoticed; the header names the key's fingerprint, so a wrong key
is refused by name before anything is decrypted.  Objects are
``state/<UTC time>.slate-state`` in the area; the newest :data:`KEEP` are kept."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
import socket
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.config import Layout
from appliance.errors import IntegrityError, NotFound, UsageError
from appliance.formats.names import is_version
from appliance.secrets_file import read_or_create, write_secret

KEY_SIZE = 32
NONCE_SIZE = 12
MAGIC = b"slate-state 1\n"
PREFIX = "state/"
SUFFIX = ".slate-state"
KEEP = 7  # backups kept in the area (daily: a week)
FORMAT = 1
_STAMP = "%Y%m%dT%H%M%SZ"
_HEADER_MAX = 1024
_FILE_MAX = 1 << 30  # a member larger than this is not a state file

# The files of the data directory a replacement needs, by their name in the backup
# (which is their path under the data directory).  Anything else in an archive is refused.
DB = "slate.db"
META = "state.json"
SECRETS = (
    "district-ed25519.key",
    "job-secret",
    "console-secret",
    *Layout.CONSOLE_TLS,
    *Layout.CLIENT_TLS,
)
_CREDENTIALS = re.compile(r"^district/[a-z][a-z0-9-]{0,31}\.credentials$")
_MARK = re.compile(r"^store/manifests/([a-z0-9][a-z0-9._-]{0,63})/([^/]+)\.(candidate|keep)$")


# -- the key ------------------------------------------------------------------------------
def key_path(layout: Layout) -> Path:
    """The state key (0600), kept so the daily backup can run without a technician."""
    return layout.district / "state.key"


def fingerprint(key: bytes) -> str:
    """``SHA256:…`` naming a state key (a hash of it: it tells nothing of the key)."""
    digest = hashlib.sha256(b"slate state key\0" + key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def format_key(key: bytes) -> str:
    """The key as a technician writes it down: base32 in groups of four."""
    text = base64.b32encode(key).decode().rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_key(text: str) -> bytes:
    """A key as :func:`format_key` wrote it (dashes, spaces and case do not matter)."""
    compact = re.sub(r"[\s-]", "", text).upper()
    compact = compact.replace("0", "O").replace("1", "I").replace("8", "B")  # misread
    try:
        key = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise UsageError(
            "that is not a state key (52 letters and digits 2-7, in groups of four)",
            hint="the key `slate library state-key` printed when it was made, e.g."
            " ABCD-EFGH-…; --key-file FILE reads it from a file",
        )
    return key


def own_key(layout: Layout) -> bytes | None:
    """This appliance's state key, or None when `slate library state-key` made none."""
    try:
        return parse_key(key_path(layout).read_text())
    except FileNotFoundError:
        return None


def create_key(layout: Layout) -> tuple[bytes, bool]:
    """(the key, whether it was made now): made once, kept 0600."""
    path = key_path(layout)
    existed = path.exists()
    layout.district.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = read_or_create(path, lambda: format_key(secrets.token_bytes(KEY_SIZE)) + "\n")
    return parse_key(text.decode()), not existed


def keep_key(layout: Layout, key: bytes) -> None:
    layout.district.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(key_path(layout), format_key(key) + "\n")


# -- sealing ------------------------------------------------------------------------------
def seal(key: bytes, plaintext: bytes, created: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_SIZE)
    header = {"cipher": "AES-256-GCM", "created": created, "key": fingerprint(key),
              "nonce": nonce.hex()}  # fmt: skip
    head = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    return head + AESGCM(key).encrypt(nonce, plaintext, head)


def header(blob: bytes, what: str = "this object") -> tuple[dict[str, Any], int]:
    """The backup's header and where its ciphertext starts."""
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
    fields: Any = None
    if blob.startswith(MAGIC) and end > 0:
        try:
            fields = json.loads(blob[len(MAGIC) : end])
        except ValueError:
            fields = None
    if not isinstance(fields, dict) or not isinstance(fields.get("key"), str):
        raise IntegrityError(
            f"{what} is not a Slate state backup (or its header is damaged)",
            hint="state backups are the state/*.slate-state objects `slate library"
            " backup-state` writes",
        )
    return fields, end + 1


def unseal(key: bytes, blob: bytes, what: str = "this backup") -> bytes:
    """The plaintext; a clear refusal when the key is another, or a byte was changed."""
    fields, start = header(blob, what)
    given = fingerprint(key)
    if fields["key"] != given:
        raise UsageError(
            f"{what} was made with key {fields['key']}, not the one given ({given});"
            " nothing was restored",
            hint="give the key `slate library state-key` printed at the lost appliance"
            f" (its fingerprint is {fields['key']})",
        )
    try:
        nonce = bytes.fromhex(str(fields.get("nonce", "")))
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce")
        return AESGCM(key).decrypt(nonce, blob[start:], blob[:start])
    except (InvalidTag, ValueError):
        raise IntegrityError(
            f"{what} is damaged or was altered: it does not verify under the key"
            f" {given}; nothing was restored",
            hint="restore an older backup (--backup NAME; `slate library restore-appliance"
            " … --list` shows them)",
        ) from None


# -- packing ------------------------------------------------------------------------------
def check_member(name: str) -> bool:
    """Whether ``name`` is a file a state backup may hold (and restore may write)."""
    if name in (DB, META) or name in SECRETS or _CREDENTIALS.match(name):
        return True
    m = _MARK.match(name)
    return bool(m and is_version(m.group(2)))


def pack(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            if not check_member(name):
                raise ValueError(f"{name!r} is not a state file")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o600, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return zstandard.ZstdCompressor(level=10).compress(out.getvalue())


def unpack(data: bytes, what: str = "this backup") -> dict[str, bytes]:
    """The files of a decrypted backup; refused whole if any member is not a state file."""
    damaged = IntegrityError(f"{what} decrypted, but its contents are not a state archive")
    try:
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or not check_member(info.name) or info.size > _FILE_MAX:
                    raise IntegrityError(
                        f"{what} holds {info.name!r}, which is not a state file; nothing"
                        " was restored"
                    )
                member = tar.extractfile(info)
                assert member is not None
                files[info.name] = member.read()
    except (zstandard.ZstdError, tarfile.TarError, EOFError):
        raise damaged from None
    if DB not in files or META not in files:
        raise damaged
    return files


# -- what is backed up --------------------------------------------------------------------
def snapshot_db(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A consistent copy of the database (the backup API, whatever writes meanwhile) as
    bytes, and what it holds (counts, versions, libraries)."""
    src = sqlite3.connect(path, timeout=10)
    dst = sqlite3.connect(":memory:")
    try:
        src.backup(dst)
        facts = db_facts(dst)
        return dst.serialize(), facts
    finally:
        src.close()
        dst.close()


COUNTED = ("hosts", "rooms", "schedules", "users", "libraries", "audit")


def db_facts(conn: sqlite3.Connection) -> dict[str, Any]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
              for t in COUNTED if t in tables}  # fmt: skip
    from appliance.district import libraries
    from appliance.store import index

    versions = index.refs(conn) if "versions" in tables else []
    libs = [lib.name for lib in libraries.all_(conn)] if "libraries" in tables else []
    return {"counts": counts, "versions": versions, "libraries": libs}


def collect(layout: Layout, now: datetime | None = None) -> dict[str, bytes]:
    """The state files of ``layout``'s data directory, by their name in the backup."""
    files: dict[str, bytes] = {}
    snapshot, facts = snapshot_db(layout.db)
    files[DB] = snapshot
    for name in SECRETS:
        path = layout.home / name
        if path.is_file():
            files[name] = path.read_bytes()
    if layout.district.is_dir():
        for path in sorted(layout.district.glob("*.credentials")):
            files[f"district/{path.name}"] = path.read_bytes()
    manifests = layout.store / "manifests"
    if manifests.is_dir():
        for path in sorted(manifests.glob("*/*")):
            name = path.relative_to(layout.home).as_posix()
            if path.is_file() and check_member(name):
                files[name] = path.read_bytes()
    created = (now or datetime.now(UTC)).strftime(_STAMP)
    meta = {"format": FORMAT, "created": created, "hostname": socket.gethostname(), **facts}
    files[META] = json.dumps(meta, indent=1, sort_keys=True).encode()
    return files


@dataclass
class Made:
    """One backup put in an area."""

    url: str
    name: str
    bytes: int
    key: str
    created: str
    facts: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "object": self.name, "bytes": self.bytes, "key": self.key,
                "created": self.created, "removed": self.removed, **self.facts}  # fmt: skip


def make(layout: Layout, key: bytes, now: datetime | None = None) -> tuple[bytes, dict[str, Any]]:
    """A sealed backup of ``layout``'s state and its facts (for the report)."""
    now = now or datetime.now(UTC)
    files = collect(layout, now)
    meta = json.loads(files[META])
    return seal(key, pack(files), meta["created"]), meta


# -- in the area --------------------------------------------------------------------------
def object_name(created: str) -> str:
    return f"{PREFIX}{created}{SUFFIX}"


def backups(bucket: Any) -> list[tuple[str, int]]:
    """(object, size) of the state backups in the area, oldest first."""
    found = []
    for key, size, _etag, _written in bucket.objects(PREFIX):
        stamp = key.removeprefix(PREFIX).removesuffix(SUFFIX)
        if key.endswith(SUFFIX) and "/" not in stamp and _parse_stamp(stamp) is not None:
            found.append((key, size))
    return sorted(found)


def created_of(name: str) -> datetime | None:
    return _parse_stamp(name.removeprefix(PREFIX).removesuffix(SUFFIX))


def _parse_stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def put(bucket: Any, blob: bytes, created: str, keep: int = KEEP) -> tuple[str, list[str]]:
    """Put ``blob`` in the area and remove all but the newest ``keep`` backups there;
    (its object name, the names removed)."""
    name = object_name(created)
    bucket.put(name, blob)
    older = [k for k, _ in backups(bucket)][: -max(keep, 1)]
    for key in older:
        bucket.delete(key)
    return name, older


def backup(layout: Layout, bucket: Any, key: bytes, now: datetime | None = None) -> Made:
    """Back up the state now into ``bucket`` (an area)."""
    blob, meta = make(layout, key, now)
    name, removed = put(bucket, blob, meta["created"])
    facts = {k: meta[k] for k in ("counts", "versions", "libraries", "hostname")}
    return Made(bucket.lib.url, name, len(blob), fingerprint(key), meta["created"], facts,
                removed)  # fmt: skip


def newest(bucket: Any, name: str = "") -> str:
    """The object to restore: ``name`` (an object, or just its time stamp), or the newest."""
    found = [k for k, _ in backups(bucket)]
    if name:
        wanted = name if name.startswith(PREFIX) else object_name(name.removesuffix(SUFFIX))
        if wanted not in found:
            raise NotFound(
                f"no state backup {name} in {bucket.lib.url}",
                hint="`slate library restore-appliance … --list` shows the backups there",
            )
        return wanted
    if not found:
        raise NotFound(
            f"no state backup in {bucket.lib.url}/{PREFIX}",
            hint="is it the lost appliance's area?  (`slate library list` showed it as AREA;"
            " backups are made daily once `slate library state-key` made a key)",
        )
    return found[-1]


# -- restore ------------------------------------------------------------------------------
def existing_state(layout: Layout) -> list[str]:
    """What in ``layout`` a restore would overwrite (empty: a fresh data directory)."""
    found = []
    if layout.district_key.exists():
        found.append(layout.district_key.name)
    if any((layout.store / "manifests").glob("*/*.json")):
        found.append("store/manifests")
    if layout.db.exists():
        conn = sqlite3.connect(layout.db, timeout=10)
        try:
            counts = db_facts(conn)["counts"]
            found += [f"{n} {t}" for t, n in counts.items() if n and t != "audit"]
        except sqlite3.Error:
            found.append(f"{DB}, unreadable")
        finally:
            conn.close()
    return found


def write(layout: Layout, files: dict[str, bytes]) -> list[str]:
    """Put the restored files in place (the database last); their names."""
    for extra in ("-wal", "-shm"):  # an empty db's journal must not meet the restored one
        (layout.home / f"{DB}{extra}").unlink(missing_ok=True)
    written = []
    for name in sorted(files, key=lambda n: (n == DB, n)):
        if name == META:
            continue
        assert check_member(name), name
        path = layout.home / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        public = name == DB or name.startswith("store/")
        write_secret(path, files[name], mode=0o644 if public else 0o600)
        written.append(name)
    return written


def meta_of(files: dict[str, bytes]) -> dict[str, Any]:
    try:
        meta = json.loads(files[META])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise IntegrityError("the backup's state.json is not readable")
    return meta


def library_versions(bucket: Any) -> Iterator[tuple[str, str]]:
    """(image, version) of every version published in a library (manifest present)."""
    for key in bucket.keys("manifests/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):
            version = parts[2].removesuffix(".json")
            if is_version(version):
                yield parts[1], version
