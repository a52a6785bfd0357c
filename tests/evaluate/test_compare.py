"""Paired comparison of two runs and the CI gate, on a real release with deterministic targets."""

from __future__ import annotations

import json
import re

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from evaltray.evaluate import compare, score
from evaltray.evaluate import run as runner
from evaltray.evaluate.targets import make_target
from evaltray.tray import release
from tests.cli.runner import run as cli
from tests.helpers import tray_of

BOT = """
import re

def right(inp):
    return "Answer to: " + inp["messages"][-1]["content"]

def worse(inp):
    text = inp["messages"][-1]["content"]
    n = int(re.search(r"#(\\d+)", text).group(1))
    return "no idea" if text.startswith("q refunds") and n < 12 else "Answer to: " + text
"""


@pytest.fixture
def two_runs(ws, tmp_path, monkeypatch):
    (tmp_path / "gatebot.py").write_text(BOT)
    monkeypatch.syspath_prepend(str(tmp_path))
    tray_of(ws, {"refunds": 30, "shipping": 30})
    release.create_release(ws, "1.0.0", "alice")
    plan = runner.plan_release_run(ws, "1.0.0")
    ids = {}
    for name in ("right", "worse"):
        made = runner.execute(ws, plan, make_target(f"python:gatebot:{name}"), actor="alice")
        score.score_run(ws, made.run_id, ["exact"], "alice")
        ids[name] = made.run_id
    return ws, ids


def test_compare_pairs_cases_and_matches_mcnemar(two_runs):
    ws, ids = two_runs
    got = compare.compare_runs(ws, ids["right"], ids["worse"])
    assert (got["n"], got["baseline_rate"], got["candidate_rate"], got["discordant"]) == (60, 1.0, 0.8, 12)
    assert got["p_mcnemar"] == pytest.approx(mcnemar([[48, 12], [0, 0]], exact=True).pvalue)
    refunds = got["slices"]["refunds"]
    assert (refunds["n"], refunds["only_baseline"], refunds["difference"]) == (30, 12, -0.4)
    assert refunds["p_holm"] == pytest.approx(min(1.0, 2 * refunds["p"]))  # two slices; shipping has p = 1
    assert got["slices"]["shipping"]["p"] == 1.0


def test_the_gate_fails_on_a_regression_and_passes_a_twin(two_runs):
    ws, ids = two_runs
    result = compare.gate(ws, ids["worse"], ids["right"], budget=1.0, floors={"shipping": 0.9, "refunds": 0.75})
    assert not result.passed
    assert result.reasons[0] == "pass rate fell 20.0 points (100.0% → 80.0% on 60 cases), more than the budget of 1"
    assert result.reasons[1].startswith("slice refunds regressed significantly: 100.0% → 60.0% (n 30, McNemar p ")
    assert re.match(
        r"slice refunds is at 60.0% \(95% \d+\.\d%–\d+\.\d%, n 30\), below its floor of 75%", result.reasons[2]
    )
    twin = compare.gate(ws, ids["right"], ids["right"], budget=1.0)
    assert twin.passed and twin.reasons == []
    assert twin.warnings == [
        f"60 cases detect a drop of about {twin.detectable_points['paired']:g} points (paired, 80% power): the budget of 1 is finer than the cases can see"
    ]
    assert twin.detectable_points == {"unpaired": 12.0, "paired": 13.0}  # near 100% even unpaired runs vary little


def test_the_cli_gate_exits_1_with_readable_reasons(two_runs, monkeypatch):
    ws, ids = two_runs
    monkeypatch.chdir(ws.root)
    r = cli("gate", ids["worse"], "--baseline", ids["right"], "--budget", "5", ok=False)
    assert r.exit_code == 1
    assert "  FAIL: pass rate fell 20.0 points" in r.stdout and r.stdout.endswith("gate: FAIL\n")
    ok = cli("gate", ids["right"], "--baseline", ids["right"], "--json")
    assert json.loads(ok.stdout)["passed"] is True


def test_report_compare_puts_two_runs_side_by_side(two_runs, monkeypatch):
    ws, ids = two_runs
    monkeypatch.chdir(ws.root)
    text = cli("report", ids["worse"], "--compare", ids["right"]).stdout
    assert f"{ids['worse']} vs {ids['right']}, 60 shared cases: 100.0% → 80.0% (-20.0 points" in text
    assert "NOTE" not in text  # one release
    data = json.loads(cli("report", ids["worse"], "--compare", ids["right"], "--json").stdout)
    assert data["slices"]["refunds"]["candidate"] == 0.6 and data["same_release"] is True


def test_the_report_breaks_down_by_difficulty_and_shows_the_holdout_gap(two_runs):
    from evaltray.evaluate import report

    ws, ids = two_runs
    right = report.run_report(ws, ids["right"])
    assert right["difficulty"]["medium"]["n"] == 60
    assert "difficulty medium: 100% pass — saturated; add harder cases" in right["warnings"]
    assert right["holdout_gap"]["gap"] == 0.0
    worse = report.run_report(ws, ids["worse"])
    held = set(release.load_manifest(ws, "1.0.0").sets["main"].holdout)
    rows = {r["case_id"]: r["status"] for r in score.read_scores(ws, ids["worse"])}
    dev = [s == "pass" for c, s in rows.items() if c not in held]
    hold = [s == "pass" for c, s in rows.items() if c in held]
    assert worse["holdout_gap"]["gap"] == pytest.approx(sum(dev) / len(dev) - sum(hold) / len(hold))
    assert (worse["holdout_gap"]["dev"]["n"], worse["holdout_gap"]["holdout"]["n"]) == (len(dev), len(hold))
