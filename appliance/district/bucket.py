"""One library's bucket through boto3, with S3's errors said as Slate's.

Keys under the library's prefix (docs/district.md, "The layout in the bucket"):

* ``chunks/ab/<sha256>.zst`` — the store's own chunk frames, named by the SHA-256 of
  their data, immutable: any consistency model is enough to read one that exists;
* ``manifests/<image>/<version>.json`` and ``.sig`` — a version's manifest and the
  publisher's Ed25519 signature of its exact bytes; the manifest is put last, after
  every chunk it names is confirmed in the bucket;
* ``publisher.pub`` — the publishing appliance's public key (hex), shown to a school
  as a fingerprint when it adds the library; trust is the pin, not this object.
"""

from __future__ import annotations

import configparser
import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import botocore.exceptions
from botocore.config import Config

from appliance.config import Layout
from appliance.district.libraries import Library, credentials_path
from appliance.errors import NotFound, PeerError, SlateError, UsageError

PUBLISHER_KEY = "publisher.pub"
RANGE = 256 * 1024  # bytes a capped reader asks for at a time
_REFUSED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "Forbidden",
    "403",
}


class Object(NamedTuple):
    key: str  # relative to the library's prefix
    size: int
    etag: str  # without quotes
    written: datetime | None  # UTC


class CredentialsRefused(SlateError):
    """The library's engine refused this appliance's credentials for what it tried."""


class Bucket:
    def __init__(
        self, lib: Library, layout: Layout, *, attempts: int = 3, connect_timeout: float = 5
    ) -> None:
        """``attempts``, ``connect_timeout``: how hard to try (a question a person waits
        on, such as making a job, asks once and briefly)."""
        self.lib = lib
        kw: dict[str, Any] = {}
        path = credentials_path(layout, lib.name)
        if path.exists():
            parser = configparser.ConfigParser()
            parser.read_string(path.read_text())
            section = parser["default"] if parser.has_section("default") else None
            if section is None or "aws_access_key_id" not in section:
                raise UsageError(
                    f"{path} has no [default] aws_access_key_id",
                    hint="write it as AWS credentials files are (`slate library add --help`)",
                )
            kw["aws_access_key_id"] = section["aws_access_key_id"]
            kw["aws_secret_access_key"] = section.get("aws_secret_access_key", "")
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=30,
            max_pool_connections=16,
            signature_version="s3v4",
        )
        session = boto3.session.Session(**kw)
        self.s3 = session.client(
            "s3", endpoint_url=lib.endpoint or None, region_name=lib.region, config=config
        )

    # -- errors -----------------------------------------------------------------------
    def _error(self, exc: Exception, doing: str) -> SlateError:
        where = self.lib.endpoint or "S3"
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _REFUSED:
                return CredentialsRefused(
                    f"the library {self.lib.name} refused this appliance's credentials"
                    f" ({code}) while it {doing}",
                    hint="check the key with the district's administrator: it may be revoked,"
                    " or not allowed to do this (a school's key reads the library and writes"
                    " only its own area)",
                )
            if code in ("NoSuchBucket",):
                return NotFound(f"the library {self.lib.name}'s bucket {self.lib.bucket}"
                                f" does not exist at {where}")  # fmt: skip
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFound(f"not in the library {self.lib.name}: {doing}")
            return PeerError(f"the library {self.lib.name} answered {code} while it {doing}")
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return UsageError(
                f"no credentials for the library {self.lib.name}",
                hint=f"`slate library rm {self.lib.name}` and add it again with --credentials FILE",
            )
        return PeerError(
            f"cannot reach the library {self.lib.name} at {where} while it {doing}: {exc}",
            hint="is the WAN up?  Ready versions still restore; fetching resumes later",
        )

    def _call(self, doing: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(**kw)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error(exc, doing) from None

    # -- objects ----------------------------------------------------------------------
    def keys(self, relprefix: str) -> Iterator[str]:
        """The keys under ``relprefix`` (relative to the library's prefix)."""
        for o in self.objects(relprefix):
            yield o.key

    def objects(self, relprefix: str) -> Iterator[Object]:
        """Each object under ``relprefix``: its key (relative to the library's prefix),
        size, ETag without quotes, and when it was written."""
        full = self.lib.key(relprefix)
        strip = len(self.lib.key(""))
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.lib.bucket, "Prefix": full, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            page = self._call(f"listed {full}", self.s3.list_objects_v2, **kw)
            for item in page.get("Contents", []):
                etag = str(item.get("ETag", "")).strip('"')
                written = item.get("LastModified")
                written = written.astimezone(UTC) if written is not None else None
                yield Object(str(item["Key"])[strip:], int(item.get("Size", -1)), etag, written)
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def delete(self, relpath: str) -> None:
        key = self.lib.key(relpath)
        self._call(f"deleted {key}", self.s3.delete_object, Bucket=self.lib.bucket, Key=key)

    def delete_many(self, relpaths: list[str]) -> None:
        """DeleteObjects, 1000 at a time; a key refused in its answer is an error too (S3
        answers 200 and lists the refusals)."""
        for start in range(0, len(relpaths), 1000):
            keys = [{"Key": self.lib.key(p)} for p in relpaths[start : start + 1000]]
            answer = self._call(f"deleted {len(keys)} object(s)", self.s3.delete_objects,
                                Bucket=self.lib.bucket,
                                Delete={"Objects": keys, "Quiet": True})  # fmt: skip
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                refused = botocore.exceptions.ClientError(
                    {"Error": {"Code": str(first.get("Code", "")),
                               "Message": str(first.get("Message", ""))}},
                    "DeleteObjects",
                )  # fmt: skip
                raise self._error(refused, f"deleted {first.get('Key')} ({len(errors)} refused)")

    def get(self, relpath: str) -> bytes:
        """A small object's bytes (a manifest, its signature, the publisher's key)."""
        key = self.lib.key(relpath)
        answer = self._call(f"read {key}", self.s3.get_object, Bucket=self.lib.bucket, Key=key)
        body = answer["Body"]
        try:
            return bytes(body.read())
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise self._error(exc, f"read {key}") from None
        finally:
            body.close()

    def get_into(
        self, relpath: str, part: Path, pace: Callable[[int], object] | None = None
    ) -> bytes:
        """The object's bytes, read into ``part`` as they arrive: a read cut short (the
        WAN dropped, the process was killed) goes on from the bytes ``part`` holds with a
        range request.  Objects are immutable, so the bytes before and after the cut are
        of the same object; what the caller checks is the whole.

        Paced (a cap), it asks for :data:`RANGE` bytes at a time, each after the cap let
        it: what crosses the WAN is what the cap allowed, and a cut loses at most one
        range per reader — not the megabytes a slowly read TCP socket buffers."""
        key = self.lib.key(relpath)
        have = part.stat().st_size if part.exists() else 0
        with open(part, "ab") as out:
            while True:
                kw: dict[str, Any] = {"Bucket": self.lib.bucket, "Key": key}
                if pace is not None:
                    pace(RANGE)
                    kw["Range"] = f"bytes={have}-{have + RANGE - 1}"
                elif have:
                    kw["Range"] = f"bytes={have}-"
                try:
                    answer = self._call(f"read {key}", self.s3.get_object, **kw)
                except PeerError as exc:
                    if have and "InvalidRange" in exc.message:  # it was all there already
                        break
                    raise
                body = answer["Body"]
                try:
                    while data := body.read(1024 * 1024):
                        out.write(data)
                        have += len(data)
                except (botocore.exceptions.BotoCoreError, OSError) as exc:
                    raise self._error(exc, f"read {key}") from None
                finally:
                    body.close()
                total = _total(answer, have)
                if have >= total:
                    break
        return part.read_bytes()

    def get_or_none(self, relpath: str) -> bytes | None:
        try:
            return self.get(relpath)
        except NotFound:
            return None

    def put(self, relpath: str, data: bytes) -> None:
        key = self.lib.key(relpath)
        self._call(f"wrote {key}", self.s3.put_object, Bucket=self.lib.bucket, Key=key, Body=data)

    def size(self, relpath: str) -> int | None:
        key = self.lib.key(relpath)
        try:
            head = self._call(f"looked at {key}", self.s3.head_object, Bucket=self.lib.bucket,
                              Key=key)  # fmt: skip
        except NotFound:
            return None
        return int(head["ContentLength"])


def _total(answer: dict[str, Any], have: int) -> int:
    """The object's whole size from a GET's answer (``Content-Range: bytes a-b/TOTAL``
    for a range, else what was read)."""
    text = str(answer.get("ContentRange") or "")
    if "/" in text:
        with contextlib.suppress(ValueError):
            return int(text.rsplit("/", 1)[1])
    return have
