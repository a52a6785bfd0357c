"""A scored run as numbers a team can defend: pass rates per slice with Wilson intervals, pinned to the
release hash the run used, with what each slice's size can and cannot show."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from evaltray.core.store import Workspace

from .score import load_run, read_scores
from .stats import size_advice, wilson

__all__ = ["run_report"]

#: Below this many cases a slice's interval is reported, and flagged: it can show a collapse, not a fix.
SMALL_SLICE = 30


def _rate(statuses: list[str]) -> dict[str, Any]:
    passed, failed = statuses.count("pass"), statuses.count("fail")
    n = passed + failed
    out: dict[str, Any] = {
        "n": n,
        "passed": passed,
        "errors": statuses.count("error"),
        "unscored": statuses.count("unscored"),
    }
    if n:
        ci = wilson(passed, n)
        out.update(pass_rate=ci.estimate, low=ci.low, high=ci.high)
    else:
        out.update(pass_rate=None, low=None, high=None)
    return out


def run_report(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Overall and per-slice pass rates (first trial of each case; errors and unscored answers apart), the
    release and its hash (or ``unreleased``), the target, and a warning for each slice too small to trust."""
    manifest = load_run(ws, run_id)
    rows = [r for r in read_scores(ws, run_id) if r["trial"] == 0]
    by_slice: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_slice[str(r.get("slice") or "(none)")].append(r["status"])
    overall = _rate([r["status"] for r in rows])
    slices = {name: _rate(statuses) for name, statuses in sorted(by_slice.items())}
    warnings = [
        f"slice {name}: {s['n']} scored cases can flag a collapse, not declare a fix"
        for name, s in slices.items()
        if 0 < s["n"] < SMALL_SLICE
    ]
    src = manifest["source"]
    return {
        "run_id": run_id,
        "release": src.get("release") or "unreleased",
        "release_hash": src.get("release_hash"),
        "set": src.get("set"),
        "split": src.get("subset") or src.get("split"),
        "target": manifest["target"]["spec"],
        "target_hash": manifest["target"]["hash"],
        "overall": overall,
        "advice": size_advice(overall["n"]),
        "slices": slices,
        "warnings": warnings,
    }
