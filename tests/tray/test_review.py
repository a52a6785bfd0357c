"""Reviews: the blind rule kept by the review session, sign-offs, and lists a person types."""

from __future__ import annotations

import pytest

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import loads
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.tray.review import BlindReviewError, ReviewSession


def _candidate(ws: Workspace, text: str, output: str | None = "We refund in 5 days.") -> str:
    return pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": text}], recorded_output=output)


def test_blind_session_hides_the_output_until_the_label_is_written(ws):
    cid = _candidate(ws, "How long do refunds take?")
    session = ReviewSession(ws, "alice")
    assert session.blind and session.signs and [c.id for c in session.candidates] == [cid]
    (step,) = session
    assert step.candidate.id == cid and step.candidate.recorded_output is None  # not even through the candidate
    with pytest.raises(BlindReviewError) as exc:
        step.recorded_output()
    assert str(exc.value) == (
        f"candidate {cid}: write the expected behaviour before the recorded output is shown (blind review)"
    )
    with pytest.raises(BlindReviewError, match="write the expected behaviour before recording the review$"):
        step.record(verdict="pass")
    step.write_expected("Refunds take 5 business days.")
    assert step.recorded_output() == "We refund in 5 days."
    review = step.record(verdict="pass", slice="refunds", difficulty="easy", case_type="typical")
    assert review.expected_first is True and review.signed_by == "alice" and review.slice == "refunds"
    assert rev.latest_review(ws, cid).expected_first is True


def test_output_first_is_allowed_when_asked_and_recorded_as_not_blind(ws):
    cid = _candidate(ws, "Where is my parcel?", output="It ships Friday.")
    (step,) = ReviewSession(ws, "alice", [cid], show_output_first=True, sign=False)
    assert step.recorded_output() == "It ships Friday."
    step.write_expected(assertions=["gives the shipping day"])
    review = step.record()
    assert review.expected_first is False and review.signed_by is None


def test_the_workspace_setting_can_turn_the_rule_off(ws):
    ws.settings.write_expected_first = False
    cid = _candidate(ws, "Can I pay by card?")
    session = ReviewSession(ws, "alice", [cid])
    assert not session.blind
    (step,) = session
    step.write_expected("Yes.")  # written first all the same: the review still counts as blind
    assert step.record().expected_first is True


def test_a_labeler_records_unsigned_and_the_label_is_checked(ws):
    ws.add_user("bob", "labeler", actor="alice")
    cid = _candidate(ws, "Do you ship abroad?")
    session = ReviewSession(ws, "bob", [cid])
    assert not session.signs
    (step,) = session
    with pytest.raises(EvaltrayError, match="^the expected behaviour is empty"):
        step.write_expected("  ", "", ["", " "])
    assert step.expected is None


def test_review_all_labels_every_candidate_without_showing_an_output(ws):
    ids = {_candidate(ws, f"Refund for order {i}?") for i in range(3)}
    queued = [c.id for c in rev.queue(ws)]
    assert set(queued) == ids
    reviews = ReviewSession(ws, "alice", limit=2).review_all(
        "Refunds take 5 days.", assertions=["mentions 5 days"], verdict="fail", failure_tags=["vague"]
    )
    assert [r.candidate_id for r in reviews] == queued[:2]  # the queue in its order, at most ``limit``
    assert all(r.expected_first and r.signed_by == "alice" and r.failure_tags == ["vague"] for r in reviews)
    assert reviews[0].expected["assertions"] == ["mentions 5 days"]
    assert [c.id for c in rev.queue(ws)] == queued[2:]


def test_sign_off_every_unsigned_review_of_a_set(ws):
    ws.add_user("bob", "labeler", actor="alice")
    a, b, c = (_candidate(ws, f"question {i}?") for i in range(3))
    for cid in (a, b, c):
        rev.record_review(ws, cid, "bob", rev.normalize_expected(ws, "bob", "an answer"))
    pool.reject(ws, c, "duplicate", "alice")
    assert rev.unsigned(ws) == [a, b]  # the rejected one is left alone
    signed = rev.sign_off(ws, [], "alice", every_unsigned=True)
    assert signed == [rev.latest_review(ws, a).id, rev.latest_review(ws, b).id]
    assert rev.unsigned(ws) == []
    assert rev.sign_off(ws, [], "alice", every_unsigned=True) == []  # nothing awaits: not an error
    assert rev.sign_off(ws, [], "alice") == []  # nothing named, nothing asked for: nothing to do


def test_unsigned_follows_each_candidates_latest_review(ws):
    ws.add_user("bob", "labeler", actor="alice")
    resigned, relabeled, fresh, never = (_candidate(ws, f"question {i}?") for i in range(4))
    for cid in (resigned, relabeled, fresh):
        rev.record_review(ws, cid, "bob", rev.normalize_expected(ws, "bob", "an answer"))
    rev.sign_off(ws, [resigned, relabeled], "alice")
    rev.record_review(ws, relabeled, "bob", rev.normalize_expected(ws, "bob", "a better answer"))  # newer, unsigned
    rev.record_review(ws, resigned, "alice", rev.normalize_expected(ws, "alice", "ok"), sign=True)  # newer, signed
    # in the pool's order; a candidate never reviewed awaits no sign-off
    assert rev.unsigned(ws) == [c.id for c in pool.list_candidates(ws) if c.id in (relabeled, fresh)]
    assert len(rev.unsigned(ws)) == 2 and never not in rev.unsigned(ws)


@pytest.mark.parametrize(
    ("typed", "items"),
    [
        (None, []),
        ("", []),
        ("  ", []),
        ("vague; wrong  ;; tone", ["vague", "wrong", "tone"]),
        ('["a; b", "c"]', ["a; b", "c"]),
        (" single ", ["single"]),
    ],
)
def test_split_list(typed, items):
    assert rev.split_list(typed) == items


def test_labels_import_refuses_a_file_that_is_not_text(ws, tmp_path):
    cid = _candidate(ws, "Refund?")
    path = tmp_path / "labels.csv"
    path.write_bytes(b"candidate_id,expected\n" + cid.encode() + b",fine\n\xff\xfe,x\n")
    with pytest.raises(EvaltrayError) as exc:
        rev.import_labels(ws, path, "alice")
    assert (
        str(exc.value) == f"{path}: not UTF-8 text (invalid start byte at byte {len(cid) + 28}); save it as UTF-8 CSV"
    )
    assert rev.latest_review(ws, cid) is None  # refused before the good row was stored


def test_labels_import_records_the_importer_and_never_signs_off(ws, tmp_path):
    """A file saying ``labeled_by=carol, signoff=yes`` made adjudicator sign-offs for an unregistered
    carol, and the gate promoted on them (failed before)."""
    from evaltray.tray import gate

    ws.add_user("bob", "labeler", actor="alice")
    cid = _candidate(ws, "Refund?")
    forged = tmp_path / "forged.csv"
    forged.write_text(
        f"candidate_id,expected,verdict,labeled_by,signoff,slice,difficulty,case_type\n"
        f"{cid},Five days.,pass,carol,yes,refunds,easy,typical\n"
    )
    with pytest.raises(EvaltrayError) as exc:
        rev.import_labels(ws, forged, "bob")
    assert str(exc.value) == (
        f"{forged}:2: column 'signoff' asks for a sign-off; imported labels are never signed off: "
        "drop the column and have an adjudicator run `evaltray signoff`"
    )
    assert rev.latest_review(ws, cid) is None
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"candidate_id,expected,verdict,labeled_by,slice,difficulty,case_type\n"
        f"{cid},Five days.,pass,carol,refunds,easy,typical\n"
    )
    (rid,) = rev.import_labels(ws, labels, "bob").imported
    review = rev.latest_review(ws, cid)
    assert (review.id, review.reviewer, review.signed_by) == (rid, "bob", None)
    report = gate.promote(ws, "alice")
    assert report.promoted == [] and report.blocked and report.blocked[0][0] == cid
    with ws.tx() as conn:
        row = conn.execute(ws.t["audit"].select().where(ws.t["audit"].c.action == "review.add")).one()
    assert (row.actor, row.object_id) == ("bob", cid)
    assert loads(row.detail) == {
        "review_id": rid,
        "verdict": "pass",
        "signed": False,
        "via": "labels.import",
        "file": "labels.csv",
        "line": 2,
        "claimed_by": "carol",
    }


def test_labels_import_needs_a_registered_labeler(ws, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("candidate_id,expected\nnope,x\n")
    with pytest.raises(EvaltrayError) as exc:
        rev.import_labels(ws, labels, "mallory")
    assert str(exc.value).startswith("user 'mallory' is not registered")
    ws.add_user("vera", "viewer", actor="alice")
    with pytest.raises(EvaltrayError) as exc:
        rev.import_labels(ws, labels, "vera", dry_run=True)
    assert str(exc.value) == "user 'vera' is a viewer; importing labels needs one of: adjudicator, admin, labeler"


def test_the_queue_place_agrees_with_reading_the_whole_queue(ws):
    made = [pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": f"question {n}"}]) for n in range(7)]
    cands = ws.t["candidates"]
    with ws.tx() as conn:  # one second apart, in reverse id order: the queue goes by time first
        for n, cid in enumerate(sorted(made, reverse=True)):
            conn.execute(cands.update().where(cands.c.id == cid).values(created_at=f"2026-01-01T00:00:0{n}Z"))
    order = sorted(made, reverse=True)
    exp = rev.normalize_expected(ws, "alice", reference="An answer.")
    rev.record_review(ws, order[2], "alice", exp, sign=False)
    rev.record_review(ws, order[0], "alice", exp, sign=False)
    pool.reject(ws, order[5], "duplicate", "alice")
    waiting = [c.id for c in rev.queue(ws)]
    assert waiting == [order[1], order[3], order[4], order[6]]
    assert [c.id for c in rev.queue(ws, limit=2, offset=1)] == [order[3], order[4]]
    assert rev.queue_length(ws) == 4
    for at, cid in enumerate(waiting):
        place = rev.queue_place(ws, cid)
        prev_id = waiting[at - 1] if at else None
        next_id = waiting[at + 1] if at + 1 < len(waiting) else None
        assert (place.position, place.total, place.prev_id, place.next_id) == (at + 1, 4, prev_id, next_id)
    assert rev.queue_place(ws, order[2]) == rev.QueuePlace(None, 4, None, order[1])  # reviewed: not in it
    # counted up to a cap: cap + 1 reads "over the cap", the neighbours stay exact
    assert rev.queue_place(ws, waiting[3], cap=2) == rev.QueuePlace(3, 3, waiting[2], None)
    assert rev.queue_place(ws, waiting[1], cap=2) == rev.QueuePlace(2, 3, waiting[0], waiting[2])
    assert rev.queue_length(ws, cap=2) == 3 and rev.queue_length(ws, cap=10) == 4
