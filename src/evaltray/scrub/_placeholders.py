"""Placeholders (``<EMAIL_1>``) and the per-trace map that keeps them consistent.

A person is one number: their full name is ``<PERSON_1>``, their first name alone ``<PERSON_1_FIRST>`` and
their last name alone ``<PERSON_1_LAST>``; another person is ``<PERSON_2>``. A name part met before the full
name it belongs to (a lone "Gillian") is a person of its own: which later full name it shares cannot be known.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

#: Presidio entity type -> placeholder label, in the order the scrubber documents them.
LABELS: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "US_ITIN": "ITIN",
    "PASSPORT": "PASSPORT",
    "DRIVER_LICENSE": "DRIVER_LICENSE",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "API_KEY": "API_KEY",
    "ADDRESS": "ADDRESS",
    "PERSON": "PERSON",
    "USERNAME": "USERNAME",
}
ENTITY_OF_LABEL: dict[str, str] = {label: entity for entity, label in LABELS.items()}

#: Any evaltray placeholder; scrubbing never detects PII inside one (that is what makes it idempotent).
PLACEHOLDER_RE = re.compile(
    r"<(" + "|".join(sorted(LABELS.values(), key=len, reverse=True)) + r")_(\d+)(?:_(FIRST|LAST))?>"
)
#: The parts of a person's name that have a placeholder of their own.
NAME_PARTS = ("FIRST", "LAST")

_SPACE_RE = re.compile(r"\s+")


def normalize(label: str, value: str) -> str:
    """The form two mentions of one value share: case, spacing and separators do not make a new value."""
    if label in ("PHONE", "CREDIT_CARD", "IBAN", "SSN", "ITIN", "PASSPORT", "DRIVER_LICENSE"):
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if label in ("EMAIL", "IP_ADDRESS"):
        return value.strip().casefold()
    if label in ("PERSON", "ADDRESS"):
        return _SPACE_RE.sub(" ", value.strip().strip(",.")).casefold()
    return value.strip()


class PlaceholderMap:
    """One trace's value -> placeholder table: the same value gets the same ``<LABEL_n>`` everywhere.

    It holds original values in memory only while a trace is scrubbed; it is never serialized.
    """

    __slots__ = ("_by_key", "_next", "_persons", "originals", "aliases", "used", "registered")

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], str] = {}
        #: (first, last) name, normalized -> the person's number ("" where one part is unknown)
        self._persons: dict[tuple[str, str], int] = {}
        self._next: Counter[str] = Counter()
        #: placeholder -> the first original value it replaced (what a vault stores).
        self.originals: dict[str, str] = {}
        #: surface strings later mentions are matched against (label -> {surface: placeholder}).
        self.aliases: dict[str, dict[str, str]] = {}
        #: placeholders written into the text (a name part may have one that no text needed)
        self.used: set[str] = set()
        #: (label, value) pairs the scrubber has given their placeholder and surfaces (doing it again changes nothing)
        self.registered: set[tuple[str, str]] = set()

    def reserve(self, text: str) -> None:
        """Skip numbers already used by placeholders in ``text`` so a new value never reuses one."""
        for m in PLACEHOLDER_RE.finditer(text):
            label, n = m.group(1), int(m.group(2))
            if n > self._next[label]:
                self._next[label] = n

    def placeholder(self, label: str, value: str) -> str:
        """The placeholder for ``value``; a new one is numbered after the label's last.

        A full name (two words or more) whose first and last word name a person already met (as
        ``first_name``/``last_name`` fields) is that person's ``<PERSON_n>``."""
        key = (label, normalize(label, value))
        found = self._by_key.get(key)
        if found is not None:
            return found
        words = value.split()
        if label == "PERSON" and len(words) >= 2:
            ph = f"<PERSON_{self._person(words[0], words[-1])}>"
        else:
            ph = f"<{label}_{self._new(label)}>"
        self._by_key[key] = ph
        self.originals.setdefault(ph, value)
        return ph

    def _new(self, label: str) -> int:
        self._next[label] += 1
        return self._next[label]

    def _person(self, first: str | None, last: str | None) -> int:
        """The number of the person with these name parts (either may be None: unknown), made if new."""
        key = (normalize("PERSON", first or ""), normalize("PERSON", last or ""))
        n = self._persons.get(key)
        if n is None:
            n = self._persons[key] = self._new("PERSON")
        return n

    def name_part(self, value: str, part: str, partner: str | None) -> str:
        """The placeholder of one part (``FIRST``/``LAST``) of a person's name, e.g. ``<PERSON_1_LAST>``.

        ``partner``: the other part, where both are fields of one object; alone, a part already met is
        the same person's and a new one a new person."""
        if partner is None:
            found = self.aliases.get("PERSON", {}).get(value)
            if found is not None and found.endswith(f"_{part}>"):
                return found
        first, last = (value, partner) if part == "FIRST" else (partner, value)
        ph = f"<PERSON_{self._person(first, last)}_{part}>"
        self.originals.setdefault(ph, value)
        self.add_alias("PERSON", value, ph)
        return ph

    def name_aliases(self, value: str, placeholder: str, is_name: Callable[[str], bool]) -> None:
        """After a full name got ``placeholder``: its first and last word alone become that person's
        ``_FIRST``/``_LAST`` placeholders (the words ``is_name`` accepts; a common word is not matched alone)."""
        m = PLACEHOLDER_RE.fullmatch(placeholder)
        words = [w.strip(".,") for w in value.split()]
        if m is None or m.group(3) or len(words) < 2:
            return
        for part, word in zip(NAME_PARTS, (words[0], words[-1]), strict=True):
            if is_name(word):
                ph = f"<PERSON_{m.group(2)}_{part}>"
                self.originals.setdefault(ph, word)
                self.add_alias("PERSON", word, ph)

    def add_alias(self, label: str, surface: str, placeholder: str) -> None:
        self.aliases.setdefault(label, {}).setdefault(surface, placeholder)

    def counts(self) -> dict[str, int]:
        """Distinct values replaced, per label."""
        out: Counter[str] = Counter(label for label, _ in self._by_key)
        return dict(out)

    def __len__(self) -> int:
        return len(self._by_key)
