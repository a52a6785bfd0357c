"""``evaltray agreement``, ``spotcheck``, ``revalidate`` and ``readthrough``: the adjudicator's measures of the
labels, the rows a new guide version sends back, and the product owner's read-through of a release."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from evaltray.tray import oversight
from evaltray.tray.agreement import Agreement, AgreementReport, agreement_report

from ._common import AppContext, dry_run_option, emit, json_option, out, pass_app, set_option, shown, table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _cells(a: Agreement) -> list[Any]:
    return [a.n, a.agree, _pct(a.share), _k(a.kappa)]


def _show(r: AgreementReport) -> None:
    bar = {None: "no overlap labels yet", True: "meets", False: "below"}[r.meets_bar]
    out().print(
        f"human agreement {_pct(r.overall.share)} over {r.overall.n} item(s) labeled twice, Fleiss' κ "
        f"{_k(r.overall.kappa)}: {bar} the {r.bar:.0%} bar (seed 001); {r.decisions} disagreement(s) decided, "
        f"{r.undecided} waiting for the adjudicator",
        highlight=False,
    )
    pairs = [[f"{a} / {b}", *_cells(v)] for (a, b), v in sorted(r.pairs.items())]
    out().print(table("Cohen's κ per labeler pair", ["pair", "items", "agree", "share", "κ"], pairs))
    labelers = [
        [
            la.labeler,
            la.with_adjudicator.n,
            _pct(la.with_adjudicator.share),
            la.control.n,
            _pct(la.control.share),
            "FLAGGED" if la.flagged else "",
        ]
        for la in r.labelers
    ]
    columns = ["labeler", "vs adjudicator", "share", "control items", "accuracy", f"below {r.control_bar:.0%}"]
    out().print(table("per labeler", columns, labelers))
    weeks = [[w, *_cells(a)] for w, a in sorted(r.weeks.items())]
    out().print(table("per week", ["week", "items", "agree", "share", "κ"], weeks))
    s = r.spot_checks
    verdict = "" if not s.n else (" (under the 5% bar)" if (r.spot_check_rate or 0) < 0.05 else " (over the 5% bar)")
    out().print(
        f"spot-checks: {s.n - s.agree} of {s.n} golden rows re-labeled otherwise ({_pct(r.spot_check_rate)}){verdict}",
        highlight=False,
    )


@click.command("agreement")
@json_option
@pass_app
def agreement_command(app: AppContext, as_json: bool) -> None:
    """How far labelers agree: Cohen's κ per pair, Fleiss' κ overall, with the adjudicator, on control items, per
    week, and the spot-check disagreement rate."""
    report = agreement_report(app.ws)
    emit(as_json, report.as_dict(), lambda: _show(report))


@click.command("spotcheck")
@click.option("--sample", type=click.IntRange(1), required=True, help="How many golden rows to draw.")
@click.option("--seed", type=int, help="Fix the random draw.")
@set_option
@json_option
@pass_app
def spotcheck_command(app: AppContext, sample: int, seed: int | None, set_name: str | None, as_json: bool) -> None:
    """Draw golden rows at random for the adjudicator to re-label blind (spotcheck tasks)."""
    ids = oversight.open_spotchecks(app.ws, app.user, sample, set_name=set_name, seed=seed)
    emit(as_json, {"tasks": ids}, lambda: out().print(f"{len(ids)} spot-check task(s) opened"))


@click.command("revalidate")
@click.option("--guide-version", "version", required=True, help="The guide version that changes them.")
@click.option("--code", "codes", multiple=True, help="A behaviour code the version changes (repeatable).")
@click.option("--slice", "slices", multiple=True, help="A slice the version changes (repeatable).")
@dry_run_option
@json_option
@pass_app
def revalidate_command(
    app: AppContext, version: str, codes: tuple[str, ...], slices: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """Send the golden rows a new guide version changes (by behaviour code or slice) back as revalidate tasks."""
    hit = oversight.revalidate_affected(app.ws, app.user, version, codes=codes, slices=slices, dry_run=dry_run)
    verb = "would send" if dry_run else "sent"
    emit(
        as_json,
        {"cases": hit, "dry_run": dry_run},
        lambda: out().print(f"{verb} {len(hit)} row(s) back for re-validation: {shown(', '.join(hit[:20]))}"),
    )


@click.command("readthrough")
@click.argument("case_ids", nargs=-1)
@click.option("--release", help="The release read (default: the newest).")
@click.option("--reader", help="Whose progress (default: everyone who read some of it).")
@json_option
@pass_app
def readthrough_command(
    app: AppContext, case_ids: tuple[str, ...], release: str | None, reader: str | None, as_json: bool
) -> None:
    """The product owner's read-through of a release: mark CASE_IDS read by you, and show rows read / total."""
    from evaltray.tray.readthrough import mark_read, read_through

    marked = mark_read(app.ws, app.user, case_ids, release) if case_ids else []
    progress = read_through(app.ws, release, reader)
    data = {"marked": marked, "readers": [dataclasses.asdict(p) | {"share": round(p.share, 4)} for p in progress]}
    rows = [[p.reader, p.release, len(p.read), p.total, f"{p.share:.0%}", ", ".join(p.unread[:5])] for p in progress]

    def human() -> None:
        if case_ids:
            out().print(f"{len(marked)} row(s) newly marked read", highlight=False)
        out().print(table("read-through", ["reader", "release", "read", "rows", "share", "next unread"], rows))

    emit(as_json, data, human)
