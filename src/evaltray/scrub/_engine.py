"""The scrubber: Presidio analyzer + anonymizer behind a cheap prefilter, one placeholder map per trace.

Traces are walked, not flattened: a string that is a JSON object or array (a tool's arguments or result,
a structured output) is parsed, its keys and string leaves scrubbed, and written back in its own style
(see :func:`dumps_like`; byte for byte as it was when nothing in it changed), so valid JSON stays valid.
Numbers, and strings that are only a number ("7751905257"), are kept unless their key names PII
(``zip``, ``phone``, ``card_number``: ``key_entity``). Schema keys (a message's ``role``, a content
part's ``type``, a span's ``kind``…) keep their value only when it looks like structure (``_STRUCTURAL``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import regex
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import IpRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry

from . import _presidio  # noqa: I001  (must come before any other presidio import)
from ._address import AddressRecognizer
from ._ids import (
    AnyCaseIbanRecognizer,
    PhoneNumberRecognizer,
    driver_license_recognizer,
    itin_recognizer,
    passport_recognizer,
    ssn_recognizer,
)
from ._names import (
    NONPERSON,
    WORD,
    NameHandleRecognizer,
    load_gazetteer,
    plausible_model_name,
)
from ._placeholders import LABELS, PLACEHOLDER_RE, PlaceholderMap
from ._recognizers import (
    ADDRESS_RULES,
    API_KEY_RULES,
    KeyValueRecognizer,
    LuhnCardRecognizer,
    OfflineEmailRecognizer,
    RuleRecognizer,
    TokenUrlRecognizer,
    key_entity,
)
from ._tagger import TaggedNameRecognizer
from ._vault import Vault

#: Every entity the scrubber knows, as Presidio names; all of them are on by default.
ENTITIES: tuple[str, ...] = tuple(LABELS)
#: A string field longer than this is stored cut to it (``[ingest] scrub_max_field_chars``).
MAX_FIELD_CHARS = 1_000_000
#: Texts longer than this are analysed in pieces cut at line breaks (or spaces), so 1 MB stays linear.
CHUNK_CHARS = 20_000
#: Every text's findings are remembered (up to this many characters of text, then the memory starts over):
#: an application's system prompt, its canned replies and tool outputs recur in trace after trace, a chat's
#: history in each of its turns, and the same text often comes twice in one row (content and input_text).
_CACHE_MAX_CHARS = 8_000_000
#: The reference path (``presidio=True``) remembers only texts this long, as the scrubber did before.
_PRESIDIO_CACHE_MIN_CHARS = 200
#: Replacing a value can expose another that was glued to it ("0143sk-proj-…": the key starts a word only
#: once the phone before it is a placeholder); most texts settle in one or two rounds, a text that has not
#: after this many is quarantined.
_MAX_ROUNDS = 10


class ScrubError(EvaltrayError):
    """A trace could not be scrubbed (it is quarantined), or the scrubber is misconfigured."""


@dataclass(slots=True)
class ScrubResult:
    """One trace's outcome: scrubbed messages, or ``messages=None`` and an ``error`` (quarantined)."""

    trace_id: str
    messages: list[dict[str, Any]] | None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: the other text fields given to :meth:`Scrubber.scrub_trace`, scrubbed (None when quarantined)
    fields: dict[str, Any] | None = None
    #: fields longer than the scrubber's ``max_field_chars``: stored cut, with a marker
    truncated: int = 0

    @property
    def quarantined(self) -> bool:
        return self.messages is None


class _KeepScores(ContextAwareEnhancer):
    """No context rescoring: evaltray's recognizers score with their own cues, and no NLP tokens exist."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0,
            min_score_with_context_similarity=0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: Any,
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        return raw_results


def resolve_entities(entities: Sequence[str] | None) -> tuple[str, ...]:
    """Presidio entity names for ``entities`` given as Presidio names or placeholder labels (EMAIL, PHONE...)."""
    if entities is None:
        return ENTITIES
    by_label = {label: ent for ent, label in LABELS.items()}
    out = []
    for e in entities:
        if not isinstance(e, str):
            raise ScrubError(f"entities must be names such as 'EMAIL', got {e!r}")
        name = e.upper()
        ent = name if name in LABELS else by_label.get(name)
        if ent is None:
            known = ", ".join(LABELS.values())
            raise ScrubError(f"unknown entity {e!r} (one of: {known})")
        if ent not in out:
            out.append(ent)
    return tuple(out)


# ---------------------------------------------------------------------------------------- prefilter

_DIGITS7 = re.compile(r"\d(?:[\s().\-/+]{0,3}\d){6}")
# Digits as the card and SSN/ITIN recognizers' patterns need them (Presidio's 13-17 in groups and evaltray's 12-19
# digits, each apart by at most one space or hyphen, a word boundary either side; 9 digits apart by at most one
# space, tab, hyphen or dot), read with the regex module's own \d and \w: without these the recognizers cannot
# match. (A 32-digit trace id holds no card: no boundary within 19 digits of its start.)
_CARD_HINT = regex.compile(r"(?<!\w)\d(?:[ \-]?\d){11,18}(?!\w)")
_NINE_HINT = regex.compile(r"\d(?:[ \t\-.]?\d){8}")
_IBAN_HINT = re.compile(r"[A-Za-z]{2}\d{2}")
# An IPv4 address's first dots, an IPv6 address's first two colons: searched only where the text has them.
_IPV4_HINT = re.compile(r"\d\.\d+\.\d")
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:")
_URL_HINT = re.compile(r"://|www\.|[?&#;][\w.-]+=", re.IGNORECASE)
# Provider key prefixes, matched as written (the rules are case-sensitive), and the words that introduce a
# secret in any case: plain substring tests (each in C, together cheaper than one search of their alternation,
# and than one case-blind regex), and one pattern for Twilio's "SK" and 32 hex digits.
_KEY_PREFIXES = (
    *("sk-", "pk-lf-", "sk_", "pk_", "rk_", "whsec_", "github_pat_", "glpat-", "hf_", "npm_", "SG.", "eyJ"),
    *("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "AIza", "PRIVATE KEY"),
    *(f"gh{c}_" for c in "pousr"),
    *(f"xox{c}-" for c in "abposr"),
)
_TWILIO_HINT = re.compile(r"SK[0-9a-f]{8}")
_KEY_WORDS = ("bearer", "token", "basic", "key", "secret", "passw", "pwd", "passphrase")
_DOC_WORDS = ("passport", "licen", "permit")
# A number and the word after it (a house number and its street), else a unit or postal word, a state and ZIP,
# a UK postcode, a word and a number; the first alternative, searched alone first, finds most addresses fast.
_ADDRESS_HINTS = (
    re.compile(r"\d[ \t]+(?:[NSEW]\.?[ \t]+)?[\w'’.\-]+[ \t]", re.IGNORECASE),
    re.compile(
        r"\b(?:apt|apartment|suite|ste|unit|box|zip|postal|post[ \t]?code|apo|fpo|dpo)\b"
        r"|\b[A-Z]{2},?[ \t]+\d{5}\b|\b[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}\b|\w[ \t]+\d{1,5}(?:\b|\.)",
        re.IGNORECASE,
    ),
)
_ANY_DIGIT = re.compile(r"\d")
# "item_id": "7751905257" / item ID: 2757705742 -- ten digits in an id field are an id, not a phone.
_ID_BEFORE_RE = re.compile(r"(?i)(?:\bid|_id|Id)[\"']?\s*[:=#]\s*[\"']?$")
_ANY_UPPER = re.compile(r"[^\W\d_a-z]")
#: An OpenTelemetry trace id as the OTLP readers write it: 32 lowercase hex digits (see :meth:`Scrubber._plain_id`).
_OTEL_ID_RE = re.compile(r"[0-9a-f]{32}")
# 2025-04-14 in a model name or a log line: a date, not a phone number (phones group 3-3-4, not 4-2-2)
_ISO_DATE_RE = re.compile(r"(?<!\d)(?:19|20)\d\d-[01]\d-[0-3]\d(?!\d)")


def _has_any(text: str, parts: Iterable[str]) -> bool:
    """Whether one of ``parts`` (characters of a string, or strings) is in ``text``: a few substring tests in
    C, cheaper than any regex search."""
    return any(part in text for part in parts)


def _key_prefix(text: str) -> bool:
    """Whether ``text`` holds a provider key's prefix as the API key rules write them (sk-, AKIA, ghp_ …)."""
    return _has_any(text, _KEY_PREFIXES) or ("SK" in text and _TWILIO_HINT.search(text) is not None)


def _ip_hint(text: str) -> bool:
    """Whether ``text`` may hold an IP address: digits either side of a dot, twice, or two colons close by."""
    return ("." in text and _IPV4_HINT.search(text) is not None) or (
        text.count(":") > 1 and _IPV6_HINT.search(text) is not None
    )


def _handle_hint(text: str) -> bool:
    """Whether a letter stands either side of a ".", "_" or "-" in ``text``, where a name handle may be. A letter
    here is what ``re``'s ``[^\\W\\d_]`` is: alphanumeric and no decimal digit (each separator is looked at, not
    every character)."""
    last = len(text) - 1
    for sep in "._-":
        at = text.find(sep, 1)
        while 0 < at < last:
            before, after = text[at - 1], text[at + 1]
            if before.isalnum() and after.isalnum() and not before.isdecimal() and not after.isdecimal():
                return True
            at = text.find(sep, at + 1)
    return False


def _split_chunks(text: str, size: int) -> list[tuple[int, str]]:
    """Pieces of at most ~``size`` chars cut after a newline (else a space), with their offsets."""
    out, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind("\n", start + size // 2, end)
            if cut < 0:
                cut = text.rfind(" ", start + size // 2, end)
            if cut >= 0:
                end = cut + 1
        out.append((start, text[start:end]))
        start = end
    return out


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    entity: str
    score: float


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping findings become one span (their union), typed by the most confident one.

    Union, not trimming: a partly masked value is still a leak.
    """
    if not spans:
        return []
    spans.sort(key=lambda s: (s.start, -s.end))
    out = [spans[0]]
    for s in spans[1:]:
        cur = out[-1]
        if s.start < cur.end:
            if s.end <= cur.end:
                continue  # contained: the container's type stands ("Laura" inside a street address)
            better = s.score > cur.score
            if {s.entity, cur.entity} == {"PERSON", "ADDRESS"}:
                better = s.entity == "ADDRESS"  # a name glued to an address is the addressee: one address
            out[-1] = _Span(cur.start, s.end, s.entity if better else cur.entity, max(cur.score, s.score))
        else:
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------- scrubber


def _filtered(base: type[EntityRecognizer], gazetteer: Any) -> Any:
    """``base`` (a model's PERSON recognizer) whose findings the gazetteer vets (:func:`plausible_model_name`)."""

    def analyze(self: Any, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        found = base.analyze(self, text, entities, nlp_artifacts)
        return [r for r in found if plausible_model_name(gazetteer, text, r.start, r.end)]

    vetted: type[EntityRecognizer] = type(f"Vetted{base.__name__}", (base,), {"analyze": analyze})
    return vetted


def _only_ner(nlp: Any) -> None:
    """Run only the entity recognizer (and the embedding layer it listens to): the tagger, parser and lemmatizer
    cost most of a small pipeline's time and the scrubber reads none of them."""
    if "ner" not in nlp.pipe_names:
        return
    keep = {"ner"}
    for name in ("tok2vec", "transformer"):
        if name in nlp.pipe_names and "ner" in getattr(nlp.get_pipe(name), "listening_components", []):
            keep.add(name)
    nlp.select_pipes(enable=[p for p in nlp.pipe_names if p in keep])


def _apart(neighbour: str, edge: str) -> bool:
    """Whether a known value whose first or last character is ``edge`` ends where ``neighbour`` begins: a
    digit run ends at a letter ("85034zip") and a word at a digit, but neither inside a longer run of its kind."""
    if not neighbour.isalnum():
        return True
    return edge.isalnum() and neighbour.isdigit() != edge.isdigit()


class Scrubber:
    """Replace PII in trace text with consistent placeholders (``<EMAIL_1>``), using Presidio.

    ``entities``: which to scrub (default all of ``ENTITIES``; labels like "EMAIL" work too).
    ``ner``: None uses the shipped name gazetteer; ``"spacy:<model or path>"`` adds an installed spaCy NER
    model and ``"hf:<model or path>"`` a local Hugging Face token-classification model (gazetteer stays on).
    ``vault``: when given, every replaced original is sealed in it under (trace_id, placeholder).
    ``max_field_chars``: a longer string field is cut there (at a space) and marked, so scrubbing one trace
    takes bounded time; the trace's :class:`ScrubResult` counts the fields cut.
    ``presidio``: the scrubber as it was before its direct path: every text through Presidio's AnalyzerEngine
    and AnonymizerEngine instead of :meth:`_recognize` and :func:`_substitute`, and only long texts'
    findings remembered. The same output, slower: the reference the tests and the benchmarks compare against.
    """

    def __init__(
        self,
        entities: Sequence[str] | None = None,
        ner: str | None = None,
        vault: Vault | None = None,
        *,
        name_threshold: float | None = None,
        max_field_chars: int = MAX_FIELD_CHARS,
        presidio: bool = False,
    ) -> None:
        if max_field_chars < 1:
            raise ScrubError(f"max_field_chars must be 1 or more, got {max_field_chars}")
        self.max_field_chars = max_field_chars
        self.entities = resolve_entities(entities)
        self._entities_of: tuple[str, ...] | None = None
        self._entity_frozen: frozenset[str] = frozenset()
        self.ner = ner
        self.vault = vault
        self.name_threshold = name_threshold
        self._gazetteer = load_gazetteer()
        self._names = (
            TaggedNameRecognizer(self._gazetteer)
            if name_threshold is None
            else TaggedNameRecognizer(self._gazetteer, threshold=name_threshold)
        )
        self._handles = NameHandleRecognizer(self._gazetteer)
        self.presidio = presidio
        self.analyzer = self._build_analyzer()
        self.anonymizer = AnonymizerEngine()
        self._selected: dict[tuple[str, ...], list[_Selected]] = {}
        self._detected: dict[str, list[_Span]] = {}
        self._detected_chars = 0
        #: the shipped recognizers alone, asked directly: what :meth:`_plain_id` reasons about
        self._own_recognizers = not (presidio or self._model_person) and dict(RECOGNIZERS.items()) == _SHIPPED

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a worker) without the findings it remembers: they are this process's, and can be large."""
        state = self.__dict__.copy()
        state.update(_detected={}, _detected_chars=0, _selected={})
        return state

    # ------------------------------------------------------------------ construction

    def _build_analyzer(self) -> AnalyzerEngine:
        nlp_engine: Any = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
        registry = RecognizerRegistry(supported_languages=["en"])
        want = set(self.entities)
        for entity, build in RECOGNIZERS.items():
            if entity in want:
                registry.add_recognizer(build(self))
        kv = [e for e in ("PERSON", "ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS", "API_KEY", "USERNAME") if e in want]
        if kv:
            registry.add_recognizer(KeyValueRecognizer(kv))
        self._model_person = False
        if self.ner and "PERSON" in want:
            nlp_engine = self._add_ner(registry, nlp_engine)
        return AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"], context_aware_enhancer=_KeepScores()
        )

    def _add_ner(self, registry: RecognizerRegistry, nlp_engine: Any) -> Any:
        kind, _, model = (self.ner or "").partition(":")
        if not model:
            raise ScrubError(f"ner must look like 'spacy:<model>' or 'hf:<model>', not {self.ner!r}")
        self._model_person = True
        if kind == "spacy":
            import spacy
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import SpacyRecognizer

            # Presidio would try to download a missing model; evaltray never reaches for the network.
            if not (spacy.util.is_package(model) or Path(model).exists()):
                raise ScrubError(f"spaCy model {model!r} is not installed (pip install it, or pass a model folder)")
            engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
            try:
                nlp = spacy.load(model)
            except (OSError, ValueError) as exc:  # a folder that holds no model, or one for another spaCy
                raise ScrubError(f"spaCy model {model!r} could not be loaded: {exc}") from None
            _only_ner(nlp)
            engine.nlp = {"en": nlp}  # type: ignore[assignment]  # Presidio types it as None until loaded
            registry.add_recognizer(_filtered(SpacyRecognizer, self._gazetteer)(supported_entities=["PERSON"]))
            return engine
        if kind in ("hf", "transformers"):
            try:
                import transformers  # noqa: F401
            except ImportError:
                raise ScrubError("ner='hf:…' needs the transformers package (pip install transformers torch)") from None
            recognizer = _presidio.huggingface_ner_recognizer()
            registry.add_recognizer(
                _filtered(recognizer, self._gazetteer)(model_name=model, supported_entities=["PERSON"])
            )
            return nlp_engine
        raise ScrubError(f"unknown ner kind {kind!r}: use 'spacy:<model>' or 'hf:<model>'")

    # ------------------------------------------------------------------ detection

    def _entity_set(self) -> frozenset[str]:
        """``self.entities`` as a set (asked a dozen times per text), made again if they were changed."""
        if self._entities_of is not self.entities:
            self._entity_frozen, self._entities_of = frozenset(self.entities), self.entities
        return self._entity_frozen

    def _wanted(self, text: str) -> list[str]:
        """Entities whose recognizers could possibly fire on ``text`` (trigger characters present)."""
        want = self._entity_set()
        out = []
        digit = _ANY_DIGIT.search(text)
        low = text.lower()
        if "EMAIL_ADDRESS" in want and "@" in text:
            out.append("EMAIL_ADDRESS")
        if digit is not None:
            first = digit.start()  # the hints below cannot match before the first digit (IBAN's letters aside)
            # nor the card and nine-digit hints before the first seven digits: each match of theirs starts one
            seven = _DIGITS7.search(text, first)
            if seven is not None and "PHONE_NUMBER" in want:
                out.append("PHONE_NUMBER")
            if seven is not None and "CREDIT_CARD" in want and _CARD_HINT.search(text, seven.start()):
                out.append("CREDIT_CARD")
            if "IBAN_CODE" in want and _IBAN_HINT.search(text, max(0, first - 2)):
                out.append("IBAN_CODE")
            if seven is not None and _NINE_HINT.search(text, seven.start()):
                out.extend(e for e in ("US_SSN", "US_ITIN") if e in want)
            if any(w in low for w in _DOC_WORDS) or "DL" in text:
                out.extend(e for e in ("PASSPORT", "DRIVER_LICENSE") if e in want)
            if "IP_ADDRESS" in want and _ip_hint(text):
                out.append("IP_ADDRESS")
            if "ADDRESS" in want and any(hint.search(text) for hint in _ADDRESS_HINTS):
                out.append("ADDRESS")
        elif "IP_ADDRESS" in want and "::" in text:
            out.append("IP_ADDRESS")
        if "ADDRESS" in want and "corner of" in low and "ADDRESS" not in out:
            out.append("ADDRESS")  # an intersection needs no digit ("the corner of Main and Elm")
        if "URL" in want and ("=" in text or "://" in text or "www." in low) and _URL_HINT.search(text):
            out.append("URL")
        if "API_KEY" in want and (_key_prefix(text) or any(w in low for w in _KEY_WORDS)):
            out.append("API_KEY")
        if "USERNAME" in want and _handle_hint(text) and self._handles.find(text):
            out.append("USERNAME")
        if "PERSON" in want and (
            self._names.has_candidate(text) if not self._model_person else _ANY_UPPER.search(text) is not None
        ):
            out.append("PERSON")
        return out

    def _analyze_piece(self, text: str) -> list[_Span]:
        wanted = self._wanted(text)
        if not wanted:
            return []
        if self.presidio or self._model_person:  # a model's recognizer reads the NLP engine's tokens
            results = self.analyzer.analyze(text, language="en", entities=wanted)
        else:
            results = self._recognize(text, wanted)
        return [
            _Span(r.start, r.end, r.entity_type, r.score)
            for r in results
            if r.end > r.start
            and not (
                r.entity_type == "PHONE_NUMBER"
                and (
                    _ID_BEFORE_RE.search(text, max(0, r.start - 40), r.start)
                    or _ISO_DATE_RE.search(text, r.start, r.end)
                )
            )
        ]

    def _recognize(self, text: str, wanted: list[str]) -> list[RecognizerResult]:
        """What ``self.analyzer.analyze(text, "en", wanted)`` returns, without its per-call work that evaltray's
        recognizers never read (NLP artifacts, the registry lookup, context enhancement): the recognizers of
        ``wanted`` are asked directly, then low scores and duplicates are dropped as the analyzer drops them."""
        key = tuple(wanted)
        selected = self._selected.get(key)
        if selected is None:
            selected = self._selected[key] = self._select(key)
        results = []
        for recognizer, thresholds, default in selected:
            # no NLP artifacts: none of these recognizers reads them (a model's, which does, keeps the engine)
            for r in recognizer.analyze(text, wanted, None) or ():  # type: ignore[arg-type]
                if r.score >= thresholds.get(r.entity_type, default):
                    results.append(r)
        return EntityRecognizer.remove_duplicates(results) if results else results

    def _select(self, entities: tuple[str, ...]) -> list[_Selected]:
        """The registry's recognizers of ``entities`` (loaded), each with its score thresholds as the analyzer
        reads them: the entity's own, else the recognizer's default, else the analyzer's."""
        out = []
        for r in self.analyzer.registry.recognizers:
            if r.supported_language == "en" and any(e in r.supported_entities for e in entities):
                if not r.is_loaded:
                    r.load()
                    r.is_loaded = True
                thresholds = r.score_thresholds
                out.append((r, thresholds, thresholds.get("default", self.analyzer.default_score_threshold)))
        return out

    def detect(self, text: str) -> list[_Span]:
        """Merged findings in ``text``, never inside an existing placeholder."""
        if not text:
            return []
        if len(text) == 32 and _OTEL_ID_RE.fullmatch(text) and self._plain_id(text):
            return []  # a trace id, unique: not remembered either
        if self.presidio and len(text) < _PRESIDIO_CACHE_MIN_CHARS:
            return self._detect(text)
        found = self._detected.get(text)
        if found is None:
            found = self._detect(text)
            if self._detected_chars + len(text) > _CACHE_MAX_CHARS:
                self._detected.clear()
                self._detected_chars = 0
            self._detected[text] = found
            self._detected_chars += len(text)
        return list(found)  # callers extend and sort the list; the spans themselves are never changed

    def _plain_id(self, text: str) -> bool:
        """Whether no shipped recognizer can find anything in ``text``, 32 lowercase hex digits (an OpenTelemetry
        trace id, judged on its own for every trace, so never found in the memory): a word of digits and the
        letters a-f only, with no space, punctuation or capital and nothing either side of it.

        - phone: a candidate starts where no letter or digit comes before it and ends where none follows, so it
          is the whole id, but is at most 26 characters ("00" and 24); a card's digits likewise at most 19;
        - SSN, ITIN, passport, driver's licence: every cue word has a letter past f, and the bare forms a "-";
        - e-mail, IP address, URL, API key, address, handle, key-value: the prefilter's hints need an "@", ".",
          ":", "=", "-", "_", "A", a space or a word with a letter past f (see :meth:`_wanted`);
        - IBAN: two letters and two digits where no letter or digit comes before: at the id's start only
          (then the id is detected as any text is);
        - person: the rules need a capital, a cue or a list, or a lowercase listed given name; a name the tagger
          finds in lowercase is kept only when it starts with one, and the id is one word: where the id itself is
          a listed given name it is detected as any text is.

        Only for the shipped recognizers asked directly (no Presidio engine, no NER model, none registered
        anew); tests/scrub/test_scrub_speed.py checks it against detection on random and crafted ids.
        """
        return (
            self._own_recognizers
            and not (text[:2].isalpha() and text[2:4].isdigit())
            and text not in self._names._given_only
        )

    def _detect(self, text: str) -> list[_Span]:
        if len(text) <= CHUNK_CHARS:
            spans = self._analyze_piece(text)
        else:
            spans = []
            for offset, piece in _split_chunks(text, CHUNK_CHARS):
                spans.extend(
                    _Span(s.start + offset, s.end + offset, s.entity, s.score) for s in self._analyze_piece(piece)
                )
        if spans and "<" in text:
            taken = [m.span() for m in PLACEHOLDER_RE.finditer(text)]
            if taken:
                spans = [s for s in spans if not any(s.start < e and b < s.end for b, e in taken)]
        return _merge(spans)

    def findings(self, text: str) -> list[tuple[int, int, str, float]]:
        """What would be replaced in ``text`` on its own: (start, end, label, score), merged and sorted."""
        return [(s.start, s.end, LABELS[s.entity], s.score) for s in self.detect(text)]

    # ------------------------------------------------------------------ replacement

    def _register(self, text: str, spans: list[_Span], mapping: PlaceholderMap) -> None:
        """Give each found value its placeholder and remember the surfaces later mentions will match.

        A value met again (the same text in another message, or replaced after it was collected) is skipped: its
        placeholder exists, and its surfaces were added with ``setdefault``, so nothing would change."""
        flags = self._gazetteer.flags
        for s in spans:
            label = LABELS[s.entity]
            value = text[s.start : s.end]
            if (label, value) in mapping.registered:
                continue
            mapping.registered.add((label, value))
            ph = mapping.aliases.get(label, {}).get(value) or mapping.placeholder(label, value)
            if len(value) >= 3:
                mapping.add_alias(label, value, ph)
            if label == "PERSON":
                # "Isabella Lopez" also covers a later bare "Lopez" (as <PERSON_1_LAST>), unless it is a common word.
                mapping.name_aliases(
                    value,
                    ph,
                    lambda w: len(w) >= 3 and w[0].isupper() and not flags.get(w.lower(), 0) & (WORD | NONPERSON),
                )

    def _alias_spans(self, text: str, mapping: PlaceholderMap) -> list[_Span]:
        """Every other mention of a value already replaced in this trace."""
        out = []
        for label, table in mapping.aliases.items():
            entity = _ENTITY_OF_LABEL[label]
            for surface in table:
                start = text.find(surface)
                while start >= 0:
                    end = start + len(surface)
                    if (start == 0 or _apart(text[start - 1], surface[0])) and (
                        end == len(text) or _apart(text[end], surface[-1])
                    ):
                        out.append(_Span(start, end, entity, 0.5))
                    start = text.find(surface, end)
        return out

    def _replace(self, text: str, spans: list[_Span], mapping: PlaceholderMap, counts: Counter[str]) -> str:
        if not spans:
            return text
        if not self.presidio and _well_formed(spans, len(text)):
            for s in spans:
                counts[LABELS[s.entity]] += 1
            return _substitute(text, spans, mapping)
        operators = {}
        for entity in {s.entity for s in spans}:
            label = LABELS[entity]
            operators[entity] = OperatorConfig("custom", {"lambda": _placeholder_fn(mapping, label)})
        for s in spans:
            counts[LABELS[s.entity]] += 1
        results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
        return self.anonymizer.anonymize(text=text, analyzer_results=results, operators=operators).text  # type: ignore[arg-type]

    def _finish(self, text: str, spans: list[_Span], mapping: PlaceholderMap, counts: Counter[str]) -> str:
        """Replace ``spans`` and known values, then re-check until nothing new is found (idempotence)."""
        for _ in range(_MAX_ROUNDS):
            extra = self._alias_spans(text, mapping) if mapping.aliases else []
            if extra:
                taken = [m.span() for m in PLACEHOLDER_RE.finditer(text)] if "<" in text else []
                extra = [a for a in extra if not any(a.start < e and b < a.end for b, e in taken)]
            if mapping.aliases:
                spans = _merge(spans + extra)
            if not spans:
                return text
            self._register(text, spans, mapping)
            text = self._replace(text, spans, mapping, counts)
            spans = self.detect(text)
        if spans:
            raise ScrubError("text did not settle after repeated scrubbing")
        return text

    # ------------------------------------------------------------------ public API

    def scrub_text(self, text: str, mapping: PlaceholderMap, counts: Counter[str] | None = None) -> str:
        """``text`` with every finding replaced by its placeholder from ``mapping`` (shared across a trace)."""
        if not isinstance(text, str):
            raise ScrubError(f"scrub_text needs a str, not {type(text).__name__}")
        if not text:
            return text
        mapping.reserve(text)
        return self._finish(text, self.detect(text), mapping, counts if counts is not None else Counter())

    def scrub_messages(
        self, messages: list[dict[str, Any]], trace_id: str, *, counts: Counter[str] | None = None
    ) -> list[dict[str, Any]]:
        """A scrubbed copy of one conversation; one placeholder map covers all its messages.

        Values found anywhere in the trace (a name in a tool result) are replaced everywhere in it.
        Raises ScrubError for input that is not a list of message objects.
        """
        return self._scrub(messages, None, trace_id, counts if counts is not None else Counter())[0]

    def scrub_trace(
        self, trace_id: str, messages: list[dict[str, Any]], fields: dict[str, Any] | None = None
    ) -> ScrubResult:
        """One trace's messages and its other text ``fields`` (metadata, error…) under one placeholder map.

        Every value of ``fields`` is free (metadata keys and values included), except ``tools`` and ``spans``:
        lists of schema objects whose structural keys keep structure-looking values. JSON text anywhere is
        scrubbed leaf by leaf and stays JSON. Never raises: a trace that cannot be scrubbed comes back
        quarantined, with no text at all.
        """
        return self._scrub_one(trace_id, messages, fields)

    def _scrub(
        self, messages: Any, fields: dict[str, Any] | None, trace_id: str, counts: Counter[str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int]:
        """Scrubbed messages and fields, and how many fields were cut to the size limit."""
        if not isinstance(messages, list):
            raise ScrubError(f"trace {trace_id}: messages must be a list, not {type(messages).__name__}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise ScrubError(f"trace {trace_id}: message {i} is a {type(m).__name__}, not an object")
        mapping = PlaceholderMap()
        found: list[tuple[str, list[_Span], str | None]] = []

        def collect(text: str, forced: _Forced | None) -> str:
            mapping.reserve(text)
            part = None
            if forced is not None and forced.entity in self.entities:
                spans = [_Span(0, len(text), forced.entity, 1.0)]
                if forced.part is not None:
                    part = mapping.name_part(text, forced.part, forced.partner)
            else:
                spans = self.detect(text)
            found.append((text, spans, part))
            if spans and part is None:
                self._register(text, spans, mapping)
            return text

        # messages first: their placeholders are numbered as if they were scrubbed alone
        collected = _Walk(collect, self.max_field_chars)
        parts = collected.parts(messages, fields, found.__len__)
        if not any(spans for _, spans, _ in found):
            return collected.assemble(parts, fields)  # nothing found anywhere: the texts stay as they are
        at = 0

        def replace(text: str, forced: _Forced | None) -> str:
            nonlocal at
            original, spans, part = found[at]
            at += 1
            if part is not None:  # a first_name/last_name field: its person's part placeholder
                counts["PERSON"] += 1
                mapping.used.add(part)
                return part
            return self._finish(original, list(spans), mapping, counts)

        walk = _Walk(replace, self.max_field_chars)
        for k, (key, value, _, end) in enumerate(parts):
            if _settled(found, at, end, mapping):
                at = end  # what the collecting pass made of it is what this pass would
            else:
                parts[k] = (key, value, walk.part(key, value), end)
        if self.vault is not None:
            for ph, value in mapping.originals.items():
                if ph in mapping.used:
                    self.vault.seal(trace_id, ph, value)
        return collected.assemble(parts, fields)

    def _scrub_one(self, trace_id: str, messages: Any, fields: dict[str, Any] | None = None) -> ScrubResult:
        counts: Counter[str] = Counter()
        try:
            out, out_fields, truncated = self._scrub(messages, fields, trace_id, counts)
        except ScrubError as exc:
            return ScrubResult(trace_id, None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure quarantines the trace; the text never leaks
            # str(exc) could quote the text being scrubbed; only the exception type is reported.
            return ScrubResult(trace_id, None, error=f"trace {trace_id}: scrubbing failed ({type(exc).__name__})")
        return ScrubResult(trace_id, out, None, dict(counts), out_fields, truncated)


#: The Presidio recognizer of each entity, built for one scrubber (the name recognizers are the scrubber's
#: own: its prefilter asks them too); a scrubber adds those of the entities it scrubs, in this order.
RECOGNIZERS: Registry[Callable[[Scrubber], EntityRecognizer]] = Registry("PII entity", error=ScrubError)
RECOGNIZERS.add("EMAIL_ADDRESS", lambda _: OfflineEmailRecognizer())
RECOGNIZERS.add("PHONE_NUMBER", lambda _: PhoneNumberRecognizer())
RECOGNIZERS.add("CREDIT_CARD", lambda _: LuhnCardRecognizer())
RECOGNIZERS.add("IBAN_CODE", lambda _: AnyCaseIbanRecognizer())
RECOGNIZERS.add("US_SSN", lambda _: ssn_recognizer())
RECOGNIZERS.add("US_ITIN", lambda _: itin_recognizer())
RECOGNIZERS.add("PASSPORT", lambda _: passport_recognizer())
RECOGNIZERS.add("DRIVER_LICENSE", lambda _: driver_license_recognizer())
RECOGNIZERS.add("IP_ADDRESS", lambda _: IpRecognizer())
RECOGNIZERS.add("URL", lambda _: TokenUrlRecognizer())
RECOGNIZERS.add("API_KEY", lambda _: RuleRecognizer("API_KEY", API_KEY_RULES, "ApiKeyRecognizer"))
RECOGNIZERS.add("ADDRESS", lambda scrubber: AddressRecognizer(ADDRESS_RULES, scrubber._gazetteer))
RECOGNIZERS.add("PERSON", lambda scrubber: scrubber._names)
RECOGNIZERS.add("USERNAME", lambda scrubber: scrubber._handles)

_ENTITY_OF_LABEL = {label: ent for ent, label in LABELS.items()}
#: The recognizers shipped (a scrubber built after another one is registered reasons about none of them).
_SHIPPED = dict(RECOGNIZERS.items())


#: A recognizer the direct path asks, with its score thresholds by entity and its default threshold.
_Selected = tuple[EntityRecognizer, dict[str, float], float]
#: What lies between two findings of one type that AnonymizerEngine replaces as one (its own test, kept
#: as it is: ``$`` also matches before a final newline).
_SPACES_BETWEEN = re.compile(r"^( )+$")


def _well_formed(spans: list[_Span], n: int) -> bool:
    """Whether ``spans`` are sorted, non-empty, apart and inside a text of ``n`` characters (what
    :func:`_merge` makes): the spans :func:`_substitute` replaces exactly as AnonymizerEngine would."""
    end = 0
    for s in spans:
        if s.start < end or s.end <= s.start:
            return False
        end = s.end
    return end <= n


def _substitute(text: str, spans: list[_Span], mapping: PlaceholderMap) -> str:
    """``text`` with each span replaced by its placeholder, as AnonymizerEngine does it with
    :func:`_placeholder_fn` for spans that are :func:`_well_formed`: two findings of one type with only spaces
    between become one, and values are replaced last to first (the order new placeholders are numbered in)."""
    runs: list[list[Any]] = []  # [start, end, entity]
    for s in spans:
        last = runs[-1] if runs else None
        if last is not None and last[2] == s.entity and _SPACES_BETWEEN.search(text[last[1] : s.start]):
            last[1] = s.end
        else:
            runs.append([s.start, s.end, s.entity])
    pieces = []
    end = len(text)
    for start, stop, entity in reversed(runs):
        pieces.append(text[stop:end])
        pieces.append(_placeholder_fn(mapping, LABELS[entity])(text[start:stop]))
        end = start
    pieces.append(text[:end])
    return "".join(reversed(pieces))


def _placeholder_fn(mapping: PlaceholderMap, label: str) -> Callable[[str], str]:
    def fn(value: str) -> str:
        ph = mapping.aliases.get(label, {}).get(value) or mapping.placeholder(label, value)
        mapping.used.add(ph)
        return ph

    return fn


# ---------------------------------------------------------------------------------------- message walking

#: A message's ``role`` is kept when it is one of these (compared lowercased); any other value is text.
ROLES = frozenset(
    {"system", "developer", "user", "assistant", "tool", "function", "ipython", "model", "human", "ai", "observation"}
)
_SPEAKERS = ("user", "assistant", "system")
_ENUM_RE = re.compile(r"[a-z0-9][a-z0-9_./+\-]{0,63}|[A-Z0-9][A-Z0-9_./+\-]{0,63}")
_MODEL_RE = re.compile(r"[A-Za-z0-9][\w.:/\-]{0,199}")  # gpt-4.1, ft:gpt-4.1-2025-04-14:org:name:id
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
_HEX_ID_RE = re.compile(r"[0-9A-Fa-f][0-9A-Fa-f\-]{5,63}")
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?")
#: Keys of the message, tool-call, content-part, tool and span schemas whose value is structure when it looks
#: like structure (a role, an enum, a function name, a hex span id, a time): such a value is kept as it is.
#: Any other value under these keys (an e-mail as a role) is text and is scrubbed. Nothing in metadata or in a
#: tool's arguments and results is structure: every value there is free.
_STRUCTURAL: dict[str, re.Pattern[str] | frozenset[str]] = {
    "role": ROLES,
    **dict.fromkeys(
        ("type", "finish_reason", "stop_reason", "mime_type", "media_type", "format", "detail", "requestor", "kind"),
        _ENUM_RE,
    ),
    **dict.fromkeys(("status", "object"), _ENUM_RE),
    **dict.fromkeys(("model", "model_version", "provider"), _MODEL_RE),
    "name": _IDENT_RE,  # a function's, tool's or span's name: a speaker's name is handled apart (PERSON)
    **dict.fromkeys(("id", "tool_call_id", "parent_id", "span_id"), _HEX_ID_RE),
    **dict.fromkeys(("timestamp", "start_time", "end_time", "created", "created_at"), _TIME_RE),
}
#: Schema keys whose value is free text, whatever it looks like: a content part's ``text`` that is only a
#: phone number is that phone number (the number rule below is for values under data keys).
_FREE_TEXT_KEYS = frozenset({"text", "content", "refusal", "reasoning", "description"})
#: Schema keys whose value is itself a schema object (a tool call's ``function``).
_NESTED_SCHEMA = frozenset({"function"})
#: A string that is a number ("321.18", "7751905257"): under a key that does not name PII it is kept.
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
#: The first-name and last-name keys of one object name one person (keys normalized as key_entity does).
_NAME_PART_KEYS = {
    "firstname": "FIRST",
    "givenname": "FIRST",
    "lastname": "LAST",
    "surname": "LAST",
    "familyname": "LAST",
}
#: Parsed JSON nested deeper than this is scrubbed as text instead (the walk recurses once per level).
_MAX_DEPTH = 200
#: Where a field over the size limit is cut; the marker says so, and that JSON text cut is no JSON any more.
TRUNCATED_MARKER = " …[evaltray scrub: truncated, {dropped:,} of {total:,} characters dropped; not valid JSON]"


def is_structure(key: str, value: str) -> bool:
    """Whether ``value`` under schema key ``key`` is structure (kept as it is), not text; see ``_STRUCTURAL``."""
    rule = _STRUCTURAL.get(key)
    if rule is None:
        return False
    if isinstance(rule, frozenset):
        return value.lower() in rule
    return rule.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class _Forced:
    """A field whose key names its entity: the whole value is one. ``part``: FIRST/LAST of a person's name,
    ``partner`` the other part where one object holds both."""

    entity: str
    part: str | None = None
    partner: str | None = None


Transform = Callable[[str, "_Forced | None"], str]


def _name_pairs(obj: dict[Any, Any]) -> dict[Any, _Forced]:
    """The first- and last-name fields of one object, each knowing the other (one person)."""
    parts: dict[str, tuple[Any, str]] = {}
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, str) and v.strip() and not PLACEHOLDER_RE.fullmatch(v.strip()):
            part = _NAME_PART_KEYS.get(k.lower().replace("_", "").replace("-", "").replace(" ", ""))
            if part is not None and part not in parts:
                parts[part] = (k, v)
    out = {}
    for part, (k, _) in parts.items():
        other = parts.get("LAST" if part == "FIRST" else "FIRST")
        out[k] = _Forced("PERSON", part, other[1] if other else None)
    return out


def _too_deep(doc: Any) -> bool:
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


_BIG_INT_RE = re.compile(r"\d{19}")


def _json_document(text: str) -> dict[str, Any] | list[Any] | None:
    """``text`` parsed, when it is one JSON object or array (else None: it is scrubbed as text)."""
    head = text.lstrip()[:1]
    if head != "{" and head != "[":
        return None
    try:
        # orjson reads integers past 64 bits as floats: those documents take the exact reader
        doc = json.loads(text) if _BIG_INT_RE.search(text) else orjson.loads(text)
    except (orjson.JSONDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, (dict, list)) or _too_deep(doc):
        return None
    return doc


def dumps_like(original: str, doc: Any) -> str:
    """``doc`` as JSON text in ``original``'s style: the first of compact, spaced (Python's default) and
    indented (as deep as the original's first indent), each with and without ``\\u`` escapes, that writes
    ``original``'s own document back exactly; Python's default where none does. Surrounding space is kept."""
    body = original.strip()
    lead = original[: len(original) - len(original.lstrip())]
    trail = original[len(original.rstrip()) :]
    m = re.search(r"\n([ \t]+)\S", body)
    indent: str | None = m.group(1) if m else None
    styles: list[dict[str, Any]] = [{"separators": (",", ":")}, {"separators": (", ", ": ")}]
    if indent is not None:
        styles.append({"indent": indent, "separators": (",", ": ")})
    styles = [{**st, "ensure_ascii": ascii_} for ascii_ in (False, True) for st in styles]
    before = json.loads(body)
    style = next((st for st in styles if json.dumps(before, **st) == body), {"ensure_ascii": False})
    return lead + json.dumps(doc, **style) + trail


#: The key of a message among a trace's walked parts (the other parts are keyed by their field's name).
_MESSAGE = object()
#: One walked part of a trace: its key, its value, what the walk made of it, how many strings had been seen.
_Part = tuple[Any, Any, Any, int]


def _settled(found: list[tuple[str, list[_Span], str | None]], start: int, end: int, mapping: PlaceholderMap) -> bool:
    """Whether the strings ``found[start:end]`` come out of the replacing pass as they went in: nothing was found
    in them, and none holds a value already replaced in the trace (``_finish`` gives such a text back as it is,
    and changes nothing else)."""
    surfaces = [surface for table in mapping.aliases.values() for surface in table]
    for k in range(start, end):
        text, spans, part = found[k]
        if spans or part is not None or any(surface in text for surface in surfaces):
            return False
    return True


class _Walk:
    """One pass over a trace: ``fn`` sees every free string, in the same order on every pass (the collect
    and the replace pass must agree); structure stays, JSON text stays JSON, numbers stay numbers."""

    def __init__(self, fn: Transform, max_chars: int) -> None:
        self.fn = fn
        self.max_chars = max_chars
        self.truncated = 0

    def message(self, msg: dict[str, Any]) -> dict[str, Any]:
        role = msg.get("role")
        new: dict[str, Any] = {}
        for key, value in msg.items():
            if key == "name" and role in _SPEAKERS and isinstance(value, str) and value.strip():
                # a participant's name on user/assistant/system turns (on tool turns a function's name)
                keep = PLACEHOLDER_RE.fullmatch(value.strip())
                new[key] = value if keep else self.fn(self.cut(value), _Forced("PERSON"))
            elif key == "tool_calls" and isinstance(value, list):
                new[key] = [self.schema(tc) if isinstance(tc, dict) else self.value(tc, None) for tc in value]
            elif key == "content" and isinstance(value, list):  # content parts: {"type": "text", "text": …}
                new[key] = [self.schema(p) if isinstance(p, dict) else self.value(p, None) for p in value]
            elif key == "content":
                new[key] = self.value(value, None)
            else:
                new[key] = self.field(key, value)
        return new

    def schema(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An object of a known schema (tool call, content part, tool, span): its keys are structure."""
        return {
            k: self.schema(v) if k in _NESTED_SCHEMA and isinstance(v, dict) else self.field(k, v)
            for k, v in obj.items()
        }

    def field(self, key: Any, value: Any) -> Any:
        if isinstance(value, str) and isinstance(key, str) and is_structure(key, value):
            return value
        return self.value(value, None if key in _FREE_TEXT_KEYS else key)

    def value(self, value: Any, key: Any) -> Any:
        """A free value: every string in it is scrubbed; a field named like ``first_name`` is its entity whole."""
        if isinstance(value, str):
            return self.string(value, key)
        if isinstance(value, dict):
            return self.obj(value)
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, bytes):
            return self.string(value.decode("utf-8", "replace"), key)
        if not isinstance(value, int) or isinstance(value, bool):
            return value  # None, a float, a bool: kept whatever the key
        forced = key_entity(key) if key else None
        if forced:
            text = str(value)
            new = self.fn(text, _Forced(forced))  # "zip": 85034 becomes "<ADDRESS_1>"
            return value if new == text else new  # (an entity not scrubbed leaves it a number)
        return value

    def obj(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        """A free object: its keys are scrubbed too (an object keyed by e-mail address), except numbers (an
        object keyed by item id)."""
        pairs = _name_pairs(obj)
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            new_key = self.fn(k, None) if isinstance(k, str) and k and not _NUMBER_RE.fullmatch(k) else k
            out[new_key] = self.fn(self.cut(v), pairs[k]) if k in pairs else self.value(v, k)
        return out

    def string(self, text: str, key: Any) -> str:
        if len(text) > self.max_chars:
            self.truncated += 1
            cut = self.cut(text)
            return self.fn(cut, None) + TRUNCATED_MARKER.format(dropped=len(text) - len(cut), total=len(text))
        forced = key_entity(key) if key else None
        if forced and text.strip() and not PLACEHOLDER_RE.fullmatch(text.strip()):
            return self.fn(text, _Forced(forced))
        if key is not None and _NUMBER_RE.fullmatch(text):
            return text  # a price or an item id under a key that names no PII: not a phone number
        doc = _json_document(text)
        if doc is None:
            return self.fn(text, None)
        new = self.value(doc, "")  # "": a document's top-level array items are values under a (blank) key
        return text if new == doc else dumps_like(text, new)

    def cut(self, text: str) -> str:
        """``text`` cut to the size limit, at a space where one is near (a value cut in two could escape)."""
        if len(text) <= self.max_chars:
            return text
        space = text.rfind(" ", max(0, self.max_chars - 1000), self.max_chars)
        return text[: space if space > 0 else self.max_chars]

    def entry(self, key: Any, value: Any) -> Any:
        """One of a trace's other fields: ``tools`` and ``spans`` are lists of schema objects, the rest free
        values."""
        if key in ("tools", "spans") and isinstance(value, list):
            return [self.schema(x) if isinstance(x, dict) else self.value(x, None) for x in value]
        return self.value(value, None)

    def part(self, key: Any, value: Any) -> Any:
        """A message (``key`` is :data:`_MESSAGE`) or one of the other fields, walked."""
        return self.message(value) if key is _MESSAGE else self.entry(key, value)

    def parts(
        self, messages: list[dict[str, Any]], fields: dict[str, Any] | None, seen: Callable[[], int]
    ) -> list[_Part]:
        """The trace walked part by part, messages first: each message and each other field, what the walk
        made of it, and ``seen()`` after it (how many strings ``fn`` had been given by then)."""
        pairs = [(_MESSAGE, m) for m in messages] + list((fields or {}).items())
        return [(key, value, self.part(key, value), seen()) for key, value in pairs]

    def assemble(
        self, parts: list[_Part], fields: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int]:
        """The messages, the other fields (None or empty as given) and the fields cut, from walked parts."""
        messages = [done for key, _, done, _ in parts if key is _MESSAGE]
        out_fields = {key: done for key, _, done, _ in parts if key is not _MESSAGE} if fields else fields
        return messages, out_fields, self.truncated


__all__ = [
    "ENTITIES",
    "MAX_FIELD_CHARS",
    "RECOGNIZERS",
    "ROLES",
    "TRUNCATED_MARKER",
    "ScrubError",
    "ScrubResult",
    "Scrubber",
    "dumps_like",
    "is_structure",
    "resolve_entities",
]
