"""Benchmark for ``score-live`` (issue 12 part 9): drawing the sample, and a whole live score against a stub judge.

    python bench/bench_live.py                 # 200,000 chats, a 500-trace sample from the last 7 days
    python bench/bench_live.py -n 1000000 --days 40   # a window that holds all of a million

The traces are ``_gen.write_chats`` with seed 1 (the tests build on hand-written traces; nothing here was
tuned on). The draw is evaltray's (``live.sample_ids``: DuckDB orders the window by the MD5 of id and seed and
hands back ``n`` ids) against the obvious reference done in the same run: read every id of the window into
Python and ``random.sample`` it. Printed: seconds of each and their ratio, then the seconds of a whole
``score_live`` (draw, rule mapping, 500 judge requests to a local stub answering at once, rates, files).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _gen import write_chats  # noqa: E402

from evaltray.core.store import Workspace  # noqa: E402
from evaltray.core.traces import conjunction  # noqa: E402
from evaltray.evaluate import live  # noqa: E402
from evaltray.evaluate.judge import JudgeConfig  # noqa: E402
from evaltray.evaluate.stub import StubServer  # noqa: E402
from evaltray.ingest import ingest_files  # noqa: E402

#: ``_gen.write_chats`` stamps chat i at this epoch second plus 3 i.
EPOCH0 = 1_731_000_000


def _reference(ws: Workspace, predicate: str, n: int, seed: int) -> list[str]:
    table = ws.trace_store().query(conjunction("payload_kept", predicate), columns=["trace_id"])
    ids = sorted(set(table.column("trace_id").to_pylist()))
    return sorted(random.Random(seed).sample(ids, min(n, len(ids))))


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000, help="chats in the store")
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--days", type=int, default=7, help="the window, in days before the last chat")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "ws", name="bench", user="alice")
        write_chats(root / "chats.jsonl", args.n, seed=1)
        t = time.perf_counter()
        ingest_files(ws, [root / "chats.jsonl"], scrub=False, actor="alice")
        print(f"{args.n:,} chats ingested in {time.perf_counter() - t:.1f} s (scrub off)")
        until = datetime.fromtimestamp(EPOCH0 + 3 * args.n, UTC)
        week = live._window_predicate(until - timedelta(days=args.days), until, None)
        drawn, eligible = live.sample_ids(ws, week, args.sample, seed=7)
        ours = _best(lambda: live.sample_ids(ws, week, args.sample, seed=7), args.repeat)
        ref = _best(lambda: _reference(ws, week, args.sample, 7), args.repeat)
        print(f"draw {len(drawn)} of {eligible:,} traces in the last {args.days} days (best of {args.repeat}):")
        print(f"  evaltray (DuckDB, MD5 order, n ids out)   {ours:.3f} s")
        print(f"  reference (all ids to Python, sample)     {ref:.3f} s")
        print(f"  reference / evaltray                      {ref / ours:.2f}x")

        def grade(body: dict) -> str:
            return '{"critique": "fine", "verdict": "pass"}'

        with StubServer(grade) as stub:
            judge = JudgeConfig(model="stub-judge", base_url=stub.base_url)
            t = time.perf_counter()
            got = live.score_live(
                ws,
                judge,
                window=f"{args.days}d",
                sample=args.sample,
                until=until,
                allow_uncalibrated=True,
                actor="alice",
            )
            whole = time.perf_counter() - t
        print(
            f"score_live: {got.overall['n']} judged of {got.sampled} sampled in {whole:.2f} s "
            f"({got.overall['n'] / whole:.0f} traces/s, stub judge answering at once)"
        )
        ws.close()


if __name__ == "__main__":
    main()
