"""Messages and tool definitions from the payloads frameworks log, worked by hand."""

from __future__ import annotations

from evaltray.core.records import Message, ToolCall
from evaltray.ingest.chat_payloads import (
    collect_tools,
    decode,
    messages_from,
    norm_text,
    norm_value,
    plain_text,
    unique_tools,
)


def test_decode_json_and_python_literals() -> None:
    assert decode('"{\\"a\\": 1}"') == {"a": 1}  # JSON encoded twice
    assert decode("{'a': (1, 2)}") == {"a": (1, 2)}  # a Python repr
    assert decode("{'a': (1, 2)}", literal=False) == "{'a': (1, 2)}"
    assert decode("['x'") == "['x'"  # looks like a literal, is not


def test_normal_forms_compare_renderings() -> None:
    assert norm_text(" a \n b ") == "a b"
    assert norm_value({"b": 1, "a": [2]}) == norm_value('{"b": 1, "a": [2]}') == '{"a":[2],"b":1}'


def test_tool_definitions() -> None:
    sink: list[dict] = []
    collect_tools({"function_declarations": [{"name": "g", "parameters": {"type": "object"}}]}, sink)  # Gemini
    collect_tools({"w": {"description": "d"}}, sink)  # a name -> definition map
    assert sink == [
        {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "w", "description": "d"}},
    ]
    bare, full = (
        {"type": "function", "function": {"name": "w"}},
        {"type": "function", "function": {"name": "w", "x": 1}},
    )
    assert unique_tools([bare, full, sink[0]]) == [full, sink[0]]  # the fuller definition wins, first-seen order


def test_payloads_of_three_frameworks() -> None:
    tools: list[dict] = []
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    assert messages_from(request, tools=tools) == [Message("user", "q")]
    assert tools == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    langchain = {
        "lc": 1,
        "id": ["langchain", "schema", "messages", "AIMessage"],
        "kwargs": {"content": "hi", "tool_calls": [{"id": "c", "name": "f", "args": {"a": 1}}]},
    }
    assert messages_from(langchain) == [Message("assistant", "hi", [ToolCall("c", "f", {"a": 1})])]
    gemini = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "g"}, {"functionCall": {"name": "f", "args": {"q": 1}}}]}}
        ]
    }
    assert messages_from(gemini, "assistant") == [Message("assistant", "g", [ToolCall(None, "f", {"q": 1})])]
    assert plain_text('[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]') == "a\nb"
    assert plain_text(None) is None
