"""The scrubber's shortcuts decide exactly what the long way decides: the tagger's integer scores give the float
scores' tags, and a gate (or a prefilter hint) finds something in every text its pattern matches in."""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from evaltray.scrub import Scrubber, _address, _engine, _recognizers
from evaltray.scrub._names import CAP_RE, FIRST, LAST, WORD, Gazetteer, capitalised
from evaltray.scrub._tagger import (
    TOKEN_RE,
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


def _tags_and_windows(tagger: PersonTagger, text: str) -> tuple[list[bool], int]:
    toks = tokenize(text)
    ctx = tagger.context(text, toks, _GAZ, [0.0] * len(toks))
    want = [s > -tagger.bias for s in tagger.tag(ctx)]
    got = tagger.positive(ctx)
    assert got == want, text
    assert isinstance(tagger._exact, _Exact)
    return got, len(tagger._exact.shared)


def test_a_window_next_to_a_number_no_feature_names_shares_its_score() -> None:
    # "+1w=7" and "-2w=7" name the number 7; no feature names 8 or 9; "+1g=-O" reads the flags and case of the
    # word after (a number: no flags, case O). Only windows next to a number are shared (``_Exact.shared``).
    weights = {"b": 0.2, "w=anna": 0.5, "+1w=7": -1.0, "-2w=7": 1.0, "+1g=-O": 0.05, "w=berg": 0.3}
    tagger = PersonTagger(weights, bias=-0.6)
    assert _tags_and_windows(tagger, "Anna 8") == ([True, False], 1)
    assert _tags_and_windows(tagger, "Anna 9") == ([True, False], 1)  # the same shared window: 9 stands as 8 did
    assert _tags_and_windows(tagger, "Anna 7") == ([False, False], 2)  # 7 is named: a window of its own
    assert _tags_and_windows(tagger, "Anna Xyz") == ([True, False], 2)  # no number near: worked out, not shared
    # two after: "Berg" (0.5 short of the threshold alone) is P only where 7 is two before it
    assert _tags_and_windows(tagger, "7 met Berg") == ([False, False, True], 3)
    assert _tags_and_windows(tagger, "8 met Berg") == ([False, False, False], 4)
    assert _tags_and_windows(tagger, "9 met Berg") == ([False, False, False], 4)
    # a title before a token is kept whatever the model names ("title" reads it): Dr and Xy stay apart
    titled = PersonTagger({"b": 0.2, "title": 0.5}, bias=-0.6)
    assert _tags_and_windows(titled, "Dr Qrs 5")[0] == [False, True, False]
    assert _tags_and_windows(titled, "Xy Qrs 5")[0] == [False, False, False]
    assert _tags_and_windows(titled, "Dr . Qrs 5")[0] == [False, True, True, False]


# ------------------------------------------------------------------------------------- session 25 shortcuts

#: The OTLP bench's question after its name was replaced: the check after replacement scans it again.
_QUESTION = "Hi, I am <PERSON_1>, order 2662420 has a refund, what can you do? (431)\nOrder status: shipped"


def _word_gated() -> list[tuple[str, regex.Pattern[str]]]:
    """Every address rule and core the word gates may skip, by the name :func:`_address._may_match` knows it by."""
    out = [(rule.name, regex.compile(rule.pattern)) for rule in _recognizers.ADDRESS_RULES]
    out += [(f"core{i}", rx) for i, rx in enumerate(_address._CORE_RES)]
    return [*out, ("cue", _address._CUE_CORE_RE)]


def test_a_word_gate_lets_through_every_text_its_pattern_matches_in(texts: list[str]) -> None:
    skipped = dict.fromkeys(("us-street", "us-street-lower", "core1", "core2", "core3", "cue"), 0)
    for name, rx in _word_gated():
        hits = [t for t in texts if rx.search(t)]
        assert hits, name
        assert all(_address._may_match(name, _address._Words.of(t)) for t in hits), name
        if name in skipped:
            skipped[name] = sum(not _address._may_match(name, _address._Words.of(t)) for t in texts)
            assert not _address._may_match(name, _address._Words.of(_QUESTION)), name
    assert min(skipped.values()) > 100  # each gate skips its scan on most texts


def test_word_gates_read_whole_ascii_words_only() -> None:
    words = _address._Words.of("Ship to 12 Main St. now")
    assert words is not None and words.runs == {"Ship", "to", "Main", "St", "now"}
    assert words.low == {"ship", "to", "main", "st", "now"}
    assert _address._Words.of("12 Hauptstraße") is None  # not ASCII: every pattern is scanned
    assert _address._may_match("core2", None) and _address._may_match("us-street", None)
    assert _address._may_match("us-street", _address._Words.of("12 Main Street"))
    assert not _address._may_match("us-street", _address._Words.of("12 Main street"))  # as written: no match
    assert regex.search(_recognizers.ADDRESS_RULES[0].pattern, "12 Main street") is None
    assert _address._may_match("core2", _address._Words.of("Hauptweg 5"))  # a street type ending a word
    for _ in range(2):  # worked out, then remembered: the same answers
        assert _address._may_match("core2", _address._Words.of("Hauptweg 5, Kungsgatan 2"))
        assert not _address._may_match("core2", _address._Words.of("Hauptwe 5, Kungsga 2, HAUPTWEG"))
    assert _address._ENDS_ATTACHED["Hauptweg"] and not _address._ENDS_ATTACHED["HAUPTWEG"]
    assert _address._spelled("Bluffs?|Way") == {"Bluff", "Bluffs", "Way"}
    assert _address._spelled("weg|stra(?:ss|ß)e|tie") == {"weg", "strasse", "straße", "tie"}


def test_a_pattern_searched_from_the_end_finds_a_match_exactly_where_it_does(texts: list[str]) -> None:
    from evaltray.scrub import _ids, _names

    pairs = [
        (_names._STRONG_CUE_RE, _names._STRONG_CUE_END),
        (_names._WEAK_CUE_RE, _names._WEAK_CUE_END),
        (_names._SIGNOFF_RE, _names._SIGNOFF_END),
        (_names._JSON_NAME_KEY_RE, _names._JSON_NAME_KEY_END),
        (_names._SENTENCE_START_RE, _names._SENTENCE_START_END),
        (_names._MOTION_RE, _names._MOTION_END),
        (_names._PLACE_CUE_RE, _names._PLACE_CUE_END),
        (_ids._ID_CUE_RE, _ids._ID_CUE_END),
    ]
    extra = ['{"first_name": "Anna", "last_name": "Berg"}', "We moved here from Kenosha last May"]
    windows = {t[max(0, i - 48) : i] for t in [*texts, *extra] for i in range(len(t) + 1)}
    for forward, backward in pairs:
        found = [w for w in windows if forward.search(w)]
        assert found, forward.pattern  # each matched somewhere: both outcomes were compared
        assert [w for w in windows if backward.search(w)] == found, forward.pattern


def test_prefilter_shortcuts_decide_as_the_hints_alone(texts: list[str]) -> None:
    joined = re.compile("|".join(h.pattern for h in _engine._ADDRESS_HINTS), re.IGNORECASE)  # the hint before
    for text in [*texts, _QUESTION, "00000001000000000000000000000001"]:
        low = text.lower()
        assert any(h.search(text) for h in _engine._ADDRESS_HINTS) == bool(joined.search(text))
        if _engine._URL_HINT.search(text):
            assert "=" in text or "://" in text or "www." in low
        _hints_decide_as_their_patterns(text)
        digit = _engine._ANY_DIGIT.search(text)
        if digit is not None:
            first = digit.start()
            assert bool(_engine._DIGITS7.search(text, first)) == bool(_engine._DIGITS7.search(text))
            assert bool(_engine._IBAN_HINT.search(text, max(0, first - 2))) == bool(_engine._IBAN_HINT.search(text))
    assert "CREDIT_CARD" not in Scrubber()._wanted("00000001000000000000000000000001")  # no boundary: no card


#: The prefilter's hints as the patterns they were (session 26): the functions must decide as these do.
_IP_PATTERN = re.compile(r"\d\.\d+\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:")
_KEY_PATTERN = re.compile(
    r"sk-|[ps]k-lf-|sk_|pk_|rk_|whsec_|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-"
    r"|AIza|hf_|npm_|SG\.|SK[0-9a-f]{8}|eyJ|PRIVATE KEY"
)
_HANDLE_PATTERN = re.compile(r"[^\W\d_][._\-][^\W\d_]")


def _hints_decide_as_their_patterns(text: str) -> None:
    assert _engine._ip_hint(text) == bool(_IP_PATTERN.search(text)), text
    assert _engine._key_prefix(text) == bool(_KEY_PATTERN.search(text)), text
    assert _engine._handle_hint(text) == bool(_HANDLE_PATTERN.search(text)), text
    seven = _engine._DIGITS7.search(text)
    for hint in (_engine._CARD_HINT, _engine._NINE_HINT):  # each match starts seven digits: searched from there
        assert bool(hint.search(text)) == (seven is not None and bool(hint.search(text, seven.start()))), text


@given(st.text(alphabet="sSkKpPlLfF-_.: 0189abcdefxoghrAIJGyPRVTEé²½Ⅳ٣\n", max_size=40))
def test_prefilter_hints_decide_as_their_patterns_on_any_text(text: str) -> None:
    _hints_decide_as_their_patterns(text)


def test_prefilter_hints_find_each_alternative() -> None:
    for text in ["at 10.0.0.1", "fe80::1", "a:1:", "x sk-proj-1", "pk-lf-9", "SKabcdef0123", "ghs_x", "xoxr-1"]:
        _hints_decide_as_their_patterns(text)
        assert _engine._ip_hint(text) or _engine._key_prefix(text), text
    for text in ["anna.berg", "é-x", "a_b", "Ⅳ-b"]:  # Ⅳ is alphanumeric and no decimal digit: a letter to \\w
        assert _engine._handle_hint(text) and _HANDLE_PATTERN.search(text), text
    for text in ["a_1", "٣_a", "_a", "a.", "1.5", "SKabcdefg"]:
        assert not _engine._handle_hint(text) and not _engine._key_prefix(text), text


def test_a_short_text_is_scanned_without_the_timeout_a_long_one_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_recognizers, "REGEX_TIMEOUT", 1e-12)  # any timed scan times out at once
    scrubber = Scrubber()
    line = "Call me on 0151 234 5678. I live at 12 main street. "  # 52 characters
    short = (line * 40)[: _recognizers.UNTIMED_CHARS]  # 19 whole lines and the start of a 20th
    result = scrubber.scrub_trace("t1", [{"role": "user", "content": short}])
    assert not result.quarantined and result.counts == {"PHONE": 19, "ADDRESS": 19}
    long = (line * 40)[: _recognizers.UNTIMED_CHARS + 1]
    result = scrubber.scrub_trace("t2", [{"role": "user", "content": long}])
    assert result.quarantined and result.error == "trace t2: scrubbing failed (TimeoutError)"


def test_a_trace_with_nothing_found_is_not_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    scrubber = Scrubber(max_field_chars=40)
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "tool", "content": '{"answer":  "Paris", "n": 3}'},  # JSON text, its own spacing
    ]
    fields = {"metadata": {"topic": "geography", "long": "x" * 50}}
    monkeypatch.setattr(Scrubber, "_finish", lambda *a: pytest.fail("replaced a text with nothing found"))
    result = scrubber.scrub_trace("t1", messages, fields)
    assert result.messages == messages and result.counts == {} and result.truncated == 1
    cut = "x" * 40 + _engine.TRUNCATED_MARKER.format(dropped=10, total=50)
    assert result.fields == {"metadata": {"topic": "geography", "long": cut}}


_ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
_WORDY = st.text(alphabet=st.sampled_from("Aa Zz'’-_<>0\t\x1c\n.,"), max_size=40)


def _same_tokens(text: str) -> None:
    assert tokenize(text) == [m.span() for m in TOKEN_RE.finditer(text)]
    assert [m.span() for m in capitalised(text)] == [m.span() for m in CAP_RE.finditer(text)]


@given(st.one_of(_ASCII, _WORDY))
def test_ascii_twins_find_what_the_unicode_patterns_find(text: str) -> None:
    _same_tokens(text)  # "\x1c" is space to `re` but not to `regex`: the twin spells its spaces out


def test_ascii_twins_on_the_test_texts(texts: list[str]) -> None:
    checked = [t for t in texts if t.isascii()]
    assert len(checked) > 1000
    for text in checked:
        _same_tokens(text)
    _same_tokens("O'Neil and Jean-Luc met D’Angelo")  # not ASCII: the regex module's patterns themselves


def _scrub_both(scrubber: Scrubber, monkeypatch: pytest.MonkeyPatch, messages: list, fields: dict) -> tuple:
    """One trace scrubbed as it is, and with every part walked again (the replacing pass as it was)."""
    fast = scrubber.scrub_trace("t1", messages, fields)
    with monkeypatch.context() as m:
        m.setattr(_engine, "_settled", lambda *a: False)
        slow = scrubber.scrub_trace("t1", messages, fields)
    return fast, slow


def test_a_part_with_nothing_found_keeps_its_first_walk_unless_it_names_a_known_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scrubber = Scrubber()
    messages = [
        {"role": "system", "content": "You are a helpful support assistant."},
        {"role": "user", "content": "Hi, I am Maria Kowalski, my order is late."},
        {"role": "assistant", "content": "Sorry, Kowalski, it ships today."},  # nothing found in it alone
    ]
    fields = {"metadata": {"service": "support-bot"}, "spans": [{"id": "00f1", "name": "chat gpt-4o-mini"}]}
    fast, slow = _scrub_both(scrubber, monkeypatch, messages, fields)
    assert scrubber.findings("Sorry, Kowalski, it ships today.") == []
    assert (
        fast.messages
        == slow.messages
        == [
            messages[0],
            {"role": "user", "content": "Hi, I am <PERSON_1>, my order is late."},
            {"role": "assistant", "content": "Sorry, <PERSON_1_LAST>, it ships today."},
        ]
    )
    assert fast.fields == slow.fields == fields and fast.counts == slow.counts == {"PERSON": 2}


def test_reusing_parts_scrubs_every_trace_as_walking_them_again(
    texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scrubber = Scrubber()
    for k in range(0, 600, 3):  # traces of three texts (the second also as metadata and a span's name) and a reply
        a, b, c = texts[k : k + 3]
        messages = [{"role": "user", "content": a}, {"role": "assistant", "content": b}, {"role": "user", "content": c}]
        # a reply that names again, alone, the last word of each value found in the first text (its known values)
        again = " and ".join(a[s:e].split()[-1] for s, e, _, _ in scrubber.findings(a) if a[s:e].split())
        messages.append({"role": "assistant", "content": f"thanks, {again.lower()}, {again}"})
        fields = {"metadata": {"note": b, "n": 2}, "spans": [{"name": b[:40], "kind": "llm"}], "error": a[:30]}
        fast, slow = _scrub_both(scrubber, monkeypatch, messages, fields)
        assert (fast.messages, fast.fields, fast.counts, fast.error) == (
            slow.messages,
            slow.fields,
            slow.counts,
            slow.error,
        )


def _iban_shaped_id(body: str) -> str:
    """ "de", check digits and ``body`` (28 hex digits): 32 lowercase hex characters that are a valid IBAN."""
    moved = body.upper() + "DE00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in moved)) % 97
    return f"de{check:02d}{body}"


def test_a_lowercase_hex_trace_id_is_judged_as_detection_judges_it() -> None:
    scrubber = Scrubber()
    rng = random.Random(7)
    ids = ["".join(rng.choice("0123456789abcdef") for _ in range(32)) for _ in range(3000)]
    ids += ["".join(rng.choice("0123456789") for _ in range(32)) for _ in range(200)]  # digits only
    ids += ["".join(rng.choice("abcdef") for _ in range(32)) for _ in range(200)]  # letters only
    ibans = [_iban_shaped_id("".join(rng.choice("0123456789abcdef") for _ in range(28))) for _ in range(50)]
    ids += ibans + [f"{seed:08x}{i:024x}" for seed in (1, 2) for i in range(1, 500)]  # the OTLP bench's ids
    assert all(scrubber.findings(x) == [] for x in ids if scrubber._plain_id(x))
    assert all(scrubber._detect(x) == [] for x in ids if scrubber._plain_id(x))  # the long way: nothing either
    assert sum(map(scrubber._plain_id, ids)) > 3500
    for x in ibans:  # two letters and two digits first: detected, and each of these is an IBAN
        assert not scrubber._plain_id(x) and scrubber.findings(x) == [(0, 32, "IBAN", 0.9)]


def test_a_trace_id_is_detected_the_long_way_where_the_shortcut_reasons_about_other_recognizers() -> None:
    assert Scrubber()._own_recognizers and not Scrubber(presidio=True)._own_recognizers
    assert not Scrubber()._plain_id("ab12" + "0" * 28) and Scrubber()._plain_id("0" * 32)
