"""Cheap text profiles for drift: the language of a text and how a user writes it.

:func:`language` is a script and stopword profile, not a trained detector: the script decides Cyrillic, Greek,
Arabic, Hebrew, Devanagari, Thai, Korean, Japanese and Chinese; a Latin-script text is English, Spanish,
French, German, Italian, Portuguese or Dutch by whichever stopword list it hits most, ``latin`` when it hits
none, ``und`` when it has no letters. A tie goes to English, whose list holds the short words the others
share with it (``a``, ``do``, ``as``), so a terse English request is not read as Portuguese. (``langdetect`` is Apache-2.0 but draws at random unless seeded and
reads a profile per language; ``lingua`` ships ~100 MB of models: neither earns its place for a share of
traffic per language.)

:func:`style` measures what makes a written-to-order input look unlike a real user's: its length, its
punctuation, whether its sentences start with a capital and end with a stop, and a typo rate (informal
spellings real users type: ``dont``, a lone ``i``, letters tripled, no space after a comma).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

__all__ = ["STYLE_FEATURES", "language", "style", "style_distance"]

_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("ko", "\uac00-\ud7af\u1100-\u11ff"),
    ("ja", "\u3040-\u30ff"),
    ("zh", "\u4e00-\u9fff"),
    ("ru", "\u0400-\u04ff"),
    ("el", "\u0370-\u03ff"),
    ("ar", "\u0600-\u06ff"),
    ("he", "\u0590-\u05ff"),
    ("hi", "\u0900-\u097f"),
    ("th", "\u0e00-\u0e7f"),
)
_SCRIPT_RE = {name: re.compile(f"[{chars}]") for name, chars in _SCRIPTS}


def _stop(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _stop(
        "the and is are to of my i you it in for on with this that have was not what how can do a an be at by"
        " from as or if about who which they we your me please there why when where give make list write"
        " describe explain tell does did should would could will any some"
    ),
    "es": _stop("el la los las y es en de que mi por para con una un no como qué cómo está pero se"),
    "fr": _stop("le la les et est de du des que mon ma pour avec une un pas je vous ne sur comment"),
    "de": _stop("der die das und ist ich nicht mein meine mit für ein eine zu wie auf sie es wir den"),
    "it": _stop("il lo la gli le e è di che mio mia per con una un non come sono ho della del"),
    "pt": _stop("o a os as e é de que meu minha para com uma um não como está do da em eu"),
    "nl": _stop("de het een en is ik niet mijn met voor van dat op hoe kan wat zijn er"),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language(text: str) -> str:
    """A language code for ``text`` from its script and stopwords (see the module docstring)."""
    letters = _WORD.findall(text)
    if not letters:
        return "und"
    joined = "".join(letters)
    scripts = Counter({name: len(rx.findall(joined)) for name, rx in _SCRIPT_RE.items()})
    name, hits = scripts.most_common(1)[0]
    if hits * 2 > len(joined):
        return "ja" if name == "zh" and scripts["ja"] else name
    words = [w.lower() for w in letters]
    votes = Counter({lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()})
    lang, n = votes.most_common(1)[0]
    return lang if n else "latin"


#: What :func:`style` measures, in its order.
STYLE_FEATURES = ("words", "punctuation", "capitalised", "terminated", "typos")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_INFORMAL = re.compile(
    r"\b(?:i|im|dont|cant|wont|didnt|doesnt|isnt|wasnt|ive|id|u|ur|pls|plz|thx|asap)\b|(\w)\1\1|[,.;:!?][^\s\d.,!?'\")]|\s{2,}"
)


def style(text: str) -> np.ndarray:
    """The text's style as :data:`STYLE_FEATURES`: word count, punctuation marks per word, the share of
    sentences starting with a capital, the share ending with ``.``, ``!`` or ``?``, typos per word."""
    words = max(1, len(text.split()))
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    n = max(1, len(sentences))
    capital = sum(s.lstrip("¿¡\"'(")[:1].isupper() for s in sentences) / n
    stop = sum(s[-1] in ".!?" for s in sentences) / n
    punct = sum(not c.isalnum() and not c.isspace() for c in text) / words
    return np.array([words, punct, capital, stop, len(_INFORMAL.findall(text)) / words], dtype=float)


def style_distance(real: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How far each row of ``x`` lies from the real rows' style: the mean, over features, of the distance to the
    real median in units of the real spread (interquartile range; a feature all real rows share counts as 1)."""
    med = np.median(real, 0)
    spread = np.quantile(real, 0.75, 0) - np.quantile(real, 0.25, 0)
    spread = np.where(spread > 0, spread, np.maximum(np.abs(med) * 0.1, 0.05))
    return np.asarray(np.mean(np.abs(np.atleast_2d(x) - med) / spread, 1))
