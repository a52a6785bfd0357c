"""User feedback mapped to a score: a request's own field, and an observability tool's scores."""

from __future__ import annotations

from evaltray.ingest.feedback import feedback_score, feedback_value, is_feedback_name


def test_a_requests_own_feedback_field() -> None:
    assert [feedback_score(v) for v in (True, False, " Thumbs_Up ", "👎", "0", "+1", "maybe")] == [
        1.0,
        -1.0,
        1.0,
        -1.0,
        -1.0,
        1.0,
        None,
    ]
    assert feedback_score({"score": 0.5}) == 0.5
    assert feedback_score({"rating": "up"}) == 1.0
    assert feedback_score(3) == 3.0  # a number stays as it is
    assert feedback_score(None) is None


def test_scores_map_onto_minus_one_to_one() -> None:
    assert [feedback_value(v) for v in (True, "helpful", "dislike", 1, 0, 0.75, 5, 2, -0.5, 7, "n/a")] == [
        1.0,
        1.0,
        -1.0,
        1.0,
        -1.0,
        0.5,
        1.0,
        -0.5,
        -0.5,
        None,
        None,
    ]  # 0..1 linearly, 1..5 stars linearly
    assert feedback_value("0.25") == -0.5  # a number as text
    assert [is_feedback_name(n) for n in ("user-feedback", "Thumbs", "csat", "correctness", 3)] == [
        True,
        True,
        True,
        False,
        False,
    ]
