"""The format registry: each source format registers a parser and a sniffer by decorator (in the one
registry, :class:`~evaltray.core.registry.Registry`); a format of one record per line may add a fast path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltray.core.errors import IngestError
from evaltray.core.records import Trace
from evaltray.core.registry import Registry


@dataclass(frozen=True, slots=True)
class Issue:
    """A record that could not be read: where it is and why, never its content."""

    file: str
    line: int | None
    reason: str
    record_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        rid = f" (record {self.record_id})" if self.record_id else ""
        return f"{where}: {self.reason}{rid}"


class BadRecord(Exception):
    """A line that is valid JSON but not a record of its format: reported as an Issue, never fatal."""

    def __init__(self, reason: str, record_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.record_id = reason, record_id


Parser = Callable[[Path, Mapping[str, str]], Iterator["Trace | Issue"]]
Sniffer = Callable[[Path, bytes], bool]
#: Turns one line (its bytes) into its store row (see ``traces.RowBuilder``) or raises :class:`BadRecord`
#: (invalid JSON included); the dict counts content-derived ids.
LineReader = Callable[[bytes, dict[str, int]], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Format:
    """One source format: how to parse a file, how to recognise one, and in which order sniffers run."""

    name: str
    parse: Parser
    sniff: Sniffer | None
    priority: int
    description: str
    #: The fast path of a format of one JSON value per line: makes the reader of one chunk of lines (what the
    #: reader remembers lives as long as the chunk). The driver then parses the file in byte-range chunks, in
    #: parallel for big files; a missing id must come only from ``content_id(obj, seen, prefix)``, since each
    #: line gets a fresh ``seen`` and the driver numbers repeats in file order.
    line_reader: Callable[[], LineReader] | None = None


FORMATS: Registry[Format] = Registry("ingest format", error=IngestError)


def register(
    name: str,
    *,
    sniff: Sniffer | None = None,
    priority: int = 50,
    description: str = "",
    line_reader: Callable[[], LineReader] | None = None,
) -> Callable[[Parser], Parser]:
    """Register ``parse`` as format ``name``; ``sniff`` claims files for ``--format auto``.

    Sniffers run in ascending ``priority``; the first that returns True wins. ``line_reader``: see
    :attr:`Format.line_reader`.
    """

    def wrap(parse: Parser) -> Parser:
        summary = description or next(iter((parse.__doc__ or "").strip().splitlines()), "")
        FORMATS.add(name, Format(name, parse, sniff, priority, summary, line_reader))
        return parse

    return wrap


SNIFF_BYTES = 1 << 16


def detect(path: Path) -> Format:
    """The format whose sniffer claims ``path``; an unclaimed file is an error naming the options."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    for _, fmt in sorted(FORMATS.items(), key=lambda item: item[1].priority):
        if fmt.sniff is not None and fmt.sniff(path, head):
            return fmt
    raise IngestError(f"{path}: cannot tell the format; pass --format (one of: {', '.join(FORMATS.names())})")


def get_format(name: str) -> Format:
    """The format registered as ``name``; otherwise ``unknown ingest format 'x': one of …``."""
    return FORMATS.get(name)
