"""Synthetic cases against real traffic (issue 14): the two ways a generated input misleads a tray.

- **Coverage hallucination**: a synthetic case (``provenance.source == "synthetic"``) in an embedding region
  real traffic never visits. Its novelty against a sample of recent traces is scored by
  :class:`evaltray.monitor.drift.NoveltyIndex`; the case is uncovered above the traffic's own
  (1 - :data:`~evaltray.monitor.drift.FALSE_ALARM`) quantile, the cutoff drift uses for new intents.
- **Style**: a synthetic input written unlike real users (longer, tidier, capitalised and punctuated, no
  typos). :func:`evaltray.monitor.style.style_distance` measures how far it lies from the traffic's median
  style in units of the traffic's spread; the case is off-style above the traffic's own 90th percentile of
  that distance, so one real user in ten would be flagged by the same rule.

Both cutoffs come from the real traffic itself, so no threshold is tuned on the cases checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from evaltray.core.store import Workspace

from .drift import FALSE_ALARM, MIN_TRACES, SAMPLE, NoveltyIndex, embed_pair, latest_start, traffic_side
from .style import STYLE_FEATURES, style, style_distance

__all__ = ["SyntheticCase", "SyntheticReport", "synthetic_cases", "check_synthetic"]


@dataclass(frozen=True)
class SyntheticCase:
    """One synthetic case: its novelty against traffic and its style distance, each with its verdict."""

    case_id: str
    novelty: float | None
    uncovered: bool
    style_distance: float
    off_style: bool
    style: dict[str, float]


@dataclass
class SyntheticReport:
    n_traffic: int
    novelty_cutoff: float | None
    style_cutoff: float | None
    traffic_style: dict[str, float]
    cases: list[SyntheticCase] = field(default_factory=list)
    note: str = ""

    @property
    def flagged(self) -> list[SyntheticCase]:
        return [c for c in self.cases if c.uncovered or c.off_style]


def synthetic_cases(ws: Workspace, set_name: str | None = None) -> list[tuple[str, str]]:
    """(case id, user text) of each synthetic case in the set's tray."""
    from evaltray.tray.casefile import load_cases
    from evaltray.tray.gate import user_text

    cases = load_cases(ws, ws.check_set(set_name)).values()
    return [(c["id"], user_text(c)) for c in cases if c["provenance"]["source"] == "synthetic"]


def _features(row: np.ndarray) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in zip(STYLE_FEATURES, row, strict=True)}


def check_synthetic(
    real: list[str],
    cases: list[tuple[str, str]],
    real_vectors: np.ndarray | None = None,
    case_vectors: np.ndarray | None = None,
    min_traces: int = MIN_TRACES,
) -> SyntheticReport:
    """Each synthetic case's coverage and style against the ``real`` texts (and their unit vectors, when
    given: without them no case is scored for coverage). Fewer than ``min_traces`` real texts: no verdicts."""
    if len(real) < min_traces:
        note = f"too few traces to compare with: {len(real)} (at least {min_traces}); no case judged"
        return SyntheticReport(len(real), None, None, {}, [], note)
    real_style = np.array([style(t) for t in real])
    own = style_distance(real_style, real_style)
    style_cut = float(np.quantile(own, 1 - FALSE_ALARM))
    novelty: list[float | None] = [None] * len(cases)
    novelty_cut = None
    if real_vectors is not None and case_vectors is not None and len(cases):
        index = NoveltyIndex.fit(real_vectors)
        novelty_cut = index.cutoff
        novelty = [float(v) for v in index.score(case_vectors)]
    out = []
    for (cid, text), nov in zip(cases, novelty, strict=True):
        row = style(text)
        dist = float(style_distance(real_style, row)[0])
        uncovered = nov is not None and novelty_cut is not None and nov > novelty_cut
        nov_shown = None if nov is None else round(nov, 4)
        out.append(SyntheticCase(cid, nov_shown, uncovered, round(dist, 4), dist > style_cut, _features(row)))
    median = _features(np.median(real_style, 0))
    note = "" if cases else "no synthetic cases (provenance.source = synthetic) in the tray"
    return SyntheticReport(len(real), novelty_cut, style_cut, median, out, note)


def synthetic_report(
    ws: Workspace,
    set_name: str | None = None,
    window: str = "30d",
    backend: str = "wordllama",
    sample: int = SAMPLE,
    min_traces: int = MIN_TRACES,
) -> SyntheticReport:
    """The tray's synthetic cases against a seeded sample of the last ``window`` of traffic."""
    from evaltray.evaluate.live import parse_window

    end = latest_start(ws) + timedelta(microseconds=1)
    real = traffic_side(ws, "traffic", end - parse_window(window), end, sample)
    cases = synthetic_cases(ws, set_name)
    vectors: tuple[Any, Any] = (None, None)
    if len(real.texts) >= min_traces and cases:
        vectors = embed_pair(ws, real.texts, [t for _, t in cases], backend)
    return check_synthetic(real.texts, cases, *vectors, min_traces=min_traces)
