"""Users, roles, password hashes and API tokens (appliance/users.py, `slate user`)."""

from __future__ import annotations

import pytest

from appliance import db, users
from appliance.errors import Conflict, NotFound, UsageError

PW = "correct horse battery"


@pytest.fixture
def conn(tmp_path):
    c = db.connect(tmp_path / "slate.db")
    yield c
    c.close()


def test_password_is_stored_as_scrypt_hash(conn):
    users.add(conn, "ada", "admin", PW, "test")
    stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("scrypt:") and PW not in stored
    assert users.authenticate(conn, "ada", PW) == users.User("ada", "admin", 0)
    assert users.authenticate(conn, "ada", PW + "x") is None
    assert users.authenticate(conn, "nobody", PW) is None


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [("Ada", "admin", PW), ("ada", "root", PW), ("ada", "admin", "short")],
)
def test_bad_input_refused_with_hint(conn, name, role, password):
    with pytest.raises(UsageError) as info:
        users.add(conn, name, role, password, "test")
    assert info.value.hint


def test_duplicate_and_last_admin(conn):
    users.add(conn, "ada", "admin", PW, "test")
    with pytest.raises(Conflict):
        users.add(conn, "ada", "viewer", PW, "test")
    with pytest.raises(Conflict):
        users.remove(conn, "ada", "test")
    with pytest.raises(Conflict):
        users.set_role(conn, "ada", "viewer", "test")
    with pytest.raises(NotFound):
        users.remove(conn, "bob", "test")


def test_role_permissions():
    admin, tech, viewer = (users.User("x", r) for r in ("admin", "technician", "viewer"))
    assert all(admin.can(p) for p in ("view", "job.start", "image.edit", "user.admin"))
    assert tech.can("job.start") and tech.can("host.edit") and not tech.can("image.edit")
    assert viewer.can("view") and not viewer.can("job.start") and not viewer.can("host.edit")


def test_password_change_bumps_epoch(conn):
    users.add(conn, "ada", "admin", PW, "test")
    users.set_password(conn, "ada", PW + "!", "test")
    assert users.get(conn, "ada").epoch == 1
    assert users.authenticate(conn, "ada", PW) is None


def test_tokens_hashed_per_user_and_revocable(conn):
    users.add(conn, "ada", "admin", PW, "test")
    users.add(conn, "bob", "viewer", PW, "test")
    ta, tb = users.new_token(conn, "ada", "test"), users.new_token(conn, "bob", "test")
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM api_tokens WHERE token_hash IN (?,?)", (ta, tb)
        ).fetchone()[0]
        == 0
    )
    assert users.user_for_token(conn, ta).name == "ada"
    assert users.user_for_token(conn, tb).name == "bob"
    assert users.user_for_token(conn, ta + "x") is None
    assert users.user_for_token(conn, "not-a-slate-token") is None
    assert users.revoke_tokens(conn, "ada", "test") == 1
    assert users.user_for_token(conn, ta) is None
    assert users.user_for_token(conn, tb).name == "bob"
    actions = [r["action"] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["user.add", "user.add", "user.token", "user.token", "user.revoke"]


def test_cli_add_token_list(slate):
    proc = slate("user", "add", "ada", "--role", "admin", "--password-stdin", input=PW + "\n")
    assert proc.returncode == 0, proc.stderr
    token = slate("user", "token", "ada", check=True).stdout.strip()
    assert token.startswith("slt_")
    listed = slate("user", "list", "--json", check=True).stdout
    assert '"tokens": 1' in listed and '"role": "admin"' in listed


def test_cli_refuses_without_password_source(slate):
    proc = slate("user", "add", "ada", "--role", "admin", input="")
    assert proc.returncode == 1
    assert "standard input is not a terminal" in proc.stderr and "hint:" in proc.stderr
    proc = slate("user", "add", "ada", "--role", "admin", "--password-stdin", input="short\n")
    assert proc.returncode == 1 and "too short" in proc.stderr
