"""``evaltray drift``: the last window of live traces against a baseline window or a release."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from evaltray.monitor.drift import MIN_TRACES, SAMPLE, DriftReport, drift_report, drift_to_candidates
from evaltray.monitor.synthetic import SyntheticReport, synthetic_report

from ._common import (
    AppContext,
    dry_run_option,
    emit,
    emit_table,
    err,
    json_option,
    out,
    pass_app,
    set_option,
    shown,
    table,
)


def _show(report: DriftReport, added: list[str] | None) -> None:
    out().print(
        f"drift: {report.level} ({report.window}, {report.n_window:,} traces; "
        f"{report.baseline}, {report.n_baseline:,})",
        highlight=False,
    )
    if report.note:
        out().print(f"[yellow]{shown(report.note)}[/]", highlight=False)
    rows = [
        [m.name, "-" if m.value is None else f"{m.value:.4g}", f"{m.amber:g} / {m.red:g}", m.level, shown(m.detail)]
        for m in report.metrics
    ]
    if rows:
        out().print(table("metrics", ["metric", "value", "amber / red", "level", "detail"], rows))
    for c in report.new_clusters:
        out().print(
            f"new intent {shown(c.name)!r}: {c.size} traces ({c.share:.1%}), suggested slice {shown(c.suggested_slice)}",
            highlight=False,
        )
        for ex in c.examples[:3]:
            out().print(f"  {shown(ex['trace_id'])}: {shown(ex['text'][:100])}", highlight=False)
    if added is not None:
        err().print(f"added {len(added)} candidate(s) from new clusters", highlight=False)


def _show_synthetic(rep: SyntheticReport) -> None:
    if rep.note:
        out().print(f"[yellow]{shown(rep.note)}[/]", highlight=False)
    rows = [
        [
            c.case_id,
            "-" if c.novelty is None else f"{c.novelty:.3f}",
            "uncovered" if c.uncovered else "",
            f"{c.style_distance:.2f}",
            "off-style" if c.off_style else "",
        ]
        for c in rep.cases
    ]
    if rows:
        title = f"synthetic cases vs {rep.n_traffic} traces ({len(rep.flagged)} flagged)"
        out().print(table(title, ["case", "novelty", "", "style distance", ""], rows))


@click.command("drift")
@click.option("--window", default="7d", show_default=True, help="The live window: 30m, 24h, 7d, 2w.")
@click.option("--baseline", "baseline", help="Compare against this release's cases instead of a baseline window.")
@click.option("--baseline-window", help="The traffic before the window to compare with (default: as long as it).")
@click.option("--end", type=click.DateTime(), help="Where the window ends (UTC; default: the newest trace).")
@click.option("--backend", default="wordllama", show_default=True, help="Embedding backend for the text metrics.")
@click.option("--sample", type=click.IntRange(10), default=SAMPLE, show_default=True, help="Texts embedded a side.")
@click.option("--min-traces", type=click.IntRange(1), default=MIN_TRACES, show_default=True, help="Fewer: no levels.")
@click.option("--to-candidates", is_flag=True, help="Send the traces of new clusters to the candidate pool.")
@click.option("--synthetic", is_flag=True, help="Also check the tray's synthetic cases: coverage and style.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option("--strict", is_flag=True, help="Exit 1 at red.")
@set_option
@json_option
@pass_app
def drift_command(
    app: AppContext,
    window: str,
    baseline: str | None,
    baseline_window: str | None,
    end: datetime | None,
    backend: str,
    sample: int,
    min_traces: int,
    to_candidates: bool,
    synthetic: bool,
    html_path: Path | None,
    strict: bool,
    set_name: str | None,
    as_json: bool,
) -> None:
    """Drift of live traffic: centroid shift, cluster JSD and KL, novel intents, new model/vendor/prompt/system/
    tool hashes, input length, language, tool use and retrieval, each green/amber/red against its threshold."""
    report = drift_report(
        app.ws,
        window=window,
        baseline_window=baseline_window,
        baseline=baseline,
        end=end.replace(tzinfo=UTC) if end is not None else None,
        backend=backend,
        sample=sample,
        min_traces=min_traces,
    )
    added = drift_to_candidates(app.ws, app.user, report, set_name) if to_candidates else None
    syn = synthetic_report(app.ws, set_name, window, backend, sample, min_traces) if synthetic else None
    if html_path is not None:
        from evaltray.monitor.drift_html import write_drift_html

        err().print(f"wrote {write_drift_html(app.ws, report, html_path, syn)}", highlight=False)
    data = {**dataclasses.asdict(report), "candidates_added": added}
    if syn is not None:
        data["synthetic"] = {**dataclasses.asdict(syn), "flagged": [c.case_id for c in syn.flagged]}

    def show() -> None:
        _show(report, added)
        if syn is not None:
            _show_synthetic(syn)

    emit(as_json, data, show)
    if strict and report.level == "red":
        sys.exit(1)


@click.group()
def rolling() -> None:
    """The rolling drift set: releases of recent traffic next to the golden set, never used for gating."""


@rolling.command("refresh")
@click.option("--window", default="7d", show_default=True, help="How much recent traffic to sample from.")
@click.option("--n", "n", type=click.IntRange(1), default=200, show_default=True, help="Conversations to keep.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@dry_run_option
@json_option
@pass_app
def rolling_refresh(app: AppContext, window: str, n: int, seed: int, dry_run: bool, as_json: bool) -> None:
    """Snapshot a sample of the last window's conversations as a new rolling release (run it with
    `evaltray run rolling-… TARGET`; `evaltray gate` refuses such runs)."""
    from evaltray.evaluate.live import parse_window
    from evaltray.tray.rolling import rolling_release

    rel = rolling_release(app.ws, app.user, parse_window(window), n, seed=seed, dry_run=dry_run)
    data = {k: v for k, v in dataclasses.asdict(rel).items() if k != "hashes"} | {"dry_run": dry_run}
    emit(
        as_json,
        data,
        lambda: out().print(
            f"{'would write' if dry_run else 'wrote'} {rel.version}: {rel.n} conversations "
            f"({rel.added} new, {rel.dropped} dropped since {rel.parent or 'none'}), hash {rel.content_hash[:12]}",
            highlight=False,
        ),
    )


@rolling.command("list")
@json_option
@pass_app
def rolling_list(app: AppContext, as_json: bool) -> None:
    """The rolling releases, oldest first."""
    from evaltray.tray.rolling import list_rolling, load_rolling

    rels = [load_rolling(app.ws, v) for v in list_rolling(app.ws)]
    data = [{k: v for k, v in dataclasses.asdict(r).items() if k != "hashes"} for r in rels]
    rows = [
        [r.version, str(r.n), f"+{r.added} / -{r.dropped}", r.window["start"][:16], r.content_hash[:12]] for r in rels
    ]
    emit_table(as_json, data, ["version", "n", "changed", "from", "hash"], rows, "rolling releases")
