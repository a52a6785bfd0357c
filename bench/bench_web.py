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
import contextlib
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from evaltray.core.settings import SETTINGS_FILE
from evaltray.core.store import Workspace
from evaltray.core.util import dumps, now_iso
from evaltray.tray import review as rev
from evaltray.web import accounts

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


def pct(values: list[float], q: int) -> float:
    """The ``q``th percentile of ``values`` (the inclusive method: a run's own extremes bound it)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """``evaltray serve`` on ``root`` in a process of its own, as a team runs it; waits until it answers."""
    port = _free_port()
    argv = [sys.executable, "-c", "from evaltray.cli import main; main()", "-w", str(root), "-u", "alice", "serve"]
    argv += ["--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])
    with (root.parent / "server.log").open("ab") as log:  # its tracebacks, if any, away from the table
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # a loaded machine takes a while to import the app
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/login", timeout=5).status_code == 200:
                return server, base
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server on port {port} did not start")


def _message(body: str) -> str:
    """An error page's message (the text of its ``.error`` paragraph), else the start of the body."""
    at = body.find('class="error">')
    return body[at + 14 : body.find("</p>", at)] if at >= 0 else body[:200]


#: The page types timed, in the order a reviewer meets them.
PAGES = ("home", "next task", "review page", "save label")


def _timed(client: httpx.Client, times: dict[str, list[float]], page: str, method: str, url: str, **kw: Any):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    r = client.request(method, url, **kw)
    times[page].append((time.perf_counter() - start) * 1000)
    return r


def reviewer(
    base: str, name: str, labels: int, start: Any, results: Any, home: bool = True, think: float = 0.0
) -> None:
    """One reviewer's process: sign in, wait for the others, then ``labels`` times open the home page, take the
    next task, open its review page and save a label, each request timed, pausing ``think`` seconds on average
    (0.5–1.5×, seeded by name) before each request. Sends back the timings, the labels saved and any answer other
    than the expected one (status and start of the body)."""
    times: dict[str, list[float]] = {p: [] for p in PAGES}
    saved: list[tuple[str, str]] = []
    failed: list[str] = []
    with httpx.Client(base_url=base, follow_redirects=False, timeout=120) as client:
        token = client.get("/login").cookies["evaltray_login_csrf"]
        client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
        guide = client.get("/guide").text  # any signed-in page carries the session's CSRF token
        csrf = guide.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        start.wait()
        rng = random.Random(name)
        pause = (lambda: time.sleep(think * rng.uniform(0.5, 1.5))) if think > 0 else (lambda: None)
        for _ in range(labels):
            try:
                _label_once(client, times, saved, failed, name, csrf, home, pause)
            except httpx.TransportError as exc:  # a server that dropped the connection: counted, not fatal
                failed.append(f"{type(exc).__name__}: {exc}")
    results.put((times, saved, failed))


def _label_once(
    client: httpx.Client,
    times: dict[str, list[float]],
    saved: list[tuple[str, str]],
    failed: list[str],
    name: str,
    csrf: str,
    home: bool,
    pause: Any,
) -> None:
    """One round of a reviewer: the home page, the next task, its review page, the label saved."""
    if home:
        pause()
        _timed(client, times, "home", "GET", "/")
    pause()
    r = _timed(client, times, "next task", "GET", "/queue")
    if r.status_code != 303:
        failed.append(f"GET /queue {r.status_code}: {_message(r.text)}")
        return
    where = r.headers["location"]
    pause()
    _timed(client, times, "review page", "GET", where)
    cid = where.rsplit("/", 1)[1]
    data = {"csrf": csrf, "reference": f"{name} on {cid}"}
    pause()
    r = _timed(client, times, "save label", "POST", f"{where}/review", data=data)
    if r.status_code != 303:
        failed.append(f"POST review {r.status_code}: {_message(r.text)}")
        return
    saved.append((name, cid))


def lost_and_doubled(ws: Workspace, saved: list[tuple[str, str]]) -> tuple[int, int]:
    """Saved labels not found as saved (reviewer, candidate, text), and candidates reviewed more than once."""
    reviews = ws.t["reviews"]
    with ws.tx() as conn:
        rows = conn.execute(sa.select(reviews.c.candidate_id, reviews.c.reviewer, reviews.c.expected)).all()
    found = Counter((r.reviewer, r.candidate_id) for r in rows if f"{r.reviewer} on {r.candidate_id}" in r.expected)
    lost = sum(1 for key in saved if found[key] != 1)
    doubled = sum(1 for n in Counter(r.candidate_id for r in rows).values() if n > 1)
    return lost, doubled


def build(root: Path, n: int, cases: int, reviewers: int, overlap: float, control: float) -> list[str]:
    """The workspace the server serves: ``n`` pending candidates, ``cases`` cases, ``reviewers`` labelers."""
    ws = Workspace.init(root, user="alice")
    # a second label on an overlap item is by design, and a control item is no candidate: both off by default,
    # so that "doubled" means a race
    text = (root / SETTINGS_FILE).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^overlap = \S+", f"overlap = {overlap}", text)
    text = re.sub(r"(?m)^control_rate = \S+", f"control_rate = {control}", text)
    (root / SETTINGS_FILE).write_text(text, encoding="utf-8")
    names = [f"lab{i}" for i in range(reviewers)]
    try:
        for name in names:
            ws.add_user(name, "labeler", actor="alice")
            accounts.set_password(ws, name, PASSWORD, actor="alice")
        fill(ws, n, cases)
    finally:
        ws.close()
    return names


def measure(
    root: Path, names: list[str], labels: int, workers: int, home: bool = True, think: float = 0.0
) -> dict[str, Any]:
    """Serve ``root``, let every reviewer label at once, then check every saved label."""
    server, base = _serve(root, workers)
    mp = multiprocessing.get_context("fork")  # no thread runs here yet: the reviewers start at once
    start, results = mp.Barrier(len(names) + 1), mp.Queue()
    try:
        procs = [mp.Process(target=reviewer, args=(base, m, labels, start, results, home, think)) for m in names]
        for p in procs:
            p.start()
        start.wait()
        began, load = time.perf_counter(), os.getloadavg()[0]
        got = [results.get(timeout=1800) for _ in procs]
        wall = time.perf_counter() - began
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(30)
    times = {page: [t for g in got for t in g[0][page]] for page in PAGES}
    saved = [s for g in got for s in g[1]]
    failed = [f for g in got for f in g[2]]
    for problem in sorted(set(failed))[:5]:
        print(f"refused: {problem}", file=sys.stderr)
    ws = Workspace.open(root)
    try:
        lost, doubled = lost_and_doubled(ws, saved)
        whole_ms = []
        for _ in range(3):
            began_read = time.perf_counter()
            rev.queue(ws)
            whole_ms.append((time.perf_counter() - began_read) * 1000)
    finally:
        ws.close()
    return dict(
        times=times,
        whole=statistics.median(whole_ms),
        saved=len(saved),
        failed=len(failed),
        lost=lost,
        doubled=doubled,
        rate=len(saved) / wall,
        load=load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="pending candidates")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--labels", type=int, default=10, help="labels each reviewer saves")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="server processes; one run each")
    parser.add_argument(
        "--no-home", action="store_true", help="leave the home page out of the loop (before its fix: seconds a visit)"
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds a reviewer pauses before each request, on average (0: back to back, a stress test)",
    )
    parser.add_argument("--overlap", type=float, default=0.0, help="[labeling] overlap (second, blind labels)")
    parser.add_argument("--control-rate", type=float, default=0.0, help="[labeling] control_rate (known answers)")
    args = parser.parse_args()
    print(
        f"{args.n:,} pending candidates, {args.cases:,} cases, {args.reviewers} reviewers x {args.labels} labels, "
        f"think {args.think} s"
    )
    print(
        "| workers | load | " + " | ".join(f"{p} p50 / p95 ms" for p in PAGES) + " | whole-queue read ms "
        "| review p95 ÷ whole read | saved | refused | lost | doubled | labels/s |"
    )
    print("| --- " * (len(PAGES) + 9) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        names = build(root, args.n, args.cases, args.reviewers, args.overlap, args.control_rate)
        for workers in args.workers:
            m = measure(root, names, args.labels, workers, not args.no_home, args.think)
            t = m["times"]
            cells = " | ".join(f"{pct(t[p], 50):.1f} / {pct(t[p], 95):.1f}" if t[p] else "–" for p in PAGES)
            print(
                f"| {workers} | {m['load']:.1f} | {cells} | {m['whole']:.0f} "
                f"| {pct(t['review page'], 95) / m['whole']:.4f} | {m['saved']} | {m['failed']} | {m['lost']} "
                f"| {m['doubled']} | {m['rate']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
