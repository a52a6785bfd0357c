"""A small person-name token classifier: an averaged perceptron over word shape, gazetteer and context features.

The weights ship in ``evaltray/data/names/person_tagger.tsv.gz``; ``bench/train_name_tagger.py`` trains them
from licensed annotated text. Tagging runs left to right, each token's features including the previous tag, so
one pass decides a whole name ("Hanne I. Kreutzmann"). The gazetteer rules' score for the token is a feature
too: the model learns where to trust them and finds the names they miss (lowercase, unlisted, in lists).
"""

from __future__ import annotations

import gzip
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from ._names import (
    DEFAULT_THRESHOLD,
    FIRST,
    LAST,
    NONPERSON,
    TITLES,
    WORD,
    Gazetteer,
    GazetteerNameRecognizer,
    fold,
)

TOKEN_RE = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’\-][\p{L}\p{M}\p{N}]+)*|[^\s\p{L}\p{M}\p{N}]")
#: :data:`TOKEN_RE` for ASCII text, in the faster ``re`` engine: there ``[\p{L}\p{M}\p{N}]`` is ``[A-Za-z0-9]`` and
#: the regex module's ``\s`` is ``[\t\n\v\f\r ]`` (``re``'s own ``\s`` would add ``\x1c``-``\x1f``).
ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*|[^\t\n\x0b\x0c\r A-Za-z0-9]")
_SURNAME_END = ("ov", "ova", "ev", "eva", "ski", "ska", "sky", "wicz", "son", "sen", "ez", "es", "ić", "vic", "escu")
_LOWER_WORD_RE = regex.compile(r"(?<![\p{L}\p{M}])[\p{Ll}\p{M}]{2,}(?![\p{L}\p{M}])")
_SENT_END = frozenset('.!?:;\n"“”()[]•*#>|')
MODEL_FILE = "person_tagger.tsv.gz"
#: The score of a name only the tagger found (the gazetteer rules' own spans keep theirs).
SCORE_TAGGER = 0.6
#: The score of a token the tagger never weighs (:func:`_skipped`): below any bias.
SKIPPED = -1e9

#: A token: (start, end) offsets in the text.
Token = tuple[int, int]


def tokenize(text: str) -> list[Token]:
    rx = ASCII_TOKEN_RE if text.isascii() else TOKEN_RE
    return [m.span() for m in rx.finditer(text)]


@lru_cache(maxsize=65536)
def _shape(word: str) -> str:
    out: list[str] = []
    for ch in word[:8]:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c or len(out) < 2 or out[-2] != c:
            out.append(c)
    return "".join(out)


def _case(word: str) -> str:
    if word[:1].isupper():
        return "U" if len(word) > 1 and word.isupper() else "T"
    return "L" if word[:1].islower() else "O"


def _gaz(flags: int) -> str:
    return "".join(ch for bit, ch in ((FIRST, "F"), (LAST, "L"), (WORD, "W"), (NONPERSON, "N")) if flags & bit) or "-"


_GAZ = tuple(_gaz(flags) for flags in range(16))  # the four flags' every combination, named once
_fold = lru_cache(maxsize=65536)(fold)
_WORD_CACHE = 100_000
_WINDOW_CACHE = 65_536  # windows repeat in templated text; one holds a few small strings


def _rule_bucket(score: float) -> str:
    if score <= 0:
        return "0"
    return "lo" if score < 0.45 else "mid" if score < 0.85 else "hi"


@dataclass(slots=True)
class _Context:
    """Per-token facts of one text, computed once and read by every feature template."""

    words: list[str]
    low: list[str]
    gaz: list[str]
    cases: list[str]
    rule: list[str]
    starts: list[bool]
    #: tokens never scored (always O): digits, lone punctuation, lowercase dictionary words that are no name part
    skip: list[bool]


def _context(
    text: str,
    toks: Sequence[Token],
    gazetteer: Gazetteer,
    rule_scores: Sequence[float],
    facts: dict[str, _Facts] | None = None,
) -> _Context:
    """The facts of ``text``'s tokens; ``facts`` remembers each word's own (for this ``gazetteer`` only)."""
    words = [text[a:b] for a, b in toks]
    if facts is None:
        facts = {}
    rows = [facts.get(w) or _word_facts(w, gazetteer, facts) for w in words]
    if "\n" in text:
        starts = [
            i == 0 or words[i - 1] in _SENT_END or "\n" in text[toks[i - 1][1] : a] for i, (a, _) in enumerate(toks)
        ]
    else:
        starts = [True, *map(_SENT_END.__contains__, words[:-1])][: len(words)]
    low, gaz, cases, skip = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [])
    # most tokens lie under no rule span: their bucket is "0" without asking
    rule = [_rule_bucket(s) for s in rule_scores] if any(rule_scores) else ["0"] * len(rule_scores)
    return _Context(words, low, gaz, cases, rule, starts, skip)


#: A word's own facts: folded form, gazetteer flags as a feature string, case, whether the tagger skips it.
_Facts = tuple[str, str, str, bool]


def _word_facts(word: str, gazetteer: Gazetteer, memo: dict[str, _Facts]) -> _Facts:
    low = _fold(word)
    flags = gazetteer.flags.get(low, 0)
    if len(memo) >= _WORD_CACHE:
        memo.clear()
    out = memo[word] = (low, _GAZ[flags & 15], _case(word), _skipped(word, flags))
    return out


def _skipped(word: str, flags: int) -> bool:
    if word[0].islower():
        return bool(flags & (WORD | NONPERSON)) and not flags & (FIRST | LAST)
    return word.isdigit() or (len(word) == 1 and not word.isalnum() and word not in ".-'’")


def features(ctx: _Context, i: int, prev: str, prev2: str) -> list[str]:
    """Feature strings of token ``i`` given the two previous tags."""
    return word_features(ctx.words[i]) + context_features(ctx, i, prev, prev2)


def word_features(word: str) -> list[str]:
    """The features that depend on the token's own text alone (the tagger caches their weight per word)."""
    lw, c = _fold(word), _case(word)
    feats = ["b", "w=" + lw, "sh=" + _shape(word), "p3=" + lw[:3], "s2=" + lw[-2:], "s3=" + lw[-3:], "s4=" + lw[-4:]]
    if not word.isascii():
        feats.append("na=" + c)
    if lw.endswith(_SURNAME_END):
        feats.append("se=" + c)
    return feats


def context_features(ctx: _Context, i: int, prev: str, prev2: str) -> list[str]:
    """The features of token ``i`` that read its neighbours, the rules and the previous tags (in the order the
    shipped model was trained and is scored in: :func:`window_features` with :func:`tag_features` inside)."""
    feats = window_features(ctx, i)
    return feats[:11] + tag_features(prev, prev2, ctx.cases[i], ctx.gaz[i]) + feats[11:]


def tag_features(prev: str, prev2: str, case: str, gaz: str) -> list[str]:
    """The features that read the previous two tags."""
    return ["-1t=" + prev, "-2t=" + prev2 + prev, "-1tc=" + prev + case + gaz]


def window_features(ctx: _Context, i: int) -> list[str]:
    """The features of token ``i`` that read the text alone: its rule score, start of sentence and the two
    tokens either side (:meth:`PersonTagger.positive` caches their weight per such window)."""
    n = len(ctx.words)
    g, c, r = ctx.gaz[i], ctx.cases[i], ctx.rule[i]
    p1 = ctx.low[i - 1] if i >= 1 else "<s>"
    p2 = ctx.low[i - 2] if i >= 2 else "<s>"
    n1 = ctx.low[i + 1] if i + 1 < n else "</s>"
    n2 = ctx.low[i + 2] if i + 2 < n else "</s>"
    pg = ctx.gaz[i - 1] + ctx.cases[i - 1] if i >= 1 else "<s>"
    ng = ctx.gaz[i + 1] + ctx.cases[i + 1] if i + 1 < n else "</s>"
    st = "S" if ctx.starts[i] else "-"
    feats = [
        "g=" + g + c,
        "gs=" + g + c + st,
        "r=" + r,
        "rc=" + r + c,
        "rg=" + r + g + c,
        "-1w=" + p1,
        "-2w=" + p2,
        "+1w=" + n1,
        "+2w=" + n2,
        "-1g=" + pg,
        "+1g=" + ng,
        "-1wc=" + p1 + c,
        "+1wc=" + n1 + c,
        "-1w+1w=" + p1 + "|" + n1,
        "ng=" + g + c + ng,
        "pg=" + pg + g + c,
    ]
    if p1.rstrip(".") in TITLES or (p1 == "." and p2 in TITLES):
        feats.append("title")
    return feats


#: Weights are saved to 4 decimals (:meth:`_Averaged.averaged`): in units of 1e-4 each is a whole number.
_UNIT = 10_000
#: A window (see :meth:`PersonTagger.positive`): the token, the one before and after it, the folded tokens
#: two before and after (None past either end), whether it starts a sentence, its rule-score bucket; in a
#: shared key (:attr:`_Exact.shared`), a neighbour no feature of the model names stands as its flags and case.
_Window = tuple[str | None, str | None, str, str | None, str | None, bool, str]
#: A neighbour the model has no feature for stands in a window's key as NUL and its flags and case, or as two NULs:
#: no token is (a token of two characters or more is letters, digits, marks and ' ’ -).
_UNSEEN = "\x00"
#: A word as a window's key holds it two before, one before, one after and two after the token scored.
_Forms = tuple[str, str, str, str]


@dataclass(slots=True)
class _Exact:
    """A model's weights and threshold in whole units of 1e-4, and partial scores remembered: integer sums are
    the same in any order and grouping, so a token's score can be put together from cached parts."""

    weights: dict[str, int]
    threshold: int
    words: dict[str, int] = field(default_factory=dict)
    windows: dict[_Window, int] = field(default_factory=dict)
    tags: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: the words ``-1w+1w=`` features name before and after a token (see :func:`_pairs`)
    pairs: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    #: each word's :data:`_Forms`, for the gazetteer the windows were read with
    forms: dict[str, _Forms] = field(default_factory=dict)
    #: the scores of windows next to a number, keyed with unnamed neighbours as :data:`_Forms` (``windows``: as
    #: written)
    shared: dict[_Window, int] = field(default_factory=dict)

    def total(self, feats: list[str]) -> int:
        w = self.weights.get
        return sum(w(f, 0) for f in feats)


def _exact(weights: dict[str, float], bias: float) -> _Exact | None:
    """The weights as whole units of 1e-4, or None when one of them (or the bias) is not one."""
    out = {}
    for f, w in weights.items():
        k = round(w * _UNIT)
        if k / _UNIT != w:
            return None
        out[f] = k
    threshold = round(-bias * _UNIT)
    return _Exact(out, threshold, pairs=_pairs(out)) if threshold / _UNIT == -bias else None


def _pairs(weights: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The words ``-1w+1w=`` features name before and after a token: a ``|`` token can be either word, so each
    ``|`` a feature holds counts as the split (every word a feature could name, and more)."""
    before: set[str] = set()
    after: set[str] = set()
    for f in weights:
        if f.startswith("-1w+1w="):
            pair = f[7:]
            for k, ch in enumerate(pair):
                if ch == "|":
                    before.add(pair[:k])
                    after.add(pair[k + 1 :])
    return frozenset(before), frozenset(after)


def _neighbour_forms(exact: _Exact, word: str, low: str, gaz: str, case: str) -> _Forms:
    """How ``word`` stands in a shared key of a window two before, one before, one after and two after it. Where
    no feature names it there (``-2w=``; ``-1w=``, ``-1wc=`` with the token's case, ``-1w+1w=``; ``+1w=``,
    ``+1wc=``, ``-1w+1w=``; ``+2w=``) and, before the token, it is no title and no ".", the window's score does not
    depend on which word it is, only on its gazetteer flags and case where a feature reads them (``-1g``, ``+1g``,
    ``pg``, ``ng``): every feature naming it has weight 0. So windows around a new order number share a key."""
    w = exact.weights
    before, after = exact.pairs
    titled = low.rstrip(".") in TITLES or low == "."
    flagged = _UNSEEN + gaz + case
    m1 = "-1w=" + low in w or low in before or any(f"-1wc={low}{c}" in w for c in "UTLO")
    p1 = "+1w=" + low in w or low in after or any(f"+1wc={low}{c}" in w for c in "UTLO")
    return (
        low if "-2w=" + low in w or low in TITLES else _UNSEEN + _UNSEEN,
        word if m1 or titled else flagged,
        word if p1 else flagged,
        low if "+2w=" + low in w else _UNSEEN + _UNSEEN,
    )


@dataclass(slots=True)
class PersonTagger:
    """Binary tagger (P: part of a person's name, O: not); ``weights`` maps a feature to its weight."""

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    #: the summed weight of each word's :func:`word_features`, filled as words are met
    _word_score: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    #: the weights as integers with their cached partial scores (False: not worked out yet; None: they are not)
    _exact: _Exact | None | bool = field(default=False, repr=False, compare=False)
    #: each word's :data:`_Facts` under ``_facts_of`` (the gazetteer they were read from)
    _facts: dict[str, _Facts] = field(default_factory=dict, repr=False, compare=False)
    _facts_of: Gazetteer | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> tuple[dict[str, float], float]:
        """Pickled (to a worker) as its weights alone: the cached scores are this process's, and can be large."""
        return self.weights, self.bias

    def __setstate__(self, state: tuple[dict[str, float], float]) -> None:
        fresh = PersonTagger(*state)
        for name in PersonTagger.__slots__:
            setattr(self, name, getattr(fresh, name))

    def word_score(self, word: str) -> float:
        score = self._word_score.get(word)
        if score is None:
            if len(self._word_score) >= _WORD_CACHE:
                self._word_score.clear()
            w = self.weights.get
            score = self._word_score[word] = sum(w(f, 0.0) for f in word_features(word))
        return score

    def score(self, ctx: _Context, i: int, prev: str, prev2: str) -> float:
        """Token ``i``'s score after tags ``prev2``, ``prev``, summed in the order the model was trained in."""
        w = self.weights.get
        s = self.word_score(ctx.words[i])
        for f in context_features(ctx, i, prev, prev2):
            s += w(f, 0.0)
        return s

    def tag(self, ctx: _Context) -> list[float]:
        """The score of each token (P when above ``-self.bias``), decided left to right."""
        scores: list[float] = []
        prev, prev2 = "<s>", "<s>"
        skip = ctx.skip
        for i in range(len(ctx.words)):
            if skip[i]:
                scores.append(SKIPPED)
                prev, prev2 = "O", prev
                continue
            s = self.score(ctx, i, prev, prev2)
            scores.append(s)
            prev, prev2 = ("P" if s > -self.bias else "O"), prev
        return scores

    def positive(self, ctx: _Context) -> list[bool]:
        """Whether each token of ``ctx`` (made by :meth:`context`) is P, exactly as :meth:`tag` decides it, from
        cached integer parts.

        A token's score is its window's (:func:`word_features` and :func:`window_features`: they read only the
        text, so a window met before costs one lookup) plus its previous tags' (:func:`tag_features`). Summed as
        integers it is exact; :meth:`tag`'s float sum differs from the exact one by far less than a unit (a
        few dozen terms, each off by under 1e-15 of the total), so the two agree whenever the integer score is
        not the threshold itself; at the threshold :meth:`tag`'s own sum decides.
        """
        exact = self._exact
        if exact is False:
            exact = self._exact = _exact(self.weights, self.bias)
        if not isinstance(exact, _Exact):
            return [s > -self.bias for s in self.tag(ctx)]
        windows, tags, threshold = exact.windows, exact.tags, exact.threshold
        words, low, gaz, cases, skip = ctx.words, ctx.low, ctx.gaz, ctx.cases, ctx.skip
        n = len(words)
        out: list[bool] = []
        prev, prev2 = "<s>", "<s>"
        for i in range(n):
            if skip[i]:
                out.append(False)
                prev, prev2 = "O", prev
                continue
            key = (
                low[i - 2] if i >= 2 else None,
                words[i - 1] if i else None,
                words[i],
                words[i + 1] if i + 1 < n else None,
                low[i + 2] if i + 2 < n else None,
                ctx.starts[i],
                ctx.rule[i],
            )
            s = windows.get(key)
            if s is None:
                s = self._window_score(exact, ctx, i, key)
            c, g = cases[i], gaz[i]
            t = tags.get((prev, prev2, c, g))
            if t is None:
                t = tags[prev, prev2, c, g] = exact.total(tag_features(prev, prev2, c, g))
            s += t
            p = s > threshold if s != threshold else self.score(ctx, i, prev, prev2) > -self.bias
            out.append(p)
            prev, prev2 = ("P" if p else "O"), prev
        return out

    @staticmethod
    def _forms(exact: _Exact, ctx: _Context, j: int) -> _Forms:
        """Token ``j``'s :func:`_neighbour_forms`, remembered per word."""
        word = ctx.words[j]
        f = exact.forms.get(word)
        if f is None:
            if len(exact.forms) >= _WORD_CACHE:
                exact.forms.clear()
            f = exact.forms[word] = _neighbour_forms(exact, word, ctx.low[j], ctx.gaz[j], ctx.cases[j])
        return f

    def _window_score(self, exact: _Exact, ctx: _Context, i: int, key: _Window) -> int:
        """A window met for the first time as written: its score. Next to a number (each trace's new order number
        and counter), from the window it shares a key with once the neighbours no feature names are keyed by their
        flags and case alone (:func:`_neighbour_forms`); elsewhere (most first-met windows of varied text, where a
        shared key would rarely be met again) worked out at once."""
        words, n = ctx.words, len(ctx.words)
        near_number = (
            (i >= 2 and words[i - 2].isdigit())
            or (i >= 1 and words[i - 1].isdigit())
            or (i + 1 < n and words[i + 1].isdigit())
            or (i + 2 < n and words[i + 2].isdigit())
        )
        if near_number:
            shared = (
                self._forms(exact, ctx, i - 2)[0] if i >= 2 else None,
                self._forms(exact, ctx, i - 1)[1] if i else None,
                key[2],
                self._forms(exact, ctx, i + 1)[2] if i + 1 < n else None,
                self._forms(exact, ctx, i + 2)[3] if i + 2 < n else None,
                key[5],
                key[6],
            )
            s = exact.shared.get(shared)
            if s is None:
                if len(exact.shared) >= _WINDOW_CACHE:
                    exact.shared.clear()
                s = exact.shared[shared] = self._fresh_score(exact, ctx, i)
        else:
            s = self._fresh_score(exact, ctx, i)
        if len(exact.windows) >= _WINDOW_CACHE:
            exact.windows.clear()
        exact.windows[key] = s
        return s

    @staticmethod
    def _fresh_score(exact: _Exact, ctx: _Context, i: int) -> int:
        """Token ``i``'s :func:`word_features` and :func:`window_features` summed (the word's part remembered)."""
        word = ctx.words[i]
        ws = exact.words.get(word)
        if ws is None:
            if len(exact.words) >= _WORD_CACHE:
                exact.words.clear()
            ws = exact.words[word] = exact.total(word_features(word))
        return ws + exact.total(window_features(ctx, i))

    def context(self, text: str, toks: Sequence[Token], gazetteer: Gazetteer, rules: Sequence[float]) -> _Context:
        """:func:`_context`, each word's own facts remembered for ``gazetteer``."""
        if self._facts_of is not gazetteer:  # a window's cached score read the old one's flags
            self._facts, self._facts_of = {}, gazetteer
            if isinstance(self._exact, _Exact):
                self._exact.windows.clear()
                self._exact.shared.clear()  # these and the forms hold the old one's flags too
                self._exact.forms.clear()
        return _context(text, toks, gazetteer, rules, self._facts)

    def spans(self, text: str, gazetteer: Gazetteer, found: Iterable[tuple[int, int, float]]) -> list[Token]:
        """Person-name spans in ``text``; ``found`` are the gazetteer rules' candidate spans with their scores."""
        toks = tokenize(text)
        if not toks:
            return []
        return spans_from_tags(text, toks, self.positive(self.context(text, toks, gazetteer, rule_scores(toks, found))))


def spans_from_tags(text: str, toks: Sequence[Token], positive: Sequence[bool]) -> list[Token]:
    """Runs of positive tokens as character spans; an initial's dot joins ("J. Smith"), punctuation alone never
    starts or ends a span."""
    out: list[Token] = []
    i, n = 0, len(toks)
    while i < n:
        a, b = toks[i]
        if not positive[i] or not text[a].isalnum():
            i += 1
            continue
        j = i + 1
        end = b
        while j < n:
            if positive[j] and text[toks[j][0]].isalnum() and toks[j][0] - end <= 1:
                end = toks[j][1]
            elif text[toks[j][0] : toks[j][1]] == "." and j + 1 < n and positive[j + 1] and end - toks[j - 1][0] == 1:
                end = toks[j][1]  # "J." inside "J. Smith"
            else:
                break
            j += 1
        out.append((a, end))
        i = j
    return out


# ----------------------------------------------------------------------------------------- training


@dataclass(slots=True)
class _Averaged:
    """Perceptron weights with the running sums needed to average them over every step."""

    weights: dict[str, float] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)
    step: int = 0

    def update(self, feats: Iterable[str], delta: float) -> None:
        for f in feats:
            old = self.weights.get(f, 0.0)
            self.totals[f] = self.totals.get(f, 0.0) + (self.step - self.stamps.get(f, 0)) * old
            self.stamps[f] = self.step
            self.weights[f] = old + delta

    def averaged(self, min_abs: float) -> dict[str, float]:
        out = {}
        for f, w in self.weights.items():
            total = self.totals.get(f, 0.0) + (self.step - self.stamps.get(f, 0)) * w
            avg = total / max(1, self.step)
            if abs(avg) >= min_abs:
                out[f] = round(avg, 4)
        return out


#: One training text: its tokens' contexts and their gold tags (True: part of a person's name).
Example = tuple[_Context, list[bool]]


def example(
    text: str, gold: Sequence[Token], gazetteer: Gazetteer, rules: Callable[[str], list[tuple[int, int, float]]]
) -> Example:
    """A text with its gold person spans, made ready for training (tokens, features' facts, tags)."""
    toks = tokenize(text)
    return (
        _context(text, toks, gazetteer, rule_scores(toks, rules(text))),
        [any(a < ge and gs < b for gs, ge in gold) for a, b in toks],
    )


def rule_scores(toks: Sequence[Token], found: Iterable[tuple[int, int, float]]) -> list[float]:
    """Each token's best gazetteer-rule score (0 where no rule span covers it)."""
    scores = [0.0] * len(toks)
    ends = [b for _, b in toks]
    for start, end, score in found:
        i = bisect_right(ends, start)  # the first token ending after the span starts
        while i < len(toks) and toks[i][0] < end:
            if score > scores[i]:
                scores[i] = score
            i += 1
    return scores


def train(examples: list[Example], epochs: int = 8, seed: int = 13, min_abs: float = 0.001) -> PersonTagger:
    """Averaged perceptron, greedy left to right with the predicted previous tags (as at run time)."""
    model = _Averaged()
    order = list(range(len(examples)))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for k in order:
            ctx, gold = examples[k]
            prev, prev2 = "<s>", "<s>"
            for i, want in enumerate(gold):
                if ctx.skip[i]:  # never scored at run time: nothing to learn
                    prev, prev2 = "O", prev
                    continue
                feats = features(ctx, i, prev, prev2)
                w = model.weights.get
                guess = sum(w(f, 0.0) for f in feats) > 0
                model.step += 1
                if guess != want:
                    model.update(feats, 1.0 if want else -1.0)
                prev, prev2 = ("P" if guess else "O"), prev
    return PersonTagger(model.averaged(min_abs))


def save(tagger: PersonTagger) -> bytes:
    """The model as gzip'd ``feature<TAB>weight`` lines (sorted, so one training gives one file)."""
    lines = [f"#bias\t{tagger.bias}"] + [f"{f}\t{w}" for f, w in sorted(tagger.weights.items())]
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0)


def parse(data: bytes) -> PersonTagger:
    weights: dict[str, float] = {}
    bias = 0.0
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        key, _, value = line.rpartition("\t")
        if key == "#bias":
            bias = float(value)
        elif key:
            weights[key] = float(value)
    return PersonTagger(weights, bias)


@lru_cache(maxsize=1)
def load_tagger() -> PersonTagger | None:
    """The shipped model, or None when the package was built without one."""
    ref = resources.files("evaltray") / "data" / "names" / MODEL_FILE
    if not ref.is_file():
        return None
    return parse(ref.read_bytes())


def _embedded(text: str, start: int, end: int) -> bool:
    """The span lies inside an e-mail address, URL, path, handle or identifier (``amy.li@x.org``, ``/home/jane``,
    ``user_jane``): those have their own recognizers, and a name there is no name in running text."""
    a = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
    b = min((i for i in (text.find(" ", end), text.find("\n", end)) if i >= 0), default=len(text))
    return any(ch in text[a:b] for ch in "@/\\_=<>")


class TaggedNameRecognizer(GazetteerNameRecognizer):
    """The gazetteer rules' names plus those the shipped tagger finds (the default PERSON recognizer).

    A rule span at or above the threshold stays as it is when the tagger marks a word of it, and is dropped when the
    tagger marks none; a tagger span that overlaps none of them is added with :data:`SCORE_TAGGER`, unless it sits
    inside an address, URL or identifier, is made only of listed non-names and titles, or is typed in lowercase without
    starting with a listed given name. ``tagger=None`` loads the shipped model; without one this is the rules alone.
    """

    def __init__(
        self,
        gazetteer: Gazetteer | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        tagger: PersonTagger | None = None,
    ) -> None:
        super().__init__(gazetteer, threshold)
        self.tagger = tagger if tagger is not None else load_tagger()
        #: name parts that are no English word or place, lowercased: they let the tagger see lowercase text
        self._parts_only = frozenset(
            k for k, v in self.gazetteer.flags.items() if v & (FIRST | LAST) and not v & (WORD | NONPERSON)
        )

    def _lower_ok(self, span: str) -> bool:
        """A name typed in lowercase counts when it starts with a listed given name of 3+ letters that is no
        English word or place ("jessica", "karen smith"); a lone lowercase surname or short word does not, nor
        (see :meth:`analyze`) a lowercase word that is the whole text: a tag or label ("dev") reads no person."""
        first = span.split()[0]
        return len(first) >= 3 and _fold(first) in self._given_only

    def _no_name(self, word: str) -> bool:
        """A listed non-name, or a title ("Mrs" before a placeholder is no name)."""
        return bool(self.gazetteer.get(word) & NONPERSON) or _fold(word).rstrip(".") in TITLES

    def has_candidate(self, text: str) -> bool:
        """The rules' pre-check, or (with a tagger) a lowercase word that is a listed name part and no English
        word: "i spoke with karen" has no capital for the rules' gate, but the tagger can read it."""
        if super().has_candidate(text):
            return True
        return self.tagger is not None and not self._parts_only.isdisjoint(_LOWER_WORD_RE.findall(text))

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found = self.find(text)
        kept = [(a, b, s) for a, b, s in found if s >= self.threshold]
        if self.tagger is not None:
            tagged = self.tagger.spans(text, self.gazetteer, found)
            # the tagger read the rules' score with the words around the span: where it marks no word of a rule
            # span, that span was a place, organisation or work named like a person ("Victoria", "Jackson Hole")
            kept = [(a, b, s) for a, b, s in kept if any(a < tb and ta < b for ta, tb in tagged)]
            for a, b in tagged:
                if (
                    not any(a < kb and ka < b for ka, kb, _ in kept)
                    and not _embedded(text, a, b)
                    and not all(self._no_name(text[a + x : a + y]) for x, y in tokenize(text[a:b]))
                    and (not text[a:b].islower() or self._lower_ok(text[a:b]) and text.strip() != text[a:b])
                ):
                    kept.append((a, b, SCORE_TAGGER))
        return [RecognizerResult("PERSON", a, b, s) for a, b, s in kept]
