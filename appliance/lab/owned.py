"""What ``slate lab up`` makes in a data directory, so that it finds it again and never
touches anything else there.

A lab shares its data directory with whatever a technician keeps in it, so:

* **Hosts.**  ``up`` picks names ``lab-bios1``, ``lab-uefi1`` … that no registered host
  uses (a technician's own ``lab-bios1`` is skipped, never replaced), registers them and
  records each one's MAC and name in the lab's state file.  ``down`` removes exactly the
  recorded hosts that still carry that MAC *and* that name; a host renamed since has been
  adopted by someone and stays.  So a second ``up`` starts from a clean slate, with any
  number of machines.
* **The console login.**  ``up`` creates the admin user ``lab`` with a random password and
  keeps the password in ``DATA/lab-login.json`` (mode 0600) so that ``up`` and ``status``
  can show it again.  A user ``lab`` whose password is not the kept one (a technician's
  own, or changed since) is left alone: the lab then says so instead of printing a login.

The choices (:func:`plan_machines`, :func:`hosts_to_remove`) are pure functions; the
functions around them only read and write the inventory through its own API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import db, users
from appliance.config import Layout
from appliance.errors import NotFound, SlateError
from appliance.jobs import Jobs
from appliance.machines import Inventory
from appliance.secrets_file import write_secret

ACTOR = "lab"
LOGIN_USER = "lab"
LOGIN_ROLE = "admin"
LOGIN_FILE = Layout.LAB_LOGIN


@dataclass(frozen=True)
class Planned:
    """A lab machine to create: its host name, firmware and MAC."""

    name: str
    firmware: str
    mac: str


def plan_machines(
    counts: Sequence[tuple[str, int]],
    registered: Mapping[str, str],
    new_mac: Callable[[], str],
) -> tuple[list[Planned], list[str]]:
    """Names and MACs for ``counts`` machines per firmware, e.g. ``[("bios", 2)]``.

    ``registered`` maps every registered host name to its MAC.  A name or MAC in use is
    never taken: the name is skipped (returned second, so the lab can say why its
    machine is ``lab-bios2``), a MAC drawn again."""
    taken_names = set(registered)
    taken_macs = {m.lower() for m in registered.values()}
    plan: list[Planned] = []
    skipped: list[str] = []
    for firmware, count in counts:
        n = 0
        while sum(p.firmware == firmware for p in plan) < count:
            n += 1
            name = f"lab-{firmware}{n}"
            if name in taken_names:
                skipped.append(name)
                continue
            mac = new_mac().lower()
            while mac in taken_macs:
                mac = new_mac().lower()
            taken_macs.add(mac)
            plan.append(Planned(name, firmware, mac))
    return plan, skipped


def hosts_to_remove(
    created: Iterable[Mapping[str, str]], registered: Mapping[str, str]
) -> tuple[list[dict[str, str]], list[str]]:
    """Which of the hosts the lab ``created`` (``{"name", "mac"}``) to remove now.

    ``registered`` maps every registered MAC to its host's current name.  Only a host
    with the recorded MAC and still the recorded name is the lab's; the second list
    says what is left and why."""
    remove: list[dict[str, str]] = []
    kept: list[str] = []
    for host in created:
        name, mac = host["name"], host["mac"].lower()
        now = registered.get(mac)
        if now == name:
            remove.append({"name": name, "mac": mac})
        elif now is not None:
            kept.append(f"kept host {now} ({mac}): renamed from {name}, so it is not the lab's")
    return remove, kept


# --- the inventory ------------------------------------------------------------------------


def _connect(home: Path) -> Any:
    return db.connect(Layout(home).db)


def plan_for(
    home: Path, counts: Sequence[tuple[str, int]], new_mac: Callable[[], str]
) -> tuple[list[Planned], list[str]]:
    conn = _connect(home)
    try:
        registered = {h.name: h.mac for h in Inventory(conn).hosts()}
    finally:
        conn.close()
    return plan_machines(counts, registered, new_mac)


def register(home: Path, plan: Iterable[Planned], room: str) -> list[dict[str, str]]:
    """Register the planned hosts in ``room``; the records ``down`` needs to remove them."""
    created: list[dict[str, str]] = []
    conn = _connect(home)
    try:
        inv = Inventory(conn)
        for p in plan:
            host = inv.add_host(p.mac, p.name, actor=ACTOR, room=room)
            created.append({"name": host.name, "mac": host.mac})
    except BaseException:
        conn.close()
        remove(home, created)  # all or nothing: no host without a record of it
        raise
    conn.close()
    return created


def remove(home: Path, created: Iterable[Mapping[str, str]]) -> list[str]:
    """Remove the lab's own hosts among ``created`` (their jobs cannot finish without the
    machine: active ones are cancelled first).  One line per host, errors included."""
    conn = _connect(home)
    lines: list[str] = []
    try:
        inv = Inventory(conn)
        registered = {h.mac: h.name for h in inv.hosts()}
        doomed, lines = hosts_to_remove(created, registered)
        jobs = Jobs(conn, Layout(home))
        for host in doomed:
            try:
                for j in jobs.list_jobs(host=host["mac"]):
                    jobs.cancel(j.id, actor=ACTOR, reason="the lab went down")
                inv.remove_host(host["mac"], actor=ACTOR)
                lines.append(f"removed host {host['name']} ({host['mac']})")
            except SlateError as exc:
                lines.append(f"could not remove host {host['name']}: {exc}")
    finally:
        conn.close()
    return lines


# --- the console login --------------------------------------------------------------------


def ensure_login(home: Path) -> dict[str, Any]:
    """The lab's console login: ``{"user", "password", "note"}``; ``password`` is None
    when a user ``lab`` exists that the lab cannot vouch for (left untouched)."""
    path = Layout(home).lab_login
    kept = _read_login(path)
    conn = _connect(home)
    try:
        try:
            users.get(conn, LOGIN_USER)
        except NotFound:
            password = secrets.token_urlsafe(12)
            users.add(conn, LOGIN_USER, LOGIN_ROLE, password, actor=ACTOR)
            _write_login(path, password)
            return {"user": LOGIN_USER, "password": password, "note": "made by this lab up"}
        if kept is not None and users.authenticate(conn, LOGIN_USER, kept) is not None:
            return {"user": LOGIN_USER, "password": kept, "note": f"kept in {path}"}
    finally:
        conn.close()
    return {
        "user": LOGIN_USER,
        "password": None,
        "note": f"user {LOGIN_USER} was not made by the lab or its password was changed "
        f"since; the lab left it alone (`slate user passwd {LOGIN_USER}` sets one)",
    }


def describe_login(login: Mapping[str, Any] | None) -> str:
    """The line a person reads next to the console address."""
    if not login:
        return ""
    if login.get("password"):
        return f"log in as {login['user']}, password {login['password']}"
    return str(login.get("note", ""))


def _read_login(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text()).get("password")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _write_login(path: Path, password: str) -> None:
    write_secret(path, json.dumps({"user": LOGIN_USER, "password": password}))
