"""Messages and tool definitions in span attributes and events, one convention at a time, worked by hand."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaltray.core.records import Message, ToolCall
from evaltray.ingest.span_messages import (
    dotted_groups,
    event_messages,
    messages_from,
    openai_tool,
    result_text,
    span_tools,
    unflatten,
    vercel_output,
)
from evaltray.ingest.span_traces import assemble
from evaltray.ingest.spans import SpanEvent, SpanRecord


def test_unflatten_orders_numbered_segments() -> None:
    attrs = {
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "S",
        "other": 1,
    }
    assert unflatten(attrs, "llm.input_messages.") == [
        {"message": {"role": "system", "content": "S"}},
        {"message": {"role": "user"}},
    ]
    assert unflatten(attrs, "llm.output_messages.") is None


def test_a_spans_groups_hold_each_key_under_its_first_two_segments() -> None:
    attrs = {
        "llm.input_messages.1.message.role": "user",
        "gen_ai.prompt.0.role": "user",
        "llm.input_messages.0.message.role": "system",
        "llm.request.functions.0.name": "f",
        "llm.request.type": "chat",
        "llm": 1,
        "llm.model": 2,
        "a..b": 3,
    }
    assert dotted_groups(attrs) == {
        "llm.input_messages.": ["llm.input_messages.1.message.role", "llm.input_messages.0.message.role"],
        "gen_ai.prompt.": ["gen_ai.prompt.0.role"],
        "llm.request.": ["llm.request.functions.0.name", "llm.request.type"],
        "a..": ["a..b"],
    }
    groups = dotted_groups(attrs)
    assert unflatten(attrs, "llm.request.functions.", groups) == [{"name": "f"}]  # three segments: its group's
    assert unflatten(attrs, "llm.", groups) == unflatten(attrs, "llm.")  # one segment: every key is read
    assert unflatten(attrs, "llm.output_messages.", groups) is None


_SEGMENT = st.sampled_from(["a", "b", "0", "1", "10", ""])


@given(
    st.lists(st.lists(_SEGMENT, min_size=1, max_size=5).map(".".join), max_size=12),
    st.lists(_SEGMENT, min_size=1, max_size=3).map(lambda s: ".".join(s) + "."),
)
def test_unflatten_through_groups_reads_what_unflatten_reads(keys: list[str], prefix: str) -> None:
    attrs = {key: k for k, key in enumerate(keys)}
    assert unflatten(attrs, prefix, dotted_groups(attrs)) == unflatten(attrs, prefix)


def test_document_ids_come_in_span_order_each_once() -> None:
    def span(sid: str, attrs: dict[str, str]) -> SpanRecord:
        return SpanRecord("t1", sid, None if sid == "s1" else "s1", "retrieve", attrs=attrs)

    first = {
        "retrieval.documents.10.document.id": "a10",
        "retrieval.documents.2.document.id": "a2",
        "reranker.output_documents.0.document.id": "a10",
        "reranker.output_documents.1.document.id": "r1",
    }
    second = {"retrieval.documents.0.document.id": "r1", "retrieval.documents.1.document.id": "b"}
    trace = assemble("t1", [span("s1", first), span("s2", second)], "otel")
    assert trace.retrieved_doc_ids == ["a2", "a10", "r1", "b"]


def test_messages_from_payload_shapes() -> None:
    assert messages_from({"system": "Be kind.", "messages": [{"role": "user", "content": "hi"}]}) == [
        Message("system", "Be kind."),
        Message("user", "hi"),
    ]
    parts = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "ok"},
                {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}},
            ],
        }
    ]
    assert messages_from(parts) == [Message("assistant", "ok", [ToolCall("c1", "f", {"a": 1})])]
    assert messages_from({"args": ["just text"], "kwargs": {}}) == [Message("user", "just text")]  # @observe
    assert messages_from('"plain"', "assistant") == [Message("assistant", "plain")]
    assert messages_from("") == []


def test_vercel_output_and_genai_events() -> None:
    calls = '[{"toolCallId": "c9", "toolName": "w", "input": "{\\"city\\": \\"Oslo\\"}"}]'
    assert vercel_output({"ai.response.text": "", "ai.response.toolCalls": calls}) == [
        Message("assistant", None, [ToolCall("c9", "w", {"city": "Oslo"})])
    ]
    assert vercel_output({"ai.response.object": {"a": 1}}) == [Message("assistant", '{"a":1}')]
    events = [
        SpanEvent("gen_ai.user.message", None, {}, {"content": "hello"}),
        SpanEvent("gen_ai.choice", None, {}, {"index": 0, "finish_reason": "stop", "message": {"content": "hey"}}),
    ]
    assert event_messages(events) == ([Message("user", "hello")], [Message("assistant", "hey")])


def test_tool_results_and_definitions() -> None:
    assert result_text('"quoted"') == "quoted"  # a JSON-encoded string is decoded once
    assert result_text({"type": "json", "value": {"a": 1}}) == '{"a":1}'  # Vercel v5 output
    assert result_text([{"type": "text", "text": "x"}]) == "x"
    assert openai_tool({"name": "w", "description": "d", "inputSchema": '{"type": "object"}'}) == {
        "type": "function",
        "function": {"name": "w", "description": "d", "parameters": {"type": "object"}},
    }
    assert span_tools(
        {
            "gen_ai.tool.definitions": '[{"type": "function", "name": "w"}]',
            "llm.tools.0.tool.json_schema": '{"type": "function", "function": {"name": "x"}}',
        }
    ) == [{"type": "function", "function": {"name": "w"}}, {"type": "function", "function": {"name": "x"}}]
