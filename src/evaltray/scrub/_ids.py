"""Numbers that identify a person: phone numbers, US SSN/ITIN, passport and driver's licence numbers, IBANs.

Each is found by its shape, checked by what the shape allows (a checksum, a numbering plan, a valid SSN
area), and where the shape alone says little (a bare digit run, a passport number) only after a cue word.
Identifiers that are not personal -- order, item, ticket and card-as-text numbers -- stay: an id cue right
before a digit run keeps it from becoming a phone number.
"""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers
import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from ._recognizers import OwnRecognizer, finding, finditer, from_end, scan

#: The national numbering plans a phone number without a country code is read in (issue 11: US/UK/DE/FR/IN/BR).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR")

# A run of digits with the separators phone numbers are written with; an extension may follow.
_PHONE_CAND_RE = regex.compile(
    r"(?<![\w+\-/.#@$€£])(?<!\d,)(\+|00)?(\(?\d[\d().\- \t]{5,22}\d)"
    r"(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,5})?(?![\w/@]|-\d|[.,]\d)"
)
_PHONE_CUE_BEFORE_RE = regex.compile(
    r"(?i)\b(?:phone|phones|ph|tel|telephone|mobile|mob|cell|cellphone|fax|call|called|calling|text|sms|whatsapp"
    r"|reach|ring|dial|contact|office|desk|home|work|landline|hotline|number|answering|callback|call[ \t]back)\b"
    r"[^\n\d]{0,24}$"
)
_PHONE_CUE_AFTER_RE = regex.compile(r"(?i)[ \t]*[\-(]?[ \t]*(?:office|fax|mobile|cell|home|work|desk|phone|tel)\b")
# An id cue right before the run: the number names an order, an item, a card, not a phone.
_ID_CUE_RE = regex.compile(
    r"(?i)(?:\b(?:order|invoice|tracking|ref|reference|account|acct|item|product|sku|id|ticket|case|confirmation"
    r"|transaction|booking|reservation|policy|serial|card|iban|ssn|passport|licen[cs]e|routing|isbn|model|part"
    r"|zip|zip[ \t]?code|postal[ \t]?code|post[ \t]?code|postcode)"
    r"(?:[ \t]*(?:id|no\.?|number|num|#|code))?[ \t]*(?:is|was)?[ \t]*[:#=]?[ \t]*|#[ \t]*)$"
)
_ID_CUE_END = from_end(_ID_CUE_RE)
_DATE_SHAPE_RE = regex.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")
_IP_SHAPE_RE = regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_SSN_SHAPE_RE = regex.compile(r"\d{3}-\d{2}-\d{4}|\d{5}-\d{4}")  # and ZIP+4
_NANP_RE = regex.compile(r"(?:1[ .\-])?(?:\(\d{3}\)[ \t]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_WORD_AFTER_RE = regex.compile(r"[ \t]+\p{L}")
_SEPARATED = regex.compile(r"\d[().\- \t]+\d")
#: Arithmetic on amounts ("256.67 - 226.49"): decimals joined by an operator with spaces around it.
_AMOUNTS_RE = regex.compile(r"\d+\.\d{1,2}(?:[ \t]+[-+*/][ \t]+\d+(?:\.\d{1,2})?)+")


def _phone_score(text: str, start: int, end: int, plus: bool) -> float:
    """How sure the run ``text[start:end]`` is a phone number (0: it is not one)."""
    raw = text[start:end]
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not 7 <= len(digits) <= 15:
        return 0.0
    before = text[max(0, start - 40) : start]
    if _ID_CUE_END.search(before):
        return 0.0
    if _DATE_SHAPE_RE.fullmatch(raw) or _IP_SHAPE_RE.fullmatch(raw) or _SSN_SHAPE_RE.fullmatch(raw):
        return 0.0
    cue = bool(_PHONE_CUE_BEFORE_RE.search(before) or _PHONE_CUE_AFTER_RE.match(text, end))
    if not cue and _AMOUNTS_RE.fullmatch(raw):
        return 0.0
    if not cue and _WORD_AFTER_RE.match(text, end):
        return 0.0  # "3536 1659 Hoog St": house numbers before a street name
    if plus:
        try:
            number = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            return 0.5 if cue else 0.0
        return 0.85 if phonenumbers.is_possible_number(number) else (0.5 if cue else 0.0)
    if not _SEPARATED.search(raw):
        return 0.6 if cue and len(digits) <= 13 else 0.0  # a bare digit run is a phone only when called one
    if _NANP_RE.fullmatch(raw):
        return 0.6  # 3-3-4 with separators: how US numbers are written, whether or not the area code exists
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return 0.75
    return 0.55 if cue else 0.0


class PhoneNumberRecognizer(OwnRecognizer):
    """Phone numbers: E.164 and 00-prefixed international numbers, national formats valid in one of
    ``PHONE_REGIONS``, and any 7-15 digit grouping a phone cue names ("call me on 9472 7916", "… -Office")."""

    def __init__(self) -> None:
        super().__init__(["PHONE_NUMBER"], "PhoneNumberRecognizer")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out = []
        for m in finditer(_PHONE_CAND_RE, text):
            start, end = m.span(2)
            if text[start] == "(" and ")" not in text[start:end]:
                start += 1
            score = _phone_score(text, start, end, m.group(1) is not None)
            if score > 0:  # the span takes the extension too ("…-7614x365")
                out.append(finding(self, "PHONE_NUMBER", m.start() if m.group(1) else start, m.end(), score))
        return out


# ---------------------------------------------------------------------------------------- national ids


def ssn_valid(value: str) -> bool:
    """A US SSN the SSA could issue: area not 000, 666 or 9xx, group not 00, serial not 0000."""
    d = "".join(ch for ch in value if ch.isdigit())
    return len(d) == 9 and d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def itin_valid(value: str) -> bool:
    """A US ITIN: 9xx, group 50-65, 70-88, 90-92 or 94-99."""
    d = "".join(ch for ch in value if ch.isdigit())
    if len(d) != 9 or d[0] != "9":
        return False
    g = int(d[3:5])
    return 50 <= g <= 65 or 70 <= g <= 88 or 90 <= g <= 92 or 94 <= g <= 99


# "is", ":", "#", "number" … between a cue and its value
_GAP = r"(?:[ \t]*(?:number|no\.?|num|#|id|nr\.?))?[ \t]*(?:is|was|reads|:|=|#|-)?[ \t]*(?:is|:)?[ \t]*[\"'(]?"


class CueIdRecognizer(OwnRecognizer):
    """One kind of id number: a shape found anywhere (checked by ``check``) or, looser, only after a cue."""

    def __init__(
        self,
        entity: str,
        cue: str,
        cued_value: str,
        check: Callable[[str], bool],
        bare_value: str | None = None,
        bare_gate: str | None = None,
    ) -> None:
        self.check = check
        self.cued = regex.compile(r"(?i)\b(?:" + cue + r")" + _GAP + r"(" + cued_value + r")(?![\w\-])")
        self.bare = regex.compile(r"(?<![\w\-])(" + bare_value + r")(?![\w\-])") if bare_value else None
        #: what the cued pattern needs (its cue) and what the bare one does (``bare_gate``): see :func:`scan`
        self.gates = (regex.compile(r"(?i)\b(?:" + cue + r")"), regex.compile(bare_gate) if bare_gate else None)
        super().__init__([entity], f"{entity.title()}Recognizer")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        out = []
        for rx, gate, score in ((self.cued, self.gates[0], 0.9), (self.bare, self.gates[1], 0.6)):
            if rx is None:
                continue
            for m in scan(rx, gate, text):
                if self.check(m.group(1)):
                    out.append(finding(self, entity, m.start(1), m.end(1), score))
        return out


_SSN_CUE = r"ssn|ss\#|social[ \t]+security(?:[ \t]+(?:card|account))?|soc[ \t]+sec"
_NINE = r"\d{3}[ \t\-.]?\d{2}[ \t\-.]?\d{4}"
_ITIN_CUE = r"itin|individual[ \t]+taxpayer(?:[ \t]+identification)?|taxpayer[ \t]+id|tax[ \t]+id|tin"
_PASSPORT_CUE = r"passport"
_DL_CUE = r"driver'?s?[ \t]+licen[cs]e|driving[ \t]+licen[cs]e|driver'?s?[ \t]+permit|\bDL\b|licen[cs]e[ \t]+(?:number|no\.?|\#)"
# Passport and licence numbers: 5-20 letters and digits (a hyphen or space inside), at least three digits.
_ID_VALUE = r"(?=(?:[A-Za-z\-]*\d){3})[A-Za-z0-9](?:[A-Za-z0-9]|[\- ](?=[A-Za-z0-9])){4,19}"


def _id_shape(value: str) -> bool:
    return sum(ch.isdigit() for ch in value) >= 3 and not value.isalpha()


def ssn_recognizer() -> CueIdRecognizer:
    """US SSN: 123-45-6789 anywhere (when valid), 9 digits however grouped after an SSN cue."""
    return CueIdRecognizer("US_SSN", _SSN_CUE, _NINE, ssn_valid, r"\d{3}-\d{2}-\d{4}", r"\d-\d")


def itin_recognizer() -> CueIdRecognizer:
    """US ITIN: 9xx-7x-xxxx anywhere (when valid), 9 digits after a taxpayer-id cue."""
    return CueIdRecognizer("US_ITIN", _ITIN_CUE, _NINE, itin_valid, r"9\d{2}-\d{2}-\d{4}", r"\d-\d")


def passport_recognizer() -> CueIdRecognizer:
    """Passport numbers, only after "passport" (US: 9 digits or a letter and 8 digits; others 6-9 characters)."""
    return CueIdRecognizer("PASSPORT", _PASSPORT_CUE, _ID_VALUE, _id_shape)


def driver_license_recognizer() -> CueIdRecognizer:
    """Driver's licence numbers, only after a licence cue (formats differ by state and country)."""
    return CueIdRecognizer("DRIVER_LICENSE", _DL_CUE, _ID_VALUE, _id_shape)


# ---------------------------------------------------------------------------------------- IBAN

# Two letters, two check digits, then 11-30 letters and digits in groups of any size, any case.
_IBAN_RE = regex.compile(r"(?i)(?<![\w\-])([a-z]{2}\d{2}(?:[ \-]?[a-z0-9]){11,30})(?![\w\-])")


def iban_valid(value: str) -> bool:
    """ISO 13616: 15-34 characters, two letters, and the mod-97 check over the rearranged number equals 1."""
    s = "".join(ch for ch in value if ch.isalnum()).upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


class AnyCaseIbanRecognizer(OwnRecognizer):
    """IBANs in any case and grouping ("gb42 nawi 0445…"), kept only when their check digits hold; a match
    that swallowed the next word is cut back to the longest prefix that checks."""

    def __init__(self) -> None:
        super().__init__(["IBAN_CODE"], "AnyCaseIbanRecognizer")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out = []
        for m in finditer(_IBAN_RE, text):
            start, end = m.span(1)
            while end - start >= 15:
                if text[end - 1].isalnum() and iban_valid(text[start:end]):
                    out.append(finding(self, "IBAN_CODE", start, end, 0.9))
                    break
                end -= 1
        return out


__all__ = [
    "PHONE_REGIONS",
    "AnyCaseIbanRecognizer",
    "CueIdRecognizer",
    "PhoneNumberRecognizer",
    "driver_license_recognizer",
    "iban_valid",
    "itin_recognizer",
    "itin_valid",
    "passport_recognizer",
    "ssn_recognizer",
    "ssn_valid",
]
