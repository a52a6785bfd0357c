"""``evaltray stats``: sizes from the command line, no workspace needed."""

from __future__ import annotations

import json

from .runner import release_of_reviewed, run


def test_stats_size_prints_unpaired_and_paired_sizes():
    assert run("stats", "size", "--baseline", "0.8", "--mde", "0.05").stdout == (
        "to detect a 5-point change from 80% (alpha 0.05, power 0.8):\n"
        "  two independent runs:      1,092 cases\n"
        "  the same cases, paired:    155 cases (discordance 0.05)\n"
        "  1,092 cases: a confident model swap (unpaired comparisons need 500–1,000)\n"
    )
    data = json.loads(
        run(
            "stats", "size", "--baseline", "0.8", "--mde", "0.05", "--cluster-size", "5", "--icc", "0.25", "--json"
        ).stdout
    )
    assert (data["unpaired"], data["paired"], data["design_effect"]) == (2184, 310, 2.0)


def test_stats_size_refuses_impossible_rates_in_one_line():
    r = run("stats", "size", "--baseline", "0.8", "--mde", "2", ok=False)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "--mde" in r.stderr
    r = run("stats", "size", "--baseline", "0.03", "--mde", "0.5", "--discordance", "0.2", ok=False)
    assert (
        r.exit_code == 1
        and r.stderr
        == "Error: discordance must lie in [mde, 1] (a change of mde needs that many differing cases), got 0.2\n"
    )


def test_run_on_a_release_against_a_stub_endpoint(shop):
    from evaltray.evaluate.stub import StubServer

    release_of_reviewed(4, "an answer")
    with StubServer() as stub:
        r = run("run", "1.0.0", "--target", "openai:gpt-4o-mini", "--base-url", stub.base_url)
        again = json.loads(
            run("run", "1.0.0", "--target", "openai:gpt-4o-mini", "--base-url", stub.base_url, "--json").stdout
        )
    assert r.stderr.startswith("about to send up to 4 requests, ~")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("run r-") and " of openai:gpt-4o-mini on release 1.0.0 (" in lines[0]
    assert (
        lines[1]
        == "  4 cases × 1 trials: 4 sent, 0 from the cache, 0 already done, 0 errors, " + lines[1].split("errors, ")[1]
    )
    assert (again["sent"], again["resumed"], again["run_id"]) == (0, 4, lines[0].split()[1])
    assert stub.requests.total() == 4


def test_run_on_a_file_is_unreleased_and_names_bad_lines(shop, tmp_path):
    cases = tmp_path / "quick.jsonl"
    cases.write_text('{"id": "a", "input": "hi"}\n{"id": "b"}\n')
    r = run("run", str(cases), "--target", "replay")
    assert r.stderr.splitlines()[0] == "warning: quick.jsonl:2: a case is an object with an input"
    assert "(unreleased)" in r.stdout.splitlines()[0]
    assert "  error × 1: the case has no recorded output to replay" in r.stdout.splitlines()
    r = run("run", "9.9.9", "--target", "replay", ok=False)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1


def test_the_cli_runs_scores_and_reports_a_release(shop, tmp_path):
    release_of_reviewed(3, "REPLAYED")
    run_id = json.loads(run("run", "1.0.0", "--target", "replay", "--json").stdout)["run_id"]
    scored = json.loads(run("score", run_id, "--scorers", "exact,contains", "--json").stdout)
    assert (scored["answers"], scored["failed"], scored["passed"]) == (
        3,
        3,
        0,
    )  # the recorded answers are not "REPLAYED"
    text = run("report", run_id).stdout
    assert "replay on release 1.0.0 (" in text and "0.0%" in text and "3 scored cases: fewer than 30 cases" in text
    data = json.loads(run("report", run_id, "--json").stdout)
    assert data["release"] == "1.0.0" and len(data["release_hash"]) == 64
    r = run("report", "r-000000000000", ok=False)
    assert r.stderr == "Error: no run 'r-000000000000' in this workspace (runs/)\n"


def test_the_report_weights_slices_by_production_traffic(shop, tmp_path, monkeypatch):
    (tmp_path / "upbot.py").write_text("def answer(inp):\n    return inp['messages'][-1]['content'].upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = tmp_path / "cases.jsonl"
    rows = [{"id": f"r{i}", "input": f"r{i}", "slice": "refunds", "expected": {"reference": f"R{i}"}} for i in range(3)]
    rows.append({"id": "s0", "input": "s0", "slice": "shipping", "expected": {"reference": "nope"}})
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_id = json.loads(run("run", str(cases), "--target", "python:upbot:answer", "--json").stdout)["run_id"]
    run("score", run_id, "--scorers", "exact")
    data = json.loads(run("report", run_id, "--json").stdout)
    assert data["overall"]["pass_rate"] == 0.75  # three of four cases
    # the shop's traffic is half refunds, half shipping: 0.5 * 3/3 + 0.5 * 0/1
    assert data["traffic_weighted"] == {"pass_rate": 0.5, "weights": {"refunds": 0.5, "shipping": 0.5}}


def test_screen_finds_a_rare_slice_with_a_stub_model_or_a_pattern(shop):
    from evaltray.evaluate.stub import StubServer

    def yes_for_seven(body):  # a stub model: yes for the conversation that mentions question 7
        return "Yes." if "question 7?" in body["messages"][-1]["content"] else "no"

    with StubServer(answer=yes_for_seven) as stub:
        data = json.loads(
            run("screen", "--question", "is it about 7?", "--model", "m", "--base-url", stub.base_url, "--json").stdout
        )
    assert (data["screened"], data["matched"], data["unanswered"]) == (10, ["t7"], {})
    r = run("screen", "--question", "refunds?", "--pattern", r"question [13]\?", "--add")
    assert r.stdout.splitlines()[0] == "2 of 10 traces answer yes to 'refunds?'; 2 added to the candidate pool"
    r = run("screen", "--question", "x", ok=False)
    assert r.stderr == "Error: screen with an LLM (--model) or a regular expression (--pattern), one of them\n"


def test_aa_runs_the_target_twice_and_prices_both_runs_first(shop, tmp_path):
    from evaltray.evaluate.stub import StubServer

    release_of_reviewed(4, "an answer")
    prices = tmp_path / "prices.yaml"
    prices.write_text("stub-bot: [1000, 0]\n")
    with StubServer() as stub:
        r = run(
            "aa", "1.0.0", "--target", "openai:stub-bot", "--base-url", stub.base_url, "--scorers", "exact",
            "--prices", str(prices),
        )  # fmt: skip
    assert stub.requests.total() == 8  # two runs, nothing from the cache
    tokens = int(r.stderr.split("~")[1].split()[0].replace(",", ""))
    assert r.stderr.splitlines()[0] == (
        f"about to send up to 8 requests, ~{tokens:,} input and ~2,400 output tokens: ${tokens * 1000 / 1e6:,.4f}"
    )
    lines = r.stdout.splitlines()
    assert lines[0].startswith("A/A of openai:stub-bot: runs r-") and lines[0].endswith(
        " on 4 cases: 0.0% vs 0.0% (+0.0 points, 95% +0.0 to +0.0; McNemar p 1)"
    )
    assert lines[1:] == [
        "  0 cases changed verdict between the runs",
        "  warning: only 4 cases: an A/A check this small sees only large instabilities",
        "A/A: pass (no significant difference)",
    ]


def test_the_cli_suggests_and_accepts_assertions(shop, tmp_path):
    from evaltray.evaluate.stub import StubServer
    from tests.evaluate.test_assertions import _outputs, _prompt_repo, stub_judge

    prompt, outputs = _prompt_repo(tmp_path), _outputs(tmp_path)
    judge_file = tmp_path / "judge.yaml"
    with StubServer(answer=stub_judge) as stub:
        judge_file.write_text(f"name: stub\nmodel: stub\nbase_url: {stub.base_url}\n")
        r = run("assertions", "suggest", "--git", str(prompt), "--outputs", str(outputs), "--judge", str(judge_file))
        data = json.loads(
            run(
                "assertions",
                "suggest",
                "--git",
                str(prompt),
                "--outputs",
                str(outputs),
                "--judge",
                str(judge_file),
                "--json",
            ).stdout
        )
    lines = r.stdout.splitlines()
    assert "picked 3: catch 3 of 4 failing outputs (75.0%), fail 1 of 10 passing (10.0%; budget 10%)" in lines
    assert "  tag promises: 0 of 1 caught" in lines
    assert lines[-1] == f"accept: evaltray assertions accept {' '.join(data['selected'])} --slice SLICE (or --case ID)"
    r = run("assertions", "accept", data["selected"][0], "--slice", "nowhere", "--each-case", ok=False)
    assert (r.exit_code, r.stderr) == (
        1,
        "Error: name the cases (--case) or a slice (--slice) to add the assertions to\n",
    )
    r = run("assertions", "accept", data["selected"][0], "--slice", "refunds", ok=False)
    assert r.stderr.endswith("plan.yaml: no coverage plan; run `evaltray plan init`\n")
    run("plan", "init")
    first = data["selected"][0]
    r = run("assertions", "accept", first, "--slice", "refunds", "--json")
    added = json.loads(r.stdout)["added"]
    assert json.loads(r.stdout) == {"slice": "refunds", "added": added, "dry_run": False} and len(added) == 1
    r = run("assertions", "accept", first, "--slice", "refunds")
    assert r.stdout == "added to slice refunds in plan.yaml: nothing new\n"
