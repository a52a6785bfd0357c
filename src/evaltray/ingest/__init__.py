"""Trace ingest: one module per source format, registered by decorator; ``--format auto`` detects."""

from __future__ import annotations

from . import (  # noqa: F401  (each import registers its format)
    generic,
    langfuse,
    langsmith,
    openai,
    openai_exchange,
    openinference,
    otel,
    tau2,
)
from ._driver import FileReport, IngestReport, ingest_files, keep_reasons, sample_unit
from ._registry import FORMATS, BadRecord, Format, Issue, LineReader, detect, get_format, register

__all__ = [
    "FORMATS",
    "BadRecord",
    "FileReport",
    "Format",
    "IngestReport",
    "Issue",
    "LineReader",
    "detect",
    "get_format",
    "ingest_files",
    "keep_reasons",
    "register",
    "sample_unit",
]
