"""OpenTelemetry traces as OTLP/JSON whose spans carry GenAI attributes, in any convention in use.

Conventions are per attribute, not per file: the GenAI semantic conventions (``gen_ai.*``: the
latest ``parts`` messages, the older indexed and event forms), OpenInference (``llm.*``), the
Langfuse SDK (``langfuse.*``) and the Vercel AI SDK (``ai.*``) all travel in OTLP. This module reads
the OTLP documents into spans; :mod:`.span_reading` interprets each span and :mod:`.span_traces`
assembles the traces, for :mod:`.openinference` too.

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

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltray.core.records import Trace

from ._common import LineFinder, as_dict, guarded, head_text, iter_documents
from ._registry import Issue, register
from .span_traces import traces_from_spans
from .spans import SpanEvent, SpanRecord, any_value, attributes, hex_id, span_kind, span_time, status_code

# --------------------------------------------------------------------------- OTLP documents

OTLP_KINDS = {0: None, 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def otlp_spans(doc: dict[str, Any], finder: LineFinder) -> Iterator[SpanRecord | Issue]:
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
                yield _otlp_span(raw, resource, scope_name, finder)


def _otlp_span(raw: Any, resource: dict[str, Any], scope: str | None, finder: LineFinder) -> SpanRecord | Issue:
    if not isinstance(raw, dict):
        return Issue(str(finder.path), None, "span is not a JSON object")
    sid = raw.get("spanId") if isinstance(raw.get("spanId"), str) else None
    span_id, trace_id = hex_id(sid, 8), hex_id(raw.get("traceId"), 16)

    def issue(reason: str, record_id: str | None) -> Issue:
        tid = raw.get("traceId") if isinstance(raw.get("traceId"), str) else None
        where = finder.record_line("spanId", sid, anywhere=True) or finder.record_line("traceId", tid, anywhere=True)
        return Issue(str(finder.path), where, reason, record_id)

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
    events = [
        SpanEvent(str(e.get("name") or ""), span_time(e.get("timeUnixNano")), attributes(e.get("attributes")))
        for e in raw.get("events") or []
        if isinstance(e, dict)
    ]
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=hex_id(raw.get("parentSpanId"), 8),
        name=raw.get("name"),
        kind=span_kind(raw.get("kind"), OTLP_KINDS),
        start=times["startTimeUnixNano"],
        end=times["endTimeUnixNano"],
        status_code=status_code(status.get("code")),
        status_message=status.get("message") or None,
        attrs=attributes(raw.get("attributes")),
        events=events,
        resource=resource,
        scope=scope,
    )


@dataclass(slots=True)
class _LogEvent:
    trace_id: str
    span_id: str | None
    event: SpanEvent


def _otlp_logs(doc: dict[str, Any], finder: LineFinder) -> Iterator[_LogEvent | Issue]:
    for rl in doc.get("resourceLogs") or []:
        if not isinstance(rl, dict):
            continue
        for sl in rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs") or []:
            if not isinstance(sl, dict):
                continue
            for raw in sl.get("logRecords") or []:
                if not isinstance(raw, dict):
                    yield Issue(str(finder.path), None, "log record is not a JSON object")
                    continue
                attrs = attributes(raw.get("attributes"))
                name = raw.get("eventName") or attrs.get("event.name") or ""
                trace_id = hex_id(raw.get("traceId"), 16)
                if trace_id is None:
                    # a record outside any trace cannot join a conversation; GenAI events always have one
                    if str(name).startswith("gen_ai."):
                        where = finder.record_line(
                            "observedTimeUnixNano", raw.get("observedTimeUnixNano"), anywhere=True
                        )
                        yield Issue(str(finder.path), where, "log record has no valid traceId", str(name))
                    continue
                when = span_time(raw.get("timeUnixNano")) or span_time(raw.get("observedTimeUnixNano"))
                yield _LogEvent(
                    trace_id,
                    hex_id(raw.get("spanId"), 8),
                    SpanEvent(str(name), when, attrs, any_value(raw.get("body"))),
                )


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
    sibling = path.with_name(name[:i] + want + name[i + len(have) :])
    return sibling if sibling.is_file() and sibling != path else None


def _read_otlp(path: Path) -> Iterator[SpanRecord | _LogEvent | Issue]:
    finder = LineFinder(path)
    for item in iter_documents(path):
        if isinstance(item, Issue):
            yield item
            continue
        line, doc = item
        if not isinstance(doc, dict) or not ("resourceSpans" in doc or "resourceLogs" in doc):
            yield Issue(str(path), line, "not an OTLP/JSON document: expected 'resourceSpans' or 'resourceLogs'")
            continue
        yield from guarded(path, line, None, _otlp_records, doc, finder)


def _otlp_records(doc: dict[str, Any], finder: LineFinder) -> Iterator[SpanRecord | _LogEvent | Issue]:
    yield from otlp_spans(doc, finder)
    yield from _otlp_logs(doc, finder)


def _logs_span(trace_id: str, span_id: str | None, events: list[SpanEvent]) -> SpanRecord:
    """A stand-in span for log records whose span is not in the file: the call they describe."""
    times = [e.time for e in events if e.time]
    system = next((e.attrs.get("gen_ai.system") for e in events if e.attrs.get("gen_ai.system")), None)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id or trace_id[:16],
        start=min(times) if times else None,
        end=max(times) if times else None,
        attrs={"gen_ai.system": system} if system else {},
        events=list(events),
    )


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
