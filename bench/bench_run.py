"""Benchmark for the runner (issue: evaluation): evaltray's ``run`` against a bare aiohttp loop.

    python bench/bench_run.py                        # 1,000 cases, stub answering after 100 ms, concurrency 4/32/128
    python bench/bench_run.py -n 300 --conc 32       # smaller

Both send the same chat-completions requests to the same local stub (``evaltray.evaluate.stub``) running in
another process, so this process's CPU time is the client's alone. The bare loop is the physical limit here:
N coroutines posting and reading JSON with no bookkeeping. evaltray's figure includes everything a run
does: the results file, the cache, retries bookkeeping, progress. Printed: cases/s, CPU ms per case and
the ratio to the bare loop, per concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from evaltray.core.store import Workspace
from evaltray.evaluate import run as runner
from evaltray.evaluate.stub import StubServer
from evaltray.evaluate.targets import make_target


def _serve(delay: float, port_out: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    with StubServer(delay=delay) as stub:
        port_out.put(stub.port)
        stop.wait()


async def _bare(base_url: str, bodies: list[bytes], concurrency: int) -> None:
    it = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for body in it:
                async with session.post(
                    base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    orjson.loads(await r.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _timed(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--conc", type=int, nargs="*", default=[4, 32, 128])
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.delay, port_q, stop), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{port_q.get(timeout=30)}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        cases = Path(tmp) / "cases.jsonl"
        cases.write_bytes(
            b"".join(orjson.dumps({"id": f"c{i}", "input": f"question {i}"}) + b"\n" for i in range(args.n))
        )
        ws = Workspace.init(Path(tmp) / "ws", user="bench")
        plan = runner.plan_file_run(cases)
        bodies = [
            orjson.dumps({"model": "stub", "messages": [{"role": "user", "content": f"question {i}"}]})
            for i in range(args.n)
        ]
        target = make_target("openai:stub", base_url=base_url)
        print(f"{args.n} cases, stub answering after {args.delay * 1000:.0f} ms (another process)")
        print(f"{'conc':>5} {'bare c/s':>9} {'bare ms':>8} {'evaltray c/s':>13} {'evaltray ms':>12} {'ratio':>6}")
        for conc in args.conc:
            bare_wall, bare_cpu = _timed(lambda c=conc: asyncio.run(_bare(base_url, bodies, c)))
            limits = runner.Limits(concurrency=conc, timeout=30, retries=0)
            ours_wall, ours_cpu = _timed(
                lambda lim=limits: runner.execute(ws, plan, target, limits=lim, fresh=True, cache=False, actor="bench")
            )
            print(
                f"{conc:>5} {args.n / bare_wall:>9.0f} {bare_cpu / args.n * 1000:>8.2f} {args.n / ours_wall:>13.0f} "
                f"{ours_cpu / args.n * 1000:>12.2f} {bare_wall / ours_wall:>6.2f}"
            )
        ws.close()
    stop.set()
    server.join(10)


if __name__ == "__main__":
    main()
