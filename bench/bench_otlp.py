"""Benchmark for the OTLP receiver figure (issue 13, parts 7 and the receiver figure): LLM spans made queryable.

    python bench/bench_otlp.py                         # 20,000 traces (60,000 spans), 2 exporters, seed 2
    python bench/bench_otlp.py --traces 5000 --seed 1  # the building run
    python bench/bench_otlp.py --gzip                  # exporters compress their bodies

The load: ``evaltray receive`` runs as its own process on 127.0.0.1 over a fresh workspace (scrubbing on,
as by default). Each exporter thread posts protobuf ``ExportTraceServiceRequest`` bodies of 512 spans, one
at a time and waiting for the answer, as the OpenTelemetry SDK's ``BatchSpanProcessor`` with the OTLP/HTTP
exporter does (``max_export_batch_size=512``); spans come in the order they end (a trace's LLM calls
before its root). A 503 is retried after its ``Retry-After``, as the exporter does. The figure is the spans
posted divided by the seconds from the first post until every trace is queryable (the parts' footers count
them all, then ``TraceStore.trace_ids`` sees every id), i.e. received, journaled, scrubbed and in Parquet.

The reference, in the same run: the same spans as one OTLP/JSON file (what the collector's file exporter
writes), stored by ``ingest_files(ws, [file], fmt="otel")`` with scrubbing on, timed around that call. Arize
Phoenix 20.26 (about 110 spans/s here, issue 13) is quoted, not run. Each trace: an agent root span and
two chat calls (GenAI attributes in OpenLLMetry's indexed form), so two thirds of the spans are LLM spans.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq

import evaltray
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import ingest_files, otlp
from evaltray.ingest.spans import SpanRecord
from evaltray.web import accounts

BATCH = 512  # the BatchSpanProcessor's max_export_batch_size
T0 = datetime(2026, 12, 1, tzinfo=UTC)
TOPICS = ["refund", "shipping delay", "login problem", "invoice", "damaged item", "warranty claim"]
NAMES = ["Jane Roe", "Max Mustermann", "Ana Silva", "Li Wei"]
SYSTEM = "You are a helpful support assistant."


def traces(n: int, seed: int, history: bool = False) -> list[list[SpanRecord]]:
    """``n`` traces of three spans each (two chat calls, then the root), as their spans end.

    ``history``: the second call's prompt resends the conversation so far (system, question, the first
    answer, then the order status as a tool turn), as a chat app sends it and as the OpenTelemetry GenAI
    instrumentations record it (``shared/data/formats/otel-genai``: the second span's input messages repeat
    the first's); otherwise its prompt is the question with the status appended (the first measured shape)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tid, root = f"{seed:08x}{i + 1:024x}", f"{3 * i + 1:016x}"
        start = T0 + timedelta(seconds=i)
        topic, name = rng.choice(TOPICS), rng.choice(NAMES)
        question = f"Hi, I am {name}, order {rng.randint(10**6, 10**7)} has a {topic}, what can you do? ({i})"
        plan, status = f"plan: look up the order, then answer about the {topic}", "Order status: shipped"
        answer = f"Sorry about the {topic}, {name}. It is on its way."
        system = [("system", SYSTEM)]
        turns = (
            [system + [("user", question)], system + [("user", question), ("assistant", plan), ("tool", status)]]
            if history
            else [system + [("user", question)], system + [("user", f"{question}\n{status}")]]
        )
        calls = [
            SpanRecord(
                trace_id=tid,
                span_id=f"{3 * i + 2 + k:016x}",
                parent_id=root,
                name="chat gpt-4o-mini",
                kind="client",
                start=start + timedelta(milliseconds=10 + 900 * k),
                end=start + timedelta(milliseconds=800 + 900 * k),
                attrs={
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    **_indexed("gen_ai.prompt", prompt),
                    **_indexed("gen_ai.completion", [("assistant", reply)]),
                    "gen_ai.usage.input_tokens": rng.randint(50, 900),
                    "gen_ai.usage.output_tokens": rng.randint(5, 300),
                },
                resource={"service.name": "support-bot"},
                scope="opentelemetry.instrumentation.openai",
            )
            for k, (prompt, reply) in enumerate(zip(turns, [plan, answer], strict=True))
        ]
        top = SpanRecord(
            trace_id=tid,
            span_id=root,
            name="support_agent",
            start=start,
            end=start + timedelta(seconds=2),
            resource={"service.name": "support-bot"},
            scope="opentelemetry.instrumentation.openai",
        )
        out.append([*calls, top])
    return out


def _indexed(prefix: str, messages: list[tuple[str, str]]) -> dict[str, str]:
    """Messages as OpenLLMetry's indexed attributes: ``gen_ai.prompt.0.role``, ``gen_ai.prompt.0.content``…"""
    out = {}
    for k, (role, content) in enumerate(messages):
        out[f"{prefix}.{k}.role"], out[f"{prefix}.{k}.content"] = role, content
    return out


def batches(all_traces: list[list[SpanRecord]]) -> list[bytes]:
    spans = [s for t in all_traces for s in t]
    return [otlp.encode(spans[i : i + BATCH]) for i in range(0, len(spans), BATCH)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_receiver(root: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from evaltray.cli import main; main()", "receive", "--port", str(port)]
    # the receiver runs the evaltray this script imported (a relative PYTHONPATH would not reach it from root)
    here = str(Path(evaltray.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(cmd + ["--flush-every", "0.5"], cwd=root, stdout=subprocess.DEVNULL, env=env)
    for _ in range(600):
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"", timeout=5)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the receiver did not start")


def _exporter(url: str, token: str, bodies: list[bytes], compress: bool, retries: list[int]) -> None:
    headers = {"content-type": otlp.PROTOBUF, "x-api-key": token}
    if compress:
        headers["content-encoding"] = "gzip"
    with httpx.Client(timeout=60) as client:
        for body in bodies:
            data = otlp.gzip_body(body) if compress else body
            while True:
                r = client.post(url, content=data, headers=headers)
                if r.status_code == 200:
                    break
                if r.status_code not in (429, 503):
                    raise SystemExit(f"export answered {r.status_code}: {r.text}")
                retries.append(1)
                time.sleep(float(r.headers.get("retry-after", "1")))


def _workspace(root: Path, name: str, scrub: bool) -> Workspace:
    ws = Workspace.init(root, name=name, user="bench")
    if not scrub:
        toml = root / "evaltray.toml"
        toml.write_text(toml.read_text().replace("scrub = true ", "scrub = false"))
        ws.close()
        ws = Workspace.open(root)
    return ws


def _stored(store: TraceStore, counted: dict[Path, int]) -> int:
    """Rows stored so far, each part's count read once from its footer: a part is published whole (renamed into
    place) and the receiver never rewrites one. Reading every part's ids instead, five times a second, took ~40
    ms of CPU a poll near the end of a 20,000-trace run (60 parts): CPU the receiver under test needed."""
    for part in store.parts():
        if part not in counted:
            counted[part] = pq.read_metadata(part).num_rows
    return sum(counted.values())


def run_receiver(root: Path, bodies: list[bytes], n_traces: int, args: argparse.Namespace) -> dict:
    exporters, compress = args.exporters, args.gzip
    ws = _workspace(root, "bench", args.scrub)
    token = accounts.create_token(ws, "bench", "bench", "load")[1]
    ws.close()
    port = _free_port()
    proc = _start_receiver(root, port)
    url, retries = f"http://127.0.0.1:{port}/v1/traces", []
    shares = [bodies[k::exporters] for k in range(exporters)]
    store = TraceStore(root / "traces")
    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=_exporter, args=(url, token, s, compress, retries)) for s in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked = time.perf_counter() - t0
        counted: dict[Path, int] = {}
        while _stored(store, counted) < n_traces or len(store.trace_ids()) < n_traces:
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
    return {"seconds": seconds, "acked_seconds": acked, "retries": len(retries)}


def run_file(root: Path, bodies: list[bytes], scrub: bool) -> float:
    root.mkdir(parents=True)
    path = root / "spans.otlp.jsonl"
    path.write_bytes(b"".join(otlp.protobuf_as_json(b) for b in bodies))
    ws = _workspace(root / "ws", "ref", scrub)
    t0 = time.perf_counter()
    ingest_files(ws, [path], fmt="otel", actor="bench")
    seconds = time.perf_counter() - t0
    ws.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=2, help="1: the building set; 2: the measuring set")
    ap.add_argument("--exporters", type=int, default=2, help="concurrent exporters, one export at a time each")
    ap.add_argument("--gzip", action="store_true", help="exporters send gzip bodies")
    ap.add_argument("--no-scrub", dest="scrub", action="store_false", help="scrubbing off on both sides")
    ap.add_argument("--history", action="store_true", help="the second call resends the conversation (multi-turn)")
    args = ap.parse_args()
    all_traces = traces(args.traces, args.seed, args.history)
    bodies = batches(all_traces)
    n_spans = sum(len(t) for t in all_traces)
    tmp = Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    try:
        got = run_receiver(tmp / "recv", bodies, args.traces, args)
        ref = run_file(tmp / "file", bodies, args.scrub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate, ref_rate = n_spans / got["seconds"], n_spans / ref
    llm = n_spans * 2 // 3
    print(
        f"set: seed {args.seed}, {args.traces:,} traces, {n_spans:,} spans ({llm:,} LLM), {len(bodies)} exports, "
        f"{args.exporters} exporters, scrubbing {'on' if args.scrub else 'off'}, "
        f"{'history resent' if args.history else 'first-measured shape'}"
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        f"receiver: {got['seconds']:.2f} s to queryable ({got['acked_seconds']:.2f} s to the last 200), "
        f"{rate:,.0f} spans/s ({llm / got['seconds']:,.0f} LLM spans/s), {got['retries']} retried 503s"
    )
    print(f"reference `ingest_files(fmt='otel')` of the same spans as a file: {ref:.2f} s, {ref_rate:,.0f} spans/s")
    print(
        f"ratio receiver / file ingest: {rate / ref_rate:.2f}; vs Phoenix 20.26 (110 spans/s, quoted): "
        f"{rate / 110:.0f}x"
    )


if __name__ == "__main__":
    main()
