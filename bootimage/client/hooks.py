"""Post-restore hooks: the job's scripts (image → room → host, from the client API's
``/after``), run in the boot environment after the write, with the restored filesystems
mounted read-write.  docs/hooks.md is the technician's reference; in short:

* mounts: partition N of disk 0 at ``$SLATE_MOUNT_ROOT/pN`` (``/mnt/slate/pN``), of disk
  D > 0 at ``…/dDpN``; ext2/3/4, xfs, btrfs, vfat and ntfs (ntfs-3g) are mounted, others
  are not (the log says which and why);
* environment: SLATE_HOST, SLATE_MAC, SLATE_ROOM, SLATE_IMAGE, SLATE_VERSION, SLATE_JOB,
  SLATE_DISK (disk 0's device), SLATE_MOUNT_ROOT, SLATE_MOUNTS (the mounted directories,
  space-separated), SLATE_MNT_PN / SLATE_MNT_DDPN (one per mount), SLATE_HOOK,
  SLATE_HOOK_SCOPE;
* the working directory is the mount root; stdout and stderr go to the job log, a line
  at a time, as ``hook NAME: …``;
* a hook that exits non-zero, or runs longer than its timeout (killed, with everything
  it started), fails the job naming the script; the hooks after it do not run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from appliance.errors import SlateError
from appliance.formats.manifest import Manifest
from bootimage.client.loopdev import attached
from bootimage.client.target import FileTarget

Log = Callable[[str], None]
DEFAULT_ROOT = "/mnt/slate"
MOUNTABLE = {"ext2": "ext2", "ext3": "ext3", "ext4": "ext4", "xfs": "xfs", "btrfs": "btrfs",
             "vfat": "vfat", "ntfs": "ntfs-3g"}  # fmt: skip
OUTPUT_LINES = 2000  # of one hook's output in the job log; the rest is counted


class HookFailed(SlateError):
    """A hook exited non-zero or timed out (the message names the script)."""


def mount_root() -> Path:
    return Path(os.environ.get("SLATE_MOUNT_ROOT") or DEFAULT_ROOT)


def run_all(
    after: dict[str, Any],
    job: dict[str, Any],
    manifest: Manifest,
    targets: Sequence[FileTarget],
    log: Log,
) -> int:
    """Mount, run every hook in order, unmount; returns how many ran."""
    hooks = list(after.get("hooks") or [])
    if not hooks:
        return 0
    root = mount_root()
    log(f"hooks: {len(hooks)} to run: " + ", ".join(f"{h['name']} ({h['scope']})" for h in hooks))
    with mounted(manifest, targets, root, log) as mounts:
        env = environment(job, after, targets, root, mounts)
        with tempfile.TemporaryDirectory(prefix="slate-hooks-") as tmp:
            for hook in hooks:
                run_one(hook, env, root, Path(tmp), log)
    log(f"hooks: all {len(hooks)} succeeded")
    return len(hooks)


@contextlib.contextmanager
def mounted(
    manifest: Manifest, targets: Sequence[FileTarget], root: Path, log: Log
) -> Iterator[dict[str, str]]:
    """{env name suffix (P1, D1P2): mount directory} of every filesystem mounted."""
    mounts: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for disk, target in zip(manifest.disks, targets, strict=False):
            for p in disk.partitions:
                kind = MOUNTABLE.get(p.fs)
                label = f"P{p.number}" if disk.index == 0 else f"D{disk.index}P{p.number}"
                where = root / label.lower()
                if kind is None:
                    what = p.fs or "no known filesystem"
                    log(f"hooks: partition {p.number} of disk {disk.index} ({what}) is not mounted")
                    continue
                dev = stack.enter_context(attached(target.path, p.start, p.size, read_only=False))
                where.mkdir(parents=True, exist_ok=True)
                proc = subprocess.run(["mount", "-t", kind, dev, str(where)],
                                      capture_output=True, text=True, check=False)  # fmt: skip
                if proc.returncode != 0:
                    log(f"hooks: cannot mount partition {p.number} of disk {disk.index} ({p.fs}):"
                        f" {proc.stderr.strip() or proc.returncode}")  # fmt: skip
                    continue
                stack.callback(_unmount, where, log)
                mounts[label] = str(where)
                log(f"hooks: partition {p.number} of disk {disk.index} ({p.fs}) at {where}")
        yield mounts
        os.sync()


def _unmount(where: Path, log: Log) -> None:
    proc = subprocess.run(["umount", str(where)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # busy: something a hook left running
        log(f"hooks: {where} is busy ({proc.stderr.strip()}); detaching it lazily")
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        where.rmdir()


def environment(
    job: dict[str, Any],
    after: dict[str, Any],
    targets: Sequence[FileTarget],
    root: Path,
    mounts: dict[str, str],
) -> dict[str, str]:
    host = job.get("host") or {}
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "SLATE_JOB": str(job.get("id", "")),
        "SLATE_HOST": str(host.get("name") or ""),
        "SLATE_MAC": str(host.get("mac") or ""),
        "SLATE_ROOM": str(after.get("room") or ""),
        "SLATE_IMAGE": str(job.get("image") or ""),
        "SLATE_VERSION": str(job.get("version") or ""),
        "SLATE_DISK": targets[0].path if targets else "",
        "SLATE_MOUNT_ROOT": str(root),
        "SLATE_MOUNTS": " ".join(mounts.values()),
    }
    env.update({f"SLATE_MNT_{label}": where for label, where in mounts.items()})
    return env


def run_one(hook: dict[str, Any], env: dict[str, str], cwd: Path, tmp: Path, log: Log) -> None:
    name, scope = str(hook["name"]), f"{hook['scope']} {hook['target']}"
    timeout = float(hook.get("timeout") or 300)
    path = tmp / name
    path.write_bytes(base64.b64decode(str(hook["script_b64"])))
    path.chmod(0o700)
    log(f"hook {name} ({scope}): running (timeout {timeout:g} s)")
    proc = subprocess.Popen(
        [str(path)],
        cwd=cwd,
        env={**env, "SLATE_HOOK": name, "SLATE_HOOK_SCOPE": str(hook["scope"])},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a timeout kills all it started
    )
    reader = threading.Thread(target=_relay, args=(proc, name, log), daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(5)
        raise HookFailed(
            f"hook {name} ({scope}) timed out after {timeout:g} s and was killed",
            hint="make the script finish sooner, or add it again with a longer --timeout",
        ) from None
    reader.join(5)
    if code != 0:
        raise HookFailed(
            f"hook {name} ({scope}) failed: exit status {code}",
            hint="its output is in the job log; fix the script (`slate hook add` again)",
        )
    log(f"hook {name} ({scope}): done")


def _relay(proc: subprocess.Popen[bytes], name: str, log: Log) -> None:
    assert proc.stdout is not None
    count = 0
    for raw in proc.stdout:
        count += 1
        if count <= OUTPUT_LINES:
            log(f"hook {name}: {raw.decode('utf-8', 'replace').rstrip()}")
    if count > OUTPUT_LINES:
        log(f"hook {name}: ({count - OUTPUT_LINES} more output lines not logged)")
