"""Rule scorers on hand-made cases and answers."""

from __future__ import annotations

import pytest

from evaltray.evaluate.scorers import SCORERS, Score, ScoreError, normalize_text


def _case(reference=None, assertions=(), **expected):
    return {"id": "c1", "expected": {"reference": reference, "assertions": list(assertions), **expected}}


def _score(name, case, output=None, tool_calls=()):
    return SCORERS.get(name)(case, {"output": output, "tool_calls": list(tool_calls), "status": "ok"})


def test_exact_and_normalized():
    case = _case("Refunds take 5 days.")
    assert _score("exact", case, " Refunds take 5 days.\n") == Score("exact", True)
    assert _score("exact", case, "refunds take 5 days") == Score("exact", False, "differs from the reference")
    assert _score("normalized", case, "REFUNDS take  5 days!").passed is True
    assert _score("exact", _case(None, ["contains: x"]), "x") == Score("exact", None, "no reference answer")
    assert normalize_text("Ｒｅｆｕｎｄ,  please!") == "refund please"


def test_contains_and_not_contains():
    case = _case(None, ["contains: 30 days", "not-contains: guarantee", "mentions the window"])
    assert _score("contains", case, "You have 30 DAYS.").passed is True
    assert _score("contains", case, "30 days, guaranteed") == Score(
        "contains", True
    )  # 'guaranteed' is not 'guarantee'?
    got = _score("contains", case, "We guarantee it")
    assert got == Score("contains", False, "missing '30 days'; contains 'guarantee'")
    assert _score("contains", _case("ref"), "x").passed is None


def test_regex_and_a_bad_pattern():
    case = _case(None, [r"regex: \bRMA-\d{6}\b"])
    assert _score("regex", case, "Your RMA-123456 is ready").passed is True
    assert _score("regex", case, "Your RMA-12345 is ready") == Score("regex", False, r"no match for '\\bRMA-\\d{6}\\b'")
    with pytest.raises(ScoreError, match=r"^case c1: regex '\(' does not compile"):
        _score("regex", _case(None, ["regex: ("]), "x")


def test_json_schema():
    case = _case(
        None,
        ['json-schema: {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}'],
    )
    assert _score("json_schema", case, '{"order_id": "W1"}').passed is True
    assert _score("json_schema", case, '{"order_id": 7}') == Score(
        "json_schema", False, "order_id: 7 is not of type 'string'"
    )
    assert _score("json_schema", case, "sure!") == Score("json_schema", False, "the answer is not JSON")


def test_tool_calls_by_name_arguments_and_order():
    case = _case(None, tool_calls=[{"name": "find_user", "arguments": {"email": "a@b.c"}}, {"name": "get_order"}])
    made = [{"name": "get_order", "arguments": "{}"}, {"name": "find_user", "arguments": '{"email": "a@b.c"}'}]
    assert _score("tool_calls", case, None, made).passed is True  # any order by default
    ordered = _case(None, tool_calls=case["expected"]["tool_calls"], tool_calls_ordered=True)
    assert _score("tool_calls", ordered, None, made) == Score("tool_calls", False, "not called as expected: get_order")
    wrong_args = [{"name": "find_user", "arguments": {"email": "x@y.z"}}, {"name": "get_order", "arguments": {}}]
    assert _score("tool_calls", case, None, wrong_args) == Score(
        "tool_calls", False, "not called as expected: find_user"
    )
    assert (
        _score("tool_calls", _case(None, ["tool: cancel_order"]), None, made).reason
        == "not called as expected: cancel_order"
    )


def test_numeric_compares_the_last_number():
    case = _case("The total is 1,234.50 dollars")
    assert _score("numeric", case, "That comes to $1234.5").passed is True
    assert _score("numeric", case, "That comes to $1235") == Score("numeric", False, "1235 is not 1234.5")
    assert _score("numeric", case, "no idea").reason == "no number in the answer"
    loose = _case("about 3.14", ["tolerance: 0.01"])
    assert (_score("numeric", loose, "3.141").passed, _score("numeric", loose, "3.2").passed) == (True, False)


def test_an_unknown_scorer_names_the_known_ones():
    with pytest.raises(
        ScoreError,
        match=r"^unknown scorer 'bleu': one of contains, exact, json_schema, judge, length, normalized, numeric, regex, tool_calls$",
    ):
        SCORERS.get("bleu")


def test_tool_calls_arguments_are_a_subset_and_each_call_counts_once():
    case = _case(None, tool_calls=[{"name": "get_order", "arguments": {"order_id": "W1"}}, {"name": "get_order"}])
    one = [{"name": "get_order", "arguments": '{"order_id": "W1", "verbose": true}'}]
    assert _score("tool_calls", case, None, one) == Score("tool_calls", False, "not called as expected: get_order")
    two = [*one, {"name": "get_order", "arguments": {"order_id": "W9"}}]
    assert _score("tool_calls", case, None, two).passed is True  # extra arguments are allowed
    none_given = _case(None, tool_calls=[{"name": "get_order", "arguments": None}])
    assert _score("tool_calls", none_given, None, [{"name": "get_order", "arguments": "not json"}]).passed is True
    assert _score("tool_calls", none_given, None, []).passed is False


def test_tau2_demo_cases_expect_the_benchmarks_actions():
    """The bundled τ²-bench file's first task: five actions, any order, every argument as the authors wrote it."""
    import json
    from importlib import resources

    from evaltray.demo import _expected_call, _tau2_label

    doc = json.loads((resources.files("evaltray") / "data/demo/tau2-bench-retail-gpt-4.1.json").read_text())
    task = doc["tasks"][0]
    label = _tau2_label({"evaluation_criteria": task["evaluation_criteria"], "reward": 1.0})
    assert [c["name"] for c in label["tool_calls"]] == [
        "find_user_id_by_name_zip",
        "get_user_details",
        "get_order_details",
        "get_product_details",
        "return_delivered_order_items",
    ]
    assert label["tool_calls"][4]["arguments"] == {
        "order_id": "#W6390527",
        "item_ids": ["8538875209"],
        "payment_method_id": "paypal_7644869",
    }
    action = {"name": "cancel", "arguments": {"order_id": "#W1", "reason": "x"}, "compare_args": ["order_id"]}
    assert _expected_call(action) == {"name": "cancel", "arguments": {"order_id": "#W1"}}
    case = {"id": "t", "expected": {"tool_calls": label["tool_calls"]}}
    made = [{"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in reversed(label["tool_calls"])]
    assert _score("tool_calls", case, None, made).passed is True
    assert _score("tool_calls", case, None, made[1:]).reason == "not called as expected: return_delivered_order_items"


def test_length_counts_words_and_characters():
    case = _case(None, ["max-words: 5", "max-chars: 40"])
    assert _score("length", case, "Refunds take five days, sorry!") == Score("length", True)
    assert _score("length", case, "Refunds take five business days, sorry!") == Score(
        "length", False, "6 words, more than 5"
    )
    assert _score("length", case, "Supercalifragilistic expialidocious answer") == Score(
        "length", False, "42 characters, more than 40"
    )
    assert _score("length", _case("ref"), "x").passed is None
    with pytest.raises(ScoreError, match=r"^case c1: max-words: 'fifty' is not a whole number$"):
        _score("length", _case(None, ["max-words: fifty"]), "x")
