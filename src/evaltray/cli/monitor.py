"""``evaltray contamination``, ``exclusions``, ``corpora`` and ``leakage``: the integrity monitors."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from evaltray.core.store import Workspace
from evaltray.evaluate.compare import GateResult
from evaltray.evaluate.score import load_run
from evaltray.monitor import run_monitors
from evaltray.monitor.contamination import DEFAULT_N, METHODS, ContaminationReport, Corpus
from evaltray.monitor.leakage import JsonLiveSource, LiveSource, StoredLiveSource, golden_rates, live_gap
from evaltray.monitor.registered import KINDS, list_corpora, register_corpus, tag_examples, unregister_corpus
from evaltray.monitor.releases import release_contamination, retire_contaminated, write_exclusions
from evaltray.tray.release import select_cases

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
    version_argument,
)

_PATH = click.Path(exists=True, path_type=Path)


def _corpora(app: AppContext, corpus: tuple[Path, ...], judge: tuple[Path, ...]) -> list[Corpus]:
    given = [Corpus(p, "prompt" if p.is_dir() else "corpus") for p in corpus] + [Corpus(p, "judge") for p in judge]
    return given or list_corpora(app.ws)


def _verifier(llm_url: str | None, llm_model: str | None, llm_key_env: str) -> Any:
    if llm_url is None:
        return None
    from evaltray.monitor.verify import llm_verifier

    return llm_verifier(llm_url, llm_model or "gpt-4o-mini", llm_key_env)


def _report_data(report: ContaminationReport) -> dict[str, Any]:
    return {
        "release": report.release,
        "n": report.n,
        "methods": report.methods,
        "summary": report.summary(),
        "matches": [dataclasses.asdict(m) for m in report.matches],
        "docs": report.docs,
        "bytes": report.bytes,
        "seconds": round(report.seconds, 3),
        "bad_lines": {"count": report.bad_count, "first": [dataclasses.asdict(b) for b in report.bad_lines]},
    }


def _show_report(report: ContaminationReport) -> None:
    for split, s in report.summary().items():
        by = ", ".join(f"{m} {k}" for m, k in s["by_method"].items())
        out().print(f"{shown(split)}: {s['contaminated']} of {s['cases']} cases contaminated ({by})", highlight=False)
    rows = [
        [m.case_id, m.split, m.field, m.method, f"{m.score:.0%}", f"{m.source}:{m.line}", m.span]
        for m in report.matches
    ]
    if rows:
        out().print(table("matches", ["case", "split", "field", "method", "score", "where", "span"], rows))
    mb = report.bytes / 1e6
    err().print(f"{report.docs:,} documents, {mb:,.1f} MB in {report.seconds:.1f} s", highlight=False)
    if report.bad_count:
        err().print(f"[yellow]{report.bad_count} bad line(s) skipped[/]", highlight=False)
        for b in report.bad_lines[:20]:
            err().print(f"  {shown(b.source)}:{b.line}: {shown(b.reason)}", highlight=False)


@click.command("contamination")
@version_argument()
@click.option("--corpus", multiple=True, type=_PATH, help="Training/fine-tuning corpus or prompt folder (repeatable).")
@click.option("--judge", multiple=True, type=_PATH, help="Judge prompt or rubric file (repeatable).")
@click.option("--n", "n", type=click.IntRange(2, 64), default=DEFAULT_N, show_default=True, help="n-gram length.")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS), help="Methods to run (default all).")
@click.option("--cutoff", help="A model's training cutoff (YYYY-MM-DD): cases whose source predates it are at risk.")
@click.option("--backend", default="wordllama", show_default=True, help="Embedding backend for paraphrases.")
@click.option("--llm-url", help="OpenAI-compatible endpoint that double-checks paraphrase candidates.")
@click.option("--llm-model", help="Model at --llm-url.")
@click.option("--llm-key-env", default="OPENAI_API_KEY", show_default=True, help="Env var holding its API key.")
@click.option("--retire", is_flag=True, help="Retire every contaminated case (reason 'contaminated: …').")
@set_option
@dry_run_option
@json_option
@pass_app
def contamination_command(
    app: AppContext,
    version: str,
    corpus: tuple[Path, ...],
    judge: tuple[Path, ...],
    n: int,
    methods: tuple[str, ...],
    cutoff: str | None,
    backend: str,
    llm_url: str | None,
    llm_model: str | None,
    llm_key_env: str,
    retire: bool,
    set_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Release VERSION's cases (dev and holdout apart) against corpora (default: the registered ones)."""
    report = release_contamination(
        app.ws,
        version,
        _corpora(app, corpus, judge),
        set_name=set_name,
        n=n,
        methods=methods or METHODS,
        backend=backend,
        verify=_verifier(llm_url, llm_model, llm_key_env),
        cutoff=cutoff,
    )
    data = _report_data(report)
    retired = retire_contaminated(app.ws, app.user, report, dry_run=dry_run) if retire else []
    data["retired"] = [dataclasses.asdict(r) for r in retired]

    def human() -> None:
        _show_report(report)
        for r in retired:
            verb = "retired" if r.done else "would retire" if dry_run else "not retired"
            out().print(f"{verb} {shown(r.case_id)}: {shown(r.note or r.reason)}", highlight=False)

    emit(as_json, data, human)


@click.command("exclusions")
@version_argument()
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSONL file to write.")
@set_option
@json_option
@pass_app
def exclusions_command(app: AppContext, version: str, to: Path, set_name: str | None, as_json: bool) -> None:
    """Write VERSION's golden ids and texts (both splits) to filter out of fine-tuning data."""
    lines = write_exclusions(app.ws, version, to, app.user, set_name)
    emit(as_json, {"path": str(to), "lines": lines}, lambda: out().print(f"wrote {lines} lines to {shown(to)}"))


@click.group()
def corpora() -> None:
    """Corpora every promote and release is checked against; prompt examples tagged do-not-use-in-eval."""


@corpora.command("add")
@click.argument("path", type=_PATH)
@click.option("--kind", type=click.Choice(KINDS), default="corpus", show_default=True)
@click.option("--do-not-use", is_flag=True, help="Tag every example in it do-not-use-in-eval (prompt files).")
@json_option
@pass_app
def corpora_add(app: AppContext, path: Path, kind: str, do_not_use: bool, as_json: bool) -> None:
    """Register PATH (a file or a folder)."""
    stored = register_corpus(app.ws, app.user, path, kind)
    tagged, bad = tag_examples(app.ws, app.user, path) if do_not_use else (0, [])
    data = {"path": stored, "kind": kind, "tagged": tagged, "bad_lines": [dataclasses.asdict(b) for b in bad]}

    def human() -> None:
        out().print(
            f"registered {shown(stored)} ({kind})"
            + (f"; {tagged} example(s) tagged do-not-use-in-eval" if do_not_use else "")
        )
        for b in bad:
            err().print(f"[yellow]skipped[/] {shown(b.source)}:{b.line}: {shown(b.reason)}", highlight=False)

    emit(as_json, data, human)


@corpora.command("list")
@json_option
@pass_app
def corpora_list(app: AppContext, as_json: bool) -> None:
    """The registered corpora."""
    rows = list_corpora(app.ws)
    emit_table(
        as_json,
        [{"path": str(c.path), "kind": c.kind} for c in rows],
        ["path", "kind"],
        [[str(c.path), c.kind] for c in rows],
    )


@corpora.command("remove")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@pass_app
def corpora_remove(app: AppContext, path: Path, as_json: bool) -> None:
    """Stop checking against PATH."""
    unregister_corpus(app.ws, app.user, path)
    emit(as_json, {"removed": str(path)}, lambda: out().print(f"removed {shown(path)}"))


@click.command("leakage")
@click.option("--run", "run_id", required=True, help="A scored run on the golden tray (a release).")
@click.option(
    "--live",
    "live",
    help="A score-live result id (l-…) or a JSON file of overall and per-slice passed/n (default: the newest score-live).",
)
@click.option("--strict", is_flag=True, help="Exit 1 at red (a gap of 20 points or more).")
@json_option
@pass_app
def leakage_command(app: AppContext, run_id: str, live: str | None, strict: bool, as_json: bool) -> None:
    """Golden pass rate minus live pass rate: amber at 15 points, red at 20, with the slices that make it."""
    source: LiveSource
    if live is not None and (not live.startswith("l-") or Path(live).exists()):
        source = JsonLiveSource(Path(live))
    else:
        source = StoredLiveSource(app.ws, live)
    report = live_gap(golden_rates(app.ws, run_id), source.pass_rates())

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    def human() -> None:
        rows = [
            [s.slice, pct(s.golden), pct(s.live), "-" if s.gap is None else f"{s.gap:+.1f}", s.level]
            for s in [report.overall, *report.slices]
        ]
        out().print(table(f"live gap: {report.level}", ["slice", "golden", "live", "gap (pt)", "level"], rows))
        if report.culprits:
            out().print(f"slices that make the gap: {', '.join(report.culprits)}", highlight=False)

    emit(as_json, dataclasses.asdict(report), human)
    if strict and report.level == "red":
        sys.exit(1)


def gate_monitors(ws: Workspace, result: GateResult, run_id: str, strict: bool) -> None:
    """The monitors on the cases of a gated run's release: warnings, or with ``strict`` reasons to fail."""
    src = load_run(ws, run_id)["source"]
    cases = select_cases(ws, src["release"], src.get("set"), "all")
    for name, cid, msg, _ in run_monitors(ws, cases, strict):
        (result.reasons if strict else result.warnings).append(f"monitor {name}: {cid}: {msg}")
    result.passed = not result.reasons
