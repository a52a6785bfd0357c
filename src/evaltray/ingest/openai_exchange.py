"""Logged OpenAI chat-completions HTTP traffic: request/response exchange dumps and VCR cassettes.

An agent loop makes one call per step, each request repeating the conversation so far. Calls whose
request extends an earlier call's conversation (its messages plus the model's reply) are one
trace: the final conversation is the last request plus the last reply, usage is summed over the
calls, and each call is kept as a span. The trace id is the first response's id, so re-ingest
is idempotent. Streamed (SSE) responses are put back together from their deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from evaltray.core.messages import chat_messages, maybe_json
from evaltray.core.records import Message, Span, Trace
from evaltray.core.untrusted import ByteBudget, InputTooLarge, gunzip, load_yaml
from evaltray.core.util import sha256_hex

from . import _common
from ._common import LineFinder, as_float, as_int, content_id, guarded, head_text, parse_time, read_json
from ._registry import Issue, register
from .openai import trace_from_chat


@dataclass(slots=True)
class Call:
    """One chat-completions request and what came back."""

    line: int | None
    request: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    latency_ms: float | None = None


# --------------------------------------------------------------------------- grouping calls into traces


def _digest(prev: str, message: Message) -> str:
    return sha256_hex(prev + orjson.dumps(asdict(message), option=orjson.OPT_SORT_KEYS).decode("utf-8"))


def _reply(response: Mapping[str, Any]) -> Message | None:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        found = chat_messages([choices[0].get("message")])
        return found[0] if found else None
    return None


def group_calls(calls: Iterable[Call]) -> list[list[Call]]:
    """Calls grouped into conversations, in order of each conversation's first call.

    A call joins the conversation whose messages-so-far (request plus reply) are the longest
    prefix of its request; interleaved conversations therefore stay apart.
    """
    groups: list[list[Call]] = []
    open_ends: dict[str, int] = {}  # digest of a conversation so far → its group
    for call in calls:
        messages = chat_messages(call.request.get("messages"))
        prefixes = [""]
        for m in messages:
            prefixes.append(_digest(prefixes[-1], m))
        # prefixes[k] digests messages[:k]; the longest that ends a conversation wins (k = all: a retry
        # of a call that got no reply)
        target = next((open_ends[prefixes[k]] for k in range(len(messages), 0, -1) if prefixes[k] in open_ends), None)
        if target is None:
            target = len(groups)
            groups.append([call])
        else:
            groups[target].append(call)
        reply = _reply(call.response)
        end = _digest(prefixes[-1], reply) if reply is not None else prefixes[-1]
        open_ends[end] = target
    return groups


def name_tool_results(messages: list[Message]) -> None:
    """Give each tool result without a name the name of the call it answers (matched by call id)."""
    names: dict[str, str] = {}
    for m in messages:
        names.update({c.id: c.name for c in m.tool_calls if c.id})
        if m.role == "tool" and m.name is None and m.tool_call_id in names:
            m.name = names[m.tool_call_id]


def _error_text(call: Call) -> str | None:
    err = call.response.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)[:500]
    if err:
        return str(err)[:500]
    if call.status is not None and call.status >= 400:
        return f"HTTP {call.status}"
    return None


def trace_from_calls(calls: list[Call], fmt: str, seen: dict[str, int]) -> Trace:
    """One trace from the calls of one conversation (see :func:`group_calls`)."""
    first, last = calls[0], calls[-1]
    usage: dict[str, int] = {}
    for c in calls:
        u = c.response.get("usage")
        if isinstance(u, dict):
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                if as_int(u.get(key)) is not None:
                    usage[key] = usage.get(key, 0) + (as_int(u.get(key)) or 0)
    tools = next((c.request["tools"] for c in calls if c.request.get("tools")), None)
    errors = [_error_text(c) for c in calls]
    first_id = first.response.get("id")
    record = {
        **last.request,
        "id": first_id,
        "choices": last.response.get("choices"),
        "usage": usage,
        "model": last.response.get("model") or last.request.get("model"),
        "system_fingerprint": last.response.get("system_fingerprint"),
        "created": first.response.get("created"),
        "tools": tools,
        "error": errors[-1],  # a failed call that a retry recovered leaves the trace ok
    }
    fallback = content_id(first.request, seen, fmt)
    trace = trace_from_chat(record, fallback, fmt)
    name_tool_results(trace.messages)
    trace.provider = "openai"
    latencies = [c.latency_ms for c in calls]
    if all(v is not None for v in latencies):
        trace.latency_ms = sum(v for v in latencies if v is not None)
    trace.spans = [
        Span(
            id=str(c.response.get("id") or f"{trace.trace_id}:{i}"),
            parent_id=None,
            name=f"chat {c.request.get('model')}",
            kind="llm",
            start_time=parse_time(c.response.get("created")),
            status="error" if _error_text(c) else "ok",
            model=c.response.get("model") or c.request.get("model"),
        )
        for i, c in enumerate(calls)
    ]
    finish = [((c.response.get("choices") or [{}])[0] or {}).get("finish_reason") for c in calls]
    params: dict[str, Any] = {}
    for c in calls:  # sampling parameters of every call, later calls winning
        params.update({k: v for k, v in c.request.items() if k not in ("messages", "tools", "metadata", "user")})
    trace.metadata = {**trace.metadata, "calls": len(calls), "finish_reasons": finish, "request": params}
    if any(errors[:-1]):
        trace.metadata["call_errors"] = [e for e in errors[:-1] if e]
    return trace


def _traces(calls: list[Call], fmt: str, path: Path) -> Iterator[Trace | Issue]:
    seen: dict[str, int] = {}
    for group in group_calls(calls):
        first = group[0].response
        rid = first.get("id") if isinstance(first, dict) else None
        yield from guarded(path, group[0].line, rid, trace_from_calls, group, fmt, seen)


# --------------------------------------------------------------------------- streamed responses


def assemble_stream(text: str) -> dict[str, Any]:
    """A ``chat.completion`` body rebuilt from server-sent ``chat.completion.chunk`` events."""
    body: dict[str, Any] = {"object": "chat.completion"}
    parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for key in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(key) is not None:
                body.setdefault(key, chunk[key])
        if isinstance(chunk.get("usage"), dict):
            body["usage"] = chunk["usage"]  # only the last chunk carries it (stream_options.include_usage)
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                parts.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    as_int(tc.get("index")) or 0,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(parts) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    body["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
    return body


def _body(raw: Any, budget: ByteBudget | None = None) -> Any:
    """A request or response body as JSON data: decodes gzip (within ``budget``, what the file may
    decompress to in all), JSON text and SSE streams."""
    if isinstance(raw, (bytes, bytearray)):
        data = bytes(raw)
        if data[:2] == b"\x1f\x8b":
            data = gunzip(data, budget or ByteBudget(_common.MAX_DECOMPRESSED_BYTES))
        raw = data.decode("utf-8")
    if isinstance(raw, str):
        text = raw.lstrip()
        if text.startswith("data:"):
            return assemble_stream(text)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    return raw


# --------------------------------------------------------------------------- exchange JSON


def _sniff_exchange(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return text.startswith("[") and '"request_body"' in text and ('"response_body"' in text or len(head) >= 1 << 16)


@register("openai-exchange", sniff=_sniff_exchange, priority=30)
def parse_exchange(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """A JSON array of logged chat-completions calls ``{request_body, response_body}``, grouped into conversations."""
    doc = read_json(path)
    if isinstance(doc, Issue):
        yield doc
        return
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        yield Issue(str(path), 1, "expected a JSON array of {request_body, response_body} objects")
        return
    calls: list[Call] = []
    finder = LineFinder(path)
    for i, item in enumerate(doc, 1):
        request = maybe_json(item.get("request_body")) if isinstance(item, dict) else None
        response = maybe_json(item.get("response_body")) if isinstance(item, dict) else None
        response = _body(response) if isinstance(response, str) else response
        rid = str(response["id"]) if isinstance(response, dict) and response.get("id") else None
        line = finder.line_of(f'"{rid}"') if rid else None
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            yield Issue(str(path), line, f"exchange #{i}: request_body is not a chat-completions request", rid)
            continue
        status = item.get("status")
        code = as_int(status.get("code") if isinstance(status, dict) else status)
        calls.append(
            Call(
                line,
                request,
                response if isinstance(response, dict) else {},
                code,
                as_float(item.get("latency_ms") or item.get("duration_ms")),
            )
        )
    yield from _traces(calls, "openai-exchange", path)


# --------------------------------------------------------------------------- VCR cassettes


def _sniff_vcr(path: Path, head: bytes) -> bool:
    if path.suffix.lower() not in (".yaml", ".yml"):
        return False
    text = head_text(head)
    return text.startswith("interactions:") and ("chat/completions" in text or '"messages"' in text)


def _header(headers: Any, name: str) -> Any:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return value[0] if isinstance(value, list) and value else value
    return None


def _load_yaml(path: Path) -> tuple[Any, list[int]] | Issue:
    """The cassette and the line each interaction starts on; an Issue where it is not YAML or its aliases
    expand past :data:`~evaltray.ingest._common.MAX_DECOMPRESSED_BYTES`."""
    text = path.read_text(encoding="utf-8")
    try:
        node, doc = load_yaml(text, _common.MAX_YAML_ALIASES, _common.MAX_DECOMPRESSED_BYTES)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return Issue(str(path), mark.line + 1 if mark else None, f"not valid YAML ({getattr(exc, 'problem', exc)})")
    except InputTooLarge as exc:
        return Issue(str(path), None, str(exc))
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "interactions" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return doc, lines


@register("vcr-openai", sniff=_sniff_vcr, priority=30)
def parse_vcr(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """A VCR cassette (YAML) of OpenAI chat-completions calls, streamed or not, grouped into conversations."""
    loaded = _load_yaml(path)
    if isinstance(loaded, Issue):
        yield loaded
        return
    doc, lines = loaded
    interactions = doc.get("interactions") if isinstance(doc, dict) else None
    if not isinstance(interactions, list):
        yield Issue(str(path), 1, "expected a VCR cassette with an 'interactions' list")
        return
    calls: list[Call] = []
    budget = ByteBudget(_common.MAX_DECOMPRESSED_BYTES)
    for i, item in enumerate(interactions):
        line = lines[i] if i < len(lines) else None
        req = item.get("request") if isinstance(item, dict) else None
        resp = item.get("response") if isinstance(item, dict) else None
        if not isinstance(req, dict):
            yield Issue(str(path), line, "interaction has no request")
            continue
        uri = str(req.get("uri") or "")
        try:
            request = _body(req.get("body"), budget)
            body = (resp or {}).get("body") if isinstance(resp, dict) else None
            response = _body(body.get("string") if isinstance(body, dict) else body, budget)
        except InputTooLarge as exc:  # the whole file is refused: a bomb is not traffic
            yield Issue(str(path), line, str(exc))
            return
        except (OSError, EOFError, UnicodeDecodeError):  # a corrupt gzip body
            yield Issue(str(path), line, "unreadable request or response body")
            continue
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            if uri and "chat/completions" not in uri:
                continue  # another endpoint the cassette recorded (embeddings, files, …)
            reason = "not valid JSON" if request is None and req.get("body") else "not a chat-completions request"
            yield Issue(str(path), line, f"request body is {reason}")
            continue
        status = (resp or {}).get("status") if isinstance(resp, dict) else None
        code = as_int(status.get("code") if isinstance(status, dict) else status)
        latency = as_float(_header((resp or {}).get("headers"), "openai-processing-ms"))
        calls.append(Call(line, request, response if isinstance(response, dict) else {}, code, latency))
    yield from _traces(calls, "vcr-openai", path)
