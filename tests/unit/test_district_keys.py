"""Manifest signatures and the libraries table (issue 30): pure, no network."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance import db
from appliance.config import Layout
from appliance.district import keys, libraries
from appliance.errors import Conflict, IntegrityError, NotFound, UsageError

MANIFEST = b'{"format": 1, "image": "win11", "version": "20261207T120000Z"}\n'


def test_the_key_is_made_once_0600_and_signs_what_it_verifies(home: Path) -> None:
    layout = Layout(home)
    key = keys.own_key(layout)
    assert stat.S_IMODE(layout.district_key.stat().st_mode) == 0o600
    assert keys.public_hex(keys.own_key(layout)) == keys.public_hex(key)  # stable
    public = bytes.fromhex(keys.public_hex(key))
    keys.verify(public, MANIFEST, keys.sign(key, MANIFEST), "win11@20261207T120000Z")


def test_an_altered_or_unsigned_manifest_is_refused_naming_the_version(home: Path) -> None:
    key = keys.own_key(Layout(home))
    public = bytes.fromhex(keys.public_hex(key))
    signature = keys.sign(key, MANIFEST)
    altered = MANIFEST.replace(b"win11", b"win12")
    with pytest.raises(IntegrityError, match="win11@V1: the manifest's signature does not verify"):
        keys.verify(public, altered, signature, "win11@V1")
    with pytest.raises(IntegrityError, match="win11@V1: the manifest's signature is missing"):
        keys.verify(public, MANIFEST, b"", "win11@V1")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(IntegrityError, match="does not verify"):
        keys.verify(public, MANIFEST, flipped, "win11@V1")
    other = keys.Ed25519PrivateKey.generate()
    with pytest.raises(IntegrityError, match="does not verify"):
        keys.verify(public, MANIFEST, other.sign(MANIFEST), "win11@V1")


def test_fingerprints_look_like_ssh_and_bad_keys_say_where_to_get_one() -> None:
    zero = "00" * 32
    fp = keys.fingerprint(zero)
    # SHA-256 of 32 zero bytes, base64 without padding, as ssh-keygen -l prints
    assert fp == "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
    assert keys.fingerprint(bytes(32)) == fp
    for bad in ("", "zz" * 32, "00" * 31, "00" * 33):
        with pytest.raises(UsageError, match="is not an Ed25519 public key") as info:
            keys.parse_public(bad)
        assert "slate library key" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://library", "library", ""),
        ("s3://library/", "library", ""),
        ("s3://library/district/images", "library", "district/images"),
        ("s3://my.bucket-1/p/", "my.bucket-1", "p"),
    ],
)
def test_s3_urls(url: str, bucket: str, prefix: str) -> None:
    assert libraries.parse_url(url) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    ["library", "http://library/x", "s3://", "s3://A", "s3://ab", "s3://b/x//y", "s3://b/../x"],
)
def test_bad_s3_urls_say_how_to_write_one(url: str) -> None:
    with pytest.raises(UsageError):
        libraries.parse_url(url)


def test_libraries_are_kept_with_their_credentials_0600_and_forgotten(home: Path) -> None:
    layout = Layout(home)
    conn = db.connect(layout.db)
    creds = b"[default]\naws_access_key_id = AK\naws_secret_access_key = SECRET\n"
    lib = libraries.add(conn, layout, "district", "s3://library/d", endpoint="http://s3:8333",
                        credentials=creds, actor="t")  # fmt: skip
    assert (lib.bucket, lib.prefix, lib.publisher_key) == ("library", "d", "")
    assert lib.key("chunks/ab/x.zst") == "d/chunks/ab/x.zst"
    path = libraries.credentials_path(layout, "district")
    assert path.read_bytes() == creds and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.district.stat().st_mode) == 0o700
    assert "SECRET" not in str(lib.to_dict()) and "SECRET" not in str(lib)
    assert [x.name for x in libraries.all_(conn)] == ["district"]
    with pytest.raises(Conflict, match="library district exists"):
        libraries.add(conn, layout, "district", "s3://library", actor="t")
    with pytest.raises(UsageError, match="not a library name"):
        libraries.add(conn, layout, "Bad Name", "s3://library", actor="t")
    with pytest.raises(UsageError, match="not an http"):
        libraries.add(conn, layout, "other", "s3://library", endpoint="s3.example", actor="t")
    libraries.remove(conn, layout, "district", actor="t")
    assert not path.exists()
    with pytest.raises(NotFound, match="no library district"):
        libraries.get(conn, "district")
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["library.add", "library.rm"]
