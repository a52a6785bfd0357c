"""Placeholders (``<EMAIL_1>``) and the per-trace map that keeps them consistent."""

from __future__ import annotations

import re
from collections import Counter

#: Presidio entity type -> placeholder label, in the order the scrubber documents them.
LABELS: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "API_KEY": "API_KEY",
    "ADDRESS": "ADDRESS",
    "PERSON": "PERSON",
    "USERNAME": "USERNAME",
}
ENTITY_OF_LABEL: dict[str, str] = {label: entity for entity, label in LABELS.items()}

#: Any evaltray placeholder; scrubbing never detects PII inside one (that is what makes it idempotent).
PLACEHOLDER_RE = re.compile(r"<(" + "|".join(sorted(LABELS.values(), key=len, reverse=True)) + r")_(\d+)>")

_SPACE_RE = re.compile(r"\s+")


def normalize(label: str, value: str) -> str:
    """The form two mentions of one value share: case, spacing and separators do not make a new value."""
    if label in ("PHONE", "CREDIT_CARD", "IBAN"):
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

    __slots__ = ("_by_key", "_next", "originals", "aliases")

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], str] = {}
        self._next: Counter[str] = Counter()
        #: placeholder -> the first original value it replaced (what a vault stores).
        self.originals: dict[str, str] = {}
        #: surface strings later mentions are matched against (label -> {surface: placeholder}).
        self.aliases: dict[str, dict[str, str]] = {}

    def reserve(self, text: str) -> None:
        """Skip numbers already used by placeholders in ``text`` so a new value never reuses one."""
        for m in PLACEHOLDER_RE.finditer(text):
            label, n = m.group(1), int(m.group(2))
            if n > self._next[label]:
                self._next[label] = n

    def placeholder(self, label: str, value: str) -> str:
        """The placeholder for ``value``; a new one is numbered after the label's last."""
        key = (label, normalize(label, value))
        found = self._by_key.get(key)
        if found is not None:
            return found
        self._next[label] += 1
        ph = f"<{label}_{self._next[label]}>"
        self._by_key[key] = ph
        self.originals[ph] = value
        return ph

    def add_alias(self, label: str, surface: str, placeholder: str) -> None:
        self.aliases.setdefault(label, {}).setdefault(surface, placeholder)

    def counts(self) -> dict[str, int]:
        """Distinct values replaced, per label."""
        out: Counter[str] = Counter(label for label, _ in self._by_key)
        return dict(out)

    def __len__(self) -> int:
        return len(self._by_key)
