"""The trace store's columns, declared once, and the one place a trace becomes a row."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evaltray.core import traces as traces_mod
from evaltray.core.errors import QueryError
from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import (
    BATCH_COLUMNS,
    COLUMN_INDEX,
    COLUMN_TYPES,
    COLUMNS,
    PAYLOAD_COLUMNS,
    SCHEMA,
    CallRecord,
    MessageRecord,
    RowBuilder,
    TraceStore,
    conjunction,
    list_traces,
    trace_stats,
    trace_values,
    values_table,
)

START = datetime(2025, 1, 1, tzinfo=UTC)  # 1,735,689,600 s after the epoch


def _sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_schema_and_row_positions_come_from_the_one_declaration() -> None:
    assert [(f.name, f.type) for f in SCHEMA] == list(COLUMN_TYPES)
    assert [name for name, _ in COLUMN_TYPES] == COLUMNS
    assert [COLUMN_INDEX[name] for name in COLUMNS] == list(range(len(COLUMNS)))
    assert COLUMN_INDEX["trace_id"] == 0 and COLUMNS[-1] == "scrubbed"  # older parts and readers rely on both
    assert set(PAYLOAD_COLUMNS) <= set(COLUMNS) and set(BATCH_COLUMNS) <= set(COLUMNS)


def test_the_row_builder_takes_a_traces_fields_in_trace_order() -> None:
    assert list(inspect.signature(RowBuilder().row).parameters) == [f.name for f in dataclasses.fields(Trace)]


def test_each_column_of_a_row_worked_by_hand() -> None:
    """Every column by name: the row tuple's order is checked against the declaration, value by value."""
    messages = [
        MessageRecord("system", "Be brief."),
        MessageRecord("user", "hi"),
        MessageRecord("assistant", "let me look", [CallRecord(id="c1", name="f", arguments={"x": 1})]),
        MessageRecord("tool", "boom", None, "c1", "f", True),
        MessageRecord("assistant", "sorry"),
    ]
    tools = [{"type": "function", "function": {"name": "f"}}]
    row = RowBuilder().row(
        trace_id="t1",
        source_format="openai",
        messages=messages,
        tools=tools,
        start_time=START,
        end_time=START + timedelta(seconds=1.5),
        latency_ms=None,
        input_tokens=3,
        output_tokens=4,
        total_tokens=None,
        cost_usd=0.25,
        model="gpt-x",
        model_version="fp_1",
        provider="openai",
        session_id="s1",
        user_id="u1",
        name="chat",
        feature="refunds",
        tags=["a"],
        feedback_score=-1.0,
        feedback_comment="meh",
        prompt_template_id="p@2",
        retrieved_doc_ids=["d1", "d2"],
        corpus_version="v9",
        status="error",
        error="boom",
        spans=[],
        metadata={"k": "v"},
    )
    assert dict(zip(COLUMNS, row, strict=True)) == {
        "trace_id": "t1",
        "source_format": "openai",
        "source_file": None,
        "ingested_at": None,
        "start_time": 1_735_689_600_000_000,
        "end_time": 1_735_689_601_500_000,
        "latency_ms": 1500.0,  # from the two times, as none was given
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,  # 3 + 4
        "cost_usd": 0.25,
        "model": "gpt-x",
        "model_version": "fp_1",
        "provider": "openai",
        "session_id": "s1",
        "user_id": "u1",
        "name": "chat",
        "feature": "refunds",
        "tags": ["a"],
        "feedback_score": -1.0,
        "feedback_comment": "meh",
        "prompt_template_id": "p@2",
        "system_hash": _sha16("Be brief."),
        "tools_hash": _sha16('[{"function":{"name":"f"},"type":"function"}]'),  # of the keys sorted
        "retrieved_doc_ids": ["d1", "d2"],
        "corpus_version": "v9",
        "status": "error",
        "error": "boom",
        "n_messages": 5,
        "n_user_turns": 1,
        "n_tool_calls": 1,
        "n_tool_errors": 1,
        "output_chars": 5,  # "sorry": the last assistant text
        "payload_kept": None,
        "keep_reason": None,
        "input_text": "hi",
        "output_text": "sorry",
        "messages": b'[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},'
        b'{"role":"assistant","content":"let me look","tool_calls":[{"id":"c1","name":"f","arguments":{"x":1}}]},'
        b'{"role":"tool","content":"boom","tool_call_id":"c1","name":"f","is_error":true},'
        b'{"role":"assistant","content":"sorry"}]',
        "tools": b'[{"type":"function","function":{"name":"f"}}]',
        "spans": None,
        "metadata": b'{"k":"v"}',
        "scrubbed": None,
    }


def test_a_trace_and_its_fields_give_the_same_row_and_table() -> None:
    trace = Trace(
        "t2",
        "otel",
        [Message("system", "S"), Message("user", "q"), Message("assistant", None, [ToolCall(None, "g", None)])],
        start_time=START,
        latency_ms=12.5,
        tags=["x"],
    )
    row = trace_values(trace)
    fields = {f.name: getattr(trace, f.name) for f in dataclasses.fields(Trace)}
    records = [
        MessageRecord("system", "S"),
        MessageRecord("user", "q"),
        MessageRecord("assistant", None, [CallRecord(name="g")]),
    ]
    assert row == RowBuilder().row(**{**fields, "messages": records})
    table = values_table([row])
    assert table.schema == SCHEMA
    got = table.to_pylist()[0]
    assert (got["latency_ms"], got["n_tool_calls"], got["output_text"], got["start_time"]) == (12.5, 1, None, START)
    assert got["total_tokens"] is None and got["tools_hash"] is None  # nothing to add up, no tools
    assert values_table([]).schema == SCHEMA and values_table([]).num_rows == 0


def test_no_hash_outlives_its_builder() -> None:
    """A tools list changed in place between two calls is stored as it is now: caches live per builder."""
    trace = Trace("t3", "openai", [Message("user", "q")], tools=[{"name": "a"}])
    before = dict(zip(COLUMNS, trace_values(trace), strict=True))
    trace.tools.append({"name": "b"})
    after = dict(zip(COLUMNS, trace_values(trace), strict=True))
    assert (before["tools"], after["tools"]) == (b'[{"name":"a"}]', b'[{"name":"a"},{"name":"b"}]')
    assert after["tools_hash"] == _sha16('[{"name":"a"},{"name":"b"}]') != before["tools_hash"]


def test_one_builder_hashes_a_recurring_list_once() -> None:
    """Within one builder (one batch) the same list object is encoded once: the chat path relies on it."""
    rows = RowBuilder()
    tools = [{"name": "a"}]
    fields = {f.name: None for f in dataclasses.fields(Trace)} | {
        "trace_id": "t",
        "source_format": "openai",
        "messages": [],
        "tools": tools,
        "tags": [],
        "retrieved_doc_ids": [],
        "status": "ok",
        "spans": [],
        "metadata": {},
    }
    first, second = rows.row(**fields), rows.row(**{**fields, "trace_id": "u"})
    i = COLUMN_INDEX["tools"]
    assert first[i] == b'[{"name":"a"}]'
    assert second[i] is first[i]  # the stored JSON of the first row, not encoded again


# --------------------------------------------------------------------------- the --where sandbox


def _store(tmp_path: Path, n: int = 3) -> TraceStore:
    store = TraceStore(tmp_path / "traces")
    rows = [trace_values(Trace(f"t{i}", "openai", [Message("user", f"q{i}")], feature="f")) for i in range(n)]
    store.write_table(values_table(rows), START.date())
    return store


def test_a_trailing_comment_does_not_drop_the_limit(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(QueryError) as err:
        store.query("1=1) --", columns=["trace_id"], limit=1)
    assert str(err.value) == "--where '1=1) --': must be a single boolean expression over trace columns"
    # the comment runs to the end of its own line: the closing parenthesis and the LIMIT still follow
    assert store.query("1=1 --", columns=["trace_id"], limit=1).num_rows == 1
    assert list_traces(store, "1=1 -- a note", limit=2).rows[1]["trace_id"] == "t1"
    assert len(list_traces(store, "1=1 -- a note", limit=2).rows) == 2


@pytest.mark.parametrize(
    "where",
    [
        "1=1) UNION ALL SELECT 1 FROM traces WHERE (1=1",
        "1=1) GROUP BY trace_id HAVING (1=1",
        "1=1) LIMIT 100 OFFSET (0",
        "1=1) QUALIFY (1=1",
        "1) OR (1",  # balanced over all, but it closes the parenthesis it was put in
        "(1=1",
    ],
)
def test_a_predicate_with_a_clause_of_its_own_is_refused(tmp_path: Path, where: str) -> None:
    with pytest.raises(QueryError, match="must be a single boolean expression over trace columns"):
        _store(tmp_path).query(where, columns=["trace_id"], limit=1)


def test_a_predicate_cannot_read_the_temp_directory_or_any_file(tmp_path: Path, monkeypatch) -> None:
    # DuckDB's default temporary directory is ``.tmp`` under the current directory, readable by any query
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("token\nhunter2\n")
    store = _store(tmp_path)
    for where in (
        "trace_id IN (SELECT file FROM glob('.tmp/*'))",
        "trace_id IN (SELECT token FROM read_csv('.tmp/secret.csv'))",
        f"trace_id IN (SELECT content FROM read_text('{tmp_path}/.tmp/secret.csv'))",
        "trace_id IN (SELECT file FROM glob('/tmp/*'))",
    ):
        with pytest.raises(QueryError, match="Permission Error"):
            store.query(where, columns=["trace_id"])


def test_a_slow_predicate_is_stopped_at_the_time_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(traces_mod, "QUERY_TIMEOUT_S", 0.2)
    slow = "(SELECT count(*) FROM range(1000000) a, range(1000000) b) > 0"
    with pytest.raises(QueryError) as err:
        _store(tmp_path).query(slow, columns=["trace_id"])
    assert str(err.value) == f"--where {slow!r}: stopped after 0.2 s (the query time limit); narrow the predicate"
    with pytest.raises(QueryError, match="stopped after 0.1 s"):
        _store(tmp_path / "b").query(slow, timeout_s=0.1)


def test_an_interrupt_before_the_query_runs_still_stops_it(tmp_path: Path, monkeypatch) -> None:
    """On a loaded machine the time limit can pass before DuckDB starts the query: the interrupt then lands on
    an idle connection, and whatever comes back is not trusted as a whole answer."""

    class FiresAtOnce:
        def __init__(self, _seconds: float, fn) -> None:
            self.fn, self.daemon = fn, False

        def start(self) -> None:
            self.fn()

        def cancel(self) -> None:
            pass

        def join(self) -> None:
            pass

    monkeypatch.setattr(traces_mod.threading, "Timer", FiresAtOnce)
    with pytest.raises(QueryError, match=r"^--where 'trace_id IS NOT NULL': stopped after 0\.5 s"):
        _store(tmp_path).query("trace_id IS NOT NULL", timeout_s=0.5)


def test_a_predicate_that_needs_too_much_memory_fails_with_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(traces_mod, "QUERY_MEMORY_LIMIT", "20MB")
    big = "(SELECT count(*) FROM (SELECT range FROM range(10000000) ORDER BY range DESC)) > 0"
    with pytest.raises(QueryError, match=r"^--where .*: Out of Memory Error: "):
        _store(tmp_path).query(big, columns=["trace_id"])


def test_a_timed_out_stats_query_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(traces_mod, "QUERY_TIMEOUT_S", 0.2)
    with pytest.raises(QueryError, match="stopped after 0.2 s"):
        trace_stats(_store(tmp_path), "(SELECT count(*) FROM range(1000000) a, range(1000000) b) > 0")


def test_a_conjunction_checks_each_predicate_alone(tmp_path: Path) -> None:
    assert conjunction("payload_kept", None, "x = ')(' -- note") == "(\npayload_kept\n) AND (\nx = ')(' -- note\n)"
    with pytest.raises(QueryError, match="^--where '1\\) OR \\(1': must be a single boolean expression"):
        conjunction("payload_kept", "1) OR (1")


def test_a_negative_limit_is_refused_and_an_error_names_no_option_never_given(tmp_path: Path) -> None:
    """Failed before: ``list_traces(limit=-1)`` said ``--where None: Binder Error: …``, naming an option the
    user never gave (and DuckDB's words for a negative LIMIT)."""
    store = _store(tmp_path)
    with pytest.raises(QueryError) as err:
        list_traces(store, limit=-1)
    assert str(err.value) == "limit must be 0 or more, got -1"
    assert list_traces(store, limit=0).rows == []
    with pytest.raises(QueryError) as err:
        store.query(columns=["no_such_column"])
    assert str(err.value).startswith('trace query: Binder Error: Referenced column "no_such_column" not found')
    with pytest.raises(QueryError) as err:
        store.query("no_such_column = 1")
    assert str(err.value).startswith("--where 'no_such_column = 1': Binder Error: ")
