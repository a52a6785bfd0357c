"""Figure: how long the review page takes to answer as the candidate pool grows (issue 13 asks p95 < 100 ms
at 100k candidates; this first part measures where it stands).

A real server (uvicorn on 127.0.0.1, in a thread) and a signed-in labeler (httpx) fetch one review page at a
time, a bounded number of times. Reference, in the same run: the queue's data access alone
(``evaltray.web.reviewing.queue_items``, which today is ``tray.review.queue``), so the ratio says how much of
a page is reading the queue. Data: synthetic pool rows this script writes (nothing was tuned on them).
Usage: python bench/bench_web.py [--n 1000 10000] [--requests 40]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from evaltray.core.store import Workspace
from evaltray.core.util import dumps, now_iso
from evaltray.web import accounts, create_app, reviewing

PASSWORD = "bench password 1"


def fill_pool(ws: Workspace, n: int) -> None:
    """``n`` pending candidates in one transaction, each a short multi-turn chat with a recorded output."""
    now = now_iso()
    rows = [
        dict(
            id=f"cand-{i:012x}",
            set_name="main",
            source="production",
            trace_id=f"t{i}",
            input=dumps({"messages": [{"role": "user", "content": f"Where is my refund for order {i}?"}]}),
            recorded_output=f"Your refund for order {i} is on its way.",
            labels=dumps({"feature": "refunds", "tags": []}),
            weight=1,
            status="pending",
            metadata=dumps({"model": "m"}),
            created_by="alice",
            created_at=now,
        )
        for i in range(n)
    ]
    with ws.tx() as conn:
        conn.execute(ws.t["candidates"].insert(), rows)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def measure(n: int, requests: int, root: Path) -> tuple[float, float, float]:
    """p50 and p95 of the review page (ms), and the median of the queue data access alone (ms)."""
    ws = Workspace.init(root / f"ws{n}", user="alice")
    ws.add_user("lab", "labeler", actor="alice")
    accounts.set_password(ws, "lab", PASSWORD, actor="alice")
    fill_pool(ws, n)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as client:
            token = client.get("/login").cookies["evaltray_login_csrf"]
            client.post("/login", data={"name": "lab", "password": PASSWORD, "csrf": token})
            page_ms = []
            for i in range(requests):
                start = time.perf_counter()
                r = client.get(f"/queue/cand-{(i * 7919) % n:012x}")
                page_ms.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.status_code
        data_ms = []
        for _ in range(max(3, requests // 4)):
            start = time.perf_counter()
            reviewing.queue_items(ws, "lab")
            data_ms.append((time.perf_counter() - start) * 1000)
    finally:
        server.should_exit = True
        thread.join(10)
        ws.close()
    return statistics.median(page_ms), p95(page_ms), statistics.median(data_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    print("| pending candidates | page p50 ms | page p95 ms | queue read alone, median ms | page p50 ÷ queue read |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            p50, top, data = measure(n, args.requests, Path(tmp))
            print(f"| {n:,} | {p50:.1f} | {top:.1f} | {data:.1f} | {p50 / data:.2f} |", flush=True)


if __name__ == "__main__":
    main()
