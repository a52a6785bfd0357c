"""evaltray: turn an LLM application's real traffic into an eval dataset you can defend row by row.

One subpackage per stage of the flywheel, each standing on ``core``:

- ``core``: typed records, the workspace (state database, trace store), settings, errors, the registry of
  plug-ins and the worker pool
- ``ingest``: trace files of many formats into the trace store
- ``scrub``: personal data out before anything is stored
- ``curate``: duplicates, intent clusters, the coverage plan and stratified sampling into the pool
- ``tray``: the candidate pool, blind review, the validation gate, the golden tray file, releases with their
  holdout, and export
- ``cli`` and ``demo``: front ends, one API call per command

The names below are the typed API the front ends call; each is imported on first use, so ``import evaltray``
stays cheap::

    from evaltray import Workspace, ingest_files, create_release
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    # core
    "Workspace": "evaltray.core.store",
    "Settings": "evaltray.core.settings",
    "Registry": "evaltray.core.registry",
    "Trace": "evaltray.core.records",
    "Message": "evaltray.core.records",
    "ToolCall": "evaltray.core.records",
    "Span": "evaltray.core.records",
    "Case": "evaltray.core.records",
    "Release": "evaltray.core.records",
    "SetManifest": "evaltray.core.records",
    "Role": "evaltray.core.records",
    "EvaltrayError": "evaltray.core.errors",
    "WorkspaceError": "evaltray.core.errors",
    "IngestError": "evaltray.core.errors",
    "GateError": "evaltray.core.errors",
    "PermissionDenied": "evaltray.core.errors",
    "NotFound": "evaltray.core.errors",
    "ReleaseError": "evaltray.core.errors",
    "QueryError": "evaltray.core.errors",
    "list_traces": "evaltray.core.traces",
    "trace_stats": "evaltray.core.traces",
    # stages
    "ingest_files": "evaltray.ingest",
    "Scrubber": "evaltray.scrub",
    "scrub_store": "evaltray.scrub",
    "dedup_traces": "evaltray.curate.derived",
    "cluster_traces": "evaltray.curate.derived",
    "Plan": "evaltray.curate.plan",
    "sample_to_pool": "evaltray.curate.sample",
    "coverage_report": "evaltray.curate.coverage_html",
    "add_from_traces": "evaltray.tray.candidates",
    "ReviewSession": "evaltray.tray.review",
    "import_labels": "evaltray.tray.review",
    "sign_off": "evaltray.tray.review",
    "promote": "evaltray.tray.gate",
    "retire": "evaltray.tray.gate",
    "add_case": "evaltray.tray.lifecycle",
    "validate_sets": "evaltray.tray.lifecycle",
    "create_release": "evaltray.tray.release",
    "verify_release": "evaltray.tray.release",
    "diff_releases": "evaltray.tray.release",
    "export_release": "evaltray.tray.export",
    "run_demo": "evaltray.demo",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from evaltray.core.errors import (
        EvaltrayError,
        GateError,
        IngestError,
        NotFound,
        PermissionDenied,
        QueryError,
        ReleaseError,
        WorkspaceError,
    )
    from evaltray.core.records import Case, Message, Release, Role, SetManifest, Span, ToolCall, Trace
    from evaltray.core.registry import Registry
    from evaltray.core.settings import Settings
    from evaltray.core.store import Workspace
    from evaltray.core.traces import list_traces, trace_stats
    from evaltray.curate.coverage_html import coverage_report
    from evaltray.curate.derived import cluster_traces, dedup_traces
    from evaltray.curate.plan import Plan
    from evaltray.curate.sample import sample_to_pool
    from evaltray.demo import run_demo
    from evaltray.ingest import ingest_files
    from evaltray.scrub import Scrubber, scrub_store
    from evaltray.tray.candidates import add_from_traces
    from evaltray.tray.export import export_release
    from evaltray.tray.gate import promote, retire
    from evaltray.tray.lifecycle import add_case, validate_sets
    from evaltray.tray.release import create_release, diff_releases, verify_release
    from evaltray.tray.review import ReviewSession, import_labels, sign_off


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'evaltray' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
