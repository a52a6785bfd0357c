"""The live pass rate: a seeded sample of the window's traces, judged with each slice's rubric by a calibrated
judge (a stub), rates with Wilson intervals, a share sent to people, the result stored."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import pytest
from scipy import stats

from evaltray.curate import plan as plans
from evaltray.curate.plan import Condition, Rule
from evaltray.evaluate import calibrate as cal
from evaltray.evaluate import judge as jd
from evaltray.evaluate import live
from evaltray.evaluate.stub import StubServer
from evaltray.ingest import ingest_files
from evaltray.tray import tasks

UNTIL = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _trace(i, feature, answer, day):
    messages = [{"role": "user", "content": f"question {i}"}]
    if answer is not None:
        messages.append({"role": "assistant", "content": f"{answer} answer {i}"})
    return {"id": f"t{i:02d}", "timestamp": day, "metadata": {"feature": feature}, "messages": messages}


def _traffic(ws, tmp_path):
    """In the week before UNTIL: refunds 7 GOOD + 3 BAD, shipping 4 GOOD + 5 BAD + 1 UNSURE (the judge gives
    no verdict), 2 returns GOOD (mapped to refunds by the plan), 2 shipping traces with no answer. Before it:
    3 GOOD traces that must never be sampled."""
    recent, old = "2026-12-05T10:00:00Z", "2026-11-20T10:00:00Z"
    answers = (
        [("refunds", "GOOD")] * 7
        + [("refunds", "BAD")] * 3
        + [("shipping", "GOOD")] * 4
        + [("shipping", "BAD")] * 5
        + [("shipping", "UNSURE")]
        + [("returns", "GOOD")] * 2
        + [("shipping", None)] * 2
    )
    rows = [_trace(i, f, a, recent) for i, (f, a) in enumerate(answers)]
    rows += [_trace(30 + i, "refunds", "GOOD", old) for i in range(3)]
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    ingest_files(ws, [path], actor="alice")


def _plan(ws):
    p = plans.init_plan(ws, ["refunds", "shipping"], actor="alice")
    p.rules.append(Rule(set={"feature": "refunds"}, when=[Condition("feature", "=", "returns")]))
    p.slices["refunds"]["rubric"] = "RUBRIC-REFUNDS"
    p.slices["*"] = {"rubric": "RUBRIC-DEFAULT"}
    p.save(plans.plan_path(ws))


class _Grader:
    """The judge stub: pass on GOOD, fail on BAD, neither on UNSURE; remembers the rubric each answer got."""

    def __init__(self):
        self.rubrics = {}

    def __call__(self, body):
        text = body["messages"][-1]["content"]
        answer = text.split("The assistant's answer:\n", 1)[1].split("\n", 1)[0]
        rubric = text.split("Rubric for this case:\n", 1)[1].split("\n", 1)[0] if "Rubric for" in text else None
        self.rubrics[answer.split()[-1]] = rubric
        if "UNSURE" in answer:
            return "maybe"
        verdict = "pass" if "GOOD" in answer else "fail"
        return orjson.dumps({"critique": f"{verdict} because", "verdict": verdict}).decode()


def _calibrated(ws, tmp_path, judge):
    """Store a calibration of ``judge``: the 120 outputs of test_calibrate (70/8/8/31, agreement 86.3%)."""
    humans = [{"id": f"o{i}", "verdict": "pass" if i < 78 else "fail"} for i in range(117)]
    judged = [{"id": f"o{i}", "verdict": "pass" if (i < 70 or 78 <= i < 86) else "fail"} for i in range(117)]
    for name, rows in (("h", humans), ("j", judged)):
        (tmp_path / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    got = cal.calibrate(ws, judge, human_file=tmp_path / "h.jsonl", judge_file=tmp_path / "j.jsonl", actor="alice")
    assert got.calibrated and got.agreement.confusion["human_pass_judge_pass"] == 70


def test_window_and_sampling():
    assert live.parse_window("7d") == timedelta(days=7)
    assert live.parse_window(" 24h") == timedelta(hours=24)
    assert live.parse_window("2w") == timedelta(days=14) and live.parse_window("90m") == timedelta(minutes=90)
    for bad in ("0d", "7", "d", "7y", "-1d"):
        with pytest.raises(live.LiveError, match="a positive number and a unit"):
            live.parse_window(bad)


def test_the_sample_is_seeded_uniform_and_drawn_in_duckdb(ws, tmp_path):
    rows = [_trace(i, "refunds", "GOOD", "2026-12-05T10:00:00Z") for i in range(100)]
    rows[0]["id"] = "it's"  # a quote in an id: the rules' id predicate quotes it
    (tmp_path / "many.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    ingest_files(ws, [tmp_path / "many.jsonl"], actor="alice")
    drawn, total = live.sample_ids(ws, None, 10, seed=3)
    ids = {r["id"] for r in rows}
    assert total == 100 and len(drawn) == 10 and set(drawn) <= ids and drawn == sorted(drawn)
    assert live.sample_ids(ws, None, 10, seed=3) == (drawn, 100)
    assert live.sample_ids(ws, None, 10, seed=4)[0] != drawn
    assert live.sample_ids(ws, None, 500, seed=3) == (sorted(ids), 100)
    assert live.sample_ids(ws, "feature = 'none'", 5, seed=3) == ([], 0)
    with pytest.raises(live.LiveError, match="at least one trace"):
        live.sample_ids(ws, None, 0, seed=3)
    found = ws.trace_store().query(live._id_predicate(["it's", "t01"]), columns=["trace_id"], order_by="trace_id")
    assert found.column("trace_id").to_pylist() == ["it's", "t01"]


def test_the_draw_favours_no_trace():
    # the draw's order over 200 seeds, in one DuckDB query: each of 100 ids is drawn about 20 times
    con = duckdb.connect()
    con.execute("CREATE TABLE traces AS SELECT 't' || i AS trace_id FROM range(100) r(i)")
    draws = " UNION ALL ".join(f"(SELECT trace_id FROM traces ORDER BY {live._rank(s)} LIMIT 10)" for s in range(200))
    counts = Counter(row[0] for row in con.execute(draws).fetchall())
    assert sum(counts.values()) == 2000 and len(counts) == 100
    chi2 = sum((c - 20) ** 2 / 20 for c in counts.values())
    assert stats.chi2.sf(chi2, 99) > 0.001


def test_rubric_comes_from_the_slice_then_the_plan_then_the_caller():
    p = plans.Plan(dimensions={"feature": ["a", "b"]}, slices={"a": {"rubric": "RA"}, "b": {"owner": "x"}})
    assert live.rubric_for(p, "a", "given") == ("RA", "slice")
    assert live.rubric_for(p, "b", "given") == ("given", "given")
    p.slices["*"] = {"rubric": "RALL"}
    assert live.rubric_for(p, "b", "given") == ("RALL", "plan")
    assert live.rubric_for(None, "b", None) == (None, "none")


def test_live_pass_rate_per_slice_with_intervals_stored(ws, tmp_path):
    _traffic(ws, tmp_path)
    _plan(ws)
    grader = _Grader()
    with StubServer(grader) as stub:
        judge = jd.JudgeConfig(model="judge", base_url=stub.base_url)
        _calibrated(ws, tmp_path, judge)
        got = live.score_live(ws, judge, window="7d", until=UNTIL, human_share=0.25, actor="alice")
    assert (got.eligible, got.sampled, got.no_answer) == (24, 24, 2)
    # refunds 9 of 12 (the two returns traces mapped in by the plan's rule), shipping 4 of 9 and one error
    assert {k: (v["n"], v["passed"], v["errors"]) for k, v in got.slices.items()} == {
        "refunds": (12, 9, 0),
        "shipping": (9, 4, 1),
    }
    assert (got.overall["n"], got.overall["passed"], got.overall["errors"]) == (21, 13, 1)
    # Wilson 9/12 by hand: p = .75, z = 1.959964 -> centre .689376, half .221681 (statsmodels agrees)
    assert got.slices["refunds"]["low"] == pytest.approx(0.467695, abs=1e-6)
    assert got.slices["refunds"]["high"] == pytest.approx(0.911058, abs=1e-6)
    # Rogan–Gladen with TPR 70/78, TNR 31/39: (13/21 + 31/39 - 1) / (70/78 + 31/39 - 1)
    tpr, tnr = 70 / 78, 31 / 39
    assert got.corrected["pass_rate"] == pytest.approx((13 / 21 + tnr - 1) / (tpr + tnr - 1))
    assert got.calibrated and got.warnings == [
        "2 sampled traces hold no recorded answer and were not judged",
    ]
    # rubrics: refunds (and returns) get the slice's own, shipping the plan's default
    assert grader.rubrics["0"] == "RUBRIC-REFUNDS" and grader.rubrics["20"] == "RUBRIC-REFUNDS"
    assert grader.rubrics["10"] == "RUBRIC-DEFAULT" and "30" not in grader.rubrics
    # 25% of the 21 verdicts is 5, drawn among the judged traces
    assert len(got.review_ids) == 5 and len(got.tasks) == 5
    rows = [
        orjson.loads(x) for x in (tmp_path / "ws" / "live" / got.live_id / "verdicts.jsonl").read_bytes().splitlines()
    ]
    assert len(rows) == 24 - 2 and sum(r["human_review"] for r in rows) == 5
    assert {r["trace_id"] for r in rows if r["human_review"]} == set(got.review_ids)
    assert next(r for r in rows if r["trace_id"] == "t19")["error"] == "the judge answered neither pass nor fail"
    assert live.read_live(ws, got.live_id)["overall"] == got.overall
    assert [r["live_id"] for r in live.list_live(ws)] == [got.live_id]


def test_a_sample_is_seeded_and_the_window_respected(ws, tmp_path):
    _traffic(ws, tmp_path)
    with StubServer(_Grader()) as stub:
        judge = jd.JudgeConfig(model="judge", base_url=stub.base_url)
        _calibrated(ws, tmp_path, judge)
        a = live.score_live(ws, judge, sample=8, seed=1, until=UNTIL, actor="alice")
        b = live.score_live(ws, judge, sample=8, seed=1, until=UNTIL, actor="alice")
        later = live.score_live(ws, judge, window="30d", sample=100, until=UNTIL, actor="alice")
    assert a.live_id == b.live_id and a.sampled == 8 and a.eligible == 24
    rows = (tmp_path / "ws" / "live" / a.live_id / "verdicts.jsonl").read_bytes().splitlines()
    week = live._window_predicate(UNTIL - timedelta(days=7), UNTIL, None)
    assert sorted(orjson.loads(r)["trace_id"] for r in rows) == [
        t for t in live.sample_ids(ws, week, 8, 1)[0] if t not in ("t22", "t23")
    ]
    # without a plan the slice is the trace's own feature; the month before holds the three old traces too
    assert later.eligible == 27 and "returns" in later.slices
    assert len(a.review_ids) == 1  # 10% of a handful rounds up to one


def test_an_uncalibrated_judge_is_refused_unless_allowed(ws, tmp_path):
    _traffic(ws, tmp_path)
    with StubServer(_Grader()) as stub:
        judge = jd.JudgeConfig(model="judge", base_url=stub.base_url)
        with pytest.raises(live.LiveError, match="^judge judge was never calibrated in this workspace: run `evaltray"):
            live.score_live(ws, judge, until=UNTIL, actor="alice")
        got = live.score_live(ws, judge, until=UNTIL, allow_uncalibrated=True, actor="alice")
    assert not got.calibrated and got.corrected is None
    assert got.warnings[0] == "UNCALIBRATED judge judge: its verdicts are counted as given"
    assert got.warnings[1].startswith("22 traces were judged with no rubric")  # no plan, no --rubric
    with pytest.raises(live.LiveError, match="^no traces with a kept payload in the last 1h"):
        live.score_live(ws, judge, window="1h", until=UNTIL, allow_uncalibrated=True, actor="alice")


def test_chosen_verdicts_open_judge_check_tasks(ws, tmp_path):
    _traffic(ws, tmp_path)
    with StubServer(_Grader()) as stub:
        judge = jd.JudgeConfig(model="judge", base_url=stub.base_url)
        got = live.score_live(ws, judge, until=UNTIL, allow_uncalibrated=True, human_share=0.1, actor="alice")
        # scoring the same sample again opens nothing new: a task is idempotent on (kind, ref) while open
        again = live.score_live(ws, judge, until=UNTIL, allow_uncalibrated=True, human_share=0.1, actor="alice")
    assert again.tasks == got.tasks and len(got.tasks) == 2  # 10% of 21 verdicts, rounded up
    opened = [tasks.get_task(ws, t) for t in got.tasks]
    assert [(t.kind, t.ref, t.opened_by) for t in opened] == [
        ("judge_check", f"{got.live_id}/{tid}", "alice") for tid in got.review_ids
    ]
    rows = {
        orjson.loads(x)["trace_id"]: orjson.loads(x)
        for x in (tmp_path / "ws" / "live" / got.live_id / "verdicts.jsonl").read_bytes().splitlines()
    }
    for t in opened:
        said = rows[t.payload["trace_id"]]
        assert t.payload["judge_hash"] == judge.hash and t.payload["live_id"] == got.live_id
        assert t.payload["verdicts"][0]["verdict"] == ("pass" if said["passed"] else "fail")
        assert t.payload["output"]  # the recorded answer the person judges
    assert live.live_agreement(ws, judge.hash) == {"n": 0}
    # people answer: they agree with the judge on the first task and not on the second
    judged = [t.payload["verdicts"][0]["verdict"] for t in opened]
    tasks.resolve_task(ws, opened[0].id, "alice", "done", verdict=judged[0])
    tasks.resolve_task(ws, opened[1].id, "alice", "done", verdict="fail" if judged[1] == "pass" else "pass")
    got_agreement = live.live_agreement(ws, judge.hash)
    # Wilson 1/2 by hand: centre (0.5 + z²/4)/(1 + z²/2) = 0.5, half z·sqrt(0.25/2 + z²/16)/(1 + z²/2) = 0.4055
    assert (got_agreement["n"], got_agreement["agreed"]) == (2, 1)
    assert got_agreement["low"] == pytest.approx(0.094531, abs=1e-6)
    assert got_agreement["high"] == pytest.approx(0.905469, abs=1e-6)
    assert live.live_agreement(ws, "another-judge") == {"n": 0}
    with pytest.raises(live.LiveError, match=r"human share must lie in \[0, 1\]"):
        live.score_live(ws, judge, until=UNTIL, allow_uncalibrated=True, human_share=2, actor="alice")
