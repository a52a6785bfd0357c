"""Run → score → report: errors apart from fails, intervals from statsmodels, the release hash on top."""

from __future__ import annotations

import orjson
import pytest
from statsmodels.stats.proportion import proportion_confint

from evaltray.evaluate import report, score
from evaltray.evaluate import run as runner
from evaltray.evaluate.targets import make_target
from evaltray.tray import release
from tests.helpers import tray_of


def _file(tmp_path, rows):
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def echo_bot(tmp_path, monkeypatch):
    (tmp_path / "echobot.py").write_text(
        "def answer(inp):\n"
        "    text = inp['messages'][-1]['content']\n"
        "    if text == 'crash':\n"
        "        raise ValueError(text)\n"
        "    return text.upper()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return make_target("python:echobot:answer")


def test_scores_and_a_per_slice_report_with_wilson_intervals(ws, tmp_path, echo_bot):
    rows = [
        {"id": f"a{i}", "input": f"q{i}", "slice": "refunds", "expected": {"reference": f"Q{i}" if i < 6 else "nope"}}
        for i in range(8)
    ]
    rows += [
        {"id": f"b{i}", "input": f"r{i}", "slice": "shipping", "expected": {"reference": f"R{i}"}} for i in range(3)
    ]
    rows += [
        {"id": "err", "input": "crash", "slice": "shipping", "expected": {"reference": "x"}},
        {"id": "none", "input": "hello", "slice": "shipping", "expected": {"assertions": ["is polite"]}},
    ]
    made = runner.execute(ws, runner.plan_file_run(_file(tmp_path, rows)), echo_bot, actor="alice")
    scored = score.score_run(ws, made.run_id, ["exact"], "alice")
    assert (scored.answers, scored.passed, scored.failed, scored.errors, scored.unscored) == (13, 9, 2, 1, 1)
    assert scored.by_scorer == {"exact": {"pass": 9, "fail": 2, "n/a": 1}}
    got = report.run_report(ws, made.run_id)
    assert (got["release"], got["release_hash"]) == ("unreleased", None)
    low, high = proportion_confint(9, 11, method="wilson")
    assert got["overall"] == {
        "n": 11,
        "passed": 9,
        "errors": 1,
        "unscored": 1,
        "pass_rate": 9 / 11,
        "low": pytest.approx(low),
        "high": pytest.approx(high),
    }
    assert (got["slices"]["refunds"]["n"], got["slices"]["refunds"]["passed"]) == (8, 6)
    assert (got["slices"]["shipping"]["n"], got["slices"]["shipping"]["errors"]) == (3, 1)
    assert got["warnings"] == [
        "slice refunds: 8 scored cases can flag a collapse, not declare a fix",
        "slice shipping: 3 scored cases can flag a collapse, not declare a fix",
    ]


def test_scoring_refuses_cases_that_changed_since_the_run(ws, tmp_path, echo_bot):
    path = _file(tmp_path, [{"id": "a", "input": "q", "expected": {"reference": "Q"}}])
    made = runner.execute(ws, runner.plan_file_run(path), echo_bot, actor="alice")
    path.write_text('{"id": "a", "input": "q", "expected": {"reference": "changed"}}\n')
    with pytest.raises(runner.RunError, match="changed .or is gone. since run"):
        score.score_run(ws, made.run_id, actor="alice")
    with pytest.raises(runner.RunError, match="is not scored yet"):
        report.run_report(ws, made.run_id)


def test_replay_of_cases_no_trace_produced_is_an_error_per_case(ws):
    tray_of(ws, {"refunds": 2})  # written by a subject-matter expert: nothing was recorded
    release.create_release(ws, "1.0.0", "alice")
    made = runner.execute(ws, runner.plan_release_run(ws, "1.0.0"), make_target("replay"), actor="alice")
    assert (made.sent, made.errors, made.error_reasons) == (2, 2, {"the case has no recorded output to replay": 2})


def test_trials_give_pass_at_k_pass_hat_k_and_the_flaky_cases(ws, tmp_path, monkeypatch):
    # a bot that passes "steady" always, "flaky" on every other call, "never" never
    (tmp_path / "trialbot.py").write_text(
        "calls = {}\n"
        "def answer(inp):\n"
        "    text = inp['messages'][-1]['content']\n"
        "    calls[text] = calls.get(text, 0) + 1\n"
        "    if text == 'never' or (text == 'flaky' and calls[text] % 2 == 0):\n"
        "        return 'wrong'\n"
        "    return 'right'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"id": t, "input": t, "expected": {"reference": "right"}} for t in ("steady", "flaky", "never")]
    limits = runner.Limits(concurrency=1)
    made = runner.execute(
        ws,
        runner.plan_file_run(_file(tmp_path, rows)),
        make_target("python:trialbot:answer"),
        trials=4,
        limits=limits,
        actor="alice",
    )
    score.score_run(ws, made.run_id, ["exact"], "alice")
    got = report.run_report(ws, made.run_id)["trials"]
    assert (got["k"], got["cases"], got["flaky"]) == (4, 3, ["flaky"])
    assert got["pass_at_k"]["pass_rate"] == pytest.approx(2 / 3) and got["pass_hat_k"]["pass_rate"] == pytest.approx(
        1 / 3
    )


def test_the_default_scorers_check_a_length_the_case_asks_for(ws, tmp_path, echo_bot):
    # echo_bot upper-cases the question: "ONE TWO THREE" is 3 words, 13 characters
    rows = [
        {"id": "short", "input": "one two three", "expected": {"assertions": ["max-words: 3"]}},
        {"id": "long", "input": "one two three", "expected": {"assertions": ["max-chars: 12"]}},
        {"id": "free", "input": "one two three", "expected": {"assertions": ["is polite"]}},
    ]
    made = runner.execute(ws, runner.plan_file_run(_file(tmp_path, rows)), echo_bot, actor="alice")
    scored = score.score_run(ws, made.run_id, None, "alice")
    assert scored.by_scorer["length"] == {"pass": 1, "fail": 1, "n/a": 1}
    assert (scored.passed, scored.failed, scored.unscored) == (1, 1, 1)
    got = {s["case_id"]: s for s in score.read_scores(ws, made.run_id)}
    length = [s for s in got["long"]["scores"] if s["scorer"] == "length"]
    assert length == [{"scorer": "length", "passed": False, "reason": "13 characters, more than 12"}]
