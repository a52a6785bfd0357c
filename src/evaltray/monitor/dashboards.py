"""The dashboards' figures, one function a board, each a JSON-ready dict: the web shows them as pages and
serves them as JSON for scripts. Every figure comes from the stage that owns it (the plan's coverage, the
release's source mix, the health signals, the run report, the failure categories, the release changelogs);
nothing is computed twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry
from evaltray.core.store import Workspace
from evaltray.curate.coverage_html import coverage_report
from evaltray.curate.plan import plan_path
from evaltray.evaluate.failures import failure_categories, failure_matrix
from evaltray.evaluate.report import run_report
from evaltray.evaluate.run import RUNS_DIR
from evaltray.tray import candidates as pool
from evaltray.tray.casefile import load_cases
from evaltray.tray.release import load_manifest, release_log, source_mix

from .drift import drift_history
from .drift_html import bounds, trend
from .health import as_datetime, tray_health

#: name -> the board's figures (``ws``, ``set_name``). Titles are the boards' docstrings' first lines.
BOARDS: Registry[Callable[[Workspace, str | None], dict[str, Any]]] = Registry("dashboard")
#: Scored runs a pass-rate board reads (the newest), and the window of its per-slice delta (seed 003).
MAX_RUNS = 20
DELTA_WEEKS = 8


def board(ws: Workspace, name: str, set_name: str | None = None) -> dict[str, Any]:
    """One board's figures, with its name and title."""
    fn = BOARDS.get(name)
    return {"board": name, "title": title(name), **fn(ws, set_name)}


def title(name: str) -> str:
    return (BOARDS.get(name).__doc__ or name).strip().splitlines()[0].rstrip(".")


@BOARDS.register("coverage")
def coverage_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Coverage: filled against target per cell of the plan."""
    if not plan_path(ws).exists():
        return {"plan": None, "note": "no coverage plan yet: `evaltray plan init` writes plan.yaml", "cells": []}
    cov = coverage_report(ws, set_name=set_name)
    return {
        "plan": str(plan_path(ws).name),
        "grid": cov.grid,
        "cells": [{**asdict(c), "gap": c.gap} for c in cov.cells],
        "marginals": cov.marginals,
        "unmapped_cases": cov.unmapped_cases,
    }


def _cases(ws: Workspace, set_name: str | None) -> list[dict[str, Any]]:
    return list(load_cases(ws, ws.check_set(set_name)).values())


@BOARDS.register("sources")
def sources_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Source mix: each slice's sources against the target mix."""
    mix, warnings = source_mix(_cases(ws, set_name), dict(ws.settings.source_mix))
    by_slice = {}
    for name, counts in mix.by_slice.items():
        n = sum(counts.values())
        by_slice[name] = {"n": n, "shares": {s: round(k / n, 4) for s, k in counts.items()}, "counts": counts}
    return {"target": mix.target, "actual": mix.actual, "slices": by_slice, "warnings": warnings}


@BOARDS.register("traffic")
def traffic_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Slice mix: the tray's slices against production traffic."""
    signal = tray_health(ws, set_name).signal("slice-mix")
    return {"level": signal.level, "value": signal.value, "slices": signal.detail.get("slices", {})}


def scored_runs(ws: Workspace, limit: int = MAX_RUNS) -> list[dict[str, Any]]:
    """The newest scored runs' manifests (``run_id`` added), oldest first."""
    found = []
    for path in (ws.root / RUNS_DIR).glob("r-*/scores.jsonl"):
        manifest = orjson.loads((path.parent / "run.json").read_bytes())
        found.append({**manifest, "run_id": path.parent.name})
    found.sort(key=lambda m: (m["created_at"], m["run_id"]))
    return found[-limit:]


def slice_deltas(runs: list[dict[str, Any]], today: datetime, weeks: int = DELTA_WEEKS) -> dict[str, Any]:
    """Per slice: the pass rate of the newest run against the oldest run of the last ``weeks`` weeks that
    scored it, in points (None when only one run in the window scored the slice)."""
    since = today - timedelta(weeks=weeks)
    recent = [r for r in runs if as_datetime(r["created_at"]) >= since]
    out: dict[str, Any] = {}
    for name in sorted({s for r in recent for s in r["slices"]}):
        rated = [(r["run_id"], r["slices"][name]["pass_rate"]) for r in recent if name in r["slices"]]
        rated = [(rid, rate) for rid, rate in rated if rate is not None]
        if not rated:
            continue
        (first, a), (last, b) = rated[0], rated[-1]
        delta = None if first == last else round((b - a) * 100, 1)
        out[name] = {"from_run": first, "to_run": last, "from": a, "to": b, "delta_pp": delta}
    return out


@BOARDS.register("passrates")
def passrates_board(ws: Workspace, set_name: str | None, today: datetime | None = None) -> dict[str, Any]:
    """Pass rates: each slice with its 95% interval, per release and run, and the delta over 8 weeks."""
    runs = []
    for m in scored_runs(ws):
        rep = run_report(ws, m["run_id"])
        runs.append(
            {
                "run_id": m["run_id"],
                "created_at": m["created_at"],
                "release": rep["release"],
                "target": rep["target"],
                "overall": rep["overall"],
                "slices": rep["slices"],
            }
        )
    return {"runs": runs[::-1], "delta": slice_deltas(runs, today or datetime.now(UTC)), "weeks": DELTA_WEEKS}


@BOARDS.register("failures")
def failures_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Failures: the newest scored run's failure categories, by frequency and severity."""
    runs = scored_runs(ws, limit=1)
    if not runs:
        return {"run_id": None, "categories": [], "matrix": {}}
    cats = failure_categories(ws, runs[-1]["run_id"])
    return {
        "run_id": runs[-1]["run_id"],
        "categories": [
            {"name": c.name, "n": len(c.cases), "severity": c.severity, "score": c.score, "kept": c.kept} for c in cats
        ],
        "matrix": failure_matrix(cats),
    }


@BOARDS.register("rejects")
def rejects_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Reject bin: candidates rejected, by reason."""
    by_reason = pool.reject_bin(ws, set_name)
    return {"by_reason": by_reason, "total": sum(by_reason.values())}


@BOARDS.register("releases")
def releases_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Releases: each release and what changed per slice since its parent."""
    out = []
    for row in reversed(release_log(ws)):
        try:
            manifest = load_manifest(ws, row["version"])
        except EvaltrayError as exc:  # a damaged manifest is listed with its problem, not hidden
            out.append({"version": row["version"], "status": row.get("status"), "problem": str(exc), "sets": {}})
            continue
        sets = {
            name: {"summary": log["summary"], "by_slice": log["by_slice"]}
            for name, log in manifest.changelog.items()
            if not set_name or name == set_name
        }
        out.append(
            {
                "version": manifest.version,
                "parent": manifest.parent,
                "status": row.get("status"),
                "created_at": manifest.created_at,
                "created_by": manifest.created_by,
                "n_cases": {name: s.n_cases for name, s in manifest.sets.items()},
                "sets": sets,
            }
        )
    return {"releases": out}


@BOARDS.register("health")
def health_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Health: the tray's signals, worst first."""
    report = tray_health(ws, set_name)
    order = {"red": 0, "amber": 1, "unknown": 2, "green": 3}
    signals = sorted(report.signals, key=lambda s: order.get(s.level, 9))
    return {"set": report.set_name, "level": report.level, "signals": [asdict(s) for s in signals]}


@BOARDS.register("drift")
def drift_board(ws: Workspace, set_name: str | None) -> dict[str, Any]:
    """Drift: each metric of the newest `evaltray drift` report against its thresholds, with its trend."""
    history = drift_history(ws)
    if not history:
        return {"level": None, "note": "no drift report yet: run `evaltray drift`", "metrics": [], "trend": {}}
    latest = history[-1]
    metrics = [
        {"name": name, "value": m["value"], "amber": m["amber"], "red": m["red"], "level": m["level"]}
        for name, m in sorted(latest["metrics"].items())
    ]
    lines = trend(history)
    return {
        "level": latest["level"],
        "created_at": latest["created_at"],
        "window": latest["window"],
        "n_window": latest["n_window"],
        "baseline": latest["baseline"],
        "n_baseline": latest["n_baseline"],
        "new_clusters": latest.get("new_clusters", 0),
        "reports": len(history),
        "metrics": metrics,
        "trend": {
            name: {"bounds": list(bounds(name, history)), "points": [list(p) for p in points]}
            for name, points in sorted(lines.items())
        },
    }
