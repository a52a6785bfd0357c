"""Corpora a tray is checked against, read as a stream of documents: fine-tuning data (JSONL, Parquet,
text), prompt files with few-shot examples, judge prompts and rubrics (YAML, JSON).

Nothing is loaded whole: JSONL and text are read a line at a time (a line past :data:`MAX_LINE` bytes is
reported and skipped, not held), Parquet a record batch at a time. A line that is binary (a NUL byte), not
UTF-8 or not JSON is reported with its file and line number and skipped; the rest of the file is still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry
from evaltray.core.untrusted import InputTooLarge, read_yaml_file, size_text

from .grams import kernels

__all__ = [
    "BadLine",
    "CorpusError",
    "Doc",
    "READERS",
    "TextBlock",
    "read_corpora",
    "read_corpus",
    "read_corpus_blocks",
    "read_jsonl_blocks",
    "strings_of",
]

#: A line longer than this is reported and skipped (read through in pieces, never held).
MAX_LINE = 8 << 20
#: Whole-file formats (a judge's YAML or JSON) are read only below this size.
MAX_WHOLE = 64 << 20
#: Suffixes a directory walk reads (prompt folders hold other files too: images, lock files).
TEXT_SUFFIXES = {".txt", ".md", ".prompt", ".jinja", ".j2", ".tmpl", ".jsonl", ".json", ".yaml", ".yml", ".parquet"}


class CorpusError(EvaltrayError):
    """A corpus that cannot be read at all (missing, a format we do not read); per-line faults are BadLines."""


@dataclass(frozen=True, slots=True)
class Doc:
    """One document of a corpus: a JSONL line, a Parquet row, a text paragraph, a judge file's string."""

    source: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was skipped, and why (binary, not UTF-8, not JSON, too long)."""

    source: str
    line: int
    reason: str


Item = Doc | BadLine
Reader = Callable[[Path], Iterator[Item]]
READERS: Registry[Reader] = Registry("corpus format", error=CorpusError)


def strings_of(value: Any) -> list[str]:
    """Every string inside a JSON value (keys left out), depth first: the text a record carries."""
    out: list[str] = []
    _collect(value, out, 0)
    return out


def _collect(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, str):
        out.append(value)
    elif depth > 64:  # deeper than any record of text: the rest without recursion
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict | list):
                stack.extend(reversed(list(v.values()) if isinstance(v, dict) else v))
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _collect(v, out, depth + 1)


def _lines(fh: BinaryIO, source: str) -> Iterator[tuple[int, bytes | BadLine]]:
    """``(line number, bytes)`` per line, or a BadLine for one past :data:`MAX_LINE` (drained in pieces)."""
    no = 0
    while True:
        raw = fh.readline(MAX_LINE + 1)
        if not raw:
            return
        no += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(MAX_LINE)
            yield no, BadLine(source, no, f"line longer than {size_text(MAX_LINE)}, skipped")
            continue
        yield no, raw


def _decoded(raw: bytes, source: str, no: int) -> str | BadLine:
    if b"\0" in raw:
        return BadLine(source, no, "binary data (a NUL byte)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(source, no, f"not UTF-8 (byte {exc.start + 1})")


def _record(raw: bytes, source: str, no: int) -> Doc | BadLine | None:
    """One JSONL line as a document (every string in the record, joined by newlines), a BadLine, or None
    for a blank line."""
    if not raw.strip():
        return None
    text = _decoded(raw, source, no)
    if isinstance(text, BadLine):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return BadLine(source, no, f"not JSON ({str(exc).split(':')[0]})")  # the reason, without orjson's position
    return Doc(source, no, "\n".join(strings_of(value)))


@READERS.register("jsonl", "ndjson")
def read_jsonl(path: Path) -> Iterator[Item]:
    """One document per JSON line: every string in the record, joined by newlines."""
    source = str(path)
    with path.open("rb") as fh:
        for no, raw in _lines(fh, source):
            item = raw if isinstance(raw, BadLine) else _record(raw, source, no)
            if item is not None:
                yield item


#: Bytes the block reader reads at a time (whole lines: a block ends at its last newline).
BLOCK = 2 << 20


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Many JSONL lines as one buffer: line ``first + i`` of the file is line ``i`` of ``data`` (lines end
    with ``\\n``), holding only the record's strings; keys, numbers and JSON syntax are spaces, and a line
    handed over apart (a Doc or a BadLine) or blank is all spaces. ``docs``: its lines that are documents;
    ``size``: the bytes of their strings."""

    source: str
    first: int
    data: bytes
    docs: int
    size: int


def _raw_blocks(fh: BinaryIO, source: str) -> Iterator[tuple[int, bytes] | BadLine]:
    """``(lines before it, block)`` for blocks of whole lines of about :data:`BLOCK` bytes, and a BadLine for a
    line past :data:`MAX_LINE` (drained in pieces, never held whole)."""
    before, rest = 0, b""
    while True:
        chunk = fh.read(BLOCK)
        if not chunk:
            if rest:
                yield before, rest + b"\n"
            return
        buf = rest + chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            rest = buf
            if len(buf) > MAX_LINE:
                while chunk and b"\n" not in chunk:
                    chunk = fh.read(BLOCK)
                rest = chunk[chunk.find(b"\n") + 1 :] if chunk else b""
                before += 1
                yield BadLine(source, before, f"line longer than {size_text(MAX_LINE)}, skipped")
            continue
        rest = buf[cut + 1 :]
        yield before, buf[: cut + 1]
        before += buf.count(b"\n", 0, cut + 1)


def _escapes(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of JSON string escapes: the backslash that starts each, and the byte it escapes (a run of
    backslashes pairs up from its start)."""
    bs = np.flatnonzero(arr == 92)
    if not len(bs):
        return bs, bs
    first = np.r_[True, np.diff(bs) != 1]
    run_start = np.flatnonzero(first)[np.cumsum(first) - 1]
    starter = bs[(np.arange(len(bs)) - run_start) % 2 == 0]
    return starter, starter + 1


def _strings_only(arr: np.ndarray, newlines: np.ndarray) -> tuple[np.ndarray, int]:
    """The bytes of ``arr`` (valid JSON lines, or blanks, ending at ``newlines``) with everything but the
    content of string values (keys, numbers, syntax, escapes) turned to spaces, newlines kept; and how many
    bytes of string content there are. The compiled kernel, where installed, does the same in one pass."""
    fast = kernels()
    if fast is not None:
        out, kept = fast.strings_only(arr)
        return out, int(kept)
    starter, escaped = _escapes(arr)
    quotes = np.flatnonzero(arr == 34)
    if len(escaped):
        quotes = np.setdiff1d(quotes, escaped, assume_unique=True)
    opens, closes = quotes[0::2], quotes[1::2]
    after = closes + 1  # the next byte that is not blank: ':' after a string makes it a key
    while len(after):
        blank = np.flatnonzero((arr[after] == 32) | (arr[after] == 9) | (arr[after] == 13))
        if not len(blank):
            break
        after[blank] += 1
    value = arr[after] != 58
    edge = np.zeros(len(arr) + 1, dtype=np.int8)  # +1 after a value's opening quote, -1 at its closing one
    edge[opens[value] + 1] = 1
    edge[closes[value]] -= 1
    keep = np.cumsum(edge[:-1], dtype=np.int8).view(bool)
    keep[starter] = False
    keep[escaped] = False
    out = np.where(keep, arr, np.uint8(32))
    out[newlines] = 10
    return out, int(np.count_nonzero(keep))


def _block_items(before: int, block: bytes, source: str) -> Iterator[Doc | BadLine | TextBlock]:
    """A block's lines: the BadLines, the lines with ``\\u`` escapes as Docs (read the long way: their text
    differs from their bytes), and the rest as one TextBlock (a line handed over apart is blank in it)."""
    lines = block.split(b"\n")[:-1]
    ends = np.cumsum([len(x) + 1 for x in lines], dtype=np.int64)
    apart: list[int] = []
    docs = 0
    for i, line in enumerate(lines):
        no = before + i + 1
        if len(line) > MAX_LINE:
            apart.append(i)
            yield BadLine(source, no, f"line longer than {size_text(MAX_LINE)}, skipped")
            continue
        if b"\\u" not in line:
            try:
                orjson.loads(line)
                docs += 1
                continue
            except orjson.JSONDecodeError:
                pass
        apart.append(i)
        item = _record(line, source, no)
        if item is not None:
            yield item
    arr = np.frombuffer(block, dtype=np.uint8)
    if apart:
        arr = arr.copy()
        for i in apart:
            arr[ends[i] - len(lines[i]) - 1 : ends[i] - 1] = 32
    out, size = _strings_only(arr, ends - 1)
    yield TextBlock(source, before + 1, out.tobytes(), docs, size)


def read_jsonl_blocks(path: Path) -> Iterator[Doc | BadLine | TextBlock]:
    """A JSONL file as :class:`TextBlock` s of whole lines, for scanning many lines at once; a line with
    ``\\u`` escapes comes as a Doc, a bad line as a BadLine (the reasons :func:`read_jsonl` gives)."""
    source = str(path)
    with path.open("rb") as fh:
        for got in _raw_blocks(fh, source):
            if isinstance(got, BadLine):
                yield got
            else:
                yield from _block_items(*got, source)


@READERS.register("txt", "md", "prompt", "jinja", "j2", "tmpl")
def read_text(path: Path) -> Iterator[Item]:
    """One document per paragraph (lines up to a blank line), numbered by its first line."""
    source = str(path)
    para: list[str] = []
    start = 0
    with path.open("rb") as fh:
        for no, raw in _lines(fh, source):
            text = raw if isinstance(raw, BadLine) else _decoded(raw, source, no)
            if isinstance(text, BadLine):
                yield text
                continue
            if text.strip():
                start = start or no
                para.append(text)
                continue
            if para:
                yield Doc(source, start, "".join(para))
            para, start = [], 0
    if para:
        yield Doc(source, start, "".join(para))


@READERS.register("parquet")
def read_parquet(path: Path) -> Iterator[Item]:
    """One document per row: its string columns (lists and structs of strings too), a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"{path}: not a Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield Doc(str(path), row, "\n".join(strings_of(record)))


def _whole(path: Path) -> Any:
    if path.stat().st_size > MAX_WHOLE:
        raise CorpusError(f"{path}: larger than {size_text(MAX_WHOLE)}; give large corpora as JSONL, text or Parquet")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return read_yaml_file(path, max_aliases=1000, max_bytes=MAX_WHOLE, what="judge or prompt file")
        except InputTooLarge as exc:
            raise CorpusError(f"{path}: {exc}") from None
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not JSON ({exc})") from None


@READERS.register("yaml", "yml", "json")
def read_structured(path: Path) -> Iterator[Item]:
    """A judge's or prompt's YAML/JSON file: one document per string in it (a rubric, a system prompt, an
    example), numbered in the order they appear."""
    for i, text in enumerate(strings_of(_whole(path)), 1):
        yield Doc(str(path), i, text)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or directory")
    return [path]


def read_corpus(path: Path) -> Iterator[Item]:
    """Every document of a corpus file (by its suffix; anything else is read as text), or of every readable
    file under a directory, in path order."""
    for file in _files(path):
        suffix = file.suffix.lower().lstrip(".")
        reader = READERS.get(suffix) if suffix in READERS else read_text
        yield from reader(file)


def read_corpus_blocks(path: Path) -> Iterator[Item | TextBlock]:
    """:func:`read_corpus`, but JSONL files come as :class:`TextBlock` s of many lines (scanned at once)."""
    for file in _files(path):
        if file.suffix.lower() in (".jsonl", ".ndjson"):
            yield from read_jsonl_blocks(file)
        else:
            yield from read_corpus(file)


def read_corpora(paths: Iterable[Path]) -> Iterator[Item]:
    for path in paths:
        yield from read_corpus(path)
