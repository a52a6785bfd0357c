"""``evaltray contamination``, ``exclusions``, ``corpora``, ``leakage``, and the monitors in ``gate``."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from evaltray.tray import gate
from evaltray.tray.release import create_release
from tests.cli.runner import run as cli
from tests.evaluate.test_compare import two_runs  # noqa: F401  (a fixture: two scored runs on release 1.0.0)
from tests.helpers import labeled_candidate

LONG = [
    "Can I return the running shoes I bought last week if I already wore them outside twice?",
    "My parcel was marked as delivered yesterday but nothing arrived at my front door, what now?",
    "Why was I charged twice for the same order of kitchen knives on my credit card statement?",
]


@pytest.fixture
def released(ws, monkeypatch):
    for q in LONG:
        labeled_candidate(ws, q)
    gate.promote(ws, "alice")
    create_release(ws, "1.0.0", "alice")
    monkeypatch.chdir(ws.root)
    return ws


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts) + b"{broken\n")
    return path


def test_contamination_reports_matches_bad_lines_and_retires(released, tmp_path):
    corpus = _jsonl(tmp_path / "ft.jsonl", [f"Q: {LONG[1]} A: we are sorry", "nothing to see"])
    judge = tmp_path / "judge.yaml"
    judge.write_text(f"rubric: |\n  Pass when the answer says: Answer to: {LONG[2]}\n")
    args = ("contamination", "1.0.0", "--corpus", str(corpus), "--judge", str(judge), "--method", "exact")
    human = cli(*args)
    assert human.stdout.count(" cases contaminated (exact ") == 2  # a line for dev, one for the holdout
    assert "1 bad line(s) skipped" in human.stderr and "ft.jsonl:3: not JSON" in human.stderr
    data = json.loads(cli(*args, "--json").stdout)
    kinds = sorted((m["field"], m["kind"], m["line"]) for m in data["matches"])
    # the fine-tune line holds case 2's input; the judge's rubric holds case 3's reference answer (which
    # quotes its input: "Answer to: …")
    assert kinds == [("input", "corpus", 1), ("input", "judge", 1), ("reference", "judge", 1)]
    assert sum(s["contaminated"] for s in data["summary"].values()) == 2
    retired = json.loads(cli(*args, "--retire", "--json").stdout)["retired"]
    assert [r["done"] for r in retired] == [True, True]
    listed = json.loads(cli("cases", "list", "--all", "--json").stdout)
    assert sorted(r["retired_reason"].split(" in ")[0] for r in listed if r["status"] == "retired") == [
        "contaminated: exact match",
        "contaminated: exact match",
    ]


def test_contamination_without_any_corpus_says_what_to_give(released):
    r = cli("contamination", "1.0.0", ok=False)
    assert r.exit_code == 1 and "give a corpus (--corpus, --judge) or a training cutoff (--cutoff)" in r.stderr


def test_exclusions_and_corpora(released, tmp_path):
    out = tmp_path / "exclude.jsonl"
    assert "wrote 6 lines" in cli("exclusions", "1.0.0", "--to", str(out)).stdout
    assert {json.loads(line)["text"] for line in out.read_text().splitlines()} >= set(LONG)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "fewshot.txt").write_text(f"User: {LONG[0]}\nAssistant: yes\n")
    added = cli("corpora", "add", str(prompts), "--kind", "prompt", "--do-not-use")
    assert "example(s) tagged do-not-use-in-eval" in added.stdout
    assert json.loads(cli("corpora", "list", "--json").stdout) == [{"path": str(prompts.resolve()), "kind": "prompt"}]
    r = cli("export", "1.0.0", "--to", "jsonl", "--split", "all", ok=False)
    assert r.exit_code == 1 and "tagged do-not-use-in-eval" in r.stderr
    cli("corpora", "remove", str(prompts))
    assert json.loads(cli("corpora", "list", "--json").stdout) == []


def test_leakage_and_the_gate_s_monitors(two_runs, monkeypatch, tmp_path):  # noqa: F811
    ws, ids = two_runs
    monkeypatch.chdir(ws.root)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"overall": {"passed": 70, "n": 100}, "slices": {"refunds": {"passed": 20, "n": 50}}}))
    r = cli("leakage", "--run", ids["right"], "--live", str(live), "--json")
    data = json.loads(r.stdout)
    assert (data["overall"]["gap"], data["level"], data["culprits"]) == (30.0, "red", ["refunds"])
    assert cli("leakage", "--run", ids["right"], "--live", str(live), "--strict", ok=False).exit_code == 1
    # a registered corpus holding a case: the gate warns, and fails with --strict
    corpus = _jsonl(tmp_path / "ft.jsonl", ["q refunds #3"])
    cli("corpora", "add", str(corpus))
    warned = json.loads(cli("gate", ids["right"], "--baseline", ids["right"], "--json").stdout)
    assert warned["passed"] and any(w.startswith("monitor contamination: ") for w in warned["warnings"])
    failed = cli("gate", ids["right"], "--baseline", ids["right"], "--strict", ok=False)
    assert failed.exit_code == 1 and "FAIL: monitor contamination: " in failed.stdout
