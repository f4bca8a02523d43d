"""Before a byte is written: report this machine's hardware facts and its disks' health,
and obey the appliance's answer.  After a register job or a failure: wait in the boot
environment for a power request from the console (``slate host power``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from appliance.errors import DiskRefused, SlateError
from bootimage.client import disks as disks_mod
from bootimage.client import facts as facts_mod
from bootimage.client import health as health_mod
from bootimage.client.api import API, Api

POLL_EVERY = 5.0


class RefusedByAppliance(DiskRefused):
    """The appliance refused the disk and has already failed the job."""

    reported = True


def report_facts(api: Api, log: Callable[[str], None], *, real: bool = True) -> dict[str, Any]:
    """Send the machine's facts; a Conflict (another machine's identity) propagates.
    ``real``: this is a machine in the boot environment (a client run on a test host
    would report the test host's own identity for every job)."""
    if not real:
        log("not in the boot environment: no hardware facts reported")
        return {}
    found = disks_mod.discover()
    facts = facts_mod.collect(found)
    log(facts_mod.summary(facts))
    api.post_json("/facts", {"facts": facts})
    return facts


def check_disks(
    api: Api,
    paths: Sequence[str],
    log: Callable[[str], None],
    read: Callable[[str], health_mod.Health] = health_mod.read_health,
) -> list[Any]:
    """Read the health of ``paths`` (``read``: smartctl) and ask the appliance; raise
    RefusedByAppliance, before anything is written, if a disk is refused."""
    records = [read(path).to_dict() for path in paths]
    answer = api.post_json("/health", {"disks": records}) or {}
    for verdict in answer.get("verdicts") or []:
        log(f"disk health {verdict.get('path')}: {verdict.get('status')}")
    if answer.get("refused"):
        raise RefusedByAppliance(str(answer["refused"]), hint=answer.get("hint"))
    return list(answer.get("verdicts") or [])


def register(api: Api, facts: dict[str, Any], log: Callable[[str], None]) -> None:
    """A register job (its facts already reported): every disk's health, nothing written."""
    paths = [str(d.get("path")) for d in facts.get("disks") or [] if d.get("path")]
    answer = api.post_json(
        "/health", {"disks": [health_mod.read_health(p).to_dict() for p in paths]}
    )
    for verdict in (answer or {}).get("verdicts") or []:
        log(f"disk health {verdict.get('path')}: {verdict.get('status')}")


def wait_for_power(
    api: Api, log: Callable[[str], None], hold: float, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Poll the appliance for up to ``hold`` s; the command it hands out, or None."""
    log(
        f"waiting in the boot environment for up to {hold / 60:.0f} min: reboot or power off"
        " from the console (or `slate host power NAME reboot|poweroff`)"
    )
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        try:
            data = api.get_json(API + "/power")
        except SlateError as exc:
            log(f"power poll: {exc.message}")
            data = {}
        command = data.get("command") if isinstance(data, dict) else None
        if command in ("reboot", "poweroff"):
            log(f"the appliance asks for {command}")
            return str(command)
        sleep(float(data.get("poll") or POLL_EVERY) if isinstance(data, dict) else POLL_EVERY)
    return None


SMART_BEGIN = "----- slate smart begin -----"
SMART_END = "----- slate smart end -----"


def dump_smart() -> None:
    """smartctl's raw JSON for every candidate disk, keyed by serial, between markers on
    the console (how tests/golden/smart/qemu-*.json is captured)."""
    import json
    import sys

    out = {}
    for disk in disks_mod.discover():
        raw = health_mod.smartctl_json(disk.path)
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = {"unparsed": raw[:2000]}
        out[disk.serial or disk.name] = {
            "path": disk.path,
            "transport": disk.transport,
            "smartctl": data,
        }
    text = json.dumps(out, indent=1, sort_keys=True)
    sys.stdout.write(f"\n{SMART_BEGIN}\n{text}\n{SMART_END}\n")
    sys.stdout.flush()
