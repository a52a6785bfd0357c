"""The one set of rules for chat messages: an OpenAI-style message dict (or the flat and Inspect shapes of a
tool call) read into a :class:`~evaltray.core.records.Message` or its stored form.

Every ingest format's messages go through these rules, and so does exporting a case's messages; the chat
JSONL ingest keeps a source message as it is only where they would not change it (``ingest.openai``).
"""

from __future__ import annotations

from typing import Any

import orjson

from .records import Message, ToolCall
from .traces import CallRecord, MessageRecord, message_from_record

__all__ = [
    "chat_message",
    "chat_message_record",
    "chat_messages",
    "maybe_json",
    "message_record_of",
    "text_of",
    "tool_call",
    "tool_call_record",
]


def maybe_json(value: Any, depth: int = 3) -> Any:
    """Decode a JSON-encoded string (possibly encoded twice, as some exports do); else return it unchanged."""
    while depth and isinstance(value, str):
        text = value.strip()
        if not text or text[0] not in '[{"':
            return value
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return value
        depth -= 1
    return value


def text_of(content: Any) -> str | None:
    """Plain text of a message content: a string, a list of parts, or a dict with ``text``/``content``."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [text_of(p) for p in content]
        texts = [p for p in parts if p]
        return "\n".join(texts) if texts else None
    if isinstance(content, dict):
        for key in ("text", "content", "value"):
            if key in content and content[key] is not None:
                return text_of(content[key])
        if content.get("type") in ("image_url", "image", "input_audio", "file", "blob"):
            return f"[{content.get('type')}]"
        return orjson.dumps(content).decode("utf-8")
    return str(content)


def tool_call_record(raw: Any) -> CallRecord | None:
    """A tool call (``id``, ``name``, ``arguments`` decoded) from the OpenAI, flat or Inspect shapes."""
    if not isinstance(raw, dict):
        return None
    fn = raw.get("function")
    if isinstance(fn, dict):
        name, args = fn.get("name"), fn.get("arguments")
    else:
        name = fn if isinstance(fn, str) else raw.get("name") or raw.get("tool_name")
        args = raw.get("arguments", raw.get("args", raw.get("input")))
    if not name:
        return None
    return CallRecord(id=raw.get("id") or raw.get("tool_call_id"), name=str(name), arguments=maybe_json(args))


_NO_ROLE = object()


def chat_message_record(raw: Any) -> MessageRecord | None:
    """One chat message dict in its stored form (see ``traces.MessageRecord``); None if it is not one.

    :func:`chat_message` wraps it; the chat JSONL ingest keeps a source message as it is only where
    these rules would not change it (``ingest.openai``).
    """
    if not isinstance(raw, dict):
        return None
    get = raw.get
    role = get("role", _NO_ROLE)
    if role is _NO_ROLE:
        return None
    return message_record_of(
        role,
        get("content"),
        get("tool_calls"),
        get("function_call"),
        get("tool_call_id"),
        get("name"),
        get("error"),
        get("is_error"),
    )


def message_record_of(
    role: Any,
    content: Any,
    raw_calls: Any,
    legacy: Any,
    tool_call_id: Any,
    name: Any,
    error: Any,
    is_error: Any,
) -> MessageRecord:
    """:func:`chat_message_record` of a message's fields as decoded (a missing one is None): the rules in one place
    for a dict and for the chat JSONL ingest's decoded messages."""
    calls = [c for c in map(tool_call_record, raw_calls) if c is not None] if raw_calls else []
    if legacy and isinstance(legacy, dict) and legacy.get("name"):
        calls.append(CallRecord(name=legacy["name"], arguments=maybe_json(legacy.get("arguments"))))
    if role == "function":
        role = "tool"
    return MessageRecord(
        role if type(role) is str else str(role),
        content if content is None or type(content) is str else text_of(content),
        calls or None,
        tool_call_id,
        name if role == "tool" else None,
        bool(error or is_error),
    )


def tool_call(raw: Any) -> ToolCall | None:
    """A tool call from the OpenAI (``function: {name, arguments}``), flat, or Inspect shapes."""
    r = tool_call_record(raw)
    return None if r is None else ToolCall(r.id, r.name, r.arguments)


def chat_message(raw: Any) -> Message | None:
    """A :class:`Message` from an OpenAI-style chat message dict; None if it is not one."""
    r = chat_message_record(raw)
    return None if r is None else message_from_record(r)


def chat_messages(raw: Any) -> list[Message]:
    """Messages from a list of chat dicts, skipping anything that is not a message."""
    if not isinstance(raw, list):
        return []
    return [m for m in (chat_message(r) for r in raw) if m is not None]
