"""``evaltray synth`` (new inputs, never outputs, into the candidate pool) and ``evaltray score-live`` (the
live pass rate of a calibrated judge on a sample of recent production traces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from evaltray.curate.dedup import PARAPHRASE
from evaltray.evaluate import live
from evaltray.evaluate import synth as synthesis
from evaltray.evaluate.judge import load_judge
from evaltray.evaluate.run import Limits
from evaltray.evaluate.targets import make_target

from ._common import AppContext, dry_run_option, emit, err, json_option, number, out, pass_app, set_option, shown, table

__all__ = ["score_live_command", "synth_command"]


def _spec(
    personas_: list[synthesis.Named],
    scenarios_: list[synthesis.Named],
    difficulty: str,
    per_persona: int,
    rewrite: str | None,
    document: str | None,
    multi_turn: bool,
    n: int,
    feature: str | None,
) -> synthesis.SynthSpec:
    if sum(bool(x) for x in (rewrite, document, multi_turn)) > 1:
        raise click.UsageError("--rewrite, --document and --multi-turn are different kinds of synthesis: one at a time")
    kind = "rewrite" if rewrite else "document" if document else "multi_turn" if multi_turn else "persona"
    return synthesis.SynthSpec(
        kind=kind,
        personas=personas_,
        scenarios=scenarios_,
        difficulties=[d.strip() for d in difficulty.split(",") if d.strip()],
        per_persona=per_persona,
        trace_id=rewrite,
        document=Path(document) if document else None,
        n=n,
        feature=feature,
    )


@click.command("synth")
@click.option("--personas", help="YAML: a list of personas (names, or name and description). Default: the plan's.")
@click.option("--scenarios", help="YAML: a list of scenarios (names, or name and description). Default: the plan's.")
@click.option("--difficulty", default="easy,medium,hard", show_default=True, help="Comma-separated difficulties.")
@click.option(
    "--per-persona",
    type=click.IntRange(1, 1000),
    default=synthesis.DEFAULT_PER_PERSONA,
    show_default=True,
    help="Queries per persona (seed 000: 8 to 12), coverage gaps first.",
)
@click.option("--rewrite", "rewrite", metavar="TRACE_ID", help="Rewrite this trace's query --n ways instead.")
@click.option("--document", metavar="FILE", help="Questions that depend on a fact in this document instead.")
@click.option("--multi-turn", is_flag=True, help="Conversations in which the bot loses context and the user escalates.")
@click.option(
    "--n", "n", type=click.IntRange(1, 1000), default=10, show_default=True, help="Inputs per rewrite/document."
)
@click.option("--feature", help="The product area (feature label) of the inputs, where no coverage gap names one.")
@click.option("--generator", required=True, help="The model that writes inputs: openai:<model>.")
@click.option(
    "--base-url", help="The generator's endpoint, and the target's (default $OPENAI_BASE_URL, else OpenAI's)."
)
@click.option("--target", "target_spec", required=True, help="The system under test that answers each input.")
@click.option("--target-base-url", help="The target's endpoint when it differs from --base-url.")
@click.option("--paraphrase", is_flag=True, help="Dedup paraphrases too (embeddings), not only exact and near copies.")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=8, show_default=True)
@set_option
@dry_run_option
@json_option
@pass_app
def synth_command(
    app: AppContext,
    personas: str | None,
    scenarios: str | None,
    difficulty: str,
    per_persona: int,
    rewrite: str | None,
    document: str | None,
    multi_turn: bool,
    n: int,
    feature: str | None,
    generator: str,
    base_url: str | None,
    target_spec: str,
    target_base_url: str | None,
    paraphrase: bool,
    concurrency: int,
    set_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Generate inputs (never outputs), answer them with the target, add them to the pool as synthetic."""
    ws = app.ws
    spec = _spec(
        synthesis.load_named(Path(personas), "persona") if personas else [],
        synthesis.load_named(Path(scenarios), "scenario") if scenarios else [],
        difficulty,
        per_persona,
        rewrite,
        document,
        multi_turn,
        n,
        feature,
    )
    gen = synthesis.make_generator(generator, base_url)
    target = make_target(target_spec, base_url=target_base_url or base_url)
    err().print(f"asking {shown(gen.spec)} for {spec.kind} inputs…", highlight=False)
    result = synthesis.synthesize(
        ws,
        spec,
        gen,
        target,
        set_name=set_name,
        paraphrase=PARAPHRASE if paraphrase else None,
        limits=Limits(concurrency=concurrency),
        dry_run=dry_run,
        actor=app.user,
    )
    emit(as_json, result.to_dict(), lambda: _print_synth(result))


def _print_synth(result: synthesis.SynthResult) -> None:
    for w in result.warnings:
        out().print(f"warning: {shown(w)}", highlight=False)
    counts = result.to_dict()["counts"]
    where = f" (aimed at {number(len(result.gaps))} coverage gaps)" if result.gaps else ""
    out().print(
        f"{number(len(result.drafts))} {result.kind} inputs generated{where}: {number(counts['duplicate'])} duplicates, "
        f"{number(counts['error'])} target errors, "
        + ("dry run: nothing added" if result.dry_run else f"{number(counts['added'])} added to the pool as synthetic"),
        highlight=False,
    )
    if result.run_id:
        out().print(f"  batch {result.batch}, answered in run {result.run_id}", highlight=False)
    for why in result.unanswered[:10]:
        out().print(f"  no input from: {shown(why)}", highlight=False)
    rows = [
        [
            d.candidate_id or d.id,
            d.labels.get("persona") or "",
            d.labels.get("scenario") or "",
            d.difficulty or "",
            d.status if d.why is None else f"{d.status}: {d.why}",
            d.text[:80],
        ]
        for d in result.drafts
    ]
    out().print(table(None, ["id", "persona", "scenario", "difficulty", "status", "input"], rows))


@click.command("score-live")
@click.option("--judge", "judge_file", required=True, help="judge.yaml of a calibrated judge.")
@click.option("--window", default="7d", show_default=True, help="Recent traffic: 30m, 24h, 7d, 2w.")
@click.option("--sample", type=click.IntRange(1), default=500, show_default=True, help="Traces drawn at random.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The draw's seed (the same seed, the same sample)."
)
@click.option(
    "--human-share",
    type=click.FloatRange(0, 1),
    default=live.DEFAULT_HUMAN_SHARE,
    show_default=True,
    help="Share of the verdicts sent to people for review.",
)
@click.option("--rubric", help="The rubric of traces whose slice has none in plan.yaml.")
@click.option("--where", help="Only traces matching this SQL predicate.")
@click.option("--allow-uncalibrated", is_flag=True, help="Score with a judge that is not calibrated (flagged on top).")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True)
@json_option
@pass_app
def score_live_command(
    app: AppContext,
    judge_file: str,
    window: str,
    sample: int,
    seed: int,
    human_share: float,
    rubric: str | None,
    where: str | None,
    allow_uncalibrated: bool,
    concurrency: int,
    as_json: bool,
) -> None:
    """The live pass rate: a calibrated judge on a random sample of recent production traces, per slice."""
    ws = app.ws
    judge = load_judge(Path(judge_file))
    err().print(f"judging up to {number(sample)} traces of the last {shown(window)}…", highlight=False)
    result = live.score_live(
        ws,
        judge,
        window=window,
        sample=sample,
        seed=seed,
        human_share=human_share,
        default_rubric=rubric,
        where=where,
        allow_uncalibrated=allow_uncalibrated,
        limits=Limits(concurrency=concurrency),
        actor=app.user,
    )
    emit(as_json, result.to_dict(), lambda: _print_live(result))


def _pct(rate: dict[str, Any]) -> str:
    if rate.get("pass_rate") is None:
        return "–"
    return f"{rate['pass_rate']:.1%} (95% {rate['low']:.1%}–{rate['high']:.1%})"


def _print_live(result: live.LiveResult) -> None:
    for w in result.warnings:
        out().print(f"WARNING: {shown(w)}" if w.startswith("UNCALIBRATED") else f"warning: {shown(w)}", highlight=False)
    o = result.overall
    out().print(
        f"live pass rate of judge {shown(result.judge['name'])} on {number(o['n'])} traces of {number(result.sampled)} "
        f"sampled from {number(result.eligible)} in the last {shown(result.window)}: {_pct(o)}"
        + (f"; corrected for the judge: {_pct(result.corrected)}" if result.corrected else ""),
        highlight=False,
    )
    rows = [
        [name, s["n"], s["passed"], s["errors"], _pct(s).split(" (")[0], _pct(s).partition("95% ")[2].rstrip(")")]
        for name, s in result.slices.items()
    ]
    out().print(table(None, ["slice", "judged", "passed", "errors", "pass rate", "95% interval"], rows))
    a = result.agreement
    if a["n"]:
        kappa = f", κ {a['kappa']:.2f}" if "kappa" in a else ""
        out().print(
            f"  the judge agreed with people on {number(a['agreed'])} of {number(a['n'])} live verdicts they checked: "
            f"{a['rate']:.1%} (95% {a['low']:.1%}–{a['high']:.1%}){kappa}",
            highlight=False,
        )
    sent = "sent to the review queue as judge_check tasks"
    out().print(f"  {number(len(result.review_ids))} verdicts {sent}; stored in {shown(result.path)}", highlight=False)
