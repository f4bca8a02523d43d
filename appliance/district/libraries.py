"""The ``libraries`` table: the district libraries this appliance knows (its owner).

A library is an S3 bucket and prefix at an endpoint.  Its credentials are a file in
the data directory (``district/NAME.credentials``, 0600, the AWS credentials format),
or — when none was given — whatever boto3 finds (environment, ~/.aws, an instance
role).  They are never printed, logged or stored in the database."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from appliance import audit
from appliance.config import Layout
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, UsageError
from appliance.secrets_file import write_secret
from appliance.timestamps import utc_now

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Library:
    name: str
    bucket: str
    prefix: str  # "" or ends without a slash: keys are PREFIX/chunks/…
    endpoint: str
    region: str
    publisher_key: str  # hex; "" = this appliance publishes (its own key)
    created_at: str
    area: str = ""  # s3://BUCKET[/PREFIX]: this appliance's own area ("" = none)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "url": self.url,
            "endpoint": self.endpoint,
            "region": self.region,
            "publisher": "this appliance" if not self.publisher_key else self.publisher_key,
            "area": self.area,
        }

    def area_library(self) -> Library:
        """The same endpoint and credentials, at this appliance's own area: a
        ``Bucket(lib.area_library(), layout)`` reads and writes there."""
        if not self.area:
            raise UsageError(
                f"the library {self.name} has no area of this appliance's",
                hint=f"`slate library area {self.name} s3://BUCKET[/PREFIX]` (the bucket the"
                " district gave this appliance to write its status and backups to)",
            )
        bucket, prefix = parse_url(self.area)
        return replace(self, bucket=bucket, prefix=prefix)


def parse_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` → (bucket, prefix without slashes at either end)."""
    parsed = urlparse(url.strip())
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if parsed.scheme != "s3" or not _BUCKET.match(bucket):
        raise UsageError(
            f"{url!r} is not an S3 location",
            hint="write s3://BUCKET or s3://BUCKET/PREFIX (bucket names: 3-63 of a-z 0-9 . -)",
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UsageError(f"{url!r}: the prefix has an empty, . or .. part")
    return bucket, prefix


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"{name!r} is not a library name", hint="a-z, 0-9 and -, starting with a letter"
        )
    return name


def credentials_path(layout: Layout, name: str) -> Path:
    return layout.district / f"{check_name(name)}.credentials"


def add(
    conn: sqlite3.Connection,
    layout: Layout,
    name: str,
    url: str,
    *,
    endpoint: str = "",
    region: str = "us-east-1",
    publisher_key: str = "",
    credentials: bytes | None = None,
    area: str = "",
    actor: str,
) -> Library:
    """Remember a library; its credentials (the file's bytes) are kept 0600."""
    check_name(name)
    bucket, prefix = parse_url(url)
    if area:
        parse_url(area)
    if endpoint and urlparse(endpoint).scheme not in ("http", "https"):
        raise UsageError(
            f"{endpoint!r} is not an http(s) URL", hint="e.g. https://s3.district.example"
        )
    if conn.execute("SELECT 1 FROM libraries WHERE name=?", (name,)).fetchone():
        raise Conflict(f"library {name} exists", hint=f"`slate library rm {name}` first")
    if credentials is not None:
        layout.district.mkdir(mode=0o700, exist_ok=True)
        write_secret(credentials_path(layout, name), credentials)
    with transaction(conn):
        conn.execute(
            "INSERT INTO libraries(name, bucket, prefix, endpoint, region, publisher_key,"
            " created_at, area) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, bucket, prefix, endpoint, region, publisher_key, utc_now(), area),
        )
        audit.record(conn, actor, "library.add", name, url)
    return get(conn, name)


def get(conn: sqlite3.Connection, name: str) -> Library:
    row = conn.execute(
        "SELECT name, bucket, prefix, endpoint, region, publisher_key, created_at, area"
        " FROM libraries WHERE name=?",
        (name,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no library {name}", hint="`slate library list` shows them")
    return Library(*(str(v) for v in row))


def all_(conn: sqlite3.Connection) -> list[Library]:
    rows = conn.execute(
        "SELECT name, bucket, prefix, endpoint, region, publisher_key, created_at, area"
        " FROM libraries ORDER BY name"
    ).fetchall()
    return [Library(*(str(v) for v in r)) for r in rows]


def set_area(conn: sqlite3.Connection, name: str, area: str, *, actor: str) -> Library:
    """Set (or with "" clear) this appliance's own area of the library."""
    get(conn, name)
    if area:
        parse_url(area)
    with transaction(conn):
        conn.execute("UPDATE libraries SET area=? WHERE name=?", (area, name))
        audit.record(conn, actor, "library.area", name, area or "(none)")
    return get(conn, name)


def remove(conn: sqlite3.Connection, layout: Layout, name: str, *, actor: str) -> None:
    get(conn, name)
    with transaction(conn):
        conn.execute("DELETE FROM libraries WHERE name=?", (name,))
        audit.record(conn, actor, "library.rm", name, "")
    credentials_path(layout, name).unlink(missing_ok=True)


# -- subscriptions: the library_subscriptions table ---------------------------------------
@dataclass(frozen=True)
class Subscription:
    library: str
    image: str
    window: str  # "" = any time, else HH:MM-HH:MM
    cap: int  # bit/s, 0 = none

    def to_dict(self) -> dict[str, object]:
        return {"library": self.library, "image": self.image, "window": self.window or "any time",
                "cap": self.cap}  # fmt: skip


def subscribe(
    conn: sqlite3.Connection, library: str, image: str, *, window: str, cap: int, actor: str
) -> Subscription:
    """Fetch new versions of ``image`` ahead of time (set again: the new window and cap)."""
    from appliance.district.pacing import Window
    from appliance.formats.names import is_image_name

    lib = get(conn, library)
    if lib.publisher_key == "":
        raise Conflict(f"this appliance publishes to {library}: it has nothing to fetch there")
    if not is_image_name(image):
        raise UsageError(f"{image!r} is not an image name")
    Window.parse(window)  # refuse a bad one before it is kept
    with transaction(conn):
        conn.execute(
            "INSERT INTO library_subscriptions(library, image, window, cap, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(library, image) DO UPDATE SET"
            " window=excluded.window, cap=excluded.cap",
            (library, image, window.strip(), cap, utc_now()),
        )
        audit.record(conn, actor, "library.subscribe", f"{library}/{image}",
                     f"window {window or 'any'} cap {cap}")  # fmt: skip
    return Subscription(library, image, window.strip(), cap)


def unsubscribe(conn: sqlite3.Connection, library: str, image: str, *, actor: str) -> None:
    with transaction(conn):
        gone = conn.execute(
            "DELETE FROM library_subscriptions WHERE library=? AND image=?", (library, image)
        ).rowcount
        if not gone:
            raise NotFound(f"no subscription to {image} from {library}",
                           hint="`slate library subscriptions` lists them")  # fmt: skip
        audit.record(conn, actor, "library.unsubscribe", f"{library}/{image}", "")


def subscriptions(conn: sqlite3.Connection) -> list[Subscription]:
    rows = conn.execute(
        "SELECT library, image, window, cap FROM library_subscriptions ORDER BY library, image"
    ).fetchall()
    return [Subscription(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]
