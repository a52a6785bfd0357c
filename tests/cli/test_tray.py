"""``evaltray cases …``, ``promote`` and ``tray …``: one call each, and clear errors."""

from __future__ import annotations

import json

import pytest

from .runner import ADD_PAYPAL_CASE, run


def test_cases_add_show_stats_and_validate(shop):
    added = json.loads(run(*ADD_PAYPAL_CASE, "--json").stdout)
    assert added["labeled"] and added["signed"]
    (shop / "input.json").write_text(
        json.dumps({"messages": [{"role": "user", "content": "Ship to Oslo?"}], "context": ["We ship in the EU."]})
    )
    r = run("cases", "add", "--source", "redteam", "--input-file", "input.json", "--feature", "shipping")
    assert r.stdout.startswith("added candidate cand-") and r.stdout.endswith(
        "; the gate blocks it until it has: difficulty, case type, expected behaviour, sign-off\n"
    )
    (promoted,) = json.loads(run("promote", "--json").stdout)["promoted"]
    case = json.loads(run("cases", "show", promoted["case_id"]).stdout)
    assert case["expected"]["reference"] == "Yes." and case["slice"] == "payments"
    assert json.loads(run("tray", "stats", "--json").stdout) == {
        "slice": {"payments": 1},
        "source": {"sme": 1},
        "difficulty": {"easy": 1},
        "case_type": {"typical": 1},
        "total": 1,
        "under_revalidation": [],
    }
    assert run("tray", "validate", "--set", "edge").stdout == "sets/edge/cases.jsonl: ok\n"
    relabeled = json.loads(
        run("cases", "relabel", promoted["case_id"], "--expected", "Yes, since May.", "--json").stdout
    )
    assert relabeled["case_id"] == promoted["case_id"] and relabeled["signed"]


def test_cases_add_says_what_the_gate_needs_when_it_is_missing(shop):
    r = run(
        "cases",
        "add",
        "--source",
        "sme",
        "--input",
        "Refund?",
        "--expected",
        "Yes.",
        "--difficulty",
        "easy",
        "--case-type",
        "edge",
    )  # no slice, no feature to give one
    cid = r.stdout.split()[2]
    assert r.stdout == f"added candidate {cid} (labeled, signed); the gate blocks it until it has: slice\n"
    assert json.loads(run("promote", "--json").stdout)["blocked"] == [
        {"candidate_id": cid, "problems": ["slice: missing"]}
    ]
    r = run(
        "cases",
        "add",
        "--source",
        "sme",
        "--input",
        "Refund now?",
        "--expected",
        "Yes.",
        "--slice",
        "refunds",
        "--difficulty",
        "easy",
        "--case-type",
        "edge",
    )
    cid = r.stdout.split()[2]
    assert r.stdout == f"added candidate {cid} (labeled, signed); `evaltray promote` moves it into the tray\n"
    assert [p["candidate_id"] for p in json.loads(run("promote", "--json").stdout)["promoted"]] == [cid]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not valid JSON (unexpected character, expected a string key: line 1 column 2 (char 1))"),
        ("[1, 2]", "`messages` must be a list of objects with a role and content"),
        ("5", "a case input is a JSON object or a list of messages, not int"),
        ('{"tools": []}', "a case input needs `messages` (a list) or `input` (the user message)"),
    ],
)
def test_cases_add_refuses_a_bad_input_file(shop, content, message):
    (shop / "input.json").write_text(content)
    r = run("cases", "add", "--source", "sme", "--input-file", "input.json", ok=False)
    assert (r.exit_code, r.stderr) == (1, f"Error: input.json: {message}\n")


def test_case_commands_name_what_is_missing(shop):
    for args, message in [
        (
            ("cases", "add", "--source", "sme"),
            "give the case input with --input TEXT or --input-file FILE (JSON: messages, tools, context)",
        ),
        (("cases", "show", "c-nope"), "no case 'c-nope' in set 'main'"),
        (("cases", "relabel", "c-nope", "--expected", "x"), "no active case 'c-nope'"),
        (("cases", "supersede", "c-nope", "--input", "x"), "no active case 'c-nope'"),
        (("cases", "retire", "c-nope", "--reason", "x"), "no case 'c-nope'"),
        (("cases", "list", "--set", "nope"), "set 'nope' is not in this workspace (sets: main, edge)"),
        (("tray", "stats", "--set", "nope"), "set 'nope' is not in this workspace (sets: main, edge)"),
        (("tray", "validate", "--set", "nope"), "set 'nope' is not in this workspace (sets: main, edge)"),
    ]:
        r = run(*args, ok=False)
        assert (r.exit_code, r.stderr) == (1, f"Error: {message}\n"), args


def test_rows_under_revalidation_are_counted_apart_in_stats_coverage_and_release(shop):
    run(*ADD_PAYPAL_CASE)
    (promoted,) = json.loads(run("promote", "--json").stdout)["promoted"]
    cid = promoted["case_id"]
    run("tasks", "open", "revalidate", cid, "--reason", "policy changed")
    assert json.loads(run("tray", "stats", "--json").stdout)["under_revalidation"] == [cid]
    assert run("tray", "stats").stdout.startswith("1 cases (1 under re-validation: candidates until re-signed)\n")
    assert json.loads(run("tray", "stats", "--set", "edge", "--json").stdout)["under_revalidation"] == []
    run("plan", "init")
    assert json.loads(run("coverage", "--json").stdout)["under_revalidation"] == [cid]
    assert f"1 filled case(s) under re-validation, not re-signed yet: {cid}\n" in run("coverage").stdout
    made = json.loads(run("release", "create", "1.0.0", "--json").stdout)
    assert [w for w in made["warnings"] if "re-validation" in w] == [
        f"main: 1 row(s) under re-validation, not re-signed yet, go out as last signed: {cid} "
        "(`evaltray tasks list --kind revalidate --status open`)"
    ]
