"""OpenTelemetry spans as plain JSON objects: OpenInference and Vercel AI SDK captures, Python's
console exporter, or one span's flat attribute map.

Shapes read:

- a JSON array of spans as the JS SDK holds them: ``name``, ``spanContext{traceId, spanId}``,
  ``parentSpanId`` or ``parentSpanContext``, flat dotted ``attributes``, ``status{code}``,
  ``startTime``/``endTime`` as ``[s, ns]``, ``events``;
- an object whose values are such arrays (spans grouped by operation name);
- Python's ``span.to_json()`` objects (``context{trace_id: "0x…"}``, ISO times) as an array, JSON
  Lines, or the console exporter's concatenated output;
- the flat attribute map of one span (``llm.*``, ``gen_ai.*``, ``openinference.*`` keys). It has no
  trace id, so its id is a hash of its content.

The spans' attributes are read as :mod:`.otel`'s are (:mod:`.span_reading`, :mod:`.span_traces`), so an
OpenInference span (``llm.input_messages.N.message.*``) and a GenAI span (``gen_ai.input.messages`` parts)
of the same call give the same messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.records import Trace

from ._common import LineFinder, as_dict, content_id, head_text, iter_documents
from ._registry import Issue, register
from .span_traces import traces_from_spans
from .spans import SpanEvent, SpanRecord, attributes, hex_id, span_kind, span_time, status_code

NOT_SPANS = (
    "not a span file: expected a JSON array of spans (with 'spanContext' and 'attributes'), an object of "
    "such arrays keyed by operation, or a flat attribute map with 'llm.', 'gen_ai.' or 'openinference.' keys"
)
_ATTR_PREFIXES = ("llm.", "gen_ai.", "openinference.")
_JS_KINDS = {0: "internal", 1: "server", 2: "client", 3: "producer", 4: "consumer"}  # JS SpanKind, not OTLP's
_PY_CONTEXT = re.compile(r'"context"\s*:\s*\{\s*"trace_id"\s*:\s*"0x[0-9a-fA-F]{32}"')


def _is_span(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    ctx = obj.get("spanContext") or obj.get("context")
    return isinstance(ctx, dict) and ("spanId" in ctx or "span_id" in ctx)


def is_attribute_map(obj: Any) -> bool:
    """True for one span's flat attributes: GenAI/OpenInference keys, no nested objects."""
    return (
        isinstance(obj, dict)
        and any(isinstance(k, str) and k.startswith(_ATTR_PREFIXES) for k in obj)
        and not any(isinstance(v, dict) for v in obj.values())
    )


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    if text.startswith("["):
        return '"spanContext"' in text or bool(_PY_CONTEXT.search(text))
    if not text.startswith("{") or '"resourceSpans"' in text or '"resourceLogs"' in text:
        return False
    if '"spanContext"' in text or _PY_CONTEXT.search(text):
        return True
    try:
        return is_attribute_map(orjson.loads(text))
    except orjson.JSONDecodeError:  # larger than the head: judge by the first key
        return bool(re.match(r'\{\s*"(llm|gen_ai|openinference)\.', text))


def _span(obj: dict[str, Any], finder: LineFinder) -> SpanRecord | Issue:
    """A span from the JS ``ReadableSpan`` or Python ``to_json()`` shape."""
    ctx = obj.get("spanContext") or obj.get("context") or {}
    raw_sid, raw_tid = ctx.get("spanId", ctx.get("span_id")), ctx.get("traceId", ctx.get("trace_id"))
    span_id, trace_id = hex_id(raw_sid, 8), hex_id(raw_tid, 16)

    def issue(reason: str, record_id: Any) -> Issue:
        sid = raw_sid if isinstance(raw_sid, str) else None
        tid = raw_tid if isinstance(raw_tid, str) else None
        where = (
            finder.record_line("spanId", sid, anywhere=True)
            or finder.record_line("span_id", sid, anywhere=True)
            or finder.record_line("traceId", tid, anywhere=True)
            or finder.record_line("trace_id", tid, anywhere=True)
        )
        return Issue(str(finder.path), where, reason, str(record_id) if record_id else None)

    if span_id is None:
        return issue("span has no valid spanId", raw_tid or obj.get("name"))
    if trace_id is None:
        return issue("span has no valid traceId", span_id)
    attrs = obj.get("attributes") or {}
    if not isinstance(attrs, dict | list):
        return issue("span attributes are not an object", span_id)
    times = {}
    for keys in (("startTime", "start_time"), ("endTime", "end_time")):
        raw = next((obj[k] for k in keys if obj.get(k) is not None), None)
        times[keys[0]] = span_time(raw)
        if times[keys[0]] is None and raw not in (None, "", 0, "0"):
            return issue(f"span has an unreadable {keys[0]}", span_id)
    parent, status, resource = (as_dict(obj.get(k)) for k in ("parentSpanContext", "status", "resource"))
    scope = as_dict(obj.get("instrumentationScope") or obj.get("instrumentationLibrary"))
    events = [
        SpanEvent(
            str(e.get("name") or ""), span_time(e.get("time", e.get("timestamp"))), attributes(e.get("attributes"))
        )
        for e in obj.get("events") or []
        if isinstance(e, dict)
    ]
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=hex_id(obj.get("parentSpanId") or parent.get("spanId") or obj.get("parent_id"), 8),
        name=obj.get("name"),
        kind=span_kind(obj.get("kind"), _JS_KINDS),
        start=times["startTime"],
        end=times["endTime"],
        status_code=status_code(status.get("code", status.get("status_code"))),
        status_message=status.get("message") or status.get("description") or None,
        attrs=attributes(attrs),
        events=events,
        resource=attributes(resource.get("attributes")),
        scope=" ".join(str(scope[k]) for k in ("name", "version") if scope.get(k)) or None,
    )


def _flat_span(attrs: dict[str, Any], seen: dict[str, int]) -> SpanRecord:
    """A span from a bare attribute map; its id comes from its content, so re-ingest is idempotent."""
    tid = content_id(attrs, seen, "oi")
    operation, model = attrs.get("gen_ai.operation.name"), attrs.get("gen_ai.request.model")
    name = " ".join(str(x) for x in (operation, model) if x) or None  # the GenAI span name convention
    return SpanRecord(trace_id=tid, span_id=tid, name=name, attrs=attrs)


def _from_list(items: list[Any], finder: LineFinder, line: int) -> Iterator[SpanRecord | Issue]:
    for item in items:
        if _is_span(item):
            yield _span(item, finder)
        else:
            name = item.get("name") if isinstance(item, dict) else None
            yield Issue(str(finder.path), line, "not a span: no 'spanContext' with a 'spanId'", name)


def _spans_in(doc: Any, finder: LineFinder, line: int, seen: dict[str, int]) -> Iterator[SpanRecord | Issue]:
    if isinstance(doc, list):
        if any(_is_span(x) for x in doc):
            yield from _from_list(doc, finder, line)
        elif doc and all(is_attribute_map(x) for x in doc):
            yield from (_flat_span(x, seen) for x in doc)
        else:
            yield Issue(str(finder.path), line, NOT_SPANS)
    elif _is_span(doc):
        yield _span(doc, finder)
    elif (
        isinstance(doc, dict)
        and doc
        and all(isinstance(v, list) for v in doc.values())
        and any(_is_span(x) for v in doc.values() for x in v)
    ):
        for group in doc.values():
            yield from _from_list(group, finder, line)
    elif is_attribute_map(doc):
        yield _flat_span(doc, seen)
    else:
        yield Issue(str(finder.path), line, NOT_SPANS)


@register("openinference", sniff=_sniff, priority=31)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """OpenTelemetry spans as JSON objects (OpenInference, Vercel AI SDK, Python exporter) or a flat attribute map."""
    spans: list[SpanRecord] = []
    seen: dict[str, int] = {}
    finder = LineFinder(path)
    for item in iter_documents(path):
        if isinstance(item, Issue):
            yield item
            continue
        line, doc = item
        for span in _spans_in(doc, finder, line, seen):
            if isinstance(span, Issue):
                yield span
            else:
                spans.append(span)
    yield from traces_from_spans(spans, "openinference", path)
