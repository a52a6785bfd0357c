"""Helpers the format parsers share: JSON reading with line numbers, times, messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import CallRecord, MessageRecord, message_from_record, micros
from evaltray.core.util import sha256_hex

from ._registry import Issue

#: What reading a record with unexpected value types raises; a parser reports it as an Issue.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, OSError, RecursionError)
_Item = TypeVar("_Item")


@overload
def guarded(path: Path, line: int | None, record_id: Any, read: Callable[..., Trace], *args: Any
            ) -> Iterator[Trace | Issue]: ...


@overload
def guarded(path: Path, line: int | None, record_id: Any, read: Callable[..., Iterable[_Item]], *args: Any
            ) -> Iterator[_Item | Issue]: ...


def guarded(path: Path, line: int | None, record_id: Any, read: Callable[..., Any], *args: Any) -> Iterator[Any]:
    """What ``read(*args)`` gives for one record (a trace, or traces and issues), or, where a value of the
    record has a type its parser does not expect, an Issue naming the record (its id, never its content)
    in place of what was not read yet."""
    try:
        out = read(*args)
        if isinstance(out, Trace):
            yield out
        else:
            yield from out
    except SHAPE_ERRORS as exc:
        yield Issue(str(path), line, f"a field has an unexpected type ({type(exc).__name__})",
                    None if record_id is None else str(record_id))


def read_jsonl(path: Path) -> Iterator[tuple[int, Any] | Issue]:
    """Yield ``(line_number, object)`` per non-blank line, or an :class:`Issue` for a line that is not JSON."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield lineno, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield Issue(str(path), lineno, f"not valid JSON ({_short(exc)})")


def read_json(path: Path) -> Any | Issue:
    """The whole file as one JSON document, or an :class:`Issue` at the line where it breaks."""
    data = path.read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = data.count(b"\n", 0, exc.pos) + 1 if exc.pos is not None else None
        return Issue(str(path), line, f"not valid JSON ({_short(exc)})")


def _short(exc: orjson.JSONDecodeError) -> str:
    return str(exc.msg) if hasattr(exc, "msg") else str(exc).split(":")[0]


def line_of(path: Path, needle: str | None, _cache: dict[str, bytes] = {}) -> int | None:  # noqa: B006
    """Line of the first occurrence of ``needle`` in ``path``: locates a bad record in a JSON document."""
    if not needle:
        return None
    key = str(path)
    data = _cache.get(key)
    if data is None:
        _cache.clear()
        data = _cache[key] = path.read_bytes()
    pos = data.find(needle.encode("utf-8"))
    return None if pos < 0 else data.count(b"\n", 0, pos) + 1


def head_text(head: bytes) -> str:
    return head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO-8601 text, epoch s/ms/µs/ns numbers (or their strings), or OTel ``[s, ns]``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return datetime.fromtimestamp(float(value[0]) + float(value[1]) / 1e9, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return parse_time(int(text))
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            v /= 1e9  # ns
        elif v > 1e14:
            v /= 1e6  # µs
        elif v > 1e11:
            v /= 1e3  # ms
        return datetime.fromtimestamp(v, UTC)
    return None


def epoch_micros(value: Any) -> int | None:
    """:func:`parse_time` as microseconds since the epoch; whole seconds without a datetime in between."""
    if type(value) is int and 0 <= value <= 10**11:  # seconds, by parse_time's scale rule
        return value * 1_000_000
    return micros(parse_time(value))


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

    The one set of rules for chat messages: every format's messages go through it (:func:`chat_message`
    wraps it), and the chat JSONL ingest keeps a source message as it is only where these rules would
    not change it (``ingest.openai``).
    """
    if not isinstance(raw, dict):
        return None
    get = raw.get
    role = get("role", _NO_ROLE)
    if role is _NO_ROLE:
        return None
    raw_calls = get("tool_calls")
    calls = [c for c in map(tool_call_record, raw_calls) if c is not None] if raw_calls else []
    legacy = get("function_call")
    if legacy and isinstance(legacy, dict) and legacy.get("name"):
        calls.append(CallRecord(name=legacy["name"], arguments=maybe_json(legacy.get("arguments"))))
    if role == "function":
        role = "tool"
    content = get("content")
    return MessageRecord(
        role if type(role) is str else str(role),
        content if content is None or type(content) is str else text_of(content),
        calls or None,
        get("tool_call_id"),
        get("name") if role == "tool" else None,
        bool(get("error") or get("is_error")),
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


def as_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def content_id(obj: Any, seen: dict[str, int], prefix: str) -> str:
    """An id from the record's content, with its occurrence number: identical lines stay distinct
    traces (a question asked twice is two traffic events) yet re-ingest yields the same ids."""
    digest = sha256_hex(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))[:20]
    n = seen.get(digest, 0)
    seen[digest] = n + 1
    return f"{prefix}-{digest}" if n == 0 else f"{prefix}-{digest}-{n}"
