"""Street addresses, US and not, on one line or several: a street core, then the lines that follow it.

A core is what says "this is a street": a US line ("2450 Crown St"), a European one whose house number
follows the name ("Puruntie 82", "Rua do Arenque 1634", "Erzsébet tér 19."), or any number-led words
right after an address cue ("lives at 9816 214 Pavlou Drandaki"). From a core the address grows over
what follows it -- units, postal codes, region codes, city and country lines -- while each piece still
looks like one, so a multi-line address goes whole and the sentence after it stays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from ._names import NONPERSON, WORD, Gazetteer
from ._recognizers import US_STREET_TYPES, OwnRecognizer, Rule, finding, finditer, scan

# Street types written before the name (Rua do Arenque, Via Franscini, rue de la Paix, ul. Długa)
_PREFIX = (
    r"via|viale|piazza|piazzale|corso|largo|vicolo|rua|avenida|av|travessa|praça|praca|alameda|estrada|calle|carrer"
    r"|camino|paseo|plaza|avinguda|rue|boulevard|bd|bld|allée|allee|chemin|impasse|quai|route|place|cours|ul|ulica"
    r"|aleja|al|os|osiedle|strada|bulevardul|str|odos|leoforos|plateia"
)
# Street types written as the end of one word (Puruntie, Hauptstraße, Præstevænget, Kungsgatan)
_ATTACHED = (
    r"stra(?:ss|ß)e|weg|gasse|platz|allee|damm|ufer|steig|gade|vej|vænget|torv|gatan|vägen|väg|gata|gränd"
    r"|veien|vei|gate|katu|tie|kuja|polku|kaari|laan|straat|plein|gracht|kade|singel|dreef|utca"
)
# … or as a word of its own after the name (Erzsébet tér, Király u., Crown Close)
_SUFFIX = (
    r"str|strasse|straße|gasse|weg|platz|allee|tér|út|útja|körút|utca|u|sor|ulice|náměstí|třída|cesta|ulica|street|st|road|rd|avenue|ave|lane|ln|drive"
    r"|dr|close|crescent|terrace|court|ct|place|pl|square|sq|way|row|mews|gardens|grove|parade|walk|highway|hwy"
    r"|boulevard|blvd"
)
_WORD = r"[\p{L}\p{M}][\p{L}\p{M}'’.\-]*"
_HOUSE = r"\d{1,5}[A-Za-z]?\b\.?"
_STREET_WORDS = rf"{_WORD}(?:[ \t]+{_WORD}){{0,3}}"
_CORE_RES = (
    # a house number, the street's name, a second number: 28245 Puruntie 82, 0605 πεντέλης 210
    regex.compile(rf"(?<![\w\-.])(\d{{1,6}})[ \t]+({_STREET_WORDS})[ \t]+{_HOUSE}"),
    # a street type before the name and a number after it: Via Franscini 71, Rua do Arenque 1634
    regex.compile(rf"(?i)(?<![\w\-.])()(?:{_PREFIX})\.?[ \t]+({_STREET_WORDS})[ \t]+{_HOUSE}"),
    # a word ending in a street type, or one before a street type, then a number: Hauptstraße 5, Puruntie 82,
    # Erzsébet tér 19., Király u. 15.
    regex.compile(
        rf"(?<![\w\-.])()(\p{{Lu}}[\p{{L}}\p{{M}}]{{2,}}(?:{_ATTACHED})|\p{{Lu}}{_WORD}[ \t]+(?i:{_SUFFIX})\.?)[ \t]+{_HOUSE}"
    ),
    # a number first, then a street type and its name: 12 rue de la Paix, 4 Via Roma
    regex.compile(rf"(?i)(?<![\w\-.])(\d{{1,5}}[A-Za-z]?),?[ \t]+(?:{_PREFIX})\.?[ \t]+({_STREET_WORDS})"),
)
_CUE = (
    r"address(?:[ \t]+is)?|lives?[ \t]+(?:at|in)|living[ \t]+at|located[ \t]+at|(?:is|are)[ \t]+at|moved[ \t]+to"
    r"|ship(?:ped)?[ \t]+(?:it[ \t]+)?to|sen[dt][ \t]+(?:it[ \t]+)?to|deliver(?:ed)?[ \t]+(?:it[ \t]+)?to|mail(?:ed)?[ \t]+to"
    r"|return[ \t]+(?:it[ \t]+)?to|drops?[ \t]+you[ \t]+off[ \t]+at|meet[ \t]+(?:you|me)[ \t]+at|lived[ \t]+(?:in|at)"
)
_CUE_CORE_RE = regex.compile(
    r"(?i)\b(?:" + _CUE + r")"
    r"[ \t]*:?[ \t]*\n?[ \t]*(\d{1,6}(?:[ \t]+\d{1,5})?[ \t]+" + _WORD + r"(?:[ \t]+" + _WORD + r"){0,3})"
)
_CUE_GATE = regex.compile(r"(?i)\b(?:" + _CUE + r")")  # see :func:`scan`
# "the corner of 35 Pentelis Str. and Waechter Turnpike", "corner of 5th and Main": an intersection
_CORNER_RE = regex.compile(
    rf"(?i)\b(?:the[ \t]+)?corner[ \t]+of[ \t]+((?:[\w.'’\-]+[ \t]+){{0,5}}?)and[ \t]+((?:{_WORD}|\d+\w*)(?:[ \t]+{_WORD}){{0,3}})"
)
_CORNER_GATE = regex.compile(r"(?i)corner[ \t]+of")
_PREFIX_WORD_RE = regex.compile(rf"(?i)(?:{_PREFIX})\.?")
_SUFFIX_WORD_RE = regex.compile(rf"(?i){_WORD}(?:{_ATTACHED})|(?:{_SUFFIX})\.?")

_SEP_RE = regex.compile(r"[ \t]*(?:,[ \t]*(?:\n[ \t>]*)?|\n[ \t>]*(?:\n[ \t>]*)?)|[ \t]+")
_UNIT_RE = regex.compile(
    r"(?i)(?:apt|apartment|suite|ste|unit|floor|fl|room|rm|bldg|building|flat|box|p\.?\s?o\.?\s?box)\.?[ \t]*#?[ \t]*"
    r"[A-Za-z0-9\-]{1,6}\b"
)
_POSTAL_RE = regex.compile(
    r"(?:\d{4,6}(?:-\d{3,4})?|\d{2}-\d{3}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2})(?![\w\-])"
)
_REGION_RE = regex.compile(r"\p{Lu}{2,3}(?![\w\-])")
_PLACE_RE = regex.compile(
    r"\p{Lu}[\p{L}\p{M}'’.\-]*(?:[ \t]+\p{Lu}[\p{L}\p{M}'’.\-]*){0,3}(?:[ \t]+(?:\d{4,6}|\p{Lu}))?(?![\w\-])"
)
_LOWER_PLACE_RE = regex.compile(
    r"(?i)[\p{L}][\p{L}'.\-]+(?:[ \t]+\p{L}+){0,2},?[ \t]+\p{L}{2}\.?,?[ \t]+\d{4,6}(?![\w\-])"
)
_LETTERS_RE = re.compile(r"[A-Za-z]+")


def _spelled(alternation: str) -> frozenset[str]:
    """The words an alternation of plain words matches, ``s?`` and ``(?:a|b)`` spelled out."""
    out: set[str] = set()
    for word in alternation.split("|") if "(?:" not in alternation else _split_groups(alternation):
        if word.endswith("s?"):
            out.update((word[:-2], word[:-2] + "s"))
        else:
            out.add(word)
    return frozenset(out)


def _split_groups(alternation: str) -> list[str]:
    """``a|stra(?:ss|ß)e|b`` as ``["a", "strasse", "straße", "b"]`` (one group per word, no nesting)."""
    out = []
    for word in regex.split(r"\|(?![^(]*\))", alternation):
        m = regex.fullmatch(r"([^(]*)\(\?:([^)]*)\)(.*)", word)
        out.extend([m.group(1) + alt + m.group(3) for alt in m.group(2).split("|")] if m else [word])
    return out


class _Words:
    """An ASCII text's words (maximal runs of letters) as written and lowercased, for the word gates below:
    in ASCII text a street type, a prefix or a cue the patterns match is always one whole such run (each
    pattern puts a non-letter before and after it), so a pattern whose words are all absent cannot match.
    A text with any other character gets no word gate (``None``): Unicode case rules (``ſ``, ``K``) stay the
    regex engine's to apply."""

    __slots__ = ("low", "runs")

    def __init__(self, text: str) -> None:
        self.runs = frozenset(_LETTERS_RE.findall(text))
        self.low = frozenset(map(str.lower, self.runs))  # ASCII: the runs of text.lower(), lowercased runs

    @staticmethod
    def of(text: str) -> _Words | None:
        return _Words(text) if text.isascii() else None


#: Street types of the US rules (``us-street`` as written, ``us-street-lower`` in any case).
_US_TYPES = _spelled(US_STREET_TYPES)
_US_LOWER_TYPES = frozenset(("street", "avenue", "road", "drive", "lane", "boulevard", "court", "place"))
_PREFIX_WORDS = _spelled(_PREFIX)
_SUFFIX_WORDS = _spelled(_SUFFIX)
_ATTACHED_ENDS = tuple(sorted(_spelled(_ATTACHED)))
#: The last word of every address cue (``lives at``, ``address is``, ``ship it to``).
_CUE_ENDS = frozenset(("address", "is", "at", "in", "to"))


#: Each word met whether it ends in an attached street type (``Hauptstrasse``): the words of a text are mostly
#: words met before, and one lookup costs less than testing 34 endings.
_ENDS_ATTACHED: dict[str, bool] = {}


def _attached(word: str) -> bool:
    """Whether ``word`` ends in a street type written onto the name (``…strasse``, ``…gatan``), remembered."""
    found = _ENDS_ATTACHED.get(word)
    if found is None:
        if len(_ENDS_ATTACHED) >= 100_000:
            _ENDS_ATTACHED.clear()
        found = _ENDS_ATTACHED[word] = word.endswith(_ATTACHED_ENDS)
    return found


def _may_match(name: str, words: _Words | None) -> bool:
    """Whether the rule or core ``name`` can match a text with ``words``: False only where a word its every
    match holds is missing (see :class:`_Words`)."""
    if words is None:
        return True
    if name == "us-street":
        return not words.runs.isdisjoint(_US_TYPES)
    if name == "us-street-lower":
        return not words.low.isdisjoint(_US_LOWER_TYPES)
    if name in ("core1", "core3"):  # a street type before the name
        return not words.low.isdisjoint(_PREFIX_WORDS)
    if name == "core2":  # a word ending in a street type, or a street type after the name
        return not words.low.isdisjoint(_SUFFIX_WORDS) or any(map(_attached, words.runs))
    if name == "cue":
        return not words.low.isdisjoint(_CUE_ENDS)
    return True


_HEAD_NUMBER_RE = regex.compile(r"(?<![\w\-.])\d{1,6}[ \t]+$")
_MAX_GROW = 200


class AddressRecognizer(OwnRecognizer):
    """ADDRESS: evaltray's street rules plus non-US street cores, each grown over the address lines after it."""

    def __init__(self, rules: Sequence[Rule], gazetteer: Gazetteer) -> None:
        self.rules = [(r, r.compiled(), r.compiled_gate()) for r in rules]
        self.gazetteer = gazetteer
        super().__init__(["ADDRESS"], "AddressRecognizer")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out = []
        words = _Words.of(text)
        for rule, rx, gate in self.rules:
            if not _may_match(rule.name, words):
                continue
            for m in scan(rx, gate, text):
                start, end = m.span(rule.group)
                if end > start:
                    core = rule.name in ("us-street", "us-street-lower", "po-box", "military")
                    out.append(self._span(text, start, end, rule.score, grow=core))
        for start, end in self._cores(text, words):
            out.append(self._span(text, start, end, 0.75, grow=True))
        return out

    def _span(self, text: str, start: int, end: int, score: float, *, grow: bool) -> RecognizerResult:
        if grow:
            head = _HEAD_NUMBER_RE.search(text, max(0, start - 8), start)
            start = head.start() if head else start  # "17151 2450 Crown St": both numbers are the address's
            end = self.grow(text, end)
        return finding(self, "ADDRESS", start, end, score)

    def _cores(self, text: str, words: _Words | None) -> list[tuple[int, int]]:
        out = []
        for i, rx in enumerate(_CORE_RES):
            if not _may_match(f"core{i}", words):
                continue
            for m in finditer(rx, text):
                if i == 0 and not self._street_name(m.group(2)):
                    continue  # "3 apples and 4": words that are all plain English are no street
                out.append(m.span())
        for m in scan(_CUE_CORE_RE, _CUE_GATE, text) if _may_match("cue", words) else ():
            out.append(m.span(1))
        for m in scan(_CORNER_RE, _CORNER_GATE, text):
            if any(ch.isdigit() for ch in m.group()) or self._street_name(m.group(1) + " " + m.group(2)):
                end = m.end()
                while text[end - 1] == ".":
                    end -= 1  # the sentence's full stop
                out.append((m.start(), end))
        return out

    def _street_name(self, words: str) -> bool:
        """Whether number-framed ``words`` can be a street's name: a street type, or a word no dictionary has."""
        get = self.gazetteer.get
        parts = words.split()
        if any(_PREFIX_WORD_RE.fullmatch(p) or _SUFFIX_WORD_RE.fullmatch(p) for p in parts):
            return True
        return any(not get(p.strip(".'’-")) & WORD for p in parts if len(p) > 2)

    def _place_ok(self, words: str) -> bool:
        """A city or country line: some word in it is not a plain English word (or is a known place)."""
        get = self.gazetteer.get
        for p in regex.findall(r"[\p{L}\p{M}'’\-]+", words):
            flags = get(p)
            if flags & NONPERSON or not flags & WORD:
                return True
        return False

    def grow(self, text: str, end: int) -> int:
        """``end`` moved over the units, postal codes, regions, cities and countries that follow it."""
        limit = min(len(text), end + _MAX_GROW)
        while end < limit:
            sep = _SEP_RE.match(text, end)
            if sep is None:
                break
            pos = sep.end()
            spaced = sep.group().strip(" \t") == ""
            m = _UNIT_RE.match(text, pos) or _POSTAL_RE.match(text, pos) or _LOWER_PLACE_RE.match(text, pos)
            if m is None and not spaced:
                m = _REGION_RE.match(text, pos) or _PLACE_RE.match(text, pos)
                if m is not None and not (
                    _REGION_RE.fullmatch(m.group())
                    or self._place_ok(m.group())
                    or ("\n" in sep.group() and _own_line(text, m) and m.group().lower() not in _SIGN_OFFS)
                ):
                    m = None
            elif m is None:
                place = _PLACE_RE.match(text, pos)
                if place is not None and self._place_ok(place.group()) and _ends_line(text, place.end()):
                    m = place  # "… St Apt. 050 Coalville South Africa" at the end of its line
            if m is None or m.end() == pos:
                break
            end = m.end()
            while text[end - 1] == "." and end - 1 > pos + 1 and text[end - 2].isalpha():
                end -= 1  # "… 75002 Paris.": the sentence's full stop is not the city's
        return end


_SIGN_OFFS = frozenset(
    ["thanks", "thank you", "regards", "best regards", "kind regards", "best", "cheers", "sincerely"]
)


def _own_line(text: str, m: regex.Match[str]) -> bool:
    """Whether ``m`` is all of its line: a "Pines Beach" or "United Kingdom 89800" line inside an address block."""
    return m.end() == len(text) or text[m.end()] == "\n"


def _ends_line(text: str, pos: int) -> bool:
    rest = text[pos : pos + 2]
    return rest == "" or rest[0] in "\n,.;!?" or rest.startswith((" \n", "\t\n"))


__all__ = ["AddressRecognizer"]
