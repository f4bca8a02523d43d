"""``git grep`` over the product, for the tests that hold "one package owns each table"
(test_jobs_owner.py, test_machines_owner.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def grep(*patterns: str, ignore_case: bool = False, exclude: tuple[str, ...] = ()) -> list[str]:
    """``path:line:text`` of every line matching one of ``patterns`` (extended regexps)
    in the files git tracks or would track (new ones too), tests included: they stage
    and read rows through the owners' ``testing`` modules too.  ``exclude``: paths
    (folders or files, from the repository's root) left out as well."""
    assert shutil.which("git"), "git is needed for this test"
    assert (ROOT / ".git").exists(), f"{ROOT} is not a git checkout"
    args = ["git", "grep", "--untracked", "-n", "-E", *(["-i"] if ignore_case else [])]
    for pattern in patterns:
        args += ["-e", pattern]
    # the owner tests name the tables in their patterns and comments
    args += ["--", ".", ":(exclude)tests/unit/test_*_owner.py"]
    args += [f":(exclude){path}" for path in exclude]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: nothing found
    return done.stdout.splitlines()


def outside(hits: list[str], owners: tuple[str, ...]) -> list[str]:
    """The hits that are not under one of ``owners``."""
    return [h for h in hits if not h.startswith(owners)]
