"""The appliance itself is disposable (issue 30): its state is backed up, sealed, to its
area of the library; its data directory deleted, `slate library restore-appliance` on a
new one brings back its hosts, rooms and schedules, and every published version comes
back from the library and verifies.  A real SeaweedFS (district_kit), the `slate` CLI
run in the appliance's namespace; nothing mocked."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

from client_kit import MIB, ROOT, change_chunks, make_disk
from district_kit import PUBLISHER, District, school_bucket

from tests.conftest import require_root

IMAGE = "lab"
AREA = f"s3://{school_bucket(PUBLISHER)}"

# Runs `slate` commands one after the other in one process (each as `slate …` would:
# appliance.cli.main), saying each one's exit code and output: a new interpreter for
# each of them would be most of this test's time.
BATCH = textwrap.dedent("""
    import contextlib, io, json, sys
    from appliance.cli import main
    out = []
    for argv in json.loads(sys.argv[1]):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
        out.append({"rc": rc, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()})
    print(json.dumps(out))
""")


def test_disaster_the_data_directory_deleted_restore_appliance_brings_it_all_back(
    tmp_path: Path,
) -> None:
    require_root()
    with District(tmp_path, schools=("hq",), wan_mbit=None) as district:

        def batch(home: Path, *argvs: list[str]) -> list[dict[str, Any]]:
            """`slate --home HOME ARGV` for each ARGV, in the appliance's namespace."""
            runs = [["--home", str(home), *argv] for argv in argvs]
            cmd = [sys.executable, "-c", BATCH, json.dumps(runs)]
            done = district.run_in("hq", cmd, cwd=str(ROOT))
            assert done.returncode == 0, done.stderr
            return list(json.loads(done.stdout))

        def ok(home: Path, *argvs: list[str]) -> list[Any]:
            """Each one's JSON output (or text, without --json); all must succeed."""
            results = batch(home, *argvs)
            for argv, r in zip(argvs, results, strict=True):
                assert r["rc"] == 0, f"{argv}: {r['stdout']}\n{r['stderr']}"
            return [json.loads(r["stdout"]) if "--json" in a else r["stdout"]
                    for a, r in zip(argvs, results, strict=True)]  # fmt: skip

        old = tmp_path / "old"
        creds = str(district.credentials_file(PUBLISHER))
        area = [AREA, "--endpoint", district.endpoint, "--credentials", creds]
        lists = [["host", "list", "--json"], ["room", "list", "--json"],
                 ["schedule", "list", "--json"]]  # fmt: skip
        # The publishing appliance: two published versions, one of them kept, and one never
        # published; hosts, rooms, a schedule; a state key and a backup.
        disk, disk2 = tmp_path / "lab.img", tmp_path / "lab2.img"
        make_disk(disk, 16 * MIB, seed=40, data_fraction=0.9)
        shutil.copyfile(disk, disk2)
        change_chunks(disk2, 0.5, seed=41)
        v1, v2, v3 = (x.strip() for x in ok(
            old, ["image", "import", str(disk), "--name", IMAGE, "--format", "raw"],
            ["image", "import", str(disk2), "--name", IMAGE, "--format", "raw"],
            ["image", "import", str(disk), "--name", "ws-07", "--format", "raw"]))  # fmt: skip
        # (ws-07 is never published; make_disk's random disks are imported --format raw)
        *_, hosts, rooms, schedules, publisher, made, again, backed = ok(
            old,
            ["library", "add", "district", "s3://library", "--endpoint", district.endpoint,
             "--credentials", creds, "--publisher", "--area", AREA],
            ["library", "publish", f"{IMAGE}@{v1}"],
            ["library", "publish", f"{IMAGE}@{v2}"],
            ["image", "keep", f"{IMAGE}@{v1}"],
            ["host", "add", "52:54:00:30:00:01", "--name", "pc-01", "--room", "lab-a"],
            ["host", "add", "52:54:00:30:00:02", "--name", "pc-02", "--room", "lab-a"],
            ["room", "add", "lab-b", "--note", "building B"],
            ["schedule", "add", "--host", "pc-01", "--capture", "pc-01", "--every",
             "daily 02:00"],
            *lists,
            ["library", "key", "--json"],
            ["library", "state-key", "--json"],
            ["library", "state-key", "--json"],
            ["library", "backup-state", "--json"],
        )  # fmt: skip
        assert len(hosts) == 2 and len(rooms) == 2 and len(schedules) == 1
        assert made["made"] is True
        key, fingerprint = made["key"], made["fingerprint"]
        assert again == {"fingerprint": fingerprint, "made": False}  # the key is shown once
        assert backed[0]["url"] == AREA and backed[0]["key"] == fingerprint
        assert backed[0]["counts"]["hosts"] == 2
        assert sorted(backed[0]["versions"]) == sorted([f"{IMAGE}@{v1}", f"{IMAGE}@{v2}",
                                                       f"ws-07@{v3}"])  # fmt: skip

        # The daily pass (slate serve's LibrarySync): a backup younger than a day is
        # left alone; a day later, one more is made; only the newest are kept.
        daily = textwrap.dedent(f"""
            import json
            from datetime import UTC, datetime, timedelta
            from pathlib import Path
            from appliance import db
            from appliance.config import Layout
            from appliance.district import libraries, statebackup
            from appliance.district.bucket import Bucket
            from appliance.district.service import LibrarySync
            layout = Layout(Path({str(old)!r}))
            now = datetime.now(UTC)
            rows = []
            for later in (timedelta(0), timedelta(hours=25)):
                sync = LibrarySync(layout, lambda: db.connect(layout.db), 300.0,
                                   now=lambda: now + later)
                rows.append(sync.back_up_state())
            lib = libraries.get(db.connect(layout.db), "district")
            area = Bucket(lib.area_library(), layout)
            blob, _ = statebackup.make(layout, statebackup.own_key(layout))
            rows.append(statebackup.put(area, blob, "20261201T000000Z", keep=2)[1])
            print(json.dumps(rows))
        """)
        done = district.run_in("hq", [sys.executable, "-c", daily], cwd=str(ROOT), check=True)
        soon, later, removed = json.loads(done.stdout)
        assert soon == []
        assert [r["result"] for r in later] == ["backed up"], later
        assert removed == ["state/20261201T000000Z.slate-state"]  # Write deletes, too
        s3 = district.client(PUBLISHER)
        listed = s3.list_objects_v2(Bucket=school_bucket(PUBLISHER), Prefix="state/")
        assert len(listed["Contents"]) == 2  # backup-state's and the daily pass's

        # The disaster.
        shutil.rmtree(old)

        # A wrong key: refused by name, and nothing is written.
        fresh = tmp_path / "fresh"
        wrong = "AAAA-" * 12 + "AAAA"
        listed_there, refused = batch(
            fresh,
            ["library", "restore-appliance", *area, "--key", wrong, "--list", "--json"],
            ["library", "restore-appliance", *area, "--key", wrong],
        )
        assert [r["object"] for r in json.loads(listed_there["stdout"])] == sorted(
            o["Key"] for o in listed["Contents"]
        )
        assert refused["rc"] == 1
        assert f"was made with key {fingerprint}, not the one given (SHA256:" in refused["stderr"]
        assert "nothing was restored" in refused["stderr"]
        assert "Traceback" not in refused["stderr"]
        assert list(fresh.iterdir()) == []

        key_file = tmp_path / "state-key.txt"
        key_file.write_text(f"{key}\n")
        results = ok(
            fresh,
            ["library", "restore-appliance", *area, "--key-file", str(key_file), "--json"],
            *lists,
            ["image", "verify", f"{IMAGE}@{v1}"],
            ["image", "verify", f"{IMAGE}@{v2}"],
            ["image", "versions", IMAGE, "--json"],
            ["library", "key", "--json"],
            ["library", "state-key", "--json"],
        )
        report, hosts2, rooms2, schedules2, _, _, versions, key_after, state_key = results
        assert report["counts"]["hosts"] == 2
        assert sorted((r["ref"], r["result"]) for r in report["versions"]) == sorted(
            [
                (f"{IMAGE}@{v1}", "ready"),
                (f"{IMAGE}@{v2}", "ready"),
                (f"ws-07@{v3}", "lost: in no library"),
            ]
        )
        assert (hosts2, rooms2, schedules2) == (hosts, rooms, schedules)
        assert sorted(r["version"] for r in versions) == sorted([v1, v2])
        assert (fresh / "store" / "manifests" / IMAGE / f"{v1}.keep").exists()
        # The same signing key: the restored appliance goes on publishing as before; the
        # same state key: its daily backups go on.
        assert key_after == publisher
        assert state_key == {"fingerprint": fingerprint, "made": False}
        # A second restore into it is refused: it holds an appliance's state now.
        (twice,) = batch(fresh, ["library", "restore-appliance", *area, "--key", key])
        assert twice["rc"] == 1
        assert (
            "already holds an appliance's state (district-ed25519.key, store/manifests,"
            " 2 hosts, 2 rooms); nothing was restored"
        ) in twice["stderr"]
