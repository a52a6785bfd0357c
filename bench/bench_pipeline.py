"""Figure (issue 11 §5): templated support chats through ingest → scrub → dedup → cluster → sample, each
stage's time and peak memory, beside DuckDB's ``read_json → Parquet`` of the same file as the yardstick.

    python bench/bench_pipeline.py --n 100000        # the issue's figure is --n 1000000

Every stage runs in a process of its own (``evaltray`` commands on one workspace), so its peak RSS is its
own; the chats come from ``_gen.templated_texts`` (900 templates with slot fills, half the names already
placeholders) as OpenAI-format JSONL lines with an assistant answer. Cluster runs on the sample only, as
the issue asks: ``evaltray sample`` first picks 2,000 traces, which are clustered with ``--where``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _gen import templated_texts  # noqa: E402

_DUCKDB = """
import json, sys, time, duckdb
t0 = time.perf_counter()
con = duckdb.connect()
con.execute(f"COPY (SELECT * FROM read_json('{sys.argv[1]}', format='newline_delimited')) TO '{sys.argv[2]}' (FORMAT parquet)")
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def _write(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(templated_texts(n, seed=11)):
            row = {
                "id": f"chat-{i}",
                "metadata": {"feature": ("refunds", "shipping", "returns", "billing")[i % 4]},
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": "Thanks, I am on it."},
                ],
            }
            fh.write(json.dumps(row) + "\n")


def _stage(name: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one stage; its wall time and the peak RSS of its largest process (MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {proc.stderr.read() if proc.stderr else ''}")
    return {"seconds": round(seconds, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    evaltray = [str(Path(sys.executable).parent / "evaltray")]
    with tempfile.TemporaryDirectory(prefix="evaltray-pipeline-") as tmp:
        root = Path(tmp)
        src = root / "chats.jsonl"
        _write(src, args.n)
        env = {**os.environ, "EVALTRAY_CONFIG_DIR": str(root / "config")}
        figures: dict[str, dict[str, float]] = {}
        figures["duckdb read_json → parquet"] = _stage(
            "duckdb", [sys.executable, "-c", _DUCKDB, str(src), str(root / "d.parquet")], root, env
        )
        subprocess.run([*evaltray, "--user", "bench", "init", "ws"], cwd=root, env=env, check=True, capture_output=True)
        ws = root / "ws"
        toml = ws / "evaltray.toml"  # ingest unscrubbed, then `evaltray scrub`: each stage timed on its own
        toml.write_text(toml.read_text().replace("scrub = true ", "scrub = false", 1))
        figures["ingest (scrub off)"] = _stage("ingest", [*evaltray, "ingest", str(src)], ws, env)
        figures["scrub"] = _stage("scrub", [*evaltray, "scrub"], ws, env)
        figures["dedup"] = _stage("dedup", [*evaltray, "dedup"], ws, env)
        figures["plan init"] = _stage("plan", [*evaltray, "plan", "init"], ws, env)
        figures["sample 2,000"] = _stage("sample", [*evaltray, "sample", "--size", "2000"], ws, env)
        where = "trace_id IN (SELECT trace_id FROM traces USING SAMPLE 2000 ROWS)"
        figures["cluster (2,000)"] = _stage("cluster", [*evaltray, "cluster", "--where", where], ws, env)
        duck = figures["duckdb read_json → parquet"]["seconds"]
        print(f"{args.n:,} templated chats, {src.stat().st_size / 2**20:.0f} MiB, {os.cpu_count()} CPUs")
        print(f"{'stage':<28} {'seconds':>8} {'peak MiB':>9} {'× DuckDB':>9}")
        for name, f in figures.items():
            print(f"{name:<28} {f['seconds']:>8.1f} {f['peak_mib']:>9.0f} {f['seconds'] / duck:>9.2f}")
        total = sum(f["seconds"] for name, f in figures.items() if not name.startswith("duckdb"))
        print(
            f"{'pipeline total':<28} {total:>8.1f}   (ingest ÷ DuckDB: {duck / figures['ingest (scrub off)']['seconds']:.2f}×)"
        )


if __name__ == "__main__":
    main()
