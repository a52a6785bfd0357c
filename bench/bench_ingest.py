"""Benchmark for the ingest figure (issue: ingest): OpenAI chat JSONL into the Parquet store.

    python bench/bench_ingest.py                  # 1M traces: DuckDB, then evaltray, on the same file
    python bench/bench_ingest.py --n 100000       # smaller
    python bench/bench_ingest.py --workers 1      # evaltray in one process
    python bench/bench_ingest.py --data DIR       # keep the generated file in DIR and reuse it next time
    python bench/bench_ingest.py --base OLD/src   # also the ingest of another checkout's code, in the same run
    python bench/bench_ingest.py --corpus templated  # bench_pipeline.py's short templated chats instead

The figure: ``ingest_files(ws, [file], fmt="openai")`` reaches at least 0.4x (issue 11 §5; issue 3 asked
0.5x) the rows/s of DuckDB's own ``COPY (SELECT * FROM read_json(file, format='newline_delimited')) TO
'out.parquet'`` on the same file in the same run, with peak memory under 2 GB. On a machine other jobs load,
the CPU seconds of the call (the process and its workers; DuckDB's threads) are the steadier yardstick: their
ratio is printed too. ``--base`` runs the same ingest with another source tree first on ``PYTHONPATH``
(the code before a change), so before and after are compared in one run. Each engine runs in its own subprocess; the time is that of
the ingest call or the COPY statement alone (imports and workspace creation excluded), with the file
already in the page cache. Memory is reported twice: the kernel's peak RSS of the largest process of
the subprocess's tree (``ru_maxrss`` of the waited child, i.e. what RUSAGE_CHILDREN reports for it), and
the peak of the tree's summed RSS sampled every 50 ms (pages shared by forked workers counted in each).
Figures go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gen import write_chats  # noqa: E402
from bench_pipeline import _write as write_templated  # noqa: E402

TARGET_RATIO = 0.4  # issue 11 §5 (issue 3 asked 0.5)
MEMORY_LIMIT_MB = 2048

_DUCKDB = """
import json, resource, sys, time
import duckdb
def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
c0, t0 = cpu(), time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_json('{src}', format='newline_delimited')) TO '{out}' (FORMAT parquet)")
seconds, call_cpu = time.perf_counter() - t0, cpu() - c0
rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(json.dumps({"seconds": seconds, "cpu": call_cpu, "rows": rows, "threads": threads, "version": duckdb.__version__}))
"""

_EVALTRAY = """
import json, resource, sys, time
from pathlib import Path
from evaltray.ingest import ingest_files
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
src, root, workers = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ws = Workspace.init(root, name="bench", user="bench")
def cpu():  # the workers count once the pool has been shut down (it is, when ingest_files returns)
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
c0, t0 = cpu(), time.perf_counter()
# scrubbing has its own figure (bench_scrub.py); this one measures the ingest path itself
report = ingest_files(ws, [src], fmt="openai", workers=int(workers) if workers else None, scrub=False)
seconds, call_cpu = time.perf_counter() - t0, cpu() - c0
rows = TraceStore(ws.traces_dir).count()
ws.close()
print(json.dumps({"seconds": seconds, "cpu": call_cpu, "rows": rows, "ingested": report.ingested, "issues": len(report.issues)}))
"""


def _tree_rss_mb(root: int) -> float:
    """Summed RSS of ``root`` and its descendants (Linux /proc), in MiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        with contextlib.suppress(OSError):  # the process ended meanwhile
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float, float, float]:
    """Run ``cmd``: its JSON result line, peak RSS of its largest process (MiB), sampled peak of its tree (MiB)
    and the CPU seconds of its tree (all of it, imports included)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    peak_tree = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            if sys.platform == "linux":
                peak_tree = max(peak_tree, _tree_rss_mb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed with exit code {proc.returncode}")
    # Linux reports ru_maxrss in KiB
    cpu = usage.ru_utime + usage.ru_stime
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024, peak_tree, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="chat lines to generate (default 1,000,000)")
    ap.add_argument("--workers", type=int, default=None, help="evaltray parser processes (default: usable CPUs)")
    ap.add_argument("--data", type=Path, default=None, help="directory to keep and reuse the generated file in")
    ap.add_argument("--base", type=Path, default=None, help="another checkout's src/: its ingest is run too (before)")
    ap.add_argument(
        "--corpus", choices=("chats", "templated"), default="chats", help="templated: bench_pipeline.py's short chats"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="evaltray-bench-") as tmp:
        data_dir = args.data or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        src = data_dir / f"{args.corpus}-{args.n}.jsonl"
        if not src.exists():
            t0 = time.perf_counter()
            (write_chats if args.corpus == "chats" else write_templated)(src.with_suffix(".partial"), args.n)
            src.with_suffix(".partial").replace(src)
            print(f"generated {args.n:,} lines in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        size_mb = src.stat().st_size / 2**20
        with src.open("rb") as fh:  # both engines read from the page cache
            while fh.read(1 << 24):
                pass

        workers = "" if args.workers is None else str(args.workers)
        runs = {
            "duckdb read_json -> parquet": run_measured([sys.executable, "-c", _DUCKDB, str(src), f"{tmp}/d.parquet"])
        }
        trees = {"": None} if args.base is None else {" (base)": args.base.resolve(), "": None}
        for label, tree in trees.items():
            env = None
            if tree is not None:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
            runs[f"evaltray ingest{label}"] = run_measured(
                [sys.executable, "-c", _EVALTRAY, str(src), f"{tmp}/ws{len(runs)}", workers], env
            )

    for name, (result, *_) in runs.items():
        if result["rows"] != args.n or result.get("issues"):
            raise SystemExit(f"{name}: {result['rows']} rows of {args.n} ({result.get('issues')} issues)")
    print(
        f"ingest benchmark: {args.n:,} OpenAI chat lines ({args.corpus}), {size_mb:,.0f} MiB; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; DuckDB {runs['duckdb read_json -> parquet'][0]['version']} "
        f"with {runs['duckdb read_json -> parquet'][0]['threads']} threads; evaltray workers={workers or 'auto'}"
    )
    print(
        f"{'engine':<30} {'seconds':>8} {'rows/s':>10} {'call CPU s':>10} {'tree CPU s':>10} {'peak RSS MiB':>13} "
        f"{'tree RSS MiB':>13} {'x duckdb':>9} {'x duckdb CPU':>12}"
    )
    duck = runs["duckdb read_json -> parquet"][0]
    for name, (result, rss, tree_rss, tree_cpu) in runs.items():
        print(
            f"{name:<30} {result['seconds']:>8.2f} {args.n / result['seconds']:>10,.0f} {result['cpu']:>10.1f} "
            f"{tree_cpu:>10.1f} {rss:>13,.0f} {tree_rss:>13,.0f} {duck['seconds'] / result['seconds']:>9.2f} "
            f"{duck['cpu'] / result['cpu']:>12.2f}"
        )
    ours, rss, tree_rss, _ = runs["evaltray ingest"]
    ratio = duck["seconds"] / ours["seconds"]
    print(
        f"ratio evaltray/duckdb rows/s: {ratio:.2f} (target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); "
        f"by CPU seconds of the call {duck['cpu'] / ours['cpu']:.2f}; evaltray peak memory {max(rss, tree_rss):,.0f} MiB "
        f"(limit {MEMORY_LIMIT_MB:,}: {'met' if max(rss, tree_rss) < MEMORY_LIMIT_MB else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
