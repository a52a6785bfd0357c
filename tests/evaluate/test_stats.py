"""evaltray's statistics against statsmodels and scipy reference values, and hand-worked ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

from evaltray.evaluate import stats


def test_wilson_matches_the_issue_and_statsmodels():
    ci = stats.wilson(18, 20)
    assert (round(ci.low, 5), round(ci.high, 5)) == (0.69897, 0.97213)  # the issue's reference values
    for k, n in [(0, 10), (10, 10), (1, 3), (83, 100), (450, 500), (7, 1000)]:
        for alpha in (0.05, 0.1, 0.01):
            low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
            ci = stats.wilson(k, n, alpha)
            assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-9)
            assert ci.estimate == k / n


def test_wilson_width_shrinks_as_the_seeds_say():
    # seed 002: about ±6 points at n = 100, ±2.5 at n = 500 (for a pass rate of 0.9)
    assert round(stats.wilson(90, 100).half_width, 3) == 0.060
    assert round(stats.wilson(450, 500).half_width, 3) == 0.026


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, 0)])
def test_wilson_refuses_impossible_counts(k, n):
    with pytest.raises(stats.StatsError):
        stats.wilson(k, n)


def test_kappa_matches_scikit_learn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random(60) < 0.7
        b = np.where(rng.random(60) < 0.8, a, ~a)
        assert stats.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)
    # hand-worked: 20 items, 15 agree; rater A passes 12, rater B 11 -> pe = .6*.55 + .4*.45 = .51
    a = [True] * 12 + [False] * 8
    b = [True] * 9 + [False] * 3 + [True] * 2 + [False] * 6
    assert stats.cohen_kappa(a, b) == pytest.approx((0.75 - 0.51) / 0.49, abs=1e-12)


def test_agreement_counts_the_confusion_matrix():
    human = [True] * 60 + [False] * 40
    judge = [True] * 54 + [False] * 6 + [True] * 8 + [False] * 32
    got = stats.agreement(human, judge)
    assert got.confusion == {
        "human_pass_judge_pass": 54,
        "human_pass_judge_fail": 6,
        "human_fail_judge_pass": 8,
        "human_fail_judge_fail": 32,
    }
    assert (got.n, got.agreement.estimate, got.tpr.estimate, got.tnr.estimate) == (100, 0.86, 0.9, 0.8)
    assert (got.tpr.low, got.tpr.high) == pytest.approx(proportion_confint(54, 60, method="wilson"), abs=1e-12)
    with pytest.raises(stats.StatsError, match="every human verdict is the same"):
        stats.agreement([True, True], [True, False])


def test_rogan_gladen_corrects_a_judges_errors():
    # true pass rate 0.7, TPR 0.9, TNR 0.8: the judge passes 0.7*0.9 + 0.3*0.2 = 0.69 of outputs
    got = stats.rogan_gladen(690, 1000, tpr=0.9, tnr=0.8, n_pos=500, n_neg=500)
    assert got.estimate == pytest.approx(0.7, abs=1e-12)
    # the delta method by hand: var = (.69*.31/1000 + .49*.09/500 + .09*.16/500) / .7**2
    var = (0.69 * 0.31 / 1000 + 0.49 * 0.09 / 500 + 0.09 * 0.16 / 500) / 0.49
    z = sps.norm.ppf(0.975)
    assert (got.low, got.high) == pytest.approx((0.7 - z * math.sqrt(var), 0.7 + z * math.sqrt(var)), abs=1e-12)
    assert stats.rogan_gladen(100, 100, tpr=0.9, tnr=0.9, n_pos=50, n_neg=50).estimate == 1.0  # clipped
    with pytest.raises(stats.StatsError, match="no better than chance"):
        stats.rogan_gladen(50, 100, tpr=0.5, tnr=0.5, n_pos=50, n_neg=50)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 9), (10, 10), (0, 7), (25, 40), (1, 30)])
def test_exact_mcnemar_matches_statsmodels(b, c):
    table = [[50, b], [c, 50]]
    assert stats.mcnemar_exact(b, c) == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)


def test_paired_comparison_counts_discordant_cases_and_bounds_the_difference():
    a = np.array([True] * 70 + [False] * 30)
    b = a.copy()
    b[:5] = False  # five cases only run A passes
    b[70:80] = True  # ten only run B passes
    got = stats.paired_bootstrap(a, b, n_boot=4000, seed=1)
    assert (got.n, got.only_a, got.only_b) == (100, 5, 10)
    assert got.difference.estimate == pytest.approx(0.05)
    assert got.difference.low < 0.05 < got.difference.high
    assert got.p_mcnemar == pytest.approx(mcnemar([[65, 5], [10, 20]], exact=True).pvalue)


def test_paired_tests_hold_their_false_positive_rate_under_the_null():
    # 1,000 simulated null comparisons (the issue's figure): both runs pass each case with the same chance
    rng = np.random.default_rng(7)
    rejected_mcnemar = rejected_boot = 0
    for _ in range(1000):
        p_case = rng.uniform(0.3, 0.95, size=100)
        a, b = rng.random(100) < p_case, rng.random(100) < p_case
        got = stats.paired_bootstrap(a, b, n_boot=400, seed=int(rng.integers(1 << 30)))
        rejected_mcnemar += got.p_mcnemar < 0.05
        rejected_boot += got.p_bootstrap < 0.05
    assert rejected_mcnemar / 1000 <= 0.05
    assert rejected_boot / 1000 <= 0.05 + 0.015  # the bootstrap is approximate: within sampling noise of 5%


def test_holm_matches_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]
    assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-12)
    assert stats.holm([]) == []


def test_cluster_robust_mean_matches_statsmodels_ols():
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(25), rng.integers(1, 8, size=25))
    effect = rng.normal(0, 0.3, size=25)[clusters]
    y = (rng.random(clusters.size) < np.clip(0.7 + effect, 0, 1)).astype(float)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    got = stats.cluster_robust_mean(y, clusters.tolist())
    assert got.estimate == pytest.approx(fit.params[0], abs=1e-12)
    assert (got.low, got.high) == pytest.approx(tuple(fit.conf_int()[0]), abs=1e-9)


def test_unpaired_sample_size_matches_statsmodels_power():
    for baseline, mde in [(0.8, 0.05), (0.9, 0.03), (0.5, 0.1), (0.7, 0.02)]:
        h = proportion_effectsize(baseline, baseline - mde)
        ref = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
        assert stats.sample_size(baseline, mde).unpaired == math.ceil(ref)


def test_paired_size_is_far_smaller_when_runs_mostly_agree():
    # Connor 1987 by hand: psi = 0.1, delta = 0.05 -> (1.95996*sqrt(.1) + 0.84162*sqrt(.0975))**2 / .0025 = 311.6
    assert stats.sample_size(0.8, 0.05, discordance=0.1).paired == 312
    got = stats.sample_size(0.8, 0.05)
    assert (got.unpaired, got.paired) == (1092, 155)  # seed 003: ~200 paired; ~1,000 unpaired
    # seed 002: clustered cases need roughly nine times the examples
    assert stats.design_effect(9, 1.0) == 9
    clustered = stats.sample_size(0.8, 0.05, deff=stats.design_effect(5, 0.25))  # deff 2
    assert (clustered.unpaired, clustered.paired) == (math.ceil(1091.8961587 * 2), math.ceil(154.6 * 2))


def test_minimum_detectable_effect_inverts_the_sample_size():
    mde = stats.minimum_detectable_effect(1092, 0.8)
    assert 0.049 < mde <= 0.0501
    assert stats.sample_size(0.8, mde).unpaired <= 1092


def test_size_advice_follows_the_seeds():
    assert stats.size_advice(12).startswith("fewer than 30")
    assert stats.size_advice(50).startswith("sanity")
    assert stats.size_advice(150).startswith("enough human labels")
    assert stats.size_advice(1200).startswith("a confident model swap")
