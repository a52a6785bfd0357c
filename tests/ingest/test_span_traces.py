"""Spans become one trace per trace id: an agent that calls a tool between two model calls, worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.ingest import Issue
from evaltray.ingest.span_traces import assemble, traces_from_spans
from evaltray.ingest.spans import SpanRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TID = "ab" * 16
HI = {"role": "user", "content": "What is 6 x 7?"}
CALL = {
    "role": "assistant",
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"expr": "6*7"}'}}],
}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "42"}
ANSWER = {"role": "assistant", "content": "It is 42."}


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def agent_spans() -> list[SpanRecord]:
    """An agent span (repeating its calls' totals), two chat calls (the second resends the history) and the tool
    span between them, listed out of time order."""
    second = SpanRecord(
        TID,
        "d" * 16,
        "a" * 16,
        "chat m1",
        start=_at(2),
        end=_at(3.5),
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m1",
            "gen_ai.response.model": "m1-2025",
            "gen_ai.usage.input_tokens": 15,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.input.messages": _json([HI, CALL, RESULT]),
            "gen_ai.output.messages": _json([ANSWER]),
        },
    )
    return [
        SpanRecord(
            TID,
            "a" * 16,
            None,
            "invoke_agent helper",
            start=_at(0),
            end=_at(4),
            attrs={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.usage.input_tokens": 25,
                "gen_ai.usage.output_tokens": 9,
            },
        ),
        second,
        SpanRecord(
            TID,
            "b" * 16,
            "a" * 16,
            "chat m1",
            start=_at(0.5),
            end=_at(1.5),
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 4,
                "gen_ai.input.messages": _json([HI]),
                "gen_ai.output.messages": _json([CALL]),
            },
        ),
        SpanRecord(
            TID,
            "c" * 16,
            "a" * 16,
            "execute_tool calc",
            start=_at(1.6),
            end=_at(1.7),
            attrs={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.call.id": "c1",
                "gen_ai.tool.name": "calc",
                "gen_ai.tool.call.result": "42",
            },
        ),
    ]


def test_an_agent_trace() -> None:
    trace = assemble(TID, agent_spans(), "otel")
    # the history the second call resends is not repeated; the tool result it shows is named after its call
    assert trace.messages == [
        Message("user", "What is 6 x 7?"),
        Message("assistant", None, [ToolCall("c1", "calc", {"expr": "6*7"})]),
        Message("tool", "42", tool_call_id="c1", name="calc"),
        Message("assistant", "It is 42."),
    ]
    # usage once: the two calls (10 + 15, 4 + 5), not the agent span that repeats their totals
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens) == (25, 9, 34)
    assert (trace.model, trace.latency_ms, trace.start_time, trace.end_time) == ("m1-2025", 4000.0, _at(0), _at(4))
    assert trace.metadata == {"llm_calls": 2, "models": ["m1", "m1-2025"], "request_model": "m1"}
    assert [(s.id[0], s.kind) for s in trace.spans] == [("a", "agent"), ("b", "llm"), ("c", "tool"), ("d", "llm")]
    assert (trace.name, trace.status) == ("invoke_agent helper", "ok")


def test_groups_by_trace_id_and_leaves_out_what_is_not_genai(tmp_path: Path) -> None:
    http = SpanRecord("cd" * 16, "e" * 16, None, "GET /health", start=_at(0), end=_at(1), attrs={"http.method": "GET"})
    spans = agent_spans()
    items = list(traces_from_spans([spans[0], http, *spans[1:], spans[1]], "otel", tmp_path / "x.json"))
    assert [(type(t), t.trace_id, len(t.spans)) for t in items if isinstance(t, Trace)] == [(Trace, TID, 4)]
    assert not [i for i in items if isinstance(i, Issue)]  # the span exported twice is read once
