"""Stream parsed traces into the Parquet store: batched, idempotent by trace id, crash-safe."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ..errors import IngestError
from ..records import Trace
from ..store import Workspace
from ..traces import COLUMNS, SCHEMA, TraceStore, trace_row
from ..util import file_sha256, now_iso
from ._registry import Format, Issue, detect, get_format

BATCH = 20_000
Progress = Callable[[str, int], None]


@dataclass
class FileReport:
    path: str
    format: str
    ingested: int = 0
    skipped: int = 0
    payload_kept: int = 0
    issues: list[Issue] = field(default_factory=list)


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
    lat = _quantile([t.latency_ms for t in batch if t.latency_ms is not None], quantile)
    cost = _quantile([t.cost_usd for t in batch if t.cost_usd is not None], quantile)
    out: list[str | None] = []
    for t in batch:
        if t.feedback_score is not None and t.feedback_score < 0:
            out.append("negative_feedback")
        elif t.status == "error" or t.error:
            out.append("error")
        elif any(m.is_error for m in t.messages if m.role == "tool"):
            out.append("tool_failure")
        elif lat is not None and t.latency_ms is not None and t.latency_ms > lat:
            out.append("latency_outlier")
        elif cost is not None and t.cost_usd is not None and t.cost_usd > cost:
            out.append("cost_outlier")
        elif rate >= 1.0 or sample_unit(t.trace_id) < rate:
            out.append("sampled")
        else:
            out.append(None)
    return out


class _Writer:
    """Collects traces into column lists and writes a Parquet part every ``BATCH`` traces."""

    def __init__(self, store: TraceStore, rate: float, quantile: float, source_file: str) -> None:
        self.store, self.rate, self.quantile, self.source_file = store, rate, quantile, source_file
        self.batch: list[Trace] = []
        self.day = datetime.now(UTC).date()
        self.kept = 0

    def add(self, trace: Trace) -> None:
        self.batch.append(trace)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        reasons = keep_reasons(self.batch, self.rate, self.quantile)
        now = datetime.now(UTC)
        name = self.source_file
        rows = [trace_row(t, name, now, r is not None, r) for t, r in zip(self.batch, reasons, strict=True)]
        cols = {c: [row[c] for row in rows] for c in COLUMNS}
        self.store.write_table(pa.Table.from_pydict(cols, schema=SCHEMA), self.day)
        self.kept += sum(r is not None for r in reasons)
        self.batch = []


def ingest_files(
    ws: Workspace,
    paths: Iterable[Path],
    fmt: str = "auto",
    options: Mapping[str, str] | None = None,
    strict: bool = False,
    payload_sample: float | None = None,
    progress: Progress | None = None,
    actor: str = "unknown",
) -> IngestReport:
    """Ingest each file; malformed records are reported and skipped (or, with ``strict``, fatal).

    Traces whose id is already in the store are skipped, so re-running after a crash or on the
    same file adds nothing twice.
    """
    options = options or {}
    rate = ws.settings.payload_sample if payload_sample is None else payload_sample
    if not 0 < rate <= 1:
        raise IngestError(f"--payload-sample must be in (0, 1], got {rate}")
    store = TraceStore(ws.traces_dir)
    report = IngestReport()
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
                report.files.append(FileReport(str(path), "unknown", issues=[Issue(str(path), None, str(exc).split(": ", 1)[1])]))
                continue
            report.files.append(_ingest_one(ws, store, path, format_, options, strict, rate, seen, progress, actor))
    return report


def _is_blank(path: Path) -> bool:
    with path.open("rb") as fh:
        return not fh.read(4096).strip() and path.stat().st_size <= 4096


def _ingest_one(ws: Workspace, store: TraceStore, path: Path, fmt: Format, options: Mapping[str, str],
                strict: bool, rate: float, seen: set[str], progress: Progress | None, actor: str) -> FileReport:
    files = ws.t["ingest_files"]
    with ws.tx() as conn:
        file_id = conn.execute(files.insert().values(
            path=str(path), sha256=file_sha256(path), format=fmt.name, status="running", started_at=now_iso(),
        )).inserted_primary_key[0]
    try:
        rep = _stream(store, path, fmt, options, strict, rate, seen, progress, ws.settings.outlier_quantile)
    except BaseException:
        with ws.tx() as conn:  # a bad --map or --strict stop: the log says so instead of "running"
            conn.execute(files.update().where(files.c.id == file_id).values(status="failed", finished_at=now_iso()))
        raise
    with ws.tx() as conn:
        conn.execute(files.update().where(files.c.id == file_id).values(
            status="done", n_traces=rep.ingested, n_skipped=rep.skipped, n_issues=len(rep.issues), finished_at=now_iso()))
        ws.audit(conn, actor, "ingest", str(path), format=fmt.name, traces=rep.ingested, skipped=rep.skipped,
                 issues=len(rep.issues))
    return rep


def _stream(store: TraceStore, path: Path, fmt: Format, options: Mapping[str, str], strict: bool, rate: float,
            seen: set[str], progress: Progress | None, quantile: float) -> FileReport:
    rep = FileReport(str(path), fmt.name)
    writer = _Writer(store, rate, quantile, path.name)
    pending: list[Trace] = []  # strict mode writes nothing from a file with an issue
    for item in fmt.parse(path, options):
        if isinstance(item, Issue):
            if strict:
                raise IngestError(str(item))
            rep.issues.append(item)
            continue
        if item.trace_id in seen:
            rep.skipped += 1
            continue
        seen.add(item.trace_id)
        rep.ingested += 1
        if strict:
            pending.append(item)
        else:
            writer.add(item)
        if progress is not None and rep.ingested % 5000 == 0:
            progress(str(path), rep.ingested)
    for trace in pending:
        writer.add(trace)
    writer.flush()
    rep.payload_kept = writer.kept
    if progress is not None:
        progress(str(path), rep.ingested)
    return rep
