"""Trace ingest: one module per source format, registered by decorator; ``--format auto`` detects."""

from __future__ import annotations

from . import (  # noqa: F401
    generic,
    langfuse,  # noqa: F401
    langsmith,  # noqa: F401
    openai,  # noqa: F401  (each import registers its format)
    openai_exchange,
    openinference,  # noqa: F401
    otel,  # noqa: F401
    tau2,
)
from ._driver import FileReport, IngestReport, ingest_files, keep_reasons, sample_unit
from ._registry import FORMATS, Format, Issue, detect, get_format, register

__all__ = [
    "FORMATS",
    "FileReport",
    "Format",
    "IngestReport",
    "Issue",
    "detect",
    "get_format",
    "ingest_files",
    "keep_reasons",
    "register",
    "sample_unit",
]
