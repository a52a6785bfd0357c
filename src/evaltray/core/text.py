"""What in a text is a person's words, and what is machinery: placeholders, stop tokens, template markup."""

from __future__ import annotations

import re

__all__ = ["neutral_text"]

#: What is no word of the user's: scrub placeholders (``<PERSON_1>``, ``<PERSON_1_FIRST>``), simulator stop
#: tokens (``###STOP###``), chat-template tokens (``<|im_start|>``, ``[INST]``, ``<s>``) and template markup.
_MARKUP_RE = re.compile(
    r"<[A-Z][A-Z_]*_\d+(?:_[A-Z]+)?>|#{2,}\s*[A-Za-z_]+\s*#{2,}|<\|[^|<>]*\|>|\{\{.*?\}\}|\{%.*?%\}|\[/?INST\]|<</?SYS>>|</?s>"
)


def neutral_text(text: str) -> str:
    """``text`` without placeholders, stop tokens and template markup, spaces collapsed: what to embed and name
    a cluster by, and how to tell a turn with words from one that is only machinery."""
    return " ".join(_MARKUP_RE.sub(" ", text).split())
