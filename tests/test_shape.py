"""The package's shape, checked: layers point one way, no import cycle, no private name crosses a module,
no function too long to read, lint clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "evaltray"

#: Which packages each layer may import. Front ends (cli, demo, web, the package's public surface) sit on
#: top of the stages; every stage stands on core; a stage uses another only where the flywheel needs it.
ALLOWED = {
    "core": set(),
    "scrub": {"core"},
    "ingest": {"core", "scrub"},  # PII is scrubbed before anything is stored
    "tray": {"core"},
    "curate": {"core", "tray"},  # the plan counts what the pool and tray hold; sampling fills the pool
    "evaluate": {"core", "tray", "curate"},  # runs score a release's cases; synth and live read plan, dedup
    # contamination normalizes and embeds as curate does, asks an LLM and reads run reports as evaluate does
    "monitor": {"core", "tray", "curate", "evaluate"},
}
FRONT_ENDS = {"cli", "demo", "web", "__init__"}

#: Function bodies longer than this (as ``ruff format`` lays them out; the signature, which the formatter puts
#: one parameter a line, is not counted) are split, except the declarative tables named here.
MAX_LINES = 80
DECLARATIVE = {"evaltray.core.migrations.m001_initial"}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return found


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in ``module``, lazy ones included."""
    path, is_pkg = MODULES[module]
    base = module if is_pkg else module.rsplit(".", 1)[0]
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno) for alias in node.names)
    return [(t, n, line) for t, n, line in found if t == "evaltray" or t.startswith("evaltray.")]


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_layers_point_one_way() -> None:
    wrong = []
    for module in MODULES:
        layer = _layer(module)
        if layer in FRONT_ENDS:
            continue
        for target, _, line in _imports(module):
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    # a package's __init__ re-exporting its own modules is not a cycle of logic
    graph = {m: {t for t in ts if not (MODULES[t][1] and m.startswith(t + "."))} for m, ts in graph.items()}
    cycles, index, low, stack, on = [], {}, {}, [], set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                on.discard(w)
                comp.append(w)
            on.discard(v)
            if comp:
                cycles.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_no_private_name_crosses_a_module() -> None:
    crossing = []
    for module in MODULES:
        for target, name, line in _imports(module):
            if name is not None and name.startswith("_") and not name.startswith("__"):
                crossing.append(f"{module}:{line} takes {target}.{name}")
            private = [i for i, part in enumerate(target.split(".")) if part.startswith("_")]
            if private:  # a private module is used by its own package only
                owner = ".".join(target.split(".")[: private[0]])
                if not (module == owner or module.startswith(owner + ".")):
                    crossing.append(f"{module}:{line} takes private module {target}")
    assert not crossing, "\n".join(crossing)


def test_no_function_too_long_to_read() -> None:
    long = []
    for module, (path, _) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                if size > MAX_LINES and f"{module}.{node.name}" not in DECLARATIVE:
                    long.append(f"{module}.{node.name}: {size} lines")
    assert not long, "\n".join(long)


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_clean(command: list[str]) -> None:
    done = subprocess.run([_ruff(), *command, "src", "tests", "bench"], cwd=SRC.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
