"""OpenTelemetry traces as OTLP/JSON whose spans carry GenAI attributes, in any convention in use.

Conventions are per attribute, not per file: the GenAI semantic conventions (``gen_ai.*``: the
latest ``parts`` messages, the older indexed and event forms), OpenInference (``llm.*``), the
Langfuse SDK (``langfuse.*``) and the Vercel AI SDK (``ai.*``) all travel in OTLP, so the span
reading and trace assembly here also serve :mod:`.openinference`.

All spans with one ``traceId`` become one trace. Its conversation is the chat history the LLM calls
saw, merged so that a call repeating earlier messages adds only what is new, plus the final answer;
tool-execution spans add the tool results that history lacks. Traces with no GenAI span at all (the
HTTP and database traces of the same export) are left out. A trace's spans may sit anywhere in a
file, so a file is grouped in memory before its traces are yielded; spans of one trace split across
files become one trace per file, and the first one ingested wins.

Older conventions put message content in OTLP *logs* (``resourceLogs``), not in the spans. A traces
file therefore reads its sibling logs file (``x.traces.json`` with ``x.logs.json``, or the option
``logs=PATH``), and a logs file reads its sibling traces file, so either order of ingest gives the
same traces.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.records import Message, Span, ToolCall, Trace
from evaltray.core.util import sha256_hex

from ._common import (
    as_float,
    as_int,
    chat_message,
    guarded,
    head_text,
    line_of,
    maybe_json,
    parse_time,
    read_json,
    text_of,
)
from ._registry import Issue, register

# --------------------------------------------------------------------------- OTLP values


def any_value(value: Any) -> Any:
    """The plain value of an OTLP/JSON ``AnyValue`` (int64 arrive as strings; bytes stay base64)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])  # exactly: int64 ids and nanosecond counts exceed a float's 53 bits
        except (TypeError, ValueError):
            return as_int(value["intValue"])
    if "doubleValue" in value:
        return as_float(value["doubleValue"])  # also "NaN"/"Infinity", which proto3 JSON writes as strings
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """A flat dict from OTLP ``[{key, value: AnyValue}]`` (a dict is taken as already flat)."""
    if isinstance(kvs, dict):
        return kvs
    out: dict[str, Any] = {}
    for kv in kvs or []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


_HEX = re.compile(r"[0-9a-fA-F]+")


def hex_id(value: Any, nbytes: int) -> str | None:
    """A lowercase hex trace/span id from hex (``0x`` allowed) or the base64 protobuf's JSON writes."""
    if not isinstance(value, str) or not value:
        return None
    text = value[2:] if value[:2].lower() == "0x" else value
    if len(text) == 2 * nbytes and _HEX.fullmatch(text):
        return text.lower() if int(text, 16) else None  # an all-zero id means "no id" in OTel
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == nbytes and any(raw) else None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: nested fields of untrusted records."""
    return value if isinstance(value, dict) else {}


def status_code(value: Any) -> int:
    """OTel status as 0 unset, 1 ok, 2 error, from ints or enum names (``STATUS_CODE_ERROR``, ``ERROR``)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.upper().removeprefix("STATUS_CODE_").removeprefix("STATUSCODE.")
        return {"OK": 1, "ERROR": 2}.get(name, 0)
    return 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def span_time(value: Any) -> datetime | None:
    """A span timestamp, exact to the microsecond: epoch nanoseconds (int or digit string), OTel JS
    ``[s, ns]``, or anything :func:`parse_time` reads. 0 and "0" mean unset in OTLP."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, str) and value.isdigit() and len(value) >= 18:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**17:
        return _EPOCH + timedelta(microseconds=value // 1000)  # float seconds would round the last digits
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return _EPOCH + timedelta(seconds=value[0], microseconds=value[1] // 1000)
    return parse_time(value)


# --------------------------------------------------------------------------- the span model


@dataclass(slots=True)
class SpanEvent:
    """A span event or an OTLP log record tied to a span: name, time, attributes, and a log body."""

    name: str
    time: datetime | None
    attrs: dict[str, Any]
    body: Any = None


@dataclass(slots=True)
class SpanRecord:
    """One span, whichever JSON shape it came in: ids in hex, times as datetimes, attributes flat."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    name: str | None = None
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    status_code: int = 0
    status_message: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None


def record_line(path: Path, key: str, value: str | None) -> int | None:
    """Line of ``"key": "value"`` in ``path`` (either JSON spacing): where a bad span sits."""
    if not value:
        return None
    for sep in ('": "', '":"'):
        line = line_of(path, f'"{key}{sep}{value}"')
        if line is not None:
            return line
    return line_of(path, value)


def iter_documents(path: Path) -> Iterator[tuple[int, Any] | Issue]:
    """``(line, document)`` for a JSON file, or for JSON Lines / concatenated documents (the OTel
    collector's file exporter, Python's console exporter); an unreadable stretch is an Issue."""
    doc = read_json(path)
    if not isinstance(doc, Issue):
        yield 1, doc
        return
    text = path.read_text("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos, line, counted, found = 0, 1, 0, False
    while True:
        while pos < len(text) and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= len(text):
            break
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            found = True
            yield Issue(str(path), text.count("\n", 0, exc.pos) + 1, f"not valid JSON ({exc.msg})")
            nxt = text.find("\n{", exc.pos)  # resync at the next document that starts a line
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        found = True
        yield line, obj
        pos = end
    if not found:
        yield Issue(str(path), None, "empty file")


# --------------------------------------------------------------------------- OTLP documents

_OTLP_KINDS = {0: None, 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _kind(value: Any) -> str | None:
    if isinstance(value, int):
        return _OTLP_KINDS.get(value)
    if isinstance(value, str):
        name = value.lower().removeprefix("span_kind_").removeprefix("spankind.")
        return None if name in ("", "unspecified") else name
    return None


def _otlp_spans(doc: dict[str, Any], path: Path) -> Iterator[SpanRecord | Issue]:
    for rs in doc.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            if not isinstance(ss, dict):
                continue
            scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            scope_name = " ".join(str(scope[k]) for k in ("name", "version") if scope.get(k)) or None
            for raw in ss.get("spans") or []:
                yield _otlp_span(raw, resource, scope_name, path)


def _otlp_span(raw: Any, resource: dict[str, Any], scope: str | None, path: Path) -> SpanRecord | Issue:
    if not isinstance(raw, dict):
        return Issue(str(path), None, "span is not a JSON object")
    sid = raw.get("spanId") if isinstance(raw.get("spanId"), str) else None
    span_id, trace_id = hex_id(sid, 8), hex_id(raw.get("traceId"), 16)

    def issue(reason: str, record_id: str | None) -> Issue:
        tid = raw.get("traceId") if isinstance(raw.get("traceId"), str) else None
        where = record_line(path, "spanId", sid) or record_line(path, "traceId", tid)
        return Issue(str(path), where, reason, record_id)

    if span_id is None:
        return issue("span has no valid spanId", raw.get("traceId") or raw.get("name"))
    if trace_id is None:
        return issue("span has no valid traceId", span_id)
    if not isinstance(raw.get("attributes", []), list):
        return issue("span attributes are not a list of key/value pairs", span_id)
    times = {}
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        times[key] = span_time(raw.get(key))
        if times[key] is None and raw.get(key) not in (None, "", 0, "0"):
            return issue(f"span has an unreadable {key}", span_id)
    status = as_dict(raw.get("status"))
    events = [SpanEvent(str(e.get("name") or ""), span_time(e.get("timeUnixNano")), attributes(e.get("attributes")))
              for e in raw.get("events") or [] if isinstance(e, dict)]
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, parent_id=hex_id(raw.get("parentSpanId"), 8), name=raw.get("name"),
        kind=_kind(raw.get("kind")), start=times["startTimeUnixNano"], end=times["endTimeUnixNano"],
        status_code=status_code(status.get("code")), status_message=status.get("message") or None,
        attrs=attributes(raw.get("attributes")), events=events, resource=resource, scope=scope,
    )


@dataclass(slots=True)
class _LogEvent:
    trace_id: str
    span_id: str | None
    event: SpanEvent


def _otlp_logs(doc: dict[str, Any], path: Path) -> Iterator[_LogEvent | Issue]:
    for rl in doc.get("resourceLogs") or []:
        if not isinstance(rl, dict):
            continue
        for sl in rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs") or []:
            if not isinstance(sl, dict):
                continue
            for raw in sl.get("logRecords") or []:
                if not isinstance(raw, dict):
                    yield Issue(str(path), None, "log record is not a JSON object")
                    continue
                attrs = attributes(raw.get("attributes"))
                name = raw.get("eventName") or attrs.get("event.name") or ""
                trace_id = hex_id(raw.get("traceId"), 16)
                if trace_id is None:
                    # a record outside any trace cannot join a conversation; GenAI events always have one
                    if str(name).startswith("gen_ai."):
                        where = record_line(path, "observedTimeUnixNano", raw.get("observedTimeUnixNano"))
                        yield Issue(str(path), where, "log record has no valid traceId", str(name))
                    continue
                when = span_time(raw.get("timeUnixNano")) or span_time(raw.get("observedTimeUnixNano"))
                yield _LogEvent(trace_id, hex_id(raw.get("spanId"), 8),
                                SpanEvent(str(name), when, attrs, any_value(raw.get("body"))))


# --------------------------------------------------------------------------- messages

_ROLES = {"human": "user", "ai": "assistant", "model": "assistant", "bot": "assistant", "function": "tool",
          "ipython": "tool"}
_CALL_PARTS = ("tool_call", "tool-call", "tool_use", "function_call")
_RESULT_PARTS = ("tool_call_response", "tool-result", "tool_result", "function_call_output")
_MEDIA_PARTS = ("blob", "file", "uri", "image", "image_url", "input_image", "input_audio", "audio")
_TEXT_PARTS = ("text", "input_text", "output_text")
_HIDDEN_PARTS = ("reasoning", "thinking", "redacted_thinking")  # the model's scratchpad, not what the user saw


def _role(value: Any, default: str) -> str:
    role = str(value or default).lower()
    return _ROLES.get(role, role)


def result_text(value: Any) -> str | None:
    """A tool result as text: strings as they are (a JSON-encoded string decoded once), else JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        decoded = maybe_json(value)
        return decoded if isinstance(decoded, str) else value
    if isinstance(value, dict) and set(value) <= {"type", "value"} and "value" in value:
        return result_text(value["value"])  # Vercel v5 tool output: {type: "text" | "json", value}
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return text_of(value)
    return orjson.dumps(value).decode("utf-8")


def _call_from_part(part: dict[str, Any]) -> ToolCall | None:
    name = part.get("name") or part.get("toolName")
    if not name:
        return None
    args = next((part[k] for k in ("arguments", "input", "args") if k in part), None)
    cid = part.get("id") or part.get("toolCallId") or part.get("call_id")
    return ToolCall(id=cid, name=str(name), arguments=maybe_json(args))


def _parts_message(role: str, parts: list[Any], raw: dict[str, Any]) -> list[Message]:
    """Messages from a GenAI ``parts`` list (also Vercel/Anthropic content parts with tool calls)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                texts.append(text)
        elif kind in _CALL_PARTS:
            call = _call_from_part(part)
            if call is not None:
                calls.append(call)
        elif kind in _RESULT_PARTS:
            value = next((part[k] for k in ("response", "output", "result", "content") if k in part), None)
            results.append(Message(
                role="tool", content=result_text(value),
                tool_call_id=part.get("id") or part.get("toolCallId") or part.get("tool_use_id") or part.get("call_id"),
                name=part.get("toolName") or part.get("name"),
                is_error=bool(part.get("is_error") or part.get("isError")),
            ))
        elif kind in _MEDIA_PARTS:
            texts.append(f"[{part.get('modality') or kind}]")
        # reasoning and server-side tool parts are left out: the user never saw them
    content = "\n".join(texts) if texts else None
    if role == "tool":
        return results or [Message(role="tool", content=content, name=raw.get("name"),
                                   tool_call_id=raw.get("tool_call_id") or raw.get("id"))]
    if content is None and not calls:
        return results or [Message(role=role)]
    msg = Message(role=role, content=content, tool_calls=calls)
    # a user turn that carries tool results (Anthropic style) answers them first, then speaks
    return [msg, *results] if role == "assistant" else [*results, msg]


def message_list(raw: dict[str, Any], default_role: str = "user") -> list[Message]:
    """Messages from one chat-message dict of any convention (one dict may hold several tool results)."""
    role = _role(raw.get("role"), default_role)
    parts = raw.get("parts")
    content = raw.get("content")
    if not isinstance(parts, list) and isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in _CALL_PARTS + _RESULT_PARTS for p in content):
        parts = content
    if isinstance(parts, list):
        return _parts_message(role, parts, raw)
    fixed = dict(raw, role=role)
    if isinstance(content, list):
        fixed["content"] = [p for p in content if not (isinstance(p, dict) and p.get("type") in _HIDDEN_PARTS)]
    if isinstance(fixed.get("tool_calls"), str):
        fixed["tool_calls"] = maybe_json(fixed["tool_calls"])
    if role == "tool":
        fixed["tool_call_id"] = raw.get("tool_call_id") or raw.get("id")
        fixed["content"] = result_text(fixed.get("content"))
    msg = chat_message(fixed)
    return [msg] if msg is not None else []


def messages_from(raw: Any, default_role: str = "user") -> list[Message]:
    """Messages from any chat payload: GenAI ``parts`` lists, OpenAI or Vercel chat dicts, a request
    body with ``messages``, ``{"prompt"}``, ``@observe``'s ``{"args", "kwargs"}``, or bare text."""
    raw = maybe_json(raw)
    if raw is None or raw == "" or raw == [] or raw == {}:
        return []
    if isinstance(raw, str):
        return [Message(role=default_role, content=raw)]
    if isinstance(raw, list):
        out: list[Message] = []
        for item in raw:
            if isinstance(item, dict) and ("role" in item or "parts" in item):
                out += message_list(item, default_role)
            elif isinstance(item, str):
                out.append(Message(role=default_role, content=item))
        return out
    if not isinstance(raw, dict):
        return [Message(role=default_role, content=str(raw))]
    if "role" in raw or "parts" in raw:
        return message_list(raw, default_role)
    if isinstance(raw.get("messages"), list | str):
        system = messages_from(raw.get("system"), "system") if isinstance(raw.get("system"), str) else []
        return system + messages_from(raw["messages"], default_role)
    if "prompt" in raw:  # Vercel ai.prompt {"system"?, "prompt"}
        system = messages_from(raw.get("system"), "system") if isinstance(raw.get("system"), str) else []
        return system + messages_from(raw["prompt"], default_role)
    choices = raw.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return messages_from(choices[0].get("message") or choices[0].get("text"), "assistant")
    if set(raw) <= {"args", "kwargs"}:  # Langfuse @observe records a call's arguments
        args, kwargs = raw.get("args") or [], raw.get("kwargs") or {}
        if len(args) == 1 and not kwargs and isinstance(args[0], str):
            return [Message(role=default_role, content=args[0])]
    for key in ("text", "content", "output", "answer", "completion", "response", "input", "query", "question"):
        if isinstance(raw.get(key), str):
            return [Message(role=default_role, content=raw[key])]
    return [Message(role=default_role, content=orjson.dumps(raw).decode("utf-8"))]


def system_messages(raw: Any) -> list[Message]:
    """``gen_ai.system_instructions``: a bare list of parts (or text), not a list of messages."""
    raw = maybe_json(raw)
    if isinstance(raw, list) and all(isinstance(p, dict) and "role" not in p for p in raw):
        return [m for m in _parts_message("system", raw, {}) if m.content]
    return messages_from(raw, "system")


def _io_messages(a: Mapping[str, Any], key: str, default_role: str) -> list[Message]:
    """OpenInference ``input.value``/``output.value`` (or a bare ``input``): text stays text."""
    value = _first(a, f"{key}.value", key)
    if isinstance(value, str) and a.get(f"{key}.mime_type") == "text/plain":
        return [Message(role=default_role, content=value)]
    return messages_from(value, default_role)


def unflatten(attrs: Mapping[str, Any], prefix: str) -> Any:
    """The nested value of dotted keys under ``prefix``; numeric segments become list positions
    (``llm.input_messages.0.message.role`` → ``[{"message": {"role": …}}]``)."""
    root: dict[str, Any] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        segments = key[len(prefix):].split(".")
        node = root
        for seg in segments[:-1]:
            nxt = node.get(seg)
            if not isinstance(nxt, dict):
                nxt = node[seg] = {}
            node = nxt
        node.setdefault(segments[-1], value)
    return _listify(root) if root else None


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    conv = {k: _listify(v) for k, v in node.items()}
    if conv and all(k.isdigit() for k in conv):
        return [conv[k] for k in sorted(conv, key=int)]
    return conv


def _oi_message(item: dict[str, Any], default_role: str) -> list[Message]:
    """An OpenInference ``message`` (role, content or contents, tool_calls, tool_call_id, name)."""
    m = as_dict(item.get("message")) or item
    role = _role(m.get("role"), default_role)
    content = m.get("content")
    if content is None and isinstance(m.get("contents"), list):
        texts = []
        for c in m["contents"]:
            mc = as_dict(as_dict(c).get("message_content", c))
            if mc.get("type", "text") == "text" and isinstance(mc.get("text"), str):
                texts.append(mc["text"])
            elif mc.get("type"):
                texts.append(f"[{mc['type']}]")
        content = "\n".join(texts) if texts else None
    calls = []
    for raw in m.get("tool_calls") or []:
        tc = as_dict(as_dict(raw).get("tool_call", raw))
        fn = as_dict(tc.get("function"))
        name = fn.get("name") or tc.get("name")
        if name:
            calls.append(ToolCall(id=tc.get("id"), name=str(name), arguments=maybe_json(fn.get("arguments"))))
    if role == "tool":
        content = result_text(content)
    return [Message(role=role, content=text_of(content), tool_calls=calls, tool_call_id=m.get("tool_call_id"),
                    name=m.get("name") if role == "tool" else None)]


def indexed_messages(attrs: Mapping[str, Any], prefix: str, default_role: str = "user") -> list[Message]:
    """Messages flattened into indexed attributes: OpenInference ``llm.input_messages.N.message.*``
    or the older GenAI/OpenLLMetry ``gen_ai.prompt.N.role`` form."""
    items = unflatten(attrs, prefix)
    out: list[Message] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("message"), dict):
            out += _oi_message(item, default_role)
        elif "role" in item or "content" in item or "tool_calls" in item:
            out += message_list({"role": default_role, **item}, default_role)
    return out


def _event_messages(events: Iterable[SpanEvent]) -> tuple[list[Message], list[Message]]:
    """Input and output messages carried by GenAI events (span events or log records)."""
    inputs: list[Message] = []
    outputs: list[Message] = []
    for ev in events:
        if ev.name == "gen_ai.content.prompt":
            inputs += messages_from(ev.attrs.get("gen_ai.prompt"))
            continue
        if ev.name == "gen_ai.content.completion":
            outputs += messages_from(ev.attrs.get("gen_ai.completion"), "assistant")
            continue
        if not (ev.name.startswith("gen_ai.") and (ev.name.endswith(".message") or ev.name == "gen_ai.choice")):
            continue
        payload = ev.body
        if payload is None:
            payload = maybe_json(ev.attrs.get("gen_ai.event.content"))
        if payload is None:
            payload = {k: v for k, v in ev.attrs.items() if not k.startswith("gen_ai.")}
        if isinstance(payload, str):
            payload = {"content": payload}
        if not isinstance(payload, dict):
            continue
        if ev.name == "gen_ai.choice":
            msg = as_dict(payload.get("message")) or payload
            outputs += message_list({k: v for k, v in msg.items() if k not in ("index", "finish_reason")},
                                    "assistant")
        else:
            role = ev.name.removeprefix("gen_ai.").removesuffix(".message")
            inputs += message_list({**payload, "role": payload.get("role") or role}, role)
    return inputs, outputs


# --------------------------------------------------------------------------- tools


def openai_tool(raw: Any) -> dict[str, Any] | None:
    """A tool definition in OpenAI's function-tool shape when it is a function; other tools as given."""
    raw = maybe_json(raw)
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("function"), dict):
        return raw
    if "name" not in raw or raw.get("type", "function") != "function":
        return raw
    params = next((maybe_json(raw[k]) for k in ("parameters", "inputSchema", "input_schema", "json_schema")
                   if raw.get(k) is not None), None)
    fn = {"name": raw["name"], "description": raw.get("description"), "parameters": params}
    return {"type": "function", "function": {k: v for k, v in fn.items() if v is not None}}


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    return str(fn.get("name") if isinstance(fn, dict) else tool.get("name") or orjson.dumps(tool).decode())


def _span_tools(a: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw: list[Any] = []
    defs = maybe_json(a.get("gen_ai.tool.definitions"))
    if isinstance(defs, list):
        raw += defs
    for item in unflatten(a, "llm.tools.") or []:  # OpenInference: llm.tools.N.tool.json_schema
        if isinstance(item, dict):
            raw.append(as_dict(item.get("tool")).get("json_schema") if "tool" in item else item)
    raw += [f for f in unflatten(a, "llm.request.functions.") or [] if isinstance(f, dict)]  # OpenLLMetry < 0.40
    vercel = maybe_json(a.get("ai.prompt.tools"))
    if isinstance(vercel, list):
        raw += vercel
    for key in ("langfuse.observation.input", "input.value", "input"):
        body = maybe_json(a.get(key))
        if isinstance(body, dict) and isinstance(body.get("tools"), list):
            raw += body["tools"]
            break
    return [t for t in (openai_tool(r) for r in raw) if t is not None]


# --------------------------------------------------------------------------- one span's reading

_OI_KINDS = {"LLM": "llm", "EMBEDDING": "embedding", "TOOL": "tool", "AGENT": "agent", "CHAIN": "chain",
             "RETRIEVER": "retriever", "RERANKER": "reranker", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator"}
_OPERATIONS = {"chat": "llm", "text_completion": "llm", "generate_content": "llm", "completion": "llm",
               "embeddings": "embedding", "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent"}
_LANGFUSE_TYPES = {"generation": "llm", "embedding": "embedding", "tool": "tool", "agent": "agent",
                   "chain": "chain", "retriever": "retriever", "evaluator": "evaluator", "guardrail": "guardrail"}
_TRACELOOP_KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_TTFT_KEYS = ("ai.response.msToFirstChunk",)


def _first(a: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = a.get(key)
        if value is not None and value != "":
            return value
    return None


def _span_role(span: SpanRecord) -> str | None:
    a = span.attrs
    if a.get("openinference.span.kind"):
        return _OI_KINDS.get(str(a["openinference.span.kind"]).upper(), str(a["openinference.span.kind"]).lower())
    if a.get("langfuse.observation.type") in _LANGFUSE_TYPES:
        return _LANGFUSE_TYPES[a["langfuse.observation.type"]]
    if a.get("gen_ai.operation.name") in _OPERATIONS:
        return _OPERATIONS[a["gen_ai.operation.name"]]
    op = str(a.get("ai.operationId") or "")
    if op:
        if op.endswith((".doGenerate", ".doStream")):
            return "llm"
        if op.endswith(".doEmbed"):
            return "embedding"
        return "tool" if op == "ai.toolCall" else "chain"
    if a.get("traceloop.span.kind") in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[a["traceloop.span.kind"]]
    if any(k.startswith(("gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages")) for k in a) or any(
            e.name.startswith("gen_ai.") for e in span.events):
        return "llm"
    return None


def _provider(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    # Vercel writes "<provider>.<api>" ("openai.responses"); the GenAI names keep their dots ("aws.bedrock")
    m = re.fullmatch(r"([\w-]+)\.(responses|chat|completion|completions|embedding|image|transcription|speech|messages)",
                     text)
    return m.group(1) if m else text


@dataclass(slots=True)
class _Reading:
    """What one span says about the conversation, usage and model."""

    role: str | None
    inputs: list[Message] = field(default_factory=list)
    outputs: list[Message] = field(default_factory=list)
    choices: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    fingerprint: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    ttft_ms: float | None = None
    tool_result: Message | None = None
    error: str | None = None

    @property
    def has_usage(self) -> bool:
        return any(v is not None for v in (self.input_tokens, self.output_tokens, self.total_tokens, self.cost))


def _first_messages(sources: Iterable[Callable[[], list[Message]]]) -> list[Message]:
    for source in sources:
        msgs = source()
        if msgs:
            return msgs
    return []


def _vercel_output(a: Mapping[str, Any]) -> list[Message]:
    calls = []
    for c in maybe_json(a.get("ai.response.toolCalls")) or []:
        if isinstance(c, dict) and (c.get("toolName") or c.get("name")):
            calls.append(_call_from_part(c))
    text = a.get("ai.response.text")
    if text or calls:
        return [Message(role="assistant", content=text or None, tool_calls=[c for c in calls if c])]
    obj = a.get("ai.response.object")
    if obj is not None:
        return [Message(role="assistant", content=obj if isinstance(obj, str) else orjson.dumps(obj).decode())]
    return []


_INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                 "ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens")
_OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                  "ai.usage.outputTokens", "ai.usage.completionTokens")
_TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total", "ai.usage.totalTokens")


def _count(a: Mapping[str, Any], keys: tuple[str, ...], details: Mapping[str, Any], *detail_keys: str) -> int | None:
    value = as_int(_first(a, *keys))
    return value if value is not None else as_int(_first(details, *detail_keys))


def _usage(a: Mapping[str, Any]) -> tuple[int | None, int | None, int | None, float | None]:
    details = maybe_json(a.get("langfuse.observation.usage_details"))
    ud = as_dict(details)  # Langfuse keeps OpenAI's key names here
    inp = _count(a, _INPUT_TOKENS, ud, "input", "prompt_tokens", "input_tokens")
    out = _count(a, _OUTPUT_TOKENS, ud, "output", "completion_tokens", "output_tokens")
    total = _count(a, _TOTAL_TOKENS, ud, "total", "total_tokens")
    cost_details = maybe_json(a.get("langfuse.observation.cost_details"))
    cost = as_float(_first(a, "gen_ai.usage.cost", "llm.cost.total"))
    if cost is None and isinstance(cost_details, dict):
        cost = as_float(cost_details.get("total"))
        if cost is None:
            parts = [as_float(v) for v in cost_details.values()]
            cost = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
    return inp, out, total, cost


def _error(span: SpanRecord) -> str | None:
    a = span.attrs
    if span.status_code == 2:
        for ev in span.events:
            if ev.name == "exception":
                kind, msg = ev.attrs.get("exception.type"), ev.attrs.get("exception.message")
                if kind or msg:
                    return span.status_message or ": ".join(str(x) for x in (kind, msg) if x)
        return span.status_message or a.get("error.type") or "error"
    if str(a.get("langfuse.observation.level") or "").upper() == "ERROR":
        return a.get("langfuse.observation.status_message") or "error"
    return None


def _params(a: Mapping[str, Any]) -> dict[str, Any]:
    params = {k.removeprefix("gen_ai.request."): v for k, v in a.items()
              if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"}
    params.update({k.removeprefix("ai.settings."): v for k, v in a.items() if k.startswith("ai.settings.")})
    for key in ("llm.invocation_parameters", "langfuse.observation.model.parameters"):
        body = maybe_json(a.get(key))
        if isinstance(body, dict):
            params.update({k: v for k, v in body.items() if k not in ("model", "messages", "tools", "input")})
    return params


def read_span(span: SpanRecord) -> _Reading:
    """Interpret one span's attributes and events, whatever convention wrote them."""
    a = span.attrs
    role = _span_role(span)
    r = _Reading(role=role, error=_error(span))
    r.input_tokens, r.output_tokens, r.total_tokens, r.cost = _usage(a)
    inv = maybe_json(a.get("llm.invocation_parameters"))
    r.request_model = _first(a, "gen_ai.request.model", "ai.model.id") or (
        inv.get("model") if isinstance(inv, dict) else None)
    r.response_model = _first(a, "gen_ai.response.model", "ai.response.model", "llm.model_name",
                              "langfuse.observation.model.name")
    r.provider = _provider(_first(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system",
                                  "ai.model.provider"))
    r.fingerprint = _first(a, "openai.response.system_fingerprint", "gen_ai.openai.response.system_fingerprint")
    r.response_id = _first(a, "gen_ai.response.id", "ai.response.id")
    reasons = _first(a, "gen_ai.response.finish_reasons", "ai.response.finishReason")
    r.finish_reasons = [str(x) for x in reasons] if isinstance(reasons, list) else [str(reasons)] if reasons else []
    r.tools = _span_tools(a)
    r.ttft_ms = as_float(_first(a, *_TTFT_KEYS))
    start_of_output = parse_time(a.get("langfuse.observation.completion_start_time"))
    if r.ttft_ms is None and start_of_output and span.start:
        r.ttft_ms = (start_of_output - span.start).total_seconds() * 1000.0

    if role == "tool":
        result = _first(a, "gen_ai.tool.call.result", "output.value", "langfuse.observation.output",
                        "ai.toolCall.result", "ai.toolCall.output", "traceloop.entity.output", "output")
        text = result_text(result) if result is not None else r.error
        r.tool_result = Message(
            role="tool", content=text,
            tool_call_id=_first(a, "gen_ai.tool.call.id", "tool_call.id", "ai.toolCall.id"),
            name=_first(a, "gen_ai.tool.name", "tool.name", "ai.toolCall.name", "tool_call.function.name") or span.name,
            is_error=r.error is not None,
        )
        description = _first(a, "gen_ai.tool.description", "tool.description")
        params = maybe_json(a.get("tool.parameters"))
        tool = openai_tool({"name": r.tool_result.name, "description": description, "parameters": params})
        if tool is not None and (description or params):
            r.tools.append(tool)
        return r

    events_in, events_out = _event_messages(span.events)
    details = next((e.attrs for e in span.events if e.name == "gen_ai.client.inference.operation.details"), {})
    system = system_messages(a.get("gen_ai.system_instructions") or details.get("gen_ai.system_instructions"))
    r.inputs = _first_messages((
        lambda: messages_from(a.get("gen_ai.input.messages") or details.get("gen_ai.input.messages")),
        lambda: indexed_messages(a, "llm.input_messages."),
        lambda: indexed_messages(a, "gen_ai.prompt."),
        lambda: messages_from(a.get("gen_ai.prompt")),
        lambda: messages_from(a.get("ai.prompt.messages")),
        lambda: messages_from(a.get("ai.prompt")),
        lambda: messages_from(a.get("langfuse.observation.input")),
        lambda: events_in,
        lambda: messages_from(a.get("traceloop.entity.input")),
        lambda: _io_messages(a, "input", "user"),
    ))
    if system and not (r.inputs and r.inputs[0].role == "system"):
        r.inputs = system + r.inputs
    outputs = _first_messages((
        lambda: messages_from(a.get("gen_ai.output.messages") or details.get("gen_ai.output.messages"), "assistant"),
        lambda: indexed_messages(a, "llm.output_messages.", "assistant"),
        lambda: indexed_messages(a, "gen_ai.completion.", "assistant"),
        lambda: messages_from(a.get("gen_ai.completion"), "assistant"),
        lambda: _vercel_output(a),
        lambda: messages_from(a.get("langfuse.observation.output"), "assistant"),
        lambda: events_out,
        lambda: messages_from(a.get("traceloop.entity.output"), "assistant"),
        lambda: _io_messages(a, "output", "assistant"),
    ))
    # n > 1 choices are alternatives, not turns: the conversation continues with the first
    r.choices = len(outputs)
    r.outputs = outputs[:1] if len(outputs) > 1 and all(m.role == "assistant" for m in outputs) else outputs
    if role in ("llm", None, "chain", "agent"):
        r.params = _params(a)
    if role is None and (r.inputs or r.outputs) and r.response_model:
        r.role = "llm"
    return r


# --------------------------------------------------------------------------- the trace


def _canon(value: Any) -> str:
    try:
        return orjson.dumps(maybe_json(value), option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return str(value)


def message_key(m: Message) -> tuple[Any, ...]:
    """What makes two messages the same turn when a later LLM call repeats the history."""
    calls = tuple((c.id or "", c.name, _canon(c.arguments)) for c in m.tool_calls)
    return m.role, (m.content or "").strip(), calls, m.tool_call_id or ""


@dataclass(slots=True)
class _Turn:
    msg: Message
    key: tuple[Any, ...]
    at: float


def _merge(conv: list[_Turn], new: list[tuple[Message, float]]) -> None:
    """Add a call's messages to the conversation: a call that extends the history adds its tail;
    one that diverges (another prompt) adds only the messages the conversation does not hold yet."""
    keys = [message_key(m) for m, _ in new]
    k = 0
    while k < len(conv) and k < len(new) and conv[k].key == keys[k]:
        k += 1
    if k == len(conv):
        conv.extend(_Turn(m, key, at) for (m, at), key in zip(new[k:], keys[k:], strict=True))
        return
    have = Counter(t.key for t in conv)
    for (m, at), key in zip(new, keys, strict=True):
        if have[key]:
            have[key] -= 1
        else:
            conv.append(_Turn(m, key, at))


def _add_tool_result(conv: list[_Turn], msg: Message, at: float) -> None:
    """Add a tool span's result unless the history already has it (by call id, else by content)."""
    text = (msg.content or "").strip()
    for t in conv:
        m = t.msg
        if m.role != "tool":
            continue
        same_id = msg.tool_call_id and m.tool_call_id == msg.tool_call_id
        same_text = (m.content or "").strip() == text and not (msg.tool_call_id and m.tool_call_id)
        if same_id or same_text:
            if msg.is_error:
                m.is_error = True
            return
    pos = None
    if msg.tool_call_id:  # right after the assistant turn that asked for it, and its other results
        for i, t in enumerate(conv):
            if any(c.id == msg.tool_call_id for c in t.msg.tool_calls):
                pos = i + 1
                while pos < len(conv) and conv[pos].msg.role == "tool":
                    pos += 1
                break
    if pos is None:
        pos = next((i for i, t in enumerate(conv) if t.at > at), len(conv))
    conv.insert(pos, _Turn(msg, message_key(msg), at))


def _name_tool_results(conv: list[_Turn]) -> None:
    """Name each tool result after the call it answers (GenAI parts and OpenInference omit it)."""
    names = {c.id: c.name for t in conv for c in t.msg.tool_calls if c.id}
    for t in conv:
        if t.msg.role == "tool" and t.msg.name is None and t.msg.tool_call_id in names:
            t.msg.name = names[t.msg.tool_call_id]


def _ts(value: datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _tags(value: Any) -> list[str]:
    value = maybe_json(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


_META_PREFIXES = ("langfuse.trace.metadata.", "ai.telemetry.metadata.", "traceloop.association.properties.")


def _trace_metadata(spans: list[SpanRecord]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for span in spans:
        for key, value in span.attrs.items():
            for prefix in _META_PREFIXES:
                if key.startswith(prefix):
                    meta.setdefault(key[len(prefix):], maybe_json(value))
        oi = maybe_json(span.attrs.get("metadata"))
        if isinstance(oi, dict):
            for key, value in oi.items():
                meta.setdefault(str(key), value)
    return meta


def _prompt_template(spans: list[SpanRecord]) -> str | None:
    for span in spans:
        a = span.attrs
        name = _first(a, "langfuse.observation.prompt.name", "traceloop.prompt.key")
        if name:
            version = _first(a, "langfuse.observation.prompt.version", "traceloop.prompt.version")
            return f"{name}@{version}" if version is not None else str(name)
        template = a.get("llm.prompt_template.template")
        if template:
            # OpenInference records the template's text, not an id: its hash groups traces by template
            version = a.get("llm.prompt_template.version")
            tid = f"tmpl-{sha256_hex(str(template))[:12]}"
            return f"{tid}@{version}" if version else tid
    return None


def _doc_ids(spans: list[SpanRecord]) -> list[str]:
    ids: list[str] = []
    for span in spans:
        for prefix in ("retrieval.documents.", "reranker.output_documents."):
            for doc in unflatten(span.attrs, prefix) or []:
                d = doc.get("document") if isinstance(doc, dict) else None
                if isinstance(d, dict) and d.get("id") is not None and str(d["id"]) not in ids:
                    ids.append(str(d["id"]))
    return ids


def assemble(trace_id: str, spans: list[SpanRecord], fmt: str) -> Trace:
    """One trace from all spans sharing ``trace_id``: conversation, tools, totals, tree summary."""
    order = {id(s): i for i, s in enumerate(spans)}
    spans = sorted(spans, key=lambda s: (_ts(s.start, float("inf")), order[id(s)]))
    read = [(s, read_span(s)) for s in spans]
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None or s.parent_id not in by_id]
    root = roots[0] if roots else spans[0]

    talk = [(s, r) for s, r in read if r.role == "llm" and (r.inputs or r.outputs)]
    if not talk:  # no model call recorded its messages: fall back to the workflow spans' input/output
        talk = [(s, r) for s, r in read if r.role != "tool" and (r.inputs or r.outputs)]
    conv: list[_Turn] = []
    for s, r in talk:
        began, ended = _ts(s.start, 0.0), _ts(s.end, _ts(s.start, 0.0))
        _merge(conv, [(m, began) for m in r.inputs] + [(m, ended) for m in r.outputs])
    for s, r in read:
        if r.tool_result is not None:
            _add_tool_result(conv, r.tool_result, _ts(s.end, _ts(s.start, float("inf"))))
    _name_tool_results(conv)

    # usage counts once: from the spans no descendant of which reports usage (Vercel and agent
    # frameworks repeat their children's totals on the parent span)
    covered: set[str] = set()
    for s, r in read:
        parent, hops = (s.parent_id if r.has_usage else None), 0
        while parent in by_id and parent not in covered and hops < len(spans):
            covered.add(parent)
            parent, hops = by_id[parent].parent_id, hops + 1
    counted = [r for s, r in read if r.has_usage and s.span_id not in covered]
    totals = [r.total_tokens if r.total_tokens is not None else _sum((r.input_tokens, r.output_tokens))
              for r in counted]

    with_model = [r for _, r in read if r.request_model or r.response_model]
    models = [r for r in with_model if r.role in ("llm", "embedding")] or with_model
    last = models[-1] if models else None
    # as the other parsers do: the model that answered (the pinned snapshot), its fingerprint as version
    model = (last.response_model or last.request_model) if last else None
    final = talk[-1][1] if talk else None

    tools: dict[str, dict[str, Any]] = {}
    for _, r in read:
        for tool in r.tools:
            tools.setdefault(_tool_name(tool), tool)

    errors = [(s, r.error) for s, r in read if r.error]
    attrs = [s.attrs for s in spans]

    def first(*keys: str) -> Any:
        return next((v for a in attrs if (v := _first(a, *keys)) is not None), None)

    trace_meta = _trace_metadata(spans)
    meta: dict[str, Any] = {}
    service = root.resource.get("service.name")
    if service and not str(service).startswith("unknown_service"):  # the SDK's placeholder says nothing
        meta["service"] = service
    scopes = sorted({s.scope for s in spans if s.scope})
    if scopes:
        meta["instrumentation"] = scopes
    env = first("langfuse.environment") or root.resource.get("deployment.environment.name") or root.resource.get(
        "deployment.environment") or root.resource.get("langfuse.environment")
    if env:
        meta["environment"] = env
    if trace_meta:
        meta["trace_metadata"] = trace_meta
    llm_readings = [r for _, r in read if r.role == "llm"]
    if llm_readings:
        meta["llm_calls"] = len(llm_readings)
    response_ids = [r.response_id for r in llm_readings if r.response_id]
    if response_ids:
        meta["response_ids"] = response_ids
    distinct = list(dict.fromkeys(m for r in models for m in [r.response_model or r.request_model] if m))
    if len(distinct) > 1:
        meta["models"] = distinct
    if last is not None and last.request_model and last.request_model != model:
        meta["request_model"] = last.request_model
    if final is not None:
        if final.finish_reasons:
            meta["finish_reasons"] = final.finish_reasons
        if final.params:
            meta["request"] = final.params
        if final.choices > 1:
            meta["choices"] = final.choices
    ttft = next((r.ttft_ms for r in llm_readings if r.ttft_ms is not None), None)
    if ttft is not None:
        meta["time_to_first_token_ms"] = ttft

    starts = [s.start for s in spans if s.start]
    ends = [s.end for s in spans if s.end]
    first_start, last_end = (min(starts) if starts else None), (max(ends) if ends else None)
    if len(roots) == 1 and root.start and root.end:
        latency: float | None = round((root.end - root.start).total_seconds() * 1000.0, 3)
    else:
        latency = round((last_end - first_start).total_seconds() * 1000.0, 3) if first_start and last_end else None

    return Trace(
        trace_id=trace_id,
        source_format=fmt,
        messages=[t.msg for t in conv],
        tools=list(tools.values()),
        start_time=first_start,
        end_time=last_end,
        latency_ms=latency,
        input_tokens=_sum(r.input_tokens for r in counted),
        output_tokens=_sum(r.output_tokens for r in counted),
        total_tokens=_sum(totals),
        cost_usd=_sum(r.cost for r in counted),
        model=model,
        model_version=last.fingerprint if last else None,
        provider=next((r.provider for _, r in read if r.provider), None),
        session_id=first("session.id", "langfuse.session.id", "gen_ai.conversation.id")
        or _meta_str(trace_meta, "sessionId", "session_id"),
        user_id=first("user.id", "enduser.id", "langfuse.user.id") or _meta_str(trace_meta, "userId", "user_id"),
        name=first("langfuse.trace.name", "ai.telemetry.functionId") or root.name,
        feature=_meta_str(trace_meta, "feature"),
        tags=list(dict.fromkeys(t for a in attrs for k in ("langfuse.trace.tags", "tag.tags") for t in _tags(a.get(k)))),
        prompt_template_id=_prompt_template(spans),
        retrieved_doc_ids=_doc_ids(spans),
        status="error" if errors else "ok",
        error=f"{errors[0][0].name or errors[0][0].span_id}: {errors[0][1]}"[:500] if errors else None,
        spans=[Span(id=s.span_id, parent_id=s.parent_id, name=s.name, kind=r.role or s.kind, start_time=s.start,
                    end_time=s.end, status="error" if r.error else "ok", model=r.response_model or r.request_model)
               for s, r in read],
        metadata=meta,
    )


def _meta_str(meta: Mapping[str, Any], *keys: str) -> str | None:
    value = _first(meta, *keys)
    return str(value) if value is not None else None


_GENAI_KINDS = frozenset({*_OI_KINDS.values(), *_OPERATIONS.values(), *_LANGFUSE_TYPES.values()})


def traces_from_spans(spans: Iterable[SpanRecord], fmt: str, path: Path) -> Iterator[Trace | Issue]:
    """Group spans by trace id (first-seen order) and assemble each group into one trace (an Issue where a
    span of it holds a value of a type the assembly does not expect)."""
    groups: dict[str, list[SpanRecord]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for span in spans:
        if (span.trace_id, span.span_id) in seen:  # the same span exported twice
            continue
        seen.add((span.trace_id, span.span_id))
        groups[span.trace_id].append(span)
    for trace_id, group in groups.items():
        yield from guarded(path, None, trace_id, _genai_trace, trace_id, group, fmt)


def _genai_trace(trace_id: str, group: list[SpanRecord], fmt: str) -> list[Trace]:
    """The group's trace if it is a GenAI one: an application's export also holds its HTTP and database traces."""
    trace = assemble(trace_id, group, fmt)
    if trace.messages or trace.model or trace.total_tokens is not None or any(s.kind in _GENAI_KINDS for s in trace.spans):
        return [trace]
    return []


# --------------------------------------------------------------------------- the format


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return text.startswith("{") and ('"resourceSpans"' in text or '"resourceLogs"' in text)


def _companion(path: Path, options: Mapping[str, str], want: str) -> Path | None:
    """The sibling OTLP file that holds the other signal: ``x.traces.json`` ↔ ``x.logs.json``."""
    if want == "logs" and options.get("logs"):
        explicit = Path(options["logs"])
        return explicit if explicit.is_file() else None
    have = "traces" if want == "logs" else "logs"
    name = path.name
    i = name.rfind(have)
    if i < 0:
        return None
    sibling = path.with_name(name[:i] + want + name[i + len(have):])
    return sibling if sibling.is_file() and sibling != path else None


def _read_otlp(path: Path) -> Iterator[SpanRecord | _LogEvent | Issue]:
    for item in iter_documents(path):
        if isinstance(item, Issue):
            yield item
            continue
        line, doc = item
        if not isinstance(doc, dict) or not ("resourceSpans" in doc or "resourceLogs" in doc):
            yield Issue(str(path), line, "not an OTLP/JSON document: expected 'resourceSpans' or 'resourceLogs'")
            continue
        yield from guarded(path, line, None, _otlp_records, doc, path)


def _otlp_records(doc: dict[str, Any], path: Path) -> Iterator[SpanRecord | _LogEvent | Issue]:
    yield from _otlp_spans(doc, path)
    yield from _otlp_logs(doc, path)


def _logs_span(trace_id: str, span_id: str | None, events: list[SpanEvent]) -> SpanRecord:
    """A stand-in span for log records whose span is not in the file: the call they describe."""
    times = [e.time for e in events if e.time]
    system = next((e.attrs.get("gen_ai.system") for e in events if e.attrs.get("gen_ai.system")), None)
    return SpanRecord(trace_id=trace_id, span_id=span_id or trace_id[:16], start=min(times) if times else None,
                      end=max(times) if times else None, attrs={"gen_ai.system": system} if system else {},
                      events=list(events))


@register("otel", sniff=_sniff, priority=30)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """OpenTelemetry OTLP/JSON traces (GenAI, OpenInference, Langfuse, Vercel attributes) and GenAI logs."""
    spans: list[SpanRecord] = []
    logs: list[_LogEvent] = []

    def read(source: Path) -> Iterator[Issue]:
        for item in _read_otlp(source):
            if isinstance(item, Issue):
                yield item
            elif isinstance(item, SpanRecord):
                spans.append(item)
            else:
                logs.append(item)

    yield from read(path)
    other = _companion(path, options, "logs") if spans else _companion(path, options, "traces") if logs else None
    if other is not None:
        yield from read(other)
    by_span = {(s.trace_id, s.span_id): s for s in spans}
    orphans: dict[tuple[str, str | None], list[SpanEvent]] = defaultdict(list)
    for log in logs:
        span = by_span.get((log.trace_id, log.span_id)) if log.span_id else None
        if span is not None:
            span.events.append(log.event)
        else:
            orphans[(log.trace_id, log.span_id)].append(log.event)
    for (trace_id, span_id), events in orphans.items():
        spans.append(_logs_span(trace_id, span_id, events))
    yield from traces_from_spans(spans, "otel", path)
