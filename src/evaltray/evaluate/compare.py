"""Two runs on the same release, compared paired; and the CI gate built on that comparison.

The gate (seeds 002–003) passes a candidate run against a baseline run on the same release and subset
when: the overall pass rate dropped by no more than the regression budget (points); no named slice
regressed significantly (exact McNemar per slice, Holm-corrected across slices); every slice with a
floor in the coverage plan is at or above it. It states the smallest change the cases can detect, and
warns when the budget or a floor is finer than that (a 1-point budget needs thousands of cases; the
~50-case ``pr`` subset catches collapses only). Judge scores count only from a calibrated judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace

from .calibrate import find_calibration
from .judge import JudgeConfig
from .run import Limits, Progress, RunPlan, execute, run_dir
from .score import load_run, read_scores, score_run
from .stats import holm, paired_bootstrap, sample_size, wilson
from .targets import Target

__all__ = ["AAResult", "CompareError", "GateResult", "aa_check", "compare_runs", "gate", "run_aa"]


class CompareError(EvaltrayError):
    """Two runs that cannot be compared (different release hashes, no cases in common, unscored)."""


def _verdicts(
    ws: Workspace, run_id: str, allow_uncalibrated: bool
) -> tuple[dict[str, Any], dict[str, tuple[str | None, bool]]]:
    manifest = load_run(ws, run_id)
    rows = read_scores(ws, run_id)
    judge = _judge_of(ws, run_id)
    if judge is not None and not judge[1] and not allow_uncalibrated:
        raise CompareError(
            f"run {run_id} was scored by judge {judge[0]}, which is not calibrated: calibrate it "
            "(`evaltray judge calibrate`) or pass --allow-uncalibrated"
        )
    out = {
        r["case_id"]: (r.get("slice"), r["status"] == "pass")
        for r in rows
        if r["trial"] == 0 and r["status"] in ("pass", "fail")
    }
    return manifest, out


def _judge_of(ws: Workspace, run_id: str) -> tuple[str, bool] | None:
    meta_path = run_dir(ws, run_id) / "scores.json"
    meta = orjson.loads(meta_path.read_bytes()).get("judge") if meta_path.exists() else None
    if meta is None:
        return None
    cal = find_calibration(ws, meta["hash"])
    return meta["name"], bool(cal and cal["calibrated"])


def compare_runs(
    ws: Workspace,
    baseline: str,
    candidate: str,
    *,
    allow_different_release: bool = False,
    allow_uncalibrated: bool = False,
) -> dict[str, Any]:
    """Candidate minus baseline on the cases both scored: overall (paired bootstrap and exact McNemar) and per
    slice (McNemar, Holm-corrected). Refuses runs on different release hashes unless allowed, and then says so."""
    base_m, base = _verdicts(ws, baseline, allow_uncalibrated)
    cand_m, cand = _verdicts(ws, candidate, allow_uncalibrated)
    hashes = (base_m["source"].get("release_hash"), cand_m["source"].get("release_hash"))
    same = hashes[0] is not None and hashes[0] == hashes[1]
    if not same and not allow_different_release:
        raise CompareError(
            f"runs {baseline} and {candidate} ran on different data ({_what(base_m)} vs {_what(cand_m)}); "
            "compare runs on one release, or pass --allow-different-release"
        )
    ids = sorted(set(base) & set(cand))
    if not ids:
        raise CompareError(f"runs {baseline} and {candidate} have no scored case in common")
    overall = paired_bootstrap([base[i][1] for i in ids], [cand[i][1] for i in ids])
    slices: dict[str, dict[str, Any]] = {}
    for name in sorted({str(base[i][0] or "(none)") for i in ids}):
        sid = [i for i in ids if str(base[i][0] or "(none)") == name]
        got = paired_bootstrap([base[i][1] for i in sid], [cand[i][1] for i in sid], n_boot=2000)
        slices[name] = {
            "n": len(sid),
            "baseline": sum(base[i][1] for i in sid) / len(sid),
            "candidate": sum(cand[i][1] for i in sid) / len(sid),
            "difference": got.difference.estimate,
            "only_baseline": got.only_a,
            "only_candidate": got.only_b,
            "p": got.p_mcnemar,
        }
    for name, p_adj in zip(slices, holm([s["p"] for s in slices.values()]), strict=True):
        slices[name]["p_holm"] = p_adj
    return {
        "baseline": baseline,
        "candidate": candidate,
        "same_release": same,
        "release": cand_m["source"].get("release"),
        "release_hash": hashes[1],
        "n": len(ids),
        "baseline_rate": sum(base[i][1] for i in ids) / len(ids),
        "candidate_rate": sum(cand[i][1] for i in ids) / len(ids),
        "difference": {
            "estimate": overall.difference.estimate,
            "low": overall.difference.low,
            "high": overall.difference.high,
        },
        "p_mcnemar": overall.p_mcnemar,
        "discordant": overall.only_a + overall.only_b,
        "slices": slices,
    }


def _what(manifest: dict[str, Any]) -> str:
    src = manifest["source"]
    return f"release {src['release']} ({src['release_hash'][:12]})" if src.get("release") else "an unreleased file"


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)
    detectable_points: dict[str, float] = field(default_factory=dict)


def _detectable(n: int, rate: float, discordance: float) -> dict[str, float]:
    """Smallest drop (in points) ``n`` cases detect at 80% power: unpaired, and paired at the discordance seen."""
    rate = min(max(rate, 0.01), 0.99)

    def smallest(paired: bool) -> float:
        for points in range(1, 100):
            delta = points / 100
            if delta >= rate:
                break
            size = sample_size(rate, delta, discordance=max(delta, discordance) if paired else None)
            if (size.paired if paired else size.unpaired) <= n:
                return float(points)
        return 100.0

    return {"unpaired": smallest(False), "paired": smallest(True)}


def gate(
    ws: Workspace,
    candidate: str,
    baseline: str,
    *,
    budget: float = 1.0,
    floors: dict[str, float] | None = None,
    alpha: float = 0.05,
    allow_uncalibrated: bool = False,
) -> GateResult:
    """Whether ``candidate`` may ship against ``baseline`` (see the module docstring); every reason is a
    sentence a person can act on."""
    for run_id in (candidate, baseline):
        source = load_run(ws, run_id)["source"]
        if source.get("rolling"):
            raise CompareError(
                f"run {run_id} ran on rolling drift-set release {source['rolling']}: the rolling set follows recent "
                "traffic and is never used for gating; gate on runs of a golden release"
            )
        if source.get("release") is None:
            raise CompareError(f"run {run_id} ran on an unreleased file; the gate needs runs on a named release")
    cmp = compare_runs(ws, baseline, candidate, allow_uncalibrated=allow_uncalibrated)
    result = GateResult(True, comparison=cmp)
    drop = -cmp["difference"]["estimate"] * 100
    if drop > budget:
        result.reasons.append(
            f"pass rate fell {drop:.1f} points ({cmp['baseline_rate']:.1%} → {cmp['candidate_rate']:.1%} on {cmp['n']} cases), "
            f"more than the budget of {budget:g}"
        )
    for name, s in cmp["slices"].items():
        if s["difference"] < 0 and s["p_holm"] < alpha:
            result.reasons.append(
                f"slice {name} regressed significantly: {s['baseline']:.1%} → {s['candidate']:.1%} "
                f"(n {s['n']}, McNemar p {s['p']:.3g}, Holm {s['p_holm']:.3g})"
            )
    _floors(cmp, floors or {}, result)
    discordance = cmp["discordant"] / cmp["n"]
    result.detectable_points = _detectable(cmp["n"], cmp["baseline_rate"], discordance)
    finest = result.detectable_points["paired"]
    if budget < finest:
        result.warnings.append(
            f"{cmp['n']} cases detect a drop of about {finest:g} points (paired, 80% power): the budget of {budget:g} "
            "is finer than the cases can see"
        )
    result.passed = not result.reasons
    return result


def _floors(cmp: dict[str, Any], floors: dict[str, float], result: GateResult) -> None:
    """Each slice with a floor (a plan slice ``refunds`` covers ``refunds/irate-user`` too) must be at it."""
    for key, floor in floors.items():
        names = [n for n in cmp["slices"] if n == key or n.startswith(key + "/")]
        if not names:
            continue
        n = sum(cmp["slices"][s]["n"] for s in names)
        passed = round(sum(cmp["slices"][s]["candidate"] * cmp["slices"][s]["n"] for s in names))
        ci = wilson(passed, n)
        if ci.estimate < floor:
            result.reasons.append(
                f"slice {key} is at {ci.estimate:.1%} (95% {ci.low:.1%}–{ci.high:.1%}, n {n}), below its floor of {floor:.0%}"
            )
        elif ci.low < floor:
            result.warnings.append(
                f"slice {key}: {ci.estimate:.1%} is above its floor of {floor:.0%}, but its interval reaches {ci.low:.1%}"
            )


# ----------------------------------------------------------------------------- the A/A check


#: Share of cases whose verdict may change between two identical runs before the A/A check warns.
AA_UNSTABLE_SHARE = 0.05


@dataclass
class AAResult:
    """An A/A check (seed 003: the tray gives stable answers when nothing changed): the same target twice on
    the same cases; ``passed`` when neither the exact McNemar test nor the paired bootstrap finds a difference."""

    runs: tuple[str, str]
    n: int
    rate_a: float
    rate_b: float
    difference: dict[str, float]
    p_mcnemar: float
    alpha: float
    passed: bool
    discordant: list[str] = field(default_factory=list)  # cases whose verdict differs between the runs
    trials: int = 1
    flaky: list[str] = field(default_factory=list)  # cases whose verdicts differ among one run's trials
    warnings: list[str] = field(default_factory=list)


def _flaky(ws: Workspace, run_id: str) -> set[str]:
    seen: dict[str, set[str]] = {}
    for row in read_scores(ws, run_id):
        if row["status"] in ("pass", "fail"):
            seen.setdefault(row["case_id"], set()).add(row["status"])
    return {cid for cid, verdicts in seen.items() if len(verdicts) > 1}


def aa_check(ws: Workspace, run_a: str, run_b: str, alpha: float = 0.05) -> AAResult:
    """Two scored runs of one target on one release (or file) compared paired, as an A/A check; with
    ``--trials k`` runs the cases that flip among trials are listed too. A judge's noise is part of what
    is checked, so an uncalibrated judge is allowed here."""
    made = [load_run(ws, r) for r in (run_a, run_b)]
    if [(m["source"], m["trials"]) for m in made] != [(made[0]["source"], made[0]["trials"])] * 2:
        raise CompareError(
            f"runs {run_a} and {run_b} ran on different cases or trials; an A/A check compares one plan twice"
        )
    cmp = compare_runs(ws, run_a, run_b, allow_different_release=True, allow_uncalibrated=True)
    _, a = _verdicts(ws, run_a, True)
    _, b = _verdicts(ws, run_b, True)
    discordant = sorted(i for i in set(a) & set(b) if a[i][1] != b[i][1])
    d = cmp["difference"]
    passed = cmp["p_mcnemar"] >= alpha and d["low"] <= 0 <= d["high"]
    trials = int(made[0]["trials"])
    flaky = sorted(_flaky(ws, run_a) | _flaky(ws, run_b)) if trials > 1 else []
    result = AAResult(
        (run_a, run_b),
        cmp["n"],
        cmp["baseline_rate"],
        cmp["candidate_rate"],
        d,
        cmp["p_mcnemar"],
        alpha,
        passed,
        discordant,
        trials,
        flaky,
    )
    _aa_warnings(result)
    return result


def _aa_warnings(result: AAResult) -> None:
    share = len(result.discordant) / result.n
    if result.n < 30:
        result.warnings.append(f"only {result.n} cases: an A/A check this small sees only large instabilities")
    if share > AA_UNSTABLE_SHARE:
        result.warnings.append(
            f"{share:.0%} of cases changed verdict between two identical runs: the target or the judge is not "
            "deterministic, so a real change is harder to see (run --trials k and read pass^k)"
        )
    if result.flaky:
        result.warnings.append(f"{len(result.flaky)} cases changed verdict among the trials of one run (flaky)")


def run_aa(
    ws: Workspace,
    plan: RunPlan,
    target: Target,
    *,
    scorers: list[str] | None = None,
    judge: JudgeConfig | None = None,
    trials: int = 1,
    limits: Limits | None = None,
    alpha: float = 0.05,
    progress: Progress | None = None,
    actor: str | None = None,
) -> AAResult:
    """Run ``target`` twice on ``plan`` (fresh runs, no answer cache: both arms really ask), score both with
    the same scorers, and compare them with :func:`aa_check`."""
    runs = []
    for _ in range(2):
        made = execute(
            ws, plan, target, trials=trials, limits=limits, cache=False, fresh=True, progress=progress, actor=actor
        )
        score_run(ws, made.run_id, scorers, actor, judge=judge, limits=limits)
        runs.append(made.run_id)
    return aa_check(ws, runs[0], runs[1], alpha)
