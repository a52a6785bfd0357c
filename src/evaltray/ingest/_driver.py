"""Stream parsed traces into the Parquet store: batched, idempotent by trace id, crash-safe.

JSON-lines formats (one trace per line: a format with a ``line_reader``) are parsed in byte-range
chunks, by a pool of worker processes for big files (:func:`evaltray.core.workers.process_pool`). Each
chunk's parser writes it as an unpublished Parquet part; the main process takes the chunks in file order
and publishes each with one rename (or rewrites it first when ids repeat), so line numbers,
content-derived ids and duplicate skipping are those of a line-by-line parse, and a killed ingest
leaves only whole parts behind.

When the workspace scrubs (``[ingest] scrub``, the default), each batch is scrubbed of PII before
its part is written (by the worker that parsed it); a trace the scrubber cannot handle is stored
without any text and reported by id (quarantined).
"""

from __future__ import annotations

import gc
import operator
import zlib
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evaltray.core.errors import IngestError
from evaltray.core.records import Trace
from evaltray.core.store import CURATE_ROLES, Workspace, inserted_id
from evaltray.core.traces import (
    COLUMN_INDEX,
    PAYLOAD_COLUMNS,
    SCHEMA,
    RowBuilder,
    TraceStore,
    trace_values,
    values_table,
)
from evaltray.core.util import file_sha256, now_iso
from evaltray.core.workers import process_pool, worker_count

from ._common import SHAPE_ERRORS
from ._registry import BadRecord, Format, Issue, detect, get_format

if TYPE_CHECKING:  # the scrub package imports Presidio (seconds): only when a workspace scrubs
    from evaltray.scrub import Scrubber, ScrubConfig, TableScrub

BATCH = 20_000
#: Bytes per chunk of a JSON-lines file parsed in this process; each chunk is one Parquet part and the
#: batch for keep_reasons (~5k chat traces).
CHUNK_BYTES = 4 << 20
#: Bytes per chunk when workers parse (~20k chat traces): fewer, bigger parts; a worker holds one chunk.
PARALLEL_CHUNK_BYTES = 16 << 20
#: Smaller files are parsed in this process: workers would have too few chunks to share.
PARALLEL_MIN_BYTES = 24 << 20
Progress = Callable[[str, int], None]
_TRACE_ID = COLUMN_INDEX["trace_id"]
_row_id = operator.itemgetter(_TRACE_ID)


@dataclass
class FileReport:
    path: str
    format: str
    ingested: int = 0
    skipped: int = 0
    payload_kept: int = 0
    issues: list[Issue] = field(default_factory=list)
    #: ids of traces stored without their text because the scrubber could not handle them
    quarantined: list[str] = field(default_factory=list)
    #: values replaced by a placeholder, per entity label (empty when scrubbing is off)
    scrubbed: dict[str, int] = field(default_factory=dict)
    #: ids of traces stored with a field cut to ``[ingest] scrub_max_field_chars``
    truncated: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Nothing in the file could be read: its format is unknown, or every record was refused (a ``--map``
        field no record has, a file of another format)."""
        return not self.ingested and not self.skipped and bool(self.issues)


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    @property
    def issues(self) -> list[Issue]:
        return [i for f in self.files for i in f.issues]

    @property
    def quarantined(self) -> list[str]:
        return [t for f in self.files for t in f.quarantined]

    @property
    def truncated(self) -> list[str]:
        return [t for f in self.files for t in f.truncated]

    @property
    def failed(self) -> list[FileReport]:
        """The files nothing could be read from (see :attr:`FileReport.failed`)."""
        return [f for f in self.files if f.failed]


def sample_unit(trace_id: str) -> float:
    """A stable number in [0, 1) per trace id: the same traces keep their payload on every run."""
    return zlib.crc32(trace_id.encode("utf-8")) / 2**32


def _quantile(values: list[float], q: float) -> float | None:
    if len(values) < 20:
        return None  # too few to call anything an outlier
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def keep_reasons(batch: list[Trace], rate: float, quantile: float) -> list[str | None]:
    """Why each trace keeps its full payload (None: it keeps metadata only).

    Rare rows a curator will want always keep it: negative feedback, errors, tool failures,
    and latency or cost above the batch's ``quantile``.
    """
    return _reasons(
        [t.trace_id for t in batch],
        [t.feedback_score for t in batch],
        [t.status == "error" or bool(t.error) for t in batch],
        [any(m.is_error for m in t.messages if m.role == "tool") for t in batch],
        [t.latency_ms for t in batch],
        [t.cost_usd for t in batch],
        rate,
        quantile,
    )


#: keep reasons in the order they win (:func:`_reasons`); a row with none of them keeps metadata only
_REASONS = ("negative_feedback", "error", "tool_failure", "latency_outlier", "cost_outlier", "sampled")


def _table_reasons(table: pa.Table, rate: float, quantile: float) -> pa.Array:
    """:func:`keep_reasons` of a :data:`SCHEMA` table's rows, column at a time (their latency is the trace's own:
    line formats have no end time); the same reasons as :func:`_reasons`, as a string array."""
    n = table.num_rows

    def floats(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN

    latency, cost = floats("latency_ms"), floats("cost_usd")
    nans = np.isnan(latency).sum() + np.isnan(cost).sum()  # nulls read as NaN; beyond them, a value is NaN
    if nans > table.column("latency_ms").null_count + table.column("cost_usd").null_count:
        return _row_reasons(table, rate, quantile)  # sorted() orders a NaN where numpy would not: the row rules decide
    codes = np.full(n, len(_REASONS), np.int8)  # none
    if rate >= 1.0:
        codes[:] = 5
    else:
        ids = table.column("trace_id").to_pylist()
        codes[np.fromiter((sample_unit(t) < rate for t in ids), np.bool_, n)] = 5
    failed, tool_failed = _failed(table)
    # the lowest priority first: each later rule overwrites the ones it outranks
    for code, values in ((4, cost), (3, latency)):
        q = _quantile_array(values, quantile)
        if q is not None:
            codes[values > q] = code
    codes[tool_failed] = 2
    codes[failed] = 1
    with np.errstate(invalid="ignore"):
        codes[floats("feedback_score") < 0] = 0
    return pa.array([*_REASONS, None], pa.string()).take(pa.array(codes))


def _row_reasons(table: pa.Table, rate: float, quantile: float) -> pa.Array:
    """:func:`_table_reasons` by the row rules of :func:`_reasons`."""
    failed, tool_failed = _failed(table)
    ids, feedback, latency, cost = (
        table.column(c).to_pylist() for c in ("trace_id", "feedback_score", "latency_ms", "cost_usd")
    )
    return pa.array(
        _reasons(ids, feedback, failed.tolist(), tool_failed.tolist(), latency, cost, rate, quantile), pa.string()
    )


def _failed(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the trace failed (status error, or an error text), and a tool call of it failed."""
    error = pc.fill_null(pc.greater(pc.binary_length(table.column("error")), 0), False)
    failed = pc.or_(pc.fill_null(pc.equal(table.column("status"), "error"), False), error)
    tool = pc.fill_null(pc.greater(table.column("n_tool_errors"), 0), False)
    return failed.to_numpy(zero_copy_only=False), tool.to_numpy(zero_copy_only=False)


def _quantile_array(values: np.ndarray, q: float) -> float | None:
    """:func:`_quantile` of an array without NaN but for its nulls (as NaN)."""
    known = np.sort(values[~np.isnan(values)])
    if len(known) < 20:
        return None
    return float(known[min(len(known) - 1, int(q * len(known)))])


def _reasons(
    ids: list[str],
    feedback: list[float | None],
    failed: list[bool],
    tool_failed: list[bool],
    latency: list[float | None],
    cost: list[float | None],
    rate: float,
    quantile: float,
) -> list[str | None]:
    lat = _quantile([v for v in latency if v is not None], quantile)
    dear = _quantile([v for v in cost if v is not None], quantile)
    out: list[str | None] = []
    for tid, fb, bad, tool_bad, la, co in zip(ids, feedback, failed, tool_failed, latency, cost, strict=True):
        if fb is not None and fb < 0:
            out.append("negative_feedback")
        elif bad:
            out.append("error")
        elif tool_bad:
            out.append("tool_failure")
        elif lat is not None and la is not None and la > lat:
            out.append("latency_outlier")
        elif dear is not None and co is not None and co > dear:
            out.append("cost_outlier")
        elif rate >= 1.0 or sample_unit(tid) < rate:
            out.append("sampled")
        else:
            out.append(None)
    return out


def _finished(table: pa.Table, reasons: pa.Array, source_file: str) -> tuple[pa.Table, int]:
    """A batch with its per-batch columns set and the payload dropped where no reason (a null) keeps it; and
    how many keep it."""
    n = table.num_rows
    keep = reasons.is_valid()
    batch_values = {
        "source_file": pa.repeat(pa.scalar(source_file, pa.string()), n),
        "ingested_at": pa.repeat(pa.scalar(datetime.now(UTC), SCHEMA.field("ingested_at").type), n),
        "payload_kept": keep,
        "keep_reason": reasons,
        "scrubbed": pa.repeat(pa.scalar(False), n),  # scrub_table sets it where the workspace scrubs
    }
    kept = n - reasons.null_count
    if kept < n:  # the rest keep metadata only
        for name in PAYLOAD_COLUMNS:
            typ = SCHEMA.field(name).type
            batch_values[name] = pc.if_else(keep, table.column(name).combine_chunks(), pa.scalar(None, typ))
    for name, values in batch_values.items():
        i = SCHEMA.get_field_index(name)
        table = table.set_column(i, SCHEMA.field(i), values)
    return table, kept


def _kept(table: pa.Table) -> int:
    """Rows of a finished table that keep their payload."""
    return pc.sum(table.column("payload_kept")).as_py() or 0


class Scrub:
    """An ingest's scrubbing: the config every parsing process builds its scrubber from, and the vault file."""

    def __init__(self, ws: Workspace) -> None:
        from evaltray.scrub import ScrubConfig

        self.ws = ws
        self.config: ScrubConfig = ScrubConfig.for_workspace(ws)

    def table(self, table: pa.Table) -> tuple[pa.Table, TableScrub]:
        from evaltray.scrub import scrub_table

        return scrub_table(table, self.config)

    def stored_id(self, trace_id: str) -> str:
        """The id the trace is stored under (a pseudonym where the id holds PII): what duplicates are checked by."""
        return self.config.stored_id(trace_id)

    def seal(self, entries: list[tuple[str, str, bytes]]) -> None:
        """Keep sealed originals ``(trace_id, placeholder, token)``: called before their rows are published."""
        if self.config.vault_key:
            from evaltray.scrub import save_sealed

            save_sealed(self.ws, self.config.vault_key, entries)

    def take(
        self, rep: FileReport, counts: Counter[str], chunk: _Chunk, new: list[bool], renamed: dict[int, str]
    ) -> None:
        """Report a chunk's quarantined traces and replacements, and seal its originals, for its new rows."""
        ids = chunk.ids
        rep.quarantined += [ids[i] for i in chunk.quarantined if new[i]]
        rep.truncated += [ids[i] for i in chunk.truncated if new[i]]
        for i, c in chunk.counts:
            if new[i]:
                counts.update(c)
        if not self.config.vault_key:
            return
        from evaltray.scrub import Vault

        vault = Vault(self.config.vault_key)
        # a worker sealed under the id it saw; a repeated content id was renumbered since
        self.seal(
            [
                (ids[i], ph, vault.reseal(token, renamed[i], ids[i], ph) if i in renamed else token)
                for i, ph, token in chunk.sealed
                if new[i]
            ]
        )


class TraceWriter:
    """Writes the traces of a parser as Parquet parts of ``BATCH`` new traces each, scrubbed if ``scrub``."""

    def __init__(
        self, store: TraceStore, rate: float, quantile: float, source_file: str, scrub: Scrub | None = None
    ) -> None:
        self.store, self.rate, self.quantile, self.source_file = store, rate, quantile, source_file
        self.scrub = scrub
        self.batch: list[Trace] = []
        self.day = datetime.now(UTC).date()
        self.kept = 0
        self.quarantined: list[str] = []
        self.truncated: list[str] = []
        self.counts: Counter[str] = Counter()
        self.unstorable: list[tuple[str, str]] = []  # (trace id, why) of traces left out: a value does not fit

    def add(self, trace: Trace) -> None:
        self.batch.append(trace)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        table, kept, unstorable = batch_table(self.batch, self.rate, self.quantile, self.source_file)
        self.unstorable += unstorable
        if table is None:
            self.batch = []
            return
        if self.scrub is not None:
            table, info = self.scrub.table(table)
            ids = table.column("trace_id").to_pylist()  # as stored: an id with PII is its pseudonym now
            kept = _kept(table)  # quarantined rows lost theirs
            self.quarantined += [ids[i] for i in sorted(info.quarantined)]
            self.truncated += [ids[i] for i in sorted(info.truncated)]
            self.counts.update(info.total())
            self.scrub.seal([(ids[i], ph, token) for i, ph, token in info.vault])
        self.store.write_table(table, self.day)
        self.kept += kept
        self.batch = []


def batch_table(
    traces: list[Trace], rate: float, quantile: float, source_file: str
) -> tuple[pa.Table | None, int, list[tuple[str, str]]]:
    """A batch's rows as the store keeps them before scrubbing (payload kept or dropped by
    :func:`keep_reasons`), how many keep their payload, and (trace id, why) of the traces left out
    (see :func:`storable`); no table when none is left."""
    batch, table, unstorable = storable(traces)
    if not batch:
        return None, 0, unstorable
    table, kept = _finished(table, pa.array(keep_reasons(batch, rate, quantile), pa.string()), source_file)
    return table, kept, unstorable


def storable(traces: list[Trace]) -> tuple[list[Trace], pa.Table, list[tuple[str, str]]]:
    """The traces whose every value fits the trace store, their table, and (trace id, why) for the others."""
    rows: list[tuple[Any, ...]] = []
    kept: list[Trace] = []
    left: list[tuple[str, str]] = []
    builder = RowBuilder()  # one per batch: a system prompt or tool list the batch repeats is hashed once
    for t in traces:
        try:
            rows.append(trace_values(t, builder))
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. text no encoder takes (a lone surrogate)
            left.append((t.trace_id, f"a value cannot be stored ({type(exc).__name__})"))
            continue
        kept.append(t)
    try:
        return kept, values_table(rows), left
    except _ARROW_ERRORS:
        issues: list[tuple[None, str, str | None]] = []
        table, good, _ = _without_unstorable(rows, [None] * len(rows), [], issues)
        fits = {row[_TRACE_ID] for row in good}
        left += [(rid or "", why) for _, why, rid in issues]
        return [t for t in kept if t.trace_id in fits], table, left


def ingest_files(
    ws: Workspace,
    paths: Iterable[Path],
    fmt: str = "auto",
    options: Mapping[str, str] | None = None,
    strict: bool = False,
    payload_sample: float | None = None,
    progress: Progress | None = None,
    actor: str | None = None,
    workers: int | None = None,
    scrub: bool | None = None,
) -> IngestReport:
    """Ingest each file; malformed records are reported and skipped (or, with ``strict``, fatal).

    Traces whose id is already in the store are skipped, so re-running after a crash or on the
    same file adds nothing twice. ``workers`` (default ``$EVALTRAY_WORKERS``, else the usable CPUs)
    parse big JSON-lines files in parallel. ``scrub`` (default: the workspace's ``[ingest] scrub``)
    replaces PII before anything is written; traces that cannot be scrubbed are stored without text
    and listed in ``quarantined``. ``actor`` (default: the workspace's default user) must not be a viewer.
    """
    actor = ws.authorize(actor, CURATE_ROLES, "ingesting")
    options = options or {}
    rate = ws.settings.payload_sample if payload_sample is None else payload_sample
    if not 0 < rate <= 1:
        raise IngestError(f"--payload-sample must be in (0, 1], got {rate}")
    n_workers = worker_count(workers, IngestError)
    store = TraceStore(ws.traces_dir)
    report = IngestReport()
    scrubbing = Scrub(ws) if (ws.settings.scrub if scrub is None else scrub) else None
    with ws.lock("ingest"):
        store.clean_tmp()
        seen = store.trace_ids()
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise IngestError(f"{path}: no such file")
            if fmt == "auto" and _is_blank(path):
                report.files.append(FileReport(str(path), "empty", issues=[Issue(str(path), None, "empty file")]))
                continue
            try:
                format_: Format = detect(path) if fmt == "auto" else get_format(fmt)
            except IngestError as exc:
                if strict or fmt != "auto":
                    raise
                # one unrecognised file must not stop the others: report it like a malformed record
                report.files.append(
                    FileReport(str(path), "unknown", issues=[Issue(str(path), None, str(exc).split(": ", 1)[1])])
                )
                continue
            report.files.append(
                _ingest_one(
                    ws, store, path, format_, options, strict, rate, seen, progress, actor, n_workers, scrubbing
                )
            )
    return report


def _is_blank(path: Path) -> bool:
    with path.open("rb") as fh:
        return not fh.read(4096).strip() and path.stat().st_size <= 4096


def _ingest_one(
    ws: Workspace,
    store: TraceStore,
    path: Path,
    fmt: Format,
    options: Mapping[str, str],
    strict: bool,
    rate: float,
    seen: set[str],
    progress: Progress | None,
    actor: str,
    workers: int,
    scrubbing: Scrub | None,
) -> FileReport:
    files = ws.t["ingest_files"]
    log = _FileLog(ws, path, fmt.name)
    try:
        writer = TraceWriter(store, rate, ws.settings.outlier_quantile, path.name, scrubbing)
        if fmt.line_reader is not None:
            rep = _stream_lines(writer, path, fmt.name, strict, seen, progress, workers, log)
        else:
            log.running()
            rep = _stream(writer, path, fmt, options, strict, seen, progress)
        file_id = log.running()
    except BaseException:
        with ws.tx() as conn:  # a bad --map or --strict stop: the log says so instead of "running"
            failed = files.update().where(files.c.id == log.running())
            conn.execute(failed.values(status="failed", finished_at=now_iso()))
        raise
    with ws.tx() as conn:
        conn.execute(
            files.update()
            .where(files.c.id == file_id)
            .values(
                status="done",
                n_traces=rep.ingested,
                n_skipped=rep.skipped,
                n_issues=len(rep.issues),
                finished_at=now_iso(),
            )
        )
        ws.audit(
            conn,
            actor,
            "ingest",
            str(path),
            format=fmt.name,
            traces=rep.ingested,
            skipped=rep.skipped,
            issues=len(rep.issues),
            scrubbed=scrubbing is not None,
            quarantined=len(rep.quarantined),
        )
    return rep


class _FileLog:
    """A file's row in ``ingest_files``, written as running before any of its traces is published. When workers
    parse the file, its sha256 is computed meanwhile on a thread (started once they are forked), instead of
    before they start."""

    def __init__(self, ws: Workspace, path: Path, fmt: str) -> None:
        self.ws, self.path, self.fmt, self.started_at = ws, path, fmt, now_iso()
        self.id: int | None = None
        self._digest: Future[str] | None = None

    def hash_aside(self) -> None:
        """Start hashing the file on a thread (after the workers are forked: no process is forked with it running)."""
        if self._digest is None:
            thread = ThreadPoolExecutor(1, thread_name_prefix="evaltray-sha256")
            self._digest = thread.submit(file_sha256, self.path)
            thread.shutdown(wait=False)

    def running(self) -> int:
        """The row's id; written (status running) on the first call."""
        if self.id is None:
            digest = file_sha256(self.path) if self._digest is None else self._digest.result()
            with self.ws.tx() as conn:
                row = dict(path=str(self.path), sha256=digest, format=self.fmt, status="running")
                self.id = inserted_id(
                    conn, self.ws.t["ingest_files"].insert().values(**row, started_at=self.started_at)
                )
        return self.id


def _stream(
    writer: TraceWriter,
    path: Path,
    fmt: Format,
    options: Mapping[str, str],
    strict: bool,
    seen: set[str],
    progress: Progress | None,
) -> FileReport:
    rep = FileReport(str(path), fmt.name)
    pending: list[Trace] = []  # strict mode writes nothing from a file with an issue
    stored_id = writer.scrub.stored_id if writer.scrub is not None else None
    for item in _read(fmt, path, options):
        if isinstance(item, Issue):
            if strict:
                raise IngestError(str(item))
            rep.issues.append(item)
            continue
        tid = stored_id(item.trace_id) if stored_id is not None else item.trace_id
        if tid in seen:
            rep.skipped += 1
            continue
        seen.add(tid)
        rep.ingested += 1
        if strict:
            pending.append(item)
        else:
            writer.add(item)
        if progress is not None and rep.ingested % 5000 == 0:
            progress(str(path), rep.ingested)
    if strict and (unstorable := storable(pending)[2]):  # nothing is written from such a file
        tid, why = unstorable[0]
        raise IngestError(f"{path}: {why} (record {tid})")
    for trace in pending:
        writer.add(trace)
    writer.flush()
    rep.issues += [Issue(str(path), None, why, tid) for tid, why in writer.unstorable]
    rep.ingested -= len(writer.unstorable)
    rep.payload_kept = writer.kept
    rep.quarantined, rep.scrubbed, rep.truncated = writer.quarantined, dict(writer.counts), writer.truncated
    if progress is not None:
        progress(str(path), rep.ingested)
    return rep


def _read(fmt: Format, path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """The parser's traces and issues; if it stops on a value it did not expect (outside any one record),
    an issue says so and the traces read until then are kept."""
    try:
        yield from fmt.parse(path, options)
    except SHAPE_ERRORS as exc:
        yield Issue(
            str(path),
            None,
            f"the rest of the file could not be read: a value has an unexpected type ({type(exc).__name__})",
        )


def _stream_lines(
    writer: TraceWriter,
    path: Path,
    name: str,
    strict: bool,
    seen: set[str],
    progress: Progress | None,
    workers: int,
    log: _FileLog,
) -> FileReport:
    """Like :func:`_stream` for a JSON-lines format: chunks arrive as unpublished parts, published in file order."""
    rep = FileReport(str(path), name)
    store = writer.store
    scrub = writer.scrub
    spec = _PartSpec(str(store.root), path.name, writer.rate, writer.quantile, scrub.config if scrub else None)
    repeats: dict[str, int] = {}  # content-derived id -> lines seen with it so far, as content_id counts
    held: list[tuple[_Chunk, list[bool], dict[int, str]]] = []  # strict: nothing published from a file with an issue
    lines_before = 0
    counts: Counter[str] = Counter()

    def publish(chunk: _Chunk, new: list[bool], renamed: dict[int, str]) -> None:
        log.running()
        if scrub is not None:
            scrub.take(rep, counts, chunk, new, renamed)
        writer.kept += _publish(store, writer.day, chunk, new, bool(renamed))

    try:
        for chunk in _parsed_chunks(name, path, spec, workers, seen, log.hash_aside):
            for line, reason, rid in chunk.issues:
                issue = Issue(str(path), lines_before + line, reason, rid)
                if strict:
                    raise IngestError(str(issue))
                rep.issues.append(issue)
            lines_before += chunk.newlines
            ids = chunk.ids
            renamed: dict[int, str] = {}  # row -> the id its parser gave it
            for i in chunk.content_rows:
                n = repeats.get(ids[i], 0)
                repeats[ids[i]] = n + 1
                if n:
                    renamed[i] = ids[i]
                    ids[i] = f"{ids[i]}-{n}"
            new = _mark_new(ids, seen)
            n_new = new.count(True)
            rep.ingested += n_new
            rep.skipped += len(ids) - n_new
            if strict:
                held.append((chunk, new, renamed))
            else:
                publish(chunk, new, renamed)
            if progress is not None:
                progress(str(path), rep.ingested)
        for chunk, new, renamed in held:
            publish(chunk, new, renamed)
    except BaseException:
        store.clean_tmp()  # parts parsed ahead and never published; the ingest lock keeps others out of .tmp
        raise
    rep.payload_kept = writer.kept
    rep.scrubbed = dict(counts)
    return rep


def _mark_new(ids: list[str], seen: set[str]) -> list[bool]:
    """Per id, whether it is new (not in ``seen`` nor earlier in ``ids``); adds the new ones to ``seen``."""
    if seen.isdisjoint(ids):  # the usual case, checked without a Python loop
        before = len(seen)
        seen.update(ids)
        if len(seen) - before == len(ids):
            return [True] * len(ids)
        seen = set()  # an id repeats within ``ids``: its first occurrence is the new one
    new = []
    for tid in ids:
        fresh = tid not in seen
        if fresh:
            seen.add(tid)
        new.append(fresh)
    return new


def _publish(store: TraceStore, day: date, chunk: _Chunk, new: list[bool], renumbered: bool) -> int:
    """Publish a chunk's part, rewritten first if ids were renumbered or rows are already stored; rows with payload."""
    if chunk.part is None:
        return 0
    tmp = Path(chunk.part)
    if not renumbered and all(new):  # the usual case: one rename
        store.commit(tmp, day)
        return chunk.kept
    table = pq.read_table(tmp)
    tmp.unlink()
    if renumbered:
        table = table.set_column(_TRACE_ID, SCHEMA.field(_TRACE_ID), pa.array(chunk.ids, pa.string()))
    table = table.filter(pa.array(new, pa.bool_()))
    if not table.num_rows:
        return 0
    store.write_table(table, day)
    return _kept(table)


@dataclass(frozen=True, slots=True)
class _PartSpec:
    """What a chunk parser needs to write its part (picklable: it travels to the workers)."""

    store_root: str
    source_file: str
    rate: float
    quantile: float
    scrub: ScrubConfig | None = None  # scrub each chunk before its part is written


@dataclass(slots=True)
class _Chunk:
    """One parsed byte range: its unpublished part, trace ids, issues (lines within the chunk), newlines."""

    part: str | None  # None: no rows
    ids: list[str]
    content_rows: list[int]  # rows whose id was derived from content: the driver numbers repeats
    issues: list[tuple[int, str, str | None]]
    newlines: int
    kept: int  # rows that keep their payload
    quarantined: list[int] = field(default_factory=list)  # rows stored without text: the scrubber failed
    counts: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # (row, replacements per label)
    sealed: list[tuple[int, str, bytes]] = field(default_factory=list)  # (row, placeholder, vault token)
    truncated: list[int] = field(default_factory=list)  # rows with a field cut to the scrub size limit


def _parse_chunk(name: str, path: str, start: int, end: int, spec: _PartSpec, stored: Collection[str]) -> _Chunk:
    """Parse bytes ``start:end`` of ``path`` (whole lines) with the line format ``name`` into an unpublished part.

    The chunk is the batch for :func:`keep_reasons`; the workers run this, so the Parquet encoding
    is parallel too and only ids and issues travel back. ``stored``: ids already in the store (only read,
    to spare scrubbing rows that will be skipped).
    """
    line_reader = get_format(name).line_reader
    assert line_reader is not None  # the driver sends only formats that have one
    record = line_reader()  # one reader per chunk: what it remembers lasts as long as the chunk
    parts: list[pa.Table] = []
    ids: list[str] = []
    rows: list[tuple[Any, ...]] = []
    row_lines: list[int] = []
    issues: list[tuple[int, str, str | None]] = []
    content_rows: list[int] = []  # in the chunk
    row_content: list[int] = []  # in ``rows``

    def to_table() -> None:  # the rows so far as a table: few rows' objects live at once, their memory reused
        nonlocal rows, row_content
        try:
            table = values_table(rows)
        except _ARROW_ERRORS:  # some value does not fit its column: find the rows, keep the rest
            table, rows, row_content = _without_unstorable(rows, row_lines, row_content, issues)
        content_rows.extend(len(ids) + i for i in row_content)
        ids.extend(map(_row_id, rows))
        parts.append(table)
        rows, row_content = [], []
        row_lines.clear()

    collect = gc.isenabled()
    gc.disable()  # parsed records hold no cycles; collecting while thousands accumulate costs a third
    try:
        lineno = 0
        for lineno, raw in enumerate(_lines(path, start, end), 1):
            if not raw or raw.isspace():  # blank (isspace stops at the first other byte; strip would copy the line)
                continue
            counted: dict[str, int] = {}
            try:
                row = record(raw, counted)
            except BadRecord as bad:
                issues.append((lineno, bad.reason, bad.record_id))
                continue
            if counted:
                row_content.append(len(rows))
            rows.append(row)
            row_lines.append(lineno)
            if len(rows) == _ROWS_AT_ONCE:
                to_table()
        to_table()
    finally:
        if collect:
            gc.enable()
    issues.sort(key=lambda issue: issue[0])  # by line (an unstorable row's issue came after the lines below it)
    table = pa.concat_tables(parts)
    out = _Chunk(None, ids, content_rows, issues, lineno - 1, 0)  # the last line ends the range, not a newline
    if table.num_rows:
        table, out.kept = _finished(table, _table_reasons(table, spec.rate, spec.quantile), spec.source_file)
        if spec.scrub is not None:
            from evaltray.scrub import scrub_table

            table = table.combine_chunks()  # one chunk per column, as the scrubber has always been given
            # rows already stored are dropped at publishing: no need to scrub them (a content-derived id
            # may still be renumbered into a new one, so those are always scrubbed)
            content = set(content_rows)
            known = {i for i, tid in enumerate(ids) if tid in stored and i not in content} if stored else set()
            table, info = scrub_table(table, spec.scrub, skip=known)
            out.kept = _kept(table)
            out.quarantined, out.counts, out.sealed = sorted(info.quarantined), list(info.counts.items()), info.vault
            out.truncated = sorted(info.truncated)
            out.ids = table.column("trace_id").to_pylist()  # as stored (a pseudonym where the id holds PII)
        out.part = str(TraceStore(Path(spec.store_root)).write_tmp(table))
    return out


def _lines(path: str, start: int, end: int) -> Iterator[bytes]:
    """The lines of bytes ``start:end`` of ``path`` as ``data.split(b"\\n")`` gives them (the last one is what
    follows the last newline), read :data:`_READ_BYTES` at a time: a buffer of that size is reused by the
    allocator, where one of the whole range would be faulted in afresh for each chunk."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left, carry = end - start, b""
        while left > 0:
            data = fh.read(min(_READ_BYTES, left))
            if not data:
                break
            left -= len(data)
            lines = (carry + data if carry else data).split(b"\n")
            carry = lines.pop()
            yield from lines
    yield carry


_READ_BYTES = 1 << 20
#: Rows turned into Arrow at once in a chunk: their Python objects are freed before the next rows are read, so
#: the allocator reuses their memory instead of asking the kernel for fresh pages (page faults were a tenth of
#: a worker's time with a whole 16 MiB chunk's rows alive at once).
_ROWS_AT_ONCE = 4096
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


_Line = TypeVar("_Line", int, None)  # a row's line in its file; None where the parser does not say


def _without_unstorable(
    rows: list[tuple[Any, ...]],
    row_lines: list[_Line],
    content_rows: list[int],
    issues: list[tuple[_Line, str, str | None]],
) -> tuple[pa.Table, list[tuple[Any, ...]], list[int]]:
    """The table of the rows that fit :data:`SCHEMA`; an issue naming the column for each that does not."""
    good: list[tuple[Any, ...]] = []
    renumber: dict[int, int] = {}
    for i, (row, line) in enumerate(zip(rows, row_lines, strict=True)):
        bad = next((f.name for f, v in zip(SCHEMA, row, strict=True) if not _fits(v, f.type)), None)
        if bad is None:
            renumber[i] = len(good)
            good.append(row)
        else:
            issues.append((line, f"{bad}: value does not fit the trace store's column", row[_TRACE_ID]))
    issues.sort(key=lambda issue: issue[0] or 0)  # by line (none: the order of the rows)
    return values_table(good), good, [renumber[i] for i in content_rows if i in renumber]


def _fits(value: Any, typ: pa.DataType) -> bool:
    try:
        pa.array([value], typ)
    except _ARROW_ERRORS:
        return False
    return True


def _chunk_bounds(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``size`` bytes that each end just after a newline (or at the end of the file)."""
    total = path.stat().st_size
    bounds: list[tuple[int, int]] = []
    start = 0
    with path.open("rb") as fh:
        while start < total:
            fh.seek(min(start + size, total))
            end = fh.tell() + len(fh.readline())
            bounds.append((start, end))
            start = end
    return bounds


def _parsed_chunks(
    name: str, path: Path, spec: _PartSpec, workers: int, stored: set[str], forked: Callable[[], None]
) -> Iterator[_Chunk]:
    """Parsed chunks of ``path`` in file order; big files are parsed by a pool of ``workers`` processes.

    ``stored``: ids already in the store (only read, to spare scrubbing rows that will be skipped). ``forked``
    is called once the workers are started (not for a file parsed in this process).
    """
    if workers < 2 or path.stat().st_size < PARALLEL_MIN_BYTES:
        for start, end in _chunk_bounds(path, CHUNK_BYTES):
            yield _parse_chunk(name, str(path), start, end, spec, stored)
        return
    # at least four chunks per worker, so none waits long for the last one
    size = min(PARALLEL_CHUNK_BYTES, max(CHUNK_BYTES, path.stat().st_size // (4 * workers)))
    todo = iter(_chunk_bounds(path, size))
    running: deque[Future[_Chunk]] = deque()
    # the scrubber is built here once and handed to each worker (with fork, without a copy), so no worker
    # starts Presidio again
    scrubbing = (spec.scrub, spec.scrub.scrubber()) if spec.scrub is not None else None
    with process_pool(workers, _start_worker, (stored, scrubbing)) as pool:
        for start, end in todo:  # a few chunks ahead of the writer bounds the memory held
            running.append(pool.submit(_parse_in_worker, name, str(path), start, end, spec))
            if len(running) >= 2 * workers:
                break
        forked()
        while running:
            try:
                chunk = running.popleft().result()
            except BrokenProcessPool:
                raise IngestError(
                    f"{path}: a parser process died (out of memory?); nothing after the last "
                    "published part was stored; re-run with EVALTRAY_WORKERS=1 to parse in one process"
                ) from None
            for start, end in todo:
                running.append(pool.submit(_parse_in_worker, name, str(path), start, end, spec))
                break
            yield chunk


#: In a worker process only: the ids stored before the ingest began, given to it by :func:`_start_worker`.
_worker_stored: Collection[str] = frozenset()


def _start_worker(stored: Collection[str], scrubbing: tuple[ScrubConfig, Scrubber] | None) -> None:
    """Runs once in each worker as it starts (what it needs travels in ``initargs``: with fork, without a copy)."""
    global _worker_stored
    _worker_stored = stored
    if scrubbing is not None:
        config, scrubber = scrubbing
        config.install(scrubber)


def _parse_in_worker(name: str, path: str, start: int, end: int, spec: _PartSpec) -> _Chunk:
    return _parse_chunk(name, path, start, end, spec, _worker_stored)
