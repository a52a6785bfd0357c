"""The LLM judge against a local stub endpoint: verdicts, critiques, refusals to answer, what it is shown."""

from __future__ import annotations

import orjson
import pytest

from evaltray.evaluate import judge as jd
from evaltray.evaluate import run as runner
from evaltray.evaluate import score
from evaltray.evaluate.stub import StubServer
from evaltray.evaluate.targets import make_target

CASE = {
    "id": "c1",
    "input": {"messages": [{"role": "user", "content": "How long do refunds take?"}], "context": ["Refunds: 5 days."]},
    "expected": {"reference": "SECRET-REFERENCE 5 days", "behavior_code": "answer", "assertions": ["mentions 5 days"]},
    "rubric": "Penalise invented numbers.",
}


def _grader(body):
    text = body["messages"][-1]["content"]
    answer = text.split("The assistant's answer:\n", 1)[1].split("\n", 1)[0]
    if "WEIRD" in answer:
        return "I am not sure."
    verdict = "pass" if "GOOD" in answer else "fail"
    return orjson.dumps({"critique": f"{answer[:10]} judged", "verdict": verdict}).decode()


def test_the_prompt_never_shows_the_reference_unless_asked():
    config = jd.JudgeConfig(model="m")
    text = jd.prompt(config, "accuracy", CASE, "an answer")
    assert "SECRET-REFERENCE" not in text
    assert "- behaviour: answer\n- mentions 5 days" in text and "Penalise invented numbers." in text
    assert "[retrieved context] Refunds: 5 days.\nuser: How long do refunds take?" in text
    shown = jd.prompt(jd.JudgeConfig(model="m", reference_based=True), "accuracy", CASE, "x")
    assert "- reference answer: SECRET-REFERENCE 5 days" in shown
    assert config.hash != jd.JudgeConfig(model="m", reference_based=True).hash  # a different judge


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"critique": "fine", "verdict": "pass"}', (True, "fine")),
        ('```json\n{"verdict": "FAIL", "critique": "wrong"}\n```', (False, "wrong")),
        ('Sure! {"verdict": "pass"', (True, None)),
    ],
)
def test_verdicts_are_parsed(text, expected):
    assert jd.parse_verdict(text) == expected


@pytest.mark.parametrize("text", ["", "maybe", '{"verdict": "partial"}'])
def test_a_judge_that_says_neither_is_an_error(text):
    with pytest.raises(jd.JudgeError):
        jd.parse_verdict(text)


def test_judge_yaml_names_the_bad_key(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("model: m\ndimensions: [accuracy, tone]\n")
    with pytest.raises(jd.JudgeError, match=r"dimension 'tone' has no question"):
        jd.load_judge(path)
    path.write_text("model: m\ndimensions: [tone]\nquestions: {tone: Is it polite?}\ntemprature: 1\n")
    with pytest.raises(jd.JudgeError, match=r"judge.yaml: temprature: Extra inputs are not permitted"):
        jd.load_judge(path)


def test_score_with_the_judge_counts_errors_apart(ws, tmp_path):
    rows = [
        {"id": "good", "input": "q GOOD", "expected": {"assertions": ["is right"]}},
        {"id": "bad", "input": "q BAD", "expected": {"assertions": ["is right"]}},
        {"id": "weird", "input": "q WEIRD", "expected": {"assertions": ["is right"]}},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with StubServer() as target_stub, StubServer(answer=_grader) as judge_stub:
        made = runner.execute(
            ws, runner.plan_file_run(path), make_target("openai:bot", base_url=target_stub.base_url), actor="alice"
        )
        config = jd.JudgeConfig(model="grader", base_url=judge_stub.base_url, dimensions=["accuracy", "relevance"])
        scored = score.score_run(ws, made.run_id, ["judge"], "alice", judge=config)
        assert judge_stub.requests.total() == 6  # three answers, two dimensions
    assert (scored.passed, scored.failed, scored.errors) == (1, 1, 1)
    rows = {r["case_id"]: r for r in score.read_scores(ws, made.run_id)}
    assert rows["bad"]["scores"][0]["reason"] == "accuracy: stub answe judged; relevance: stub answe judged"
    assert rows["weird"]["reason"] == "scorer judge: judge, accuracy: the judge answered neither pass nor fail"
    verdicts = [orjson.loads(x) for x in (made.path / "judge.jsonl").read_bytes().splitlines()]
    assert {v["judge_hash"] for v in verdicts} == {config.hash} and len(verdicts) == 6
    with pytest.raises(runner.RunError, match="needs a judge"):
        score.score_run(ws, made.run_id, ["judge"], "alice")


def test_an_oversized_or_exploding_judge_file_is_refused_with_its_reason(tmp_path, monkeypatch):
    path = tmp_path / "judge.yaml"
    path.write_text("model: m\n# " + "x" * 2000 + "\n")
    monkeypatch.setattr(jd, "MAX_JUDGE_BYTES", 1000)
    with pytest.raises(jd.JudgeError) as err:  # the size check's own message (it was swallowed before)
        jd.load_judge(path)
    assert str(err.value) == f"{path}: 2,012 bytes, past the 1,000 bytes a judge file may hold"
    path.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}" + f", *{'a' if i == 0 else f'b{i - 1}'}" * 9 + "]\n"
            for i in range(8)
        )
    )
    with pytest.raises(jd.JudgeError, match=r"judge.yaml: .*(alias|expand)"):
        jd.load_judge(path)
    with pytest.raises(jd.JudgeError, match=r"No such file or directory"):
        jd.load_judge(tmp_path / "missing.yaml")
