"""Helpers the format parsers share: JSON reading with line numbers, where a record sits in its file, times,
numbers and ids. The rules for chat messages are :mod:`evaltray.core.messages`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson

from evaltray.core.records import Trace
from evaltray.core.traces import micros
from evaltray.core.util import sha256_hex

from ._registry import Issue

#: What one source file may expand to (gzip bodies decompressed, YAML aliases expanded), in bytes; a file
#: past it is refused with one issue, and the other files go on. Refusing costs about this much memory and
#: a fraction of a second (a 1.6 MB gzip bomb of 1.6 GB is refused after 128 MiB, the process under 0.5 GB).
MAX_DECOMPRESSED_BYTES = 128 << 20
#: Alias references a YAML source file may use (a VCR cassette repeats a shared headers mapping, at most).
MAX_YAML_ALIASES = 100_000

#: What reading a record with unexpected value types raises; a parser reports it as an Issue.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, OSError, RecursionError)
_Item = TypeVar("_Item")


@overload
def guarded(
    path: Path, line: int | None, record_id: Any, read: Callable[..., Trace], *args: Any
) -> Iterator[Trace | Issue]: ...


@overload
def guarded(
    path: Path, line: int | None, record_id: Any, read: Callable[..., Iterable[_Item]], *args: Any
) -> Iterator[_Item | Issue]: ...


def guarded(path: Path, line: int | None, record_id: Any, read: Callable[..., Any], *args: Any) -> Iterator[Any]:
    """What ``read(*args)`` gives for one record (a trace, or traces and issues), or, where a value of the
    record has a type its parser does not expect, an Issue naming the record (its id, never its content)
    in place of what was not read yet."""
    try:
        out = read(*args)
        if isinstance(out, Trace):
            yield out
        else:
            yield from out
    except SHAPE_ERRORS as exc:
        yield Issue(
            str(path),
            line,
            f"a field has an unexpected type ({type(exc).__name__})",
            None if record_id is None else str(record_id),
        )


def read_jsonl(path: Path) -> Iterator[tuple[int, Any] | Issue]:
    """Yield ``(line_number, object)`` per non-blank line, or an :class:`Issue` for a line that is not JSON."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield lineno, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield Issue(str(path), lineno, f"not valid JSON ({decode_error_reason(exc)})")


def read_json(path: Path) -> Any | Issue:
    """The whole file as one JSON document, or an :class:`Issue` at the line where it breaks."""
    data = path.read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = data.count(b"\n", 0, exc.pos) + 1 if exc.pos is not None else None
        return Issue(str(path), line, f"not valid JSON ({decode_error_reason(exc)})")


def decode_error_reason(exc: orjson.JSONDecodeError) -> str:
    """Why orjson could not read a document, without the position (the issue names the line)."""
    return str(exc.msg) if hasattr(exc, "msg") else str(exc).split(":")[0]


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


class LineFinder:
    """Where a record sits in one file, for an issue to name its line. The file is read on the first lookup
    and kept only as long as this object, one parse of the file: a file with many bad records is read once,
    and a file changed on disk is read afresh by the next parse."""

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        self._data: bytes | None = data  # given for a document that is not a file (an OTLP/HTTP request body)

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = self.path.read_bytes()
        return self._data

    def line_of(self, needle: str | None) -> int | None:
        """Line of the first occurrence of ``needle``."""
        if not needle:
            return None
        data = self._bytes()
        pos = data.find(needle.encode("utf-8"))
        return None if pos < 0 else data.count(b"\n", 0, pos) + 1

    def record_line(self, key: str, value: Any, last: bool = False, anywhere: bool = False) -> int | None:
        """Line of ``"key": "value"`` (any JSON spacing): its first occurrence, or with ``last`` its last one;
        with ``anywhere``, where that is not found, the first occurrence of the value alone."""
        if not value:
            return None
        data = self._bytes()
        pattern = re.escape(f'"{key}"'.encode()) + rb"\s*:\s*" + re.escape(f'"{value}"'.encode())
        if last:
            hits = [m.start() for m in re.finditer(pattern, data)]
            pos = hits[-1] if hits else None
        else:
            found = re.search(pattern, data)
            pos = found.start() if found else None
        if pos is None:
            return self.line_of(value) if anywhere else None
        return data.count(b"\n", 0, pos) + 1


def head_text(head: bytes) -> str:
    return head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO-8601 text, epoch s/ms/µs/ns numbers (or their strings), or OTel ``[s, ns]``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return datetime.fromtimestamp(float(value[0]) + float(value[1]) / 1e9, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return parse_time(int(text))
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            v /= 1e9  # ns
        elif v > 1e14:
            v /= 1e6  # µs
        elif v > 1e11:
            v /= 1e3  # ms
        return datetime.fromtimestamp(v, UTC)
    return None


def epoch_micros(value: Any) -> int | None:
    """:func:`parse_time` as microseconds since the epoch; whole seconds without a datetime in between."""
    if type(value) is int and 0 <= value <= 10**11:  # seconds, by parse_time's scale rule
        return value * 1_000_000
    return micros(parse_time(value))


def as_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: nested fields of untrusted records read without checks."""
    return value if isinstance(value, dict) else {}


def first_value(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` that is set (not missing, None or empty text)."""
    for key in keys:
        value = mapping.get(key)
        if value is not None and value != "":
            return value
    return None


def sum_present(values: Iterable[Any]) -> Any:
    """The sum of the values that are known; None when none is."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def round_cost(cost: float | None) -> float | None:
    """A summed USD cost without float noise (``0.000270899999000003`` → ``0.000270899999``)."""
    return None if cost is None else round(cost, 12)


def content_id(obj: Any, seen: dict[str, int], prefix: str) -> str:
    """An id from the record's content, with its occurrence number: identical lines stay distinct
    traces (a question asked twice is two traffic events) yet re-ingest yields the same ids."""
    digest = sha256_hex(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))[:20]
    n = seen.get(digest, 0)
    seen[digest] = n + 1
    return f"{prefix}-{digest}" if n == 0 else f"{prefix}-{digest}-{n}"
