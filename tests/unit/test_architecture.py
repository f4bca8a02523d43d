"""The house rules of docs/architecture.md, checked on the code itself:

* the boot environment's files, copied alone (as the builder packs them) and imported by
  Debian's python3 in isolated mode, load no Flask, werkzeug, sqlite3 or boto3;
* no circle among the product's modules, lazy (function-level) imports counted;
* no upward arrow: the client and the shared wire/format package import nothing of the
  server, and the server's run time nothing of the boot-image builder or the CLI's
  output helpers outside the CLI.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootimage.builder.build import client_files

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("appliance", "bootimage", "webui")
HEAVY = ("flask", "werkzeug", "sqlite3", "_sqlite3", "boto3", "botocore", "jinja2")
BOOT_PYTHON = "/usr/bin/python3"


def test_the_client_alone_loads_nothing_of_the_server(tmp_path: Path) -> None:
    if not Path(BOOT_PYTHON).exists():  # pragma: no cover - every Debian machine has it
        pytest.fail(f"{BOOT_PYTHON} is missing: it is what the boot environment runs")
    names = []
    for rel, src in client_files().items():
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if rel.endswith(".py") and not rel.endswith(("__init__.py", "__main__.py")):
            names.append(rel.removesuffix(".py").replace("/", "."))
    assert "bootimage.client.roomseat" in names and "appliance.formats.roomwire" in names
    probe = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [BOOT_PYTHON, "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout))
    assert sorted(m for m in loaded if m.split(".")[0] in HEAVY) == []
    # Nothing outside the copied files was imported from the product either.
    strays = [m for m in loaded if m.split(".")[0] in PRODUCT and m not in set(names)]
    assert sorted(strays) == ["appliance", "appliance.formats", "bootimage", "bootimage.client"]


def _modules() -> dict[str, Path]:
    found = {}
    for top in PRODUCT:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Product modules ``name`` imports anywhere in its file (top level or lazily)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports(path, name, modules) for name, path in modules.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted.
    A package's ``__init__`` importing its own submodules is not a circle by itself:
    edges from a package to the modules inside it are left out."""
    edges = {
        a: {b for b in bs if not b.startswith(a + ".")} for a, bs in edges.items()
    }  # a package re-exporting its own parts
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_scanner_sees_a_circle_through_a_lazy_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": {"p.x"}, "p.x": {"p"}}
    assert circles(edges) == [["a", "b", "c"]]
    src = ROOT / "appliance" / "roomcast" / "__init__.py"
    lazy = imports(src, "appliance.roomcast", _modules())
    assert "appliance.roomcast.sender" in lazy  # imported inside session_for()


def test_no_circle_among_the_product_modules() -> None:
    assert circles(graph()) == []


def test_no_upward_arrows() -> None:
    edges = graph()
    shared = [m for m in edges if m.startswith("appliance.formats")]
    client = [m for m in edges if m.startswith("bootimage.client")]
    up = sorted(
        f"{m} -> {t}"
        for m in shared + client
        for t in edges[m]
        if not (t.startswith(("appliance.formats", "bootimage.client")) or t in ALLOWED_DOWN)
    )
    assert up == []
    server = [m for m in edges if m.startswith("appliance.") and not m.startswith("appliance.cli")]
    runtime = [m for m in server if not m.startswith(("appliance.lab", "appliance.formats"))]
    assert sorted(
        f"{m} -> {t}" for m in runtime for t in edges[m] if t.startswith(("bootimage.", "webui"))
    ) == sorted(RUNTIME_BUILDS)
    console = [m for m in edges if m.startswith("webui")]
    cli = [f"{m} -> {t}" for m in console for t in edges[m] if t.startswith("appliance.cli")]
    assert sorted(cli) == []


# The shared package and the client may import these besides themselves.
ALLOWED_DOWN = {"appliance", "appliance.errors", "bootimage"}
# The server builds the boot environment when it starts (`slate serve` keeps it current):
# the builder, not the client's code, and only from these modules.
RUNTIME_BUILDS: list[str] = []
