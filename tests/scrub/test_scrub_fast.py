"""The scrubber's direct path (recognizers asked directly, spans replaced without AnonymizerEngine) gives
byte for byte what the Presidio path (``Scrubber(presidio=True)``) gives."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evaltray.scrub import PlaceholderMap, Scrubber
from evaltray.scrub._engine import _Span, _substitute, _well_formed

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data" / "scrub"
#: presidio-research's synthetic sentences: the pii_benchmark building set (never the measuring set).
BUILDING = ROOT / "bench" / "data" / "pii" / "presidio_synth_v2.json"


@pytest.fixture(scope="module")
def pair() -> tuple[Scrubber, Scrubber]:
    return Scrubber(), Scrubber(presidio=True)


def _same(pair: tuple[Scrubber, Scrubber], traces: list[list[dict[str, Any]]]) -> int:
    """How many of ``traces`` both paths scrub; asserts the two give identical results for every one."""
    fast, ref = pair
    done = 0
    for i, messages in enumerate(traces):
        a, b = fast.scrub_trace(f"t{i}", messages), ref.scrub_trace(f"t{i}", messages)
        assert json.dumps(a.messages) == json.dumps(b.messages), f"trace {i}"
        assert (a.counts, a.error) == (b.counts, b.error), f"trace {i}"
        done += not a.quarantined
    return done


def test_same_output_on_the_labelled_real_texts(pair: tuple[Scrubber, Scrubber]) -> None:
    rows = [json.loads(line) for line in (DATA / "real_labeled.jsonl").read_text(encoding="utf-8").splitlines()]
    traces = [[{"role": "user", "content": r["text"]}] for r in rows]
    # all of them in one trace too: placeholders numbered across messages, aliases matched between them
    assert _same(pair, [*traces, [m for t in traces for m in t]]) == len(traces) + 1


def test_same_output_when_only_some_entities_are_scrubbed() -> None:
    rows = [json.loads(line) for line in (DATA / "real_labeled.jsonl").read_text(encoding="utf-8").splitlines()]
    traces = [[{"role": "user", "content": r["text"]}] for r in rows]
    some = ["EMAIL", "PERSON", "ADDRESS"]
    assert _same((Scrubber(some), Scrubber(some, presidio=True)), traces) == len(traces)


def test_same_output_on_a_whole_tau2_conversation(pair: tuple[Scrubber, Scrubber]) -> None:
    messages = json.loads((DATA / "tau2_lopez_trace.json").read_text(encoding="utf-8"))["messages"]
    assert _same(pair, [messages]) == 1
    fast, _ = pair
    assert fast.scrub_trace("t", messages).counts["PERSON"] > 0  # the trace has PII to replace


def test_same_output_on_the_pii_benchmark_building_set(pair: tuple[Scrubber, Scrubber]) -> None:
    rows = json.loads(BUILDING.read_text(encoding="utf-8"))
    traces = [[{"role": "user", "content": r["full_text"]}] for r in rows]
    assert len(traces) == 1500
    assert _same(pair, traces) == 1500


def test_recognize_returns_what_the_analyzer_returns(pair: tuple[Scrubber, Scrubber]) -> None:
    fast, _ = pair
    text = "Mail jane.doe@example.com or call 415-555-0132; Jane Doe, 12 Main Street, IBAN DE89370400440532013000"
    wanted = fast._wanted(text)
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "ADDRESS", "IBAN_CODE"} <= set(wanted)
    direct = [(r.entity_type, r.start, r.end, r.score) for r in fast._recognize(text, wanted)]
    engine = [(r.entity_type, r.start, r.end, r.score) for r in fast.analyzer.analyze(text, "en", wanted)]
    assert direct == engine
    assert ("EMAIL_ADDRESS", 5, 25, 1.0) in direct


def _anonymized(text: str, spans: list[_Span]) -> tuple[str, dict[str, str]]:
    mapping = PlaceholderMap()
    out = Scrubber(presidio=True)._replace(text, list(spans), mapping, Counter())
    return out, mapping.originals


@pytest.mark.parametrize(
    ("text", "spans", "want"),
    [
        # two names with only spaces between are one value to AnonymizerEngine: one placeholder
        ("Jane  Doe called", [_Span(0, 4, "PERSON", 0.6), _Span(6, 9, "PERSON", 0.6)], "<PERSON_1> called"),
        # its test is re's "^( )+$", which a space before a final newline passes too
        ("Jane \nDoe", [_Span(0, 4, "PERSON", 0.6), _Span(6, 9, "PERSON", 0.6)], "<PERSON_1>"),
        # a newline alone, another type, or touching spans keep two
        ("Jane\nDoe", [_Span(0, 4, "PERSON", 0.6), _Span(5, 8, "PERSON", 0.6)], "<PERSON_2>\n<PERSON_1>"),
        (
            "a@b.io 5551234567",
            [_Span(0, 6, "EMAIL_ADDRESS", 1), _Span(7, 17, "PHONE_NUMBER", 1)],
            "<EMAIL_1> <PHONE_1>",
        ),
        ("JaneDoe", [_Span(0, 4, "PERSON", 0.6), _Span(4, 7, "PERSON", 0.6)], "<PERSON_2><PERSON_1>"),
    ],
)
def test_substitute_replaces_as_the_anonymizer_does(text: str, spans: list[_Span], want: str) -> None:
    assert _well_formed(spans, len(text))
    mapping = PlaceholderMap()
    got = _substitute(text, spans, mapping)
    # new placeholders are numbered last value first, as AnonymizerEngine calls the operator
    assert (got, mapping.originals) == _anonymized(text, spans)
    assert got == want


def test_spans_the_anonymizer_would_resolve_otherwise_take_the_presidio_path() -> None:
    assert not _well_formed([_Span(0, 4, "PERSON", 1), _Span(2, 6, "PERSON", 1)], 10)  # overlapping
    assert not _well_formed([_Span(3, 3, "PERSON", 1)], 10)  # empty
    assert not _well_formed([_Span(5, 11, "PERSON", 1)], 10)  # past the end
    assert not _well_formed([_Span(5, 7, "PERSON", 1), _Span(0, 2, "PERSON", 1)], 10)  # unsorted
    assert _well_formed([_Span(0, 2, "PERSON", 1), _Span(2, 4, "URL", 1)], 4)
