"""CLI start-up time: this tree against another commit (default ``main``), the same commands, one run.

    python bench/bench_cli_start.py                  # 7 rounds, against main
    python bench/bench_cli_start.py --before 9eeea9a --rounds 11

The other commit's ``src/`` is unpacked with ``git archive`` into a temporary folder; each round runs every
command once with each tree (alternating which goes first), each a fresh interpreter (``python -c`` calling
``evaltray.cli.main``, as the installed script does). Wall time per command is the median over the rounds.
Commands: ``--help``; ``run --help``; ``stats size`` (a small command that computes, no workspace);
``tray stats --json`` in a fresh workspace (a small command that opens one). Figures go to stdout, after
and before side by side, with their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = "import sys\nfrom evaltray.cli import main\nsys.argv[0] = 'evaltray'\nmain()"
COMMANDS = {
    "--help": ["--help"],
    "run --help": ["run", "--help"],
    "stats size": ["stats", "size", "--baseline", "0.8", "--mde", "0.05", "--json"],
    "tray stats": ["tray", "stats", "--json"],
}


def _unpack(commit: str, into: Path) -> Path:
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _time(src: Path, args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", MAIN, *args], env=env, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="main", help="The commit to compare with (default: main).")
    ap.add_argument("--rounds", type=int, default=7)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"after": ROOT / "src", "before": _unpack(opts.before, Path(tmp) / "before")}
        ws = Path(tmp) / "ws"
        init = ["-u", "alice", "init", str(ws)]
        env = {**os.environ, "PYTHONPATH": str(trees["after"])}
        subprocess.run([sys.executable, "-c", MAIN, *init], env=env, capture_output=True, check=True)
        got: dict[tuple[str, str], list[float]] = {}
        for r in range(opts.rounds):
            order = ["after", "before"] if r % 2 == 0 else ["before", "after"]
            for name, args in COMMANDS.items():
                for tree in order:
                    got.setdefault((name, tree), []).append(_time(trees[tree], args, ws))
    print(
        f"CLI start-up, {opts.before} → this tree, median of {opts.rounds} rounds, python {sys.version.split()[0]}, {os.cpu_count()} cpus"
    )
    print(f"{'command':<14}{'after s':>9}{'before s':>10}{'before/after':>14}")
    for name in COMMANDS:
        after, before = (statistics.median(got[name, t]) for t in ("after", "before"))
        print(f"{name:<14}{after:>9.3f}{before:>10.3f}{before / after:>13.1f}×")


if __name__ == "__main__":
    main()
