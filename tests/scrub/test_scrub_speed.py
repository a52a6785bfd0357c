"""The scrubber's shortcuts decide exactly what the long way decides: the tagger's integer scores give the float
scores' tags, and a gate (or a prefilter hint) finds something in every text its pattern matches in."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import regex

from evaltray.scrub import Scrubber, _address, _engine, _recognizers
from evaltray.scrub._names import FIRST, LAST, WORD, Gazetteer
from evaltray.scrub._tagger import (
    PersonTagger,
    _Exact,
    context_features,
    load_tagger,
    rule_scores,
    tokenize,
)

ROOT = Path(__file__).parents[2]
REAL = ROOT / "tests" / "data" / "scrub" / "real_labeled.jsonl"
#: presidio-research's synthetic sentences: the pii_benchmark building set (never the measuring set).
BUILDING = ROOT / "bench" / "data" / "pii" / "presidio_synth_v2.json"
_GAZ = Gazetteer({"anna": FIRST, "berg": LAST, "met": WORD})

#: One text each rule, core, cue and id pattern matches in (so every gate below is tried on a true match).
EXAMPLES = [
    "Ship it to 2450 Crown St, Springfield, IL 62704 please",
    "she lives at 17 maple tree road now",
    "Unit 12 is empty, Apt 5B too",
    "send it to P.O. Box 4411",
    "PSC 1234, Box 5678\nAPO AE 09876",
    "Austin, TX 73301",
    "my zip code is 85034",
    "Puruntie 82 and 28245 Puruntie 82",
    "Via Franscini 71, 6900 Lugano",
    "Hauptstraße 5, Erzsébet tér 19.",
    "12 rue de la Paix",
    "my address is 9816 214 Pavlou Drandaki",
    "meet me at the corner of 5th and Main",
    '{"zip": "85034", "phone": 4155550132}',
    "SSN 078-05-1120, ss# 078 05 1120",
    "ITIN 912-70-1234, taxpayer id 912 70 1234",
    "passport X1234567",
    "driver's license A1234567, DL B7654321",
    "card 4111 1111 1111 1111, 5555-5555-5555-4444, 371449635398431",
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    real = [json.loads(line)["text"] for line in REAL.read_text(encoding="utf-8").splitlines()]
    building = [row["full_text"] for row in json.loads(BUILDING.read_text(encoding="utf-8"))]
    return [*EXAMPLES, *real, *building]


def test_integer_tags_are_the_float_scores_tags(texts: list[str]) -> None:
    tagger = load_tagger()
    assert tagger is not None
    rec = Scrubber(entities=["PERSON"])._names
    decided = 0
    for text in texts:
        toks = tokenize(text)
        ctx = tagger.context(text, toks, rec.gazetteer, rule_scores(toks, rec.find(text)))
        want = [s > -tagger.bias for s in tagger.tag(ctx)]
        assert tagger.positive(ctx) == want, text
        assert tagger.positive(ctx) == want, text  # again, from the cached windows
        decided += sum(want)
    assert isinstance(tagger._exact, _Exact)  # the shipped weights are whole units of 1e-4
    assert decided > 1000  # names were found: the comparison covered both tags


def test_a_score_at_the_threshold_is_decided_by_the_float_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.1 + 0.2 is 3,000 units exactly, the threshold 0.3 too; as floats 0.1 + 0.2 = 0.30000000000000004 > 0.3
    tagger = PersonTagger({"b": 0.1, "w=anna": 0.2}, bias=-0.3)
    calls = []
    score = PersonTagger.score
    monkeypatch.setattr(PersonTagger, "score", lambda self, *a: calls.append(a[1]) or score(self, *a))
    text = "met anna"
    toks = tokenize(text)
    ctx = tagger.context(text, toks, _GAZ, [0.0, 0.0])
    assert tagger.positive(ctx) == [False, True]  # "met" is skipped (a lowercase word); "anna" is P
    assert calls == [1]  # only the token whose integer score is the threshold took the float sum
    assert tagger.tag(ctx)[1] == 0.1 + 0.2 > 0.3


def test_weights_off_the_1e4_grid_keep_the_float_scores() -> None:
    tagger = PersonTagger({"w=anna": 5.00001, "b": -1.0}, bias=0.0)
    text = "Anna Berg met anna"
    toks = tokenize(text)
    ctx = tagger.context(text, toks, _GAZ, [0.0] * len(toks))
    assert tagger.positive(ctx) == [True, False, False, True]
    assert tagger._exact is None


def test_context_features_keep_the_trained_order() -> None:
    text = "Dr. Anna Berg met"
    toks = tokenize(text)  # Dr . Anna Berg met
    ctx = PersonTagger().context(text, toks, _GAZ, [0.0, 0.0, 0.9, 0.9, 0.0])
    assert context_features(ctx, 2, "O", "P") == [
        "g=FT",
        "gs=FTS",  # after "." a sentence may start
        "r=hi",
        "rc=hiT",
        "rg=hiFT",
        "-1w=.",
        "-2w=dr",
        "+1w=berg",
        "+2w=met",
        "-1g=-O",
        "+1g=LT",
        "-1t=O",
        "-2t=PO",
        "-1tc=OTF",
        "-1wc=.T",
        "+1wc=bergT",
        "-1w+1w=.|berg",
        "ng=FTLT",
        "pg=-OFT",
        "title",
    ]


def _gated() -> list[tuple[str, regex.Pattern[str], regex.Pattern[str]]]:
    """Every (name, pattern, gate) pair the recognizers scan with."""
    scrubber = Scrubber()
    out = []
    for r in scrubber.analyzer.registry.recognizers:
        for rule, rx, gate in getattr(r, "rules", ()):
            if gate is not None:
                out.append((rule.name, rx, gate))
        if hasattr(r, "gates"):  # an id number's cued and bare patterns
            for rx, gate in zip((r.cued, r.bare), r.gates, strict=True):
                if rx is not None and gate is not None:
                    out.append((r.name, rx, gate))
    out += [
        ("address cue", _address._CUE_CORE_RE, _address._CUE_GATE),
        ("corner", _address._CORNER_RE, _address._CORNER_GATE),
        ("key=value", _recognizers._KV_RE, _recognizers._KV_GATE),
    ]
    return out


def test_a_gate_finds_something_wherever_its_pattern_matches(texts: list[str]) -> None:
    gated = _gated()
    assert len(gated) == 14  # six address rules, the cue and corner cores, four id cues, two bare ids, key=value
    for name, rx, gate in gated:
        hits = [t for t in texts if rx.search(t)]
        assert hits, name  # each pattern matched somewhere: its gate was tried on a real match
        assert all(gate.search(t) for t in hits), name
        assert not gate.search("Hi, I am Li Wei, order 2662420 has a refund (431)\nOrder status: shipped"), name


def test_card_and_ssn_hints_hold_wherever_those_recognizers_find(texts: list[str]) -> None:
    scrubber = Scrubber()
    found = {"CREDIT_CARD": 0, "US_SSN": 0, "US_ITIN": 0}
    for r in scrubber.analyzer.registry.recognizers:
        entity = r.supported_entities[0]
        if entity not in found:
            continue
        hint = _engine._CARD_HINT if entity == "CREDIT_CARD" else _engine._NINE_HINT
        for text in texts:
            if r.analyze(text, [entity], None):
                found[entity] += 1
                assert hint.search(text), (entity, text)
                assert entity in scrubber._wanted(text)
    assert all(found.values()), found
    assert not _engine._CARD_HINT.search("order 2662420 and 1234 5678 901")  # 11 digits: no card
    assert not _engine._NINE_HINT.search("order 26624201 and 1234 5678")


def test_a_pickled_tagger_leaves_its_caches_behind() -> None:
    tagger = PersonTagger({"w=anna": 5.0, "b": -1.0}, bias=0.0)
    text = "Anna Berg met anna"
    toks = tokenize(text)
    ctx = tagger.context(text, toks, _GAZ, [0.0] * len(toks))
    tags = tagger.positive(ctx)
    assert isinstance(tagger._exact, _Exact) and tagger._exact.windows and tagger._facts
    copy = pickle.loads(pickle.dumps(tagger))
    assert copy == tagger and copy._exact is False and not copy._facts and not copy._word_score
    assert copy.positive(copy.context(text, toks, _GAZ, [0.0] * len(toks))) == tags == [True, False, False, True]
