"""Spans become traces: all spans with one trace id make one :class:`Trace`, its conversation the chat history
the model calls saw, merged so that a call repeating earlier messages adds only what is new, plus the final
answer; tool spans add the results that history lacks; usage counts once however the spans nest. Groups
with no GenAI span at all (the HTTP and database traces of the same export) are left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.messages import maybe_json
from evaltray.core.records import Message, Span, Trace
from evaltray.core.util import sha256_hex

from ._common import first_value, guarded, sum_present
from ._registry import Issue
from .span_messages import tool_name
from .span_reading import GENAI_KINDS, SpanReading, read_span
from .spans import SpanRecord


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
                    meta.setdefault(key[len(prefix) :], maybe_json(value))
        oi = maybe_json(span.attrs.get("metadata"))
        if isinstance(oi, dict):
            for key, value in oi.items():
                meta.setdefault(str(key), value)
    return meta


def _prompt_template(spans: list[SpanRecord]) -> str | None:
    for span in spans:
        a = span.attrs
        name = first_value(a, "langfuse.observation.prompt.name", "traceloop.prompt.key")
        if name:
            version = first_value(a, "langfuse.observation.prompt.version", "traceloop.prompt.version")
            return f"{name}@{version}" if version is not None else str(name)
        template = a.get("llm.prompt_template.template")
        if template:
            # OpenInference records the template's text, not an id: its hash groups traces by template
            version = a.get("llm.prompt_template.version")
            tid = f"tmpl-{sha256_hex(str(template))[:12]}"
            return f"{tid}@{version}" if version else tid
    return None


def _doc_ids(read: Readings) -> list[str]:
    """Every retrieved or reranked document's id, in span order, each once."""
    return list(dict.fromkeys(i for _, r in read for i in r.doc_ids))


def assemble(trace_id: str, spans: list[SpanRecord], fmt: str) -> Trace:
    """One trace from all spans sharing ``trace_id``: conversation, tools, totals, tree summary."""
    order = {id(s): i for i, s in enumerate(spans)}
    spans = sorted(spans, key=lambda s: (_ts(s.start, float("inf")), order[id(s)]))
    read = [(s, read_span(s)) for s in spans]
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None or s.parent_id not in by_id]
    root = roots[0] if roots else spans[0]
    talk = _talk(read)
    counted = _counted(read, by_id)
    with_model = [r for _, r in read if r.request_model or r.response_model]
    models = [r for r in with_model if r.role in ("llm", "embedding")] or with_model
    last = models[-1] if models else None
    # as the other parsers do: the model that answered (the pinned snapshot), its fingerprint as version
    model = (last.response_model or last.request_model) if last else None
    tools: dict[str, dict[str, Any]] = {}
    for _, r in read:
        for tool in r.tools:
            tools.setdefault(tool_name(tool), tool)
    errors = [(s, r.error) for s, r in read if r.error]
    attrs = [s.attrs for s in spans]

    def first(*keys: str) -> Any:
        return next((v for a in attrs if (v := first_value(a, *keys)) is not None), None)

    trace_meta = _trace_metadata(spans)
    first_start, last_end, latency = _timing(spans, roots, root)
    env = (
        first("langfuse.environment")
        or root.resource.get("deployment.environment.name")
        or root.resource.get("deployment.environment")
        or root.resource.get("langfuse.environment")
    )
    return Trace(
        trace_id=trace_id,
        source_format=fmt,
        messages=_conversation(read, talk),
        tools=list(tools.values()),
        start_time=first_start,
        end_time=last_end,
        latency_ms=latency,
        input_tokens=sum_present(r.input_tokens for r in counted),
        output_tokens=sum_present(r.output_tokens for r in counted),
        total_tokens=sum_present(
            r.total_tokens if r.total_tokens is not None else sum_present((r.input_tokens, r.output_tokens))
            for r in counted
        ),
        cost_usd=sum_present(r.cost for r in counted),
        model=model,
        model_version=last.fingerprint if last else None,
        provider=next((r.provider for _, r in read if r.provider), None),
        session_id=first("session.id", "langfuse.session.id", "gen_ai.conversation.id")
        or _meta_str(trace_meta, "sessionId", "session_id"),
        user_id=first("user.id", "enduser.id", "langfuse.user.id") or _meta_str(trace_meta, "userId", "user_id"),
        name=first("langfuse.trace.name", "ai.telemetry.functionId") or root.name,
        feature=_meta_str(trace_meta, "feature"),
        tags=list(
            dict.fromkeys(t for a in attrs for k in ("langfuse.trace.tags", "tag.tags") for t in _tags(a.get(k)))
        ),
        prompt_template_id=_prompt_template(spans),
        retrieved_doc_ids=_doc_ids(read),
        status="error" if errors else "ok",
        error=f"{errors[0][0].name or errors[0][0].span_id}: {errors[0][1]}"[:500] if errors else None,
        spans=[
            Span(
                id=s.span_id,
                parent_id=s.parent_id,
                name=s.name,
                kind=r.role or s.kind,
                start_time=s.start,
                end_time=s.end,
                status="error" if r.error else "ok",
                model=r.response_model or r.request_model,
            )
            for s, r in read
        ],
        metadata={
            **_source_metadata(spans, root, env, trace_meta),
            **_call_metadata(read, models, model, talk[-1][1] if talk else None),
        },
    )


Readings = list[tuple[SpanRecord, SpanReading]]


def _talk(read: Readings) -> Readings:
    """The spans whose messages make the conversation: the model calls', else (no model call recorded its
    messages) the workflow spans' input and output."""
    talk = [(s, r) for s, r in read if r.role == "llm" and (r.inputs or r.outputs)]
    return talk or [(s, r) for s, r in read if r.role != "tool" and (r.inputs or r.outputs)]


def _conversation(read: Readings, talk: Readings) -> list[Message]:
    conv: list[_Turn] = []
    for s, r in talk:
        began, ended = _ts(s.start, 0.0), _ts(s.end, _ts(s.start, 0.0))
        _merge(conv, [(m, began) for m in r.inputs] + [(m, ended) for m in r.outputs])
    for s, r in read:
        if r.tool_result is not None:
            _add_tool_result(conv, r.tool_result, _ts(s.end, _ts(s.start, float("inf"))))
    _name_tool_results(conv)
    return [t.msg for t in conv]


def _counted(read: Readings, by_id: dict[str, SpanRecord]) -> list[SpanReading]:
    """The readings whose usage counts: usage counts once, from the spans no descendant of which reports
    usage (Vercel and agent frameworks repeat their children's totals on the parent span)."""
    covered: set[str] = set()
    for s, r in read:
        parent, hops = (s.parent_id if r.has_usage else None), 0
        while parent in by_id and parent not in covered and hops < len(read):
            covered.add(parent)
            parent, hops = by_id[parent].parent_id, hops + 1
    return [r for s, r in read if r.has_usage and s.span_id not in covered]


def _timing(
    spans: list[SpanRecord], roots: list[SpanRecord], root: SpanRecord
) -> tuple[datetime | None, datetime | None, float | None]:
    """First start, last end, and the latency: the root's own where there is one root, else first to last."""
    starts = [s.start for s in spans if s.start]
    ends = [s.end for s in spans if s.end]
    first_start, last_end = (min(starts) if starts else None), (max(ends) if ends else None)
    if len(roots) == 1 and root.start and root.end:
        latency: float | None = round((root.end - root.start).total_seconds() * 1000.0, 3)
    else:
        latency = round((last_end - first_start).total_seconds() * 1000.0, 3) if first_start and last_end else None
    return first_start, last_end, latency


def _source_metadata(spans: list[SpanRecord], root: SpanRecord, env: Any, trace_meta: dict[str, Any]) -> dict[str, Any]:
    """Where the trace came from: service, instrumentation, environment, and the metadata the user set."""
    meta: dict[str, Any] = {}
    service = root.resource.get("service.name")
    if service and not str(service).startswith("unknown_service"):  # the SDK's placeholder says nothing
        meta["service"] = service
    scopes = sorted({s.scope for s in spans if s.scope})
    if scopes:
        meta["instrumentation"] = scopes
    if env:
        meta["environment"] = env
    if trace_meta:
        meta["trace_metadata"] = trace_meta
    return meta


def _call_metadata(
    read: Readings, models: list[SpanReading], model: str | None, final: SpanReading | None
) -> dict[str, Any]:
    """What the model calls add: how many, their response ids, the models, and the last call's request."""
    meta: dict[str, Any] = {}
    llm_readings = [r for _, r in read if r.role == "llm"]
    if llm_readings:
        meta["llm_calls"] = len(llm_readings)
    response_ids = [r.response_id for r in llm_readings if r.response_id]
    if response_ids:
        meta["response_ids"] = response_ids
    distinct = list(dict.fromkeys(m for r in models for m in [r.response_model or r.request_model] if m))
    if len(distinct) > 1:
        meta["models"] = distinct
    last = models[-1] if models else None
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
    return meta


def _meta_str(meta: Mapping[str, Any], *keys: str) -> str | None:
    value = first_value(meta, *keys)
    return str(value) if value is not None else None


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
    if (
        trace.messages
        or trace.model
        or trace.total_tokens is not None
        or any(s.kind in GENAI_KINDS for s in trace.spans)
    ):
        return [trace]
    return []
