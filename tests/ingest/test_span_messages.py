"""Messages and tool definitions in span attributes and events, one convention at a time, worked by hand."""

from __future__ import annotations

from evaltray.core.records import Message, ToolCall
from evaltray.ingest.span_messages import (
    event_messages,
    messages_from,
    openai_tool,
    result_text,
    span_tools,
    unflatten,
    vercel_output,
)
from evaltray.ingest.spans import SpanEvent


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
