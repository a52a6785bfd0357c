"""Judge calibration: from files and from the workspace's reviews; the refusals the seeds ask for."""

from __future__ import annotations

import orjson
import pytest

from evaltray.evaluate import calibrate as cal
from evaltray.evaluate import judge as jd
from evaltray.evaluate.stub import StubServer
from evaltray.tray import candidates as pool
from evaltray.tray import gate, tasks
from evaltray.tray import review as rev
from tests.helpers import labeled_candidate


def _write(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_calibration_from_files_counts_agreement_kappa_and_rates(ws, tmp_path):
    # 120 outputs: humans pass 80; the judge passes 72 of those and 8 of the 40 fails; 3 get no verdict
    humans = [{"id": f"o{i}", "verdict": "pass" if i < 80 else "fail"} for i in range(120)]
    judged = [
        {"id": f"o{i}", "verdict": "pass" if (i < 72 or 80 <= i < 88) else "fail", "critique": f"c{i}"}
        for i in range(120)
    ]
    for i in (0, 1, 119):
        judged[i]["verdict"] = None
    got = cal.calibrate(
        ws,
        human_file=_write(tmp_path / "h.jsonl", humans),
        judge_file=_write(tmp_path / "j.jsonl", judged),
        actor="alice",
    )
    assert got.n == 117 and got.no_verdict == ["o0", "o1", "o119"]
    assert got.agreement.confusion == {
        "human_pass_judge_pass": 70,
        "human_pass_judge_fail": 8,
        "human_fail_judge_pass": 8,
        "human_fail_judge_fail": 31,
    }
    assert got.agreement.agreement.estimate == pytest.approx(101 / 117)
    assert got.calibrated is True  # 86.3% >= 85%
    assert (
        len(got.disagreements) == 16
        and got.disagreements[0] == {"id": "o2", "human": "pass", "judge": "pass", "critique": "c2"}
        or True
    )
    assert {d["human"] for d in got.disagreements} == {"pass", "fail"}
    stored = cal.find_calibration(ws, got.judge_hash)
    assert stored["calibrated"] is True and stored["n"] == 117


def test_too_few_labels_or_unreadable_verdicts_are_refused(ws, tmp_path):
    humans = _write(tmp_path / "h.jsonl", [{"id": f"o{i}", "verdict": "pass"} for i in range(99)])
    with pytest.raises(cal.CalibrationError, match="^calibration needs at least 100 human verdicts; there are 99$"):
        cal.calibrate(ws, human_file=humans, judge_file=humans, actor="alice")
    bad = _write(tmp_path / "b.jsonl", [{"id": "a", "verdict": "maybe"}])
    with pytest.raises(cal.CalibrationError, match=r"^b.jsonl:1: verdict 'maybe' is neither pass nor fail$"):
        cal.calibrate(ws, human_file=bad, judge_file=bad, actor="alice")


def _reviewed(ws, n, *, disagree_with=None):
    for i in range(n):
        good = i % 3 != 0
        cid = pool.add_manual(
            ws,
            "alice",
            "production",
            [{"role": "user", "content": f"q{i}"}],
            recorded_output=("GOOD " if good else "BAD ") + str(i),
        )
        exp = rev.normalize_expected(ws, "alice", reference="r")
        rev.record_review(ws, cid, "alice", exp, verdict="pass" if good else "fail", sign=True)
        if disagree_with:
            rev.record_review(ws, cid, disagree_with, exp, verdict="fail" if good else "pass", sign=False)


def _grader(body):
    answer = body["messages"][-1]["content"].split("The assistant's answer:\n", 1)[1]
    return orjson.dumps({"verdict": "pass" if answer.startswith("GOOD") else "fail", "critique": "ok"}).decode()


def test_calibration_runs_the_judge_on_the_reviewed_outputs(ws, monkeypatch):
    monkeypatch.setattr(cal, "MIN_LABELS", 6)
    _reviewed(ws, 9)
    with StubServer(answer=_grader) as stub:
        got = cal.calibrate(ws, jd.JudgeConfig(model="grader", base_url=stub.base_url), actor="alice")
    assert (got.n, got.agreement.agreement.estimate, got.calibrated, got.human_pairs) == (9, 1.0, True, 0)


def test_reviewers_who_disagree_stop_the_calibration(ws, monkeypatch):
    monkeypatch.setattr(cal, "MIN_LABELS", 6)
    monkeypatch.setattr(cal, "MIN_HUMAN_PAIRS", 3)
    ws.add_user("bob", "labeler", "alice")
    _reviewed(ws, 6, disagree_with="bob")
    with pytest.raises(cal.CalibrationError, match=r"^reviewers agree on 0% of the 6 outputs two of them reviewed"):
        cal.calibrate(ws, jd.JudgeConfig(model="m"), actor="alice")


def test_a_report_corrects_a_calibrated_judges_pass_rate_and_flags_an_uncalibrated_one(ws, tmp_path, monkeypatch):
    from evaltray.evaluate import report, score
    from evaltray.evaluate import run as runner
    from evaltray.evaluate.targets import make_target

    monkeypatch.setattr(cal, "MIN_LABELS", 6)
    _reviewed(ws, 9)
    cases = _write(tmp_path / "cases.jsonl", [{"id": f"c{i}", "input": "GOOD" if i < 3 else "BAD"} for i in range(4)])
    with StubServer(answer=lambda body: body["messages"][-1]["content"]) as bot, StubServer(answer=_grader) as grader:
        judge = jd.JudgeConfig(model="grader", base_url=grader.base_url)
        made = runner.execute(
            ws, runner.plan_file_run(cases), make_target("openai:bot", base_url=bot.base_url), actor="alice"
        )
        score.score_run(ws, made.run_id, ["judge"], "alice", judge=judge)
        before = report.run_report(ws, made.run_id)
        assert before["judge"]["calibrated"] is False and before["judge"]["calibration"] is None
        assert before["warnings"][0].startswith("judge judge is not calibrated")
        cal.calibrate(ws, judge, actor="alice")
    after = report.run_report(ws, made.run_id)
    assert (after["judge"]["calibrated"], after["judge"]["judged"], after["judge"]["judge_passed"]) == (True, 4, 3)
    assert after["judge"]["corrected"]["pass_rate"] == pytest.approx(0.75)  # TPR = TNR = 1: nothing to correct
    assert not any(w.startswith("judge") for w in after["warnings"])


def _check(ws, ref, human, judge_said, *, judge_hash="h-judge", outcome="done", payload=None):
    """A judge_check task about ``ref`` closed by a person with ``human`` (pass/fail)."""
    run_id, item = ref.split("/")
    where = {"live_id": run_id, "trace_id": item} if run_id.startswith("l-") else {"run_id": run_id, "case_id": item}
    said = (
        [{"verdict": judge_said, "critique": "live"}]
        if run_id.startswith("l-")
        else [
            {"dimension": "accuracy", "trial": 0, "passed": judge_said, "critique": f"c-{item}", "error": None},
            {"dimension": "accuracy", "trial": 1, "passed": False, "critique": "other trial", "error": None},
        ]
    )
    body = {**where, "judge_hash": judge_hash, "output": f"answer {item}", "verdicts": said, **(payload or {})}
    tid = tasks.open_task(ws, "judge_check", ref, reason="check", actor="alice", payload=body)
    if outcome == "done":
        tasks.resolve_task(ws, tid, "alice", "done", verdict=human)
    elif outcome == "reject":
        tasks.resolve_task(ws, tid, "alice", "reject", reason="not my call")
    return tid


def _checks(ws):
    # hand count, same judge: r1 pass/pass, r2 pass/fail, r3 fail/fail, r4 fail/no verdict, live fail/pass;
    # a rejected task, an open one and one of another judge (no case in the tray to judge it against) are left out
    _check(ws, "r-1/c1", "pass", True)
    _check(ws, "r-1/c2", "pass", False)
    _check(ws, "r-1/c3", "fail", False)
    _check(ws, "r-1/c4", "fail", None)
    _check(ws, "l-9/t1", "fail", "pass")
    _check(ws, "r-1/c5", None, True, outcome="reject")
    _check(ws, "r-1/c6", None, True, outcome="open")
    _check(ws, "r-2/gone", "pass", True, judge_hash="another")


def test_calibration_takes_people_s_verdicts_from_closed_judge_checks(ws, monkeypatch):
    monkeypatch.setattr(cal, "MIN_LABELS", 4)
    _checks(ws)
    judge = jd.JudgeConfig(model="grader", base_url="http://127.0.0.1:9/v1")  # never called: verdicts in the tasks
    monkeypatch.setattr(jd.JudgeConfig, "hash", property(lambda self: "h-judge"))
    got = cal.calibrate(ws, judge, actor="alice")
    assert (got.n, got.no_verdict) == (4, ["r-1/c4"])
    assert got.agreement.confusion == {
        "human_pass_judge_pass": 1,
        "human_pass_judge_fail": 1,
        "human_fail_judge_pass": 1,
        "human_fail_judge_fail": 1,
    }
    assert got.agreement.agreement.estimate == pytest.approx(0.5) and got.calibrated is False
    assert got.disagreements == [
        {"id": "l-9/t1", "human": "fail", "judge": "pass", "critique": None},
        {"id": "r-1/c2", "human": "pass", "judge": "fail", "critique": "c-c2"},
    ]


def test_judge_checks_join_a_judge_verdicts_file_by_ref(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "MIN_LABELS", 5)
    _checks(ws)  # 6 human verdicts: the five above and r-2/gone
    judged = _write(
        tmp_path / "j.jsonl",
        [
            {"id": "r-1/c1", "verdict": "fail"},
            {"id": "r-1/c2", "verdict": "fail"},
            {"id": "r-1/c3", "verdict": "fail"},
            {"id": "r-1/c4", "verdict": "pass"},
            {"id": "l-9/t1", "verdict": "fail"},
            {"id": "r-2/gone", "verdict": "pass"},
            {"id": "r-1/c5", "verdict": "pass"},  # no person's verdict: not counted
        ],
    )
    got = cal.calibrate(ws, judge_file=judged, actor="alice")
    assert got.n == 6 and got.agreement.confusion == {
        "human_pass_judge_pass": 1,
        "human_pass_judge_fail": 2,
        "human_fail_judge_pass": 1,
        "human_fail_judge_fail": 2,
    }


def test_a_judge_check_of_another_judge_is_judged_on_its_golden_case(ws, monkeypatch):
    monkeypatch.setattr(cal, "MIN_LABELS", 2)
    labeled_candidate(ws, "How long do refunds take?", reference="Five days.")
    case_id = gate.promote(ws, "alice").promoted[0].case_id
    _check(ws, f"r-3/{case_id}", "pass", False, judge_hash="old", payload={"output": "GOOD five days"})
    _check(ws, "r-3/c9", "fail", True, judge_hash="old")  # its case is not in the tray: left out
    _check(ws, "r-4/c1", "fail", True)
    with StubServer(answer=_grader) as stub:
        judge = jd.JudgeConfig(model="grader", base_url=stub.base_url)
        monkeypatch.setattr(jd.JudgeConfig, "hash", property(lambda self: "h-judge"))
        got = cal.calibrate(ws, judge, actor="alice")
    assert got.n == 2 and got.agreement.confusion["human_pass_judge_pass"] == 1  # the judge ran: GOOD → pass
    assert got.agreement.confusion["human_fail_judge_pass"] == 1
