"""OpenAI chat-completions JSONL: one conversation per line (``messages``, ``tools``, ``tool_calls``).

Covers the fine-tuning format and logged requests that carry the model's reply as the last
assistant message. Lines without an id get one from the hash of their content, so re-ingest is
idempotent.

One set of rules, two outputs: :func:`chat_fields` reads a record into a trace's fields with the
messages as stored dicts (:func:`chat_message_record`); :func:`trace_from_chat` makes a
:class:`Trace` of them, and :func:`chat_row` (what the driver runs on big files, in parallel) goes
straight to the store's row through :func:`~evaltray.traces.row_values`, which ``trace_values``
uses too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from ..records import Trace
from ..traces import message_from_record, row_values
from ._common import (
    as_float,
    as_int,
    chat_message_record,
    content_id,
    head_text,
    maybe_json,
    parse_time,
    read_jsonl,
)
from ._driver import SHAPE_ERRORS, BadRecord, line_format
from ._registry import Issue, register

_ID_KEYS = ("trace_id", "id", "custom_id", "conversation_id")


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return text.startswith("{") and '"messages"' in text.split("\n", 1)[0]


def _feedback(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else -1.0
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("up", "thumbs_up", "👍", "positive", "good", "1", "+1"):
            return 1.0
        if v in ("down", "thumbs_down", "👎", "negative", "bad", "-1", "0"):
            return -1.0
        return None
    if isinstance(value, dict):
        return _feedback(value.get("score", value.get("value", value.get("rating"))))
    return as_float(value)


def _text(value: Any) -> str | None:
    """A text field: numbers and booleans as text, objects as JSON (a store column holds strings only)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode("utf-8")
    return str(value)


def _message_records(raw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(raw, list):
        for m in raw:  # a plain loop: this runs for every message of every line
            rec = chat_message_record(m)
            if rec is not None:
                out.append(rec)
    return out


_EMPTY: dict[str, Any] = {}  # read-only stand-in for a missing object


def _float(value: Any) -> float | None:
    return value if type(value) is float else as_float(value)  # the common case without a call


def _int(value: Any) -> int | None:
    # as_int goes through float: the same value for any int a float holds exactly
    return value if type(value) is int and -(2**53) <= value <= 2**53 else as_int(value)


def _strings(value: Any) -> list[str]:
    """A list field (tags, document ids) as text; a single value is a list of one."""
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def chat_fields(obj: dict[str, Any], trace_id: str, fmt: str = "openai") -> tuple[Any, ...]:
    """The fields of :class:`Trace`, in its order, from one chat-completions record; messages as stored dicts."""
    get = obj.get
    meta = get("metadata")
    if not isinstance(meta, dict):
        meta = _EMPTY
    mget = meta.get
    messages = _message_records(get("messages"))
    reply = get("choices")
    if not reply:
        response = get("response")
        reply = response.get("choices") if isinstance(response, dict) else None
    if isinstance(reply, list) and reply and isinstance(reply[0], dict):
        messages += _message_records([reply[0].get("message")])
    usage = get("usage")
    if not isinstance(usage, dict):
        usage = _EMPTY
    tags = get("tags") or mget("tags")
    tools = maybe_json(get("tools")) or []
    docs = mget("retrieved_doc_ids")
    start = get("created_at") or get("timestamp") or get("created")
    feedback = get("feedback", mget("feedback"))
    error = get("error")
    return (
        trace_id,
        fmt,
        messages,
        tools if isinstance(tools, list) else [],
        None if start is None else parse_time(start),  # start_time
        None,  # end_time
        _float(get("latency_ms") or mget("latency_ms")),
        _int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        _int(usage.get("completion_tokens", usage.get("output_tokens"))),
        _int(usage.get("total_tokens")),
        _float(get("cost") or mget("cost_usd")),
        _text(get("model") or mget("model")),
        _text(get("system_fingerprint") or mget("model_version")),
        None,  # provider
        _text(mget("session_id") or get("session_id")),
        _text(mget("user_id") or get("user")),
        None,  # name
        _text(mget("feature") or get("feature")),
        _strings(tags),
        None if feedback is None else _feedback(feedback),
        None,  # feedback_comment
        _text(mget("prompt_template_id") or mget("prompt_id")),
        _strings(docs),
        None,  # corpus_version
        "error" if error else "ok",
        str(error)[:500] if error else None,
        [],  # spans
        # the record's own metadata dict, unless it has tags (a column) or is the shared stand-in
        {k: v for k, v in meta.items() if k != "tags"} if "tags" in meta else {} if meta is _EMPTY else meta,
    )


def trace_from_chat(obj: dict[str, Any], fallback_id: str, fmt: str = "openai") -> Trace:
    """A trace from one chat-completions record (request messages, optional reply and metadata)."""
    fields = chat_fields(obj, _explicit_id(obj) or fallback_id, fmt)
    trace = Trace(*fields)
    trace.messages = [message_from_record(m) for m in trace.messages]  # type: ignore[arg-type]
    return trace


def _explicit_id(obj: dict[str, Any]) -> str | None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if value:
            return str(value)
    return None


def _checked_id(obj: Any, seen: dict[str, int]) -> str:
    """The trace id of a chat record; :class:`BadRecord` if it is not one."""
    if not isinstance(obj, dict):
        raise BadRecord("expected a JSON object with 'messages'")
    tid = _explicit_id(obj)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRecord("no 'messages' list", tid)
    return tid or content_id(obj, seen, "oai")


def _shape_error(exc: Exception, obj: dict[str, Any]) -> BadRecord:
    return BadRecord(f"a field has an unexpected type ({type(exc).__name__})", _explicit_id(obj))


@line_format("openai")
def chat_row(obj: Any, seen: dict[str, int]) -> tuple[Any, ...]:
    """The store row (``trace_values`` of :func:`trace_from_chat`) of one decoded line, without the Trace."""
    tid = _checked_id(obj, seen)
    try:
        return row_values(*chat_fields(obj, tid))
    except SHAPE_ERRORS as exc:
        raise _shape_error(exc, obj) from None


@register("openai", sniff=_sniff, priority=40)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """OpenAI chat-completions / fine-tuning JSONL, one conversation per line."""
    seen: dict[str, int] = {}
    for item in read_jsonl(path):
        if isinstance(item, Issue):
            yield item
            continue
        lineno, obj = item
        try:
            tid = _checked_id(obj, seen)
            try:
                trace = trace_from_chat(obj, tid)
            except SHAPE_ERRORS as exc:
                raise _shape_error(exc, obj) from None
        except BadRecord as bad:
            yield Issue(str(path), lineno, bad.reason, bad.record_id)
            continue
        yield trace
