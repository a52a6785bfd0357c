"""``evaltray plan …`` and ``evaltray coverage``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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
