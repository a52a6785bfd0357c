"""Near-duplicate cost on templated support traffic (issues 11 §4 and 17).

    python bench/bench_templated.py                  # this branch at 100k and 1M, the base commit at 100k
    python bench/bench_templated.py --base-1m        # also the base commit at 1M (about half an hour)
    python bench/bench_templated.py --cli 1000000    # `evaltray dedup` (read, dedup, embed, paraphrase, write)

Corpus: ``bench/_gen.templated_texts`` — 900 templates (25 bodies x 6 openings x 6 closings) with slot
fills: a 7-digit order number, a name (half already scrubbed to ``<PERSON_1>``), a date, a product, a
price from a catalogue of six, a count of days. Each run is its own process, so its peak RSS is its own;
``dedup(near=0.8, paraphrase=None)`` end to end, wall and CPU time (user + system, both cores: on a
machine shared with other jobs the wall time measures the others too). The base is ``git show 7e8cc62:src/evaltray/curate/dedup.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
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
    t, cpu = time.perf_counter(), time.process_time()
    res = fn(ids, texts, near=0.8, paraphrase=None)
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    s = res.stats
    out = {
        "which": which,
        "n": n,
        "seconds": round(secs, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mib": round(before),
        "groups": len(res.groups),
        "representatives": s["representatives"],
        "candidates": s.get("near_candidates"),
        "verified_by_jaccard": s.get("near_estimated"),
        "near_pairs": s.get("near_verified"),
        "seconds_near": round(s.get("seconds_near", 0.0), 2),
        "slot_classes": s.get("near_slot_classes"),
    }
    print(json.dumps(out))


def run(which: str, n: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, "-n", str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli(n: int) -> dict:
    """``evaltray dedup`` with its defaults (paraphrase on, WordLlama) on ``n`` templated chats ingested
    into a fresh workspace (scrub off: the texts carry their placeholders already); its own process."""
    from bench_pipeline import _write

    evaltray = str(Path(sys.executable).parent / "evaltray")
    with tempfile.TemporaryDirectory(prefix="evaltray-templated-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "EVALTRAY_CONFIG_DIR": str(root / "config")}
        _write(root / "chats.jsonl", n)
        subprocess.run([evaltray, "--user", "bench", "init", "ws"], cwd=root, env=env, check=True, capture_output=True)
        toml = root / "ws" / "evaltray.toml"
        toml.write_text(toml.read_text().replace("scrub = true ", "scrub = false", 1))
        subprocess.run([evaltray, "ingest", str(root / "chats.jsonl")], cwd=root / "ws", env=env, check=True)
        t = time.perf_counter()
        proc = subprocess.Popen([evaltray, "dedup", "--json"], cwd=root / "ws", env=env, stdout=subprocess.PIPE)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit("evaltray dedup failed")
        data = json.loads(out)
        return {
            "which": "cli",
            "n": n,
            "seconds": round(time.perf_counter() - t, 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "representatives": data["representatives"],
            "merged_by_level": data["merged_by_level"],
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("base", "new"))
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--base-1m", action="store_true", help="also run the base commit at 1M")
    ap.add_argument("--sizes", default="100000,1000000", help="sizes for this branch")
    ap.add_argument("--cli", type=int, help="time `evaltray dedup` on this many chats instead")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.n)
        return 0
    if args.cli:
        print(json.dumps(cli(args.cli)))
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
        big, small = new[1_000_000], new[100_000]
        print(
            f"cost x10 data (this branch): x{big['seconds'] / small['seconds']:.2f} time, "
            f"x{big['cpu_seconds'] / small['cpu_seconds']:.2f} CPU time (the fairer figure on a shared machine)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
