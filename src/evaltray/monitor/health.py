"""Tray health: every signal of rot the seeds name, each with its own threshold, green/amber/red, and the rows
behind it (seeds 001 and 003).

The workspace is read once into :class:`Facts` (:func:`gather`); each signal is a pure function of the facts,
registered in :data:`SIGNALS`, so a test builds facts by hand and a new signal is one decorated function.
Thresholds, from the seeds:

- ``last-update``: the set not updated in 60 days while traffic shifted (003) is red; 60 days quiet, amber;
- ``revalidation``: rows whose label was last verified 6 months ago or more (``stale_after_days``; 001, 003)
  are due for re-validation, amber; :func:`send_revalidation` opens them as ``revalidate`` tasks;
- ``retirement``: rows 18 months old are reviewed for retirement (003), amber, never retired here;
- ``slice-mix``: each slice's share of the tray against its share of production traffic within 10 pp (003);
  slices the coverage plan oversamples on purpose are shown as intended, never alarms;
- ``spot-check``: SME spot-check disagreement under 5% (003): the adjudicator's blind re-labels of sampled golden
  rows (``evaltray spotcheck``) that differ from the row's verdict, and re-validated rows whose label was rejected;
- ``human-agreement``: labelers agree on items labeled twice (overlap) at least ``human_agreement`` (80%, 001),
  amber below it, and amber while a labeler misses too many gold control items (the labelers are the rows);
- ``source-mix``: source shares against the target within 10 pp, and slices fed by one source only;
- ``owners``: rows whose owner is no longer a user of the workspace (003's ownership collapse), red;
- ``holdout``: the newest release's holdout still the configured share (within 5 pp), every held-out row still
  in the tray, every slice of 5 rows or more held out in part;
- ``duplicates``: near-duplicate inputs inside the tray (shingle Jaccard >= 0.8);
- ``guide-version``: rows labelled under an older labeling guide than the current one;
- ``saturation``: the newest scored run passes 90% or more while user feedback does not improve: the share of
  rated traces with satisfied users in the last 30 days no higher than in the 30 days before (001: "scores
  stall near 90%+, but user impact doesn't improve"), amber; "not enough data" under 30 rated traces a period;
- ``feedback-agreement``: per slice, the live pass rate (the newest ``score-live``) against the share of the
  same judged traces whose users were satisfied (003's Goodhart signal: pass rate up, CSAT not); a slice whose
  pass rate is 15 points or more above it is amber, 20 or more red (the live-gap points of 001 and 003); a
  slice with under 20 rated judged traces is "not enough data".

Satisfied, by the scale the workspace's feedback scores use (the largest seen): thumbs (up to 1) when 0.5 or
more (a thumbs-up), 1-5 CSAT when 4 or more (the top two boxes), 1-10 when 9 or more, 0-100 when 80 or more.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from evaltray.core.registry import Registry
from evaltray.core.store import Workspace
from evaltray.curate.dedup import near_duplicate_pairs, normalize
from evaltray.evaluate.live import list_live
from evaltray.monitor.drift import latest_level
from evaltray.tray.agreement import agreement_report
from evaltray.tray.casefile import load_cases
from evaltray.tray.gate import case_registry, user_text
from evaltray.tray.release import list_versions, load_manifest
from evaltray.tray.tasks import list_tasks, open_task

__all__ = [
    "LEVELS",
    "SIGNALS",
    "Facts",
    "HealthReport",
    "Signal",
    "gather",
    "health",
    "live_traffic",
    "send_revalidation",
    "tray_health",
]

LEVELS = ("green", "amber", "red")
QUIET_DAYS = 60
RETIRE_DAYS = 548  # 18 months
MIX_PP = 10.0
SPOT_CHECK_MAX = 0.05
HOLDOUT_PP = 5.0
#: a slice this size or larger should have some held-out rows
HOLDOUT_MIN_SLICE = 5
DUPLICATE_JACCARD = 0.8
#: rows listed per signal; the count is always whole
MAX_ROWS = 50
SATURATED = 0.90
FEEDBACK_DAYS = 30
#: rated traces each 30-day period needs before saturation says anything
MIN_RATED = 30
#: rated judged traces a slice needs before its pass rate is set against its users' satisfaction
MIN_RATED_SLICE = 20
#: points a slice's pass rate may stand above its satisfied share: amber, red
GOODHART_PP = (15.0, 20.0)
#: (largest score of the scale, the least score of a satisfied user)
SATISFIED_AT = ((1.0, 0.5), (5.0, 4.0), (10.0, 9.0), (100.0, 80.0))


@dataclass(frozen=True)
class Signal:
    """One health signal: its level, what was measured against which threshold, the rows (case ids or slice
    names) behind it, and what to do when it is not green."""

    name: str
    level: str  # green, amber, red, or unknown (nothing to measure it on)
    value: str
    threshold: str
    rows: list[str] = field(default_factory=list)
    todo: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    set_name: str
    signals: list[Signal]

    @property
    def level(self) -> str:
        """The worst level of any signal (unknown counts as green: nothing measured is not an alarm)."""
        found = [s.level for s in self.signals if s.level in LEVELS]
        return max(found, key=LEVELS.index, default="green")

    def signal(self, name: str) -> Signal:
        return next(s for s in self.signals if s.name == name)


@dataclass
class Facts:
    """What the signals read: the active cases of one set and the workspace's state around them."""

    cases: list[dict[str, Any]]
    today: datetime
    last_change: datetime | None = None
    #: live traffic's scored conversations per slice (the newest ``score-live``); None when none was stored
    traffic: dict[str, int] | None = None
    #: slices the coverage plan oversamples on purpose
    intended: set[str] = field(default_factory=set)
    #: the drift monitor's newest level (green/amber/red), None when drift was never run
    drift: str | None = None
    source_target: dict[str, float] = field(default_factory=dict)
    stale_after_days: int = 180
    guide_version: str = "1"
    users: set[str] = field(default_factory=set)
    holdout_fraction: float = 0.2
    holdout: list[str] | None = None  # the newest release's held-out ids of this set
    release: str | None = None
    spot_checks: int = 0  # closed revalidate tasks
    spot_rejected: int = 0  # … of which the row's label was rejected
    relabeled: int = 0  # golden rows the adjudicator re-labeled blind (spotcheck tasks)
    relabeled_otherwise: int = 0  # … whose verdict differs from the row's
    #: items labeled twice (overlap) and how many of those the two labelers agreed on
    overlap_items: int = 0
    overlap_agreed: int = 0
    human_agreement: float = 0.80
    #: labelers whose gold control accuracy is under the bar
    flagged_labelers: list[str] = field(default_factory=list)
    #: the newest scored run's overall pass rate (None: no scored run)
    golden_pass: float | None = None
    golden_run: str | None = None
    #: rated traces (satisfied, rated) in the last 30 days and in the 30 days before
    feedback_now: tuple[int, int] = (0, 0)
    feedback_before: tuple[int, int] = (0, 0)
    #: per slice of the newest live result, its judged traces that users rated: (passed, satisfied, rated)
    slice_feedback: dict[str, tuple[int, int, int]] = field(default_factory=dict)


SIGNALS: Registry[Callable[[Facts], Signal]] = Registry("health signal")


def as_datetime(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _age_days(f: Facts, value: Any) -> int:
    return (f.today - as_datetime(value)).days


def _listed(ids: list[str]) -> list[str]:
    return sorted(ids)[:MAX_ROWS]


def _pp(share: float) -> str:
    return f"{share * 100:.1f}%"


@SIGNALS.register("last-update")
def _last_update(f: Facts) -> Signal:
    threshold = f"updated within {QUIET_DAYS} days, or red when traffic shifted meanwhile"
    if f.last_change is None:
        return Signal("last-update", "unknown", "no case added or retired yet", threshold)
    days = _age_days(f, f.last_change)
    shifted = f.drift in ("amber", "red") or _slice_gaps(f)[0] > 0
    level = "green" if days < QUIET_DAYS else "red" if shifted else "amber"
    todo = "" if level == "green" else "run `evaltray refresh`: pull ~30 recent conversations through the gate"
    value = f"last case added or retired {days} days ago" + (" while traffic shifted" if shifted else "")
    return Signal("last-update", level, value, threshold, todo=todo, detail={"days": days, "shifted": shifted})


def due_for_revalidation(f: Facts) -> list[str]:
    """Case ids whose label was last verified ``stale_after_days`` ago or more."""
    return [c["id"] for c in f.cases if _age_days(f, c["freshness"]["last_verified_at"]) >= f.stale_after_days]


@SIGNALS.register("revalidation")
def _revalidation(f: Facts) -> Signal:
    due = due_for_revalidation(f)
    todo = "run `evaltray health --send` to open them as revalidate tasks" if due else ""
    value = f"{len(due)} of {len(f.cases)} rows last verified {f.stale_after_days}+ days ago"
    threshold = f"verified within {f.stale_after_days} days"
    return Signal("revalidation", "amber" if due else "green", value, threshold, _listed(due), todo, {"all": due})


@SIGNALS.register("retirement")
def _retirement(f: Facts) -> Signal:
    old = [c["id"] for c in f.cases if _age_days(f, c["created_at"]) >= RETIRE_DAYS]
    todo = "review each for relevance; retire with `evaltray tray retire ID --reason …` (never automatic)"
    value = f"{len(old)} rows 18 months old or more"
    return Signal(
        "retirement", "amber" if old else "green", value, "under 18 months", _listed(old), todo if old else ""
    )


def _slice_gaps(f: Facts) -> tuple[int, dict[str, dict[str, Any]]]:
    """(alarms, per slice: tray share, traffic share, gap in points, intended); no alarms without traffic."""
    if not f.traffic or not f.cases:
        return 0, {}
    tray = Counter(c["slice"] for c in f.cases)
    n_tray, n_live = len(f.cases), sum(f.traffic.values())
    rows: dict[str, dict[str, Any]] = {}
    alarms = 0
    for name in sorted(set(tray) | set(f.traffic)):
        t, lv = tray[name] / n_tray, f.traffic.get(name, 0) / max(n_live, 1)
        gap = round((t - lv) * 100, 1)
        intended = name in f.intended
        alarms += abs(gap) > MIX_PP and not intended
        rows[name] = {"tray": round(t, 4), "traffic": round(lv, 4), "gap_pp": gap, "intended": intended}
    return alarms, rows


@SIGNALS.register("slice-mix")
def _slice_mix(f: Facts) -> Signal:
    threshold = f"each slice within {MIX_PP:g} pp of production traffic"
    alarms, rows = _slice_gaps(f)
    if not rows:
        return Signal("slice-mix", "unknown", "no live traffic by slice: run `evaltray score-live`", threshold)
    off = [s for s, r in rows.items() if abs(r["gap_pp"]) > MIX_PP and not r["intended"]]
    intended = [s for s, r in rows.items() if abs(r["gap_pp"]) > MIX_PP and r["intended"]]
    value = f"{len(off)} slice(s) off by more than {MIX_PP:g} pp" + (
        f"; {len(intended)} oversampled as the plan intends" if intended else ""
    )
    todo = "sample the under-represented slices (`evaltray sample`), retire surplus rows" if off else ""
    return Signal("slice-mix", "amber" if alarms else "green", value, threshold, off, todo, {"slices": rows})


@SIGNALS.register("spot-check")
def _spot_check(f: Facts) -> Signal:
    threshold = f"SME disagreement under {SPOT_CHECK_MAX:.0%}"
    checked, differ = f.spot_checks + f.relabeled, f.spot_rejected + f.relabeled_otherwise
    if not checked:
        todo = "spot-check a sample (`evaltray spotcheck --sample 20`)"
        return Signal("spot-check", "unknown", "no spot-checked or re-validated rows yet", threshold, todo=todo)
    rate = differ / checked
    value = (
        f"{differ} of {checked} rows checked disagree ({rate:.1%}): {f.relabeled_otherwise} of {f.relabeled} "
        f"spot-checks, {f.spot_rejected} of {f.spot_checks} re-validations rejected"
    )
    level = "green" if rate < SPOT_CHECK_MAX else "red"
    todo = "" if level == "green" else "labels drift from the policy: re-validate the whole slice, tighten the guide"
    return Signal("spot-check", level, value, threshold, todo=todo, detail={"rate": round(rate, 4)})


@SIGNALS.register("human-agreement")
def _human_agreement(f: Facts) -> Signal:
    threshold = f"labelers agree on {f.human_agreement:.0%} of items labeled twice; control items right"
    flagged = sorted(f.flagged_labelers)
    todo = f"retrain or re-check {', '.join(flagged)} (control items)" if flagged else ""
    if not f.overlap_items:
        value = "no items labeled twice yet" + (f"; {len(flagged)} labeler(s) flagged" if flagged else "")
        todo = todo or "set `[labeling] overlap` so a share of items is labeled twice"
        return Signal("human-agreement", "amber" if flagged else "unknown", value, threshold, flagged, todo)
    share = f.overlap_agreed / f.overlap_items
    value = f"{share:.1%} of {f.overlap_items} items labeled twice agree; {len(flagged)} labeler(s) flagged"
    low = share < f.human_agreement
    if low:
        todo = "; ".join(x for x in ("tighten the labeling guide and adjudicate the disagreements", todo) if x)
    level = "amber" if low or flagged else "green"
    return Signal("human-agreement", level, value, threshold, flagged, todo, {"agreement": round(share, 4)})


@SIGNALS.register("source-mix")
def _source_mix(f: Facts) -> Signal:
    threshold = f"each source within {MIX_PP:g} pp of its target; no slice fed by one source"
    if not f.cases:
        return Signal("source-mix", "unknown", "no cases", threshold)
    have = Counter(c["provenance"]["source"] for c in f.cases)
    shares = {s: have[s] / len(f.cases) for s in sorted(set(have) | set(f.source_target))}
    off = [s for s, v in shares.items() if abs(v - f.source_target.get(s, 0.0)) * 100 > MIX_PP]
    by_slice: dict[str, set[str]] = defaultdict(set)
    for c in f.cases:
        by_slice[c["slice"]].add(c["provenance"]["source"])
    single = sorted(s for s, srcs in by_slice.items() if len(srcs) == 1)
    value = f"{len(off)} source(s) off target; {len(single)} single-source slice(s)"
    todo = "add rows from the missing sources (synthetic, SME, user feedback) to these slices" if off or single else ""
    detail = {"shares": {s: round(v, 4) for s, v in shares.items()}, "single_source": single, "off": off}
    return Signal("source-mix", "amber" if off or single else "green", value, threshold, off + single, todo, detail)


@SIGNALS.register("owners")
def _owners(f: Facts) -> Signal:
    gone = [c["id"] for c in f.cases if c["owner"] not in f.users]
    who = sorted({c["owner"] for c in f.cases if c["owner"] not in f.users})
    value = f"{len(gone)} rows owned by {len(who)} owner(s) no longer in the workspace"
    todo = "name a new owner for these rows and have them re-validate" if gone else ""
    return Signal("owners", "red" if gone else "green", value, "every owner a user", _listed(gone), todo, {"left": who})


@SIGNALS.register("holdout")
def _holdout(f: Facts) -> Signal:
    threshold = f"holdout within {HOLDOUT_PP:g} pp of {f.holdout_fraction:.0%}; every slice of {HOLDOUT_MIN_SLICE}+ held out in part"
    if f.holdout is None or not f.cases:
        return Signal("holdout", "unknown", "no release yet", threshold, todo="run `evaltray release create`")
    active = {c["id"] for c in f.cases}
    held = set(f.holdout)
    gone = sorted(held - active)
    share = len(held & active) / len(active)
    sizes = Counter(c["slice"] for c in f.cases)
    held_by = Counter(c["slice"] for c in f.cases if c["id"] in held)
    bare = sorted(s for s, n in sizes.items() if n >= HOLDOUT_MIN_SLICE and not held_by[s])
    off = abs(share - f.holdout_fraction) * 100 > HOLDOUT_PP
    level = "red" if gone or off else "amber" if bare else "green"
    value = f"release {f.release}: {_pp(share)} held out; {len(gone)} held-out rows gone; {len(bare)} slice(s) unheld"
    todo = "" if level == "green" else "cut a new release: the holdout is re-stratified from the current tray"
    return Signal("holdout", level, value, threshold, _listed(gone) + bare, todo, {"share": round(share, 4)})


@SIGNALS.register("duplicates")
def _duplicates(f: Facts) -> Signal:
    texts = [normalize(user_text(c)) for c in f.cases]
    pairs = near_duplicate_pairs(texts, DUPLICATE_JACCARD)
    found = sorted({tuple(sorted((f.cases[i]["id"], f.cases[j]["id"]))) for i, j in zip(pairs.i, pairs.j, strict=True)})
    rows = [f"{a}~{b}" for a, b in found]
    value = f"{len(found)} near-duplicate pair(s) of inputs"
    todo = "keep one of each pair, retire the other" if found else ""
    return Signal(
        "duplicates", "amber" if found else "green", value, f"Jaccard under {DUPLICATE_JACCARD}", rows[:MAX_ROWS], todo
    )


@SIGNALS.register("guide-version")
def _guide_version(f: Facts) -> Signal:
    old = [c["id"] for c in f.cases if str(c["guide_version"]) != str(f.guide_version)]
    value = f"{len(old)} rows labelled under an older guide than version {f.guide_version}"
    todo = "re-validate them against the current guide (`evaltray health --send`)" if old else ""
    level = "amber" if old else "green"
    return Signal("guide-version", level, value, "labelled under the current guide", _listed(old), todo, {"all": old})


def satisfied_at(scores: list[float]) -> float:
    """The least score of a satisfied user on the scale ``scores`` use (see the module's notes)."""
    top = max(scores, default=1.0)
    return next((bar for scale, bar in SATISFIED_AT if top <= scale), 0.8 * top)


def _share(pair: tuple[int, int]) -> float:
    return pair[0] / pair[1] if pair[1] else 0.0


@SIGNALS.register("saturation")
def _saturation(f: Facts) -> Signal:
    threshold = f"pass rate under {SATURATED:.0%}, or user feedback improving over the last {FEEDBACK_DAYS} days"
    if f.golden_pass is None:
        return Signal("saturation", "unknown", "no scored run yet", threshold, todo="run `evaltray run` and `score`")
    (_, now), (_, before) = f.feedback_now, f.feedback_before
    if min(now, before) < MIN_RATED:
        value = f"not enough data: {now} and {before} rated traces in the last two {FEEDBACK_DAYS}-day periods"
        return Signal("saturation", "unknown", value + f" (needs {MIN_RATED} each)", threshold)
    a, b = _share(f.feedback_before), _share(f.feedback_now)
    stalled = f.golden_pass >= SATURATED and b <= a
    value = (
        f"run {f.golden_run} passes {f.golden_pass:.1%}; satisfied users {b:.1%} of {now} rated traces "
        f"(the {FEEDBACK_DAYS} days before: {a:.1%} of {before})"
    )
    todo = "the tray stopped telling models apart: add harder cases from recent complaints" if stalled else ""
    detail = {"pass_rate": round(f.golden_pass, 4), "satisfied_now": round(b, 4), "satisfied_before": round(a, 4)}
    return Signal("saturation", "amber" if stalled else "green", value, threshold, todo=todo, detail=detail)


@SIGNALS.register("feedback-agreement")
def _feedback_agreement(f: Facts) -> Signal:
    amber, red = GOODHART_PP
    threshold = f"each slice's live pass rate under {amber:g} points above its satisfied users' share"
    rows: dict[str, dict[str, Any]] = {}
    for name, (passed, happy, rated) in sorted(f.slice_feedback.items()):
        gap = round((passed - happy) / rated * 100, 1) if rated >= MIN_RATED_SLICE else None
        rows[name] = {"pass_rate": round(passed / rated, 4) if rated else None, "rated": rated, "gap_pp": gap}
        rows[name]["satisfied"] = round(happy / rated, 4) if rated else None
    measured = {n: r["gap_pp"] for n, r in rows.items() if r["gap_pp"] is not None}
    if not measured:
        value = f"not enough data: no slice with {MIN_RATED_SLICE} rated traces among the newest live verdicts"
        return Signal("feedback-agreement", "unknown", value, threshold, detail={"slices": rows})
    off = sorted((n for n, g in measured.items() if g >= amber), key=lambda n: -measured[n])
    worst = max(measured.values())
    level = "red" if worst >= red else "amber" if worst >= amber else "green"
    value = f"{len(off)} of {len(measured)} slice(s) pass {amber:g}+ points more often than their users are satisfied"
    todo = "the tray rewards what users do not value: re-validate these slices' labels against current policy"
    return Signal("feedback-agreement", level, value, threshold, off, todo if off else "", {"slices": rows})


def health(facts: Facts, set_name: str = "main") -> HealthReport:
    """Every registered signal on ``facts``."""
    return HealthReport(set_name, [check(facts) for _, check in SIGNALS.items()])


# ----------------------------------------------------------------------------- reading the workspace


def latest_drift_level(ws: Workspace) -> str | None:
    """The newest ``evaltray drift`` report's level; None when none ran (the slice-mix gap stands in)."""
    return latest_level(ws)


def _intended(ws: Workspace) -> set[str]:
    """Slices the coverage plan oversamples on purpose: those named by an oversample entry's match."""
    from evaltray.curate.plan import load_plan, plan_path

    if not plan_path(ws).exists():
        return set()
    out: set[str] = set()
    for entry in load_plan(ws).oversample:
        out.update(str(v) for v in (entry.get("match") or {}).values())
    return out


def _last_change(ws: Workspace, set_name: str) -> datetime | None:
    stamps = []
    for r in case_registry(ws, set_name):
        stamps += [r["created_at"], r.get("retired_at")]
    found = [as_datetime(s) for s in stamps if s]
    return max(found, default=None)


def _holdout_of(ws: Workspace, set_name: str) -> tuple[str | None, list[str] | None]:
    versions = list_versions(ws)
    if not versions:
        return None, None
    manifest = load_manifest(ws, versions[-1])
    info = manifest.sets.get(set_name)
    return versions[-1], (list(info.holdout) if info is not None else None)


def live_traffic(ws: Workspace, newest: dict[str, Any] | None = None) -> dict[str, int] | None:
    """Production traffic per slice: the newest ``score-live``'s (or ``newest``'s) scored conversations per
    slice (None: none)."""
    if newest is None:
        live = list_live(ws)
        newest = live[-1] if live else None
    return {k: int(v["n"]) for k, v in (newest.get("slices") or {}).items()} if newest else None


def gather(ws: Workspace, set_name: str | None = None, today: datetime | None = None) -> Facts:
    """The facts of one set (default: the workspace's default set)."""
    set_name = ws.check_set(set_name)
    s = ws.settings
    live = list_live(ws)
    newest = live[-1] if live else None
    closed = list_tasks(ws, kind="revalidate", status="closed")
    release, held = _holdout_of(ws, set_name)
    return Facts(
        cases=list(load_cases(ws, set_name).values()),
        today=today or datetime.now(UTC),
        last_change=_last_change(ws, set_name),
        traffic=live_traffic(ws, newest),
        intended=_intended(ws),
        drift=latest_drift_level(ws),
        source_target=dict(s.source_mix),
        stale_after_days=s.stale_after_days,
        guide_version=s.guide_version,
        users={u["name"] for u in ws.users()},
        holdout_fraction=s.holdout,
        holdout=held,
        release=release,
        spot_checks=len(closed),
        spot_rejected=sum(t.outcome == "reject" for t in closed),
        **_agreement_facts(ws),
        **_feedback_facts(ws, today or datetime.now(UTC), newest),
    )


def _newest_run(ws: Workspace) -> tuple[str | None, float | None]:
    """The newest scored run's id and overall pass rate."""
    from evaltray.evaluate.report import run_report
    from evaltray.evaluate.run import RUNS_DIR

    runs = []
    for path in (ws.root / RUNS_DIR).glob("r-*/scores.jsonl"):
        manifest = orjson.loads((path.parent / "run.json").read_bytes())
        runs.append((manifest["created_at"], path.parent.name))
    if not runs:
        return None, None
    run_id = max(runs)[1]
    return run_id, run_report(ws, run_id)["overall"].get("pass_rate")


def _feedback_facts(ws: Workspace, today: datetime, live: dict[str, Any] | None) -> dict[str, Any]:
    """What saturation and feedback-agreement read: user feedback in two 30-day periods, and per slice of the
    newest live result, its judged traces that users rated."""
    store = ws.trace_store()
    at = "coalesce(start_time, ingested_at)"
    start = today - timedelta(days=2 * FEEDBACK_DAYS)
    where = f"feedback_score IS NOT NULL AND {at} >= $start AND {at} < $end"
    table = store.query(where, columns=[f"{at} AS at", "feedback_score"], params={"start": start, "end": today})
    rated = [
        (as_datetime(t), float(v))
        for t, v in zip(*(table.column(c).to_pylist() for c in ("at", "feedback_score")), strict=True)
    ]
    verdicts = _live_verdicts(ws, live)
    scores = store.get(verdicts) if verdicts else {}
    bar = satisfied_at(
        [v for _, v in rated] + [r["feedback_score"] for r in scores.values() if r["feedback_score"] is not None]
    )
    mid = today - timedelta(days=FEEDBACK_DAYS)
    now = [v >= bar for t, v in rated if t >= mid]
    before = [v >= bar for t, v in rated if t < mid]
    by_slice: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for tid, (name, passed) in verdicts.items():
        score = (scores.get(tid) or {}).get("feedback_score")
        if score is None or passed is None:
            continue
        row = by_slice[name]
        row[0], row[1], row[2] = row[0] + bool(passed), row[1] + (score >= bar), row[2] + 1
    run_id, rate = _newest_run(ws)
    return {
        "golden_run": run_id,
        "golden_pass": rate,
        "feedback_now": (sum(now), len(now)),
        "feedback_before": (sum(before), len(before)),
        "slice_feedback": {k: (v[0], v[1], v[2]) for k, v in by_slice.items()},
    }


def _live_verdicts(ws: Workspace, live: dict[str, Any] | None) -> dict[str, tuple[str, bool | None]]:
    """trace id -> (slice, passed) of a stored live result's verdicts."""
    from evaltray.evaluate.live import LIVE_DIR

    if live is None:
        return {}
    path = ws.root / LIVE_DIR / live["live_id"] / "verdicts.jsonl"
    if not path.exists():
        return {}
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return {r["trace_id"]: (r["slice"], r.get("passed")) for r in rows}


def _agreement_facts(ws: Workspace) -> dict[str, Any]:
    """What the spot-check and human-agreement signals read of :func:`agreement_report`."""
    r = agreement_report(ws)
    return {
        "relabeled": r.spot_checks.n,
        "relabeled_otherwise": r.spot_checks.n - r.spot_checks.agree,
        "overlap_items": r.overall.n,
        "overlap_agreed": r.overall.agree,
        "human_agreement": ws.settings.human_agreement,
        "flagged_labelers": r.flagged,
    }


def tray_health(ws: Workspace, set_name: str | None = None, today: datetime | None = None) -> HealthReport:
    """Every health signal of one set of the workspace."""
    facts = gather(ws, set_name, today)
    return health(facts, ws.check_set(set_name))


def send_revalidation(ws: Workspace, actor: str, report: HealthReport, dry_run: bool = False) -> list[str]:
    """Open a ``revalidate`` task for every row the revalidation and guide-version signals name (a task already
    open for a row is kept); the case ids sent."""
    reasons: dict[str, str] = {}
    for name, why in (("revalidation", "due for re-validation (6 months)"), ("guide-version", "newer guide version")):
        for cid in _full_rows(report.signal(name)):
            reasons.setdefault(cid, why)
    if not dry_run:
        for cid, why in reasons.items():
            open_task(ws, "revalidate", cid, reason=f"health: {why}", actor=actor)
    return sorted(reasons)


def _full_rows(signal: Signal) -> list[str]:
    return list(signal.detail.get("all", signal.rows))
