"""Figure: CPU per statement on the review flow's hot paths, built at every call against built once per workspace
(``Workspace.statement``), in one run (issue 13 part 5, session 25).

Two of the statements every next task runs: the look at a task (``SELECT assignee, status … WHERE id = ?``) and
the claim (``UPDATE tasks SET assignee … WHERE id = ? AND assignee IS NULL AND status != 'closed'``, rolled back).
Reference: the same statement built by SQLAlchemy at every call, as the code did. CPU seconds (``process_time``),
the best of ``--repeat`` rounds; data: a fresh workspace with ``--tasks`` open label tasks (synthetic; nothing was
tuned on it).
Usage: python bench/bench_statements.py [--tasks 1000] [--calls 3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from evaltray.core.store import Workspace
from evaltray.core.util import now_iso


def _best(calls: int, repeat: int, run: Callable[[int], Any]) -> float:
    """The best of ``repeat`` rounds of ``calls`` runs, in µs CPU per run."""
    for i in range(200):  # warm: SQLAlchemy's compiled cache
        run(i)
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        for i in range(calls):
            run(i)
        best = min(best, time.process_time() - began)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", user="alice")
        tasks = ws.t["tasks"]
        rows = [
            dict(kind="label", ref=f"c{i}", open_key=f"label:c{i}", status="open", reason="r", priority=0)
            | dict(payload="{}", tags="[]", opened_by="alice", created_at=now_iso())
            for i in range(args.tasks)
        ]
        with ws.tx() as conn:
            conn.execute(tasks.insert(), rows)
            ids = list(conn.scalars(sa.select(tasks.c.id)))
        look = ws.statement(
            "bench.look", lambda: sa.select(tasks.c.assignee, tasks.c.status).where(tasks.c.id == sa.bindparam("tid"))
        )
        claim = ws.statement(
            "bench.claim",
            lambda: tasks.update().where(
                tasks.c.id == sa.bindparam("tid"), tasks.c.assignee.is_(None), tasks.c.status != "closed"
            ),
        )
        print("| statement | built each call µs CPU | built once µs CPU | ratio |")
        print("| --- | --- | --- | --- |")
        with ws.engine.connect() as conn:
            pick = lambda i: ids[i % len(ids)]  # noqa: E731
            each = _best(
                args.calls,
                args.repeat,
                lambda i: conn.execute(
                    sa.select(tasks.c.assignee, tasks.c.status).where(tasks.c.id == pick(i))
                ).first(),
            )
            once = _best(args.calls, args.repeat, lambda i: conn.execute(look, {"tid": pick(i)}).first())
            print(f"| look at a task | {each:.1f} | {once:.1f} | {each / once:.2f} |")
            each = _best(
                args.calls,
                args.repeat,
                lambda i: conn.execute(
                    tasks.update()
                    .where(tasks.c.id == pick(i), tasks.c.assignee.is_(None), tasks.c.status != "closed")
                    .values(assignee="lab", assigned_at="now")
                ),
            )
            conn.rollback()
            once = _best(
                args.calls,
                args.repeat,
                lambda i: conn.execute(claim, {"tid": pick(i), "assignee": "lab", "assigned_at": "now"}),
            )
            conn.rollback()
            print(f"| claim a task | {each:.1f} | {once:.1f} | {each / once:.2f} |")
        ws.close()


if __name__ == "__main__":
    main()
