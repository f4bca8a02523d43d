"""Every ``SLATE_*`` name in the product's code is a setting of ``slate serve`` (its
environment variable, derived from ``appliance.settings.TABLE``) or one of the names
docs/serve.md lists ("`SLATE_*` names outside the settings table"), written out here."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.settings import TABLE

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("appliance", "bootimage", "webui")
NAME = re.compile(r"SLATE_[A-Z_]+")

# Read from the environment outside the settings table, each for its documented reason.
KNOBS = {
    "SLATE_HOME",
    "SLATE_CONFIG",
    "SLATE_TRUST_PROXY",
    "SLATE_TEST_CACHE",
    "SLATE_DEBIAN_MIRROR",
    "SLATE_MOUNT_ROOT",
    "SLATE_NO_UDP_GRO",
}
# Not read from the environment: an app config key, and what a post-restore hook gets.
NOT_KNOBS = {
    "SLATE_CLIENT_TLS",
    "SLATE_JOB",
    "SLATE_HOST",
    "SLATE_MAC",
    "SLATE_ROOM",
    "SLATE_IMAGE",
    "SLATE_VERSION",
    "SLATE_DISK",
    "SLATE_MOUNTS",
    "SLATE_MNT_",  # SLATE_MNT_<label>: SLATE_MNT_P1, SLATE_MNT_D1P2, ...
    "SLATE_HOOK",
    "SLATE_HOOK_SCOPE",
}


def names_in_the_product() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary files (images, fonts)
            for name in NAME.findall(text):
                if name.startswith("SLATE_MNT_"):
                    name = "SLATE_MNT_"
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_slate_name_is_a_setting_or_a_documented_knob() -> None:
    settings = {s.env for s in TABLE}
    assert not settings & (KNOBS | NOT_KNOBS)
    found = names_in_the_product()
    assert "SLATE_HOME" in found and "SLATE_HTTP_PORT" in found  # the scan sees them
    unknown = {
        n: sorted(where) for n, where in found.items() if n not in settings | KNOBS | NOT_KNOBS
    }
    assert unknown == {}


def test_the_documented_list_is_the_one_in_docs_serve_md() -> None:
    doc = (ROOT / "docs" / "serve.md").read_text()
    section = doc.split("## `SLATE_*` names outside the settings table", 1)[1].split("\n## ", 1)[0]
    listed = {n if not n.startswith("SLATE_MNT_") else "SLATE_MNT_" for n in NAME.findall(section)}
    assert listed == KNOBS | NOT_KNOBS
