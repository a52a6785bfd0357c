"""How fast the review queue hands out and closes tasks when it is large (the web app's "next task" click).

A workspace (SQLite, WAL) holds N open tasks of the four kinds, priorities 0–3, inserted in bulk; one
reviewer then takes and closes M tasks with ``next_task`` + ``resolve_task`` (each audited, hash-chained).
The reference, in the same run on a copy of the same database and with the same SQLite settings: the bare
SQL a queue needs for the same work — select the most urgent free task and assign it, then close it — in
two transactions, with no audit row.

    python bench/bench_tasks.py [--tasks 100000] [--take 300]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

KINDS = ("failing_case", "judge_check", "label", "revalidate")


def _fill(ws, n: int, seed: int = 7) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = KINDS[i % 3] if i % 3 != 2 else "judge_check"  # no label/revalidate: no candidate or case behind
        ref = f"r-bench/c-{i:07d}"
        rows.append(
            dict(
                kind=kind,
                ref=ref,
                open_key=f"{kind}:{ref}",
                status="open",
                reason="bench",
                payload="{}",
                priority=rng.randint(0, 3),
                opened_by="bench",
                seconds=0.0,
                tags="[]",
                created_at="2026-01-01T00:00:00Z",
            )
        )
    with ws.tx() as conn:
        for start in range(0, n, 10_000):
            conn.execute(ws.t["tasks"].insert(), rows[start : start + 10_000])


def _bare(url: str, take: int) -> list[float]:
    from evaltray.core.store import make_engine

    engine = make_engine(url)  # the same SQLite pragmas (WAL, synchronous NORMAL) as the workspace
    times = []
    pick = sa.text(
        "SELECT id FROM tasks WHERE assignee IS NULL AND status = 'open' AND kind IN ('failing_case', 'judge_check') "
        "ORDER BY priority DESC, id LIMIT 1"
    )
    for _ in range(take):
        t0 = time.perf_counter()
        with engine.begin() as conn:
            tid = conn.execute(pick).scalar()
            conn.execute(sa.text("UPDATE tasks SET assignee = 'bench' WHERE id = :i"), {"i": tid})
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE tasks SET status = 'closed', open_key = NULL, outcome = 'done' WHERE id = :i"),
                {"i": tid},
            )
        times.append(time.perf_counter() - t0)
    engine.dispose()
    return times


def _evaltray(ws, take: int) -> list[float]:  # type: ignore[no-untyped-def]
    from evaltray.tray import tasks

    times = []
    for _ in range(take):
        t0 = time.perf_counter()
        task = tasks.next_task(ws, "bench", kinds=["failing_case", "judge_check"])
        assert task is not None
        tasks.resolve_task(ws, task.id, "bench", "done", seconds=1.0)
        times.append(time.perf_counter() - t0)
    return times


def _ms(times: list[float]) -> str:
    q = statistics.quantiles(times, n=20)
    return f"p50 {statistics.median(times) * 1e3:.1f} ms, p95 {q[18] * 1e3:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--take", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    os.environ["EVALTRAY_CONFIG_DIR"] = str(tmp / "config")
    from evaltray.core.store import Workspace

    ws = Workspace.init(tmp / "ws", user="bench")
    _fill(ws, args.tasks)
    ws.close()
    db = tmp / "ws" / ".evaltray" / "state.db"
    shutil.copy(db, tmp / "bare.db")
    bare = _bare(f"sqlite:///{tmp / 'bare.db'}", args.take)
    ws = Workspace.open(tmp / "ws")
    ours = _evaltray(ws, args.take)
    ws.close()
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"{args.tasks:,} open tasks, {args.take} taken and closed one after another")
    print(f"bare SQL (reference): {_ms(bare)}")
    print(f"evaltray next_task + resolve_task: {_ms(ours)}")
    print(f"ratio (median): {ratio:.1f}x the bare SQL")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
