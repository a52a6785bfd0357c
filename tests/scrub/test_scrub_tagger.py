"""The person-name tagger: tokens, features' facts, spans from tags, training, the shipped model, the recognizer."""

from __future__ import annotations

import pytest

from evaltray.scrub import Scrubber
from evaltray.scrub._names import FIRST, LAST, WORD, Gazetteer, GazetteerNameRecognizer
from evaltray.scrub._tagger import (
    SCORE_TAGGER,
    PersonTagger,
    TaggedNameRecognizer,
    _shape,
    example,
    features,
    load_tagger,
    parse,
    rule_scores,
    save,
    spans_from_tags,
    tokenize,
    train,
)

_GAZ = Gazetteer({"anna": FIRST, "berg": LAST, "the": WORD, "met": WORD, "today": WORD, "called": WORD})


def _no_rules(text: str) -> list[tuple[int, int, float]]:
    return []


def test_tokenize_offsets_and_shape() -> None:
    text = "O'Brien met J. Smith, twice"
    assert [text[a:b] for a, b in tokenize(text)] == ["O'Brien", "met", "J", ".", "Smith", ",", "twice"]
    assert _shape("McDonald") == "XxXxx"  # a character class repeats at most twice
    assert _shape("A1-b") == "Xd-x"


def test_spans_from_tags_join_initials_and_skip_punctuation() -> None:
    text = "ask J. Smith , now"
    toks = tokenize(text)  # ask J . Smith , now
    assert spans_from_tags(text, toks, [False, True, True, True, True, False]) == [(4, 12)]
    # the dot after a word of more than one letter ends the name: "Smith. Now"
    text = "Smith. Jones"
    assert spans_from_tags(text, tokenize(text), [True, True, True]) == [(0, 5), (7, 12)]


def test_rule_scores_take_each_tokens_best_span() -> None:
    toks = tokenize("Anna Berg met Anna")  # (0,4) (5,9) (10,13) (14,18)
    assert rule_scores(toks, [(0, 9, 0.85), (5, 9, 0.3), (14, 18, 0.6)]) == [0.85, 0.85, 0.0, 0.6]


def test_training_learns_names_and_is_reproducible() -> None:
    texts = [
        ("Anna Berg met the mayor today", [(0, 9)]),
        ("the mayor met Anna Berg", [(14, 23)]),
        ("Anna called the mayor", [(0, 4)]),
        ("the mayor called Berg today", [(17, 21)]),
    ]
    data = [example(text, gold, _GAZ, _no_rules) for text, gold in texts] * 3
    model = train(data, epochs=5)
    again = train(data, epochs=5)
    assert save(model) == save(again)  # one input, one file, byte for byte
    assert parse(save(model)).weights == model.weights
    # run-time scoring (word weights cached per word) sums exactly the features training saw
    ctx, _ = example("Berg met Anna, Anna Berg.", [], _GAZ, _no_rules)
    scores, prev, prev2 = [], "<s>", "<s>"
    for i in range(len(ctx.words)):
        s = -1e9 if ctx.skip[i] else sum(model.weights.get(f, 0.0) for f in features(ctx, i, prev, prev2))
        scores.append(s)
        prev, prev2 = ("P" if s > -model.bias else "O"), prev
    assert model.tag(ctx) == pytest.approx(scores) and model.tag(ctx) == pytest.approx(scores)
    assert [i for i, x in enumerate(ctx.skip) if x] == [1, 3]  # "met" (a lowercase word) and ","; "." may join "J."
    found = model.spans("today Berg met Anna", _GAZ, [])
    assert found == [(6, 10), (15, 19)]
    assert model.spans("the mayor met the mayor", _GAZ, []) == []


def test_the_shipped_model_loads_and_is_small() -> None:
    tagger = load_tagger()
    assert tagger is not None
    assert 1_000 < len(tagger.weights) < 200_000
    assert tagger.weights["b"] < 0  # most tokens are no name: the bias feature leans to "O"


def test_recognizer_adds_tagger_spans_the_rules_lack() -> None:
    # a model that calls any token "zorblax" or "anna" a name; rule spans keep their own score
    tagger = PersonTagger({"w=zorblax": 5.0, "w=anna": 5.0, "b": -1.0})
    rec = TaggedNameRecognizer(_GAZ, tagger=tagger)

    def found(text: str) -> list[tuple[int, int, float]]:
        return [(r.start, r.end, r.score) for r in rec.analyze(text, ["PERSON"])]

    rules = [(r.start, r.end, r.score) for r in GazetteerNameRecognizer(_GAZ).analyze("Dear Anna Berg,", ["PERSON"])]
    got = found("Dear Anna Berg, Zorblax called")
    assert rules and got[: len(rules)] == rules
    assert got[len(rules) :] == [(16, 23, SCORE_TAGGER)]
    assert found("write to anna") == [(9, 13, SCORE_TAGGER)]  # lowercase, but a listed given name
    assert found("write to zorblax") == []  # lowercase and no listed given name: not trusted
    assert found("write to Zorblax@x.org or /home/Zorblax") == []  # inside an address or a path


def test_rule_spans_the_tagger_marks_no_word_of_are_dropped() -> None:
    rules = GazetteerNameRecognizer(_GAZ).analyze("Dear Anna Berg,", ["PERSON"])
    assert [(r.start, r.end) for r in rules] == [(5, 14)]
    # a model that marks "berg" only: the rule span "Anna Berg" stays whole, with the rules' score
    keeps = TaggedNameRecognizer(_GAZ, tagger=PersonTagger({"w=berg": 5.0, "b": -1.0}))
    assert [(r.start, r.end, r.score) for r in keeps.analyze("Dear Anna Berg,", ["PERSON"])] == [
        (5, 14, rules[0].score)
    ]
    # a model that marks no word of it: the rules' span goes (a place or a firm named like a person)
    vetoes = TaggedNameRecognizer(_GAZ, tagger=PersonTagger({"b": -1.0}))
    assert vetoes.analyze("Dear Anna Berg,", ["PERSON"]) == []


def test_tagger_spans_of_titles_alone_are_dropped() -> None:
    # "Mrs" before a placeholder (a scrubbed text scrubbed again) is no name, nor is a listed non-name
    tagger = PersonTagger({"w=mrs": 5.0, "w=berg": 5.0, "w=anna": 5.0, "b": -1.0})
    rec = TaggedNameRecognizer(_GAZ, tagger=tagger)
    assert rec.analyze("Mrs. <PERSON_1> wrote", ["PERSON"]) == []
    assert [(r.start, r.end) for r in rec.analyze("Mrs. Berg wrote", ["PERSON"])] == [(5, 9)]  # the name, not "Mrs"
    # the span's own words are read, wherever it lies ("Anna" leads the text, "Mrs" is the span)
    assert [(r.start, r.end) for r in rec.analyze("Anna wrote to Mrs. <PERSON_1>", ["PERSON"])] == [(0, 4)]


def test_lowercase_text_reaches_the_tagger() -> None:
    text = "i spoke with jessica about the refund"
    assert not GazetteerNameRecognizer().has_candidate(text)  # no capital: the rules' gate stays shut
    assert TaggedNameRecognizer().has_candidate(text)
    assert not TaggedNameRecognizer().has_candidate("i spoke with the manager about the refund")


def test_a_lowercase_word_alone_in_its_text_is_no_name() -> None:
    # a trace's tag or label ("dev", as Langfuse's pydantic-ai trace carries it) reads no person; the same word
    # in running text may be one
    s = Scrubber(entities=["PERSON"])
    assert s.findings("dev") == [] and s.findings(" jessica ") == []
    assert [t for *_, t, _ in s.findings("my name is dev and i need help")] == ["PERSON"]
    assert [t for *_, t, _ in s.findings("i spoke with jessica about the refund")] == ["PERSON"]


def test_default_scrubber_uses_the_tagger() -> None:
    s = Scrubber(entities=["PERSON"])
    assert isinstance(s._names, TaggedNameRecognizer) and s._names.tagger is load_tagger()
