"""OTLP/HTTP bodies, the journal and the flusher (:mod:`evaltray.ingest.otlp`); the route is tested in tests/web."""

from __future__ import annotations

import gzip
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from evaltray.core.errors import IngestError
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import ingest_files, otlp
from evaltray.ingest.otel import _read_otlp
from evaltray.ingest.otlp import BadRequest, Journal, Position, Receiver
from evaltray.ingest.spans import SpanRecord

DATA = Path(__file__).parent.parent / "data" / "otel"
FILES = sorted(p for p in DATA.glob("*.json") if ".logs." not in p.name)
#: Files whose traces need no OTLP logs (messages as log records come to /v1/logs, which is not received yet).
SPANS_ALONE = [p for p in FILES if "legacy" not in p.name]
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def file_spans(path: Path) -> list[SpanRecord]:
    return [s for s in _read_otlp(path) if isinstance(s, SpanRecord)]


def llm_trace(n: int, text: str = "hello", root: bool = True) -> list[SpanRecord]:
    """Trace ``n``: an agent root span and one chat call under it (GenAI attributes, OpenLLMetry's indexed form)."""
    tid, root_id = f"{n + 1:032x}", f"{2 * n + 1:016x}"
    call = SpanRecord(
        trace_id=tid,
        span_id=f"{2 * n + 2:016x}",
        parent_id=root_id,
        name="chat gpt-4o",
        kind="client",
        start=T0,
        end=T0 + timedelta(seconds=1),
        attrs={
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": text,
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": f"answer {n}",
            "gen_ai.usage.input_tokens": 12,
        },
    )
    top = SpanRecord(trace_id=tid, span_id=root_id, name="agent", start=T0, end=T0 + timedelta(seconds=2))
    return [call, top] if root else [call]


def stored(ws: Workspace) -> dict[str, dict]:
    store = TraceStore(ws.traces_dir)
    return store.get(store.trace_ids())


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_protobuf_and_json_bodies_decode_to_the_spans_the_file_format_reads(path: Path) -> None:
    spans = file_spans(path)
    assert spans
    assert otlp.decode(otlp.encode(spans), "protobuf").spans == spans
    assert otlp.decode(path.read_bytes(), "json").spans == spans


def test_a_span_without_valid_ids_is_rejected_and_counted_the_rest_kept() -> None:
    good = llm_trace(0)
    body = orjson.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {"traceId": "00" * 16, "spanId": "ab" * 8, "name": "x"},
                                {"traceId": "cd" * 16, "spanId": "zz", "name": "y"},
                                {"traceId": good[0].trace_id, "spanId": good[0].span_id, "name": "chat"},
                            ]
                        }
                    ]
                }
            ]
        }
    )
    checked = otlp.check(body, "json")
    assert (checked.accepted, checked.rejected) == (1, 2)
    assert checked.reason == "span has no valid traceId (span abababababababab)"
    assert orjson.loads(otlp.response_body("json", 2, checked.reason)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": checked.reason}
    }
    pb = bytearray(otlp.encode(good))
    assert otlp.check(bytes(pb), "protobuf").accepted == 2
    resp = ExportTraceServiceResponse.FromString(otlp.response_body("protobuf", 3, "why"))
    assert (resp.partial_success.rejected_spans, resp.partial_success.error_message) == (3, "why")
    assert otlp.response_body("protobuf", 0, "") == b""  # an empty response: everything accepted


def test_bodies_that_are_not_trace_exports_are_refused_by_name() -> None:
    with pytest.raises(BadRequest, match="not a protobuf ExportTraceServiceRequest"):
        otlp.check(b"\xff\xff\xff", "protobuf")
    with pytest.raises(BadRequest, match="the body is not JSON"):
        otlp.check(b"{", "json")
    with pytest.raises(BadRequest, match="Content-Type 'text/plain' is not OTLP"):
        otlp.media_type("text/plain")
    assert otlp.media_type("application/x-protobuf; charset=x") == "protobuf"
    assert otlp.inflate(gzip.compress(b"abc"), "gzip") == b"abc"
    with pytest.raises(BadRequest, match="Content-Encoding 'br' is not supported"):
        otlp.inflate(b"abc", "br")
    with pytest.raises(BadRequest, match="gzip body cannot be decompressed"):
        otlp.inflate(b"abc", "gzip")


# --------------------------------------------------------------------------- the journal


def test_the_journal_keeps_whole_records_and_drops_a_torn_tail(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    first = j.append("protobuf", b"one")
    second = j.append("json", b"two!")
    assert (first, second) == (Position(1, 12), Position(1, 25))  # 8 bytes of head, 1 of kind, the body
    j.close()
    with open(tmp_path / "journal-00000001.bin", "ab") as fh:
        fh.write(b"\x20\x00\x00\x00garbage")  # a crash in the middle of an append: never acknowledged
    j = Journal(tmp_path)
    assert j.end == second
    assert [(k, b) for _, _, k, b in j.read(Position(1, 0), j.end)] == [("protobuf", b"one"), ("json", b"two!")]
    j.advance(first)
    assert Journal(tmp_path).checkpoint == first
    assert Journal(tmp_path).backlog() == 13


def test_a_full_segment_rolls_over_and_the_checkpoint_deletes_the_passed_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(otlp, "SEGMENT_BYTES", 20)
    j = Journal(tmp_path)
    ends = [j.append("json", b"x" * 15) for _ in range(3)]
    assert ends == [Position(2, 0), Position(3, 0), Position(4, 0)]
    assert len(list(j.read(Position(1, 0), j.end))) == 3
    j.advance(Position(3, 0))
    assert j.segments() == [3, 4]


# --------------------------------------------------------------------------- the flusher


def test_received_spans_are_stored_as_the_file_ingest_stores_them(ws: Workspace, tmp_path: Path) -> None:
    """The reference: `evaltray ingest` of the same OTLP/JSON files in another workspace."""
    ref = Workspace.init(tmp_path / "ref", name="ref", user="alice")
    ingest_files(ref, SPANS_ALONE, fmt="otel", actor="alice", scrub=False)
    rec = Receiver(ws, scrub=False)
    rec.start()
    for path in SPANS_ALONE:
        body = otlp.encode(file_spans(path))
        rec.accept("protobuf", body, otlp.check(body, "protobuf").accepted)
    rec.stop()
    skip = {"ingested_at", "source_file"}
    got, want = stored(ws), stored(ref)
    ref.close()
    assert sorted(got) == sorted(want) and len(got) == 5
    for tid in want:
        assert {k: v for k, v in got[tid].items() if k not in skip} == {
            k: v for k, v in want[tid].items() if k not in skip
        }


def test_received_text_is_scrubbed_before_it_is_stored(ws: Workspace) -> None:
    rec = Receiver(ws)
    rec.start()
    spans = llm_trace(7, "mail me at jane.roe@example.com please")
    rec.accept("protobuf", otlp.encode(spans), 2)
    rec.stop()
    (row,) = stored(ws).values()
    assert "jane.roe@example.com" not in orjson.dumps(row).decode()
    assert row["scrubbed"] is True


def test_a_trace_waits_for_its_root_span_then_is_stored_whole(ws: Workspace) -> None:
    call, top = llm_trace(3)
    rec = Receiver(ws, scrub=False, settle=3600)
    rec.journal.append("protobuf", otlp.encode([call]))
    assert rec.flush(final=False) == 0  # the root has not come: held, and the checkpoint stays before it
    assert rec.journal.checkpoint == Position(1, 0)
    end = rec.journal.append("protobuf", otlp.encode([top]))
    assert rec.flush(final=False) == 1
    assert rec.journal.checkpoint == end
    (row,) = stored(ws).values()
    assert [s["id"] for s in orjson.loads(row["spans"])] == [call.span_id, top.span_id]


def test_after_a_crash_the_journal_is_replayed_and_nothing_is_stored_twice(ws: Workspace) -> None:
    first = Receiver(ws, scrub=False, settle=3600)
    first.journal.append("protobuf", otlp.encode(llm_trace(1)))
    first.flush(final=False)  # trace 1 stored, checkpoint past it
    first.journal.append("protobuf", otlp.encode(llm_trace(2)))
    first.journal.append("protobuf", otlp.encode(llm_trace(3, root=False)))
    # the process dies here: traces 2 and 3 are journaled, not stored; the flusher never ran again
    (ws.root / "otlp" / "checkpoint.json").unlink()  # and, worst case, the checkpoint is lost too
    again = Receiver(ws, scrub=False, settle=3600)
    again.start()
    again.stop()  # stop stores held traces too (trace 3 has no root)
    assert again.stats.skipped_traces == 1  # trace 1, replayed, already stored
    assert sorted(stored(ws)) == [f"{n:032x}" for n in (2, 3, 4)]


def test_a_backlog_over_the_bound_is_overload(ws: Workspace) -> None:
    rec = Receiver(ws, scrub=False, max_backlog=100)
    assert not rec.overloaded()
    rec.journal.append("protobuf", b"x" * 200)
    assert rec.overloaded()


# --------------------------------------------------------------------------- the scrubbing pipeline


def pii_traces(count: int) -> list[SpanRecord]:
    names = ["Jane Roe", "Max Mustermann", "Ana Silva"]
    return [
        s
        for n in range(count)
        for s in llm_trace(n, f"Hi, I am {names[n % 3]}, mail me at user{n % 7}@example.com. You are helpful.")
    ]


def test_traces_scrubbed_by_the_worker_pool_are_stored_as_scrubbed_file_ingest_stores_them(
    ws: Workspace, tmp_path: Path
) -> None:
    """The reference: `evaltray ingest` with scrubbing of the same spans as an OTLP/JSON file, in one process."""
    spans = pii_traces(150)  # enough rows for one piece per worker
    body = otlp.encode(spans)
    path = tmp_path / "spans.json"
    path.write_bytes(otlp.protobuf_as_json(body))
    ref = Workspace.init(tmp_path / "ref", name="ref", user="alice")
    ingest_files(ref, [path], fmt="otel", actor="alice", scrub=True)
    rec = Receiver(ws, scrub=True, workers=2, delay=3600)
    rec.start()
    assert rec._pool is not None
    rec.accept("protobuf", body, len(spans))
    rec.stop()
    got, want = stored(ws), stored(ref)
    ref.close()
    assert rec.stats.stored_traces == 150 and sorted(got) == sorted(want)
    skip = {"ingested_at", "source_file"}
    for tid in want:
        assert {k: v for k, v in got[tid].items() if k not in skip} == {
            k: v for k, v in want[tid].items() if k not in skip
        }
    assert "<PERSON_1>" in got[f"{1:032x}"]["input_text"] and "@example.com" not in orjson.dumps(got).decode()


def test_a_round_in_flight_keeps_the_checkpoint_until_it_is_written(ws: Workspace, monkeypatch) -> None:
    """The flusher scrubs a round while it reads the next: a kill meanwhile replays the round, losing nothing."""
    scrubbing: list[tuple[Future, pa.Table]] = []

    def later(table, config, pool, workers):  # the workers take their time: the test says when they are done
        scrubbing.append((Future(), table))
        return [scrubbing[-1][0]]

    monkeypatch.setattr("evaltray.ingest.otlp.submit", later)
    first = Receiver(ws, scrub=False, settle=3600)
    one = first.journal.append("protobuf", otlp.encode(llm_trace(1)))
    assert first._round(final=False) == 0  # in flight: assembled and handed to be scrubbed, not written
    assert first.journal.checkpoint == Position(1, 0) and stored(ws) == {}
    end = first.journal.append("protobuf", otlp.encode(llm_trace(2)))
    future, table = scrubbing[0]
    future.set_result((table, None))
    assert first._round(final=False) == 1  # the first round written, the second in flight
    assert stored(ws).keys() == {f"{2:032x}"} and first.journal.checkpoint == one < end
    # the process dies here, the second round never written
    monkeypatch.undo()
    again = Receiver(ws, scrub=False, settle=3600)
    assert again.flush(final=False) == 1
    assert sorted(stored(ws)) == [f"{n:032x}" for n in (2, 3)] and again.journal.checkpoint == end


def test_a_round_that_fails_to_write_is_read_again_and_nothing_is_lost(ws: Workspace, monkeypatch) -> None:
    rec = Receiver(ws, scrub=False, settle=3600)
    rec.journal.append("protobuf", otlp.encode(llm_trace(1) + llm_trace(2)))
    write = rec.store.write_table

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rec.store, "write_table", full_disk)
    with pytest.raises(OSError):
        rec.flush(final=False)
    assert rec.journal.checkpoint == Position(1, 0)
    monkeypatch.setattr(rec.store, "write_table", write)
    assert rec.flush(final=False) == 2
    assert sorted(stored(ws)) == [f"{n:032x}" for n in (2, 3)]


def test_a_scrub_worker_that_dies_is_replaced_and_its_round_scrubbed_again(ws: Workspace) -> None:
    import os
    import signal

    rec = Receiver(ws, scrub=True, workers=2, delay=3600)
    rec.start()
    try:
        pool = rec._pool
        os.kill(next(iter(pool._processes)), signal.SIGKILL)  # type: ignore[union-attr]
        spans = pii_traces(150)
        rec.accept("protobuf", otlp.encode(spans), len(spans))
        with pytest.raises(IngestError, match="a scrub worker process died"):
            rec.flush(final=False)
        assert rec._pool is not None and rec._pool is not pool and rec.journal.checkpoint == Position(1, 0)
        assert rec.flush(final=False) == 150
    finally:
        rec.stop()
    assert len(stored(ws)) == 150
