"""The format registry: each source format registers a parser and a sniffer by decorator."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from evaltray.core.errors import IngestError
from evaltray.core.records import Trace


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


Parser = Callable[[Path, Mapping[str, str]], Iterator["Trace | Issue"]]
Sniffer = Callable[[Path, bytes], bool]


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    parse: Parser
    sniff: Sniffer | None
    priority: int
    description: str


FORMATS: dict[str, Format] = {}


def register(name: str, *, sniff: Sniffer | None = None, priority: int = 50,
             description: str = "") -> Callable[[Parser], Parser]:
    """Register ``parse`` as format ``name``; ``sniff`` claims files for ``--format auto``.

    Sniffers run in ascending ``priority``; the first that returns True wins.
    """

    def wrap(parse: Parser) -> Parser:
        if name in FORMATS:
            raise RuntimeError(f"format {name!r} registered twice")
        FORMATS[name] = Format(name, parse, sniff, priority, description or (parse.__doc__ or "").strip().splitlines()[0])
        return parse

    return wrap


SNIFF_BYTES = 1 << 16


def detect(path: Path) -> Format:
    """The format whose sniffer claims ``path``; an unclaimed file is an error naming the options."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    for fmt in sorted(FORMATS.values(), key=lambda f: f.priority):
        if fmt.sniff is not None and fmt.sniff(path, head):
            return fmt
    names = ", ".join(sorted(FORMATS))
    raise IngestError(f"{path}: cannot tell the format; pass --format (one of: {names})")


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise IngestError(f"unknown format {name!r} (one of: {', '.join(sorted(FORMATS))})") from None
