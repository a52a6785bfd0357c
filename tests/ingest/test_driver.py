"""The ingest driver: idempotence, malformed input, strict mode, payload sampling, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.core.errors import IngestError
from evaltray.core.records import Message, Trace
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import _driver, ingest_files, keep_reasons, sample_unit
from evaltray.ingest._driver import storable
from evaltray.ingest._registry import Format, get_format


def _chat(i: int, **extra) -> bytes:
    return orjson.dumps(
        {
            "id": f"t{i}",
            "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}],
            **extra,
        }
    )


def test_malformed_lines_are_reported_and_the_rest_ingests(ws, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(
        b"\n".join([_chat(1), b'{"messages": [}', _chat(2), b"[1, 2]", b'{"id": "t9", "input": "x"}', _chat(3)]) + b"\n"
    )
    report = ingest_files(ws, [path], fmt="openai")
    assert report.ingested == 3
    assert [str(i) for i in report.issues] == [
        f"{path}:2: not valid JSON (unexpected character, expected a JSON value)",
        f"{path}:4: expected a JSON object with 'messages'",
        f"{path}:5: no 'messages' list (record t9)",
    ]
    assert sorted(TraceStore(ws.traces_dir).trace_ids()) == ["t1", "t2", "t3"]


def test_strict_fails_on_the_first_bad_record_and_writes_nothing(ws, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(_chat(1) + b"\n" + b"nope\n")
    with pytest.raises(IngestError, match=f"{path}:2: not valid JSON"):
        ingest_files(ws, [path], fmt="openai", strict=True)
    assert TraceStore(ws.traces_dir).count() == 0
    with ws.tx() as conn:
        (status,) = conn.execute(ws.t["ingest_files"].select().with_only_columns(ws.t["ingest_files"].c.status)).one()
    assert status == "failed"


def test_reingest_adds_nothing(ws, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"\n".join(_chat(i) for i in range(50)) + b"\n")
    first = ingest_files(ws, [path])
    second = ingest_files(ws, [path])
    assert (first.ingested, first.skipped, second.ingested, second.skipped) == (50, 0, 0, 50)
    assert TraceStore(ws.traces_dir).count() == 50


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.lists(st.integers(0, 40), max_size=30))
def test_ingest_is_idempotent_by_trace_id(tmp_path_factory, first, second):
    root = tmp_path_factory.mktemp("ws")
    ws = Workspace.init(root / "w", user="alice")
    try:
        a, b = root / "a.jsonl", root / "b.jsonl"
        a.write_bytes(b"".join(_chat(i) + b"\n" for i in first))
        b.write_bytes(b"".join(_chat(i) + b"\n" for i in second) or b"\n")
        ingest_files(ws, [a, b])
        ingest_files(ws, [b, a])
        ids = TraceStore(ws.traces_dir).query(columns=["trace_id"]).column("trace_id").to_pylist()
        assert sorted(ids) == sorted({f"t{i}" for i in first + second})
    finally:
        ws.close()


def _t(tid: str, **kw) -> Trace:
    return Trace(trace_id=tid, source_format="test", messages=[Message("user", "hi")], **kw)


def test_payload_sampling_keeps_the_rare_rows():
    batch = [_t(f"n{i}", latency_ms=100.0 + i, cost_usd=0.01) for i in range(40)]
    batch += [
        _t("slow", latency_ms=9_999.0),
        _t("dear", cost_usd=5.0),
        _t("thumbs-down", feedback_score=-1.0),
        _t("boom", status="error", error="timeout"),
        Trace("toolfail", "test", messages=[Message("user", "x"), Message("tool", "500", is_error=True)]),
    ]
    reasons = dict(zip([t.trace_id for t in batch], keep_reasons(batch, 0.0001, 0.95), strict=True))
    assert reasons["slow"] == "latency_outlier" and reasons["dear"] == "cost_outlier"
    assert reasons["thumbs-down"] == "negative_feedback" and reasons["boom"] == "error"
    assert reasons["toolfail"] == "tool_failure"
    # the p95 of latencies 100..139 and 9999 (41 values) is 138: only 139 and 9999 are above it
    assert [k for k, v in reasons.items() if v == "latency_outlier"] == ["n39", "slow"]
    sampled = [k for k, v in reasons.items() if v == "sampled"]
    assert sampled == [k for k in reasons if reasons[k] in (None, "sampled") and sample_unit(k) < 0.0001]


@pytest.mark.parametrize("rate", [1.0, 0.3])
def test_keep_reasons_of_a_table_are_those_of_its_rows(rate: float) -> None:
    """The column-at-a-time reasons of a chunk equal the row rules, NaN and null latencies and costs included."""
    batch = [_t(f"n{i}", latency_ms=100.0 + i % 17, cost_usd=0.01 * (i % 5)) for i in range(60)]
    batch += [_t("none"), _t("slow", latency_ms=9_999.0), _t("empty-error", error=""), _t("fb0", feedback_score=0.0)]
    batch += [_t("boom", status="error"), _t("neg", feedback_score=-0.5, latency_ms=50_000.0)]
    for nan in (False, True):  # a NaN latency or cost: the row rules' sorted() order decides, as before
        if nan:
            batch.append(_t("nan", latency_ms=float("nan"), cost_usd=float("nan")))
        _, table, _ = storable(batch)
        assert _driver._table_reasons(table, rate, 0.9).to_pylist() == keep_reasons(batch, rate, 0.9)
    reasons = dict(zip([t.trace_id for t in batch], keep_reasons(batch, rate, 0.9), strict=True))
    assert (reasons["slow"], reasons["boom"], reasons["neg"]) == ("latency_outlier", "error", "negative_feedback")
    for plain in ("none", "empty-error", "fb0"):  # neither an empty error text nor a 0 feedback keeps a payload
        assert reasons[plain] == ("sampled" if rate >= 1 or sample_unit(plain) < rate else None)


def test_new_ids_are_those_not_seen_and_first_in_their_batch() -> None:
    seen = {"a"}
    assert _driver._mark_new(["b", "c"], seen) == [True, True] and seen == {"a", "b", "c"}
    assert _driver._mark_new(["d", "e", "d"], seen) == [True, True, False] and seen == {"a", "b", "c", "d", "e"}
    assert _driver._mark_new(["a", "f", "f", "g"], seen) == [False, True, False, True]
    assert seen == {"a", "b", "c", "d", "e", "f", "g"}


@pytest.mark.parametrize("piece", [1, 3, 7, 64])
def test_lines_read_in_pieces_are_those_of_a_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    monkeypatch.setattr(_driver, "_READ_BYTES", piece)
    path = tmp_path / "x.jsonl"
    data = b"ab\n\ncdef\r\n  \ngh\nlast-without-newline"
    path.write_bytes(data)
    for start, end in [(0, len(data)), (3, 13), (0, 3), (5, 5)]:
        assert list(_driver._lines(str(path), start, end)) == data[start:end].split(b"\n")


def test_payload_sample_keeps_metadata_for_all(ws, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"".join(_chat(i) + b"\n" for i in range(400)))
    ingest_files(ws, [path], payload_sample=0.1)
    t = TraceStore(ws.traces_dir).query(columns=["trace_id", "payload_kept", "messages", "n_messages"]).to_pylist()
    kept = [r for r in t if r["payload_kept"]]
    expected = sum(sample_unit(f"t{i}") < 0.1 for i in range(400))
    assert len(t) == 400 and len(kept) == expected and 20 < expected < 60
    assert all(r["messages"] is None and r["n_messages"] == 2 for r in t if not r["payload_kept"])


def test_where_cannot_escape_the_traces_view(ws, tmp_path):
    from evaltray.core.errors import QueryError

    store = TraceStore(ws.traces_dir)
    path = tmp_path / "chats.jsonl"
    path.write_bytes(_chat(1) + b"\n")
    ingest_files(ws, [path])
    with pytest.raises(QueryError, match="must be a single boolean expression"):
        store.query("1=1); DROP TABLE traces; SELECT (1")
    with pytest.raises(QueryError, match="Permission Error"):
        store.query("trace_id IN (SELECT column0 FROM read_csv('/etc/passwd'))")
    assert store.query("n_messages = 2", columns=["trace_id"]).column("trace_id").to_pylist() == ["t1"]


_INGEST = """
import sys
from pathlib import Path
from evaltray.core.store import Workspace
from evaltray.ingest import ingest_files
ws = Workspace.open(Path(sys.argv[1]))
ingest_files(ws, [Path(sys.argv[2])], fmt="openai")
"""


def test_kill_9_mid_ingest_then_resume_loses_nothing_and_duplicates_nothing(ws, tmp_path):
    n = 120_000
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(_chat(i) + b"\n")
    cmd = [sys.executable, "-c", _INGEST, str(ws.root), str(path)]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    while not list(ws.traces_dir.glob("ingest_date=*/*.parquet")):
        assert proc.poll() is None, "ingest finished before it could be killed: make the file bigger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = TraceStore(ws.traces_dir).count()
    assert 0 < partial < n
    subprocess.run(cmd, check=True)
    ids = TraceStore(ws.traces_dir).query(columns=["trace_id"]).column("trace_id").to_pylist()
    assert len(ids) == n and len(set(ids)) == n
    assert not list((ws.traces_dir / ".tmp").glob("*"))


def test_unknown_format_and_missing_file_errors(ws, tmp_path):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(IngestError, match=r"notes.txt: cannot tell the format; pass --format \(one of: "):
        ingest_files(ws, [odd], strict=True)
    good = tmp_path / "chats.jsonl"
    good.write_bytes(_chat(1) + b"\n")
    report = ingest_files(ws, [odd, good])
    assert report.ingested == 1
    assert [str(i) for i in report.issues][0].startswith(f"{odd}: cannot tell the format; pass --format (one of: ")
    with pytest.raises(IngestError, match="unknown ingest format 'xml': one of csv, jsonl, langfuse, "):
        ingest_files(ws, [odd], fmt="xml")
    with pytest.raises(IngestError, match="missing.jsonl: no such file"):
        ingest_files(ws, [Path(tmp_path / "missing.jsonl")])


def test_text_no_encoder_takes_is_an_issue_by_id() -> None:
    """A lone surrogate (PyYAML makes one from a ``\\ud800`` escape in a cassette) cannot be written as UTF-8."""
    bad = Trace("t1", "vcr-openai", [Message("user", "a \ud800 b")])
    ok = Trace("t2", "vcr-openai", [Message("user", "fine")])
    kept, table, left = storable([bad, ok])
    assert ([t.trace_id for t in kept], table.column("trace_id").to_pylist()) == (["t2"], ["t2"])
    assert left == [("t1", "a value cannot be stored (UnicodeEncodeError)")]


def test_a_parser_that_stops_on_an_odd_value_keeps_what_it_read(ws, tmp_path, monkeypatch) -> None:
    """Outside any one record (no per-record guard), a parser's TypeError ends the file with an issue, not a crash."""

    def parse(path, options):
        yield Trace("first", "broken", [Message("user", "read before the odd value")])
        raise TypeError("'int' object is not iterable")

    broken = Format("broken", parse, None, 999, "a parser that stops")
    monkeypatch.setattr(_driver, "get_format", lambda name: broken if name == "broken" else get_format(name))
    path = tmp_path / "x.json"
    path.write_bytes(b"{}")
    report = ingest_files(ws, [path], fmt="broken", scrub=False)
    assert [str(i) for i in report.issues] == [
        f"{path}: the rest of the file could not be read: a value has an unexpected type (TypeError)"
    ]
    assert (report.ingested, TraceStore(ws.traces_dir).trace_ids()) == (1, {"first"})


# --------------------------------------------------------------------------- no state outlives an ingest


def _exchange(good_id: str, answer: str, bad_first: bool) -> bytes:
    good = orjson.dumps(
        {
            "request_body": {"messages": [{"role": "user", "content": "hi"}]},
            "response_body": {"id": good_id, "choices": [{"message": {"role": "assistant", "content": answer}}]},
        }
    )
    bad = orjson.dumps({"request_body": "not a request", "response_body": {"id": "r2"}})
    first, second = (bad, good) if bad_first else (good, bad)
    return b"[\n" + first + b",\n" + second + b"\n]\n"


def test_a_file_changed_on_disk_is_read_anew_by_the_next_ingest(ws, tmp_path: Path) -> None:
    """A long-running process ingests a file, the file changes (same path, same size), and the next ingest reads
    what is there now: the new trace, and its issue at its new line."""
    path = tmp_path / "calls.json"
    path.write_bytes(_exchange("r1", "yo", bad_first=False))
    first = ingest_files(ws, [path], fmt="openai-exchange", scrub=False)
    changed = _exchange("r3", "ya", bad_first=True)
    assert len(changed) == path.stat().st_size
    path.write_bytes(changed)
    second = ingest_files(ws, [path], fmt="openai-exchange", scrub=False)
    assert [(i.line, i.record_id) for i in first.issues] == [(3, "r2")]
    assert [(i.line, i.record_id) for i in second.issues] == [(2, "r2")]
    rows = TraceStore(ws.traces_dir).query(columns=["trace_id", "output_text"], order_by="trace_id").to_pylist()
    assert rows == [{"trace_id": "r1", "output_text": "yo"}, {"trace_id": "r3", "output_text": "ya"}]


def test_a_file_changed_within_the_same_mtime_is_read_anew(ws, tmp_path: Path) -> None:
    """Not even a file's size and modification time are taken as its content."""

    def export(first: str, second: str) -> bytes:
        obs = [{"id": first, "type": "SPAN", "startTime": "2025-01-01T00:00:00Z"}, {"id": second, "type": "SPAN"}]
        return b'{"trace": {"id": "T1"},\n"observations": [\n' + b",\n".join(map(orjson.dumps, obs)) + b"]}\n"

    path = tmp_path / "trace.json"
    path.write_bytes(export("o1", "o2"))  # o2 has no startTime: an issue at its line
    stat = path.stat()
    first = ingest_files(ws, [path], fmt="langfuse", scrub=False)
    path.write_bytes(export("o2", "o1"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second = ingest_files(ws, [path], fmt="langfuse", scrub=False)
    assert [(i.line, i.record_id) for i in first.issues] == [(4, "o2")]
    assert [(i.line, i.record_id) for i in second.issues] == [(4, "o1")]
