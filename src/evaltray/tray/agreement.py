"""How far the people who label agree: with each other (overlap), with the adjudicator (their decisions and
spot-checks), and with known answers (gold control items); seed 001 wants 80–85% human agreement before
anything is automated, seed 003 an SME spot-check disagreement under 5%.

The statistics are pure functions of verdict lists (:func:`cohen_kappa`, :func:`fleiss_kappa`), checked in the
tests against statsmodels and scikit-learn; :func:`agreement_report` reads the workspace's closed tasks once
(:mod:`.oversight`) and counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evaltray.core.store import Workspace

from .oversight import Judged, LabelPair, control_results, overlap_pairs, spotcheck_results

__all__ = [
    "MIN_CONTROLS",
    "SPOT_CHECK_MAX",
    "AgreementReport",
    "agreement_report",
    "cohen_kappa",
    "fleiss_kappa",
]

#: Seed 003: the adjudicator's re-labels of golden rows disagree with the rows less often than this.
SPOT_CHECK_MAX = 0.05
#: A labeler is flagged on control items only once they answered this many (one miss of two says little).
MIN_CONTROLS = 5


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's κ of two raters' labels of the same items, in order: (p_o − p_e) / (1 − p_e); 1.0 when both gave
    one and the same label to everything (no chance to correct for), None with no items."""
    if len(a) != len(b):
        raise ValueError(f"two raters label the same items: {len(a)} labels against {len(b)}")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    chance = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if chance == 1.0:
        return 1.0
    return (observed - chance) / (1.0 - chance)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' κ of a table with one row per item and one column per category, each cell the number of raters
    who gave the item that category (every item rated by the same number of raters, 2 or more); None with no
    items, 1.0 when every rating is the same category."""
    rows = [list(r) for r in table if sum(r)]
    if not rows:
        return None
    raters = sum(rows[0])
    if raters < 2 or any(sum(r) != raters for r in rows):
        raise ValueError("Fleiss' kappa needs the same number of raters (2 or more) for every item")
    n = len(rows)
    shares = [sum(r[j] for r in rows) / (n * raters) for j in range(len(rows[0]))]
    per_item = [(sum(c * c for c in r) - raters) / (raters * (raters - 1)) for r in rows]
    observed, chance = sum(per_item) / n, sum(p * p for p in shares)
    if chance == 1.0:
        return 1.0
    return (observed - chance) / (1.0 - chance)


VERDICTS = ("pass", "fail")


@dataclass(frozen=True)
class Agreement:
    """Agreement over ``n`` items: ``agree`` of them the same, κ where it is defined."""

    n: int
    agree: int
    kappa: float | None = None

    @property
    def share(self) -> float | None:
        return self.agree / self.n if self.n else None


@dataclass(frozen=True)
class LabelerAgreement:
    """One labeler's agreement with the adjudicator (decisions on their disputed labels, spot-checks of the rows
    they labeled) and with gold control items; ``flagged`` below the control-accuracy bar."""

    labeler: str
    with_adjudicator: Agreement
    control: Agreement
    flagged: bool


@dataclass
class AgreementReport:
    """Everything ``evaltray agreement`` shows."""

    bar: float  # seed 001's human agreement bar (``[thresholds] human_agreement``)
    control_bar: float
    overall: Agreement  # every overlap pair, Fleiss' κ over them
    pairs: dict[tuple[str, str], Agreement] = field(default_factory=dict)  # Cohen's κ per labeler pair
    labelers: list[LabelerAgreement] = field(default_factory=list)
    weeks: dict[str, Agreement] = field(default_factory=dict)  # ISO week of the second label -> agreement
    spot_checks: Agreement = field(default_factory=lambda: Agreement(0, 0))
    decisions: int = 0  # disagreements the adjudicator decided
    undecided: int = 0  # … still waiting for them

    @property
    def meets_bar(self) -> bool | None:
        share = self.overall.share
        return None if share is None else share >= self.bar

    @property
    def spot_check_rate(self) -> float | None:
        s = self.spot_checks
        return (s.n - s.agree) / s.n if s.n else None

    @property
    def flagged(self) -> list[str]:
        return [la.labeler for la in self.labelers if la.flagged]

    def as_dict(self) -> dict[str, Any]:
        def one(a: Agreement) -> dict[str, Any]:
            return {"n": a.n, "agree": a.agree, "share": _round(a.share), "kappa": _round(a.kappa)}

        return {
            "bar": self.bar,
            "meets_bar": self.meets_bar,
            "overall": {**one(self.overall), "fleiss_kappa": _round(self.overall.kappa)},
            "pairs": [{"labelers": list(k), **one(v)} for k, v in sorted(self.pairs.items())],
            "labelers": [
                {
                    "labeler": la.labeler,
                    "with_adjudicator": one(la.with_adjudicator),
                    "control": one(la.control),
                    "flagged": la.flagged,
                }
                for la in self.labelers
            ],
            "control_bar": self.control_bar,
            "flagged": self.flagged,
            "weeks": {w: one(a) for w, a in sorted(self.weeks.items())},
            "spot_checks": {**one(self.spot_checks), "disagreement": _round(self.spot_check_rate)},
            "spot_check_max": SPOT_CHECK_MAX,
            "decisions": self.decisions,
            "undecided": self.undecided,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _pairs_agreement(pairs: Iterable[LabelPair], fleiss: bool = False) -> Agreement:
    pairs = list(pairs)
    a, b = [p.first_verdict for p in pairs], [p.second_verdict for p in pairs]
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    if fleiss:
        table = [[(x == v) + (y == v) for v in VERDICTS] for x, y in zip(a, b, strict=True)]
        return Agreement(len(pairs), agree, fleiss_kappa(table))
    return Agreement(len(pairs), agree, cohen_kappa(a, b))


def week_of(stamp: str) -> str:
    """The ISO week of a timestamp, e.g. ``2026-W49``."""
    year, week, _ = datetime.fromisoformat(stamp.replace("Z", "+00:00")).isocalendar()
    return f"{year}-W{week:02d}"


def _by_pair(pairs: list[LabelPair]) -> dict[tuple[str, str], Agreement]:
    """Cohen's κ per pair of labelers, the pair named in name order whoever labeled first."""
    grouped: dict[tuple[str, str], list[LabelPair]] = defaultdict(list)
    for p in pairs:
        if p.first > p.second:  # one orientation per pair, so κ's two raters are the same people on every item
            p = LabelPair(p.candidate_id, p.second, p.first, p.second_verdict, p.first_verdict, p.at)
        grouped[(p.first, p.second)].append(p)
    return {k: _pairs_agreement(v) for k, v in grouped.items()}


def _labelers(
    ws: Workspace, pairs: list[LabelPair], controls: list[Judged], spots: list[Judged]
) -> list[LabelerAgreement]:
    """Each labeler's agreement with the adjudicator and with control items, flagged below the control bar."""
    adjudicated: dict[str, list[bool]] = defaultdict(list)
    for p in pairs:
        if p.decision is not None:
            adjudicated[p.first].append(p.first_verdict == p.decision)
            adjudicated[p.second].append(p.second_verdict == p.decision)
    for s in spots:
        if s.labeled_by:
            adjudicated[s.labeled_by].append(s.agrees)
    answered: dict[str, list[bool]] = defaultdict(list)
    for c in controls:
        answered[c.who].append(c.agrees)
    bar = ws.settings.control_accuracy
    out = []
    for name in sorted(set(adjudicated) | set(answered)):
        mine = Agreement(len(answered[name]), sum(answered[name]))
        share = mine.share
        flagged = mine.n >= MIN_CONTROLS and share is not None and share < bar
        adj = Agreement(len(adjudicated[name]), sum(adjudicated[name]))
        out.append(LabelerAgreement(name, adj, mine, flagged))
    return out


def agreement_report(ws: Workspace) -> AgreementReport:
    """Agreement in the workspace: overall and per pair on overlap, per labeler with the adjudicator and on
    control items, per week, and the spot-check disagreement rate."""
    pairs = overlap_pairs(ws)
    controls, spots = control_results(ws), spotcheck_results(ws)
    weekly: dict[str, list[LabelPair]] = defaultdict(list)
    for p in pairs:
        weekly[week_of(p.at)].append(p)
    disputed = [p for p in pairs if p.first_verdict != p.second_verdict]
    return AgreementReport(
        bar=ws.settings.human_agreement,
        control_bar=ws.settings.control_accuracy,
        overall=_pairs_agreement(pairs, fleiss=True),
        pairs=_by_pair(pairs),
        labelers=_labelers(ws, pairs, controls, spots),
        weeks={w: _pairs_agreement(ps) for w, ps in weekly.items()},
        spot_checks=Agreement(len(spots), sum(s.agrees for s in spots)),
        decisions=sum(p.decision is not None for p in disputed),
        undecided=sum(p.decision is None for p in disputed),
    )
