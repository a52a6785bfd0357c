"""Suspected label errors from a calibrated judge's disagreements and from disagreeing neighbours."""

from __future__ import annotations

import orjson
import pytest

from evaltray.core.errors import EvaltrayError
from evaltray.evaluate import calibrate as cal
from evaltray.evaluate.label_errors import suspected_labels
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev


def _labelled(ws, text, code):
    cid = pool.add_manual(ws, "alice", "production", [{"role": "user", "content": text}])
    rev.record_review(
        ws, cid, "alice", rev.normalize_expected(ws, "alice", behavior_code=code), verdict="pass", sign=False
    )
    return cid


def test_a_label_its_neighbours_disagree_with_is_suspected(ws):
    same = [_labelled(ws, f"my headphones broke after {n} days, I want a refund", "OFFER_REFUND") for n in (3, 4, 5, 6)]
    odd = _labelled(ws, "my headphones broke after 7 days, I want a refund", "DENY")
    _labelled(ws, "what are your opening hours on sunday", "ANSWER_HOURS")
    found = suspected_labels(ws, k=4)
    assert [s.candidate_id for s in found] == [odd]
    assert found[0].score == 1.0 and found[0].reasons == [
        "4 of its 4 nearest reviewed inputs have behaviour 'OFFER_REFUND', not 'DENY'"
    ]
    assert odd not in same


def test_a_calibrated_judges_disagreements_are_suspects_weighted_by_its_agreement(ws, tmp_path):
    humans = [{"id": f"o{i}", "verdict": "pass" if i < 80 else "fail"} for i in range(120)]
    judged = [
        {"id": f"o{i}", "verdict": "fail" if i in (3, 90) else humans[i]["verdict"], "critique": "c"}
        for i in range(120)
    ]
    (tmp_path / "h.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in humans))
    (tmp_path / "j.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in judged))
    made = cal.calibrate(ws, human_file=tmp_path / "h.jsonl", judge_file=tmp_path / "j.jsonl", actor="alice")
    found = suspected_labels(ws, made.judge_hash)
    assert [s.candidate_id for s in found] == ["o3"]  # o90: human fail, judge fail — no disagreement
    assert found[0].score == pytest.approx(119 / 120)
    assert found[0].reasons == ["the calibrated judge (99% agreement) says fail, the reviewer said pass: c"]
    with pytest.raises(EvaltrayError, match="never calibrated"):
        suspected_labels(ws, "0" * 64)


def test_the_cli_lists_suspects(ws, monkeypatch):
    import json

    from tests.cli.runner import run as cli

    for n in (3, 4, 5):
        _labelled(ws, f"my parcel is {n} days late, where is it", "TRACK_PARCEL")
    odd = _labelled(ws, "my parcel is 6 days late, where is it", "OFFER_REFUND")
    monkeypatch.chdir(ws.root)
    data = json.loads(cli("label-errors", "--k", "3", "--json").stdout)
    assert [d["candidate_id"] for d in data] == [odd]
    assert "1 suspected label errors" in cli("label-errors", "--k", "3").stdout


def test_suspects_go_back_to_the_queue_a_golden_row_as_revalidation(ws, monkeypatch):
    import json

    from evaltray.evaluate.label_errors import send_to_review
    from evaltray.tray import gate, tasks
    from tests.cli.runner import run as cli

    for n in (3, 4, 5):
        _labelled(ws, f"my parcel is {n} days late, where is it", "TRACK_PARCEL")
    odd = _labelled(ws, "my parcel is 6 days late, where is it", "OFFER_REFUND")
    found = suspected_labels(ws, k=3)
    sent = send_to_review(ws, found, "alice")  # not promoted yet: a label task on the candidate
    assert tasks.get_task(ws, sent[odd]).kind == "label" and tasks.get_task(ws, sent[odd]).ref == odd
    assert rev.latest_review(ws, odd).expected["behavior_code"] == "OFFER_REFUND"  # never relabelled
    assert tasks.next_task(ws, "alice").id == sent[odd]  # not closed as reviewed: its review predates the task
    rev.sign_off(ws, [], "alice", every_unsigned=True)
    rev.record_review(  # promote needs a slice etc.: the helper's candidates lack them, so give them here
        ws,
        odd,
        "alice",
        rev.normalize_expected(ws, "alice", behavior_code="OFFER_REFUND"),
        verdict="pass",
        slice="parcels",
        difficulty="easy",
        case_type="typical",
        sign=True,
    )
    tasks.resolve_task(ws, sent[odd], "alice", "done")
    case_id = {p.candidate_id: p.case_id for p in gate.promote(ws, "alice").promoted}[odd]
    again = send_to_review(ws, [s for s in suspected_labels(ws, k=3) if s.candidate_id == odd], "alice")
    task = tasks.get_task(ws, again[odd])
    assert (task.kind, task.ref, task.priority) == ("revalidate", case_id, 1)
    assert (
        task.reason
        == "suspected label error: 3 of its 3 nearest reviewed inputs have behaviour 'TRACK_PARCEL', not 'OFFER_REFUND'"
    )
    assert send_to_review(ws, [type(found[0])("o3", 1.0, ["x"])], "alice") == {"o3": None}
    monkeypatch.chdir(ws.root)
    data = json.loads(cli("label-errors", "--k", "3", "--send", "--json").stdout)
    assert [(d["candidate_id"], d["task"]) for d in data] == [(odd, again[odd])]  # the same open task
    assert "sent 1 to the review queue" in cli("label-errors", "--k", "3", "--send").stdout
