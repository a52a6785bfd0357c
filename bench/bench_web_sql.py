"""Figure: what each page type of the review flow asks of the database, in process (issue 13 part 5): SQL
statements, transactions that wrote, and the write lock's hold time per request, for the home page, the next
task (``GET /queue``), the review page and a label saved, and for the label-queue top-ups wherever they run.

One process, the web app in-process (Starlette's TestClient), ``--reviewers`` signed-in labelers taking turns
(one request at a time, so every statement is counted against the request that ran it; a top-up run by a
thread of its own is counted apart). Run it with ``PYTHONPATH`` at two checkouts for a before/after table: it
uses only what both have. Data: the synthetic workspace of ``bench_web.py`` (pending candidates, promoted
cases); a measuring set, nothing tuned on it.
Usage: python bench/bench_web_sql.py [--n 100000] [--cases 10000] [--reviewers 20] [--labels 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from bench_web import PASSWORD, build, pct  # noqa: E402

from evaltray.core.store import Workspace  # noqa: E402
from evaltray.web import create_app, reviewing  # noqa: E402

DML = ("INSERT", "UPDATE", "DELETE")


class Counter:
    """Statements, write transactions and write-lock hold time, per label (the request running, or
    ``top-up`` for statements a background thread ran)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.label = "setup"
        self.stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.main = threading.get_ident()
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._end)
        sa.event.listen(engine, "rollback", self._end)

    def _who(self) -> str:
        name = threading.current_thread().name
        return "top-up" if "top" in name.lower() and "up" in name.lower() else self.label

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        who = self._who()
        self.stats[who]["statements"] += 1
        first = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        wrote = first in DML or statement.lstrip().upper().startswith("BEGIN IMMEDIATE")
        if wrote and "write_from" not in conn.info:
            conn.info["write_from"] = time.perf_counter()

    def _end(self, conn: Any) -> None:
        began = conn.info.pop("write_from", None)
        if began is not None:
            who = self._who()
            self.stats[who]["write transactions"] += 1
            self.stats[who]["lock ms"] += (time.perf_counter() - began) * 1000


def _csrf(client: TestClient) -> str:
    page = client.get("/guide").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _settle(app: Any) -> None:
    """Wait for a background top-up (where the code has one) to finish, so it is not counted as a request's."""
    top_up_of = getattr(reviewing, "top_up_of", None)
    if top_up_of is not None:
        top_up_of(app).idle(30)


def run(root: Path, names: list[str], labels: int) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    ws = Workspace.open(root)
    counter = Counter(ws.engine)
    calls: dict[str, float] = defaultdict(float)
    ms: dict[str, list[float]] = defaultdict(list)
    app = create_app(ws, receive=False)
    try:
        with TestClient(app, follow_redirects=False) as client:
            csrfs = {}
            for name in names:
                client.cookies.clear()
                token = client.get("/login").cookies["evaltray_login_csrf"]
                client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
                csrfs[name] = (dict(client.cookies), _csrf(client))
            for _ in range(labels):
                for name in names:
                    cookies, csrf = csrfs[name]
                    client.cookies.clear()
                    client.cookies.update(cookies)
                    _request(client, counter, calls, ms, "home", "GET", "/")
                    r = _request(client, counter, calls, ms, "next task", "GET", "/queue")
                    _settle(app)
                    where = r.headers["location"]
                    _request(client, counter, calls, ms, "review page", "GET", where)
                    cid = where.rsplit("/", 1)[1]
                    data = {"csrf": csrf, "reference": f"{name} on {cid}"}
                    r = _request(client, counter, calls, ms, "save label", "POST", f"{where}/review", data=data)
                    assert r.status_code == 303, r.text[:300]
                    _settle(app)
    finally:
        ws.close()
    per = {k: {m: v / calls[k] for m, v in counter.stats[k].items()} for k in calls}
    if "top-up" in counter.stats:
        per["top-up (background, per label saved)"] = {
            m: v / calls["save label"] for m, v in counter.stats["top-up"].items()
        }
    return per, ms


def _request(
    client: TestClient,
    counter: Counter,
    calls: dict[str, float],
    ms: dict[str, list[float]],
    label: str,
    method: str,
    url: str,
    **kw: Any,
) -> Any:
    counter.label = label
    began = time.perf_counter()
    r = client.request(method, url, **kw)
    ms[label].append((time.perf_counter() - began) * 1000)
    calls[label] += 1
    counter.label = "between"
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="pending candidates")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--labels", type=int, default=5, help="labels each reviewer saves")
    args = parser.parse_args()
    import evaltray

    print(f"code: {Path(evaltray.__file__).parent}")
    print(f"{args.n:,} pending candidates, {args.cases:,} cases, {args.reviewers} reviewers x {args.labels} labels")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        names = build(root, args.n, args.cases, args.reviewers, 0.0, 0.0)
        per, ms = run(root, names, args.labels)
    print("| request | SQL statements | write transactions | write lock held ms | p50 / p95 ms (one at a time) |")
    print("| --- | --- | --- | --- | --- |")
    for label, m in per.items():
        if label in ("setup", "between"):
            continue
        t = ms.get(label)
        times = f"{statistics.median(t):.1f} / {pct(t, 95):.1f}" if t else "–"
        print(
            f"| {label} | {m.get('statements', 0):.1f} | {m.get('write transactions', 0):.2f} "
            f"| {m.get('lock ms', 0):.2f} | {times} |"
        )


if __name__ == "__main__":
    main()
