"""Person names without a model: a shipped gazetteer plus capitalisation and context cues."""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from ._recognizers import from_end

FIRST, LAST, WORD, NONPERSON = 1, 2, 4, 8
# Greetings and sign-offs: they introduce a name, they are not part of it ("Dear Valerio", "Best regards").
_CUE_WORDS = frozenset(
    {
        "dear",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "regards",
        "best",
        "sincerely",
        "cheers",
        "yours",
        "warmly",
        "greetings",
        "attn",
        "attention",
        "cc",
        "bcc",
        "name",
        "customer",
    }
)
# Address words that end a name ("Barbara Yudina Apt. 675"): never part of a person's name.
_ADDRESS_WORDS = frozenset(["apt", "suite", "ste", "unit", "box", "floor", "flat", "room", "bldg", "po"])
_NOT_NAMES = frozenset({"I", "I'm", "I’m", "I'd", "I’d", "I'll", "I’ll", "I've", "I’ve"})


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Lowercased name parts with flags: FIRST (SSA given name), LAST (Census surname), WORD, NONPERSON."""

    flags: dict[str, int]

    def get(self, token: str) -> int:
        return self.flags.get(fold(token), 0)


def fold(token: str) -> str:
    """Lowercase without accents (the lists are ASCII): "Ramón" -> "ramon", "Åke" -> "ake"."""
    low = token.lower()
    if low.isascii():
        return low
    return "".join(ch for ch in unicodedata.normalize("NFKD", low) if not unicodedata.combining(ch)).replace("ł", "l")


@lru_cache(maxsize=1)
def load_gazetteer() -> Gazetteer:
    """The shipped lists (``evaltray/data/names``), loaded once per process."""
    base = resources.files("evaltray") / "data" / "names"
    flags: dict[str, int] = {}
    with gzip.open(base.joinpath("words.txt.gz").open("rb"), "rt", encoding="utf-8") as fh:
        for line in fh:
            flags[line.rstrip("\n")] = WORD
    with gzip.open(base.joinpath("names.tsv.gz").open("rb"), "rt", encoding="utf-8") as fh:
        for line in fh:
            name, _, fl = line.rstrip("\n").partition("\t")
            flags[name] = flags.get(name, 0) | (FIRST if "f" in fl else 0) | (LAST if "l" in fl else 0)
    for line in base.joinpath("nonperson.txt").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            for word in line.split():
                flags[word] = flags.get(word, 0) | NONPERSON
    return Gazetteer(flags)


# A capitalised word (Unicode-aware), with inner apostrophes/hyphens: O'Neil, Jean-Luc, D’Angelo.
_CAP = r"\p{Lu}[\p{Ll}\p{Lu}\p{M}]*(?:['’\-]\p{Lu}?[\p{Ll}\p{M}]+)*"
CAP_RE = regex.compile(rf"(?<![\p{{L}}\p{{M}}\p{{N}}_<]){_CAP}(?![\p{{L}}\p{{N}}_>])")
#: :data:`CAP_RE` for ASCII text, in the faster ``re`` engine (there ``\p{Lu}`` is ``[A-Z]``, ``\p{Ll}`` ``[a-z]``, ``\p{N}``
#: ``[0-9]`` and no character is a mark ``\p{M}``).
ASCII_CAP_RE = re.compile(r"(?<![A-Za-z0-9_<])[A-Z][a-zA-Z]*(?:['’\-][A-Z]?[a-z]+)*(?![A-Za-z0-9_>])")


def capitalised(text: str) -> Iterator[re.Match[str]] | Iterator[regex.Match[str]]:
    """:data:`CAP_RE`'s matches in ``text``."""
    return (ASCII_CAP_RE if text.isascii() else CAP_RE).finditer(text)


# Lowercase words, for names typed in lowercase right after "my name is".
_LOWER_RE = regex.compile(r"\G\s*,?\s*([\p{Ll}][\p{Ll}\p{M}'’\-]+)")

TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "professor",
        "sir",
        "dame",
        "madam",
        "madame",
        "mme",
        "mlle",
        "mister",
        "missus",
        "rev",
        "reverend",
        "fr",
        "father",
        "sister",
        "brother",
        "capt",
        "captain",
        "sgt",
        "sergeant",
        "lt",
        "officer",
        "judge",
        "justice",
        "senator",
        "president",
        "governor",
        "mayor",
        "herr",
        "frau",
        "sr",
        "sra",
        "srta",
        "señor",
        "señora",
        "senor",
        "senora",
        "monsieur",
        "signor",
        "signora",
        "don",
        "doña",
    ]
)
PARTICLES = frozenset(
    [
        "van",
        "von",
        "der",
        "den",
        "de",
        "del",
        "della",
        "di",
        "da",
        "dos",
        "das",
        "du",
        "le",
        "la",
        "al",
        "bin",
        "ibn",
        "ben",
        "st",
        "ten",
        "ter",
        "zu",
        "af",
        "y",
    ]
)
# Words that make the capitalised run before or after them a place or an organisation.
PLACE_PREFIXES = frozenset(
    [
        "são",
        "sao",
        "san",
        "santa",
        "santo",
        "los",
        "las",
        "el",
        "la",
        "new",
        "fort",
        "ft",
        "mount",
        "mt",
        "lake",
        "port",
        "cape",
        "saint",
        "st",
    ]
)
ORG_SUFFIXES = frozenset(
    [
        "inc",
        "llc",
        "ltd",
        "corp",
        "co",
        "company",
        "corporation",
        "group",
        "bank",
        "university",
        "college",
        "school",
        "institute",
        "foundation",
        "hospital",
        "clinic",
        "center",
        "centre",
        "street",
        "st",
        "avenue",
        "ave",
        "road",
        "rd",
        "boulevard",
        "blvd",
        "lane",
        "ln",
        "drive",
        "dr",
        "court",
        "ct",
        "way",
        "place",
        "square",
        "park",
        "bridge",
        "river",
        "lake",
        "county",
        "city",
        "island",
        "beach",
        "hall",
        "museum",
        "library",
        "church",
        "cathedral",
        "airport",
        "station",
        "stadium",
        "hotel",
        "mall",
        "building",
        "tower",
        "award",
        "awards",
        "prize",
        "theorem",
        "law",
        "effect",
        "syndrome",
        "disease",
        "index",
        "test",
        "method",
        "equation",
        "principle",
        "paradox",
        "prize",
        "trophy",
        "cup",
        "orchestra",
        "band",
        "technologies",
        "associates",
        "partners",
        "capital",
        "systems",
        "solutions",
        "consulting",
        "labs",
        "studios",
        "media",
        "holdings",
        "ventures",
        "enterprises",
        "industries",
        "services",
        "records",
    ]
)

# Cues that make the next capitalised word(s) a name. Matched against the text just before the run.
_STRONG_CUE_RE = regex.compile(
    r"(?ix)(?:"
    r"\b(?:my|his|her|their|your|our|the|customer'?s?|full|first|last|given|family|sur|user'?s?|patient'?s?"
    r"|client'?s?|account\ ?holder'?s?|contact|legal|middle|maiden|nick)?\ ?name(?:\ is|\ was|\ are|\ 's)?\s*[:=\-?]?\s*"
    r"|\b(?:i\ am|i'm|i’m|im|this\ is|it's|it’s|it\ is|calls?\ me|named(?:\ (?:him|her|them))?|called|signed|attn|attention|dear"
    r"|hi|hello|hey|hiya|greetings|thanks|thank\ you|cheers|regards|sincerely|yours|cc|bcc|ask\ for"
    r"|speak\ (?:to|with)|talk\ to|contact|author|authored\ by|written\ by|assignee|owner|reporter|from|to"
    r"|patient|customer|client|user|employee|candidate|applicant|student|teacher|manager|agent)\s*[,:\-]?\s*"
    r"|(?:^|\n)\s*(?:--|—|–|-)\s*"
    r")$"
)
_WEAK_CUE_RE = regex.compile(
    r"(?i)\b(?:by|with|and|for|met|meet|told|asked|ask|tell|called|emailed|texted|about|reach|remind|ping|invite"
    r"|invited|thank|congratulate|from|to|is|was|cc)\s+$"
)
_LOWER_PAIR_RE = regex.compile(
    r"(?<![\p{L}\p{M}\p{N}_@.<\-/])(\p{Ll}[\p{Ll}\p{M}]{1,20})[ \t]+(\p{Ll}[\p{Ll}\p{M}\-]{1,25})"
    r"(?![\p{L}\p{N}_@>/]|\.\p{L}|['’](?!s\b))"
)
_LIST_RE = regex.compile(
    r"(?<![\p{L}\p{M}])\p{L}[\p{L}\p{M}'’\-]+(?:,[ \t]*\p{L}[\p{L}\p{M}'’\-]+){1,12},?[ \t]+(?:and|&)[ \t]+"
    r"\p{L}[\p{L}\p{M}'’\-]+(?![\p{L}\p{M}])"
)
_LIST_ITEM_RE = regex.compile(r"(?<![\p{L}\p{M}])(?!and(?![\p{L}]))\p{L}[\p{L}\p{M}'’\-]+")
_VOCATIVE_AFTER_RE = regex.compile(r"[ \t]*[.!?]")
_SIGNOFF_RE = regex.compile(
    r"(?i)(?:thanks|thank you|regards|sincerely|cheers|best|yours|warmly|love|xoxo|talk soon|take care)"
    r"[^\n]{0,25}\n\s*$"
)
_JSON_NAME_KEY_RE = regex.compile(
    r"(?i)[\"']?(?:first_?name|last_?name|full_?name|given_?name|family_?name|surname|middle_?name"
    r"|customer_?name|user_?name|contact_?name|person|first|last)[\"']?\s*[:=]\s*[\"']?$"
)
# Verbs whose subject is a person, right after a lone unlisted word
_PERSON_VERB_RE = regex.compile(
    r"[ \t]+(?:said|says|spent|began|begins|shouted|told|tells|asked|asks|wrote|writes|lives|lived|works|worked"
    r"|thinks|thought|wants|wanted|loves|loved|married|died|smiled|laughed|replied|answered|explained|insisted"
    r"|whispered|had[ \t]+given|has[ \t]+given|is[ \t]+from|was[ \t]+born)\b"
)
# "flew to Loeches", "moved here from Kenosha": "to" and "from" after a journey name a place, not a person
_MOTION_RE = regex.compile(
    r"(?i)\b(?:flew|fly|flying|flown|moved|move|moving|went|go|going|gone|travel(?:l?ed|l?ing)?|drove|drive|driving"
    r"|here|there|back|trip|road|way|came|come|coming|relocated|emigrated|returned|headed|bound)\s+(?:to|from)\s*$"
)
_PLACE_CUE_RE = regex.compile(
    r"(?i)\b(?:in|at|to|into|near|city|town|village|visit|visited|visiting|via|flew\ to|moved\ to|of)\s+$"
)
_NAME_IS_RE = regex.compile(
    r"(?i)\b(?:my|his|her|their|your)\s+(?:(?:full|first|last|maiden|middle|given|family|sur)\s*)?name\s+(?:is|was)\s*:?\s*"
)
_SENTENCE_START_RE = regex.compile(r"(?:^|[.!?:;\n\"“(\[•*#>|]\s*|\n\s*[-–—\d.)]+\s*)$")
_NUMBER_BEFORE_RE = regex.compile(r"\d[A-Za-z]?[ \t]+$")
_STOP_LOWER = frozenset(
    [
        "and",
        "or",
        "but",
        "the",
        "a",
        "an",
        "i",
        "is",
        "am",
        "are",
        "was",
        "my",
        "me",
        "from",
        "at",
        "in",
        "on",
        "to",
        "of",
        "for",
        "with",
    ]
)

# Endings that mark a surname in many languages (Ivanov, Kowalski, Petrović, Magnusson, Guðmundsdóttir, Popescu,
# Öztürkoğlu, Petrosyan, Shervashidze, Papadopoulos, Chloupková): a capitalised word no dictionary lists that ends so
# is a name even without a cue.
_SURNAME_END_RE = regex.compile(
    r"(?i)\p{L}{2,}(?:ov|ova|ová|ev|eva|yov|yova|enko|chenko|ski|ska|sky|skaya|skiy|wicz|czyk|ić|vić|vic|ovic|evic"
    r"|sson|dóttir|dottir|escu|oglu|oğlu|yan|dze|shvili|poulos|akis|opoulou|ides|idis|ová|ský|ovich|ovna|evna"
    r"|ович|ова|ев|ева)"
)
# A speaker's label at the start of a line ("Halldór: What a wife.", "> Koppány: \"Who are you?\"")
_SPEAKER_RE = regex.compile(r"(?m)^[ \t>]*(\p{L}[\p{Ll}\p{M}'’\-]+)(?=:[ \t]*\S)")
_LABEL_WORDS = frozenset(
    [
        "phone",
        "email",
        "e-mail",
        "mail",
        "website",
        "web",
        "address",
        "fax",
        "mobile",
        "desk",
        "note",
        "notes",
        "subject",
        "date",
        "re",
        "fwd",
        "ps",
        "user",
        "assistant",
        "system",
        "question",
        "answer",
        "name",
        "title",
        "company",
        "office",
        "tel",
        "home",
        "work",
        "cell",
        "id",
        "ref",
        "order",
        "status",
        "from",
        "to",
        "cc",
        "bcc",
        "warning",
        "error",
        "info",
        "debug",
        "source",
        "summary",
        "result",
        "output",
        "input",
        "example",
        "step",
        "tip",
        "bot",
        "agent",
        "customer",
        "support",
        "human",
        "ai",
        "operator",
        "moderator",
        "admin",
        "host",
        "guest",
    ]
)

_STRONG_CUE_END = from_end(_STRONG_CUE_RE)
_WEAK_CUE_END = from_end(_WEAK_CUE_RE)
_SIGNOFF_END = from_end(_SIGNOFF_RE)
_JSON_NAME_KEY_END = from_end(_JSON_NAME_KEY_RE)
_SENTENCE_START_END = from_end(_SENTENCE_START_RE)
_MOTION_END = from_end(_MOTION_RE)
_PLACE_CUE_END = from_end(_PLACE_CUE_RE)


SCORE_CUE = 0.85
SCORE_FULL = 0.85
SCORE_FULL_WEAK = 0.6
SCORE_FIRST_ALONE = 0.6
SCORE_FIRST_AT_START = 0.5
SCORE_WEAK_CUE = 0.55
SCORE_LAST_ALONE = 0.3
SCORE_SURNAME_SHAPE = 0.5
SCORE_SPEAKER = 0.6
#: Spans scoring below this are not names.
DEFAULT_THRESHOLD = 0.45


@dataclass(slots=True)
class _Tok:
    start: int
    end: int
    text: str
    flags: int
    initial: bool

    @property
    def strong(self) -> bool:
        """A name part that is not also a common word or a place: John, Rossi."""
        return bool(self.flags & (FIRST | LAST)) and not self.flags & (WORD | NONPERSON)

    @property
    def known(self) -> bool:
        return bool(self.flags & (FIRST | LAST))

    @property
    def plain_word(self) -> bool:
        """Capitalised only because of position or title case: Machine, Learning, Paris, Dear."""
        if self.text.lower() in _CUE_WORDS or self.text.lower() in _ADDRESS_WORDS:
            return True
        return bool(self.flags & (WORD | NONPERSON)) and not self.flags & (FIRST | LAST)


class GazetteerNameRecognizer(EntityRecognizer):
    """PERSON from a shipped first/last-name gazetteer, capitalisation and cues; needs no NLP model."""

    def __init__(self, gazetteer: Gazetteer | None = None, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.gazetteer = gazetteer or load_gazetteer()
        self.threshold = threshold
        #: given names that are no English word or place, lowercased: a cheap gate for lowercase names
        self._given_only = frozenset(
            k for k, v in self.gazetteer.flags.items() if v & FIRST and not v & (WORD | NONPERSON)
        )
        super().__init__(supported_entities=["PERSON"], name="GazetteerNameRecognizer", supported_language="en")

    def load(self) -> None:  # the gazetteer is loaded in __init__
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            RecognizerResult("PERSON", start, end, score)
            for start, end, score in self.find(text)
            if score >= self.threshold
        ]

    # ------------------------------------------------------------------ detection

    def has_candidate(self, text: str) -> bool:
        """Cheap pre-check: some capitalised word is a name part, or a name cue is present."""
        get = self.gazetteer.get
        for m in capitalised(text):
            word = m.group()
            flags = get(word)
            name_like = not flags & (WORD | NONPERSON) or flags & (FIRST | LAST)
            if name_like and not (len(word) > 1 and word.isupper()) and word not in _NOT_NAMES:
                return True
        return bool(
            _NAME_IS_RE.search(text)
            or _JSON_NAME_KEY_RE.search(text)
            or self._lower_names(text)
            or (", " in text and " and " in text and self._name_lists(text))
        )

    def _tokens(self, text: str) -> list[_Tok]:
        get = self.gazetteer.get
        toks = []
        for m in capitalised(text):
            word = m.group()
            end = m.end()
            if word.endswith(("'s", "’s")):  # possessive: keep "'s" outside the span
                word, end = word[:-2], end - 2
            if word in _NOT_NAMES or (len(word) > 1 and word.isupper()):
                continue  # "I'm", acronyms and shouting: never name parts, and they end a run
            initial = len(word) == 1
            toks.append(_Tok(m.start(), end, word, 0 if initial else get(word), initial))
        return toks

    def _runs(self, text: str, toks: list[_Tok]) -> list[list[_Tok]]:
        """Group capitalised words that follow each other: "John F. Kennedy", "Ludwig van Beethoven"."""
        runs: list[list[_Tok]] = []
        for tok in toks:
            if runs:
                prev = runs[-1][-1]
                gap = text[prev.end : tok.start]
                if (
                    gap == " "
                    or (prev.initial and gap in (". ", "."))
                    or (len(gap) <= 6 and gap.startswith(" ") and gap.endswith(" ") and gap.strip() in PARTICLES)
                    or (prev.text.lower().rstrip(".") in TITLES and gap in (". ", " "))
                ):
                    runs[-1].append(tok)
                    continue
            runs.append([tok])
        return runs

    def find(self, text: str) -> list[tuple[int, int, float]]:
        """Every candidate name span with its score (callers filter by threshold)."""
        out: list[tuple[int, int, float]] = []
        toks = self._tokens(text)
        for run in self._runs(text, toks):
            self._score_run(text, run, out)
        if ":" in text:
            out.extend(self._speakers(text))
        out.extend(self._lower_names(text))
        if "," in text and ("and" in text or "&" in text):  # what a list needs (see _LIST_RE)
            out.extend(self._name_lists(text))
        for m in _NAME_IS_RE.finditer(text):  # "my name is john smith" typed in lowercase
            pos = m.end()
            words: list[tuple[int, int]] = []  # spans
            while len(words) < 3:
                lm = _LOWER_RE.match(text, pos)
                flags = self.gazetteer.get(lm.group(1)) if lm else 0
                # after "name is", a listed name part, or (first word only) any word no dictionary has
                if not lm or lm.group(1) in _STOP_LOWER or not (flags & (FIRST | LAST) or (not words and not flags)):
                    break
                words.append(lm.span(1))
                pos = lm.end()
            if words:
                out.append((words[0][0], words[-1][1], SCORE_CUE))
        return out

    def _speakers(self, text: str) -> list[tuple[int, int, float]]:
        """Speaker labels of a dialogue ("Halldór: What a wife."), when not a field label or a plain word."""
        out = []
        for m in _SPEAKER_RE.finditer(text):
            word = m.group(1)
            flags = self.gazetteer.get(word)
            if word.lower() in _LABEL_WORDS or flags & (WORD | NONPERSON):
                continue
            if word[0].isupper() or flags & FIRST:  # lowercase only when a listed given name ("tracy:")
                out.append((m.start(1), m.end(1), SCORE_SPEAKER))
        return out

    def _name_lists(self, text: str) -> list[tuple[int, int, float]]:
        """Every item of a list of single words most of which are given names ("Efimiya, Mary, Ariana and Isabel",
        "silvana, adam, christopher and brian"), unless an item is a dictionary word or a place."""
        get = self.gazetteer.get
        out: list[tuple[int, int, float]] = []
        for m in _LIST_RE.finditer(text):
            items = [(w.start(), w.end(), get(w.group())) for w in _LIST_ITEM_RE.finditer(m.group())]
            # given names that are no surname: "Owens, Duran and Oneal" is a firm of surnames, not a family
            given = sum(1 for _, _, f in items if f & FIRST and not f & (LAST | NONPERSON))
            if len(items) >= 3 and given * 2 > len(items):
                base = m.start()
                out.extend(
                    (base + a, base + b, SCORE_WEAK_CUE)
                    for a, b, f in items
                    if f & FIRST and not f & NONPERSON or not f & (WORD | NONPERSON)
                )
        return out

    def _lower_names(self, text: str) -> list[tuple[int, int, float]]:
        """A given name and a surname typed in lowercase ("follow up with patricia desrosiers"): the first a
        listed given name, the second a listed surname or surname-shaped, neither an English word."""
        if self._given_only.isdisjoint(text.split()):
            return []  # no lowercase given name in the text: the common case, decided in C
        get = self.gazetteer.get
        out = []
        for m in _LOWER_PAIR_RE.finditer(text, overlapped=True):
            first, last = get(m.group(1)), get(m.group(2))
            if (
                first & FIRST
                and not first & (WORD | NONPERSON)
                and not last & (WORD | NONPERSON)
                and (last & LAST or _SURNAME_END_RE.fullmatch(m.group(2)))
            ):
                out.append((m.start(1), m.end(2), SCORE_FIRST_ALONE))
        return out

    def _score_run(self, text: str, run: list[_Tok], out: list[tuple[int, int, float]]) -> None:
        i, n = 0, len(run)
        title = False
        if _NUMBER_BEFORE_RE.search(text, max(0, run[0].start - 12), run[0].start):
            return  # "754 Laura Square": a street, not a person
        while i < n:
            tok = run[i]
            low = tok.text.lower()
            if low in TITLES and (i + 1 < n):
                title = True
                i += 1
                continue
            if low in PLACE_PREFIXES and i + 1 < n:
                return  # "San Antonio", "Fort Worth", "St. Louis": a place, not a person
            # Grow the longest span of name-like words from i (at most four words).
            j = i
            while j < n and j - i < 4 and not run[j].plain_word and run[j].text.lower() not in TITLES:
                j += 1
            if j == i:
                i += 1
                title = False
                continue
            if (j < n and run[j].text.lower().rstrip(".") in ORG_SUFFIXES) or run[j - 1].text.lower() in ORG_SUFFIXES:
                i = j + 1  # "Johnson Street", "Morgan Library"
                title = False
                continue
            score = self._score_span(text, run[i:j], title)
            if score > 0:
                out.append((run[i].start, run[j - 1].end, score))
                i = j
            else:
                i += 1  # "Reach Manuela", "Dear Valerio Porzio": retry without the leading word
            title = False

    def _score_span(self, text: str, span: list[_Tok], title: bool) -> float:
        first, last = span[0], span[-1]
        before = text[max(0, first.start - 48) : first.start]
        names = [t for t in span if not t.initial]
        if not names:
            return 0.0
        vocative = before.endswith(", ") and _VOCATIVE_AFTER_RE.match(text, last.end) is not None
        if title:
            return SCORE_CUE  # "Mr. Spears": after a title any capitalised word is a name, common word or not
        if vocative or self._cued(before, names) or _SIGNOFF_END.search(before) or _JSON_NAME_KEY_END.search(before):
            # A cue vouches for capitalised words that are not plain English words.
            ok = any(t.strong or not t.flags or (t.flags & FIRST and not t.flags & NONPERSON) for t in names)
            return SCORE_CUE if ok else 0.0
        at_start = bool(_SENTENCE_START_END.search(before))
        if len(names) >= 2:
            head, tail = names[0], names[-1]
            if not (head.known or not head.flags) or not (tail.flags & LAST or not tail.flags or tail.flags & FIRST):
                return 0.0
            if not any(t.known for t in names):
                # "Samsung Galaxy": no part is a known name; "Elínborg Guðmundsdóttir", "Ravil G Yefimov": a
                # foreign name the lists lack, told by its letters or a surname ending
                return SCORE_FULL_WEAK if self._foreign(span, before) else 0.0
            if head.flags & FIRST or first.initial:
                return SCORE_FULL if any(t.strong for t in names) else SCORE_FULL_WEAK
            # Head is a surname-only or unknown word: "Sherlock Holmes", "Rohit Sharma".
            return SCORE_FULL_WEAK if any(t.strong for t in names) else 0.0
        tok = names[0]
        if _MOTION_END.search(before):
            return 0.0  # "moved here from Kenosha": a lone word after a journey is where, not who
        if not tok.flags & (WORD | NONPERSON) and _PERSON_VERB_RE.match(text, last.end):
            return SCORE_WEAK_CUE  # "Järvilehto began writing", "Mehrudin shouted": what people do
        if tok.strong and tok.flags & FIRST:
            if self._weak_cue(before):
                return SCORE_CUE
            return SCORE_FIRST_AT_START if at_start else SCORE_FIRST_ALONE
        if (tok.strong or tok.flags & FIRST and not tok.flags & NONPERSON) and self._weak_cue(before):
            return SCORE_WEAK_CUE
        if tok.strong:
            return SCORE_LAST_ALONE
        if not tok.flags and _SURNAME_END_RE.fullmatch(tok.text) and not _PLACE_CUE_END.search(before):
            return SCORE_SURNAME_SHAPE  # "Kaczmarek was …", "early Yefremova"
        return 0.0

    @staticmethod
    def _weak_cue(before: str) -> bool:
        return _WEAK_CUE_END.search(before) is not None and _MOTION_END.search(before) is None

    def _cued(self, before: str, names: list[_Tok]) -> bool:
        """A strong cue before the span. A bare "to" or "from" vouches only for listed names ("reply to Maria"),
        never after a journey ("flew to Loeches") or for unlisted words ("deploy to Kubernetes")."""
        if _STRONG_CUE_END.search(before) is None:
            return False
        m = _STRONG_CUE_RE.search(before)  # the leftmost match, whose words decide below
        if m is None:
            return False
        if m.group().strip(" \t\n,:-").lower() not in ("to", "from"):
            return True
        return not _MOTION_END.search(before) and any(t.known and not t.flags & NONPERSON for t in names)

    @staticmethod
    def _foreign(span: list[_Tok], before: str) -> bool:
        """Unlisted capitalised words that look like a person's name: none is a dictionary word, and one has
        letters outside ASCII or ends like a surname; not right after "in", "to", "near" (a place)."""
        words = [t for t in span if not t.initial]
        if any(t.flags & (WORD | NONPERSON) for t in words) or _PLACE_CUE_END.search(before):
            return False
        return any(not t.text.isascii() or _SURNAME_END_RE.fullmatch(t.text) for t in words) or any(
            t.initial for t in span[1:-1]
        )


# first.last, first_last_6490, first-last42: a handle made of a person's names (never an e-mail's local part).
_HANDLE_RE = regex.compile(
    r"(?i)(?<![\p{L}\p{N}_.@\-])(\p{L}+)([._\-])(\p{L}+)([._\-]?\d{1,8})?(?![\p{L}\p{N}_@\-]|\.\p{L})"
)
SCORE_HANDLE = 0.7


class NameHandleRecognizer(EntityRecognizer):
    """USERNAME: a handle or user id built from a first and a last name (``isabella_lopez_6490``).

    The first part must be a given name that is not also a common word or a place, the second a
    surname, so ``get_order`` or ``grace_period`` stay as they are.
    """

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self.gazetteer = gazetteer or load_gazetteer()
        super().__init__(supported_entities=["USERNAME"], name="NameHandleRecognizer", supported_language="en")

    def load(self) -> None:  # the gazetteer is loaded in __init__
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [RecognizerResult("USERNAME", start, end, SCORE_HANDLE) for start, end in self.find(text)]

    def find(self, text: str) -> list[tuple[int, int]]:
        """Spans of the handles in ``text``."""
        get = self.gazetteer.get
        out = []
        for m in _HANDLE_RE.finditer(text):
            if m.group(2) == "-" and not m.group(4):
                continue  # Sarah-Jane, Karl-Josef: a double name (PERSON's), not a handle
            first, last = get(m.group(1)), get(m.group(3))
            if first & FIRST and not first & (WORD | NONPERSON) and last & LAST:
                out.append(m.span())
        return out


def plausible_model_name(gazetteer: Gazetteer, text: str, start: int, end: int) -> bool:
    """Whether an NER model's PERSON span can stand: not only dictionary words or places ("Credit Karma",
    "Kenosha"), not a lone word after a journey or a place preposition, not the head of an organisation's name."""
    words = regex.findall(r"[\p{L}\p{M}'’\-]+", text[start:end])
    if not words or any(ch.isdigit() for ch in text[start:end]):
        return False
    flags = [gazetteer.get(w.strip("'’-")) for w in words]
    if all(f & NONPERSON or (f & WORD and not f & (FIRST | LAST)) for f in flags):
        return False
    before = text[max(0, start - 48) : start]
    if _MOTION_END.search(before) or (len(words) == 1 and _PLACE_CUE_END.search(before)):
        return False
    after = regex.match(r"[ \t]+([\p{L}]+)", text[end : end + 40])
    return not (after and after.group(1).lower() in ORG_SUFFIXES)
