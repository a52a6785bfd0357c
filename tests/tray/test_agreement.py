"""Overlap, adjudication, control items, spot-checks and the agreement they add up to: κ checked against
statsmodels and scikit-learn, the flow checked end to end on a workspace."""

from __future__ import annotations

import json
import random

import pytest
import sqlalchemy as sa
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from evaltray.monitor.health import tray_health
from evaltray.tray import agreement as ag
from evaltray.tray import candidates as pool
from evaltray.tray import gate, oversight, tasks
from evaltray.tray import review as rev
from tests.helpers import labeled_candidate, register

# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("seed", range(6))
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = random.Random(seed)
    a = [rng.choice(["pass", "fail"]) for _ in range(40)]
    b = [x if rng.random() < 0.7 else rng.choice(["pass", "fail"]) for x in a]
    assert ag.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_by_hand():
    # 10 items: both pass on 4, both fail on 3, a pass/b fail on 2, a fail/b pass on 1
    a = ["pass"] * 6 + ["fail"] * 4
    b = ["pass"] * 4 + ["fail"] * 2 + ["fail"] * 3 + ["pass"]
    # p_o = 0.7; p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.2 / 0.5
    assert ag.cohen_kappa(a, b) == pytest.approx(0.4)
    assert ag.cohen_kappa(["pass"] * 3, ["pass"] * 3) == 1.0
    assert ag.cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="2 labels against 1"):
        ag.cohen_kappa(["pass", "fail"], ["pass"])


@pytest.mark.parametrize(("seed", "raters"), [(0, 2), (1, 2), (2, 3), (3, 5)])
def test_fleiss_kappa_matches_statsmodels(seed, raters):
    rng = random.Random(seed)
    ratings = [[rng.choice([0, 1, 1]) for _ in range(raters)] for _ in range(30)]
    table, _ = aggregate_raters(ratings, n_cat=2)
    assert ag.fleiss_kappa(table.tolist()) == pytest.approx(fleiss_kappa(table, method="fleiss"))


def test_fleiss_kappa_by_hand_and_refusals():
    # 4 items, 2 raters: [2,0] [0,2] [1,1] [2,0]: P_i = 1,1,0,1 -> P̄ = .75; p = (5/8, 3/8): P̄e = 34/64
    kappa = (0.75 - 34 / 64) / (1 - 34 / 64)
    assert ag.fleiss_kappa([[2, 0], [0, 2], [1, 1], [2, 0]]) == pytest.approx(kappa)
    assert ag.fleiss_kappa([[2, 0], [2, 0]]) == 1.0
    assert ag.fleiss_kappa([]) is None
    with pytest.raises(ValueError, match="same number of raters"):
        ag.fleiss_kappa([[2, 0], [1, 2]])


def test_overlap_choice_is_the_hash_of_the_ref_and_near_the_share():
    refs = [f"cand-{i}" for i in range(4000)]
    chosen = [r for r in refs if tasks.in_overlap(r, 0.10)]
    assert 0.085 < len(chosen) / len(refs) < 0.115
    assert chosen == [r for r in refs if tasks.in_overlap(r, 0.10)]  # the same every time
    assert set(chosen) <= {r for r in refs if tasks.in_overlap(r, 0.20)}  # a larger share keeps these
    assert not any(tasks.in_overlap(r, 0.0) for r in refs)
    assert all(tasks.in_overlap(r, 1.0) for r in refs)


# ----------------------------------------------------------------------------- the flow


@pytest.fixture
def team(ws):
    register(ws, "ana", "labeler")
    register(ws, "bo", "labeler")
    register(ws, "cy", "labeler")
    ws.settings.overlap = 1.0  # every candidate labeled twice
    ws.settings.control_rate = 0.0
    return ws


def _label(ws, user, verdict, cid=None):
    """``user`` takes their next task (a label or a second label) and labels it with ``verdict``."""
    task = tasks.next_task(ws, user, kinds=["label", "overlap"])
    assert task is not None and (cid is None or task.ref == cid)
    exp = rev.normalize_expected(ws, user, f"{user} expects this")
    rev.record_review(ws, task.ref, user, exp, verdict=verdict)
    tasks.resolve_task(ws, task.id, user, "done")
    return task


def test_a_disagreement_reaches_the_adjudicator_whose_decision_is_the_label(team):
    ws = team
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Can I return shoes?"}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "ana", "pass", cid)
    assert tasks.next_task(ws, "ana", kinds=["overlap"]) is None  # never the first labeler's second label
    second = _label(ws, "bo", "fail", cid)
    assert second.kind == "overlap"
    adj = tasks.list_tasks(ws, kind="adjudicate", status="open")
    assert [(t.ref, t.reason) for t in adj] == [(cid, "ana said pass, bo said fail")]
    disputed = tasks.disputed_reviews(ws, adj[0])
    assert [(r.reviewer, r.verdict) for r in disputed] == [("ana", "pass"), ("bo", "fail")]
    with pytest.raises(tasks.TaskError, match="needs a verdict .* and a reason"):
        tasks.resolve_task(ws, adj[0].id, "alice", "done", verdict="fail")
    tasks.resolve_task(ws, adj[0].id, "alice", "done", verdict="fail", reason="the policy says 30 days")
    final = rev.latest_review(ws, cid)
    assert (final.reviewer, final.verdict, final.expected["reference"]) == ("alice", "fail", "bo expects this")
    with ws.tx() as conn:
        detail = conn.execute(
            sa.text("SELECT detail FROM audit WHERE action = 'review.add' ORDER BY id DESC LIMIT 1")
        ).scalar()
    said = json.loads(detail)
    assert (said["via"], said["reason"]) == ("adjudicate", "the policy says 30 days")
    [pair] = oversight.overlap_pairs(ws)
    assert (pair.first, pair.second, pair.decision, pair.adjudicator) == ("ana", "bo", "fail", "alice")


def test_an_agreement_opens_no_adjudication(team):
    ws = team
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Where is my parcel?"}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "ana", "pass", cid)
    _label(ws, "cy", "pass", cid)
    assert tasks.list_tasks(ws, kind="adjudicate") == []
    report = ag.agreement_report(ws)
    assert (report.overall.n, report.overall.agree, report.overall.kappa) == (1, 1, 1.0)


def test_a_second_label_must_be_made_by_somebody_else(team):
    ws = team
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Change my address"}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "ana", "pass", cid)
    task = tasks.next_task(ws, "bo", kinds=["overlap"])
    with pytest.raises(tasks.TaskError, match=f"candidate {cid} has no second label since ana's"):
        tasks.resolve_task(ws, task.id, "bo", "done")


def test_the_report_counts_pairs_kappa_weeks_and_the_adjudicator(team):
    ws = team
    plan = [  # (first, verdict, second, verdict)
        ("ana", "pass", "bo", "pass"),
        ("ana", "pass", "bo", "fail"),
        ("ana", "fail", "bo", "fail"),
        ("bo", "pass", "ana", "pass"),
        ("ana", "pass", "cy", "fail"),
        ("cy", "fail", "ana", "fail"),
    ]
    for i, (u1, v1, u2, v2) in enumerate(plan):
        cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": f"question {i}"}])
        tasks.open_label_tasks(ws, "alice")
        _label(ws, u1, v1, cid)
        _label(ws, u2, v2, cid)
    for t in tasks.list_tasks(ws, kind="adjudicate", status="open"):
        tasks.resolve_task(ws, t.id, "alice", "done", verdict="fail", reason="a fail by the guide")
    r = ag.agreement_report(ws)
    assert (r.overall.n, r.overall.agree) == (6, 4)
    # ana/bo as (ana, bo): pass/pass, pass/fail, fail/fail, pass/pass -> kappa by scikit-learn
    ab = r.pairs[("ana", "bo")]
    expected = cohen_kappa_score(["pass", "pass", "fail", "pass"], ["pass", "fail", "fail", "pass"])
    assert (ab.n, ab.agree, ab.kappa) == (4, 3, pytest.approx(expected))
    assert (r.pairs[("ana", "cy")].n, r.pairs[("ana", "cy")].agree) == (2, 1)
    table = [[(a == "pass") + (b == "pass"), (a == "fail") + (b == "fail")] for _, a, _, b in plan]
    assert r.overall.kappa == pytest.approx(fleiss_kappa(table, method="fleiss"))
    assert (r.decisions, r.undecided) == (2, 0)
    by = {la.labeler: la for la in r.labelers}
    # the adjudicator said fail twice: ana said pass both times, bo and cy said fail
    assert (by["ana"].with_adjudicator.n, by["ana"].with_adjudicator.agree) == (2, 0)
    assert (by["bo"].with_adjudicator.n, by["bo"].with_adjudicator.agree) == (1, 1)
    [week] = r.weeks.values()  # all made this week: κ over first and second labels
    assert (week.n, week.agree, week.kappa) == (6, 4, pytest.approx(_kappa(plan)))
    assert r.meets_bar is False  # 4 of 6 < 80%
    d = r.as_dict()
    assert d["overall"]["share"] == 0.6667 and d["pairs"][0]["labelers"] == ["ana", "bo"]


def _kappa(plan):
    return cohen_kappa_score([p[1] for p in plan], [p[3] for p in plan])


def test_week_of():
    assert ag.week_of("2026-12-07T11:00:00Z") == "2026-W50"
    assert ag.week_of("2027-01-01T00:00:00+00:00") == "2026-W53"


# ----------------------------------------------------------------------------- golden rows


@pytest.fixture
def golden(team):
    ws = team
    ws.settings.overlap = 0.0
    for i, verdict in enumerate(["pass", "fail", "pass", "pass", "fail", "pass", "pass", "fail"]):
        cid = labeled_candidate(ws, f"golden {i}", user="alice")
        if verdict == "fail":  # re-label as fail, signed
            rev.record_review(ws, cid, "alice", rev.latest_review(ws, cid).expected, verdict="fail", sign=True)
    gate.promote(ws, "alice")
    return ws


def _label_new_then_mix(ws, text):
    """A new candidate ``text`` labeled pass by ana; the control task mixed into her queue after it, if due."""
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": text}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "ana", "pass", cid)
    return oversight.mix_control(ws, "ana")


def test_control_items_are_mixed_in_at_the_rate_and_flag_a_drifting_labeler(golden):
    ws = golden
    ws.settings.control_rate = 0.5  # one control item every other task
    rows = oversight.golden_rows(ws)
    assert len(rows) == 8
    answers = []
    for _ in range(6):
        tid = _label_new_then_mix(ws, f"new {len(answers)}")
        assert tid is not None
        assert oversight.mix_control(ws, "ana") is None  # one at a time
        task = tasks.next_task(ws, "ana")
        assert (task.id, task.kind) == (tid, "control")
        assert tasks.next_task(ws, "bo", kinds=["control"]) is None  # ana's, not bo's
        known = rows[task.ref.rpartition("/")[0]]["review"]["verdict"]
        said = "fail" if known == "pass" else "pass"  # ana gets every control item wrong
        tasks.resolve_task(ws, task.id, "ana", "done", verdict=said)
        answers.append(said)
    r = ag.agreement_report(ws)
    ana = {la.labeler: la for la in r.labelers}["ana"]
    assert (ana.control.n, ana.control.agree, ana.flagged) == (6, 0, True)
    assert r.flagged == ["ana"]
    assert tray_health(ws).signal("human-agreement").rows == ["ana"]
    shown = [t.ref.rpartition("/")[0] for t in tasks.list_tasks(ws, kind="control")]
    assert len(set(shown)) == 6  # never the same row twice


def test_a_control_item_is_due_after_the_labels_since_the_last_one(golden):
    ws = golden
    ws.settings.control_rate = 0.25  # one control item after every 3 labels
    due = []
    for i in range(7):
        tid = _label_new_then_mix(ws, f"later {i}")
        due.append(tid is not None)
        if tid is not None:
            tasks.resolve_task(ws, tid, "ana", "done", verdict="pass")
    assert due == [False, False, True, False, False, True, False]  # after labels 3 and 6
    assert oversight.mix_control(ws, "bo") is None  # ana's labels are not bo's


def test_a_control_item_needs_a_verdict(golden):
    ws = golden
    ws.settings.control_rate = 1.0
    tid = oversight.mix_control(ws, "bo")
    with pytest.raises(tasks.TaskError, match="answer pass or fail"):
        tasks.resolve_task(ws, tid, "bo", "done")


def test_spotchecks_sample_golden_rows_and_count_disagreement(golden):
    ws = golden
    opened = oversight.open_spotchecks(ws, "alice", 5, seed=1)
    assert len(opened) == 5 and oversight.open_spotchecks(ws, "alice", 5, seed=1) != opened  # open ones left out
    with pytest.raises(Exception, match="a spot-check samples 1 row or more, got 0"):
        oversight.open_spotchecks(ws, "alice", 0)
    with pytest.raises(Exception, match="'ana' is a labeler"):
        oversight.open_spotchecks(ws, "ana", 2)
    rows = oversight.golden_rows(ws)
    for n, tid in enumerate(opened):
        ref = tasks.get_task(ws, tid).ref
        known = rows[ref]["review"]["verdict"]
        said = known if n else ("fail" if known == "pass" else "pass")  # the first one disagrees
        tasks.resolve_task(ws, tid, "alice", "done", verdict=said)
    r = ag.agreement_report(ws)
    assert (r.spot_checks.n, r.spot_checks.agree, r.spot_check_rate) == (5, 4, 0.2)
    sig = tray_health(ws).signal("spot-check")  # health reads the same spot-checks
    assert (sig.level, sig.detail) == ("red", {"rate": 0.2})


def test_a_guide_version_sends_the_rows_it_changes_back(golden):
    ws = golden
    some = sorted(oversight.golden_rows(ws))[:1]
    assert oversight.revalidate_affected(ws, "alice", "2", slices=["refunds"], dry_run=True) == sorted(
        oversight.golden_rows(ws)
    )
    assert tasks.list_tasks(ws, kind="revalidate") == []
    assert oversight.revalidate_affected(ws, "alice", "2", slices=["nope"]) == []
    with pytest.raises(Exception, match="guide v2: name the behaviour codes or slices it changes"):
        oversight.revalidate_affected(ws, "alice", "2")
    hit = oversight.revalidate_affected(ws, "alice", "2", slices=["refunds"])
    assert some[0] in hit
    assert {t.ref for t in tasks.list_tasks(ws, kind="revalidate")} == set(hit)
    assert tasks.list_tasks(ws, kind="revalidate")[0].reason == "guide v2 changes refunds"


# ----------------------------------------------------------------------------- a user leaves


def test_deactivating_a_user_hands_their_tasks_and_rows_to_the_heir(golden):
    ws = golden
    register(ws, "dee", "adjudicator")
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "a new one"}])
    tasks.open_label_tasks(ws, "alice")
    held = tasks.next_task(ws, "ana", kinds=["label"])
    assert held.ref == cid
    rows = sorted(oversight.golden_rows(ws))  # alice signed them: she owns them
    with pytest.raises(Exception, match="'ana' is a labeler; deactivating a user needs one of: admin"):
        oversight.deactivate_user(ws, "ana", "bo", heir="cy")
    with pytest.raises(Exception, match="owns 8 golden row.*'bo' is a labeler, name an adjudicator or admin"):
        register(ws, "root", "admin")
        oversight.deactivate_user(ws, "root", "alice", heir="bo")
    dry = oversight.deactivate_user(ws, "root", "ana", heir="dee", dry_run=True)
    assert (dry.tasks, dry.rows, dry.removed) == ([held.id], [], False)
    assert tasks.get_task(ws, held.id).assignee == "ana"
    done = oversight.deactivate_user(ws, "root", "ana", heir="dee")
    assert (done.tasks, done.removed) == ([held.id], True)
    assert tasks.get_task(ws, held.id).assignee == "dee"
    assert "ana" not in {u["name"] for u in ws.users()}
    gone = oversight.deactivate_user(ws, "root", "alice", heir="dee")
    assert gone.rows == rows
    reval = tasks.list_tasks(ws, kind="revalidate", status="open")
    assert sorted(t.ref for t in reval) == rows and {t.assignee for t in reval} == {"dee"}
    assert reval[0].reason == "owner alice deactivated; dee inherits the row"
    with pytest.raises(Exception, match="cannot deactivate themselves"):
        oversight.deactivate_user(ws, "root", "root", heir="dee")


def test_an_adjudicator_who_labeled_the_item_is_refused_and_it_goes_to_another(team):
    ws = team
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Can I pay in two parts?"}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "alice", "pass", cid)  # the admin labels, as a person who signs may
    _label(ws, "ana", "fail", cid)
    [adj] = tasks.list_tasks(ws, kind="adjudicate", status="open")
    assert adj.payload["labelers"] == ["alice", "ana"]
    assert tasks.next_task(ws, "alice", kinds=["adjudicate"]) is None  # the queue never offers it to a labeler
    with pytest.raises(tasks.OwnLabel) as refused:
        tasks.resolve_task(ws, adj.id, "alice", "done", verdict="pass", reason="mine is right")
    assert str(refused.value) == (
        f"task {adj.id}: alice labeled candidate {cid} and may not adjudicate it; no other adjudicator or admin "
        "is registered: add one (`evaltray user add NAME --role adjudicator`)"
    )
    register(ws, "dee", "adjudicator")
    with pytest.raises(tasks.OwnLabel, match=r"back in the queue for another adjudicator \(dee\)$"):
        tasks.resolve_task(ws, adj.id, "alice", "reject", reason="unlabelable")
    assert rev.latest_review(ws, cid).reviewer == "ana"  # nothing was decided
    taken = tasks.next_task(ws, "dee", kinds=["adjudicate"])
    assert taken is not None and (taken.id, taken.assignee) == (adj.id, "dee")
    tasks.resolve_task(ws, adj.id, "dee", "done", verdict="fail", reason="two parts are not offered")
    assert (rev.latest_review(ws, cid).reviewer, rev.latest_review(ws, cid).verdict) == ("dee", "fail")
    with ws.tx() as conn:
        recused = conn.execute(sa.text("SELECT actor FROM audit WHERE action = 'task.recuse'")).scalars().all()
    assert recused == ["alice", "alice"]


def test_an_adjudicator_holding_an_old_task_about_their_own_label_hands_it_back(team):
    ws = team
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Is there a student discount?"}])
    tasks.open_label_tasks(ws, "alice")
    _label(ws, "alice", "pass", cid)
    _label(ws, "bo", "fail", cid)
    [adj] = tasks.list_tasks(ws, kind="adjudicate", status="open")
    tasks_t = ws.t["tasks"]
    with ws.tx() as conn:  # a task opened before labelers were noted, and taken by the labeler
        old = {k: v for k, v in adj.payload.items() if k != "labelers"}
        conn.execute(
            tasks_t.update().where(tasks_t.c.id == int(adj.id)).values(payload=json.dumps(old), assignee="alice")
        )
    with pytest.raises(tasks.OwnLabel):
        tasks.resolve_task(ws, adj.id, "alice", "done", verdict="pass", reason="r")
    back = tasks.get_task(ws, adj.id)
    assert (back.assignee, back.status, back.payload["labelers"]) == (None, "open", ["alice", "bo"])
