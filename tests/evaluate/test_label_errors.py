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
