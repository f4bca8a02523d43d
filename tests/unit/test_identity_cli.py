"""`slate image policy NAME --no-identity / --identity`: per image, whether restores write
each machine's identity; text, --json, audit, and a clear error for both flags."""

from __future__ import annotations

import json

from appliance import db
from appliance.config import Layout
from appliance.machines import identity


def test_identity_off_and_on_by_the_cli(slate, home) -> None:
    out = slate("image", "policy", "lab", "--no-identity", check=True).stdout
    assert "lab: identity off (the image's sysprep or cloud-init sets it)" in out
    conn = db.connect(Layout(home).db)
    assert identity.image_enabled(conn, "lab") is False
    got = json.loads(slate("image", "policy", "lab", "--json", check=True).stdout)
    assert got["identity"] is False and got["auto_promote"] is False
    got = json.loads(slate("image", "policy", "lab", "--identity", "--json", check=True).stdout)
    assert got["identity"] is True
    assert (
        "identity written into each restored machine"
        in slate("image", "policy", "lab", check=True).stdout
    )
    rows = conn.execute("SELECT action, target, detail FROM audit WHERE action='image.identity'")
    assert [tuple(r) for r in rows] == [("image.identity", "lab", "off"),
                                        ("image.identity", "lab", "on")]  # fmt: skip


def test_both_flags_is_a_usage_error(slate) -> None:
    proc = slate("image", "policy", "lab", "--identity", "--no-identity")
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr
