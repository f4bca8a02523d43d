"""The boot environment's client is byte-compiled at build time, reproducibly, for the
tree's Python only; /init sets the network sysctls the client relies on."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

from bootimage.builder import build, initscript

TAG = sys.implementation.cache_tag  # e.g. cpython-311


def _tree(root: Path, magic: bytes) -> Path:
    cache = root / "usr/lib/python3.11/__pycache__"
    cache.mkdir(parents=True)
    (cache / f"os.{TAG}.pyc").write_bytes(magic + bytes(12))
    return root


def _stage(root: Path) -> Path:
    build._install_client(root)
    return root


def _pycs(stage: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(stage)): p.read_bytes()
        for p in sorted(stage.glob("opt/slate/**/__pycache__/*.pyc"))
    }


def test_every_client_module_gets_a_reproducible_pyc(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", importlib.util.MAGIC_NUMBER)
    one, two = _stage(tmp_path / "one"), _stage(tmp_path / "two")
    assert build._compile_client(tree, one) == f"client byte-compiled for {TAG}"
    build._compile_client(tree, two)
    pycs = _pycs(one)
    assert len(pycs) == len(build.client_files())
    assert f"opt/slate/bootimage/client/__pycache__/restore.{TAG}.pyc" in pycs
    assert pycs == _pycs(two)  # same sources, same bytes, whatever the hash seed here


def test_pyc_runs_and_names_the_path_it_has_in_the_boot_environment(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", importlib.util.MAGIC_NUMBER)
    stage = _stage(tmp_path / "stage")
    build._compile_client(tree, stage)
    pyc = stage / f"opt/slate/bootimage/client/__pycache__/cmdline.{TAG}.pyc"
    code = marshal.loads(pyc.read_bytes()[16:])
    assert code.co_filename == "/opt/slate/bootimage/client/cmdline.py"
    # Unchecked-hash pycs: the interpreter imports them without looking at the source.
    (stage / "opt/slate/bootimage/client/cmdline.py").write_text("raise SystemExit(3)\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import bootimage.client.cmdline as c; print(c.parse_args)"],
        cwd=stage / "opt/slate",
        env={"PYTHONPATH": str(stage / "opt/slate"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "function parse_args" in proc.stdout


def test_other_python_leaves_the_client_to_compile_itself(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", b"\x00\x01\r\n")
    stage = _stage(tmp_path / "stage")
    assert "bytecode differs" in build._compile_client(tree, stage)
    assert _pycs(stage) == {}


def test_init_sets_the_sysctls_before_the_client_starts() -> None:
    lines = initscript.INIT.splitlines()
    client = lines.index("python3 -m bootimage.client")
    for key, value in initscript.SYSCTLS.items():
        line = f"echo {value} > /proc/sys/{key.replace('.', '/')}"
        assert line in lines and lines.index(line) < client
    assert lines.index("mount -t proc proc /proc") < client
