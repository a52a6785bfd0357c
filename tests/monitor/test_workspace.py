"""The monitors on a workspace: a release against corpora, exclusions, retirement, do-not-use tags that the
loaders enforce, and the checks promote and release create run."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import evaltray.monitor  # noqa: F401  (registers the promote and release checks)
from evaltray.core.errors import GateError, ReleaseError
from evaltray.monitor.contamination import Corpus
from evaltray.monitor.registered import list_corpora, register_corpus, tag_examples, unregister_corpus
from evaltray.monitor.releases import release_contamination, retire_contaminated, write_exclusions
from evaltray.tray import gate
from evaltray.tray.casefile import load_cases
from evaltray.tray.export import export_release
from evaltray.tray.lifecycle import list_cases
from evaltray.tray.release import create_release, load_manifest
from tests.helpers import labeled_candidate

QUESTIONS = [
    "Can I return the running shoes I bought last week if I already wore them outside twice?",
    "My parcel was marked as delivered yesterday but nothing arrived at my front door, what now?",
    "Why was I charged twice for the same order of kitchen knives on my credit card statement?",
    "Is it possible to change the delivery address after the order has already been shipped out?",
    "How long does a refund take to show up on my bank account after you receive the return?",
]


def _tray(ws, questions=QUESTIONS) -> dict[str, str]:
    """Promote one case per question; case id by question."""
    for i, q in enumerate(questions):
        labeled_candidate(ws, q, slice="refunds" if i % 2 else "shipping")
    report = gate.promote(ws, "alice")
    assert not report.blocked and len(report.promoted) == len(questions)
    return {gate.user_text(c): cid for cid, c in load_cases(ws, "main").items()}


def _finetune(tmp_path: Path, texts: list[str]) -> Path:
    path = tmp_path / "finetune.jsonl"
    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "Sure."}]} for t in texts]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"\xff not utf-8\n")
    return path


def test_a_release_against_a_corpus_reports_dev_and_holdout_apart(ws, tmp_path):
    ids = _tray(ws)
    create_release(ws, "1.0.0", "alice", holdout=0.4)
    held = set(load_manifest(ws, "1.0.0").sets["main"].holdout)
    leaked = [QUESTIONS[0], QUESTIONS[3]]
    report = release_contamination(
        ws, "1.0.0", [Corpus(_finetune(tmp_path, [*leaked, "hello there"]))], methods=("exact", "ngram", "lcs")
    )
    found = report.contaminated()
    assert set(found) == {ids[q] for q in leaked}
    split_of = {ids[q]: ("holdout" if ids[q] in held else "dev") for q in leaked}
    assert {cid: ms[0].split for cid, ms in found.items()} == split_of
    summary = report.summary()
    assert summary["dev"]["cases"] + summary["holdout"]["cases"] == 5
    assert summary["dev"]["contaminated"] + summary["holdout"]["contaminated"] == 2
    assert report.bad_count == 1 and report.bad_lines[0].line == 4


def test_exclusions_list_every_golden_text_of_both_splits(ws, tmp_path):
    ids = _tray(ws)
    create_release(ws, "1.0.0", "alice")
    out = tmp_path / "exclude.jsonl"
    assert write_exclusions(ws, "1.0.0", out, "alice") == 10  # five inputs, five references
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    inputs = {r["id"]: r["text"] for r in rows if r["field"] == "input"}
    assert inputs == {cid: q for q, cid in ids.items()}
    assert {r["split"] for r in rows} == {"dev", "holdout"}
    assert all(len(r["key"]) == 64 for r in rows)


def test_contaminated_cases_are_retired_with_the_reason(ws, tmp_path):
    ids = _tray(ws)
    create_release(ws, "1.0.0", "alice")
    report = release_contamination(ws, "1.0.0", [Corpus(_finetune(tmp_path, [QUESTIONS[2]]))], methods=("exact",))
    assert [r.done for r in retire_contaminated(ws, "alice", report, dry_run=True)] == [False]
    [retired] = retire_contaminated(ws, "alice", report)
    assert retired.done and retired.case_id == ids[QUESTIONS[2]]
    reg = {r["id"]: r for r in list_cases(ws, include_retired=True)}[retired.case_id]
    assert reg["status"] == "retired" and reg["retired_reason"].startswith("contaminated: exact match in ")
    [again] = retire_contaminated(ws, "alice", report)
    assert not again.done and "already retired" in again.note


def test_tagged_prompt_examples_are_refused_by_promote_release_and_export(ws, tmp_path):
    _tray(ws, QUESTIONS[:3])
    create_release(ws, "1.0.0", "alice")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "system.txt").write_text(f"You are a shop assistant.\n\nUser: {QUESTIONS[1]}\nAssistant: Sorry!\n")
    tagged, bad = tag_examples(ws, "alice", prompts)
    assert tagged >= 1 and bad == []
    with pytest.raises(GateError, match="tagged do-not-use-in-eval") as exc:
        export_release(ws, "1.0.0", to="jsonl", split="all", out=tmp_path / "out.jsonl")
    assert "system.txt:3" in str(exc.value)
    with pytest.raises(GateError, match="tagged do-not-use-in-eval"):
        create_release(ws, "1.1.0", "alice")
    cid = labeled_candidate(ws, QUESTIONS[1].upper(), slice="refunds")  # casefold: the same example
    report = gate.promote(ws, "alice", candidate_ids=[cid])
    assert report.promoted == [] and "tagged do-not-use-in-eval" in report.blocked[0][1][-1]


def test_promote_refuses_a_duplicate_of_a_tray_row_naming_it(ws):
    ids = _tray(ws, QUESTIONS[:2])
    cid = labeled_candidate(ws, "  " + QUESTIONS[0].upper() + " ", slice="refunds")
    report = gate.promote(ws, "alice", candidate_ids=[cid])
    assert report.promoted == []
    assert report.blocked == [(cid, [f"duplicates {ids[QUESTIONS[0]]} (the same input, normalized)"])]


def test_contamination_against_registered_corpora_warns_on_promote_or_refuses_with_strict(ws, tmp_path):
    corpus = _finetune(tmp_path, [QUESTIONS[4]])
    register_corpus(ws, "alice", corpus)
    assert [c.path for c in list_corpora(ws)] == [corpus.resolve()]
    cid = labeled_candidate(ws, QUESTIONS[4], slice="refunds")
    strict = gate.promote(ws, "alice", candidate_ids=[cid], strict=True)
    assert strict.promoted == [] and "contaminated: exact match (100%) in" in strict.blocked[0][1][0]
    report = gate.promote(ws, "alice", candidate_ids=[cid])
    assert [p.candidate_id for p in report.promoted] == [cid]
    assert [w for _, w in report.warnings][0].startswith("contaminated: exact match (100%) in ")
    # and release create warns, or refuses with --strict
    with pytest.raises(ReleaseError, match="refused by the monitors"):
        create_release(ws, "1.0.0", "alice", strict=True)
    made = create_release(ws, "1.0.0", "alice")
    assert any("contaminated: exact match" in w for w in made.warnings)
    unregister_corpus(ws, "alice", corpus)
    assert list_corpora(ws) == []
