"""Contamination: tray cases found in what the system under test learned from or is prompted with.

A corpus (fine-tuning data, prompt files with few-shot examples, judge prompts and rubrics) is streamed once,
in batches, past an index built from the tray (small). Each method reports the span of the corpus it matched:

- ``exact``: the case's whole text, normalized (casefold, punctuation to spaces), inside a corpus document;
- ``ngram``: a word n-gram (13 by default) of the case in the document; the score is the share of the
  case's n-grams found;
- ``lcs``: near-verbatim copies. Documents sharing two or more word 8-grams with a case are aligned with it by
  Ratcliff/Obershelp (the longest common substring of words, then recursively the longest on each side); the
  score is the share of the case's words aligned, flagged from :data:`LCS_MIN`;
- ``paraphrase``: rephrased copies, which share few n-grams (Yang et al. 2023). Each line of a document (or,
  for a long one, runs of its sentences about a case's length) is embedded with curate's backends and checked
  against its :data:`PARA_K` nearest cases by curate.dedup's paraphrase rule (the same numbers; a cosine
  from :data:`PARA_COS`, lowered by word overlap and shared quantities) and, when a verifier is given, by an
  LLM through an OpenAI-compatible endpoint. A window below that bar still counts when it *stands out*
  (:data:`STANDOUT_BY_BACKEND`): at the end of the scan it is the case's nearest window in all the corpora
  read, the case is the window's nearest case, and the case's next nearest window of another document is a
  clear gap below it. A real rephrasing swaps most words, so its cosine depends on the domain; its lead over
  everything else in the corpus does much less.

Provenance is the fifth check: a case whose source date is before a model's training cutoff is at risk
whatever the corpora hold (seed 003). Dev and holdout cases are reported apart.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from evaltray.core.errors import EvaltrayError
from evaltray.curate.dedup import guard_refusal, paraphrase_verdict

from .corpus import BadLine, Doc, Item, TextBlock, read_corpus, read_corpus_blocks, strings_of
from .grams import GramIndex, WordBatch, hash_words, kernels, norm_lines, rolling, word_batch

__all__ = [
    "METHODS",
    "ContaminationReport",
    "Corpus",
    "Match",
    "Probe",
    "Scanner",
    "probes_of",
    "provenance_matches",
    "scan",
]

METHODS = ("exact", "ngram", "lcs", "paraphrase")
DEFAULT_N = 13
#: The gram that proposes near-verbatim candidates to the aligner.
SEED = 8
#: Cases shorter than this many words are checked as whole documents only: a short phrase is everywhere.
MIN_EXACT = 4
#: Share of a case's words Ratcliff/Obershelp aligns for a near-verbatim copy (bench_contamination, building set).
LCS_MIN = 0.7
#: The paraphrase verdict: curate.dedup's rule (a cosine threshold that word overlap and shared quantities
#: lower) with the guards named here, each corpus window checked against its :data:`PARA_K` nearest cases.
#: Chosen on building sets only (bench_contamination --calibrate: the planted rule rephrasings and the
#: building half of GSM-Plus's rephrasings): dedup's negation and names guards refused real rephrasings
#: ("no longer needs" for "is done with", "PCs" for "computers") and no wrong match, so they are left out.
PARA_COS = 0.65
#: Backends whose cosines run higher need their own bar: MiniLM (`st`) 0.83, chosen the same way
#: (bench_contamination --backend st --para-cos, building half of GSM-Plus only: with dedup's numbers
#: guard reading reciprocals and ordinals, the two wrong matches it lets through sit at 0.820 and 0.822,
#: the rephrasings it finds from 0.826 up).
PARA_COS_BY_BACKEND = {"st": 0.83, "sentence-transformers": 0.83}
PARA_GUARDS = ("numbers",)
PARA_K = 5
#: A window is a copy of its nearest case only: one within this cosine of the window's best case may be
#: taken, a farther one (a sibling question of a template, say) is not. (Chosen on the building halves:
#: it removed every wrong MMLU match.)
MUTUAL = 1e-6
#: A window that stands out for a case: (least cosine, least gap to the case's next window of another
#: document that is not a near copy of it). Chosen on the building halves (GSM-Plus's and the LLM
#: Decontaminator's rephrasings of GSM8K test, and MMLU abstract algebra + sociology rephrasings) with
#: ``bench/bench_contamination.py``; the default backend's is :data:`STANDOUT`.
STANDOUT = (0.6, 0.1)
STANDOUT_BY_BACKEND = {"st": (0.55, 0.08), "sentence-transformers": (0.55, 0.08)}
#: Windows the scan must have read before a gap means anything: against a handful, anything leads.
STANDOUT_MIN_WINDOWS = 1000
#: Windows kept per case while scanning, to find the best one and the next of another document.
_KEEP_NEAREST = 4
#: Two windows this similar are one text twice: the gap is measured past them.
_SAME_TEXT = 0.95
#: Text per batch: big enough that numpy does the work, small enough to stay in cache-sized pieces.
BATCH_BYTES = 4 << 20
#: Bad lines kept in a report (all are counted).
KEEP_BAD = 100
_SPAN_CHARS = 300


class ContaminationError(EvaltrayError):
    """A scan that cannot run: an unknown method, an n below 2."""


@dataclass(frozen=True)
class Probe:
    """A tray text checked: a case's input or reference answer, with the case's split (dev or holdout)."""

    case_id: str
    split: str
    field: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """A corpus to check against, and what kind it is (``corpus``, ``prompt``, ``judge``)."""

    path: Path
    kind: str = "corpus"


@dataclass
class Match:
    case_id: str
    split: str
    field: str
    method: str
    score: float
    source: str
    line: int
    span: str
    kind: str = "corpus"
    detail: str | None = None


@dataclass
class ContaminationReport:
    release: str | None
    n: int
    methods: list[str]
    cases: dict[str, int]  # split -> cases checked
    matches: list[Match] = field(default_factory=list)
    docs: int = 0
    bytes: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    seconds: float = 0.0

    def contaminated(self, split: str | None = None) -> dict[str, list[Match]]:
        """The matches of each contaminated case (of one split, when given), by case id."""
        out: dict[str, list[Match]] = defaultdict(list)
        for m in self.matches:
            if split is None or m.split == split:
                out[m.case_id].append(m)
        return dict(sorted(out.items()))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per split: cases checked, cases contaminated, and cases each method found."""
        out = {}
        for split, total in sorted(self.cases.items()):
            found = self.contaminated(split)
            by_method = {m: sum(any(x.method == m for x in ms) for ms in found.values()) for m in self.methods}
            out[split] = {"cases": total, "contaminated": len(found), "by_method": by_method}
        return out


_T = TypeVar("_T")


@dataclass
class _Near:
    """A window near a case: its cosine, where it is, and whether the case is the window's nearest."""

    cos: float
    doc: Doc
    text: str
    vec: np.ndarray
    mutual: bool
    kind: str


def _clip(text: str) -> str:
    return text if len(text) <= _SPAN_CHARS else text[: _SPAN_CHARS - 1] + "…"


#: Numbers people write as words; a rephrasing may swap "3" and "three" (5 = five, as dedup reads them).
_NUMBER_WORDS = {
    w.encode(): str(i).encode()
    for i, w in enumerate(
        [
            "zero",
            "-",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
    if w != "-"  # "one" is a pronoun as often as a number
} | {
    w.encode(): str(10 * i).encode()
    for i, w in enumerate(["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 3)
}
_NUMBER_WORDS |= {b"twice": b"2", b"double": b"2", b"half": b"0.5", b"dozen": b"12"}


def _is_number(w: bytes) -> bool:
    return w in _NUMBER_WORDS or any(48 <= c <= 57 for c in w)


def _numbers(words: Sequence[bytes]) -> set[bytes]:
    return {_NUMBER_WORDS.get(w, w) for w in words if _is_number(w)}


#: An LLM's second opinion on paraphrase candidates: for each (case text, corpus text), True (same
#: question), False, or None (no answer: the candidate stands on the alignment alone).
Verifier = Callable[[list[tuple[str, str]]], list[bool | None]]
Embed = Callable[[list[str]], np.ndarray]


class Scanner:
    """The tray's index, and the methods that run each corpus batch past it."""

    def __init__(
        self,
        probes: Sequence[Probe],
        n: int = DEFAULT_N,
        methods: Sequence[str] = METHODS,
        embed: Embed | None = None,
        verify: Verifier | None = None,
        para_cos: float | None = None,
        standout: tuple[float, float] | None = STANDOUT,
    ) -> None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ContaminationError(f"unknown method {unknown[0]!r}: one of {', '.join(METHODS)}")
        if n < 2:
            raise ContaminationError(f"the n-gram length must be 2 or more, got {n}")
        if "paraphrase" in methods and embed is None:
            raise ContaminationError("the paraphrase method needs an embedder")
        self.probes, self.n, self.methods = list(probes), n, list(methods)
        self.embed, self.verify = embed, verify
        self.para_cos = para_cos  # None: PARA_COS, read when scanning
        self.standout = standout  # None: no window is taken for standing out
        self._nearest: dict[int, list[_Near]] = defaultdict(list)
        self._found: set[tuple[int, str, int]] = set()  # (probe, source, line) the paraphrase bar took
        self._windows_read = 0
        texts = [p.text for p in self.probes]
        self.main = GramIndex(texts, sorted({min(SEED, n), n}))
        self.words = self.main.words
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(self.words):
            if MIN_EXACT <= len(w) < n:
                by_len[len(w)].append(i)
        self.short = {k: (GramIndex([texts[i] for i in ids], [k]), np.asarray(ids)) for k, ids in by_len.items()}
        self.lengths = sorted({*self.main.lengths, *self.short})
        self.whole = {b" ".join(w): i for i, w in enumerate(self.words) if 0 < len(w) < MIN_EXACT}
        self.vectors: np.ndarray | None = None
        if "paraphrase" in self.methods and embed is not None and texts:
            vectors = _unit(embed(texts))
            # a case of a few words "paraphrases" half the corpus: those are for the exact method alone
            vectors[[len(w) < MIN_EXACT for w in self.words]] = 0
            self.vectors = vectors
            self._embedded = np.flatnonzero(vectors.any(axis=1)).tolist()  # the cases long enough to embed
            sizes = sorted(len(w) for w in self.words)
            self.window = int(min(256, max(16, 1.5 * sizes[math.ceil(0.95 * len(sizes)) - 1])))  # 95th percentile

    def scan_batch(self, docs: Sequence[Doc], kind: str = "corpus") -> list[Match]:
        """Every match of the probes in ``docs``."""
        if not docs or not self.probes:
            return []
        batch = word_batch([d.text for d in docs])
        found = self._scan(batch, len(docs), docs.__getitem__, kind)
        return found + self._paraphrases(docs, kind) if self.vectors is not None else found

    def scan_block(self, block: TextBlock, kind: str = "corpus") -> list[Match]:
        """Every verbatim match (exact, n-gram, near-verbatim) of the probes in a block of JSONL lines, each
        line one document: the block is normalized and hashed at once, and a line becomes a :class:`Doc`
        only when it matches. The paraphrase method reads documents (:meth:`scan_batch`)."""
        if not self.probes:
            return []
        data, starts = norm_lines(block.data)
        batch = hash_words(b" " + data, starts + 1)
        return self._scan(batch, len(starts), lambda d: Doc(block.source, block.first + d, ""), kind)

    def _scan(self, batch: WordBatch, count: int, doc_at: Callable[[int], Doc], kind: str) -> list[Match]:
        """The verbatim matches in a batch of ``count`` documents, document ``d`` being ``doc_at(d)``."""
        bounds = np.searchsorted(batch.doc, np.arange(count + 1))  # document d is words bounds[d] to bounds[d + 1]
        found: list[Match] = []
        for (d, p), hits in self._pairs(batch).items():
            found += self._verbatim(batch, (int(bounds[d]), int(bounds[d + 1])), doc_at(d), p, hits, kind)
        return found + self._whole_docs(batch, bounds, doc_at, kind)

    def _pairs(self, batch: WordBatch) -> dict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]]:
        """(document, probe) -> {gram length: (hit positions, hit hashes)} for every pair with a hit."""
        # compiled: each index rolls and probes in one pass; numpy: every gram length rolled once, then probed
        grams = None if kernels() is not None else rolling(batch.hashes, batch.doc, self.lengths)
        out: dict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
        sources = [(self.main, None), *((idx, ids) for idx, ids in self.short.values())]
        for index, ids in sources:
            found = index.probe(grams) if grams is not None else index.probe_words(batch.hashes, batch.doc)
            for length, hits in found.items():
                if not len(hits.pos):
                    continue
                probe = hits.text if ids is None else ids[hits.text]
                doc = batch.doc[hits.pos]
                order = np.lexsort((hits.pos, probe, doc))
                doc, probe, pos, hsh = doc[order], probe[order], hits.pos[order], hits.hash[order]
                cut = np.flatnonzero((np.diff(doc) != 0) | (np.diff(probe) != 0)) + 1
                for lo, hi in zip(np.r_[0, cut].tolist(), np.r_[cut, len(doc)].tolist(), strict=True):
                    out[(int(doc[lo]), int(probe[lo]))][length] = (pos[lo:hi], hsh[lo:hi])
        return out

    def _match(self, p: int, method: str, score: float, doc: Doc, span: str, kind: str, **kw: Any) -> Match:
        pr = self.probes[p]
        return Match(
            pr.case_id, pr.split, pr.field, method, round(score, 4), doc.source, doc.line, _clip(span), kind, **kw
        )

    def _verbatim(
        self,
        batch: WordBatch,
        rng: tuple[int, int],
        doc: Doc,
        p: int,
        hits: dict[int, tuple[np.ndarray, np.ndarray]],
        kind: str,
    ) -> list[Match]:
        words, n = self.words[p], self.n
        out = []
        if "exact" in self.methods:
            needle = b" " + b" ".join(words) + b" "
            if needle in b" " + b" ".join(batch.words(*rng)) + b" ":
                out.append(self._match(p, "exact", 1.0, doc, needle.strip().decode("utf-8", "replace"), kind))
        if "ngram" in self.methods and n in hits and len(words) >= n:
            pos, hsh = hits[n]
            share = len(set(hsh.tolist()) & self.main.grams[n][p]) / len(self.main.grams[n][p])
            lo, hi = _longest_run(pos)
            out.append(self._match(p, "ngram", share, doc, batch.span(lo, hi + n), kind, detail=f"{n}-grams"))
        seed = min(SEED, n)
        if "lcs" in self.methods and seed in hits and len(words) >= seed and len(np.unique(hits[seed][0])) >= 2:
            pos = hits[seed][0]
            a = max(rng[0], int(pos.min()) - len(words))
            b = min(rng[1], int(pos.max()) + seed + len(words))
            window = batch.words(a, b)
            blocks = [
                blk for blk in SequenceMatcher(None, words, window, autojunk=False).get_matching_blocks() if blk.size
            ]
            ratio = sum(blk.size for blk in blocks) / len(words)
            if ratio >= LCS_MIN and _numbers(words) <= _numbers(window):  # other numbers: another question
                span = batch.span(a + blocks[0].b, a + blocks[-1].b + blocks[-1].size)
                out.append(self._match(p, "lcs", ratio, doc, span, kind))
        return out

    def _whole_docs(self, batch: WordBatch, bounds: np.ndarray, doc_at: Callable[[int], Doc], kind: str) -> list[Match]:
        """Cases too short for a gram, found only as a corpus document of their own."""
        if not self.whole or "exact" not in self.methods:
            return []
        sizes = np.diff(bounds)
        out = []
        for d in np.flatnonzero((sizes > 0) & (sizes < MIN_EXACT)).tolist():
            lo, hi = int(bounds[d]), int(bounds[d + 1])
            p = self.whole.get(b" ".join(batch.words(lo, hi)))
            if p is not None:
                out.append(self._match(p, "exact", 1.0, doc_at(d), batch.span(lo, hi), kind))
        return out

    def _windows(self, docs: Sequence[Doc]) -> list[tuple[int, str]]:
        """``(document, text)`` windows a batch is embedded in: each line of a document (a JSONL record's
        strings are lines: the question apart from its answer); a line longer than a window, the runs of its
        sentences that fit one, a run starting at each sentence."""
        out = []
        for d, doc in enumerate(docs):
            for line in doc.text.split("\n"):
                size = len(line.split())
                if size and size <= self.window:
                    out.append((d, line))
                elif size:
                    out += [(d, run) for run in _runs(line, self.window)]
        return out

    def _paraphrases(self, docs: Sequence[Doc], kind: str) -> list[Match]:
        assert self.vectors is not None and self.embed is not None
        windows = self._windows(docs)
        if not windows:
            return []
        wvecs = _unit(self.embed([t for _, t in windows]))
        sims = wvecs @ self.vectors.T
        top = sims.max(axis=1)  # each window's best case: a case within MUTUAL of it is the window's nearest
        if self.standout is not None:
            self._keep_nearest(docs, windows, wvecs, sims, top, kind)
        k = min(PARA_K, sims.shape[1])
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best: dict[tuple[int, int], tuple[float, str, int]] = {}
        for wi, p in zip(np.repeat(np.arange(len(windows)), k).tolist(), near.ravel().tolist(), strict=True):
            cos, (d, text) = float(sims[wi, p]), windows[wi]
            if cos <= best.get((d, p), (0.0, "", 0))[0] or MUTUAL and cos < top[wi] - MUTUAL:
                continue
            bar = PARA_COS if self.para_cos is None else self.para_cos
            same, why = paraphrase_verdict(self.probes[p].text, text, cos, bar, PARA_GUARDS)
            if same:
                best[(d, p)] = (cos, why, wi)
        chosen = self._verified(sorted(best.items()), lambda c: (c[0][1], windows[c[1][2]][1]))
        self._found.update((p, docs[d].source, docs[d].line) for (d, p), _ in chosen)
        return [
            self._match(p, "paraphrase", cos, docs[d], windows[wi][1], kind, detail=why)
            for (d, p), (cos, why, wi) in chosen
        ]

    def _verified(self, found: list[_T], pair: Callable[[_T], tuple[int, str]]) -> list[_T]:
        """``found`` less what the verifier (when given) rejects; ``pair(item)``: its case and corpus text."""
        if self.verify is None or not found:
            return found
        verdicts = self.verify([(self.probes[p].text, text) for p, text in map(pair, found)])
        return [c for c, ok in zip(found, verdicts, strict=True) if ok is not False]

    def _keep_nearest(
        self,
        docs: Sequence[Doc],
        windows: list[tuple[int, str]],
        wvecs: np.ndarray,
        sims: np.ndarray,
        top: np.ndarray,
        kind: str,
    ) -> None:
        """Remember each case's :data:`_KEEP_NEAREST` nearest windows of this batch beside those of the
        batches before, with whether the case is the window's nearest (within :data:`MUTUAL` of ``top``, the
        window's best cosine, as the paraphrase bar reads it)."""
        self._windows_read += len(windows)
        m = min(_KEEP_NEAREST, len(windows))
        nearest = np.argpartition(-sims, m - 1, axis=0)[:m]  # m windows per case
        for p in self._embedded:
            kept = self._nearest[p]
            floor = kept[-1].cos if len(kept) >= _KEEP_NEAREST else -1.0
            for wi in nearest[:, p].tolist():
                cos = float(sims[wi, p])
                if cos > floor:
                    d, text = windows[wi]
                    kept.append(_Near(cos, docs[d], text, wvecs[wi], cos >= top[wi] - MUTUAL, kind))
            kept.sort(key=lambda x: -x.cos)
            del kept[_KEEP_NEAREST:]

    def finish(self) -> list[Match]:
        """The windows that stand out for a case (see the module's docstring), once every corpus was read;
        those the paraphrase bar took already are not repeated."""
        if self.standout is None or self._windows_read < STANDOUT_MIN_WINDOWS:
            return []
        least, gap = self.standout
        picked: list[tuple[int, _Near, float]] = []
        for p, kept in sorted(self._nearest.items()):
            top = kept[0]
            if top.cos < least or not top.mutual or (p, top.doc.source, top.doc.line) in self._found:
                continue
            rest = [
                x.cos
                for x in kept[1:]
                if (x.doc.source, x.doc.line) != (top.doc.source, top.doc.line) and float(x.vec @ top.vec) < _SAME_TEXT
            ]
            if not rest or top.cos - rest[0] < gap:
                continue  # no lead, or no window of another text kept to measure it against
            if not guard_refusal(self.probes[p].text, top.text, PARA_GUARDS):
                picked.append((p, top, rest[0]))
        picked = self._verified(picked, lambda c: (c[0], c[1].text))
        return [
            self._match(
                p, "paraphrase", x.cos, x.doc, x.text, x.kind, detail=f"stands out: cosine {x.cos:.3f}, next {n:.3f}"
            )
            for p, x, n in picked
        ]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _runs(line: str, size: int) -> list[str]:
    """Runs of consecutive sentences of ``line`` of at most ``size`` words, one starting at each sentence (a
    sentence longer than that is cut in pieces of ``size`` words, half overlapping)."""
    pieces: list[list[str]] = []
    for sentence in _SENTENCE_END.split(line.strip()):
        words = sentence.split()
        step = max(1, size // 2)
        pieces += (
            [words] if len(words) <= size else [words[i : i + size] for i in range(0, len(words) - size + step, step)]
        )
    out = []
    for i in range(len(pieces)):
        run, j = list(pieces[i]), i + 1
        while j < len(pieces) and len(run) + len(pieces[j]) <= size:
            run += pieces[j]
            j += 1
        out.append(" ".join(run))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def _longest_run(pos: np.ndarray) -> tuple[int, int]:
    """First and last position of the longest run of consecutive hit positions."""
    u = np.unique(pos)
    cut = np.flatnonzero(np.diff(u) != 1) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, len(u)] - 1
    k = int(np.argmax(ends - starts))
    return int(u[starts[k]]), int(u[ends[k]])


def _batches(items: Iterable[Item | TextBlock], report: ContaminationReport) -> Iterable[list[Doc] | TextBlock]:
    """Documents in batches of about :data:`BATCH_BYTES`, and blocks as they come; bad lines go to the report
    as they pass."""
    batch: list[Doc] = []
    size = 0
    for item in items:
        if isinstance(item, TextBlock):
            report.docs += item.docs
            report.bytes += item.size
            yield item
            continue
        if isinstance(item, BadLine):
            report.bad_count += 1
            if len(report.bad_lines) < KEEP_BAD:
                report.bad_lines.append(item)
            continue
        batch.append(item)
        size += len(item.text)
        report.docs += 1
        report.bytes += len(item.text)
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def scan(
    scanner: Scanner,
    corpora: Sequence[Corpus],
    release: str | None = None,
    read: Callable[[Path], Iterable[Item | TextBlock]] | None = None,
) -> ContaminationReport:
    """Stream every corpus once past ``scanner``; the matches, counts and bad lines as a report. JSONL is read
    in blocks of many lines (:meth:`Scanner.scan_block`) unless the paraphrase method needs documents."""
    if read is None:
        read = read_corpus if scanner.vectors is not None else read_corpus_blocks
    t0 = time.perf_counter()
    cases: dict[str, set[str]] = defaultdict(set)
    for p in scanner.probes:
        cases[p.split].add(p.case_id)
    report = ContaminationReport(release, scanner.n, scanner.methods, {s: len(ids) for s, ids in cases.items()})
    for corpus in corpora:
        for got in _batches(read(corpus.path), report):
            if isinstance(got, TextBlock):
                report.matches += scanner.scan_block(got, corpus.kind)
            else:
                report.matches += scanner.scan_batch(got, corpus.kind)
    report.matches += scanner.finish()
    report.seconds = time.perf_counter() - t0
    return report


def _user_text(case: dict[str, Any]) -> str:
    msgs = (case.get("input") or {}).get("messages") or []
    return "\n".join(t for m in msgs if m.get("role") == "user" for t in strings_of(m.get("content")))


def probes_of(cases: Iterable[dict[str, Any]], split: str) -> list[Probe]:
    """A case's user turns (``input``) and its reference answer (``reference``), as probes of ``split``."""
    out = []
    for case in cases:
        text = _user_text(case)
        if text.strip():
            out.append(Probe(case["id"], split, "input", text))
        ref = (case.get("expected") or {}).get("reference")
        if ref and ref.strip():
            out.append(Probe(case["id"], split, "reference", ref))
    return out


def source_date(case: dict[str, Any]) -> str:
    """When a case's source came to be: the trace's ingest date, else when the case was written."""
    return str((case.get("provenance") or {}).get("ingest_date") or case.get("created_at") or "")


def provenance_matches(cases: Iterable[dict[str, Any]], split: str, cutoff: str) -> list[Match]:
    """Cases whose source date is before ``cutoff`` (an ISO date): a model trained up to it may have seen them."""
    out = []
    for case in cases:
        when = source_date(case)
        if when and when[:10] < cutoff[:10]:
            out.append(
                Match(
                    case["id"],
                    split,
                    "provenance",
                    "provenance",
                    1.0,
                    "provenance",
                    0,
                    when,
                    "cutoff",
                    f"before {cutoff}",
                )
            )
    return out
