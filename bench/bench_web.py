"""Figure: how long the review page takes to answer with a large pool while reviewers label at once (issue 13:
p95 < 100 ms with 100k candidates and 10k cases, 20 concurrent reviewers, no label lost or doubled).

A real server (uvicorn on 127.0.0.1, in a thread) and ``--reviewers`` signed-in labelers (httpx, one thread
each) that each take their next task (``GET /queue``), open its review page (timed) and save a label, over and
over. Afterwards every saved label is looked up: each must be in the database once, on the candidate its
reviewer saved it on, and no candidate may have two. Reference, in the same run: reading the whole queue (what
every review page did before the queue became index walks), so the ratio says what the page costs against
that. Data: synthetic rows this script writes (pending candidates, and promoted cases each with its review);
nothing was tuned on them.
Usage: python bench/bench_web.py [--n 100000] [--cases 10000] [--reviewers 20] [--labels 10]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
import uvicorn

from evaltray.core.store import Workspace
from evaltray.core.util import dumps, now_iso
from evaltray.tray import review as rev
from evaltray.web import accounts, create_app

PASSWORD = "bench password 1"


def _candidate(i: int, status: str, now: str) -> dict[str, object]:
    return dict(
        id=f"cand-{i:012x}",
        set_name="main",
        source="production",
        trace_id=f"t{i}",
        input=dumps({"messages": [{"role": "user", "content": f"Where is my refund for order {i}?"}]}),
        recorded_output=f"Your refund for order {i} is on its way.",
        labels=dumps({"feature": "refunds", "tags": []}),
        slice="refunds",
        weight=1,
        status=status,
        metadata=dumps({"model": "m"}),
        created_by="alice",
        created_at=now,
    )


def fill(ws: Workspace, pending: int, cases: int) -> None:
    """``pending`` candidates awaiting review, and ``cases`` promoted ones, each with its review and case row."""
    now = now_iso()
    t = ws.t
    with ws.tx() as conn:
        conn.execute(t["candidates"].insert(), [_candidate(i, "pending", now) for i in range(pending)])
        done = [_candidate(pending + i, "promoted", now) for i in range(cases)]
        conn.execute(t["candidates"].insert(), done)
        reviews = [
            dict(
                id=i + 1,
                candidate_id=c["id"],
                reviewer="alice",
                expected=dumps({"reference": "It is on its way."}),
                expected_first=True,
                verdict="pass",
                failure_tags="[]",
                guide_version="1",
                signed_by="alice",
                signed_at=now,
                created_at=now,
            )
            for i, c in enumerate(done)
        ]
        conn.execute(t["reviews"].insert(), reviews)
        rows = [
            dict(
                id=f"case-{i:08x}",
                set_name="main",
                status="active",
                candidate_id=c["id"],
                review_id=i + 1,
                content_hash="0" * 64,
                created_at=now,
            )
            for i, c in enumerate(done)
        ]
        conn.execute(t["cases"].insert(), rows)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def _serve(ws: Workspace) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def _message(body: str) -> str:
    """An error page's message (the text of its ``.error`` paragraph), else the start of the body."""
    at = body.find('class="error">')
    return body[at + 14 : body.find("</p>", at)] if at >= 0 else body[:200]


def reviewer(
    base: str, name: str, labels: int, page_ms: list[float], saved: list[tuple[str, str]], failed: list[str]
) -> None:
    """Sign in as ``name``; take the next task, open its page (timed), save a label; ``labels`` times. An
    answer other than the expected one is kept in ``failed`` (status and start of the body)."""
    with httpx.Client(base_url=base, follow_redirects=False, timeout=120) as client:
        token = client.get("/login").cookies["evaltray_login_csrf"]
        client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
        csrf = accounts.session_actor(WS, client.cookies["evaltray_session"]).csrf or ""  # type: ignore[union-attr]
        for _ in range(labels):
            r = client.get("/queue")
            if r.status_code != 303:
                failed.append(f"GET /queue {r.status_code}: {_message(r.text)}")
                continue
            where = r.headers["location"]
            start = time.perf_counter()
            r = client.get(where)
            page_ms.append((time.perf_counter() - start) * 1000)
            cid = where.rsplit("/", 1)[1]
            r = client.post(f"{where}/review", data={"csrf": csrf, "reference": f"{name} on {cid}"})
            if r.status_code != 303:
                failed.append(f"POST review {r.status_code}: {_message(r.text)}")
                continue
            saved.append((name, cid))


WS: Workspace  # the bench's workspace, for the reviewers' CSRF look-up


def lost_and_doubled(ws: Workspace, saved: list[tuple[str, str]]) -> tuple[int, int]:
    """Saved labels not found as saved (reviewer, candidate, text), and candidates reviewed more than once."""
    reviews = ws.t["reviews"]
    with ws.tx() as conn:
        rows = conn.execute(sa.select(reviews.c.candidate_id, reviews.c.reviewer, reviews.c.expected)).all()
    found = Counter((r.reviewer, r.candidate_id) for r in rows if f"{r.reviewer} on {r.candidate_id}" in r.expected)
    lost = sum(1 for key in saved if found[key] != 1)
    doubled = sum(1 for n in Counter(r.candidate_id for r in rows).values() if n > 1)
    return lost, doubled


def measure(
    n: int, cases: int, reviewers: int, labels: int, root: Path, overlap: float = 0.0, control: float = 0.0
) -> dict[str, float]:
    global WS
    ws = WS = Workspace.init(root / f"ws{n}", user="alice")
    # a second label on an overlap item is by design, and a control item is no candidate: both off by default,
    # so that "doubled" means a race
    ws.settings.overlap, ws.settings.control_rate = overlap, control
    names = [f"lab{i}" for i in range(reviewers)]
    for name in names:
        ws.add_user(name, "labeler", actor="alice")
        accounts.set_password(ws, name, PASSWORD, actor="alice")
    fill(ws, n, cases)
    server, thread, base = _serve(ws)
    page_ms: list[float] = []
    saved: list[tuple[str, str]] = []
    failed: list[str] = []
    try:
        started = time.perf_counter()
        workers = [threading.Thread(target=reviewer, args=(base, m, labels, page_ms, saved, failed)) for m in names]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
        whole_ms = []
        for _ in range(3):
            start = time.perf_counter()
            rev.queue(ws)
            whole_ms.append((time.perf_counter() - start) * 1000)
        lost, doubled = lost_and_doubled(ws, saved)
        for problem in sorted(set(failed))[:5]:
            print(f"refused: {problem}", file=sys.stderr)
    finally:
        server.should_exit = True
        thread.join(10)
        ws.close()
    return dict(
        p50=statistics.median(page_ms),
        p95=p95(page_ms),
        whole=statistics.median(whole_ms),
        saved=len(saved),
        failed=len(failed),
        lost=lost,
        doubled=doubled,
        rate=len(saved) / wall,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--labels", type=int, default=10, help="labels each reviewer saves")
    parser.add_argument("--overlap", type=float, default=0.0, help="[labeling] overlap (second, blind labels)")
    parser.add_argument("--control-rate", type=float, default=0.0, help="[labeling] control_rate (known answers)")
    args = parser.parse_args()
    print(
        "| pending candidates | cases | reviewers | page p50 ms | page p95 ms | whole-queue read ms (before) "
        "| p95 ÷ whole read | labels saved | refused | lost | doubled | labels/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            m = measure(n, args.cases, args.reviewers, args.labels, Path(tmp), args.overlap, args.control_rate)
            print(
                f"| {n:,} | {args.cases:,} | {args.reviewers} | {m['p50']:.1f} | {m['p95']:.1f} | {m['whole']:.1f} "
                f"| {m['p95'] / m['whole']:.3f} | {m['saved']:.0f} | {m['failed']:.0f} | {m['lost']:.0f} | {m['doubled']:.0f} "
                f"| {m['rate']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
