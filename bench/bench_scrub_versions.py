"""Scrub throughput of two versions of evaltray's code on the same rows, in turns, in one run (issue 13 part 7).

    python bench/bench_scrub_versions.py --before /work/main/src                # OTLP rows, seed 2 (measuring)
    python bench/bench_scrub_versions.py --before OLD/src --seed 1 --traces 3000  # the building set

Each round runs one child process per version (``PYTHONPATH`` set to that version's ``src``; this checkout's
``src`` is "after"), alternating, so both see the same machine load. A child builds the rows
``bench/bench_otlp.py`` posts (three spans a trace, two of them chat calls; seed 1 is the building set, seed 2
the measuring set), stores them with scrubbing off as ``evaltray ingest`` of an OTLP file does, then times
:func:`~evaltray.scrub.scrub_table` over them with a fresh scrubber (nothing remembered), in CPU-seconds of the
process. It prints that time and a digest of the scrubbed rows; the two versions must give the same digest (the
same output), or the run fails. The figure is traces per CPU-second, the best of the rounds for each version,
and their ratio (best of rounds: on a machine shared with other work the least disturbed run is the truest).
``--corpus single`` does the same over ``bench/bench_scrub.py``'s single-message traces (HaluEval queries and
Faker PII sentences) with ``Scrubber.scrub_trace``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _otlp_rows(n: int, seed: int, tmp: Path) -> object:
    """The rows ``bench_otlp.py`` would make queryable, as one trace-store table (stored unscrubbed)."""
    import pyarrow as pa
    from bench_otlp import _workspace, batches, traces

    from evaltray.core.traces import TraceStore
    from evaltray.ingest import ingest_files, otlp

    path = tmp / "spans.otlp.jsonl"
    path.write_bytes(b"".join(otlp.protobuf_as_json(b) for b in batches(traces(n, seed))))
    ws = _workspace(tmp / "raw", "bench", False)
    ingest_files(ws, [path], fmt="otel", actor="bench")
    ws.close()
    store = TraceStore(tmp / "raw" / "traces")
    return pa.concat_tables([store.read_part(p) for p in store.parts()])


def child(args: argparse.Namespace) -> None:
    """Time one version (the one on ``sys.path``) and print ``{"cpu": s, "n": traces, "digest": hex}``."""
    from bench_otlp import _workspace

    from evaltray.scrub import Scrubber, ScrubConfig, scrub_table

    with tempfile.TemporaryDirectory() as tmp:
        digest = hashlib.sha256()
        if args.corpus == "otlp":
            table = _otlp_rows(args.traces, args.seed, Path(tmp))
            ws = _workspace(Path(tmp) / "scrubbed", "bench", True)
            config = ScrubConfig.for_workspace(ws)
            ws.close()
            config = ScrubConfig(config.entities, b"bench", None, config.max_field_chars)  # one pseudonym key
            config.scrubber()  # built (the gazetteer and the model loaded) before the clock starts
            t = time.process_time()
            out, _ = scrub_table(table, config)
            cpu, n = time.process_time() - t, table.num_rows
            for row in out.drop_columns(["ingested_at"]).to_pylist():
                digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        else:
            from bench_scrub import corpus

            texts = corpus(None)
            scrubber = Scrubber()
            t = time.process_time()
            results = [scrubber.scrub_trace(f"t{i}", [{"role": "user", "content": x}]) for i, x in enumerate(texts)]
            cpu, n = time.process_time() - t, len(texts)
            for r in results:
                digest.update(json.dumps([r.messages, r.counts, r.error], sort_keys=True).encode())
    print(json.dumps({"cpu": cpu, "n": n, "digest": digest.hexdigest()}))


def _run(src: Path, args: argparse.Namespace) -> dict[str, float | str]:
    cmd = [sys.executable, __file__, "--child", "--corpus", args.corpus, "--traces", str(args.traces)]
    cmd += ["--seed", str(args.seed)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(HERE)])}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="the other version's src folder (e.g. a main checkout's src)")
    ap.add_argument("--corpus", choices=["otlp", "single"], default="otlp")
    ap.add_argument("--traces", type=int, default=3000, help="OTLP traces (three spans each)")
    ap.add_argument("--seed", type=int, default=2, help="1: the building set; 2: the measuring set")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.before is None:
        ap.error("--before SRC is needed")
    versions = {"before": args.before.resolve(), "after": SRC}
    runs: dict[str, list[dict[str, float | str]]] = {k: [] for k in versions}
    for _ in range(args.rounds):
        for name, src in versions.items():
            runs[name].append(_run(src, args))
    digests = {r["digest"] for rs in runs.values() for r in rs}
    what = f"seed {args.seed}, {args.traces:,} OTLP traces" if args.corpus == "otlp" else "single-message traces"
    print(f"corpus: {what}; {args.rounds} rounds, versions alternating; load average {os.getloadavg()[0]:.1f}")
    best = {}
    for name, src in versions.items():
        n = float(runs[name][0]["n"])
        cpus = [float(r["cpu"]) for r in runs[name]]
        best[name] = n / min(cpus)
        shown = ", ".join(f"{n / c:,.0f}" for c in cpus)
        print(f"{name:6s} {src}: best {best[name]:,.0f} traces/CPU-s (rounds: {shown})")
    print(f"ratio after / before: {best['after'] / best['before']:.2f}x")
    if len(digests) != 1:
        raise SystemExit(f"the versions' scrubbed rows differ ({len(digests)} digests): not the same output")
    print("scrubbed rows: identical in every run (one digest)")


if __name__ == "__main__":
    main()
