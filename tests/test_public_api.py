"""The package's public surface is deliberate: exactly these names, each the object its stage defines."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module, metadata

import evaltray

PUBLIC = {
    "core": ["Workspace", "Settings", "Registry", "Trace", "Message", "ToolCall", "Span", "Case", "Release",
             "SetManifest", "Role", "EvaltrayError", "WorkspaceError", "IngestError", "GateError", "PermissionDenied",
             "NotFound", "ReleaseError", "QueryError", "list_traces", "trace_stats"],
    "stages": ["ingest_files", "Scrubber", "scrub_store", "dedup_traces", "cluster_traces", "Plan", "sample_to_pool",
               "coverage_report", "add_from_traces", "ReviewSession", "import_labels", "sign_off", "promote", "retire",
               "add_case", "validate_sets", "create_release", "verify_release", "diff_releases", "export_release"],
    "front ends": ["run_demo"],
}  # fmt: skip


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert evaltray.__all__ == sorted(name for names in PUBLIC.values() for name in names)


def test_each_name_is_the_object_its_module_defines() -> None:
    for name in evaltray.__all__:
        value = getattr(evaltray, name)
        assert value is getattr(import_module(value.__module__), name), name
        assert value.__module__.startswith("evaltray."), name


def test_version_is_the_installed_one() -> None:
    assert evaltray.__version__ == metadata.version("evaltray")


def test_importing_the_package_loads_no_stage() -> None:
    code = "import sys, evaltray; print(sorted(m for m in sys.modules if m.startswith('evaltray')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['evaltray']"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        evaltray.nothing_here  # noqa: B018
    except AttributeError as exc:
        assert str(exc) == "module 'evaltray' has no attribute 'nothing_here'"
    else:
        raise AssertionError("no error")
