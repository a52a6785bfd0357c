"""Planted contamination of each kind is found, with its span; a clean corpus gives nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from evaltray.curate.embed import get_embedder
from evaltray.evaluate.stub import StubServer
from evaltray.monitor import contamination as ct
from evaltray.monitor import corpus as cr
from evaltray.monitor.contamination import Corpus, Probe, Scanner, probes_of, provenance_matches, scan
from evaltray.monitor.corpus import Doc, read_corpus
from evaltray.monitor.verify import llm_verifier, parse_same

CLIPS = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
SHOES = "Can I return the running shoes I bought last week if I already wore them outside twice?"
OTHER = "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?"


@pytest.fixture(scope="module")
def embed():
    return get_embedder("wordllama").embed


def _probes() -> list[Probe]:
    return [Probe("c-clips", "dev", "input", CLIPS), Probe("c-shoes", "holdout", "input", SHOES)]


def _found(matches, case_id, method):
    return [m for m in matches if m.case_id == case_id and m.method == method]


def test_a_verbatim_copy_inside_a_longer_sample_is_exact_and_every_13_gram(embed):
    doc = Doc("ft.jsonl", 7, f"Solve this:\n{CLIPS.upper()} Show your work.\nAnswer: 72")
    matches = Scanner(_probes(), embed=embed).scan_batch([doc])
    [exact] = _found(matches, "c-clips", "exact")
    assert (exact.source, exact.line, exact.score, exact.split) == ("ft.jsonl", 7, 1.0, "dev")
    assert (
        exact.span
        == "natalia sold clips to 48 of her friends in april and then she sold half as many clips in may how many clips did natalia sell altogether in april and may"
    )
    [ngram] = _found(matches, "c-clips", "ngram")
    assert ngram.score == 1.0 and ngram.span == exact.span
    assert _found(matches, "c-shoes", "exact") == []


def test_a_near_verbatim_copy_is_found_by_lcs_with_its_span_and_ratio():
    near = "natalia sold clips to 48 of her pals in April then she sold half as many clips in May. How many clips did Natalia sell in total in April and May"
    matches = Scanner(_probes(), methods=("exact", "ngram", "lcs")).scan_batch([Doc("ft.jsonl", 1, near)])
    assert _found(matches, "c-clips", "exact") == []
    [lcs] = _found(matches, "c-clips", "lcs")
    # Ratcliff/Obershelp aligns 28 of the case's 31 words ("friends", "and", "altogether" are not in the copy)
    assert lcs.score == round(28 / 31, 4)
    assert lcs.span.startswith("natalia sold clips to 48 of her pals") and lcs.span.endswith("in april and may")
    [ngram] = _found(matches, "c-clips", "ngram")
    assert 0 < ngram.score < 0.5  # a few 13-grams survive the edits; most do not


def test_the_same_words_with_other_numbers_is_another_question_not_a_copy():
    other = CLIPS.replace("48", "36")
    matches = Scanner(_probes(), methods=("exact", "lcs")).scan_batch([Doc("ft.jsonl", 1, other)])
    assert matches == []


def test_a_paraphrase_sharing_no_13_gram_is_found_by_embedding_and_the_dedup_rule(embed):
    para = (
        "In April Natalia sold hair clips to 48 of her friends. In May she sold half that many clips. "
        "What is the total number of clips Natalia sold in April and May?"
    )
    matches = Scanner(_probes(), embed=embed).scan_batch([Doc("ft.jsonl", 3, para), Doc("ft.jsonl", 4, OTHER)])
    assert _found(matches, "c-clips", "ngram") == []
    [para_match] = _found(matches, "c-clips", "paraphrase")
    assert para_match.line == 3 and para_match.span == para  # the line it matched, as written
    assert para_match.detail.startswith(f"cosine {para_match.score:.3f} >= ")
    assert [m for m in matches if m.line == 4] == []


def test_a_long_line_is_embedded_as_runs_of_sentences_that_fit_a_window():
    line = "One two three. Four five six seven! Eight nine? " + " ".join(f"w{i}" for i in range(10))
    assert ct._runs(line, 7) == [
        "One two three. Four five six seven!",
        "Four five six seven! Eight nine?",
        "Eight nine?",
        "w0 w1 w2 w3 w4 w5 w6",
        "w3 w4 w5 w6 w7 w8 w9",
    ]


def test_a_rephrasing_with_other_numbers_is_not_a_paraphrase(embed):
    other = (
        "In April Natalia sold hair clips to 46 of her friends. In May she sold half that many clips. "
        "What is the total number of clips Natalia sold in April and May?"
    )
    matches = Scanner(_probes(), embed=embed).scan_batch([Doc("ft.jsonl", 3, other)])
    assert _found(matches, "c-clips", "paraphrase") == []


def test_a_short_case_matches_only_a_document_that_is_all_of_it():
    probes = [Probe("c-hi", "dev", "input", "Thanks a lot!")]
    scanner = Scanner(probes, methods=("exact",))
    matches = scanner.scan_batch([Doc("p.txt", 1, "thanks, a lot"), Doc("p.txt", 2, "Thanks a lot for the help")])
    assert [(m.line, m.span) for m in matches] == [(1, "thanks a lot")]


def test_a_clean_corpus_gives_no_match(embed):
    docs = [Doc("ft.jsonl", i, OTHER.replace("3", str(i))) for i in range(1, 6)]
    assert Scanner(_probes(), embed=embed).scan_batch(docs) == []


def test_scan_streams_files_reports_bad_lines_and_splits_dev_from_holdout(tmp_path: Path):
    ft = tmp_path / "ft.jsonl"
    ft.write_bytes(
        orjson.dumps({"messages": [{"role": "user", "content": SHOES}]})
        + b"\n\xff\xfe broken\n"
        + orjson.dumps({"text": OTHER})
        + b"\n"
    )
    report = scan(Scanner(_probes(), methods=("exact", "ngram")), [Corpus(ft)], release="1.0.0")
    assert report.summary() == {
        "dev": {"cases": 1, "contaminated": 0, "by_method": {"exact": 0, "ngram": 0}},
        "holdout": {"cases": 1, "contaminated": 1, "by_method": {"exact": 1, "ngram": 1}},
    }
    assert (report.docs, report.bad_count, report.bad_lines[0].line) == (2, 1, 2)


def test_jsonl_scanned_in_blocks_finds_what_scanning_line_by_line_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(cr, "BLOCK", 200)  # several blocks
    near = "natalia sold clips to 48 of her pals in April then she sold half as many clips in May. How many clips did Natalia sell in total in April and May"
    ft = tmp_path / "ft.jsonl"
    ft.write_bytes(
        b"\n".join(
            [
                orjson.dumps({"messages": [{"role": "user", "content": f"Solve: {CLIPS.upper()}"}], "id": 3}),
                b"{broken",
                orjson.dumps({"text": OTHER}),
                orjson.dumps({"prompt": near, "completion": "72"}),
                b'{"text": "caf\\u00e9: ' + SHOES.encode() + b'"}',
                orjson.dumps({"a": "thanks, a lot"}),
            ]
        )
        + b"\n"
    )
    probes = [*_probes(), Probe("c-hi", "dev", "input", "Thanks a lot!")]
    scanner = Scanner(probes, methods=("exact", "ngram", "lcs"))
    blocks, lines = scan(scanner, [Corpus(ft)]), scan(scanner, [Corpus(ft)], read=read_corpus)
    found = sorted((m.case_id, m.method, m.line, m.score, m.span) for m in blocks.matches)
    assert found == sorted((m.case_id, m.method, m.line, m.score, m.span) for m in lines.matches)
    assert {(c, m, line) for c, m, line, _, _ in found} == {
        ("c-clips", "exact", 1),
        ("c-clips", "ngram", 1),
        ("c-clips", "lcs", 1),
        ("c-clips", "ngram", 4),
        ("c-clips", "lcs", 4),
        ("c-shoes", "exact", 5),  # a line with a \\u escape, read the long way
        ("c-shoes", "ngram", 5),
        ("c-shoes", "lcs", 5),
        ("c-hi", "exact", 6),
    }
    assert (blocks.docs, blocks.bad_count, blocks.bad_lines[0].line) == (5, 1, 2)


def test_probes_take_user_turns_and_the_reference():
    case = {
        "id": "c-1",
        "input": {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi there"}]},
        "expected": {"reference": "Hello!"},
    }
    assert probes_of([case], "dev") == [
        Probe("c-1", "dev", "input", "hi there"),
        Probe("c-1", "dev", "reference", "Hello!"),
    ]


def test_provenance_flags_cases_sourced_before_the_cutoff():
    cases = [
        {"id": "c-old", "provenance": {"ingest_date": "2024-03-01"}, "created_at": "2025-01-01T00:00:00Z"},
        {"id": "c-new", "provenance": {"ingest_date": "2024-09-01"}, "created_at": "2025-01-01T00:00:00Z"},
        {"id": "c-sme", "provenance": {}, "created_at": "2024-01-01T00:00:00Z"},
    ]
    assert [(m.case_id, m.span) for m in provenance_matches(cases, "dev", "2024-06-01")] == [
        ("c-old", "2024-03-01"),
        ("c-sme", "2024-01-01T00:00:00Z"),
    ]


def test_bad_arguments_are_refused():
    with pytest.raises(ct.ContaminationError, match="unknown method 'fuzzy'"):
        Scanner(_probes(), methods=("fuzzy",))
    with pytest.raises(ct.ContaminationError, match="needs an embedder"):
        Scanner(_probes(), methods=("paraphrase",))
    with pytest.raises(ct.ContaminationError, match="2 or more"):
        Scanner(_probes(), n=1)


def test_parse_same():
    assert [parse_same(x) for x in ("YES", "no.", "Yes, the same", "maybe", None)] == [True, False, True, None, None]


def test_an_llm_through_an_openai_compatible_endpoint_vetoes_paraphrase_candidates(embed):
    para = "In April Natalia sold hair clips to 48 of her friends. In May she sold half that many clips. What is the total number of clips Natalia sold in April and May?"
    docs = [Doc("ft.jsonl", 3, para)]
    with StubServer(answer=lambda body: "NO") as stub:
        vetoed = Scanner(_probes(), embed=embed, verify=llm_verifier(stub.base_url, "stub")).scan_batch(docs)
        asked = stub.requests.total()
    assert _found(vetoed, "c-clips", "paraphrase") == [] and asked == 1
    with StubServer(answer=lambda body: "YES") as stub:
        kept = Scanner(_probes(), embed=embed, verify=llm_verifier(stub.base_url, "stub")).scan_batch(docs)
    assert len(_found(kept, "c-clips", "paraphrase")) == 1


def test_a_backend_whose_cosines_run_higher_has_its_own_bar(embed):
    para = (
        "In April Natalia sold hair clips to 48 of her friends. In May she sold half that many clips. "
        "What is the total number of clips Natalia sold in April and May?"
    )
    doc = [Doc("ft.jsonl", 3, para)]
    [found] = _found(Scanner(_probes(), embed=embed).scan_batch(doc), "c-clips", "paraphrase")
    assert found.detail.startswith(f"cosine {found.score:.3f} >= ")
    strict = Scanner(_probes(), embed=embed, para_cos=1.2).scan_batch(doc)  # above 1 even once overlap lowers it
    assert _found(strict, "c-clips", "paraphrase") == []
    assert ct.PARA_COS_BY_BACKEND["st"] == 0.83 and "wordllama" not in ct.PARA_COS_BY_BACKEND


# ----------------------------------------------------------------------------- standing out, nearest case only

_E = np.eye(6)


def _at(cos: float, axis: int) -> np.ndarray:
    """A unit vector at ``cos`` to the first case's axis (0), the rest of it along ``axis``."""
    return cos * _E[0] + math.sqrt(1 - cos * cos) * _E[axis]


CASE_A = "Which sociological perspective views society as interdependent parts?"
CASE_B = "What is the capital city of the old Roman province of Gaul?"


def _fake_embed(vectors: dict[str, np.ndarray]):
    return lambda texts: np.stack([vectors[t] for t in texts])


def _standout_scan(monkeypatch, windows: dict[str, np.ndarray], standout=(0.6, 0.1)) -> list[ct.Match]:
    """Cases A (axis 0) and B (axis 5) against one document per window, the bar at 0.9 so that only a window
    that stands out can be found."""
    monkeypatch.setattr(ct, "STANDOUT_MIN_WINDOWS", 3)
    embed = _fake_embed({CASE_A: _E[0], CASE_B: _E[5], **windows})
    probes = [Probe("c-a", "dev", "input", CASE_A), Probe("c-b", "dev", "input", CASE_B)]
    scanner = Scanner(probes, methods=("paraphrase",), embed=embed, para_cos=0.9, standout=standout)
    docs = [Doc("ft.jsonl", i, text) for i, text in enumerate(windows, 1)]
    return scanner.scan_batch(docs[:2]) + scanner.scan_batch(docs[2:]) + scanner.finish()


def test_a_window_that_stands_out_below_the_bar_is_found_when_the_scan_ends(monkeypatch):
    windows = {
        "Which viewpoint sees society as a network of reliant parts?": _at(0.70, 1),
        "Which school sees culture as a system of shared meanings?": _at(0.50, 2),
        "Which thinkers see society as a place of class conflict?": _at(0.45, 3),
    }
    [m] = _standout_scan(monkeypatch, windows)
    assert (m.case_id, m.method, m.line, m.score) == ("c-a", "paraphrase", 1, 0.7)
    assert m.detail == "stands out: cosine 0.700, next 0.500"  # the lead, 0.2, is over the 0.1 asked


def test_a_window_with_a_close_second_or_below_the_least_cosine_does_not_stand_out(monkeypatch):
    close = {
        "Which viewpoint sees society as a network of reliant parts?": _at(0.70, 1),
        "Which school sees culture as a system of shared meanings?": _at(0.65, 2),
        "Which thinkers see society as a place of class conflict?": _at(0.45, 3),
    }
    assert _standout_scan(monkeypatch, close) == []  # a lead of 0.05
    low = {
        "Which viewpoint sees society as a network of reliant parts?": _at(0.58, 1),
        "Which school sees culture as a system of shared meanings?": _at(0.20, 2),
        "Which thinkers see society as a place of class conflict?": _at(0.10, 3),
    }
    assert _standout_scan(monkeypatch, low) == []  # 0.58 < 0.6
    assert _standout_scan(monkeypatch, close, standout=None) == []


def test_the_lead_is_measured_past_copies_of_the_same_window(monkeypatch):
    top = _at(0.70, 1)
    windows = {
        "Which viewpoint sees society as a network of reliant parts?": top,
        "Which viewpoint sees society as a network of reliant parts ?": top,  # the same text twice
        "Which school sees culture as a system of shared meanings?": _at(0.50, 2),
        "Which thinkers see society as a place of class conflict?": _at(0.45, 3),
    }
    [m] = _standout_scan(monkeypatch, windows)
    assert m.detail == "stands out: cosine 0.700, next 0.500"


def test_a_window_nearer_another_case_stands_out_for_that_case_only(monkeypatch):
    windows = {
        "What was the chief town of Roman Gaul called?": 0.6 * _E[0] + 0.8 * _E[5],  # A 0.6, B 0.8
        "Which school sees culture as a system of shared meanings?": _at(0.30, 2),
        "Which thinkers see society as a place of class conflict?": _at(0.20, 3),
    }
    assert [(m.case_id, m.line) for m in _standout_scan(monkeypatch, windows)] == [("c-b", 1)]


def test_nothing_stands_out_against_too_few_windows(monkeypatch):
    windows = {
        "Which viewpoint sees society as a network of reliant parts?": _at(0.70, 1),
        "Which school sees culture as a system of shared meanings?": _at(0.50, 2),
    }
    monkeypatch.setattr(ct, "STANDOUT_MIN_WINDOWS", 3)
    embed = _fake_embed({CASE_A: _E[0], CASE_B: _E[5], **windows})
    scanner = Scanner([Probe("c-a", "dev", "input", CASE_A)], methods=("paraphrase",), embed=embed, para_cos=0.9)
    scanner.scan_batch([Doc("ft.jsonl", i, t) for i, t in enumerate(windows, 1)])
    assert scanner.finish() == []


def test_a_window_that_stands_out_with_other_numbers_is_refused(monkeypatch):
    monkeypatch.setattr(ct, "STANDOUT_MIN_WINDOWS", 3)
    other = CLIPS.replace("48", "46")
    fillers = [f"Filler question number {w} about something else entirely" for w in ("one", "two", "three")]
    vectors = {CLIPS: _E[0], other: _at(0.7, 1), **{f: _at(0.2, 2 + i) for i, f in enumerate(fillers)}}
    scanner = Scanner([Probe("c-clips", "dev", "input", CLIPS)], methods=("paraphrase",), embed=_fake_embed(vectors))
    scanner.scan_batch([Doc("ft.jsonl", i, t) for i, t in enumerate([other, *fillers], 1)])
    assert scanner._nearest[0][0].cos == pytest.approx(0.7)  # it leads by 0.5 ...
    assert scanner.finish() == []  # ... but says 46 where the case says 48


def test_a_window_is_taken_for_its_nearest_case_only(monkeypatch):
    window = "Which view of society sees it as a whole of parts that depend on each other?"
    vectors = {CASE_A: _E[0], CASE_B: _E[5], window: 0.8 * _E[0] + 0.6 * _E[5]}  # A at 0.8, B at 0.6
    probes = [Probe("c-a", "dev", "input", CASE_A), Probe("c-b", "dev", "input", CASE_B)]

    def found() -> list[str]:
        scanner = Scanner(probes, methods=("paraphrase",), embed=_fake_embed(vectors), para_cos=0.3, standout=None)
        return sorted(m.case_id for m in scanner.scan_batch([Doc("ft.jsonl", 1, window)]))

    assert found() == ["c-a"]  # both are over the bar; the window is a copy of one case, its nearest
    monkeypatch.setattr(ct, "MUTUAL", 0.0)
    assert found() == ["c-a", "c-b"]  # with the rule off, B is taken too
