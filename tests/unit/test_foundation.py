import pytest

from appliance import db
from appliance.errors import IllegalTransition
from appliance.jobs.states import STATES, TRANSITIONS, check_transition


def test_migrations_apply_once(tmp_path):
    conn = db.connect(tmp_path / "a.db")
    version = db.schema_version(conn)
    assert version >= 2
    assert db.apply_migrations(conn) == version
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # A second process opening the same file does not re-apply anything.
    assert db.schema_version(db.connect(tmp_path / "a.db")) == version


def test_state_table_is_closed():
    for state, nexts in TRANSITIONS.items():
        assert state in STATES
        assert nexts <= set(STATES)


@pytest.mark.parametrize("state", ["done", "failed", "cancelled"])
def test_final_states_do_not_move(state):
    with pytest.raises(IllegalTransition) as info:
        check_transition(1, state, "running")
    assert info.value.hint


def test_cli_help_and_unknown_command(slate):
    assert slate("--help").returncode == 0
    proc = slate("no-such-command")
    assert proc.returncode == 2
