"""Two versions of evaltray's code in one process, alternating batches of the same rows (issue 13 part 7).

    python bench/bench_same_process.py --before /work/main/src                      # scrub_table, seed 2
    python bench/bench_same_process.py --before OLD/src --what assembly --seed 1    # span assembly, building set

On a machine shared with other work, fresh processes timed in turns (``bench_scrub_versions.py``) spread ±20% from
round to round, more than a change of a few percent. Here both versions are imported side by side (each its own
``evaltray`` modules; this checkout's ``src`` is "after"), and each batch of rows is run by both, one right after
the other, in alternating order. Each version keeps its warm state across batches, as a receiver worker does:
its scrubber and the detections it remembers, the tagger's caches. Printed: each version's CPU µs a trace (min and
median over batches), the median of the paired ratios, and whether both versions gave the same output.
``--what scrub``: :func:`~evaltray.scrub.scrub_table` over the rows ``bench_otlp.py`` posts (stored unscrubbed, as in
``bench_scrub_versions.py``). ``--what assembly``: the receiver main process's per-round work after decoding,
``traces_from_spans`` and ``batch_table``. (An import made inside a function would find the version loaded last:
the functions timed here make none on these paths.)
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WARM = 20  # rows each version scrubs before the clock starts (models loaded, the shared prompt detected)


def load(src: Path) -> dict[str, ModuleType]:
    """The evaltray modules the bench calls, imported from ``src`` (any evaltray loaded before is set aside)."""
    for name in [k for k in sys.modules if k == "evaltray" or k.startswith("evaltray.")]:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        names = ("evaltray.scrub", "evaltray.ingest.span_traces", "evaltray.ingest._driver", "evaltray.ingest.otlp")
        return {name.rsplit(".", 1)[-1]: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(src))


def _scrub(mods: dict[str, ModuleType], batch: Any, state: dict[str, Any]) -> Any:
    out, _ = mods["scrub"].scrub_table(batch, state["config"])
    return out.drop_columns(["ingested_at"]).to_pylist()


def _assemble(mods: dict[str, ModuleType], batch: Any, state: dict[str, Any]) -> Any:
    traces = list(mods["span_traces"].traces_from_spans(batch, "otel", Path("otlp")))
    table = mods["_driver"].batch_table(traces, 1.0, 0.95, "otlp")[0]
    return table.drop_columns(["ingested_at"]).to_pylist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the other version's src folder")
    ap.add_argument("--what", choices=["scrub", "assembly"], default="scrub")
    ap.add_argument("--traces", type=int, default=3000, help="OTLP traces (three spans each)")
    ap.add_argument("--seed", type=int, default=2, help="1: the building set; 2: the measuring set")
    ap.add_argument("--batch", type=int, default=150, help="traces a batch")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    load(SRC)  # the rows are made once, by this checkout's code
    import bench_otlp
    from bench_scrub_versions import _otlp_rows

    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "scrub":
            rows: Any = _otlp_rows(args.traces, args.seed, Path(tmp))
            batches = [rows.slice(s, args.batch) for s in range(WARM, rows.num_rows, args.batch)]
        else:
            spans = [
                s
                for body in bench_otlp.batches(bench_otlp.traces(args.traces, args.seed))
                for s in bench_otlp.otlp.decode(body, "protobuf").spans
            ]
            size = 3 * args.batch
            batches = [spans[s : s + size] for s in range(0, len(spans), size)]
        versions = {"before": load(args.before.resolve()), "after": load(SRC)}
        run = _scrub if args.what == "scrub" else _assemble
        states: dict[str, dict[str, Any]] = {}
        for name, mods in versions.items():
            states[name] = {"config": mods["scrub"].ScrubConfig(None, b"bench", None)}
            if args.what == "scrub":
                run(mods, rows.slice(0, WARM), states[name])
        times: dict[str, list[float]] = {name: [] for name in versions}
        same = True
        for k, batch in enumerate(batches):
            order = list(versions) if k % 2 == 0 else list(versions)[::-1]
            outputs = {}
            for name in order:
                n = batch.num_rows if args.what == "scrub" else len(batch) / 3
                t = time.process_time()
                outputs[name] = run(versions[name], batch, states[name])
                times[name].append((time.process_time() - t) / n * 1e6)
            same = same and outputs["before"] == outputs["after"]
    print(f"{args.what}, seed {args.seed}, {args.traces:,} traces in batches of {args.batch}")
    for name, src in (("before", args.before.resolve()), ("after", SRC)):
        ts = times[name]
        print(f"{name:6s} {src}: min {min(ts):,.0f}, median {statistics.median(ts):,.0f} CPU µs a trace")
    paired = statistics.median(b / a for b, a in zip(times["before"], times["after"], strict=True))
    print(
        f"after faster by {paired:.3f}x (median of paired ratios); min / min {min(times['before']) / min(times['after']):.3f}x"
    )
    if not same:
        raise SystemExit("the versions' outputs differ: not the same output")
    print("output: identical in every batch")


if __name__ == "__main__":
    main()
