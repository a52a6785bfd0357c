"""``evaltray run`` (the system under test on a release) and ``evaltray stats`` (sizes, no workspace)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evaltray.core.util import file_sha256

from ._common import lazy_module

if TYPE_CHECKING:
    from evaltray.evaluate import assertions as suggesting
    from evaltray.evaluate import calibrate as cal
    from evaltray.evaluate import compare as comparing
    from evaltray.evaluate import html as html_report
    from evaltray.evaluate import judge as judging
    from evaltray.evaluate import label_errors, targets
    from evaltray.evaluate import report as reporting
    from evaltray.evaluate import run as runner
    from evaltray.evaluate import score as scoring
    from evaltray.evaluate import screen as screening
    from evaltray.evaluate import stats as st
else:  # imported by the command that uses them: `evaltray run` needs no scipy, `--help` nothing
    suggesting = lazy_module("evaltray.evaluate.assertions")
    cal = lazy_module("evaltray.evaluate.calibrate")
    comparing = lazy_module("evaltray.evaluate.compare")
    html_report = lazy_module("evaltray.evaluate.html")
    judging = lazy_module("evaltray.evaluate.judge")
    label_errors = lazy_module("evaltray.evaluate.label_errors")
    reporting = lazy_module("evaltray.evaluate.report")
    runner = lazy_module("evaltray.evaluate.run")
    scoring = lazy_module("evaltray.evaluate.score")
    screening = lazy_module("evaltray.evaluate.screen")
    st = lazy_module("evaltray.evaluate.stats")
    targets = lazy_module("evaltray.evaluate.targets")

from ._common import (
    AppContext,
    dry_run_option,
    emit,
    err,
    json_option,
    number,
    out,
    pass_app,
    progress_bar,
    set_option,
    shown,
    table,
)

#: ``judge calibrate``'s default threshold as its help says it; tests hold it to ``calibrate.DEFAULT_THRESHOLD``
#: (read when the command runs, so that the help imports no statistics).
THRESHOLD_SHOWN = "0.85"
RATE = click.FloatRange(0, 1, min_open=True, max_open=True)
_SCORERS_HELP = "Comma-separated scorers (default: exact,contains,regex,json_schema,tool_calls,length)."


@click.group()
def stats() -> None:
    """How many cases a question needs, and how sure a pass rate is."""


@stats.command("size")
@click.option("--baseline", type=RATE, required=True, help="The pass rate today, e.g. 0.8.")
@click.option("--mde", type=RATE, required=True, help="The smallest change to detect, e.g. 0.05 for 5 points.")
@click.option("--alpha", type=RATE, default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--power", type=RATE, default=0.8, show_default=True)
@click.option(
    "--discordance",
    type=RATE,
    help="Share of cases whose verdicts differ between two runs (paired size); default: the least possible.",
)
@click.option(
    "--cluster-size",
    type=click.FloatRange(1),
    default=1,
    show_default=True,
    help="Cases per conversation, persona or template.",
)
@click.option(
    "--icc", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Intra-cluster correlation of verdicts."
)
@json_option
def stats_size(
    baseline: float,
    mde: float,
    alpha: float,
    power: float,
    discordance: float | None,
    cluster_size: float,
    icc: float,
    as_json: bool,
) -> None:
    """Cases per run to detect a change of --mde from --baseline: unpaired and paired, with a design effect."""
    deff = st.design_effect(cluster_size, icc)
    size = st.sample_size(baseline, mde, alpha, power, discordance, deff)
    data = {**dataclasses.asdict(size), "advice_unpaired": st.size_advice(size.unpaired)}

    def human() -> None:
        points = number(size.mde * 100)
        out().print(f"to detect a {points}-point change from {number(baseline * 100)}% (alpha {alpha}, power {power}):")
        out().print(f"  two independent runs:      {number(size.unpaired)} cases")
        out().print(
            f"  the same cases, paired:    {number(size.paired)} cases (discordance {number(size.discordance)})"
        )
        if deff > 1:
            out().print(f"  (design effect {number(deff)} for clustered cases included)")
        out().print(f"  {number(size.unpaired)} cases: {st.size_advice(size.unpaired)}")

    emit(as_json, data, human)


def _price(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        inp, outp = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("give dollars per million input and output tokens: --price 0.15,0.60") from None
    return inp, outp


def _target_options(fn: Any) -> Any:
    """What runs on what: SOURCE, --target, --base-url, --set, --split, --subset (run and aa share them)."""
    for option in reversed(
        [
            click.argument("source"),
            click.option(
                "--target",
                "target_spec",
                required=True,
                help="openai:<model>, python:module:function, cmd:<command>, replay.",
            ),
            click.option(
                "--base-url", help="The OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else OpenAI's)."
            ),
            set_option,
            click.option("--split", type=click.Choice(["dev", "holdout", "all"]), default="all", show_default=True),
            click.option("--subset", type=click.Choice(["pr", "release"]), help="Narrow the split to a named subset."),
            click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True),
            click.option(
                "--timeout",
                type=click.FloatRange(0, min_open=True),
                default=60.0,
                show_default=True,
                help="Seconds per attempt.",
            ),
            click.option(
                "--retries",
                type=click.IntRange(0, 20),
                default=3,
                show_default=True,
                help="Retries of a 429, 5xx or timeout.",
            ),
            click.option(
                "--trials",
                type=click.IntRange(1, 100),
                default=1,
                show_default=True,
                help="Runs of each case (flakiness, pass@k).",
            ),
            click.option("--price", help="Dollars per million input,output tokens for the estimate (e.g. 0.15,0.60)."),
            click.option(
                "--prices",
                "prices_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="A price table (YAML: model: [input, output] dollars per million tokens) for the estimate.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _announce(
    app: AppContext,
    source: str,
    target_spec: str,
    base_url: str | None,
    picked: tuple[str | None, str, str | None],
    trials: int,
    price: tuple[str | None, Path | None],
    runs: int = 1,
) -> tuple[runner.RunPlan, Any, dict[str, Any]]:
    """The plan and target a command will run, after printing the cost estimate (to stderr) before anything
    is sent; ``runs`` times the requests of one run (an A/A check runs twice)."""
    path = Path(source)
    if source.startswith("rolling-") and not path.is_file():  # a rolling drift-set release (tray.rolling)
        plan = runner.plan_rolling_run(app.ws, source)
    elif path.suffix in (".jsonl", ".json") or path.is_file():
        plan = runner.plan_file_run(path)
    else:
        plan = runner.plan_release_run(app.ws, source, *picked)
    target = targets.make_target(target_spec, base_url=base_url)
    table = runner.load_prices(price[1]) if price[1] is not None else None
    estimate = plan.estimate(target, trials * runs, _price(price[0]), table)
    for issue in plan.issues[:20]:
        err().print(f"warning: {shown(issue)}", highlight=False)
    dollars = (
        f"${estimate['usd']:,.4f}" if estimate["usd"] is not None else "price unknown (--price IN,OUT or --prices)"
    )
    err().print(
        f"about to send up to {number(estimate['requests'])} requests, ~{number(estimate['input_tokens'])} input and "
        f"~{number(estimate['output_tokens'])} output tokens: {dollars}",
        highlight=False,
    )
    return plan, target, estimate


@click.command("run")
@_target_options
@click.option("--no-cache", is_flag=True, help="Send every case, even ones this target already answered.")
@click.option("--fresh", is_flag=True, help="A new run, not a resume of the same command's run.")
@click.option("--retry-errors", is_flag=True, help="Resume and send again the cases that ended in an error.")
@json_option
@pass_app
def run_command(
    app: AppContext,
    source: str,
    target_spec: str,
    base_url: str | None,
    set_name: str | None,
    split: str,
    subset: str | None,
    concurrency: int,
    timeout: float,
    retries: int,
    trials: int,
    price: str | None,
    prices_file: Path | None,
    no_cache: bool,
    fresh: bool,
    retry_errors: bool,
    as_json: bool,
) -> None:
    """Run a target on a release's cases (SOURCE a version) or on a JSONL of cases (SOURCE a file: unreleased)."""
    ws = app.ws
    plan, target, estimate = _announce(
        app, source, target_spec, base_url, (set_name, split, subset), trials, (price, prices_file)
    )
    limits = runner.Limits(concurrency=concurrency, timeout=timeout, retries=retries)
    with progress_bar(None, "running") as bar:
        task = bar.add_task("run", total=None)
        report = runner.execute(
            ws,
            plan,
            target,
            trials=trials,
            limits=limits,
            cache=not no_cache,
            fresh=fresh,
            retry_errors=retry_errors,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            actor=app.user,
        )
    data = _run_summary(report, estimate)
    emit(as_json, data, lambda: _print_run(report, plan.released))


def _run_summary(report: runner.RunReport, estimate: dict[str, Any]) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["path"] = str(report.path)
    data["estimate"] = estimate
    return data


def _print_run(report: runner.RunReport, released: bool) -> None:
    src = report.source
    what = f"release {src['release']} ({src['release_hash'][:12]})" if released else f"{src['file']} (unreleased)"
    out().print(f"run {report.run_id} of {shown(report.target['spec'])} on {shown(what)}", highlight=False)
    out().print(
        f"  {number(report.cases)} cases × {report.trials} trials: {number(report.sent)} sent, "
        f"{number(report.cached)} from the cache, {number(report.resumed)} already done, "
        f"{number(report.errors)} errors, {report.seconds:.1f} s",
        highlight=False,
    )
    for reason, n in sorted(report.error_reasons.items(), key=lambda kv: -kv[1]):
        out().print(f"  error × {number(n)}: {shown(reason)}", highlight=False)
    out().print(f"  results: {shown(report.path / 'results.jsonl')}", highlight=False)


@click.command("score")
@click.argument("run_id")
@click.option("--scorers", help=_SCORERS_HELP)
@click.option(
    "--judge", "judge_file", type=click.Path(dir_okay=False, path_type=Path), help="judge.yaml for the judge scorer."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True, help="Judge requests at once."
)
@json_option
@pass_app
def score_command(
    app: AppContext, run_id: str, scorers: str | None, judge_file: Path | None, concurrency: int, as_json: bool
) -> None:
    """Score a run's answers with rule scorers (and an LLM judge) into runs/RUN/scores.jsonl."""
    names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None
    if judge_file is not None and names is None:
        names = ["judge"]
    judge = judging.load_judge(judge_file) if judge_file is not None else None
    limits = runner.Limits(concurrency=concurrency)
    report = scoring.score_run(app.ws, run_id, names, app.user, judge=judge, limits=limits)
    data = {**dataclasses.asdict(report), "path": str(report.path)}

    def human() -> None:
        out().print(
            f"run {report.run_id}: {number(report.answers)} answers, {number(report.passed)} pass, "
            f"{number(report.failed)} fail, {number(report.errors)} errors, {number(report.unscored)} unscored",
            highlight=False,
        )
        for name, counts in report.by_scorer.items():
            parts = ", ".join(f"{number(v)} {k}" for k, v in sorted(counts.items()))
            out().print(f"  {name}: {parts or 'nothing'}", highlight=False)
        for slice_name, listed in report.slice_assertions.items():
            out().print(f"  slice {slice_name} (plan.yaml): {'; '.join(shown(a) for a in listed)}", highlight=False)

    emit(as_json, data, human)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@click.command("report")
@click.argument("run_id")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the HTML report here."
)
@click.option("--compare", "other", help="A second scored run: the two side by side, paired where they share cases.")
@json_option
@pass_app
def report_command(app: AppContext, run_id: str, html_path: Path | None, other: str | None, as_json: bool) -> None:
    """Pass rates of a scored run, overall and per slice, with 95% Wilson intervals and the release hash."""
    if other is not None:
        _report_compare(app, other, run_id, as_json)
        return
    data = reporting.run_report(app.ws, run_id)
    if html_path is not None:
        data["html"] = str(html_report.write_html_report(app.ws, run_id, html_path))

    def human() -> None:
        what = (
            data["release"]
            if data["release"] == "unreleased"
            else f"release {data['release']} ({data['release_hash'][:12]})"
        )
        title = f"{data['target']} on {what}, {data['split']}"
        rows = [["(all)", data["overall"]], *[[name, s] for name, s in data["slices"].items()]]
        cells = [
            [name, s["n"], _pct(s["pass_rate"]), f"{_pct(s['low'])}–{_pct(s['high'])}", s["errors"]] for name, s in rows
        ]
        out().print(table(title, ["slice", "cases", "pass rate", "95% interval", "errors"], cells))
        out().print(f"{number(data['overall']['n'])} scored cases: {data['advice']}", highlight=False)
        _print_judge(data.get("judge"))
        levels = ", ".join(f"{k} {_pct(v['pass_rate'])} (n {v['n']})" for k, v in data["difficulty"].items())
        out().print(f"by difficulty: {shown(levels)}", highlight=False)
        tw = data.get("traffic_weighted")
        if tw:
            out().print(f"weighted by production traffic per feature: {_pct(tw['pass_rate'])}", highlight=False)
        gap = data.get("holdout_gap")
        if gap and gap["gap"] is not None:
            out().print(
                f"dev {_pct(gap['dev']['pass_rate'])} vs holdout {_pct(gap['holdout']['pass_rate'])}: gap {gap['gap'] * 100:+.1f} points",
                highlight=False,
            )
        t = data.get("trials")
        if t and t["cases"]:
            out().print(
                f"{t['k']} trials of {number(t['cases'])} cases: pass@{t['k']} {_pct(t['pass_at_k']['pass_rate'])}, "
                f"pass^{t['k']} {_pct(t['pass_hat_k']['pass_rate'])}, {number(len(t['flaky']))} flaky "
                f"({shown(', '.join(t['flaky'][:5]))}{' …' if len(t['flaky']) > 5 else ''})",
                highlight=False,
            )
        if html_path is not None:
            out().print(f"HTML report: {shown(html_path)}", highlight=False)
        for w in data["warnings"]:
            err().print(f"warning: {shown(w)}", highlight=False)

    emit(as_json, data, human)


@click.group("judge")
def judge_group() -> None:
    """LLM judges: calibrate one against human verdicts before it counts."""


@judge_group.command("calibrate")
@click.option(
    "--judge",
    "judge_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="judge.yaml: run this judge on the reviewed outputs.",
)
@click.option(
    "--human",
    "human_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of {id, verdict} from people (default: the workspace's reviews and closed judge_check tasks).",
)
@click.option(
    "--judge-verdicts",
    "verdicts_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of {id, verdict, critique} from a judge that ran elsewhere.",
)
@click.option(
    "--threshold",
    type=RATE,
    default=lambda: cal.DEFAULT_THRESHOLD,
    show_default=THRESHOLD_SHOWN,
    help="Agreement a judge needs to count.",
)
@click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True)
@json_option
@pass_app
def judge_calibrate(
    app: AppContext,
    judge_file: Path | None,
    human_file: Path | None,
    verdicts_file: Path | None,
    threshold: float,
    concurrency: int,
    as_json: bool,
) -> None:
    """Agreement, Cohen's kappa, TPR and TNR of a judge against human verdicts on the same outputs."""
    judge = judging.load_judge(judge_file) if judge_file is not None else None
    result = cal.calibrate(
        app.ws,
        judge,
        human_file=human_file,
        judge_file=verdicts_file,
        threshold=threshold,
        limits=runner.Limits(concurrency=concurrency),
        actor=app.user,
    )
    data = result.to_dict()

    def human() -> None:
        a = result.agreement
        state = "calibrated" if result.calibrated else f"NOT calibrated (below {threshold:.0%})"
        out().print(f"judge {shown(result.judge)} ({result.judge_hash[:12]}): {state}", highlight=False)
        out().print(
            f"  {number(result.n)} outputs judged by both; agreement {_ci(a.agreement)}, kappa {a.kappa:.3f}",
            highlight=False,
        )
        out().print(f"  TPR {_ci(a.tpr)}, TNR {_ci(a.tnr)}", highlight=False)
        c = a.confusion
        out().print(
            f"  human pass: judge pass {c['human_pass_judge_pass']}, fail {c['human_pass_judge_fail']}; "
            f"human fail: judge pass {c['human_fail_judge_pass']}, fail {c['human_fail_judge_fail']}",
            highlight=False,
        )
        if result.human_agreement is None:
            out().print("  human baseline: no output was reviewed by two people", highlight=False)
        else:
            out().print(
                f"  human baseline: {result.human_agreement:.0%} on {result.human_pairs} outputs two people reviewed",
                highlight=False,
            )
        for d in result.disagreements[:10]:
            out().print(
                f"  disagrees: {shown(d['id'])} human {d['human']}, judge {d['judge']}: {shown(d['critique'] or '')}",
                highlight=False,
            )

    emit(as_json, data, human)


def _ci(i: st.Interval) -> str:
    return f"{i.estimate:.1%} ({i.low:.1%}–{i.high:.1%})"


def _print_judge(judge: dict[str, Any] | None) -> None:
    if judge is None:
        return
    cal_ = judge.get("calibration")
    if cal_ is None or not judge["calibrated"]:
        why = "never calibrated" if cal_ is None else f"agreement {cal_['agreement']:.1%} < {cal_['threshold']:.0%}"
        out().print(
            f"judge {shown(judge['name'])}: NOT calibrated ({why}); its verdicts are not corrected", highlight=False
        )
        return
    raw = judge["judge_passed"] / judge["judged"] if judge["judged"] else None
    line = f"judge {shown(judge['name'])}: calibrated (agreement {cal_['agreement']:.1%} on {cal_['n']}), passes {_pct(raw)}"
    corrected = judge.get("corrected") or {}
    if "pass_rate" in corrected:
        line += f"; corrected for its TPR/TNR: {_pct(corrected['pass_rate'])} ({_pct(corrected['low'])}–{_pct(corrected['high'])})"
    out().print(line, highlight=False)


@click.command("gate")
@click.argument("run_id")
@click.option("--baseline", required=True, help="The run to compare with, on the same release and subset.")
@click.option(
    "--budget",
    type=click.FloatRange(0, 100),
    default=1.0,
    show_default=True,
    help="Points of pass rate the candidate may lose.",
)
@click.option(
    "--floors",
    "floors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="plan.yaml whose slices' pass_rate_floor apply.",
)
@click.option("--allow-uncalibrated", is_flag=True, help="Count an uncalibrated judge's scores (printed on top).")
@click.option("--strict", is_flag=True, help="Fail when a monitor (duplicates, contamination) finds anything.")
@json_option
@pass_app
def gate_command(
    app: AppContext,
    run_id: str,
    baseline: str,
    budget: float,
    floors_file: Path | None,
    allow_uncalibrated: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """The CI gate: exit 1 when RUN regressed against --baseline beyond the budget, a slice regressed
    significantly, or a slice fell below its floor."""
    floors: dict[str, float] = {}
    if floors_file is not None:
        from evaltray.curate.plan import Plan

        plan = Plan.load(floors_file)
        floors = {
            k: float(v["pass_rate_floor"]) for k, v in plan.slices.items() if v.get("pass_rate_floor") is not None
        }
    result = comparing.gate(
        app.ws, run_id, baseline, budget=budget, floors=floors, allow_uncalibrated=allow_uncalibrated
    )
    from .monitor import gate_monitors

    gate_monitors(app.ws, result, run_id, strict)
    data = dataclasses.asdict(result)

    def human() -> None:
        cmp = result.comparison
        if allow_uncalibrated:
            out().print("WARNING: scores of an uncalibrated judge are counted (--allow-uncalibrated)", highlight=False)
        out().print(
            f"{run_id} vs {baseline} on release {cmp['release']} ({(cmp['release_hash'] or '')[:12]}), {cmp['n']} cases: "
            f"{cmp['baseline_rate']:.1%} → {cmp['candidate_rate']:.1%} "
            f"({cmp['difference']['estimate'] * 100:+.1f} points, 95% {cmp['difference']['low'] * 100:+.1f} to {cmp['difference']['high'] * 100:+.1f})",
            highlight=False,
        )
        d = result.detectable_points
        out().print(
            f"  smallest detectable drop: {d['paired']:g} points paired, {d['unpaired']:g} unpaired", highlight=False
        )
        for w in result.warnings:
            out().print(f"  warning: {shown(w)}", highlight=False)
        for r in result.reasons:
            out().print(f"  FAIL: {shown(r)}", highlight=False)
        out().print("gate: pass" if result.passed else "gate: FAIL", highlight=False)

    emit(as_json, data, human)
    if not result.passed:
        sys.exit(1)


def _report_compare(app: AppContext, baseline: str, candidate: str, as_json: bool) -> None:
    """Two runs side by side (the same target on two releases, or two targets on one); runs on different
    releases are compared on the cases both hold, and the report says so on top."""
    cmp = comparing.compare_runs(app.ws, baseline, candidate, allow_different_release=True, allow_uncalibrated=True)

    def human() -> None:
        if not cmp["same_release"]:
            out().print(
                "NOTE: the runs used different data (releases or files); compared on the cases both hold",
                highlight=False,
            )
        d = cmp["difference"]
        out().print(
            f"{candidate} vs {baseline}, {cmp['n']} shared cases: {_pct(cmp['baseline_rate'])} → {_pct(cmp['candidate_rate'])} "
            f"({d['estimate'] * 100:+.1f} points, 95% {d['low'] * 100:+.1f} to {d['high'] * 100:+.1f}; McNemar p {cmp['p_mcnemar']:.3g})",
            highlight=False,
        )
        rows = [
            [
                name,
                s["n"],
                _pct(s["baseline"]),
                _pct(s["candidate"]),
                f"{s['difference'] * 100:+.1f}",
                f"{s['p_holm']:.3g}",
            ]
            for name, s in cmp["slices"].items()
        ]
        out().print(table(None, ["slice", "cases", baseline, candidate, "points", "p (Holm)"], rows))

    emit(as_json, cmp, human)


@click.command("screen")
@click.option("--question", required=True, help="A yes/no question about each trace's user side.")
@click.option("--model", help="Ask this model (OpenAI-compatible endpoint: --base-url).")
@click.option("--base-url", help="The endpoint of --model (default $OPENAI_BASE_URL, else OpenAI's).")
@click.option("--pattern", help="Instead of a model: a regular expression (case-insensitive) that means yes.")
@click.option("--where", help="Only traces matching this SQL predicate.")
@click.option("--limit", type=click.IntRange(1), help="At most this many traces.")
@click.option("--add", is_flag=True, help="Put the matching traces into the candidate pool.")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True)
@json_option
@pass_app
def screen_command(
    app: AppContext,
    question: str,
    model: str | None,
    base_url: str | None,
    pattern: str | None,
    where: str | None,
    limit: int | None,
    add: bool,
    concurrency: int,
    as_json: bool,
) -> None:
    """A cheap yes/no pass over traces to find a rare slice before anyone labels."""
    result = screening.screen(
        app.ws,
        question,
        model=model,
        base_url=base_url,
        pattern=pattern,
        where=where,
        limit=limit,
        add=add,
        limits=runner.Limits(concurrency=concurrency),
        actor=app.user,
    )

    def human() -> None:
        out().print(
            f"{number(len(result.matched))} of {number(result.screened)} traces answer yes to {shown(question)!r}"
            + (f"; {number(len(result.unanswered))} gave no yes/no" if result.unanswered else "")
            + (f"; {number(len(result.added))} added to the candidate pool" if add else ""),
            highlight=False,
        )
        for tid in result.matched[:20]:
            out().print(f"  {shown(tid)}", highlight=False)

    emit(as_json, dataclasses.asdict(result), human)


@click.command("label-errors")
@click.option(
    "--judge", "judge_file", type=click.Path(dir_okay=False, path_type=Path), help="judge.yaml of a calibrated judge."
)
@click.option(
    "--judge-verdicts",
    "verdicts_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The verdict file a judge was calibrated from.",
)
@click.option("--k", type=click.IntRange(2, 100), default=5, show_default=True, help="Neighbours compared.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option(
    "--send",
    is_flag=True,
    help="Send the listed suspects (up to --limit) back to the review queue as re-validation tasks.",
)
@json_option
@pass_app
def label_errors_command(
    app: AppContext, judge_file: Path | None, verdicts_file: Path | None, k: int, limit: int, send: bool, as_json: bool
) -> None:
    """Reviewed labels that may be wrong, most suspect first: to look at again, never relabelled here."""
    judge_hash = judging.load_judge(judge_file).hash if judge_file else None
    if verdicts_file is not None:
        judge_hash = file_sha256(verdicts_file)
    found = label_errors.suspected_labels(app.ws, judge_hash, k=k)
    sent = label_errors.send_to_review(app.ws, found[:limit], app.user) if send else {}
    rows = [[s.candidate_id, f"{s.score:.2f}", "; ".join(s.reasons)] for s in found[:limit]]
    data = [{**dataclasses.asdict(s), **({"task": sent.get(s.candidate_id)} if send else {})} for s in found]

    def human() -> None:
        out().print(table(f"{len(found)} suspected label errors", ["candidate", "score", "why"], rows))
        if send:
            unknown = [c for c, t in sent.items() if t is None]
            out().print(f"sent {len(sent) - len(unknown)} to the review queue (`evaltray tasks list`)")
            if unknown:
                err().print(f"not candidates in this workspace, not sent: {shown(', '.join(unknown))}")

    emit(as_json, data, human)


@click.command("aa")
@_target_options
@click.option("--scorers", help=_SCORERS_HELP)
@click.option(
    "--judge", "judge_file", type=click.Path(dir_okay=False, path_type=Path), help="judge.yaml for the judge scorer."
)
@click.option("--alpha", type=RATE, default=0.05, show_default=True, help="Significance level of the paired tests.")
@json_option
@pass_app
def aa_command(
    app: AppContext,
    source: str,
    target_spec: str,
    base_url: str | None,
    set_name: str | None,
    split: str,
    subset: str | None,
    concurrency: int,
    timeout: float,
    retries: int,
    trials: int,
    price: str | None,
    prices_file: Path | None,
    scorers: str | None,
    judge_file: Path | None,
    alpha: float,
    as_json: bool,
) -> None:
    """A/A check: run the same target twice on the same cases, score both, and exit 1 when the paired tests
    find a difference (nothing changed, so none should be found)."""
    plan, target, _ = _announce(
        app, source, target_spec, base_url, (set_name, split, subset), trials, (price, prices_file), runs=2
    )
    names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None
    if judge_file is not None and names is None:
        names = ["judge"]
    judge = judging.load_judge(judge_file) if judge_file is not None else None
    limits = runner.Limits(concurrency=concurrency, timeout=timeout, retries=retries)
    with progress_bar(None, "A/A") as bar:
        task = bar.add_task("aa", total=None)
        result = comparing.run_aa(
            app.ws,
            plan,
            target,
            scorers=names,
            judge=judge,
            trials=trials,
            limits=limits,
            alpha=alpha,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            actor=app.user,
        )

    def human() -> None:
        d = result.difference
        out().print(
            f"A/A of {shown(target.spec)}: runs {result.runs[0]} and {result.runs[1]} on {number(result.n)} cases: "
            f"{_pct(result.rate_a)} vs {_pct(result.rate_b)} ({d['estimate'] * 100:+.1f} points, "
            f"95% {d['low'] * 100:+.1f} to {d['high'] * 100:+.1f}; McNemar p {result.p_mcnemar:.3g})",
            highlight=False,
        )
        out().print(
            f"  {number(len(result.discordant))} cases changed verdict between the runs"
            + (f"; {number(len(result.flaky))} flaky among {result.trials} trials" if result.trials > 1 else ""),
            highlight=False,
        )
        for w in result.warnings:
            out().print(f"  warning: {shown(w)}", highlight=False)
        verdict = "no significant difference" if result.passed else f"significant difference at alpha {alpha:g}"
        out().print(f"A/A: {'pass' if result.passed else 'FAIL'} ({verdict})", highlight=False)

    emit(as_json, dataclasses.asdict(result), human)
    if not result.passed:
        sys.exit(1)


@click.group("assertions")
def assertions_group() -> None:
    """Assertions suggested from a prompt template's history, picked by the failures reviewers tagged."""


@assertions_group.command("suggest")
@click.option(
    "--git",
    "git_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The prompt template, a file under git (default: the candidates' system messages, in order).",
)
@click.option(
    "--outputs",
    "outputs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of {id, output, verdict, failure_tags} (default: the workspace's reviewed outputs).",
)
@set_option
@click.option(
    "--judge", "judge_file", type=click.Path(dir_okay=False, path_type=Path), help="judge.yaml: proposes and checks."
)
@click.option(
    "--budget",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of passing outputs the picked set may fail.",
)
@click.option("--most", type=click.IntRange(1, 100), default=5, show_default=True, help="Assertions to pick at most.")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True)
@json_option
@pass_app
def assertions_suggest(
    app: AppContext,
    git_file: Path | None,
    outputs_file: Path | None,
    set_name: str | None,
    judge_file: Path | None,
    budget: float,
    most: int,
    concurrency: int,
    as_json: bool,
) -> None:
    """Candidate assertions for each change of a prompt template, and a small set that catches the tagged
    failures while failing few passing outputs."""
    report = suggesting.suggest(
        app.ws,
        git_file=git_file,
        outputs_file=outputs_file,
        set_name=set_name,
        judge=judging.load_judge(judge_file) if judge_file is not None else None,
        budget=budget,
        most=most,
        limits=runner.Limits(concurrency=concurrency),
        actor=app.user,
    )

    def human() -> None:
        rows = [
            [
                ("* " if s.id in report.selected else "  ") + s.id,
                s.assertion[:70],
                s.kind,
                s.version[:12],
                len(s.catches),
                len(s.false_failures),
                s.unchecked,
            ]
            for s in report.suggestions
        ]
        heads = ["id (* picked)", "assertion", "kind", "change", "catches", "false fails", "unchecked"]
        out().print(table(f"{len(report.changes)} template versions", heads, rows))
        out().print(
            f"picked {len(report.selected)}: catch {len(report.caught)} of {report.failures} failing outputs "
            f"({_pct(report.coverage)}), fail {len(report.false_failures)} of {report.passes} passing "
            f"({_pct(report.false_failure_rate)}; budget {report.budget:.0%})",
            highlight=False,
        )
        for tag, t in report.by_tag.items():
            out().print(f"  tag {shown(tag)}: {t['caught']} of {t['failures']} caught", highlight=False)
        if report.selected:
            out().print(
                f"accept: evaltray assertions accept {' '.join(report.selected)} --slice SLICE (or --case ID)",
                highlight=False,
            )

    emit(as_json, report.to_dict(), human)


@assertions_group.command("accept")
@click.argument("ids", nargs=-1, required=True)
@click.option("--case", "cases", multiple=True, help="A case to add them to (repeatable), as a signed relabel.")
@click.option(
    "--slice",
    "slice_name",
    help="Add them to this slice's scorers in plan.yaml: `score` checks them on every case of it and its sub-slices.",
)
@click.option(
    "--each-case", is_flag=True, help="With --slice: relabel every active case of the slice instead of the plan."
)
@set_option
@dry_run_option
@json_option
@pass_app
def assertions_accept(
    app: AppContext,
    ids: tuple[str, ...],
    cases: tuple[str, ...],
    slice_name: str | None,
    each_case: bool,
    set_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Accept suggested assertions into a slice's scorers (plan.yaml) or into cases' expected behaviour."""
    if slice_name is not None and not each_case and not cases:
        added = suggesting.accept_into_slice(
            app.ws, list(ids), app.user, slice_name, set_name=set_name, dry_run=dry_run
        )
        verb = "would add" if dry_run else "added"
        emit(
            as_json,
            {"slice": slice_name, "added": added, "dry_run": dry_run},
            lambda: out().print(
                f"{verb} to slice {slice_name} in plan.yaml: " + ("; ".join(shown(a) for a in added) or "nothing new"),
                highlight=False,
            ),
        )
        return
    gained = suggesting.accept(
        app.ws, list(ids), app.user, cases=cases, slice=slice_name, set_name=set_name, dry_run=dry_run
    )
    changed = [c for c, new in gained.items() if new]

    def human() -> None:
        for cid, new in gained.items():
            out().print(f"{cid}: " + ("; ".join(shown(a) for a in new) or "already has them"), highlight=False)
        verb = "would relabel" if dry_run else "relabeled"
        out().print(
            f"{verb} {len(changed)} cases" + ("" if dry_run or not changed else "; `evaltray promote` applies them"),
            highlight=False,
        )

    emit(as_json, {"cases": gained, "relabeled": changed, "dry_run": dry_run}, human)
