"""Any dataset of rows — JSONL, CSV or Parquet — mapped onto traces with ``--map target=field``.

``--map input=question --map output=answer --map id=ID`` says which field holds what; a dotted
field (``request.query``) reaches into nested JSON, including JSON written into a CSV cell.
Targets left unmapped fall back to common field names (see :data:`DEFAULTS`); fields that no
target uses are kept in ``metadata``. Rows without an id get one from their content, so re-ingest
is idempotent.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from evaltray.core.errors import IngestError
from evaltray.core.messages import chat_messages, maybe_json, text_of
from evaltray.core.records import Message, Trace

from ._common import as_float, as_int, content_id, head_text, parse_time, read_jsonl
from ._registry import Issue, register
from .feedback import feedback_score

#: Every name ``--map`` accepts on its left-hand side.
TARGETS: tuple[str, ...] = (
    "id",
    "input",
    "output",
    "system",
    "messages",
    "feature",
    "session_id",
    "user_id",
    "model",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "feedback",
    "tags",
    "timestamp",
    "context",
    "retrieved_doc_ids",
)
#: Field names tried, in order, for a target the map leaves out; any other target tries its own name.
DEFAULTS: dict[str, tuple[str, ...]] = {
    "id": ("id", "ID", "trace_id"),
    "input": ("input", "question", "query", "prompt", "user_query"),
    "output": ("output", "answer", "response", "completion", "chatgpt_response"),
}
_MISSING = object()


# --------------------------------------------------------------------------- the field map


class FieldMap:
    """The user's ``--map`` options, checked; :meth:`sources` adds the default names a record offers."""

    def __init__(self, options: Mapping[str, str]) -> None:
        unknown = sorted(k for k in options if k not in TARGETS)
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise IngestError(f"--map: unknown target {names}; valid targets: {', '.join(TARGETS)}")
        empty = sorted(k for k, v in options.items() if not str(v).strip())
        if empty:
            raise IngestError(f"--map {empty[0]}=: give the field name after '='")
        self.explicit = {k: str(v).strip() for k, v in options.items()}
        self._cache: dict[tuple[str, ...], dict[str, str]] = {}

    def sources(self, keys: Iterable[str]) -> dict[str, str]:
        """Target → field for a record whose top-level fields are ``keys``."""
        key = tuple(keys)
        found = self._cache.get(key)
        if found is None:
            present = set(key)
            found = dict(self.explicit)
            for target in TARGETS:
                if target not in found:
                    name = next((n for n in DEFAULTS.get(target, (target,)) if n in present), None)
                    if name is not None:
                        found[target] = name
            if len(self._cache) < 64:  # JSONL records usually share a handful of key sets
                self._cache[key] = found
        return found

    def check_columns(self, path: Path, columns: list[str]) -> None:
        """Fail before reading a table whose header lacks a mapped column or any input column."""
        present = set(columns)
        for target, source in self.explicit.items():
            if source not in present and source.split(".", 1)[0] not in present:
                raise IngestError(
                    f"{path}: --map {target}={source}: no column {source!r} (columns: {', '.join(columns)})"
                )
        found = self.sources(columns)
        if "input" not in found and "messages" not in found:
            raise IngestError(
                f"{path}: no input column (tried {', '.join(DEFAULTS['input'])}); "
                f"pass --map input=COLUMN (columns: {', '.join(columns)})"
            )


def resolve(record: Mapping[str, Any], source: str) -> Any:
    """The value at ``source`` (a field name, or a dotted path into nested JSON); ``_MISSING`` if absent."""
    if source in record:
        return record[source]
    cur: Any = record
    for part in source.split("."):
        if isinstance(cur, str):
            cur = maybe_json(cur)  # JSON written into a CSV cell or a string column
        if isinstance(cur, Mapping):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _drop(value: Any, parts: list[str]) -> Any:
    """``value`` without the leaf at ``parts`` (copied along the path, emptied dicts removed)."""
    value = cell(value)
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    out = dict(value)
    if len(parts) == 1:
        del out[parts[0]]
    else:
        out[parts[0]] = _drop(out[parts[0]], parts[1:])
        if out[parts[0]] == {}:
            del out[parts[0]]
    return out


def cell(value: Any) -> Any:
    """A string holding a JSON object or array, decoded; anything else unchanged."""
    if isinstance(value, str) and value[:64].lstrip()[:1] in ("{", "["):
        return maybe_json(value)
    return value


def leftover(record: Mapping[str, Any], used: Iterable[str], drop_empty: bool = False) -> dict[str, Any]:
    """The record's fields that no target used; a ``metadata`` object among them is merged in."""
    out: dict[str, Any] = {k: v for k, v in record.items()}
    for source in used:
        if source in out:
            del out[source]
            continue
        root, _, rest = source.partition(".")
        if rest and root in out:
            out[root] = _drop(out[root], rest.split("."))
            if out[root] == {}:
                del out[root]
    out = {k: cell(v) for k, v in out.items() if not (drop_empty and (v is None or v == ""))}
    inner = out.get("metadata")
    if isinstance(inner, dict):
        del out["metadata"]
        out = {**inner, **out}  # the row's own columns win over a nested metadata object
    return out


# --------------------------------------------------------------------------- values → a trace


def _present(value: Any) -> bool:
    return value is not _MISSING and value is not None and value != ""


def _chat(value: Any) -> list[Message] | None:
    """Messages if ``value`` is a chat list (or JSON text of one); None otherwise."""
    value = cell(value)
    if isinstance(value, dict) and "role" in value:
        value = [value]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return chat_messages(value)
    return None


def _strings(value: Any) -> list[str]:
    """A list of strings from a list, a JSON array in a string, or comma-separated text."""
    value = cell(value)
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and v != ""]
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [] if value is None else [str(value)]


def _context(value: Any) -> tuple[list[str], list[str]]:
    """Retrieved passages and, where each passage is an object with an id, their document ids."""
    value = cell(value)
    if not isinstance(value, list):
        value = [value]
    passages, ids = [], []
    for item in value:
        if isinstance(item, dict):
            doc_id = item.get("id", item.get("doc_id", item.get("document_id")))
            if doc_id is not None:
                ids.append(str(doc_id))
            text = text_of(item.get("text", item.get("content", item.get("page_content"))))
        else:
            text = text_of(item)
        if text:
            passages.append(text)
    return passages, ids


def build_trace(
    record: Mapping[str, Any], fmap: FieldMap, fmt: str, seen: dict[str, int], drop_empty: bool = False
) -> Trace | str:
    """A trace from one row, or the reason (naming fields, never content) why the row has no input."""
    sources = fmap.sources(record.keys())
    values = {t: resolve(record, s) for t, s in sources.items()}
    got = {t: v for t, v in values.items() if _present(v)}

    messages: list[Message] = []
    if "messages" in got:
        messages = _chat(got["messages"]) or []
    if not messages and "input" in got:
        messages = _chat(got["input"]) or [Message(role="user", content=text_of(got["input"]))]
    if not messages or not any(m.content or m.tool_calls for m in messages):
        if "input" in sources or "messages" in sources:
            fields = " / ".join(repr(sources[t]) for t in ("input", "messages") if t in sources)
            return f"no input: field {fields} is missing or empty"
        return f"no input field (tried {', '.join(DEFAULTS['input'])}); pass --map input=FIELD"
    if "system" in got and not any(m.role == "system" for m in messages):
        messages.insert(0, Message(role="system", content=text_of(got["system"])))
    if "output" in got:
        answer = text_of(cell(got["output"]))
        last = messages[-1]
        if not (last.role == "assistant" and last.content == answer):
            messages.append(Message(role="assistant", content=answer))

    metadata = leftover(record, sources.values(), drop_empty)
    start = None
    if "timestamp" in got:
        try:
            start = parse_time(got["timestamp"])
        except (ValueError, TypeError, OverflowError, OSError):
            start = None
        if start is None:
            metadata["timestamp"] = got["timestamp"]  # unparseable: keep the raw value rather than lose it
    doc_ids = _strings(got["retrieved_doc_ids"]) if "retrieved_doc_ids" in got else []
    if "context" in got:
        passages, context_ids = _context(got["context"])
        metadata["context"] = passages
        doc_ids = doc_ids or context_ids
    inp, out = as_int(got.get("input_tokens")), as_int(got.get("output_tokens"))
    trace_id = str(got["id"]) if "id" in got else content_id(record, seen, fmt)
    return Trace(
        trace_id=trace_id,
        source_format=fmt,
        messages=messages,
        start_time=start,
        latency_ms=as_float(got.get("latency_ms")),
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out if inp is not None and out is not None else None,
        cost_usd=as_float(got.get("cost_usd")),
        model=_text(got.get("model")),
        session_id=_text(got.get("session_id")),
        user_id=_text(got.get("user_id")),
        feature=_text(got.get("feature")),
        tags=_strings(got["tags"]) if "tags" in got else [],
        feedback_score=feedback_score(cell(got["feedback"])) if "feedback" in got else None,
        retrieved_doc_ids=doc_ids,
        metadata=metadata,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Rows:
    """Turns rows into traces and Issues, with one id per trace per file."""

    def __init__(self, path: Path, fmap: FieldMap, fmt: str) -> None:
        self.path, self.fmap, self.fmt = path, fmap, fmt
        self.seen: dict[str, int] = {}
        self.first_line: dict[str, int] = {}

    def row(self, line: int, record: Mapping[str, Any], drop_empty: bool = False) -> Trace | Issue:
        result = build_trace(record, self.fmap, self.fmt, self.seen, drop_empty)
        if isinstance(result, str):
            rid = self._id(record)
            return Issue(str(self.path), line, result, rid)
        first = self.first_line.setdefault(result.trace_id, line)
        if first != line:
            # the driver would silently skip the second as "already ingested"
            return Issue(str(self.path), line, f"duplicate id (first at line {first})", result.trace_id)
        return result

    def _id(self, record: Mapping[str, Any]) -> str | None:
        source = self.fmap.sources(record.keys()).get("id")
        value = resolve(record, source) if source else _MISSING
        return str(value) if _present(value) else None


# --------------------------------------------------------------------------- the three formats


def _sniff_jsonl(path: Path, head: bytes) -> bool:
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return False
    text = head_text(head)
    first, newline, _ = text.partition("\n")
    if not newline and len(head) >= (1 << 16):
        return first.startswith("{") and first.rstrip() != "{"  # one line longer than the sniffed head
    return isinstance(maybe_json(first.strip()), dict)


@register("jsonl", sniff=_sniff_jsonl, priority=1000)
def parse_jsonl(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """JSON Lines rows mapped with --map target=field (last resort for .jsonl files)."""
    rows = _Rows(path, FieldMap(options), "jsonl")
    for item in read_jsonl(path):
        if isinstance(item, Issue):
            yield item
            continue
        lineno, obj = item
        if not isinstance(obj, dict):
            yield Issue(str(path), lineno, "expected a JSON object")
            continue
        yield rows.row(lineno, obj)


def _sniff_csv(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in (".csv", ".tsv")


#: CSV cells holding whole transcripts exceed the csv module's 128 KiB default.
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


@register("csv", sniff=_sniff_csv, priority=900)
def parse_csv(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """CSV (or .tsv) rows with a header, mapped with --map target=column."""
    fmap = FieldMap(options)
    rows = _Rows(path, fmap, "csv")
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # utf-8-sig drops the BOM Excel writes; newline="" lets quoted cells keep their line breaks
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        line = 1
        try:
            header = next(reader, None)
            if header is None:
                return
            header = [h.strip() for h in header]
            fmap.check_columns(path, header)
            while True:
                line = reader.line_num + 1  # a row starts after the previous one ended
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield Issue(str(path), line, f"unreadable CSV row ({exc})")
                    continue
                if not any(v.strip() for v in values):
                    continue
                if len(values) > len(header):
                    yield Issue(str(path), line, f"row has {len(values)} cells, header has {len(header)}")
                    continue
                yield rows.row(line, dict(zip(header, values, strict=False)), drop_empty=True)
        except UnicodeDecodeError:
            yield Issue(str(path), line, "not UTF-8 text; save the file as UTF-8 and ingest it again")


def _sniff_parquet(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def jsonable(value: Any) -> Any:
    """A Parquet cell as plain JSON data (bytes as text, decimals and times as strings)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


_PARQUET_BATCH = 2048


@register("parquet", sniff=_sniff_parquet, priority=900)
def parse_parquet(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """Parquet rows (HF datasets, pandas) mapped with --map target=column; read batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fmap = FieldMap(options)
    rows = _Rows(path, fmap, "parquet")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        yield Issue(str(path), None, f"not a readable Parquet file ({str(exc).splitlines()[0]})")
        return
    with pf:
        fmap.check_columns(path, pf.schema_arrow.names)
        n = 0
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
            for record in batch.to_pylist():
                n += 1
                yield rows.row(n, jsonable(record))
