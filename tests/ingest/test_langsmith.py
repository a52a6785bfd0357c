"""LangSmith runs: the SDKs' own {post, patch} payloads, a recorded nested agent trace, and (hand-written, see
tests/data/langsmith/README.md) runs in the API/export shape, as JSONL, a JSON array and {"runs": [...]}."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, detect, ingest_files
from evaltray.ingest.langsmith import parse

DATA = Path(__file__).parent.parent / "data" / "langsmith"
NESTED = DATA / "langsmith-py_nested-agent-trace.post-patch.json"
PY, PY_STREAM, JS = (
    DATA / f"langsmith_{n}.json" for n in ("py_wrap_openai_", "py_wrap_openai_stream", "js_wrap_openai_default")
)
# Hand-written from the documented run fields: no licensed recording of the API shape exists (see the README).
API = DATA / "api-runs.synthetic.jsonl"


def _traces(path: Path) -> list[Trace]:
    items = list(parse(path, {}))
    assert [i for i in items if isinstance(i, Issue)] == []
    return items


def test_sniffer_claims_every_langsmith_file() -> None:
    assert {detect(p).name for p in (NESTED, PY, PY_STREAM, JS, API)} == {"langsmith"}


@pytest.mark.parametrize(
    ("path", "trace_id", "latency", "version"),
    [
        (PY, "d0d84d31-923d-4cb5-94a8-40a0a0087578", 1118.333, "gpt-4o-mini-2024-07-18"),
        (PY_STREAM, "fe8ffecb-72ce-4cd2-bdb7-01f34654c391", 1328.441, "gpt-4o-mini-2024-07-18"),
        (JS, "dc34609e-3eeb-459d-bc2a-6fedb01d2e6e", 1115.0, "gpt-4o-mini-2024-07-18"),
    ],
    ids=["python", "python-stream", "js"],
)
def test_wrap_openai_single_runs(path, trace_id, latency, version) -> None:
    (trace,) = _traces(path)
    assert trace.trace_id == trace_id
    assert trace.messages == [
        Message(role="user", content="howdy"),
        Message(role="assistant", content="Howdy! How can I assist you today?"),
    ]
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens, trace.cost_usd) == (9, 9, 18, None)
    assert (trace.model, trace.model_version, trace.provider, trace.name) == (
        "gpt-4o-mini",
        version,
        "openai",
        "ChatOpenAI",
    )
    assert trace.latency_ms == latency
    assert trace.metadata["project"] == "default"


def test_js_patch_without_id_is_merged_by_dotted_order_and_epoch_ms_times() -> None:
    (trace,) = _traces(JS)
    # the patch alone holds the reply and the end time; it names its run only through dotted_order
    assert trace.start_time == datetime(2024, 10, 13, 7, 5, 37, 170000, tzinfo=UTC)
    assert trace.end_time == datetime(2024, 10, 13, 7, 5, 38, 285000, tzinfo=UTC)
    assert trace.metadata["sdk"] == "langsmith-js 0.1.65"
    assert [(s.id, s.kind, s.model) for s in trace.spans] == [
        ("dc34609e-3eeb-459d-bc2a-6fedb01d2e6e", "llm", "gpt-4o-mini")
    ]


def test_nested_agent_trace() -> None:
    (trace,) = _traces(NESTED)
    assert trace.trace_id == "01a20cba-eeff-7cf1-8532-9c9e1781ded1"
    assert [m.role for m in trace.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert trace.messages[2].tool_calls == [
        ToolCall("call_JpNb8OiAkbIbHzDggfpdDHpi", "get_current_weather", {"location": "Seattle, WA"}),
        ToolCall("call_vaFQc3zK6hHTRZKXRI5Eo2cJ", "get_current_weather", {"location": "San Francisco, CA"}),
    ]
    assert trace.messages[4] == Message(
        role="tool",
        content="70 degrees and sunny",
        tool_call_id="call_vaFQc3zK6hHTRZKXRI5Eo2cJ",
        name="get_current_weather",
    )
    assert trace.messages[-1].content == (
        "Today, the weather in Seattle is 50 degrees and raining, while in San Francisco, it's 70 degrees and sunny."
    )
    # two llm runs: 75 + 99 in, 51 + 25 out
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens) == (174, 76, 250)
    assert (trace.name, trace.latency_ms, trace.user_id, trace.session_id, trace.tags) == (
        "weather_agent",
        64.724,
        "user_123",
        "sess_42",
        ["demo"],
    )
    assert [t["function"]["name"] for t in trace.tools] == ["get_current_weather"]
    # the leaked LANGSMITH_* environment and ls_* internals stay out of the metadata
    assert trace.metadata == {
        "runs": 5,
        "project": "weather-agent-demo",
        "metadata": {"user_id": "user_123", "session_id": "sess_42"},
        "sdk": "langsmith-py 0.11.1",
    }
    assert [(s.name, s.kind, s.parent_id) for s in trace.spans] == [
        ("weather_agent", "chain", None),
        ("ChatOpenAI", "llm", "01a20cba-eeff-7cf1-8532-9c9e1781ded1"),
        ("get_current_weather", "tool", "01a20cba-eeff-7cf1-8532-9c9e1781ded1"),
        ("get_current_weather", "tool", "01a20cba-eeff-7cf1-8532-9c9e1781ded1"),
        ("ChatOpenAI", "llm", "01a20cba-eeff-7cf1-8532-9c9e1781ded1"),
    ]


def test_api_runs_jsonl() -> None:
    agent, translate = _traces(API)
    assert agent.trace_id == "1f0b6f52-0c1e-4a8e-9a57-3c1d2b7e0001"
    assert [m.role for m in agent.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert agent.messages[2].tool_calls == [ToolCall("call_a1", "lookup_order", {"order_id": "8812"})]
    assert agent.messages[3] == Message(
        role="tool",
        content="TimeoutError: order service did not answer in 5s",
        tool_call_id="call_a1",
        name="lookup_order",
        is_error=True,
    )
    assert agent.messages[-1].content == "I could not look up order 8812 right now. Please try again in a few minutes."
    # trace-wide aggregates from the root run, not sums that would count the root twice
    assert (agent.input_tokens, agent.output_tokens, agent.total_tokens, agent.cost_usd) == (310, 42, 352, 0.0000717)
    assert (agent.feedback_score, agent.feedback_comment) == (-1.0, "status was wrong")
    assert (agent.session_id, agent.user_id) == ("thread-77", "cust-42")  # not the project id in run.session_id
    assert (agent.status, agent.error) == ("error", "lookup_order: TimeoutError: order service did not answer in 5s")
    assert (agent.model, agent.model_version, agent.provider, agent.latency_ms) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "openai",
        3250.0,
    )
    assert agent.tools == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Look up an order by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    assert agent.metadata["feedback_stats"] == {"user_score": 0.0, "correctness": 0.0}
    assert [s.status for s in agent.spans] == ["ok", "ok", "error", "ok"]
    assert translate.messages == [
        Message(role="user", content="Translate 'good morning' to French."),
        Message(role="assistant", content="Bonjour."),
    ]
    assert (translate.feedback_score, translate.session_id, translate.cost_usd, translate.total_tokens) == (
        1.0,
        "conv-9",
        0.0000039,
        17,
    )


def test_the_same_runs_as_a_json_array_or_runs_object(tmp_path: Path) -> None:
    runs = [orjson.loads(line) for line in API.read_bytes().splitlines()]
    array, wrapped = tmp_path / "runs.json", tmp_path / "query.json"
    array.write_bytes(orjson.dumps(runs[::-1], option=orjson.OPT_INDENT_2))  # order in the file does not matter
    wrapped.write_bytes(orjson.dumps({"runs": runs}))
    want = {t.trace_id: (t.messages, t.input_tokens, t.feedback_score) for t in _traces(API)}
    for path in (array, wrapped):
        assert detect(path).name == "langsmith"
        assert {t.trace_id: (t.messages, t.input_tokens, t.feedback_score) for t in _traces(path)} == want


def test_retriever_runs_give_document_ids(tmp_path: Path) -> None:
    runs = [orjson.loads(line) for line in API.read_bytes().splitlines()]
    root = runs[0]["id"]
    runs.insert(
        1,
        {
            "id": "1f0b6f52-0c1e-4a8e-9a57-3c1d2b7e0009",
            "trace_id": root,
            "parent_run_id": root,
            "name": "Retriever",
            "run_type": "retriever",
            "start_time": "2025-03-04T10:00:00.050000",
            "end_time": "2025-03-04T10:00:00.090000",
            "inputs": {"query": "order 8812"},
            "outputs": {
                "documents": [
                    {
                        "page_content": "Orders ship in 2 days.",
                        "type": "Document",
                        "metadata": {"source": "faq/shipping.md"},
                    },
                    {
                        "lc": 1,
                        "type": "constructor",
                        "id": ["langchain", "schema", "document", "Document"],
                        "kwargs": {"id": "kb-4", "page_content": "Delays happen.", "metadata": {}},
                    },
                ]
            },
        },
    )
    path = tmp_path / "rag.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in runs))
    agent = _traces(path)[0]
    assert agent.retrieved_doc_ids == ["faq/shipping.md", "kb-4"]
    assert [s.kind for s in agent.spans] == ["chain", "retriever", "llm", "tool", "llm"]


def test_runs_without_trace_id_group_by_their_parent_chain(tmp_path: Path) -> None:
    runs = [orjson.loads(line) for line in API.read_bytes().splitlines()]
    for run in runs:
        del run["trace_id"], run["dotted_order"]
    path = tmp_path / "old.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in runs))
    assert [(t.trace_id, len(t.spans)) for t in _traces(path)] == [
        ("1f0b6f52-0c1e-4a8e-9a57-3c1d2b7e0001", 4),
        ("2c7d0e11-5b3a-4f6e-8d21-9e0f1a2b0001", 1),
    ]


def test_bad_runs_are_reported_and_the_rest_parse(tmp_path: Path) -> None:
    lines = API.read_bytes().splitlines()
    path = tmp_path / "runs.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                lines[0],
                b'{"name": "orphan", "run_type": "llm"}',
                b"[1]",
                lines[1].replace(b'"2025-03-04T10:00:00.105000"', b'"yesterday"'),
                b"{oops",
                *lines[2:],
            ]
        )
    )
    items = list(parse(path, {}))
    assert [str(i) for i in items if isinstance(i, Issue)] == [
        f"{path}:2: run has no 'id' and no 'dotted_order'",
        f"{path}:3: run is not an object",
        f"{path}:4: run has an unreadable start_time (record 1f0b6f52-0c1e-4a8e-9a57-3c1d2b7e0002)",
        f"{path}:5: not valid JSON (unexpected character, expected a string key)",
    ]
    agent, translate = [i for i in items if isinstance(i, Trace)]
    # without the first model call its tool call still comes from the second call's input
    assert [m.role for m in agent.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert len(agent.spans) == 3 and translate.trace_id == "2c7d0e11-5b3a-4f6e-8d21-9e0f1a2b0001"


def test_driver_ingest_query_reingest(ws) -> None:
    report = ingest_files(ws, [NESTED, PY, JS, API], payload_sample=1.0)
    assert (report.ingested, report.issues) == (5, [])
    store = TraceStore(ws.traces_dir)
    rows = store.query(
        "source_format = 'langsmith'",
        columns=[
            "trace_id",
            "n_messages",
            "n_tool_calls",
            "n_tool_errors",
            "total_tokens",
            "cost_usd",
            "feedback_score",
            "status",
            "keep_reason",
        ],
        order_by="trace_id",
    ).to_pylist()
    assert rows == [
        {
            "trace_id": "01a20cba-eeff-7cf1-8532-9c9e1781ded1",
            "n_messages": 6,
            "n_tool_calls": 2,
            "n_tool_errors": 0,
            "total_tokens": 250,
            "cost_usd": None,
            "feedback_score": None,
            "status": "ok",
            "keep_reason": "sampled",
        },
        {
            "trace_id": "1f0b6f52-0c1e-4a8e-9a57-3c1d2b7e0001",
            "n_messages": 5,
            "n_tool_calls": 1,
            "n_tool_errors": 1,
            "total_tokens": 352,
            "cost_usd": 0.0000717,
            "feedback_score": -1.0,
            "status": "error",
            "keep_reason": "negative_feedback",
        },
        {
            "trace_id": "2c7d0e11-5b3a-4f6e-8d21-9e0f1a2b0001",
            "n_messages": 2,
            "n_tool_calls": 0,
            "n_tool_errors": 0,
            "total_tokens": 17,
            "cost_usd": 0.0000039,
            "feedback_score": 1.0,
            "status": "ok",
            "keep_reason": "sampled",
        },
        {
            "trace_id": "d0d84d31-923d-4cb5-94a8-40a0a0087578",
            "n_messages": 2,
            "n_tool_calls": 0,
            "n_tool_errors": 0,
            "total_tokens": 18,
            "cost_usd": None,
            "feedback_score": None,
            "status": "ok",
            "keep_reason": "sampled",
        },
        {
            "trace_id": "dc34609e-3eeb-459d-bc2a-6fedb01d2e6e",
            "n_messages": 2,
            "n_tool_calls": 0,
            "n_tool_errors": 0,
            "total_tokens": 18,
            "cost_usd": None,
            "feedback_score": None,
            "status": "ok",
            "keep_reason": "sampled",
        },
    ]
    row = store.get(["01a20cba-eeff-7cf1-8532-9c9e1781ded1"])["01a20cba-eeff-7cf1-8532-9c9e1781ded1"]
    assert row["input_text"] == "What's the weather in Seattle and San Francisco today?"
    assert (row["session_id"], row["user_id"], row["name"]) == ("sess_42", "user_123", "weather_agent")
    again = ingest_files(ws, [NESTED, PY, JS, API])
    assert (again.ingested, again.skipped) == (0, 5)


def test_driver_reports_a_broken_patch_and_ingests_the_trace(ws, tmp_path: Path) -> None:
    text = NESTED.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    assert lines[399].strip() == '"id": "01a20cba-ef36-7bd9-a863-1fcdf1c94b30",'
    assert lines[430].strip() == '"start_time": "2026-11-24T08:45:07.254960+00:00",'
    lines[430] = lines[430].replace("2026-11-24T08:45:07.254960+00:00", "2026-13-45T99:00:00")
    path = tmp_path / "nested-broken.json"
    path.write_text("".join(lines), encoding="utf-8")
    report = ingest_files(ws, [path])
    assert [str(i) for i in report.issues] == [
        f"{path}:400: run has an unreadable start_time (record 01a20cba-ef36-7bd9-a863-1fcdf1c94b30)"
    ]
    assert report.ingested == 1
    (row,) = TraceStore(ws.traces_dir).query(columns=["n_messages", "n_tool_calls", "total_tokens"]).to_pylist()
    assert row == {"n_messages": 6, "n_tool_calls": 2, "total_tokens": 250}


def test_feature_comes_from_the_root_runs_metadata(tmp_path) -> None:
    runs = [orjson.loads(line) for line in API.read_bytes().splitlines() if line.strip()]
    root = next(r for r in runs if r["parent_run_id"] is None)
    root.setdefault("extra", {}).setdefault("metadata", {})["feature"] = "order-status"
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in runs))
    assert {t.trace_id: t.feature for t in _traces(path)}[root["trace_id"]] == "order-status"
    assert {t.feature for t in _traces(API)} == {None}
