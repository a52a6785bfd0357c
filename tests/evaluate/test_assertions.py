"""Assertion suggestions: a prompt file's git history made here, a stub judge endpoint, hand-worked picks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import orjson
import pytest

from evaltray.core.errors import NotFound
from evaltray.evaluate import assertions as sa
from evaltray.evaluate.judge import JudgeConfig
from evaltray.evaluate.stub import StubServer, _last_user
from evaltray.tray import candidates as pool
from evaltray.tray import gate
from evaltray.tray.casefile import load_cases
from tests.helpers import tray_of

LINK = "https://help.example.com/returns"
APOLOGY = "the answer apologizes"
LONG = "Sorry. " + " ".join(["word"] * 33) + f" {LINK}"  # 35 words


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Answer in under 50 words.", ["max-words: 49"]),
        ("Keep replies to at most 280 characters", ["max-chars: 280"]),
        ("Always include a link to the help centre.", [r"regex: https?://\S+"]),
        ("Respond in JSON.", ['json-schema: {"type": "object"}']),
        ("Never mention 'free shipping'.", ["not-contains: free shipping"]),
        ('Always say "Thanks for reaching out" first', ["contains: Thanks for reaching out"]),
        ("Start every answer with 'Hi'", [r"regex: ^\s*Hi"]),
        ("End with “Best, Ana”", [r"regex: Best,\ Ana\s*$"]),
        ("Use bullet points for steps.", [r"regex: (?m)^\s*[-*•]\s"]),
        ("Apologize when the customer is upset.", []),
        ("Never mention competitors.", []),  # not a literal phrase: a judge's call
    ],
)
def test_plain_instructions_become_rules(instruction, expected):
    assert sa.rule_assertions(instruction) == expected


def test_instructions_are_sentences_of_the_added_lines():
    got = sa.instructions(["## Style", "- Answer in under 50 words. Always include a link.", "2) Be kind", "ok"])
    assert got == ["Answer in under 50 words.", "Always include a link.", "Be kind"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True, capture_output=True
    )


def _prompt_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "bot"
    repo.mkdir()
    _git(repo, "init", "-q")
    prompt = repo / "prompt.txt"
    versions = [
        ("first prompt", "You are the support assistant of a shoe shop.\n"),
        ("answers ran long", "Answer in under 30 words.\n"),
        (
            "links, tone, promises",
            "Always include a link to the help centre.\nApologize when the customer is upset.\n"
            "Never mention 'free shipping'.\n",
        ),
    ]
    text = ""
    for subject, added in versions:
        text += added
        prompt.write_text(text)
        _git(repo, "add", "prompt.txt")
        _git(repo, "commit", "-q", "-m", subject)
    return prompt


def _outputs(tmp_path: Path) -> Path:
    ok = f"Sorry about that, here is how: {LINK}"
    rows = [
        ("f1", LONG, "fail", ["too-long"]),
        ("f2", "Sorry, you can return them within 30 days.", "fail", ["no-link"]),
        ("f3", f"We cannot do that. {LINK}", "fail", ["rude"]),
        ("f4", f"Sorry, free shipping on the next one! {LINK}", "fail", ["promises"]),
        ("p1", f"Your order ships today. {LINK}", "pass", []),  # the apology check fails it: a false failure
        ("p2", f"Sorry, free shipping applies over $50: {LINK}", "pass", []),
        ("p3", f"Sorry, free shipping is for members: {LINK}", "pass", []),
        *[(f"p{i}", ok, "pass", []) for i in range(4, 11)],
    ]
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps({"id": i, "output": o, "verdict": v, "failure_tags": t}) + b"\n" for i, o, v, t in rows)
    )
    return path


def stub_judge(body: dict) -> str:
    """Proposes 'the answer apologizes' for the apology instruction (anything else: on topic), and answers
    that check by whether the answer says sorry; every other check passes."""
    prompt = _last_user(body)
    if prompt.startswith("A prompt template"):
        proposal = APOLOGY if "Apologize" in prompt else "the answer is about the shoe shop"
        return json.dumps({"assertion": proposal})
    if f"Check: {APOLOGY}\n" in prompt:
        answer = prompt.split("The assistant's answer:\n", 1)[1]
        return json.dumps({"critique": "-", "verdict": "pass" if "sorry" in answer.lower() else "fail"})
    return json.dumps({"critique": "-", "verdict": "pass"})


def test_suggest_from_git_history_picks_a_small_set_within_the_budget(ws, tmp_path):
    prompt, outputs = _prompt_repo(tmp_path), _outputs(tmp_path)
    with StubServer(answer=stub_judge) as stub:
        judge = JudgeConfig(name="stub", model="stub", base_url=stub.base_url)
        got = sa.suggest(ws, git_file=prompt, outputs_file=outputs, judge=judge, budget=0.1, actor="alice")
    assert [c.note for c in got.changes] == ["first prompt", "answers ran long", "links, tone, promises"]
    assert got.changes[1].added == ["Answer in under 30 words."]
    by = {s.assertion: s for s in got.suggestions}
    assert sorted(by) == sorted(
        [
            "the answer is about the shoe shop",
            "max-words: 29",
            r"regex: https?://\S+",
            APOLOGY,
            "not-contains: free shipping",
        ]
    )
    assert (by["max-words: 29"].catches, by["max-words: 29"].false_failures) == (["f1"], [])
    assert (by[r"regex: https?://\S+"].catches, by[r"regex: https?://\S+"].false_failures) == (["f2"], [])
    assert (by[APOLOGY].kind, by[APOLOGY].catches, by[APOLOGY].false_failures) == ("judge", ["f3"], ["p1"])
    assert (by["not-contains: free shipping"].catches, by["not-contains: free shipping"].false_failures) == (
        ["f4"],
        ["p2", "p3"],
    )
    # 10 passing outputs, budget 10%: one false failure in all; 'free shipping' alone would cost two
    picked = [next(s.assertion for s in got.suggestions if s.id == i) for i in got.selected]
    assert sorted(picked[:2]) == sorted(["max-words: 29", r"regex: https?://\S+"]) and picked[2] == APOLOGY
    assert (got.caught, got.false_failures, got.coverage, got.false_failure_rate) == (
        ["f1", "f2", "f3"],
        ["p1"],
        0.75,
        0.1,
    )
    assert got.by_tag["promises"] == {"failures": 1, "caught": 0} and got.by_tag["rude"] == {"failures": 1, "caught": 1}


def test_without_a_judge_the_instruction_stands_unchecked(ws, tmp_path):
    got = sa.suggest(ws, git_file=_prompt_repo(tmp_path), outputs_file=_outputs(tmp_path), budget=0.0, actor="alice")
    apology = next(s for s in got.suggestions if s.instruction.startswith("Apologize"))
    assert (apology.assertion, apology.kind, apology.unchecked) == (
        "follows: Apologize when the customer is upset.",
        "judge",
        14,
    )
    assert apology.note == "no judge: the instruction as written"
    # budget 0: no false failure allowed, so 'free shipping' (two) stays out
    assert sorted(got.caught) == ["f1", "f2"] and got.false_failures == []


def test_history_from_the_candidates_system_messages(ws, monkeypatch):
    times = iter(["2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
    monkeypatch.setattr(pool, "now_iso", lambda: next(times))  # arrival order is not insertion order
    for i, system in enumerate(["Be brief.\nRespond in JSON.", "Be brief.", "Be brief.\nAnswer in under 20 words."]):
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": f"q{i}"}]
        pool.add_manual(ws, "alice", "sme", msgs)
    changes = sa.changes_from_candidates(ws)
    assert [c.added for c in changes] == [["Be brief."], ["Answer in under 20 words."], ["Respond in JSON."]]
    assert all(len(c.version) == 12 for c in changes)


def test_bad_inputs_are_refused_with_where(ws, tmp_path):
    prompt, outputs = _prompt_repo(tmp_path), tmp_path / "o.jsonl"
    outputs.write_text('{"id": "a", "output": "x", "verdict": "maybe"}\n')
    with pytest.raises(
        sa.SuggestionError, match=r"^o.jsonl:1: a labelled output is \{id, output, verdict: pass\|fail\}$"
    ):
        sa.suggest(ws, git_file=prompt, outputs_file=outputs, actor="alice")
    outputs.write_text('{"id": "a", "output": "x", "verdict": "pass"}\n')
    with pytest.raises(sa.SuggestionError, match="^no labelled output failed"):
        sa.suggest(ws, git_file=prompt, outputs_file=outputs, actor="alice")
    loose = tmp_path / "loose.txt"
    loose.write_text("Be brief.\n")
    with pytest.raises(sa.SuggestionError, match=r"^git log in .* failed: fatal: not a git repository"):
        sa.changes_from_git(loose)


def test_accept_relabels_a_slice_and_the_gate_takes_it(ws, tmp_path):
    tray_of(ws, {"refunds": 2, "shipping": 1})
    sa.suggest(ws, git_file=_prompt_repo(tmp_path), outputs_file=_outputs(tmp_path), actor="alice")
    saved = sa.saved_suggestions(ws)
    words = next(i for i, s in saved.items() if s["assertion"] == "max-words: 29")
    with pytest.raises(sa.SuggestionError, match="^no suggestion 'a-nope' in the last suggestions$"):
        sa.accept(ws, ["a-nope"], "alice", slice="refunds")
    dry = sa.accept(ws, [words], "alice", slice="refunds", dry_run=True)
    assert len(dry) == 2 and all(v == ["max-words: 29"] for v in dry.values())
    assert gate.promote(ws, "alice").promoted == []  # a dry run recorded nothing
    gained = sa.accept(ws, [words], "alice", slice="refunds")
    assert gained == dry
    gate.promote(ws, "alice")
    tray = load_cases(ws, "main")
    for cid, row in tray.items():
        assert ("max-words: 29" in row["expected"]["assertions"]) == (cid in gained)
    assert gate.validate(ws) == []
    assert sa.accept(ws, [words], "alice", cases=[next(iter(gained))]) == {next(iter(gained)): []}
    with pytest.raises(NotFound, match="^no active case 'c-nope' in set main$"):
        sa.accept(ws, [words], "alice", cases=["c-nope"])


def test_accepting_into_a_slice_writes_the_plan_and_score_checks_every_case_of_it(ws, tmp_path):
    from evaltray.curate import plan as planning
    from evaltray.evaluate import run as runner
    from evaltray.evaluate import score as scoring
    from evaltray.evaluate.targets import make_target
    from evaltray.tray import release

    tray_of(ws, {"refunds": 2, "shipping": 1})
    planning.init_plan(ws, ["refunds", "shipping"], actor="alice")
    path = planning.plan_path(ws)
    path.write_text(path.read_text() + "# keep: the owners agreed these targets on 2026-11-30\n")
    sa.suggest(ws, git_file=_prompt_repo(tmp_path), outputs_file=_outputs(tmp_path), actor="alice")
    words = next(i for i, s in sa.saved_suggestions(ws).items() if s["assertion"] == "max-words: 29")
    with pytest.raises(NotFound, match="^no slice 'nowhere' in plan.yaml or among the active cases of set main$"):
        sa.accept_into_slice(ws, [words], "alice", "nowhere")
    assert sa.accept_into_slice(ws, [words], "alice", "refunds", dry_run=True) == ["max-words: 29"]
    assert "assertions" not in planning.load_plan(ws).slices["refunds"]  # a dry run wrote nothing
    assert sa.accept_into_slice(ws, [words], "alice", "refunds") == ["max-words: 29"]
    assert sa.accept_into_slice(ws, [words], "alice", "refunds") == []  # already there
    assert path.read_text().endswith("# keep: the owners agreed these targets on 2026-11-30\n")
    assert planning.load_plan(ws).slices["refunds"]["assertions"] == ["max-words: 29"]
    assert gate.promote(ws, "alice").promoted == []  # the cases' own labels are untouched

    release.create_release(ws, "1.0.0", "alice")
    long = " ".join(["word"] * 40)
    with StubServer(answer=lambda body: long if "#1" in _last_user(body) else "short") as stub:
        made = runner.execute(
            ws, runner.plan_release_run(ws, "1.0.0"), make_target("openai:m", base_url=stub.base_url), actor="alice"
        )
    report = scoring.score_run(ws, made.run_id, ["length"], "alice")
    rows = {(r["slice"], r["status"]) for r in scoring.read_scores(ws, made.run_id)}
    # refunds #0 short (pass), refunds #1 40 words (fail), shipping #0 has no assertion (unscored)
    assert sorted(rows) == [("refunds", "fail"), ("refunds", "pass"), ("shipping", "unscored")]
    assert report.slice_assertions == {"refunds": ["max-words: 29"]}


def test_a_slice_inherits_the_assertions_of_the_slices_above_it():
    from evaltray.curate.plan import Plan, slice_assertions

    plan = Plan(dimensions={}, slices={"a": {"assertions": ["x"]}, "a/b": {"assertions": ["y", "x"]}, "c": {}})
    assert slice_assertions(plan, "a/b") == ["x", "y"]
    assert slice_assertions(plan, "a/bc") == ["x"]
    assert slice_assertions(plan, "c") == slice_assertions(plan, "d") == slice_assertions(None, "a") == []
