"""User feedback as the trace store's ``feedback_score``: thumbs, booleans, words and numbers as sources record them."""

from __future__ import annotations

import re
from typing import Any

from ._common import as_float

_FEEDBACK_NAME = re.compile(r"feedback|thumb|rating|user[-_ ]?score|satisfaction|csat", re.I)
_THUMBS_UP = frozenset(("up", "thumbs_up", "👍", "positive", "good", "1", "+1"))
_THUMBS_DOWN = frozenset(("down", "thumbs_down", "👎", "negative", "bad", "-1", "0"))
_POSITIVE = frozenset(
    ("up", "thumbs_up", "thumbsup", "thumbs-up", "👍", "positive", "good", "yes", "true", "helpful", "like")
)
_NEGATIVE = frozenset(
    ("down", "thumbs_down", "thumbsdown", "thumbs-down", "👎", "negative", "bad", "no", "false", "unhelpful", "dislike")
)


def feedback_score(value: Any) -> float | None:
    """A logged request's own feedback field: booleans and thumbs words (or ``"1"``/``"0"``) to ±1, an object
    by its ``score``/``value``/``rating``, a number as it is; anything else None."""
    thumb = _thumb(value, _THUMBS_UP, _THUMBS_DOWN)
    if thumb is not None or isinstance(value, str):
        return thumb
    if isinstance(value, dict):
        return feedback_score(value.get("score", value.get("value", value.get("rating"))))
    return as_float(value)


def is_feedback_name(name: Any) -> bool:
    """Whether a score/feedback key names a user's judgement (``user-feedback``, ``thumbs``, ``rating``, …)."""
    return isinstance(name, str) and bool(_FEEDBACK_NAME.search(name))


def feedback_value(value: Any) -> float | None:
    """A score an observability tool keeps, on [-1, 1]: booleans and thumbs words to ±1, 0..1 (thumbs 1/0)
    linearly, 1..5 stars linearly, -1..0 kept; anything else None."""
    thumb = _thumb(value, _POSITIVE, _NEGATIVE)
    if thumb is not None:
        return thumb
    num = as_float(value)
    if num is None:
        return None
    if -1 <= num < 0:
        return num
    if 0 <= num <= 1:
        return 2 * num - 1
    if 1 < num <= 5:
        return (num - 3) / 2
    return None


def _thumb(value: Any, up: frozenset[str], down: frozenset[str]) -> float | None:
    """±1 for a boolean, or for a word (any case and spacing) in ``up`` or ``down``; else None."""
    if isinstance(value, bool):
        return 1.0 if value else -1.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in up:
            return 1.0
        if word in down:
            return -1.0
    return None
