"""The appliance's state backup (issue 30): the key, sealing, packing, and what is
collected from a data directory.  Pure: no network (the bucket is in
tests/interop/test_district_state.py)."""

from __future__ import annotations

import io
import json
import sqlite3
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from appliance import db
from appliance.config import Layout
from appliance.district import keys, libraries, statebackup
from appliance.errors import IntegrityError, UsageError
from appliance.machines.inventory import Inventory

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
WHEN = datetime(2026, 12, 7, 2, 0, 0, tzinfo=UTC)


def test_the_key_is_written_down_in_groups_and_read_back_forgivingly() -> None:
    text = statebackup.format_key(KEY)
    assert text == "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQT-CQKR-MFYY-DENB-WHA5-DYPQ"
    assert statebackup.parse_key(text) == KEY
    assert statebackup.parse_key(" " + text.lower().replace("-", " ") + "\n") == KEY
    assert statebackup.parse_key(text.replace("O", "0")) == KEY  # 0 is misread O
    with pytest.raises(UsageError, match="that is not a state key"):
        statebackup.parse_key(text[:-4])
    assert statebackup.fingerprint(KEY) == "SHA256:O+iLiWAlkHv6EbumFsYuT9VyEuwfZZzAEyNKWELGnGk"


def test_state_key_is_made_once_0600(home: Path) -> None:
    layout = Layout(home)
    assert statebackup.own_key(layout) is None
    key, made = statebackup.create_key(layout)
    assert made and len(key) == 32
    assert stat.S_IMODE(statebackup.key_path(layout).stat().st_mode) == 0o600
    again, made = statebackup.create_key(layout)
    assert (again, made) == (key, False)
    assert statebackup.own_key(layout) == key


def test_sealed_opens_only_with_its_key_and_every_flipped_byte_is_refused() -> None:
    blob = statebackup.seal(KEY, b"the state", "20261207T020000Z")
    head = blob[: blob.index(b"\n", len(statebackup.MAGIC)) + 1]
    assert head.startswith(b"slate-state 1\n{")
    assert json.loads(head[len(statebackup.MAGIC) :])["key"] == statebackup.fingerprint(KEY)
    assert statebackup.unseal(KEY, blob) == b"the state"
    with pytest.raises(UsageError) as wrong:
        statebackup.unseal(OTHER, blob, "the backup X")
    assert wrong.value.message == (
        "the backup X was made with key SHA256:O+iLiWAlkHv6EbumFsYuT9VyEuwfZZzAEyNKWELGnGk,"
        " not the one given (SHA256:5LY62Is5AESVQrNxnuC0krvBpQ6rQpqBa0+vuVNpC4A);"
        " nothing was restored"
    )
    # One flipped byte anywhere after the fingerprint: in the header (created, nonce)
    # or the ciphertext and its tag.
    start = blob.index(b'"nonce"')
    for at in (blob.index(b"20261207"), start + 12, len(head), len(head) + 20, len(blob) - 1):
        bad = bytearray(blob)
        bad[at] ^= 0x01
        with pytest.raises(IntegrityError, match="the backup X is damaged or was altered"):
            statebackup.unseal(KEY, bytes(bad), "the backup X")
    with pytest.raises(IntegrityError, match="is not a Slate state backup"):
        statebackup.unseal(KEY, b"PK\x03\x04 a zip", "the backup X")


def test_pack_unpack_and_a_foreign_member_is_refused() -> None:
    files = {"slate.db": b"db", "state.json": b"{}", "district/district.credentials": b"c",
             "store/manifests/win11/20261207T020000Z.keep": b""}  # fmt: skip
    assert statebackup.unpack(statebackup.pack(files)) == files
    with pytest.raises(ValueError, match=r"'\.\./etc/passwd' is not a state file"):
        statebackup.pack({**files, "../etc/passwd": b"x"})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in {**files, "store/chunks/ab/x.zst": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    evil = zstandard.ZstdCompressor().compress(raw.getvalue())
    with pytest.raises(
        IntegrityError, match=r"holds 'store/chunks/ab/x\.zst', which is not a state"
    ):
        statebackup.unpack(evil)
    with pytest.raises(IntegrityError, match="its contents are not a state archive"):
        statebackup.unpack(b"not zstd")


def test_collect_takes_a_db_snapshot_the_secrets_and_marks_not_the_store(home: Path) -> None:
    layout = Layout(home)
    conn = db.connect(layout.db)
    Inventory(conn).add_host("52:54:00:00:00:01", "pc-01", room="lab-a", actor="t")
    keys.own_key(layout)
    libraries.add(conn, layout, "district", "s3://library", credentials=b"[default]\n",
                  area="s3://school-x", actor="t")  # fmt: skip
    (layout.store / "chunks" / "ab").mkdir(parents=True)
    (layout.store / "chunks" / "ab" / "ab.zst").write_bytes(b"chunk")
    marks = layout.store / "manifests" / "win11"
    marks.mkdir(parents=True)
    (marks / "20261207T020000Z.json").write_text("{}")
    (marks / "20261207T020000Z.candidate").write_text("")
    files = statebackup.collect(layout, WHEN)
    assert sorted(files) == [
        "district-ed25519.key",
        "district/district.credentials",
        "slate.db",
        "state.json",
        "store/manifests/win11/20261207T020000Z.candidate",
    ]
    meta = json.loads(files["state.json"])
    assert meta["created"] == "20261207T020000Z"
    assert meta["counts"]["hosts"] == 1 and meta["counts"]["rooms"] == 1
    assert meta["libraries"] == ["district"]
    snapshot = home.parent / "snapshot.db"
    snapshot.write_bytes(files["slate.db"])
    copy = sqlite3.connect(snapshot)
    copy.row_factory = sqlite3.Row
    assert [h.name for h in Inventory(copy).hosts()] == ["pc-01"]
    copy.close()
    # Written back into an empty data directory: the same files, the secrets 0600.
    fresh = Layout(home.parent / "fresh")
    fresh.home.mkdir()
    assert statebackup.existing_state(fresh) == []
    statebackup.write(fresh, files)
    assert stat.S_IMODE((fresh.home / "district-ed25519.key").stat().st_mode) == 0o600
    assert (fresh.home / "district-ed25519.key").read_bytes() == layout.district_key.read_bytes()
    restored = db.connect(fresh.db)
    assert [h.name for h in Inventory(restored).hosts()] == ["pc-01"]
    assert statebackup.existing_state(fresh) == ["district-ed25519.key", "1 hosts", "1 rooms",
                                                 "1 libraries"]  # fmt: skip


def test_restore_appliance_refuses_a_data_directory_with_state(home: Path, slate) -> None:  # type: ignore[no-untyped-def]
    conn = db.connect(Layout(home).db)
    Inventory(conn).add_host("52:54:00:00:00:01", "pc-01", actor="t")
    done = slate("library", "restore-appliance", "s3://school-x", "--endpoint",
                 "http://127.0.0.1:9", "--key", statebackup.format_key(KEY))  # fmt: skip
    assert done.returncode == 1
    assert "already holds an appliance's state (1 hosts); nothing was restored" in done.stderr
    assert "hint: restore-appliance fills a new, empty data directory" in done.stderr
