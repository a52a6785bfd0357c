"""The trace store: Parquet files partitioned by ingest date, queried with DuckDB."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb
import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import NotFound, QueryError
from .records import Message, Span, ToolCall, Trace
from .util import sha256_hex

_TS = pa.timestamp("us", tz="UTC")
_STR_LIST = pa.list_(pa.string())

#: The columns of every Parquet part file, in order, with their Arrow types: the one declaration that
#: :data:`SCHEMA`, the rows :class:`RowBuilder` makes and the ingest driver's reading of them derive from.
#: ``ingest_date`` is the hive partition.
COLUMN_TYPES: tuple[tuple[str, pa.DataType], ...] = (
    ("trace_id", pa.string()),
    ("source_format", pa.string()),
    ("source_file", pa.string()),
    ("ingested_at", _TS),
    ("start_time", _TS),
    ("end_time", _TS),
    ("latency_ms", pa.float64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("total_tokens", pa.int64()),
    ("cost_usd", pa.float64()),
    ("model", pa.string()),
    ("model_version", pa.string()),
    ("provider", pa.string()),
    ("session_id", pa.string()),
    ("user_id", pa.string()),
    ("name", pa.string()),
    ("feature", pa.string()),
    ("tags", _STR_LIST),
    ("feedback_score", pa.float64()),
    ("feedback_comment", pa.string()),
    ("prompt_template_id", pa.string()),
    ("system_hash", pa.string()),
    ("tools_hash", pa.string()),
    ("retrieved_doc_ids", _STR_LIST),
    ("corpus_version", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("n_messages", pa.int32()),
    ("n_user_turns", pa.int32()),
    ("n_tool_calls", pa.int32()),
    ("n_tool_errors", pa.int32()),
    ("output_chars", pa.int64()),
    ("payload_kept", pa.bool_()),
    ("keep_reason", pa.string()),
    ("input_text", pa.string()),
    ("output_text", pa.string()),
    ("messages", pa.string()),
    ("tools", pa.string()),
    ("spans", pa.string()),
    ("metadata", pa.string()),
    # true: the row's text went through the PII scrubber (or was removed: quarantined); null in older parts
    ("scrubbed", pa.bool_()),
)
SCHEMA = pa.schema(COLUMN_TYPES)
COLUMNS = SCHEMA.names
#: Where each column sits in a row tuple.
COLUMN_INDEX: dict[str, int] = {name: i for i, (name, _) in enumerate(COLUMN_TYPES)}
#: Columns with few distinct values: dictionary-encoded in Parquet (the rest would only try and give up).
_DICTIONARY_COLUMNS = [
    "source_format",
    "source_file",
    "model",
    "model_version",
    "provider",
    "session_id",
    "user_id",
    "name",
    "feature",
    "tags",
    "prompt_template_id",
    "system_hash",
    "tools_hash",
    "corpus_version",
    "status",
    "keep_reason",
]
#: Min/max statistics help predicates on metadata; on long payload text they only cost time.
_STATISTICS_COLUMNS = [
    c for c in COLUMNS if c not in ("input_text", "output_text", "messages", "tools", "spans", "metadata", "error")
]
#: What the curation stages concluded per trace (``.evaltray/derived/<name>.parquet``, replaced whole on each
#: run): the ``traces`` view joins them by id, null where a stage has not run or did not see the trace.
DERIVED_COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "dedup": (("dup_of", pa.string()), ("dup_level", pa.string()), ("dup_weight", pa.int64())),
    "clusters": (("cluster_id", pa.int64()), ("cluster_name", pa.string())),
}


def json_bytes(obj: Any) -> bytes:
    # bytes, not str: Arrow takes UTF-8 bytes for a string column, and decoding each value costs time
    try:
        return orjson.dumps(obj)  # the same bytes when the options are not needed, and a third faster
    except TypeError:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)


def _default(obj: Any) -> Any:
    """What JSON cannot hold natively, as JSON can: bytes as text, sets as lists, anything else as its str."""
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


#: The ``messages`` column's encoder (msgspec writes its structs; orjson cannot).
_MESSAGES = msgspec.json.Encoder(enc_hook=_default)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime | int | None) -> int | None:
    """A time as microseconds since the epoch (a naive datetime is UTC); an int already is one."""
    if value is None or isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int | None) -> datetime | None:
    """The UTC datetime of :func:`micros`."""
    return None if value is None else _EPOCH + timedelta(microseconds=value)


#: Columns that hold the payload; a trace that does not keep its payload has them null.
PAYLOAD_COLUMNS = ("input_text", "output_text", "messages", "tools", "spans")
_JSON_COLUMNS = ("messages", "tools", "spans", "metadata")
#: Columns set per batch by the ingest driver; :func:`trace_values` leaves them None.
BATCH_COLUMNS = ("source_file", "ingested_at", "payload_kept", "keep_reason", "scrubbed")


class CallRecord(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A tool call in its stored form (``id`` and ``arguments`` left out when null)."""

    id: Any = None
    name: str
    arguments: Any = None


class MessageRecord(msgspec.Struct, omit_defaults=True, gc=False):
    """A message in its stored form: the fields of :class:`Message`, those at their default left out of the JSON.

    ``tool_calls`` is a non-empty list of :class:`CallRecord` or None. The fields are typed loosely
    because the chat JSONL ingest decodes source messages straight into a subclass of this and keeps
    the ones already in stored form as they are (see ``ingest.openai``); :mod:`evaltray.core.messages` holds
    the rules that make one.
    """

    role: Any
    content: Any = None
    tool_calls: Any = None
    tool_call_id: Any = None
    name: Any = None
    is_error: Any = False


def message_record(m: Message) -> MessageRecord:
    """The stored form of a message."""
    calls = [CallRecord(id=c.id, name=c.name, arguments=c.arguments) for c in m.tool_calls]
    return MessageRecord(m.role, m.content, calls or None, m.tool_call_id, m.name, m.is_error)


def message_from_record(r: MessageRecord) -> Message:
    """The :class:`Message` whose :func:`message_record` is ``r``."""
    calls = [ToolCall(c.id, c.name, c.arguments) for c in r.tool_calls] if r.tool_calls else []
    return Message(r.role, r.content, calls, r.tool_call_id, r.name, r.is_error)


def trace_values(t: Trace, rows: RowBuilder | None = None) -> tuple[Any, ...]:
    """One row of :data:`SCHEMA` in column order, payload included (JSON columns as UTF-8 bytes);
    :data:`BATCH_COLUMNS` are None. ``rows``: the builder of the batch (it hashes each system prompt once)."""
    return (rows or RowBuilder()).row(
        trace_id=t.trace_id,
        source_format=t.source_format,
        messages=[message_record(m) for m in t.messages],
        tools=t.tools,
        start_time=t.start_time,
        end_time=t.end_time,
        latency_ms=t.latency_ms,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        total_tokens=t.total_tokens,
        cost_usd=t.cost_usd,
        model=t.model,
        model_version=t.model_version,
        provider=t.provider,
        session_id=t.session_id,
        user_id=t.user_id,
        name=t.name,
        feature=t.feature,
        tags=t.tags,
        feedback_score=t.feedback_score,
        feedback_comment=t.feedback_comment,
        prompt_template_id=t.prompt_template_id,
        retrieved_doc_ids=t.retrieved_doc_ids,
        corpus_version=t.corpus_version,
        status=t.status,
        error=t.error,
        spans=t.spans,
        metadata=t.metadata,
    )


class RowBuilder:
    """Turns traces' fields into rows of :data:`SCHEMA`: the one place a trace becomes a row.

    The system prompt and the tool list recur on most traces of an application, so a builder hashes each
    once, for as long as it lives: one ingest batch or chunk (nothing outlives the call that made it).
    """

    def __init__(self) -> None:
        self._system_hashes: dict[str, str] = {}
        self._tools_hashes: dict[bytes, str] = {}  # stored JSON -> hash of the canonical form
        # by identity: the chat JSONL path hands the same list to every line that sends it (``ingest.openai``
        # decodes each distinct list once per chunk); the list is held, so its id is not reused meanwhile
        self._tools_seen: dict[int, tuple[list[Any], bytes, str]] = {}

    def row(
        self,
        trace_id: str,
        source_format: str,
        messages: list[MessageRecord],
        tools: list[Any],
        start_time: datetime | int | None,
        end_time: datetime | int | None,
        latency_ms: float | None,
        input_tokens: int | None,
        output_tokens: int | None,
        total_tokens: int | None,
        cost_usd: float | None,
        model: str | None,
        model_version: str | None,
        provider: str | None,
        session_id: str | None,
        user_id: str | None,
        name: str | None,
        feature: str | None,
        tags: list[str],
        feedback_score: float | None,
        feedback_comment: str | None,
        prompt_template_id: str | None,
        retrieved_doc_ids: list[str],
        corpus_version: str | None,
        status: str,
        error: str | None,
        spans: list[Span],
        metadata: dict[str, Any],
    ) -> tuple[Any, ...]:
        """The row of a trace's fields (parameters in :class:`Trace` order, messages as records), in column
        order; :data:`BATCH_COLUMNS` are None. The chat JSONL path calls it without building a Trace, with
        times as :func:`micros` (Arrow reads integers ten times faster than datetimes)."""
        n_user_turns, n_tool_calls, n_tool_errors, input_text, output_text, system = message_summary(messages)
        if start_time is not None and type(start_time) is not int:  # the chat JSONL path passes micros already
            start_time = micros(start_time)
        if end_time is not None and type(end_time) is not int:
            end_time = micros(end_time)
        if latency_ms is None and start_time is not None and end_time is not None:
            latency_ms = (end_time - start_time) / 1000
        if total_tokens is None and input_tokens is not None and output_tokens is not None:
            total_tokens = input_tokens + output_tokens
        system_hash = (self._system_hashes.get(system) or self._hash_system(system)) if system else None
        tools_json, tools_hash = self._tools(tools) if tools else (None, None)
        n_messages = len(messages)
        output_chars = len(output_text) if output_text else 0
        source_file = ingested_at = payload_kept = keep_reason = scrubbed = None  # the driver sets them per batch
        # a tuple, the fastest row Arrow reads: each column under its own name, in COLUMN_TYPES order (a test
        # checks it column by column); the JSON columns as the bytes of their encoders
        return (
            trace_id,
            source_format,
            source_file,
            ingested_at,
            start_time,
            end_time,
            latency_ms,
            input_tokens,
            output_tokens,
            total_tokens,
            cost_usd,
            model,
            model_version,
            provider,
            session_id,
            user_id,
            name,
            feature,
            tags,
            feedback_score,
            feedback_comment,
            prompt_template_id,
            system_hash,
            tools_hash,
            retrieved_doc_ids,
            corpus_version,
            status,
            error,
            n_messages,
            n_user_turns,
            n_tool_calls,
            n_tool_errors,
            output_chars,
            payload_kept,
            keep_reason,
            input_text,
            output_text,
            _MESSAGES.encode(messages),
            tools_json,
            json_bytes(spans) if spans else None,
            json_bytes(metadata) if metadata else None,
            scrubbed,
        )

    def _hash_system(self, system: str) -> str:
        digest = self._system_hashes[system] = sha256_hex(system)[:16]
        return digest

    def _tools(self, tools: list[Any]) -> tuple[bytes, str]:
        """The stored JSON of a tools list and its hash (of the canonical form: cached by the stored JSON)."""
        seen = self._tools_seen.get(id(tools))
        if seen is not None and seen[0] is tools:
            return seen[1], seen[2]
        stored = json_bytes(tools)
        digest = self._tools_hashes.get(stored)
        if digest is None:
            digest = self._tools_hashes[stored] = sha256_hex(_canonical(tools))[:16]
        self._tools_seen[id(tools)] = (tools, stored, digest)
        return stored, digest


def message_summary(messages: list[MessageRecord]) -> tuple[int, int, int, str | None, str | None, str]:
    """User turns, tool calls, tool errors, ``input_text`` (last user text), ``output_text`` (last assistant
    text) and the system prompt of message records, in one pass."""
    system_parts: list[str] = []
    last_user: str | None = None
    output: str | None = None
    n_user = n_calls = n_tool_errors = 0
    for m in messages:  # one pass: this runs for every ingested trace
        role = m.role
        if role == "user":
            n_user += 1
            last_user = m.content
        elif role == "assistant":
            if m.content:
                output = m.content
        elif role in ("system", "developer"):
            system_parts.append(m.content or "")
        elif role == "tool" and m.is_error:
            n_tool_errors += 1
        if m.tool_calls:
            n_calls += len(m.tool_calls)
    return n_user, n_calls, n_tool_errors, last_user, output, "\n".join(system_parts)


_JSON_INDEXES = frozenset(SCHEMA.get_field_index(c) for c in _JSON_COLUMNS)
_LIST_INDEXES = frozenset(i for i, f in enumerate(SCHEMA) if f.type == _STR_LIST)


def values_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """A :data:`SCHEMA` table from :func:`trace_values` tuples."""
    if not rows:
        return SCHEMA.empty_table()
    columns = []
    for i, (field, values) in enumerate(zip(SCHEMA, zip(*rows, strict=True), strict=True)):
        if i in _JSON_INDEXES:
            columns.append(_utf8_array(values))
        elif i in _LIST_INDEXES and not any(values):  # all empty (tags, doc ids of most traces)
            columns.append(pa.ListArray.from_arrays(np.zeros(len(values) + 1, np.int32), pa.array([], pa.string())))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _utf8_array(values: tuple[bytes | None, ...]) -> pa.Array:
    """A string array from UTF-8 bytes (an encoder's output) laid end to end, instead of one value at a time."""
    n = len(values)
    present: Sequence[bytes]
    if None in values:
        present = [v for v in values if v is not None]
        if not present:
            return pa.nulls(n, pa.string())
        valid = np.fromiter((v is not None for v in values), np.bool_, n)
        lengths = np.zeros(n, np.int64)
        lengths[valid] = np.fromiter(map(len, present), np.int64, len(present))
        mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
    else:
        present, mask = cast("tuple[bytes, ...]", values), None
        lengths = np.fromiter(map(len, present), np.int64, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:  # beyond 32-bit offsets: Arrow splits the values itself
        return pa.array(values, pa.string())
    data = pa.py_buffer(b"".join(present))
    return pa.Array.from_buffers(pa.string(), n, [mask, pa.py_buffer(offsets.astype(np.int32)), data])


def read_messages(raw: str | None) -> list[dict[str, Any]]:
    """Messages as stored in the trace store, in their compact form (empty fields left out)."""
    if not raw:
        return []
    return [_compact(m) for m in orjson.loads(raw)]


def _compact(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in m.items() if v is not None and v != [] and v is not False}
    if "tool_calls" in out:
        out["tool_calls"] = [{k: v for k, v in c.items() if v is not None} for c in out["tool_calls"]]
    return out


def _canonical(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=_default).decode("utf-8")


_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT"}

#: How long one query over the traces may run (seconds) before it is stopped, and how much memory DuckDB may
#: take for it; both bound what a ``--where`` predicate can cost.
QUERY_TIMEOUT_S = 60.0
QUERY_MEMORY_LIMIT = "4GB"


class TraceStore:
    """Append-only Parquet parts under ``traces/ingest_date=YYYY-MM-DD/``."""

    def __init__(self, root: Path, derived: Path | None = None) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.derived = derived  # the curation stages' results, joined into the ``traces`` view

    def parts(self) -> list[Path]:
        return sorted(self.root.glob("ingest_date=*/*.parquet"))

    def write(self, rows: list[dict[str, Any]], day: date) -> Path:
        """Write one part atomically (temp file, then rename) and return its path."""
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        return self.write_table(table, day)

    def write_table(self, table: pa.Table, day: date) -> Path:
        return self.commit(self.write_tmp(table), day)

    def write_tmp(self, table: pa.Table) -> Path:
        """Write a part where readers do not look yet; :meth:`commit` publishes it."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"part-{uuid.uuid4().hex}.parquet"
        pq.write_table(
            table, tmp, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS, write_statistics=_STATISTICS_COLUMNS
        )
        return tmp

    def commit(self, tmp: Path, day: date) -> Path:
        """Publish a part from :meth:`write_tmp` under ``day`` with one rename: readers see all of it or none."""
        part_dir = self.root / f"ingest_date={day.isoformat()}"
        part_dir.mkdir(parents=True, exist_ok=True)
        final = part_dir / tmp.name
        tmp.replace(final)
        return final

    def read_part(self, part: Path) -> pa.Table:
        """One part as a :data:`SCHEMA` table; columns added since it was written are null."""
        table = pq.read_table(part, partitioning=None)
        if table.schema.names == COLUMNS:
            return table
        n = table.num_rows
        return pa.table(
            [table.column(f.name) if f.name in table.schema.names else pa.nulls(n, f.type) for f in SCHEMA],
            schema=SCHEMA,
        )

    def replace_part(self, part: Path, table: pa.Table) -> None:
        """Rewrite a published part in place: written aside, then one ``os.replace`` (readers see old or new)."""
        self.write_tmp(table).replace(part)  # .tmp is under the store root: the same filesystem

    def clean_tmp(self) -> None:
        """Remove parts a killed ingest left half-written; they were never visible to readers."""
        if self.tmp.exists():
            for p in self.tmp.iterdir():
                p.unlink(missing_ok=True)

    def dataset(self) -> ds.Dataset | None:
        parts = self.parts()
        if not parts:
            return None
        return ds.dataset(
            [str(p) for p in parts],
            format="parquet",
            schema=SCHEMA.append(pa.field("ingest_date", pa.string())),
            partitioning=ds.partitioning(pa.schema([("ingest_date", pa.string())]), flavor="hive"),
            partition_base_dir=str(self.root),
        )

    def trace_ids(self) -> set[str]:
        dset = self.dataset()
        if dset is None:
            return set()
        col = dset.to_table(columns=["trace_id"]).column("trace_id")
        return set(col.to_pylist())

    def count(self) -> int:
        dset = self.dataset()
        return 0 if dset is None else dset.count_rows()

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view, ``traces`` (the stored columns, the partition and the
        :data:`DERIVED_COLUMNS`), and no access to anything else: no file, not even a temporary directory
        (nothing spills to disk, so DuckDB has none to allow), and at most :data:`QUERY_MEMORY_LIMIT` of memory."""
        con = duckdb.connect(":memory:")
        # before anything else: DuckDB allows its temporary directory (``.tmp`` under the current directory
        # by default) to every query, even with external access off
        con.execute("SET temp_directory = ''")
        con.execute("SET max_temp_directory_size = '0B'")
        con.execute(f"SET memory_limit = '{QUERY_MEMORY_LIMIT}'")
        dset = self.dataset()
        con.register(
            "_parts", SCHEMA.append(pa.field("ingest_date", pa.string())).empty_table() if dset is None else dset
        )
        select, joins = ["p.*"], []
        for name, cols in DERIVED_COLUMNS.items():
            path = None if self.derived is None else self.derived / f"{name}.parquet"
            if path is not None and path.exists():  # read lazily: a query that names none of them skips the join
                con.register(f"_{name}", ds.dataset(str(path), format="parquet"))
                select += [f"_{name}.{col}" for col, _ in cols]
                joins.append(f"LEFT JOIN _{name} USING (trace_id)")
            else:
                select += [f"CAST(NULL AS {_SQL_TYPES[typ]}) AS {col}" for col, typ in cols]
        con.execute(f"CREATE VIEW traces AS SELECT {', '.join(select)} FROM _parts p {' '.join(joins)}")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    @contextmanager
    def sandboxed(
        self, where: str | None = None, timeout_s: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A :meth:`connect` connection whose queries are stopped after ``timeout_s`` seconds
        (:data:`QUERY_TIMEOUT_S` by default); a failed or stopped query is a :class:`QueryError` naming ``where``
        where one was given (never an option the user did not give)."""
        limit = QUERY_TIMEOUT_S if timeout_s is None else timeout_s
        what = f"--where {where!r}" if where else "trace query"
        con = self.connect()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            con.interrupt()

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        timer.start()
        stopped = QueryError(f"{what}: stopped after {limit:g} s (the query time limit); narrow the predicate")
        try:
            yield con
            if fired.is_set():  # an interrupt that landed before the query ran can leave a result that is not whole
                raise stopped
        except duckdb.InterruptException:
            raise stopped from None
        except duckdb.Error as exc:
            raise QueryError(f"{what}: {str(exc).splitlines()[0]}") from None
        finally:
            timer.cancel()
            timer.join()  # an interrupt under way finishes before the connection closes
            con.close()

    def query(
        self,
        where: str | None = None,
        columns: Iterable[str] = ("*",),
        limit: int | None = None,
        order_by: str | None = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> pa.Table:
        """Rows of ``traces`` matching a SQL predicate; the predicate cannot escape the view, and its values
        may be bound parameters (``$name`` in ``where``, the values in ``params``); ``limit`` is 0 or more."""
        if limit is not None and limit < 0:
            raise QueryError(f"limit must be 0 or more, got {limit}")
        cols = ", ".join(columns)
        sql = f"SELECT {cols} FROM traces"
        if where:
            sql += f" {where_clause(where)}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.sandboxed(where, timeout_s) as con:
            return con.sql(sql, params=dict(params) if params else None).to_arrow_table()

    def get(self, trace_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(trace_ids)
        if not ids:
            return {}
        with self.sandboxed() as con:
            table = con.sql("SELECT * FROM traces WHERE trace_id IN (SELECT unnest($1))", params=[ids]).to_arrow_table()
        return {r["trace_id"]: r for r in table.to_pylist()}

    def iter_batches(self, columns: list[str], batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        dset = self.dataset()
        if dset is not None:
            yield from dset.to_batches(columns=columns, batch_size=batch_size)


def where_clause(where: str) -> str:
    """``WHERE`` and a checked predicate, on lines of its own: a trailing ``--`` comment ends there, and
    cannot take what follows (a ``LIMIT``) with it."""
    return f"WHERE (\n{check_predicate(where)}\n)"


def conjunction(*predicates: str | None) -> str:
    """The predicates that are given, each checked on its own, joined with AND: one cannot close the
    parenthesis of another (``1) OR (1`` does not undo the ``payload_kept`` before it)."""
    return " AND ".join(f"(\n{check_predicate(p)}\n)" for p in predicates if p)


def check_predicate(where: str) -> str:
    """Accept ``where`` only if it is one boolean expression: its parentheses balanced, no second statement,
    no clause of its own (``1=1) UNION …``, ``1=1) GROUP BY …``, ``1=1) --`` before a LIMIT are refused)."""
    refused = QueryError(f"--where {where!r}: must be a single boolean expression over trace columns")
    probe = f"SELECT 1 FROM traces WHERE (\n{where}\n)"
    try:
        if not _balanced(where):
            raise refused
        statements = duckdb.extract_statements(probe)
    except duckdb.Error as exc:
        raise QueryError(f"--where {where!r}: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT or not _only_where(probe):
        raise refused
    return where


def _balanced(sql: str) -> bool:
    """Whether every parenthesis of ``sql`` outside strings, quoted names and comments closes one it opened."""
    tokens = duckdb.tokenize(sql)
    depth = 0
    for i, (start, kind) in enumerate(tokens):
        if kind != duckdb.token_type.operator:
            continue
        text = sql[start : tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)]
        for ch in text:
            depth += (ch == "(") - (ch == ")")
            if depth < 0:
                return False
    return depth == 0


def _select_without_where(sql: str) -> Any:
    """The parse tree of a one-statement query with its WHERE left out (None where it does not parse)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_external_access = false")
        tree = orjson.loads(one_row(con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]))[0])
    finally:
        con.close()
    statements = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        return None
    node = statements[0]["node"]
    node.pop("where_clause", None)
    return node


@functools.cache
def _bare_select() -> Any:
    return _select_without_where("SELECT 1 FROM traces WHERE (\nTRUE\n)")


def _only_where(probe: str) -> bool:
    """Whether ``probe`` is ``SELECT 1 FROM traces WHERE (…)`` and nothing else."""
    return bool(_select_without_where(probe) == _bare_select())


_PERCENTILE_COLUMNS = ("latency_ms", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "n_messages")


def one_row(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = cursor.fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns a row
    return row


def trace_stats(store: TraceStore, where: str | None = None) -> dict[str, Any]:
    """Counts by source format, model, day and feature, and percentiles of latency, tokens and cost."""
    pred = where_clause(where) if where else ""
    with store.sandboxed(where) as con:
        total, kept, errors, negative = one_row(
            con.execute(
                f"SELECT count(*), count(*) FILTER (payload_kept), count(*) FILTER (status = 'error'), "
                f"count(*) FILTER (feedback_score < 0) FROM traces {pred}"
            )
        )
        by: dict[str, dict[str, int]] = {}
        for key, expr in (
            ("source_format", "source_format"),
            ("model", "model"),
            ("day", "CAST(CAST(start_time AS DATE) AS VARCHAR)"),
            ("feature", "feature"),
        ):
            rows = con.execute(
                f"SELECT coalesce({expr}, '(none)') AS k, count(*) AS n FROM traces {pred} "
                f"GROUP BY k ORDER BY n DESC, k LIMIT 50"
            ).fetchall()
            by[key] = {k: n for k, n in rows}
        percentiles: dict[str, dict[str, float | None]] = {}
        for col in _PERCENTILE_COLUMNS:
            p50, p90, p99, mx = one_row(
                con.execute(
                    f"SELECT quantile_cont({col}, 0.5), quantile_cont({col}, 0.9), quantile_cont({col}, 0.99), "
                    f"max({col}) FROM traces {pred}"
                )
            )
            percentiles[col] = {"p50": p50, "p90": p90, "p99": p99, "max": None if mx is None else float(mx)}
    return {
        "total": total,
        "payload_kept": kept,
        "errors": errors,
        "negative_feedback": negative,
        "by": by,
        "percentiles": percentiles,
    }


#: The columns ``traces list`` shows, in order.
LIST_COLUMNS = (
    "trace_id",
    "source_format",
    "model",
    "feature",
    "n_messages",
    "n_tool_calls",
    "latency_ms",
    "cost_usd",
    "feedback_score",
    "status",
    "input_text",
)


@dataclass
class TraceListing:
    """Traces a predicate matched, and which of them hold text as recorded (not scrubbed yet)."""

    rows: list[dict[str, Any]]
    unscrubbed: list[str]


def list_traces(
    store: TraceStore, where: str | None = None, limit: int | None = 20, scrubs: bool = True
) -> TraceListing:
    """The first ``limit`` traces matching ``where`` by id; ``unscrubbed`` names those with text left as
    recorded, where the workspace ``scrubs``."""
    rows = store.query(where, columns=[*LIST_COLUMNS, "scrubbed"], limit=limit, order_by="trace_id").to_pylist()
    unscrubbed = [r["trace_id"] for r in rows if r.pop("scrubbed") is not True and r["input_text"]]
    return TraceListing(rows, unscrubbed if scrubs else [])


def show_trace(store: TraceStore, trace_id: str, scrubs: bool = True) -> TraceListing:
    """One trace with its conversation, tools, spans and metadata decoded; a listing of one row."""
    found = store.get([trace_id])
    if trace_id not in found:
        raise NotFound(f"no trace {trace_id!r}")
    row = found[trace_id]
    for key in ("tools", "spans", "metadata"):
        if row.get(key):
            row[key] = orjson.loads(row[key])
    row["messages"] = read_messages(row["messages"])
    unscrubbed = scrubs and row["scrubbed"] is not True and bool(row["messages"])
    return TraceListing([row], [trace_id] if unscrubbed else [])
