"""Near-duplicate cost on templated support traffic (issues 11 §4 and 17).

    python bench/bench_templated.py                  # this branch at 100k and 1M, the base commit at 100k
    python bench/bench_templated.py --base-1m        # also the base commit at 1M (about half an hour)

Corpus: ``bench/_gen.templated_texts`` — 900 templates (25 bodies x 6 openings x 6 closings) with slot
fills: a 7-digit order number, a name (half already scrubbed to ``<PERSON_1>``), a date, a product, a
price from a catalogue of six, a count of days. Each run is its own process, so its peak RSS is its own;
``dedup(near=0.8, paraphrase=None)`` end to end. The base is ``git show 7e8cc62:src/evaltray/curate/dedup.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gen import templated_texts  # noqa: E402


def child(which: str, n: int) -> None:
    """One measured run; prints one JSON line."""
    if which == "base":
        from bench_paraphrase import base_dedup

        fn = base_dedup()
    else:
        from evaltray.curate.dedup import dedup as fn
    texts = templated_texts(n)
    ids = [f"t{i:07d}" for i in range(n)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    res = fn(ids, texts, near=0.8, paraphrase=None)
    secs = time.perf_counter() - t
    s = res.stats
    out = {
        "which": which,
        "n": n,
        "seconds": round(secs, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mib": round(before),
        "groups": len(res.groups),
        "representatives": s["representatives"],
        "candidates": s.get("near_candidates"),
        "verified_by_jaccard": s.get("near_estimated"),
        "near_pairs": s.get("near_verified"),
        "seconds_near": round(s.get("seconds_near", 0.0), 2),
    }
    print(json.dumps(out))


def run(which: str, n: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, "-n", str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("base", "new"))
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--base-1m", action="store_true", help="also run the base commit at 1M")
    ap.add_argument("--sizes", default="100000,1000000", help="sizes for this branch")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.n)
        return 0
    runs = [("new", int(k)) for k in args.sizes.split(",")] + [("base", 100_000)]
    if args.base_1m:
        runs.append(("base", 1_000_000))
    results = []
    for which, n in runs:
        r = run(which, n)
        results.append(r)
        print(json.dumps(r), flush=True)
    new = {r["n"]: r for r in results if r["which"] == "new"}
    if 100_000 in new and 1_000_000 in new:
        print(f"cost x10 data (this branch): x{new[1_000_000]['seconds'] / new[100_000]['seconds']:.2f} time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
