"""``POST /v1/traces``: what an OpenTelemetry exporter sends and is answered, and a kill -9 after a 200."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import otlp
from evaltray.web import accounts, create_app
from evaltray.web.otlp import create_receiver_app
from tests.ingest.test_otlp import FILES, llm_trace

PB = {"content-type": "application/x-protobuf"}


@pytest.fixture
def token(ws: Workspace) -> str:
    return accounts.create_token(ws, "alice", "alice", "otlp")[1]


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_receiver_app(ws, settle=3600), base_url="http://127.0.0.1") as c:
        yield c


def stored_ids(ws: Workspace) -> set[str]:
    return TraceStore(ws.traces_dir).trace_ids()


def test_protobuf_gzip_and_json_exports_are_answered_and_stored(ws: Workspace, token: str, client) -> None:
    body = otlp.encode(llm_trace(1) + llm_trace(2))
    r = client.post(
        "/v1/traces", content=gzip.compress(body), headers={**PB, "content-encoding": "gzip", "x-api-key": token}
    )
    assert (r.status_code, r.headers["content-type"], r.content) == (200, "application/x-protobuf", b"")
    r = client.post(
        "/v1/traces",
        content=FILES[0].read_bytes(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert (r.status_code, r.json()) == (200, {})
    client.app.state.otlp.flush(final=True)
    assert stored_ids(ws) >= {f"{2:032x}", f"{3:032x}"} and len(stored_ids(ws)) == 3


def test_rejected_spans_come_back_as_partial_success(token: str, client) -> None:
    bad = llm_trace(1)
    bad[0].span_id = "00" * 8
    encoded = otlp.encode(bad[1:])  # the good root span, then a span with an all-zero id spliced in by hand
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(encoded)
    req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 16, span_id=b"", name="broken")
    r = client.post("/v1/traces", content=req.SerializeToString(), headers={**PB, "x-api-key": token})
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert r.status_code == 200
    assert (resp.partial_success.rejected_spans, resp.partial_success.error_message) == (
        1,
        "span has no valid spanId or traceId",
    )


def test_an_exporter_without_a_token_of_an_ingesting_user_is_refused(ws: Workspace, token: str, client) -> None:
    body = otlp.encode(llm_trace(1))
    r = client.post("/v1/traces", content=body, headers=PB)
    assert (r.status_code, r.json()["message"]) == (
        401,
        "send an API token as `Authorization: Bearer TOKEN` or `x-api-key: TOKEN`",
    )
    r = client.post("/v1/traces", content=body, headers={**PB, "x-api-key": "nope"})
    assert (r.status_code, r.json()["message"]) == (401, "the API token is unknown or revoked")
    ws.add_user("vic", "viewer", actor="alice")
    viewer = accounts.create_token(ws, "vic", "alice", None)[1]
    r = client.post("/v1/traces", content=body, headers={**PB, "x-api-key": viewer})
    assert r.status_code == 403 and "sending traces needs one of" in r.json()["message"]
    r = client.post("/v1/traces", content=b"{}", headers={"content-type": "text/plain", "x-api-key": token})
    assert (r.status_code, r.json()["message"]) == (
        400,
        "Content-Type 'text/plain' is not OTLP; send application/x-protobuf or application/json",
    )
    assert not (ws.root / "otlp" / "journal-00000001.bin").stat().st_size  # nothing refused was journaled


def test_a_full_journal_answers_503_with_retry_after_and_journals_nothing(ws: Workspace, token: str) -> None:
    app = create_receiver_app(ws, settle=3600, max_backlog=10)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        app.state.otlp.journal.append("protobuf", b"x" * 20)  # a backlog the flusher has not stored yet
        size = app.state.otlp.journal.end
        r = c.post("/v1/traces", content=otlp.encode(llm_trace(1)), headers={**PB, "x-api-key": token})
        assert (r.status_code, r.headers["retry-after"]) == (503, "5")
        assert app.state.otlp.journal.end == size and app.state.otlp.stats.refused == 1


def test_the_web_app_serves_the_receiver_too(ws: Workspace, token: str) -> None:
    with TestClient(create_app(ws), base_url="http://127.0.0.1") as c:
        r = c.post("/v1/traces", content=otlp.encode(llm_trace(1)), headers={**PB, "x-api-key": token})
        assert r.status_code == 200
    assert stored_ids(ws) == {f"{2:032x}"}  # the app's shutdown stored what it journaled


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(ws: Workspace, port: int, *options: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from evaltray.cli import main; main()", "receive", "--port", str(port), *options],
        cwd=ws.root,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180  # generous: a loaded 2-core CI machine
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"", headers=PB, timeout=5)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
    raise AssertionError("the receiver did not start")


@pytest.mark.early
def test_kill_9_after_200_loses_no_acknowledged_span(ws: Workspace, token: str) -> None:
    port = _free_port()
    proc = _start(ws, port, "--flush-every", "600")  # nothing is stored before the kill
    acked: set[str] = set()
    try:
        for batch in range(6):
            spans = [s for n in range(batch * 50, batch * 50 + 50) for s in llm_trace(n)]
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/traces",
                content=otlp.encode(spans),
                headers={**PB, "x-api-key": token},
                timeout=30,
            )
            assert r.status_code == 200
            acked |= {s.trace_id for s in spans}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert stored_ids(ws) == set()  # everything acknowledged was only journaled when the process died
    proc = _start(ws, port)  # the restart replays the journal
    try:
        deadline = time.monotonic() + 180  # generous: a loaded 2-core CI machine
        while stored_ids(ws) != acked and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert stored_ids(ws) == acked
    rows = TraceStore(ws.traces_dir).get(acked)
    assert all(len(orjson.loads(r["spans"])) == 2 for r in rows.values())


def test_a_body_over_the_limit_is_refused_with_413_even_without_a_length(token: str, client, monkeypatch) -> None:
    monkeypatch.setattr(otlp, "MAX_BODY", 100)
    body = otlp.encode(llm_trace(1))
    assert len(body) > 100

    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to judge by
        yield body[:50]
        yield body[50:]

    r = client.post("/v1/traces", content=chunks(), headers={**PB, "x-api-key": token})
    assert (r.status_code, r.json()["message"]) == (413, "the body is over 0 MiB; export smaller batches")
    assert client.app.state.otlp.journal.end.offset == 0
