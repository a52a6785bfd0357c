"""The statistics behind every figure evaltray reports: intervals, agreement, paired tests, sizes.

Every function here is checked against statsmodels or scipy in the tests. Proportions use the Wilson
interval (seed 002: ±6 points at n = 100 is not ±2.5 at n = 500); a judge's pass rate is corrected for
its true- and false-positive rates (Rogan–Gladen); two runs on the same cases are compared paired (exact
McNemar, paired bootstrap) with Holm's correction across slices; cases that share a conversation, persona
or template get cluster-robust standard errors and a design effect in the size calculator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from evaltray.core.errors import EvaltrayError

__all__ = [
    "SIZE_TIERS",
    "Agreement",
    "Interval",
    "PairedComparison",
    "SampleSize",
    "StatsError",
    "agreement",
    "cluster_robust_mean",
    "cohen_kappa",
    "design_effect",
    "holm",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "rogan_gladen",
    "sample_size",
    "size_advice",
    "wilson",
]


class StatsError(EvaltrayError, ValueError):
    """Inputs no statistic can be computed from (no cases, a rate outside [0, 1], mismatched lengths)."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with its two-sided ``1 - alpha`` interval."""

    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must lie in (0, 1), got {alpha}")
    return float(sps.norm.ppf(1 - alpha / 2))


def wilson(passed: int, n: int, alpha: float = 0.05) -> Interval:
    """The Wilson score interval of ``passed`` out of ``n`` (statsmodels' ``proportion_confint(method="wilson")``)."""
    if n <= 0:
        raise StatsError("a pass rate needs at least one case")
    if not 0 <= passed <= n:
        raise StatsError(f"passed must lie in [0, n], got {passed} of {n}")
    z = _z(alpha)
    p = passed / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def _binary(values: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise StatsError(f"{name} must be a flat list of verdicts")
    return arr.astype(bool)


def cohen_kappa(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> float:
    """Cohen's κ between two raters' binary verdicts on the same items (1.0 when both agree on every item)."""
    x, y = _binary(a, "a"), _binary(b, "b")
    if x.size != y.size or x.size == 0:
        raise StatsError(f"kappa needs two equal, non-empty lists of verdicts, got {x.size} and {y.size}")
    observed = float(np.mean(x == y))
    px, py = float(np.mean(x)), float(np.mean(y))
    expected = px * py + (1 - px) * (1 - py)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0  # both raters constant: agreement is all there is
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True, slots=True)
class Agreement:
    """A judge against human verdicts on the same outputs (``True`` = pass)."""

    n: int
    agreement: Interval
    kappa: float
    tpr: Interval  # judge says pass where the human said pass
    tnr: Interval  # judge says fail where the human said fail
    confusion: dict[str, int]  # human_pass_judge_pass, human_pass_judge_fail, human_fail_judge_pass, …


def agreement(human: Sequence[bool], judge: Sequence[bool], alpha: float = 0.05) -> Agreement:
    """Agreement, κ, TPR and TNR (each with its Wilson interval) and the confusion matrix."""
    h, j = _binary(human, "human"), _binary(judge, "judge")
    if h.size != j.size or h.size == 0:
        raise StatsError(f"agreement needs two equal, non-empty lists of verdicts, got {h.size} and {j.size}")
    tp, fn = int(np.sum(h & j)), int(np.sum(h & ~j))
    fp, tn = int(np.sum(~h & j)), int(np.sum(~h & ~j))
    if tp + fn == 0 or tn + fp == 0:
        raise StatsError("calibration needs human passes and human fails; every human verdict is the same")
    return Agreement(
        n=int(h.size),
        agreement=wilson(tp + tn, int(h.size), alpha),
        kappa=cohen_kappa(h, j),
        tpr=wilson(tp, tp + fn, alpha),
        tnr=wilson(tn, tn + fp, alpha),
        confusion={
            "human_pass_judge_pass": tp,
            "human_pass_judge_fail": fn,
            "human_fail_judge_pass": fp,
            "human_fail_judge_fail": tn,
        },
    )


def rogan_gladen(
    judge_passed: int, n: int, tpr: float, tnr: float, n_pos: int, n_neg: int, alpha: float = 0.05
) -> Interval:
    """The pass rate corrected for a judge's errors: ``(p + tnr - 1) / (tpr + tnr - 1)``, clipped to [0, 1].

    ``judge_passed`` of ``n`` outputs passed by the judge; ``tpr`` and ``tnr`` measured on ``n_pos`` human
    passes and ``n_neg`` human fails. The interval is the delta method's, with the uncertainty of all three
    rates (Greenland 1996), clipped to [0, 1]. A judge no better than a coin (``tpr + tnr <= 1``) is refused.
    """
    if n <= 0 or n_pos <= 0 or n_neg <= 0:
        raise StatsError("a corrected pass rate needs judged outputs and a calibration with passes and fails")
    for name, rate in (("tpr", tpr), ("tnr", tnr)):
        if not 0 <= rate <= 1:
            raise StatsError(f"{name} must lie in [0, 1], got {rate}")
    youden = tpr + tnr - 1
    if youden <= 0:
        raise StatsError(f"the judge is no better than chance (TPR {tpr:.3f} + TNR {tnr:.3f} <= 1); recalibrate it")
    p = judge_passed / n
    theta = (p + tnr - 1) / youden
    clipped = min(1.0, max(0.0, theta))
    var = (p * (1 - p) / n + clipped**2 * tpr * (1 - tpr) / n_pos + (1 - clipped) ** 2 * tnr * (1 - tnr) / n_neg) / (
        youden**2
    )
    half = _z(alpha) * math.sqrt(var)
    return Interval(clipped, max(0.0, theta - half), min(1.0, theta + half))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: cases only run A passed, only run B passed."""
    if only_a < 0 or only_b < 0:
        raise StatsError("discordant counts cannot be negative")
    m = only_a + only_b
    if m == 0:
        return 1.0
    return float(min(1.0, 2 * sps.binom.cdf(min(only_a, only_b), m, 0.5)))


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """Run B minus run A on the same cases: the difference in pass rate, its interval and p-values."""

    n: int
    difference: Interval  # paired bootstrap percentile interval
    only_a: int
    only_b: int
    p_mcnemar: float
    p_bootstrap: float


def paired_bootstrap(
    a: Sequence[bool] | np.ndarray,
    b: Sequence[bool] | np.ndarray,
    alpha: float = 0.05,
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare two runs' verdicts on the same cases (``a[i]`` and ``b[i]`` judge one case).

    The bootstrap resamples cases (pairs stay together); its p-value is the share of resampled
    differences, centred on zero, at least as far from zero as the observed one.
    """
    x, y = _binary(a, "a").astype(np.int8), _binary(b, "b").astype(np.int8)
    if x.size != y.size or x.size == 0:
        raise StatsError(f"a paired comparison needs the same cases in both runs, got {x.size} and {y.size}")
    d = (y - x).astype(np.float64)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 1000):  # 1,000 resamples at a time: memory stays flat in the number of cases
        stop = min(n_boot, start + 1000)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    centred = means - means.mean()
    p_boot = float((np.sum(np.abs(centred) >= abs(observed) - 1e-12) + 1) / (n_boot + 1))
    only_a, only_b = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    return PairedComparison(
        n=int(d.size),
        difference=Interval(observed, float(low), float(high)),
        only_a=only_a,
        only_b=only_b,
        p_mcnemar=mcnemar_exact(only_a, only_b),
        p_bootstrap=min(1.0, p_boot),
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (statsmodels' ``multipletests(method="holm")``)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return []
    if np.any((p < 0) | (p > 1)):
        raise StatsError("p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (p.size - np.arange(p.size)) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def cluster_robust_mean(values: Sequence[float] | np.ndarray, clusters: Sequence[object]) -> Interval:
    """The mean of ``values`` with a cluster-robust 95% interval (CR1, t with G - 1 degrees of freedom),
    for cases that share a conversation, persona or template (statsmodels' OLS on a constant with
    ``cov_type="cluster"``)."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or y.size != len(clusters) or y.size == 0:
        raise StatsError("cluster-robust errors need one cluster per value")
    _, groups = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    g = int(groups.max()) + 1
    if g < 2:
        raise StatsError("cluster-robust errors need at least two clusters")
    n = y.size
    mean = float(y.mean())
    sums = np.bincount(groups, weights=y - mean, minlength=g)
    se = math.sqrt(float(np.sum(sums**2)) / n**2 * g / (g - 1))
    t = float(sps.t.ppf(0.975, g - 1))
    return Interval(mean, mean - t * se, mean + t * se)


def design_effect(cluster_size: float, icc: float) -> float:
    """Kish's design effect ``1 + (m - 1) * icc``: how many times more cases clustered data needs."""
    if cluster_size < 1 or not 0 <= icc <= 1:
        raise StatsError(f"cluster size must be >= 1 and icc in [0, 1], got {cluster_size} and {icc}")
    return 1 + (cluster_size - 1) * icc


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Cases needed to detect a change of ``mde`` from ``baseline``, unpaired (two independent runs) and
    paired (the same cases in both runs, given how often their verdicts disagree)."""

    baseline: float
    mde: float
    alpha: float
    power: float
    unpaired: int
    paired: int
    discordance: float
    design_effect: float


def sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
    deff: float = 1.0,
) -> SampleSize:
    """Cases per run to detect a drop of ``mde`` from ``baseline`` (two-sided ``alpha``, ``power``).

    Unpaired: two independent proportions through Cohen's arcsine effect size ``h`` (statsmodels'
    ``NormalIndPower`` on ``proportion_effectsize``). Paired: McNemar's (Connor 1987) with ``discordance``
    the share of cases whose verdicts differ between the runs (default: the least possible, ``mde`` itself —
    runs that mostly agree). Both are multiplied by the design effect ``deff`` of clustered cases.
    """
    if not 0 < baseline < 1:
        raise StatsError(f"baseline must lie in (0, 1), got {baseline}")
    delta = abs(mde)
    other = baseline - delta if baseline - delta > 0 else baseline + delta
    if not 0 < delta < 1 or not 0 < other < 1:
        raise StatsError(f"mde must be a change that keeps the rate in (0, 1), got {mde} from {baseline}")
    if not 0 < power < 1:
        raise StatsError(f"power must lie in (0, 1), got {power}")
    if deff < 1:
        raise StatsError(f"a design effect is at least 1, got {deff}")
    za, zb = _z(alpha), float(sps.norm.ppf(power))
    h = abs(2 * math.asin(math.sqrt(baseline)) - 2 * math.asin(math.sqrt(other)))
    unpaired = 2 * ((za + zb) / h) ** 2  # each run's arcsine-scale mean has variance 1/n
    psi = delta if discordance is None else discordance
    if not delta <= psi <= 1:
        raise StatsError(
            f"discordance must lie in [mde, 1] (a change of mde needs that many differing cases), got {psi}"
        )
    paired = (za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) ** 2 / delta**2
    return SampleSize(baseline, delta, alpha, power, math.ceil(unpaired * deff), math.ceil(paired * deff), psi, deff)


def minimum_detectable_effect(n: int, baseline: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest drop from ``baseline`` that ``n`` cases per run detect unpaired (inverse of :func:`sample_size`)."""
    if n < 1:
        raise StatsError("n must be at least 1")
    lo, hi = 1e-6, baseline - 1e-6
    if sample_size(baseline, hi, alpha, power).unpaired > n:
        return hi
    for _ in range(60):  # bisection: the needed size falls as the effect grows
        mid = (lo + hi) / 2
        if sample_size(baseline, mid, alpha, power).unpaired > n:
            lo = mid
        else:
            hi = mid
    return hi


#: The seeds' advice on how many cases a question needs (seeds 001–003), smallest first.
SIZE_TIERS: tuple[tuple[int, str], ...] = (
    (30, "vibe check: enough to see that something is badly wrong"),
    (50, "sanity / pull-request check: catches a collapse, not a few points"),
    (100, "enough human labels to calibrate a judge"),
    (
        200,
        "regression set: slices of 30–50 can flag a collapse but not declare a fix; 3–5-point changes "
        "only in a paired comparison whose runs mostly agree",
    ),
    (1000, "a confident model swap (unpaired comparisons need 500–1,000)"),
    (5000, "a long-tail audit (1,000+ per high-stakes slice)"),
)


def size_advice(n: int) -> str:
    """What ``n`` cases can answer, in the seeds' words."""
    fitting = [text for size, text in SIZE_TIERS if n >= size]
    return fitting[-1] if fitting else f"fewer than {SIZE_TIERS[0][0]} cases: anecdotes, not a rate"
