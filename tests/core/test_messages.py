"""The one set of rules for chat messages, worked by hand for each shape it reads."""

from __future__ import annotations

from evaltray.core.messages import (
    chat_message,
    chat_message_record,
    chat_messages,
    maybe_json,
    text_of,
    tool_call,
    tool_call_record,
)
from evaltray.core.records import Message, ToolCall
from evaltray.core.traces import CallRecord, MessageRecord


def test_maybe_json_decodes_text_encoded_once_or_twice_and_leaves_the_rest() -> None:
    assert maybe_json('{"a": 1}') == {"a": 1}
    assert maybe_json('"{\\"a\\": [1, 2]}"') == {"a": [1, 2]}  # JSON text inside a JSON string
    assert maybe_json("hello") == "hello"  # not JSON-looking
    assert maybe_json("[1, 2") == "[1, 2"  # looks like JSON, is not
    assert maybe_json('"x"') == "x"
    assert maybe_json(5) == 5


def test_text_of_content_shapes() -> None:
    assert text_of(None) is None
    assert text_of("plain") == "plain"
    assert text_of(["a", {"type": "text", "text": "b"}, {"type": "image_url", "image_url": {}}]) == "a\nb\n[image_url]"
    assert text_of([{"type": "text", "text": ""}]) is None  # no text at all
    assert text_of({"content": {"value": "deep"}}) == "deep"
    assert text_of({"x": 1}) == '{"x":1}'
    assert text_of(3) == "3"


def test_tool_calls_in_the_openai_flat_and_inspect_shapes() -> None:
    openai = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    assert tool_call_record(openai) == CallRecord(id="c1", name="f", arguments={"x": 1})
    flat = {"tool_call_id": "c2", "name": "g", "args": {"y": 2}}
    assert tool_call_record(flat) == CallRecord(id="c2", name="g", arguments={"y": 2})
    inspect = {"id": "c3", "function": "h", "arguments": '"{\\"z\\": 3}"'}  # arguments encoded twice
    assert tool_call(inspect) == ToolCall("c3", "h", {"z": 3})
    assert tool_call_record({"tool_name": "t", "input": "raw text"}) == CallRecord(name="t", arguments="raw text")
    assert tool_call_record({"function": {"arguments": "{}"}}) is None  # no name
    assert tool_call_record("f") is None


def test_chat_message_rules() -> None:
    # the deprecated "function" role is a tool result, named after its function
    assert chat_message({"role": "function", "name": "get", "content": "42"}) == Message("tool", "42", name="get")
    # a name on a message that is not a tool result is not kept
    assert chat_message({"role": "user", "name": "bob", "content": "hi"}) == Message("user", "hi")
    # the legacy function_call is one tool call, after the tool_calls list
    legacy = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "a", "arguments": "{}"}}],
        "function_call": {"name": "b", "arguments": '{"k": "v"}'},
    }
    assert chat_message(legacy) == Message(
        "assistant", None, [ToolCall(None, "a", {}), ToolCall(None, "b", {"k": "v"})]
    )
    # an error flag in either spelling; content parts become text; a role that is not text becomes text
    assert chat_message(
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "boom"}], "error": "timeout"}
    ) == Message("tool", "boom", tool_call_id="c1", is_error=True)
    assert chat_message({"role": 3, "content": "x", "is_error": 1}) == Message("3", "x", is_error=True)
    assert chat_message({"content": "no role"}) is None
    assert chat_message(["not", "a", "dict"]) is None


def test_the_stored_form_leaves_what_the_rules_keep_as_it_is() -> None:
    assert chat_message_record({"role": "user", "content": "hi"}) == MessageRecord("user", "hi")
    assert chat_message_record({"role": "assistant", "tool_calls": [{"id": "c1", "name": "f"}]}) == MessageRecord(
        "assistant", None, [CallRecord(id="c1", name="f")]
    )
    assert chat_message_record({"role": "assistant", "tool_calls": [{"arguments": "{}"}]}) == MessageRecord("assistant")


def test_chat_messages_skips_what_is_not_a_message() -> None:
    assert chat_messages([{"role": "user", "content": "a"}, "b", {"content": "c"}, {"role": "assistant"}]) == [
        Message("user", "a"),
        Message("assistant"),
    ]
    assert chat_messages({"role": "user"}) == []
