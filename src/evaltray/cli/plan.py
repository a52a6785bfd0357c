"""``evaltray plan …`` and ``evaltray coverage``."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import click

from evaltray.core.util import listed
from evaltray.curate import plan as planmod
from evaltray.curate.coverage_html import coverage_report
from evaltray.curate.sample import OUTLIERS, sample_to_pool
from evaltray.tray.candidates import CUTS
from evaltray.tray.tasks import awaiting_revalidation

from ._common import COUNT, AppContext, dry_run_option, emit, json_option, out, pass_app, set_option, shown, table


@click.group()
def plan() -> None:
    """The coverage plan (plan.yaml): dimensions, targets per cell, minimums, floors, rules."""


@plan.command("init")
@click.option("--feature", "features", multiple=True, help="Feature names (default: the most frequent in traces).")
@click.option("--force", is_flag=True, help="Replace an existing plan.yaml.")
@json_option
@pass_app
def plan_init(app: AppContext, features: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Write plan.yaml from the seeds' vocabularies, for you to edit."""
    p = planmod.init_plan(app.ws, list(features) or None, force=force, actor=app.user)
    path = planmod.plan_path(app.ws)
    emit(
        as_json,
        {"path": str(path), "cells": len(p.cell_keys()), **p.to_dict()},
        lambda: out().print(
            f"wrote {shown(path.name)}: {len(p.cell_keys())} cells ({shown(' × '.join(p.grid))}), "
            f"{p.target_per_cell} per cell; edit it, then `evaltray coverage`"
        ),
    )


@plan.command("show")
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False), help="Another plan file.")
@json_option
@pass_app
def plan_show(app: AppContext, plan_file: str | None, as_json: bool) -> None:
    """Show the plan: dimensions, grid size, targets, minimums and rules."""
    p = planmod.load_plan(app.ws, Path(plan_file) if plan_file else None)

    def human() -> None:
        out().print(
            f"grid {shown(' × '.join(p.grid))} = {len(p.cell_keys())} cells, default target {p.target_per_cell}, "
            f"total target {sum(p.target(c) for c in p.cell_keys())}"
        )
        out().print(table("dimensions", ["dimension", "values"], [[k, ", ".join(v)] for k, v in p.dimensions.items()]))
        if p.minimums:
            out().print(
                table(
                    "minimums",
                    ["dimension", "value", "at least"],
                    [[a, v, n] for a, vals in p.minimums.items() for v, n in vals.items()],
                )
            )
        if p.rules:
            out().print(
                table(
                    "rules",
                    ["when", "set"],
                    [[r.describe(), ", ".join(f"{k}={v}" for k, v in r.set.items())] for r in p.rules],
                )
            )
        out().print(
            "source mix target (evaltray.toml): "
            + shown(", ".join(f"{k} {v:.0%}" for k, v in app.ws.settings.source_mix.items()))
        )

    emit(as_json, {**p.to_dict(app.ws.settings.source_mix), "cells": len(p.cell_keys())}, human)


@click.command()
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False), help="Another plan file.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a heatmap page here.")
@click.option("--limit", type=COUNT, default=30, show_default=True, help="Rows of the table.")
@set_option
@json_option
@pass_app
def coverage(
    app: AppContext, plan_file: str | None, html_path: str | None, limit: int, set_name: str | None, as_json: bool
) -> None:
    """Filled vs target per cell, gaps first (by traffic, then complaints), with traces that could fill them."""
    cov = coverage_report(
        app.ws, Path(plan_file) if plan_file else None, set_name, html=Path(html_path) if html_path else None
    )
    again = awaiting_revalidation(app.ws, set_name)
    data = {
        "cells": [
            {
                **c.cell,
                "target": c.target,
                "filled": c.filled,
                "pending": c.pending,
                "gap": c.gap,
                "traffic": c.traffic,
                "complaints": c.complaints,
                "fillable": c.fillable,
                "oversampled": c.oversampled,
                "unruled": c.unruled,
            }
            for c in cov.cells
        ],
        "gaps": len(cov.gaps),
        "unmapped_cases": cov.unmapped_cases,
        "marginals": cov.marginals,
        "under_revalidation": again,
        "html": html_path,
    }

    def human() -> None:
        met = sum(1 for c in cov.cells if c.gap == 0)
        out().print(
            f"{met}/{len(cov.cells)} cells at target, {len(cov.gaps)} gaps, {cov.unmapped_cases} cases outside the grid"
        )
        if again:
            out().print(f"{len(again)} filled case(s) under re-validation, not re-signed yet: {shown(listed(again))}")
        out().print(
            table(
                None,
                [*cov.grid, "filled/target", "pending", "traffic", "complaints", "could fill"],
                [
                    [
                        *c.cell.values(),
                        f"{c.filled}/{c.target}",
                        c.pending,
                        c.traffic,
                        c.complaints,
                        ", ".join(c.fillable[:3]) or ("no rule sets " + ", ".join(c.unruled) if c.unruled else ""),
                    ]
                    for c in cov.cells[:limit]
                ],
            )
        )
        for axis, values in cov.marginals.items():
            out().print(
                table(
                    axis,
                    ["value", "filled", "minimum", "share", "target share"],
                    [
                        [
                            v,
                            m["filled"],
                            m["minimum"] or "",
                            f"{m['share']:.0%}",
                            "" if m["target_share"] is None else f"{m['target_share']:.0%}",
                        ]
                        for v, m in values.items()
                    ],
                )
            )
        if html_path:
            out().print(f"heatmap: {shown(html_path)}")

    emit(as_json, data, human)


@click.command()
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False),
    help="Coverage plan to sample to (default: plan.yaml when it exists).",
)
@click.option("--size", type=int, required=True, help="How many traces to add to the candidate pool.")
@click.option("--outliers", default="", help="Outlier strata, comma-separated: " + ", ".join(OUTLIERS) + ".")
@click.option("--uniform", is_flag=True, help="A plain uniform sample: the distribution users actually generate.")
@click.option(
    "--exclude-cluster", "exclude", multiple=True, help="Leave out a cluster by name (e.g. pure FAQ lookups)."
)
@click.option("--where", help="Only traces matching this SQL predicate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cut", type=click.Choice(CUTS), default="last-user", show_default=True)
@set_option
@dry_run_option
@json_option
@pass_app
def sample(
    app: AppContext,
    plan_file: str | None,
    size: int,
    outliers: str,
    uniform: bool,
    exclude: tuple[str, ...],
    where: str | None,
    seed: int,
    cut: str,
    set_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Stratified sample of traces into the pool: outliers, then plan gaps, then clusters; each pick says why."""
    fill = sample_to_pool(
        app.ws,
        app.user,
        size,
        plan=Path(plan_file) if plan_file else None,
        outliers=[k.strip() for k in outliers.split(",") if k.strip()],
        seed=seed,
        uniform=uniform,
        exclude_clusters=exclude,
        where=where,
        set_name=set_name,
        cut=cut,
        dry_run=dry_run,
    )
    res = fill.sample
    data = {
        "picks": [p.__dict__ for p in res.picks],
        "added": fill.added,
        "shortfall": res.shortfall,
        "excluded": res.excluded,
        "dry_run": dry_run,
    }

    def human() -> None:
        strata = Counter(p.stratum for p in res.picks)
        out().print(
            f"{'would add' if dry_run else 'added'} {len(res.picks)} trace(s) to the pool"
            + (f" (plan {shown(fill.plan_file.name)})" if fill.plan_file else "")
        )
        out().print(table("picks by stratum", ["stratum", "traces"], [[s, n] for s, n in strata.most_common()]))
        if res.shortfall:
            out().print(
                table("the traffic could not fill", ["stratum", "missing"], list(map(list, res.shortfall.items())))
            )
        if res.excluded:
            out().print(table("left out", ["why", "traces"], list(map(list, res.excluded.items()))))

    emit(as_json, data, human)


def _change_data(app: AppContext, change_id: str) -> tuple[Any, dict[str, Any]]:
    """A plan change and its diff against the plan now, production shares from the newest ``score-live``."""
    from evaltray.curate import plan_changes as pc
    from evaltray.monitor.health import live_traffic

    change = pc.get_change(app.ws, change_id)
    return change, pc.plan_diff(app.ws, change, live_traffic(app.ws)).as_dict()


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _show_change(change: Any, diff: dict[str, Any]) -> None:
    decided = f", {change.status} by {change.decided_by}: {change.decision_reason}" if change.decided_by else ""
    out().print(
        f"plan change {change.id} by {shown(change.proposed_by)} ({change.status}{shown(decided)}): "
        f"{shown(change.reason)}",
        highlight=False,
    )
    if diff["stale"]:
        out().print("plan.yaml changed since it was proposed: it cannot be approved; propose it again")
    rows = [
        [r["slice"], f"{_share(r['before'])} -> {_share(r['after'])}", _share(r["tray"]), _share(r["production"])]
        for r in diff["slices"]
        if r["changed"] or r["tray"] is not None
    ]
    out().print(table("per slice", ["slice", "target share", "tray now", "production"], rows))
    if diff["other"]:
        other = [[k, str(v["before"]), str(v["after"])] for k, v in diff["other"].items()]
        out().print(table("other changes", ["key", "before", "after"], other))


@plan.command("propose")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", required=True, help="Why the slice mix or targets should change.")
@json_option
@pass_app
def plan_propose(app: AppContext, path: str, reason: str, as_json: bool) -> None:
    """Propose PATH as the new plan.yaml; it waits for the composition owner (`evaltray plan approve`)."""
    from evaltray.curate import plan_changes as pc

    text = Path(path).read_text(encoding="utf-8")
    change = pc.propose(app.ws, app.user, text, reason)
    change, diff = _change_data(app, str(change.id))
    emit(as_json, {"id": change.id, "status": change.status, **diff}, lambda: _show_change(change, diff))


@plan.command("changes")
@click.argument("change_id", required=False)
@click.option("--status", type=click.Choice(["pending", "approved", "rejected"]), help="Only these.")
@json_option
@pass_app
def plan_changes(app: AppContext, change_id: str | None, status: str | None, as_json: bool) -> None:
    """List proposed plan changes (newest first), or show one as a per-slice diff."""
    from evaltray.curate import plan_changes as pc

    if change_id is not None:
        change, diff = _change_data(app, change_id)
        emit(as_json, {**dataclasses.asdict(change), "diff": diff}, lambda: _show_change(change, diff))
        return
    found = pc.list_changes(app.ws, status)
    rows = [[c.id, c.status, c.proposed_by, c.created_at[:16], c.reason, c.decided_by or ""] for c in found]
    emit(
        as_json,
        [dataclasses.asdict(c) for c in found],
        lambda: out().print(table("plan changes", ["id", "status", "by", "at", "reason", "decided by"], rows)),
    )


def _decide(app: AppContext, change_id: str, approve: bool, reason: str, as_json: bool) -> None:
    from evaltray.curate import plan_changes as pc

    done = pc.decide(app.ws, app.user, change_id, approve, reason)
    emit(
        as_json,
        dataclasses.asdict(done),
        lambda: out().print(
            f"plan change {done.id} {done.status}" + ("; plan.yaml written" if approve else ""), highlight=False
        ),
    )


@plan.command("approve")
@click.argument("change_id")
@click.option("--reason", required=True, help="Why you approve it.")
@json_option
@pass_app
def plan_approve(app: AppContext, change_id: str, reason: str, as_json: bool) -> None:
    """Approve a pending plan change (composition owner or admin): plan.yaml becomes the proposed plan."""
    _decide(app, change_id, True, reason, as_json)


@plan.command("reject")
@click.argument("change_id")
@click.option("--reason", required=True, help="Why you reject it.")
@json_option
@pass_app
def plan_reject(app: AppContext, change_id: str, reason: str, as_json: bool) -> None:
    """Reject a pending plan change (composition owner or admin); plan.yaml stays as it is."""
    _decide(app, change_id, False, reason, as_json)
