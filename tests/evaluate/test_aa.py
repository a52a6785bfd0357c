"""The A/A check: the same target twice on the same cases, against a local stub whose answers are drawn
per request from a hash (so the verdicts, and the expected statistics, are known in advance)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from evaltray.evaluate import compare
from evaltray.evaluate import run as runner
from evaltray.evaluate.stub import StubServer, _last_user
from evaltray.evaluate.targets import make_target

FAST = runner.Limits(concurrency=8, timeout=5.0, retries=0, backoff=0.0)


def _right(text: str, k: int) -> bool:
    """Whether the ``k``-th answer (1-based) to ``text`` is right: 70% of draws, independent of one another."""
    return int(hashlib.sha256(f"{text}|{k}".encode()).hexdigest(), 16) % 100 < 70


def _noisy() -> tuple[Counter[str], object]:
    seen: Counter[str] = Counter()

    def answer(body: dict) -> str:
        text = _last_user(body)
        seen[text] += 1
        return "the right answer" if _right(text, seen[text]) else "something else"

    return seen, answer


def _plan(tmp_path: Path, n: int) -> runner.RunPlan:
    path = tmp_path / "cases.jsonl"
    rows = [
        {"id": f"c{i:03d}", "input": f"question {i}", "expected": {"assertions": ["contains: right"]}} for i in range(n)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return runner.plan_file_run(path)


def test_a_noisy_but_unchanged_target_passes_and_its_instability_is_reported(ws, tmp_path):
    _, answer = _noisy()
    plan = _plan(tmp_path, 120)
    with StubServer(answer=answer) as stub:
        target = make_target("openai:stub", base_url=stub.base_url)
        got = compare.run_aa(ws, plan, target, scorers=["contains"], limits=FAST, actor="alice")
    first = [_right(f"question {i}", 1) for i in range(120)]
    second = [_right(f"question {i}", 2) for i in range(120)]  # fresh runs, no cache: the second answer each
    only_a = sum(a and not b for a, b in zip(first, second, strict=True))
    only_b = sum(b and not a for a, b in zip(first, second, strict=True))
    reference = mcnemar([[0, only_a], [only_b, 0]], exact=True).pvalue
    assert got.runs[0] != got.runs[1] and got.n == 120
    assert (got.rate_a, got.rate_b) == (sum(first) / 120, sum(second) / 120)
    assert got.p_mcnemar == pytest.approx(reference, abs=1e-9) and got.p_mcnemar >= 0.05
    assert got.passed is True and len(got.discordant) == only_a + only_b
    assert got.discordant == sorted(f"c{i:03d}" for i in range(120) if first[i] != second[i])
    share = (only_a + only_b) / 120
    assert got.warnings == [
        f"{share:.0%} of cases changed verdict between two identical runs: the target or the judge is not "
        "deterministic, so a real change is harder to see (run --trials k and read pass^k)"
    ]


def test_a_target_that_changes_between_the_arms_fails_the_check(ws, tmp_path):
    sent = Counter[str]()

    def drifting(body: dict) -> str:  # a deployment lands after the first arm's 40 answers
        sent["all"] += 1
        return "the right answer" if sent["all"] <= 40 else "something else"

    with StubServer(answer=drifting) as stub:
        target = make_target("openai:stub", base_url=stub.base_url)
        got = compare.run_aa(ws, _plan(tmp_path, 40), target, scorers=["contains"], limits=FAST, actor="alice")
    assert (got.rate_a, got.rate_b, len(got.discordant)) == (1.0, 0.0, 40)
    assert got.p_mcnemar == pytest.approx(2 * 0.5**40) and got.passed is False


def test_trials_feed_the_check_with_the_cases_that_flip(ws, tmp_path):
    _, answer = _noisy()
    with StubServer(answer=answer) as stub:
        target = make_target("openai:stub", base_url=stub.base_url)
        got = compare.run_aa(
            ws, _plan(tmp_path, 29), target, scorers=["contains"], trials=3, limits=FAST, actor="alice"
        )
    # whichever trial got which answer, run one holds answers 1–3 to each question and run two answers 4–6
    flips = [
        f"c{i:03d}"
        for i in range(29)
        if len({_right(f"question {i}", k) for k in (1, 2, 3)}) > 1
        or len({_right(f"question {i}", k) for k in (4, 5, 6)}) > 1
    ]
    assert got.trials == 3 and got.flaky == flips and flips
    assert got.warnings[-1] == f"{len(flips)} cases changed verdict among the trials of one run (flaky)"
    assert got.warnings[0] == "only 29 cases: an A/A check this small sees only large instabilities"


def test_runs_of_different_cases_are_not_an_aa_pair(ws, tmp_path):
    replay = make_target("python:evaltray.core.util:now_iso")
    a = runner.execute(ws, _plan(tmp_path, 3), replay, limits=FAST, actor="alice")
    (tmp_path / "other").mkdir()
    b = runner.execute(ws, _plan(tmp_path / "other", 3), replay, limits=FAST, actor="alice")
    with pytest.raises(compare.CompareError) as err:
        compare.aa_check(ws, a.run_id, b.run_id)
    assert str(err.value) == (
        f"runs {a.run_id} and {b.run_id} ran on different cases or trials; an A/A check compares one plan twice"
    )


def test_a_price_table_prices_the_estimate(tmp_path):
    table = tmp_path / "prices.yaml"
    table.write_text("my-model: [1.0, 2.0]\ngpt-4o-mini: [0, 0]\n")
    prices = runner.load_prices(table)
    plan = _plan(tmp_path, 2)
    est = plan.estimate(make_target("openai:my-model"), trials=2, prices=prices)
    tokens_in = 2 * sum(len(orjson.dumps(c.input)) // 4 for c in plan.cases)
    assert (est["requests"], est["input_tokens"], est["output_tokens"]) == (4, tokens_in, 4 * 300)
    assert est["usd"] == round((tokens_in * 1.0 + 1200 * 2.0) / 1e6, 4)
    assert plan.estimate(make_target("openai:gpt-4o-mini"), prices=prices)["usd"] == 0.0  # the table wins
    assert plan.estimate(make_target("openai:my-model"), price=(0.0, 0.0), prices=prices)["usd"] == 0.0
    table.write_text("my-model: [1.0]\n")
    with pytest.raises(runner.RunError, match=r"prices.yaml: my-model: give \[input, output\] dollars per million"):
        runner.load_prices(table)
