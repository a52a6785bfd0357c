"""Trace ingest: one module per source format, registered by decorator; ``--format auto`` detects."""

from __future__ import annotations

from . import openai  # noqa: F401  (each import registers its format)
from . import generic, openai_exchange, tau2  # noqa: F401
from . import otel  # noqa: F401
from . import openinference  # noqa: F401
from . import langfuse  # noqa: F401
from . import langsmith  # noqa: F401
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
