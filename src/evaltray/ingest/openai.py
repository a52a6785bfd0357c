"""OpenAI chat-completions JSONL: one conversation per line (``messages``, ``tools``, ``tool_calls``).

Covers the fine-tuning format and logged requests that carry the model's reply as the last
assistant message. Lines without an id get one from the hash of their content, so re-ingest is
idempotent.

A line is decoded by msgspec straight into typed structs (:class:`_Line`): a message already in
stored form (a role and text, nothing the message rules would change) is kept as it is, the rest go
through :func:`~evaltray.core.messages.message_record_of` (the rules of ``chat_message_record``, without a
dict), and the tool definitions stay raw JSON, decoded once per distinct list (per parse, or per chunk of
lines). A line whose values do not
fit those types (metadata that is not an object, say) is decoded by orjson, brought to the shape the
rules read the way they read it (:func:`_line_from_dict`), and decoded again. :func:`chat_fields` reads
a line into a trace's fields; :func:`trace_from_chat` makes a :class:`Trace` of them and the readers
:func:`chat_rows` makes (what the driver runs, in parallel on big files) go straight to the store's row
through :class:`~evaltray.core.traces.RowBuilder`, which ``trace_values`` uses too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from evaltray.core.messages import maybe_json, message_record_of
from evaltray.core.records import Trace
from evaltray.core.traces import MessageRecord, RowBuilder, from_micros, message_from_record

from ._common import SHAPE_ERRORS, as_float, as_int, content_id, decode_error_reason, epoch_micros, head_text
from ._registry import BadRecord, Issue, LineReader, register
from .feedback import feedback_score

_ID_KEYS = ("trace_id", "id", "custom_id", "conversation_id")


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return text.startswith("{") and '"messages"' in text.split("\n", 1)[0]


def _text(value: Any) -> str | None:
    """A text field: numbers and booleans as text, objects as JSON (a store column holds strings only)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode("utf-8")
    return str(value)


class _Message(MessageRecord, gc=False):
    """A source message: the stored fields, and two the rules fold into them (never stored)."""

    error: Any = None  # folded into is_error
    function_call: Any = None  # the legacy form of one tool call


class _Choice(msgspec.Struct, gc=False):
    message: _Message | None = None


class _Usage(msgspec.Struct, gc=False):
    # UNSET: the prompt/completion count is used when present, even as null, as with dict.get(key, other)
    prompt_tokens: Any = UNSET
    input_tokens: Any = None
    completion_tokens: Any = UNSET
    output_tokens: Any = None
    total_tokens: Any = None


_NO_TOOLS = msgspec.Raw(b"null")


class _Line(msgspec.Struct, gc=False):
    """The fields of a chat-completions line that a trace reads; any other key is skipped unread."""

    messages: list[_Message]
    id: Any = None
    trace_id: Any = None
    custom_id: Any = None
    conversation_id: Any = None
    choices: list[_Choice] | None = None
    response: Any = None  # only read by _line_from_dict: a line that has one goes that way
    usage: _Usage | None = None
    tools: msgspec.Raw = _NO_TOOLS  # decoded once per distinct list (see _tools)
    metadata: dict[str, Any] | None = None
    tags: Any = None
    created_at: Any = None
    timestamp: Any = None
    created: Any = None
    feedback: Any = UNSET
    error: Any = None
    latency_ms: Any = None
    cost: Any = None
    model: Any = None
    system_fingerprint: Any = None
    session_id: Any = None
    user: Any = None
    feature: Any = None


_DECODER = msgspec.json.Decoder(_Line)


def _stored(m: _Message) -> MessageRecord:
    """The stored form of a source message: itself where the message rules would not change it."""
    role = m.role
    if (
        m.tool_calls is m.function_call is m.error is None
        and (m.is_error is False or m.is_error is True)
        and type(role) is str
        and role != "function"
        and (m.content is None or type(m.content) is str)
        and (m.name is None or role == "tool")
    ):
        return m
    return message_record_of(
        role, m.content, m.tool_calls, m.function_call, m.tool_call_id, m.name, m.error, m.is_error
    )


def _reply(line: _Line) -> MessageRecord | None:
    """The model's reply: the first choice's message (:func:`_line_from_dict` moves one from ``response``)."""
    if line.choices:
        m = line.choices[0].message
        return None if m is None else _stored(m)
    return None


def _tools(raw: msgspec.Raw, decoded: dict[bytes, list[Any]]) -> list[Any]:
    """A tools list from its raw JSON, decoded once per distinct list in ``decoded`` (raw JSON -> value): an
    application sends few distinct ones. The list is shared by the lines that send it: read-only."""
    key = bytes(raw)
    tools = decoded.get(key)
    if tools is None:
        value = maybe_json(orjson.loads(key)) or []
        tools = decoded[key] = value if isinstance(value, list) else []
    return tools


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


def chat_fields(line: _Line, trace_id: str, tools: dict[bytes, list[Any]], fmt: str = "openai") -> tuple[Any, ...]:
    """The fields of :class:`Trace`, in its order, from one decoded line: messages as stored records, the start
    time as microseconds since the epoch (what :meth:`~evaltray.core.traces.RowBuilder.row` reads fastest).
    ``tools``: the tools lists decoded so far (see :func:`_tools`)."""
    meta = line.metadata or _EMPTY
    mget = meta.get
    messages = [_stored(m) for m in line.messages]
    if line.choices:  # the model's reply: the first choice's message
        reply = line.choices[0].message
        if reply is not None:
            messages.append(_stored(reply))
    usage = line.usage
    if usage is None:
        prompt = completion = total = None
    else:
        prompt = usage.input_tokens if usage.prompt_tokens is UNSET else usage.prompt_tokens
        completion = usage.output_tokens if usage.completion_tokens is UNSET else usage.completion_tokens
        total = usage.total_tokens
    start = line.created_at or line.timestamp or line.created
    feedback = mget("feedback") if line.feedback is UNSET else line.feedback
    error = line.error
    tags = line.tags or mget("tags")
    docs = mget("retrieved_doc_ids")
    # each value in the type it usually has is taken as it is; the helpers convert the rest
    return (
        trace_id,
        fmt,
        messages,
        _NO_LIST if line.tools is _NO_TOOLS else _tools(line.tools, tools),
        # start_time, as micros (RowBuilder.row reads them); whole seconds without a call
        start * 1_000_000
        if type(start) is int and 0 <= start <= 10**11
        else None
        if start is None
        else epoch_micros(start),
        None,  # end_time
        v if type(v := line.latency_ms or mget("latency_ms")) is float else as_float(v),
        prompt if type(prompt) is int and -(2**53) <= prompt <= 2**53 else as_int(prompt),
        completion if type(completion) is int and -(2**53) <= completion <= 2**53 else as_int(completion),
        total if total is None or type(total) is int and -(2**53) <= total <= 2**53 else as_int(total),
        v if type(v := line.cost or mget("cost_usd")) is float else as_float(v),
        v if type(v := line.model or mget("model")) is str or v is None else _text(v),
        v if type(v := line.system_fingerprint or mget("model_version")) is str or v is None else _text(v),
        None,  # provider
        v if type(v := mget("session_id") or line.session_id) is str or v is None else _text(v),
        v if type(v := mget("user_id") or line.user) is str or v is None else _text(v),
        None,  # name
        v if type(v := mget("feature") or line.feature) is str or v is None else _text(v),
        _strings(tags) if tags else [],
        None if feedback is None else feedback_score(feedback),
        None,  # feedback_comment
        v if type(v := mget("prompt_template_id") or mget("prompt_id")) is str or v is None else _text(v),
        _strings(docs) if docs else [],
        None,  # corpus_version
        "error" if error else "ok",
        str(error)[:500] if error else None,
        [],  # spans
        # the record's own metadata dict, unless it has tags (a column) or is the shared stand-in
        {k: v for k, v in meta.items() if k != "tags"} if "tags" in meta else {} if meta is _EMPTY else meta,
    )


_NO_LIST: list[Any] = []  # read-only: no tools


def _line_from_dict(obj: Any) -> _Line:
    """A decoded record as a :class:`_Line`: values of the wrong type are left out as the rules ignore them.

    Raises :class:`BadRecord` for a record that is not a chat line at all.
    """
    if not isinstance(obj, dict):
        raise BadRecord("expected a JSON object with 'messages'")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRecord("no 'messages' list", _own_id(*map(obj.get, _ID_KEYS)))
    fixed = dict(obj)
    fixed["messages"] = [m for m in messages if isinstance(m, dict) and "role" in m]
    reply = obj.get("choices")
    if not reply:
        response = obj.get("response")
        reply = response.get("choices") if isinstance(response, dict) else None
    first = reply[0].get("message") if isinstance(reply, list) and reply and isinstance(reply[0], dict) else None
    fixed["choices"] = [{"message": first}] if isinstance(first, dict) and "role" in first else None
    fixed.pop("response", None)
    for key in ("usage", "metadata"):
        if not isinstance(obj.get(key), dict):
            fixed.pop(key, None)
    return _DECODER.decode(orjson.dumps(fixed, option=orjson.OPT_NON_STR_KEYS))


def _decode(raw: bytes) -> _Line:
    """One line decoded; :class:`BadRecord` if it is not JSON or not a chat line."""
    try:
        line = _DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # not JSON, or odd types
        return _careful(raw)
    if not line.messages:
        raise BadRecord("no 'messages' list", _line_id(line))
    if line.response is not None and not line.choices:  # the reply may be wrapped in "response"
        return _careful(raw)
    return line


def _careful(raw: bytes) -> _Line:
    """A line read by orjson and brought to :class:`_Line`'s shape (:func:`_line_from_dict`)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"not valid JSON ({decode_error_reason(exc)})") from None
    return _line_from_dict(obj)


def trace_from_chat(obj: dict[str, Any], fallback_id: str, fmt: str = "openai") -> Trace:
    """A trace from one chat-completions record (request messages, optional reply and metadata)."""
    line = _line_from_dict(obj)
    return _trace(line, _line_id(line) or fallback_id, {}, fmt)


def _trace(line: _Line, trace_id: str, tools: dict[bytes, list[Any]], fmt: str = "openai") -> Trace:
    trace = Trace(*chat_fields(line, trace_id, tools, fmt))
    trace.messages = [message_from_record(m) for m in trace.messages]  # type: ignore[arg-type]
    trace.start_time = from_micros(trace.start_time)  # type: ignore[arg-type]
    return trace


def _own_id(*values: Any) -> str | None:
    """The record's own id: the first of its id fields (in :data:`_ID_KEYS` order) that is set."""
    for value in values:
        if value:
            return str(value)
    return None


def _line_id(line: _Line) -> str | None:
    return _own_id(line.trace_id, line.id, line.custom_id, line.conversation_id)


def _trace_id(line: _Line, raw: bytes, seen: dict[str, int]) -> str:
    """The line's own id, else one from its content (the decoded JSON, so formatting does not matter)."""
    return _line_id(line) or content_id(orjson.loads(raw), seen, "oai")


def _shape_error(exc: Exception, line: _Line) -> BadRecord:
    return BadRecord(f"a field has an unexpected type ({type(exc).__name__})", _line_id(line))


def chat_rows() -> LineReader:
    """A reader of chat lines for one chunk (the format's ``line_reader``): one line's bytes to its store row
    (``trace_values`` of the line's trace) without the Trace. What it remembers (each distinct tools list,
    decoded, encoded and hashed once) lives as long as the reader."""
    row = RowBuilder().row
    tools: dict[bytes, list[Any]] = {}

    def read(raw: bytes, seen: dict[str, int]) -> tuple[Any, ...]:
        line = _decode(raw)
        tid = _trace_id(line, raw, seen)
        try:
            return row(*chat_fields(line, tid, tools))
        except SHAPE_ERRORS as exc:
            raise _shape_error(exc, line) from None

    return read


def chat_row(raw: bytes, seen: dict[str, int]) -> tuple[Any, ...]:
    """The store row of one line, read on its own (see :func:`chat_rows`)."""
    return chat_rows()(raw, seen)


@register("openai", sniff=_sniff, priority=40, line_reader=chat_rows)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """OpenAI chat-completions / fine-tuning JSONL, one conversation per line."""
    seen: dict[str, int] = {}
    tools: dict[bytes, list[Any]] = {}
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = _decode(raw)
                tid = _trace_id(line, raw, seen)
                try:
                    trace = _trace(line, tid, tools)
                except SHAPE_ERRORS as exc:
                    raise _shape_error(exc, line) from None
            except BadRecord as bad:
                yield Issue(str(path), lineno, bad.reason, bad.record_id)
                continue
            yield trace
