"""OTLP/HTTP trace exports made durable, then stored: the request decoder, the journal and the flusher.

A request body (``ExportTraceServiceRequest`` as protobuf or as OTLP's JSON mapping, gzip or not) is
decoded into :class:`SpanRecord` s; the spans that can be read are appended to the journal (with an fsync)
*before* the exporter is answered, so an acknowledged span survives a kill -9. A background flusher works
in rounds: it reads what was journaled since the last round, assembles the complete traces with
:func:`.span_traces.traces_from_spans` (the path the ``otel`` file format takes) and hands their rows to a
pool of scrub workers (:mod:`._batch_scrub`: the rows ``evaltray ingest`` would write), then writes the
previous round's scrubbed rows as one Parquet part; only then does the journal's checkpoint move past
them. So one core reads and assembles while the others scrub. On start, whatever the checkpoint has not
passed is replayed; traces already stored are skipped by id, so a replay adds nothing twice.

A trace's spans may come in several exports (a span is exported when it ends, the root last). The flusher
holds a trace until its root span has come, or until ``settle`` seconds passed since its last span; a span
that comes after its trace was stored is counted in ``skipped_traces`` (the store keeps a trace whole).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from evaltray.core.errors import IngestError
from evaltray.core.records import Trace
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.core.util import atomic_write
from evaltray.core.workers import process_pool, worker_count

from ._batch_scrub import Scrubbed, gather, submit
from ._common import LineFinder
from ._driver import Scrub, batch_table
from ._registry import Issue
from .otel import OTLP_KINDS, otlp_spans
from .span_traces import traces_from_spans
from .spans import EPOCH, SpanEvent, SpanRecord, span_time

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: A decompressed body larger than this is refused (413): the exporter splits its batch and retries.
MAX_BODY = 64 << 20

# --------------------------------------------------------------------------- decoding


class BadRequest(IngestError):
    """A request body that is not an OTLP trace export (400: the exporter must not retry it)."""


@dataclass(slots=True)
class Decoded:
    """A request's readable spans, and how many were rejected and why (the first reason)."""

    spans: list[SpanRecord]
    accepted: int = 0
    rejected: int = 0
    reason: str = ""


def inflate(body: bytes, encoding: str | None) -> bytes:
    """The body without its ``Content-Encoding`` (gzip or none), at most :data:`MAX_BODY` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send gzip or none")
    try:
        out = zlib.decompressobj(wbits=31)
        data = out.decompress(body, MAX_BODY + 1)
    except zlib.error as exc:
        raise BadRequest(f"the gzip body cannot be decompressed ({exc})") from exc
    if len(data) > MAX_BODY:
        raise BadRequest(f"the decompressed body is over {MAX_BODY >> 20} MiB; export smaller batches")
    return data


def media_type(content_type: str | None) -> str:
    """``protobuf`` or ``json`` from a Content-Type header; :class:`BadRequest` for anything else."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == PROTOBUF:
        return "protobuf"
    if kind == JSON:
        return "json"
    raise BadRequest(f"Content-Type {kind or 'none'!r} is not OTLP; send {PROTOBUF} or {JSON}")


def check(body: bytes, kind: str) -> Decoded:
    """What :func:`decode` would accept and reject, without building the spans (``spans`` stays empty and
    ``accepted`` counts them): the request side's check of a protobuf body, decoded in full by the flusher."""
    if kind == "json":
        out = decode(body, kind)
        out.accepted, out.spans = len(out.spans), []
        return out
    out = Decoded([])
    for rs in _protobuf_request(body).resource_spans:
        for ss in rs.scope_spans:
            for raw in ss.spans:
                if _pb_id(raw.span_id, 8) is None or _pb_id(raw.trace_id, 16) is None:
                    out.rejected += 1
                    out.reason = out.reason or "span has no valid spanId or traceId"
                else:
                    out.accepted += 1
    return out


def decode(body: bytes, kind: str) -> Decoded:
    """The spans of one ``ExportTraceServiceRequest`` body (``kind`` from :func:`media_type`)."""
    items = _protobuf_spans(body) if kind == "protobuf" else _json_spans(body)
    out = Decoded([])
    for item in items:
        if isinstance(item, Issue):
            out.rejected += 1
            out.reason = out.reason or item.reason + (f" (span {item.record_id})" if item.record_id else "")
        else:
            out.spans.append(item)
    return out


def _json_spans(body: bytes) -> list[SpanRecord | Issue]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise BadRequest("the body is not an ExportTraceServiceRequest: expected a JSON object")
    finder = LineFinder(Path("request"), body)
    try:
        return list(otlp_spans(doc, finder))
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadRequest(f"the body is not an ExportTraceServiceRequest ({type(exc).__name__})") from exc


def _protobuf_request(body: bytes) -> Any:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"the body is not a protobuf ExportTraceServiceRequest ({exc})") from exc
    return req


def protobuf_as_json(body: bytes) -> bytes:
    """A protobuf ``ExportTraceServiceRequest`` as one line of OTLP/JSON with hex ids, the form the collector's
    file exporter writes and ``evaltray ingest --format otel`` reads."""
    import base64

    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(_protobuf_request(body))
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(doc) + b"\n"


def _protobuf_spans(body: bytes) -> list[SpanRecord | Issue]:
    out: list[SpanRecord | Issue] = []
    for rs in _protobuf_request(body).resource_spans:
        resource = _pb_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = " ".join(v for v in (ss.scope.name, ss.scope.version) if v) or None
            out += [_pb_span(raw, resource, scope) for raw in ss.spans]
    return out


def _pb_id(raw: bytes, nbytes: int) -> str | None:
    return raw.hex() if len(raw) == nbytes and any(raw) else None


def _pb_span(raw: Any, resource: dict[str, Any], scope: str | None) -> SpanRecord | Issue:
    span_id, trace_id = _pb_id(raw.span_id, 8), _pb_id(raw.trace_id, 16)
    if span_id is None:
        return Issue("request", None, "span has no valid spanId", trace_id or raw.name or None)
    if trace_id is None:
        return Issue("request", None, "span has no valid traceId", span_id)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_pb_id(raw.parent_span_id, 8),
        name=raw.name or None,
        kind=OTLP_KINDS.get(raw.kind),
        start=span_time(raw.start_time_unix_nano),
        end=span_time(raw.end_time_unix_nano),
        status_code=raw.status.code,
        status_message=raw.status.message or None,
        attrs=_pb_attributes(raw.attributes),
        events=[SpanEvent(e.name, span_time(e.time_unix_nano), _pb_attributes(e.attributes)) for e in raw.events],
        resource=resource,
        scope=scope,
    )


def _pb_attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def _pb_value(value: Any) -> Any:
    """The plain value of a protobuf ``AnyValue``, as :func:`.spans.any_value` reads the JSON one."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if which == "bytes_value":
        import base64

        return base64.b64encode(value.bytes_value).decode("ascii")  # as OTLP/JSON carries bytes
    return getattr(value, which)


def response_body(kind: str, rejected: int, reason: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding; ``partial_success`` when spans were rejected."""
    if kind == "json":
        if not rejected:
            return b"{}"
        return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": reason}})
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = reason
    return bytes(resp.SerializeToString())


# --------------------------------------------------------------------------- the journal

_HEAD = struct.Struct("<II")  # payload length, crc32 of the payload
#: A journal segment is closed and a new one begun past this size; a segment the checkpoint passed is deleted.
SEGMENT_BYTES = 64 << 20
_KINDS = {"protobuf": b"p", "json": b"j"}
#: The journal's folder in the workspace.
JOURNAL_DIR = "otlp"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the journal: segment number and byte offset in it."""

    segment: int
    offset: int


class Journal:
    """Append-only segments ``otlp/journal-NNNNNNNN.bin`` of records ``len, crc32, kind byte, body``, and the
    checkpoint ``otlp/checkpoint.json``: everything before it is in the trace store.

    :meth:`append` returns once the record is fsynced. Opening truncates a torn last record (a crash
    mid-write, never acknowledged)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.checkpoint = self._read_checkpoint()
        segments = self.segments()
        last = segments[-1] if segments else self.checkpoint.segment
        end = self._valid_end(last)
        with open(self._path(last), "ab") as fh:
            fh.truncate(end)
        self._fh = self._open(last)
        self.end = Position(last, end)

    def _open(self, segment: int) -> Any:
        """A segment opened for appends (held until close), its name made durable in the folder: an fsynced
        record in a file whose directory entry a power cut loses would be lost with it."""
        fh = open(self._path(segment), "ab")  # noqa: SIM115
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return fh

    @staticmethod
    def exists(folder: Path) -> bool:
        """Whether ``folder`` holds a journal (a server that never received a span need not start a receiver)."""
        return any(folder.glob("journal-*.bin"))

    def _path(self, segment: int) -> Path:
        return self.folder / f"journal-{segment:08d}.bin"

    def segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("journal-*.bin"))

    def _read_checkpoint(self) -> Position:
        path = self.folder / "checkpoint.json"
        if not path.is_file():
            return Position(1, 0)
        doc = orjson.loads(path.read_bytes())
        return Position(int(doc["segment"]), int(doc["offset"]))

    def _valid_end(self, segment: int) -> int:
        path = self._path(segment)
        if not path.is_file():
            return 0
        end = 0
        for _, nxt, _, _ in self._records(segment, 0):
            end = nxt.offset
        return end

    def append(self, kind: str, body: bytes) -> Position:
        """Append one request body and fsync it; the position after it."""
        payload = _KINDS[kind] + body
        head = _HEAD.pack(len(payload), zlib.crc32(payload))
        with self._lock:
            self._fh.write(head + payload)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.end = Position(self.end.segment, self.end.offset + len(head) + len(payload))
            if self.end.offset >= SEGMENT_BYTES:
                self._fh.close()
                self.end = Position(self.end.segment + 1, 0)
                self._fh = self._open(self.end.segment)
            return self.end

    def backlog(self) -> int:
        """Bytes journaled but not yet in the trace store (approximate across segments)."""
        end, done = self.end, self.checkpoint
        if end.segment == done.segment:
            return end.offset - done.offset
        return (end.segment - done.segment) * SEGMENT_BYTES + end.offset - done.offset

    def read(self, start: Position, end: Position) -> Iterator[tuple[Position, Position, str, bytes]]:
        """The records from ``start`` up to ``end``: (position, position after, kind, body)."""
        for segment in range(start.segment, end.segment + 1):
            if not self._path(segment).is_file():
                continue
            for pos, nxt, kind, body in self._records(segment, start.offset if segment == start.segment else 0):
                if nxt > end:
                    return
                yield pos, nxt, kind, body

    def _records(self, segment: int, offset: int) -> Iterator[tuple[Position, Position, str, bytes]]:
        with open(self._path(segment), "rb") as fh:
            fh.seek(offset)
            while True:
                head = fh.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    return
                size, crc = _HEAD.unpack(head)
                payload = fh.read(size)
                if len(payload) < size or zlib.crc32(payload) != crc:
                    return  # a torn tail: written, never fsynced, never acknowledged
                nxt = offset + _HEAD.size + size
                yield Position(segment, offset), Position(segment, nxt), _kind_name(payload[:1]), payload[1:]
                offset = nxt

    def advance(self, to: Position) -> None:
        """Move the checkpoint to ``to`` (everything before it is stored) and delete the segments it passed."""
        if to <= self.checkpoint:
            return
        doc = {"segment": to.segment, "offset": to.offset}
        atomic_write(self.folder / "checkpoint.json", orjson.dumps(doc))
        self.checkpoint = to
        for segment in self.segments():
            if segment < to.segment:
                self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _kind_name(tag: bytes) -> str:
    return "protobuf" if tag == b"p" else "json"


# --------------------------------------------------------------------------- the flusher


@dataclass
class Stats:
    """What the receiver has done since it started: for its log and its tests."""

    requests: int = 0
    spans: int = 0
    rejected: int = 0
    refused: int = 0  # requests answered 503 (backlog over the bound)
    stored_traces: int = 0
    skipped_traces: int = 0  # already in the store (a replay, or the same trace exported again)
    flushes: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Held:
    spans: list[SpanRecord]
    first: Position  # the journal record its first span came in
    last_seen: float
    has_root: bool


@dataclass(slots=True)
class _Batch:
    """Traces assembled in one round, being scrubbed; once written, the checkpoint may move to ``until``."""

    until: Position
    pieces: list[Future[Scrubbed]] = field(default_factory=list)


class Receiver:
    """The journal and its flusher for one workspace: :meth:`accept` journals a request, a thread stores it.

    ``group`` spans (or ``delay`` seconds) make one Parquet part; ``max_backlog`` journaled bytes not yet
    stored make :meth:`accept` refuse (the route answers 503 with Retry-After). Where the workspace scrubs,
    ``workers`` processes (default as :func:`~evaltray.core.workers.worker_count`) scrub a round's traces
    while the flusher reads and assembles the next round's.
    """

    def __init__(
        self,
        ws: Workspace,
        group: int = 50_000,
        delay: float = 1.0,
        settle: float = 5.0,
        max_backlog: int = 256 << 20,
        scrub: bool | None = None,
        workers: int | None = None,
    ) -> None:
        self.ws, self.group, self.delay, self.settle, self.max_backlog = ws, group, delay, settle, max_backlog
        self.journal = Journal(ws.root / JOURNAL_DIR)
        self.stats = Stats()
        self.store = TraceStore(ws.traces_dir)
        self._scrub = Scrub(ws) if (ws.settings.scrub if scrub is None else scrub) else None
        self.workers = worker_count(workers, IngestError)
        self._pool: Executor | None = None
        self._pool_exit = contextlib.ExitStack()
        self._inflight: _Batch | None = None
        self._held: dict[str, _Held] = {}
        self._read_to = self.journal.checkpoint
        self._wake = threading.Condition()
        self._flushing = threading.Lock()
        self._stop = False
        self._pending = 0  # spans journaled since the last flush
        self._seen: set[str] = set()
        self._parts: set[Path] = set()
        self._thread: threading.Thread | None = None

    # -- the request side

    def overloaded(self) -> bool:
        return self.journal.backlog() > self.max_backlog

    def accept(self, kind: str, body: bytes, n_spans: int) -> None:
        """Journal one decoded request (fsynced on return) and wake the flusher when a group is ready."""
        self.journal.append(kind, body)
        with self._wake:
            self.stats.requests += 1
            self.stats.spans += n_spans
            self._pending += n_spans
            if self._pending >= self.group:
                self._wake.notify()

    # -- the flusher

    def start(self) -> None:
        """Start the scrub workers, replay what the journal holds past its checkpoint, then flush in the
        background."""
        self._start_pool()
        self.flush(final=False)
        self._thread = threading.Thread(target=self._run, name="otlp-flusher", daemon=True)
        self._thread.start()

    def _start_pool(self) -> None:
        """The scrub workers, forked before the flusher thread exists, each with the scrubber built here once."""
        if self._scrub is None or self.workers < 2 or self._pool is not None:
            return
        config = self._scrub.config
        self._pool = self._pool_exit.enter_context(process_pool(self.workers, config.install, (config.scrubber(),)))
        self._pool.submit(int).result()  # forks the workers now

    def _stop_pool(self) -> None:
        self._pool, pool_exit = None, self._pool_exit
        self._pool_exit = contextlib.ExitStack()
        pool_exit.close()

    def stop(self) -> None:
        """Store everything journaled (held traces too) and stop the flusher and the scrub workers."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush(final=True)
        finally:
            self._stop_pool()
            self.journal.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stop and self._pending < self.group and self._inflight is None:
                    self._wake.wait(self.delay)
                if self._stop:
                    return
                self._pending = 0
            try:
                self._locked(lambda: self._round(final=False))
            except Exception as exc:  # noqa: BLE001  (kept journaled; the next round reads it again)
                self.stats.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(self.delay)

    def flush(self, final: bool) -> int:
        """Read the journal past what was read, store every trace that is complete (all, if ``final``), move
        the checkpoint to the first record a held trace still needs; the number of traces stored. One flush
        runs at a time (the flusher's, or a caller's such as :meth:`stop`), and it ends with nothing in flight."""
        return self._locked(lambda: self._drain(final))

    def _drain(self, final: bool) -> int:
        stored = self._round(final)
        batch, self._inflight = self._inflight, None
        return stored + (self._finish(batch) if batch is not None else 0)

    def _locked(self, work: Callable[[], int]) -> int:
        """``work`` as the one flush running; if it fails, what it read is read again next time."""
        with self._flushing:
            try:
                return work()
            except Exception:
                self._recover()
                raise

    def _round(self, final: bool) -> int:
        """Hand this round's ready traces to the scrub workers, then store the previous round's (scrubbed
        meanwhile); the number of traces stored."""
        batch = self._prepare(final)
        prev, self._inflight = self._inflight, batch
        stored = self._finish(prev) if prev is not None else 0
        if all(p.done() for p in batch.pieces):  # nothing left to scrub (none, or scrubbed here): write it now
            self._inflight = None
            stored += self._finish(batch)
        return stored

    def _recover(self) -> None:
        """After a failed round: forget what was read and held, so the next round reads again from the
        checkpoint (stored traces are skipped by id); a dead worker pool is replaced."""
        batch, self._inflight = self._inflight, None
        for piece in batch.pieces if batch is not None else []:
            piece.cancel()
        self._held, self._read_to, self._seen = {}, self.journal.checkpoint, set()
        if self._pool is not None:  # it may be broken (a worker died): a new one costs a fork
            self._stop_pool()
            self._start_pool()

    def _prepare(self, final: bool) -> _Batch:
        """Read the journal, assemble the traces that are complete (all, if ``final``) and submit them to be
        scrubbed; the batch and how far the checkpoint may move once it is written."""
        end = self.journal.end
        self._read_spans(end)
        now = time.monotonic()
        ready = [t for t, h in self._held.items() if final or h.has_root or now - h.last_seen >= self.settle]
        spans = [s for t in ready for s in self._held.pop(t).spans]
        firsts = [h.first for h in self._held.values()]
        batch = _Batch(min(firsts) if firsts else end)
        traces: list[Trace] = []
        for item in traces_from_spans(spans, "otel", Path("otlp")) if spans else ():
            if isinstance(item, Issue):
                self.stats.errors.append(str(item))
            elif item.trace_id in self._seen:  # stored under this id (one holding PII is found after scrubbing)
                self.stats.skipped_traces += 1
            else:
                traces.append(item)
        if traces:
            settings = self.ws.settings
            table, _, unstorable = batch_table(traces, settings.payload_sample, settings.outlier_quantile, "otlp")
            self.stats.errors += [f"trace {tid}: {why}" for tid, why in unstorable]
            config = self._scrub.config if self._scrub is not None else None
            batch.pieces = submit(table, config, self._pool, self.workers) if table is not None else []
        return batch

    def _read_spans(self, end: Position) -> None:
        now = time.monotonic()
        for pos, _, kind, body in self.journal.read(self._read_to, end):
            for span in decode(body, kind).spans:
                held = self._held.get(span.trace_id)
                if held is None:
                    held = self._held[span.trace_id] = _Held([], pos, now, False)
                held.spans.append(span)
                held.last_seen = now
                held.has_root = held.has_root or span.parent_id is None
        self._read_to = end

    def _finish(self, batch: _Batch) -> int:
        """Write a batch's scrubbed traces as one Parquet part (under the ingest lock), leaving out those
        already stored, and move the checkpoint; the number of traces stored."""
        results = gather(batch.pieces)
        kept = 0
        if results:
            with self.ws.lock("ingest", wait=60.0):
                self._refresh_seen()
                kept = self._write(results)
                self._parts = set(self.store.parts())
            self.stats.stored_traces += kept
            self.stats.flushes += 1
        self.journal.advance(batch.until)
        return kept

    def _write(self, results: list[Scrubbed]) -> int:
        """Write the new rows of the scrubbed pieces (their originals sealed first); how many."""
        tables, sealed = [], []
        for table, info in results:
            ids = table.column("trace_id").to_pylist()  # as stored: an id with PII is its pseudonym now
            new = self._new(ids)
            if info is not None:
                sealed += [(ids[i], ph, token) for i, ph, token in info.vault if new[i]]
            tables.append(table.filter(pa.array(new, pa.bool_())) if not all(new) else table)
        if self._scrub is not None:
            self._scrub.seal(sealed)
        out = pa.concat_tables(tables)
        if out.num_rows:
            self.store.write_table(out, datetime.now(UTC).date())
        return int(out.num_rows)

    def _new(self, ids: list[str]) -> list[bool]:
        """Which of ``ids`` are not stored yet (the first of a repeat), noting them stored; the rest are skipped."""
        new = []
        for tid in ids:
            new.append(tid not in self._seen)
            self._seen.add(tid)
        self.stats.skipped_traces += new.count(False)
        return new

    def _refresh_seen(self) -> None:
        """The stored trace ids, read again only when another writer (``evaltray ingest``) added parts."""
        parts = set(self.store.parts())
        if not self._seen or parts - self._parts:
            self._seen = self.store.trace_ids()
        self._parts = parts


def gzip_body(data: bytes) -> bytes:
    """``data`` gzipped, as an exporter with compression on sends it (for tests and the load script)."""
    return gzip.compress(data, compresslevel=1)


def encode(spans: list[SpanRecord]) -> bytes:
    """A protobuf ``ExportTraceServiceRequest`` of ``spans`` (one resource per distinct resource): what an
    OpenTelemetry SDK exporter sends, for the load script and the round-trip tests."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    groups: dict[bytes, Any] = {}
    kinds = {v: k for k, v in OTLP_KINDS.items()}
    for s in spans:
        key = orjson.dumps([s.resource, s.scope], option=orjson.OPT_SORT_KEYS)
        if key not in groups:
            rs = req.resource_spans.add()
            _pb_set_attributes(rs.resource.attributes, s.resource)
            ss = rs.scope_spans.add()
            ss.scope.name = s.scope or ""
            groups[key] = ss
        raw = groups[key].spans.add()
        raw.trace_id, raw.span_id = bytes.fromhex(s.trace_id), bytes.fromhex(s.span_id)
        raw.parent_span_id = bytes.fromhex(s.parent_id) if s.parent_id else b""
        raw.name, raw.kind = s.name or "", kinds.get(s.kind, 0)
        raw.start_time_unix_nano, raw.end_time_unix_nano = _nanos(s.start), _nanos(s.end)
        raw.status.code, raw.status.message = s.status_code, s.status_message or ""
        _pb_set_attributes(raw.attributes, s.attrs)
        for e in s.events:
            ev = raw.events.add(name=e.name, time_unix_nano=_nanos(e.time))
            _pb_set_attributes(ev.attributes, e.attrs)
    return bytes(req.SerializeToString())


def _nanos(when: Any) -> int:
    if when is None:
        return 0
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _pb_set_attributes(target: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        kv = target.add(key=key)
        _pb_set_value(kv.value, value)


def _pb_set_value(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for v in value:
            _pb_set_value(target.array_value.values.add(), v)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        _pb_set_attributes(target.kvlist_value.values, value)
    elif value is not None:
        target.string_value = str(value)
