"""Image library benchmark: `slate image import/export` against plain zstd on the same
synthetic disk, in the same run, medians of several runs.

    .venv/bin/python bench/image_bench.py               # 2 GiB disk, median of 3
    .venv/bin/python bench/image_bench.py --size 4G --runs 5
    .venv/bin/python bench/image_bench.py --quick       # 256 MiB, 1 run (kept alive by a test)
    .venv/bin/python bench/image_bench.py --sweep       # + chunk size / zstd level table

The disk is deterministic and cached (``--cache``, default ~/.cache/slate-bench): a GPT
table (sgdisk), a vfat EFI partition and an ext4 root filled (mkfs.ext4 -d) with copies
of /usr/lib, generated text, compressible binary records and incompressible data,
leaving about 30 % zeros.

Figures (goal in brackets):
  import throughput / `zstd -3 -T0 -c disk > /dev/null`         [>= 0.7x]
  export throughput / `zstd -d -c disk.zst > out`               [>= 1.0x]
  stored bytes / size of `zstd -3` of the whole disk            [<= 1.05x]
  stored growth of a re-import with 5 % of chunks changed       [<= 6 % of the first]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _common import Row, median, print_rows, run_timed  # noqa: E402

from appliance.config import Layout  # noqa: E402
from appliance.formats.manifest import MIB  # noqa: E402
from appliance.store import Store  # noqa: E402
from appliance.store.importer import import_image  # noqa: E402

GENERATION = 1  # bump when the disk recipe changes (invalidates the cache)
_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his "
    "from at which but have an they you were her she there been one all we their has "
    "would when if so no will can more other what time up out about into than them "
    "only some could these disk image restore boot kernel network chunk version "
    "server client machine room lab"
)
WORDS = _VOCABULARY.split()


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


# ------------------------------------------------------------------- the synthetic disk


def build_disk(cache: Path, size: int) -> Path:
    path = cache / f"disk-{size >> 20}M-g{GENERATION}.img"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    tree = cache / f"tree-{os.getpid()}"
    shutil.rmtree(tree, ignore_errors=True)
    try:
        _fill_tree(tree, size)
        _make_disk(tmp, tree, size)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    return path


def _fill_tree(tree: Path, size: int) -> None:
    rnd = random.Random(20261125)
    (tree / "usr").mkdir(parents=True)
    _copy_usr_lib(tree / "usr", int(size * 0.30))
    _write_blocks(tree / "text", int(size * 0.15), lambda: _text_block(rnd))
    _write_blocks(tree / "records", int(size * 0.05), lambda: _record_block(rnd))
    _write_blocks(tree / "random", int(size * 0.10), lambda: rnd.randbytes(MIB))


def _copy_usr_lib(dest: Path, budget: int) -> None:
    """Real binaries, libraries and Python files, in a fixed order."""
    n = 0
    for top, dirs, files in os.walk("/usr/lib"):
        dirs.sort()
        for name in sorted(files):
            src = Path(top) / name
            if src.is_symlink() or not src.is_file():
                continue
            length = src.stat().st_size
            if length > 64 * MIB or length > budget:
                continue
            try:
                shutil.copyfile(src, dest / f"{n:06d}-{name}")
            except OSError:
                continue
            n += 1
            budget -= length
            if budget < 4096:
                return


def _write_blocks(folder: Path, budget: int, block) -> None:  # type: ignore[no-untyped-def]
    folder.mkdir()
    n = 0
    while budget > 0:
        with open(folder / f"f{n:04d}", "wb") as fh:
            for _ in range(min(8, -(-budget // MIB))):  # files of up to 8 MiB
                data = block()[:budget]
                fh.write(data)
                budget -= len(data)
        n += 1


def _text_block(rnd: random.Random) -> bytes:
    words = rnd.choices(WORDS, k=200_000)
    lines = [
        " ".join(words[i : i + 12]) + f" {rnd.randrange(10**6)}\n" for i in range(0, len(words), 12)
    ]
    return "".join(lines).encode()[:MIB]


def _record_block(rnd: random.Random) -> bytes:
    out = bytearray()
    t = rnd.randrange(1 << 30)
    while len(out) < MIB:
        t += rnd.randrange(1000)
        out += t.to_bytes(8, "little") + rnd.randrange(256).to_bytes(2, "little") + bytes(6)
    return bytes(out[:MIB])


def _make_disk(path: Path, tree: Path, size: int) -> None:
    efi_mib = 64 if size >= 1 << 30 else 8
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1764000000")
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    subprocess.run(
        ["sgdisk", "-U", "5a7e0000-0000-4000-8000-000000000001",
         f"-n1:2048:+{efi_mib}M", "-t1:ef00", "-c1:EFI",
         "-u1:5a7e0000-0000-4000-8000-000000000002",
         "-n2:0:0", "-t2:8300", "-c2:root", "-u2:5a7e0000-0000-4000-8000-000000000003",
         str(path)], check=True, capture_output=True,
    )  # fmt: skip
    fat = "16" if efi_mib >= 64 else "12"  # mkfs.vfat picks by disk size, not partition size
    subprocess.run(["mkfs.vfat", "-F", fat, "-i", "5a7e0001", "--offset", "2048", str(path),
                    str(efi_mib * 1024)], check=True, capture_output=True)  # fmt: skip
    start = 2048 + efi_mib * 2048
    sectors = size // 512 - 34 - start
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), "-U", "5a7e0000-0000-4000-8000-000000000004",
         "-E", f"offset={start * 512},hash_seed=5a7e0000-0000-4000-8000-000000000005",
         str(path), f"{sectors // 2}k"], check=True, capture_output=True, env=env,
    )  # fmt: skip


def changed_copy(disk: Path, dest: Path, chunk_size: int, fraction: float) -> int:
    """A copy of ``disk`` with ``fraction`` of its chunks (a fixed random pick) changed
    by a 64 KiB edit each, like files rewritten in place.  Returns chunks changed."""
    subprocess.run(["cp", "--sparse=always", str(disk), str(dest)], check=True)
    count = -(-disk.stat().st_size // chunk_size)
    rnd = random.Random(5)
    picked = rnd.sample(range(count), max(1, round(count * fraction)))
    with open(dest, "r+b") as fh:
        for i in picked:
            fh.seek(i * chunk_size + 8192)
            fh.write(_text_block(rnd)[: 64 * 1024])
    return len(picked)


# ------------------------------------------------------------------- measurements


def slate_cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", "--home", str(home), "image", *args]


def stored_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "store" / "chunks").rglob("*.zst"))


def _run(args: list[str], **kw: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its threads/children)."""
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    wall = run_timed(args, **kw)
    return wall, _cpu(resource.RUSAGE_CHILDREN) - cpu


def paired(
    baseline: list[str], slate: list[str], runs: int, before: Callable[[], object]
) -> tuple[float, float, float, float]:
    """Baseline and Slate run alternately (so load from other jobs hits both alike):
    medians of (baseline wall, slate wall, baseline CPU, slate CPU)."""
    results = []
    for _ in range(runs):
        before()
        b = _run(baseline)
        before()
        s = _run(slate, stdout=subprocess.DEVNULL, cwd=ROOT)
        results.append((b[0], s[0], b[1], s[1]))
    return tuple(median([r[k] for r in results]) for k in range(4))  # type: ignore[return-value]


def measure(disk: Path, work: Path, runs: int) -> list[Row]:
    mib = disk.stat().st_size / MIB
    subprocess.run(["cat", str(disk)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    zst = work / "disk.zst"
    subprocess.run(["zstd", "-3", "-T0", "-q", "-f", str(disk), "-o", str(zst)], check=True)
    home, out = work / "home", work / "out.img"

    def clear_home() -> None:
        shutil.rmtree(home, ignore_errors=True)

    def clear_out() -> None:
        out.unlink(missing_ok=True)

    zi, si, zi_cpu, si_cpu = paired(
        ["sh", "-c", f"zstd -3 -T0 -c '{disk}' > /dev/null"],
        slate_cli(home, "import", str(disk), "--name", "bench"), runs, clear_home,
    )  # fmt: skip
    clear_home()  # a fresh store for the export and re-import figures
    subprocess.run(slate_cli(home, "import", str(disk), "--name", "bench"), check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
    stored = stored_bytes(home)
    ze, se, ze_cpu, se_cpu = paired(
        ["sh", "-c", f"zstd -d -q -c '{zst}' > '{out}'"],
        slate_cli(home, "export", "bench", str(out)), runs, clear_out,
    )  # fmt: skip
    subprocess.run(["cmp", str(disk), str(out)], check=True)  # the export is exact
    clear_out()

    changed = work / "changed.img"
    chunk_size = Store(Layout(home)).resolve("bench").disks[0].chunk_size
    n = changed_copy(disk, changed, chunk_size, 0.05)
    subprocess.run(slate_cli(home, "import", str(changed), "--name", "bench"), check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
    growth = stored_bytes(home) - stored
    return [
        Row("import throughput (vs zstd -3 -T0)", mib / si, mib / zi, "MiB/s", ">= 0.7x"),
        Row("export throughput (vs zstd -d > file)", mib / se, mib / ze, "MiB/s", ">= 1.0x"),
        Row("stored size (vs zstd -3 whole disk)", stored / MIB, zst.stat().st_size / MIB, "MiB",
            "<= 1.05x"),
        Row(f"re-import, {n} chunks (5 %) changed: growth", growth / MIB, stored / MIB, "MiB",
            "<= 0.06x"),
        Row("import CPU time (vs zstd -3 -T0)", si_cpu, zi_cpu, "s", "(info)"),
        Row("export CPU time (vs zstd -d)", se_cpu, ze_cpu, "s", "(info)"),
    ]  # fmt: skip


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def sweep(disk: Path, work: Path) -> None:
    """CPU seconds and stored size per chunk size and zstd level (in-process import, 1
    run each).  CPU time, unlike wall time, barely moves when other jobs share the
    machine; the baseline is the CPU time of `zstd -3 -T0` on the same disk."""
    before = _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(["sh", "-c", f"zstd -3 -T0 -c '{disk}' > /dev/null"], check=True)
    base = _cpu(resource.RUSAGE_CHILDREN) - before
    print(f"\nsweep (in-process import; zstd -3 -T0 took {base:.1f} CPU s)")
    print(f"{'chunk':>6} {'level':>5} {'CPU s':>7} {'CPU ratio':>9} {'stored MiB':>11}")
    for chunk_mib in (1, 2, 4):
        for level in (1, 3, 6):
            home = work / f"sweep-{chunk_mib}-{level}"
            store = Store(Layout(home))
            before = _cpu(resource.RUSAGE_SELF)
            import_image(store, [disk], "s", chunk_size=chunk_mib * MIB, level=level)
            cpu = _cpu(resource.RUSAGE_SELF) - before
            stored = stored_bytes(home) / MIB
            print(f"{chunk_mib:>4}Mi {level:>5} {cpu:>7.1f} {cpu / base:>8.2f}x {stored:>11.1f}")
            shutil.rmtree(home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", help="synthetic disk size (default 2G; 256M with --quick)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="256 MiB, 1 run")
    parser.add_argument("--sweep", action="store_true", help="also sweep chunk size/level")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--cache", type=Path, default=default_cache / "slate-bench")
    args = parser.parse_args(argv)
    size = parse_size(args.size or ("256M" if args.quick else "2G"))
    runs = 1 if args.quick else args.runs
    disk = build_disk(args.cache, size)
    work = args.cache / f"work-{os.getpid()}"
    work.mkdir(parents=True)
    try:
        rows = measure(disk, work, runs)
        print_rows(rows, f"slate image bench: {size >> 20} MiB disk, median of {runs} run(s), "
                         f"{os.cpu_count()} CPUs")  # fmt: skip
        if args.sweep:
            sweep(disk, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
