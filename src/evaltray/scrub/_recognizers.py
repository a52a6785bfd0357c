"""Recognizers evaltray adds to Presidio's: secrets, postal addresses, URLs that carry tokens, JSON keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex
import tldextract
from presidio_analyzer import LocalRecognizer, Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, UrlRecognizer

# tldextract's module-level extractor fetches the public-suffix list over the network on first use;
# this one only ever reads the snapshot bundled in the wheel.
OFFLINE_TLD = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

REGEX_TIMEOUT = 2.0  # seconds per regex scan: a pathological 1 MB text fails the trace, never hangs it
#: Texts up to this long are scanned without :data:`REGEX_TIMEOUT`. The ``regex`` module's ``timeout=`` costs
#: ~4 µs a call whatever the text, as much as a whole scan of a chat message; and no scan of a text this short
#: comes near the timeout: the slowest found by ``bench/scrub_worst_case.py`` (every timed pattern against
#: tiled and random texts of the patterns' own pieces) takes ~0.1 s, the quadratic API-key assignment rule on
#: "1-1-1-…". A longer text keeps the timeout on every scan.
UNTIMED_CHARS = 1_000


def finditer(rx: regex.Pattern[str], text: str) -> Iterable[regex.Match[str]]:
    """``rx``'s matches in ``text``, the scan timed out at :data:`REGEX_TIMEOUT` unless ``text`` is short
    (:data:`UNTIMED_CHARS`)."""
    if len(text) <= UNTIMED_CHARS:
        return rx.finditer(text)
    return rx.finditer(text, timeout=REGEX_TIMEOUT)


def scan(rx: regex.Pattern[str], gate: regex.Pattern[str] | None, text: str) -> Iterable[regex.Match[str]]:
    """``rx``'s matches in ``text`` (:func:`finditer`); none, without that scan, when ``gate`` finds nothing. A
    gate is a plain pattern that finds something in every text ``rx`` matches in (a literal the match must
    hold): it skips the scan, whose timeout alone costs more than the gate's search. Only a gate the regex
    engine finds fast pays (one that starts with a rare character or a short literal): a gate of many
    alternative words is searched at every position, slower than the pattern it guards."""
    if gate is not None and gate.search(text) is None:
        return ()
    return finditer(rx, text)


def from_end(rx: regex.Pattern[str]) -> regex.Pattern[str]:
    """``rx``, a pattern that ends in ``$``, searched backwards from the end of the text (``regex.REVERSE``): it
    finds a match exactly when ``rx`` does (tests/scrub/test_scrub_speed.py checks every 48-character window of
    the test texts), without first trying the whole pattern at each earlier start position: 1.5-5x faster on
    the 40-48 characters before a value. Only whether it matches is read from it; a match's text comes from
    ``rx`` itself."""
    return regex.compile(rx.pattern, rx.flags | regex.REVERSE)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against tldextract's bundled snapshot."""

    def validate_result(self, pattern_text: str) -> bool:
        return OFFLINE_TLD(pattern_text).fqdn != ""


_TOKEN_PARAM_RE = regex.compile(
    r"(?i)[?&#;](?:[\w.-]*(?:token|key|secret|sig|signature|passw(?:or)?d|pass|pwd|auth|session|sid|credential|code"
    r"|ticket|hash|otp|jwt)[\w.-]*)=[^&#\s]{4,}"
)
_USERINFO_RE = regex.compile(r"://[^/@\s:]+:[^/@\s]+@")
_RANDOM_SEGMENT_RE = regex.compile(r"[/=](?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])[A-Za-z0-9_]{24,}(?![\w\-])")


class TokenUrlRecognizer(UrlRecognizer):
    """Presidio's URL recognizer, keeping only URLs that carry a credential (token, key, userinfo, signature).

    Plain links ("see wikipedia.org/wiki/Tea") are content, not personal data, and stay.
    """

    # Presidio's patterns have no userinfo part ("https://user:pass@host") and list only some TLDs (no .biz);
    # with a scheme the text is a URL whatever its TLD.
    PATTERNS = [
        *UrlRecognizer.PATTERNS,
        Pattern("Any URL with a scheme", r"(?i)\bhttps?://[^\s\"'<>()\[\]{}]*[^\s\"'<>()\[\]{}.,;:!?]", 0.6),
        Pattern("URL with userinfo", r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/@:]+:[^\s/@]+@[^\s/?#\"'<>]+[^\s\"'<>]*", 0.6),
    ]

    def validate_result(self, pattern_text: str) -> bool:
        return bool(
            _TOKEN_PARAM_RE.search(pattern_text)
            or _USERINFO_RE.search(pattern_text)
            or _RANDOM_SEGMENT_RE.search(pattern_text)
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        # validate_result=False only lowers the score in Presidio; here a plain URL is not a finding.
        out = [r for r in super().analyze(text, entities, nlp_artifacts, regex_flags) if r.score >= 1.0]
        for r in out:
            while r.end > r.start and text[r.end - 1] in ".,;:!?)]}'\"":  # sentence punctuation is not the URL's
                r.end -= 1
        return out


_CARD_CUE_RE = regex.compile(r"(?i)\b(?:card|cc|credit|debit|maestro|visa|mastercard)\b[^\n\d]{0,20}$")


class LuhnCardRecognizer(CreditCardRecognizer):
    """Presidio's credit-card recognizer (Luhn-checked), also matching 2-series Mastercard, 12-digit Maestro
    and 19-digit Visa, which its default pattern misses; never a number after "+", 12-digit Maestro only
    after a card cue."""

    PATTERNS = [
        *CreditCardRecognizer.PATTERNS,
        Pattern("Cards 12-19 digits (Luhn)", r"(?<!\+)\b[2-6](?:[ \-]?\d){11,18}\b", 0.3),
    ]

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        # "+447700677662" is an international phone number, whatever its digits sum to; 12 digits pass Luhn
        # one time in ten, so a 12-digit Maestro number needs a card cue before it
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [
            r
            for r in found
            if not (r.start > 0 and text[r.start - 1] == "+")
            and (
                sum(ch.isdigit() for ch in text[r.start : r.end]) > 12
                or _CARD_CUE_RE.search(text, max(0, r.start - 30), r.start) is not None
            )
        ]


@dataclass(frozen=True, slots=True)
class Rule:
    """One regex; ``group`` names the part that is the value (0 = the whole match); ``gate``, a pattern that finds
    something in any text ``pattern`` matches in (see :func:`scan`)."""

    name: str
    pattern: str
    score: float
    group: int = 0
    gate: str | None = None

    def compiled(self) -> regex.Pattern[str]:
        return regex.compile(self.pattern)

    def compiled_gate(self) -> regex.Pattern[str] | None:
        return regex.compile(self.gate) if self.gate is not None else None


def finding(recognizer: Any, entity: str, start: int, end: int, score: float) -> RecognizerResult:
    """A finding that names the recognizer which made it (Presidio's decision trace reads these)."""
    return RecognizerResult(
        entity,
        start,
        end,
        score,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


class OwnRecognizer(LocalRecognizer):
    """A recognizer of evaltray's own: English, with nothing to load."""

    def __init__(self, entities: list[str], name: str) -> None:
        super().__init__(supported_entities=entities, name=name, supported_language="en")

    def load(self) -> None:
        pass


class RuleRecognizer(OwnRecognizer):
    """Regex rules whose value may be a capture group (``password=VALUE`` masks VALUE, not the key)."""

    def __init__(self, entity: str, rules: Sequence[Rule], name: str) -> None:
        self.rules = [(r, r.compiled(), r.compiled_gate()) for r in rules]
        super().__init__([entity], name)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        out = []
        for rule, rx, gate in self.rules:
            for m in scan(rx, gate, text):
                start, end = m.span(rule.group)
                if end > start:
                    out.append(finding(self, entity, start, end, rule.score))
        return out


_B = r"(?<![A-Za-z0-9_\-])"  # token boundary that also treats '-' and '_' as part of the token
_E = r"(?![A-Za-z0-9_\-])"
API_KEY_RULES: tuple[Rule, ...] = (
    Rule(
        "openai/anthropic", _B + r"sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_\-]{20,}" + _E, 0.95
    ),
    Rule("langfuse", _B + r"[ps]k-lf-[0-9a-fA-F\-]{16,}" + _E, 0.95),
    Rule("stripe", _B + r"(?:sk|pk|rk|whsec)_(?:live|test)_[A-Za-z0-9]{16,}" + _E, 0.95),
    Rule("aws-access-key", _B + r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}" + _E, 0.95),
    Rule("github", _B + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})" + _E, 0.95),
    Rule("gitlab", _B + r"glpat-[A-Za-z0-9_\-]{20,}" + _E, 0.95),
    Rule("slack", _B + r"xox[abposr]-[A-Za-z0-9\-]{10,}" + _E, 0.95),
    Rule("google", _B + r"AIza[0-9A-Za-z_\-]{35}" + _E, 0.95),
    Rule("huggingface", _B + r"hf_[A-Za-z0-9]{30,}" + _E, 0.95),
    Rule("npm", _B + r"npm_[A-Za-z0-9]{36}" + _E, 0.95),
    Rule("sendgrid", _B + r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _E, 0.95),
    Rule("twilio", _B + r"SK[0-9a-f]{32}" + _E, 0.8),
    Rule("jwt", _B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}" + _E, 0.95),
    Rule("private-key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", 0.99),
    Rule("bearer", r"(?i)\b(?:bearer|token|basic)\s+([A-Za-z0-9_\-.=:+/~]{16,})" + _E, 0.85, 1),
    Rule(
        "assignment",
        r"(?i)\b[\w-]*(?:api[_-]?key|apikey|secret|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token"
        r"|private[_-]?key|password|passwd|pwd|passphrase|client[_-]?secret|x-api-key)[\"']?\s*[:=]\s*[\"']?"
        r"([^\s\"'<>,;{}\[\]()]{6,})",
        0.8,
        1,
    ),
)

# USPS street suffixes (Publication 28 primary names and common abbreviations).
US_STREET_TYPES = (
    "Alley|Aly|Annex|Arcade|Avenue|Ave|Av|Bayou|Beach|Bend|Bluffs?|Bottom|Boulevard|Blvd|Branch|Br|Bridge|Brg|"
    "Brooks?|Burgs?|Bypass|Byp|Camp|Canyon|Cape|Causeway|Center|Ctr|Centers|Circles?|Cir|Cliffs?|Club|Commons?|"
    "Corners?|Course|Courts?|Ct|Coves?|Creek|Crescent|Cres|Crest|Crossing|Xing|Crossroads?|Curve|Dale|Dam|"
    "Divide|Drives?|Dr|Estates?|Expressway|Expy|Extensions?|Ext|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|"
    "Forges?|Forks?|Fort|Freeway|Fwy|Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Haven|Heights|Hts|"
    "Highway|Hwy|Hills?|Hollow|Inlet|Islands?|Isle|Junctions?|Jct|Keys?|Knolls?|Lakes?|Land|Landing|Lane|Ln|"
    "Lights?|Loaf|Locks?|Lodge|Loop|Mall|Manors?|Meadows?|Mews|Mills?|Mission|Motorway|Mount|Mountains?|Neck|"
    "Orchard|Oval|Overpass|Parks?|Parkways?|Pkwy|Pass|Passage|Path|Pike|Pines?|Place|Pl|Plains?|Plaza|Plz|"
    "Points?|Pt|Ports?|Prairie|Radial|Ramp|Ranch|Rapids?|Rest|Ridges?|River|Road|Rd|Roads|Route|Rte|Row|Rue|"
    "Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Sq|Station|Sta|Stravenue|Stream|Streets?|St|Summit|"
    "Terrace|Ter|Throughway|Trace|Track|Trafficway|Trail|Trl|Trailer|Tunnel|Turnpike|Tpke|Underpass|Unions?|"
    "Valleys?|Via|Viaduct|Views?|Village|Vlg|Villages|Ville|Vista|Walks?|Wall|Way|Ways|Wells?"
)
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|"
    "OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|AS|MP|AA|AE|AP"
)
_UNIT = r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Room|Rm|Bldg|Building|No)\.?[ \t]*#?[ \t]*[A-Za-z0-9\-]{1,6}|[ \t]*#[ \t]?\d{1,6})?"
_CITY_STATE_ZIP = (
    r"(?:(?:,[ \t]*|[ \t]*\n[ \t]*|[ \t]+)\p{Lu}[\p{L}.'\-]+(?:[ \t]\p{Lu}[\p{L}.'\-]+){0,3},?[ \t]+(?:"
    + _STATES
    + r")(?:[ \t]+\d{5}(?:-\d{4})?)?"
    r"|,?[ \t]+\d{5}(?:-\d{4})?(?![\d\-]))?"
)
ADDRESS_RULES: tuple[Rule, ...] = (
    Rule(
        "us-street",
        r"(?<![\w\-.])\d{1,6}[A-Za-z]?(?:-\d{1,5})?[ \t]+(?:[NSEW]\.?[ \t]+|(?:North|South|East|West)[ \t]+)?"
        r"(?:(?:\p{Lu}[\p{L}'\-]*|\d+(?:st|nd|rd|th))[ \t]+){1,4}(?:" + US_STREET_TYPES + r")\b\.?"
        r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?" + _UNIT + _CITY_STATE_ZIP,
        0.7,
    ),
    Rule(
        "us-street-lower",
        r"(?i)(?<![\w\-.])\d{1,6}[ \t]+(?:[a-z]+[ \t]+){1,3}(?:street|avenue|road|drive|lane|boulevard|court|place)\b",
        0.5,
    ),
    Rule(
        "unit",
        r"\b(?:Apt|Apartment|Suite|Ste|Unit)\.?[ \t]*#?[ \t]*\d{1,6}[A-Za-z]?\b",
        0.5,
        gate=r"Apt|Apartment|Suite|Ste|Unit",
    ),
    Rule("po-box", r"(?i)\bP\.?[ \t]?O\.?[ \t]+Box[ \t]+\d{1,7}\b", 0.7, gate=r"(?i)box"),
    Rule(
        "military",
        r"\b(?:PSC|CMR|Unit|USNS|USNV|USS|USCGC)[ \t]+[\w .]{1,40}?(?:,?[ \t]+Box[ \t]+\d{1,6})?[ \t]*[,\n][ \t]*"
        r"(?:APO|FPO|DPO)[ \t]+A[AEP][ \t]+\d{5}\b",
        0.8,
        gate=r"[ADF]PO[ \t]",
    ),
    Rule(
        "city-state-zip",
        r"\b\p{Lu}[\p{L}.'\-]+(?:[ \t]\p{Lu}[\p{L}.'\-]+){0,3},?[ \t]+(?:"
        + _STATES
        + r"),?[ \t]+\d{5}(?:-\d{4})?(?![\d\-])",
        0.6,
        gate=r"[A-Z]{2},?[ \t]+\d",  # every state code is two capitals
    ),
    Rule(
        "zip-with-cue",
        r"(?i)\b(?:zip|zip[ \t]*code|zipcode|postal[ \t]*code|post[ \t]*code|postcode)s?\b[\"']?[ \t]*(?:is|was|:|=|-|#|of)?(?:[ \t]+(?:actually|now|still|just|probably|also))?[ \t]*[\"']?"
        r"(\d{5}(?:-\d{4})?|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2})(?![\d\-])",
        0.7,
        1,
        gate=r"(?i)zip|post",
    ),
)

#: JSON/form keys whose value is the entity, whatever it looks like. Keys are compared lowercased without _ - or spaces.
KEY_ENTITIES: dict[str, str] = {
    **dict.fromkeys(
        [
            "firstname",
            "lastname",
            "fullname",
            "givenname",
            "familyname",
            "surname",
            "middlename",
            "maidenname",
            "customername",
            "contactname",
            "personname",
            "patientname",
            "cardholder",
            "cardholdername",
            "accountholder",
            "billingname",
            "shippingname",
            "recipientname",
        ],
        "PERSON",
    ),
    **dict.fromkeys(
        [
            "address",
            "address1",
            "address2",
            "addressline1",
            "addressline2",
            "streetaddress",
            "street",
            "addr",
            "billingaddress",
            "shippingaddress",
            "homeaddress",
            "mailingaddress",
            "zip",
            "zipcode",
            "postalcode",
            "postcode",
        ],
        "ADDRESS",
    ),
    **dict.fromkeys(
        ["phone", "phonenumber", "mobile", "mobilenumber", "cell", "cellphone", "telephone", "tel", "fax"],
        "PHONE_NUMBER",
    ),
    **dict.fromkeys(["cardnumber", "creditcard", "creditcardnumber", "ccnumber", "pan"], "CREDIT_CARD"),
    **dict.fromkeys(["email", "emailaddress", "mail"], "EMAIL_ADDRESS"),
    **dict.fromkeys(["username", "userhandle", "handle", "login", "screenname", "nickname"], "USERNAME"),
    **dict.fromkeys(
        ["apikey", "secret", "clientsecret", "password", "accesstoken", "refreshtoken", "privatekey"], "API_KEY"
    ),
}


def key_entity(key: object) -> str | None:
    """The entity a structured field named ``key`` holds (``first_name`` -> PERSON), if any."""
    if not isinstance(key, str) or len(key) > 40:
        return None
    return _key_entity(key)


@lru_cache(maxsize=4096)  # a trace's keys recur in every trace (span ids, times, metadata)
def _key_entity(key: str) -> str | None:
    return KEY_ENTITIES.get(key.lower().replace("_", "").replace("-", "").replace(" ", ""))


# "first_name": "Isabella" / 'zip': 85034 / first_name=Isabella inside JSON text or logs.
_KV_RE = regex.compile(
    r"(?<![A-Za-z0-9_\-])([A-Za-z][A-Za-z0-9_\-]{1,30})[\"']?[ \t]*[:=][ \t]*(?:\"([^\"\n<]{1,200})\"|'([^'\n<]{1,200})'|(\d[\d \-]{2,12}\d)(?![\d.]))"
)


_KV_GATE = regex.compile(r"[:=][ \t]*[\"'\d]")  # a value quoted, or a number, right after its separator


class KeyValueRecognizer(OwnRecognizer):
    """Values of structured fields whose key names the entity (``"last_name": "Rossi"``, ``"zip": "85034"``)."""

    def __init__(self, entities: Sequence[str]) -> None:
        super().__init__(list(entities), "KeyValueRecognizer")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        if ":" not in text and "=" not in text:
            return out
        wanted = set(entities)
        for m in scan(_KV_RE, _KV_GATE, text):
            entity = key_entity(m.group(1).strip())
            if entity is None or entity not in wanted:
                continue
            group = next(g for g in (2, 3, 4) if m.group(g) is not None)
            start, end = m.span(group)
            if m.group(group).strip():
                out.append(finding(self, entity, start, end, 0.9))
        return out
