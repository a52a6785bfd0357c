"""Three-level dedup: exact (normalized text), near (MinHash + LSH, verified Jaccard), paraphrase (ANN, verified).

Dedup never drops a trace. It marks clusters of duplicates, picks one representative per cluster and
gives it a weight (how many traces it stands for), and keeps the evidence for every merge as a
``DupPair``. The result depends only on the set of ``(id, text, vector)`` rows, never on their order:
rows are sorted by id before anything else happens.

The rule for numbers, in the near and paraphrase stages alike: identifiers (long digit runs, dates,
times, ordinals, a number after "order", "#", "ref", "account"...) are slots that may differ between two
copies of one case, and the near stage compares texts with each of them as one neutral token; quantities
the text reasons with are content, compared by value ("5" = "five" = "5.0"), and a different value means
a different case. A value one text states and the other only implies in words ("60 minutes" against
"an hour", "2" against "both") is unknown, not different; any other value only one text states is an
added fact, a different case. Scrub placeholders (``<PERSON_1>``) are one neutral token in the compared
text and "unknown" to the guards: never a number, never a name, never equal.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from evaltray.core.errors import EvaltrayError
from evaltray.core.util import sha256_hex

__all__ = [
    "DedupError",
    "DedupResult",
    "DupGroup",
    "DupPair",
    "GUARDS",
    "NearPairs",
    "PARAPHRASE",
    "PLACEHOLDER",
    "canonical",
    "dedup",
    "lsh_params",
    "near_duplicate_pairs",
    "normalize",
    "guard_refusal",
    "paraphrase_verdict",
    "shingle_hashes",
]

Level = Literal["exact", "near", "paraphrase"]
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as each stage starts and ends."""

_LEVEL_RANK = {"exact": 0, "near": 1, "paraphrase": 2}

SHINGLE = 5
"""Near-duplicates compare sets of character 5-grams: they see word order and typos, and need no word
splitting, so Chinese or Thai text works as well as English."""

MAX_PERM = 128

PARAPHRASE = 0.675
"""The default paraphrase threshold: where the combined rule best separates MRPC's paraphrases from its
non-paraphrases (Youden's J, which does not depend on how many pairs are paraphrases; WordLlama)."""
#: The guards a paraphrase pair must pass (all of them in :func:`dedup`).
GUARDS = ("numbers", "negation", "names")
_U64 = np.uint64


class DedupError(EvaltrayError, ValueError):
    """The input to dedup is inconsistent: duplicate ids, length mismatch, bad vectors or threshold."""


@dataclass(frozen=True, slots=True)
class DupPair:
    """Evidence for one merge: ``a`` < ``b`` were found duplicates at ``level`` with ``score``."""

    a: str
    b: str
    level: Level
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class DupGroup:
    """A cluster of duplicate traces; ``weight`` = number of traces the representative stands for."""

    representative: str
    members: tuple[str, ...]
    level: Level
    weight: int


@dataclass(slots=True)
class DedupResult:
    """Groups of two or more traces, the merge evidence, and a representative for every id."""

    groups: list[DupGroup]
    pairs: list[DupPair]
    rep_of: dict[str, str]
    rejected: list[DupPair] = field(default_factory=list)
    """Paraphrase candidates above the cosine threshold that verification refused, with the reason."""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> dict[str, int]:
        """Weight of every representative, singletons included (weight 1)."""
        out: dict[str, int] = {}
        for rep in self.rep_of.values():
            out[rep] = out.get(rep, 0) + 1
        return out


# --------------------------------------------------------------------------- normalization


class _CharMap(dict[int, str | int]):
    """``str.translate`` table computed lazily from Unicode categories (the alphabet is too big to list)."""

    def __missing__(self, cp: int) -> str | int:
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P" or cat in ("Cc", "Zs", "Zl", "Zp"):
            out: str | int = " "
        elif cat == "Cf":  # zero-width space, BOM, soft hyphen: invisible, so they must not split words
            out = ""
        elif cat == "Cs":  # a lone surrogate (undecodable bytes) cannot be encoded later
            out = "\ufffd"
        else:
            out = cp
        self[cp] = out
        return out


_CHARMAP = _CharMap()
_ASCII_TABLE = bytes(
    32 if (unicodedata.category(chr(b))[0] == "P" or b < 32 or b == 127) else (ord(chr(b).lower()) if b < 128 else b)
    for b in range(256)
)


def normalize(text: str | bytes | None) -> str:
    """Casefold, Unicode NFKC, punctuation and control characters to spaces, whitespace collapsed.

    Symbols (currency, emoji, maths) are kept, so "£1" and "€1", or "👍" and "👎", stay different.
    Bytes are decoded as UTF-8 with replacement; ``None`` is the empty text. Idempotent.
    """
    if text is None:
        return ""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    if text.isascii():
        return " ".join(text.encode("ascii").translate(_ASCII_TABLE).decode("ascii").split())
    # NFKC and casefold can each undo the other's work (and dropping a format character can let
    # combining marks compose), so iterate to a fixed point; two rounds settle all real text.
    out = text
    for _ in range(4):
        nxt = " ".join(
            unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", out).casefold()).translate(_CHARMAP).split()
        )
        if nxt == out:
            break
        out = nxt
    return out


# --------------------------------------------------------------------------- near-duplicates: shingles


_K = _U64(0x9E3779B97F4A7C15)
_BLOCK = 1 << 16  # positions per block: temporaries stay in cache


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer in place: MinHash needs every bit of a token hash to be well mixed."""
    t = z >> _U64(30)
    z ^= t
    z *= _U64(0xBF58476D1CE4E5B9)
    np.right_shift(z, _U64(27), out=t)
    z ^= t
    z *= _U64(0x94D049BB133111EB)
    np.right_shift(z, _U64(31), out=t)
    z ^= t
    return z


def shingle_hashes(norm_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each text's character 5-grams, flat, with ``len+1`` row offsets.

    Texts are padded with four NULs at both ends (NUL cannot survive ``normalize``), so a text of
    ``L`` characters has ``L + 4`` shingles and even a one-letter text has some. Vectorized: the whole
    corpus is hashed in numpy, never one shingle at a time in Python.
    """
    n = len(norm_texts)
    lens = np.fromiter(map(len, norm_texts), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(lens + (SHINGLE - 1), out=offsets[1:])
    if n == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    pad = "\0" * (SHINGLE - 1)
    # Shingles that straddle a boundary see only one text plus NUL padding, so rows can be cut
    # contiguously: row d is every 5-gram that starts in [pad before d, end of d).
    cps = np.frombuffer((pad + pad.join(norm_texts) + pad).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    total = cps.size - SHINGLE + 1
    out = np.empty(total, dtype=np.uint64)
    for start in range(0, total, _BLOCK):
        stop = min(total, start + _BLOCK)
        c = cps[start : stop + SHINGLE - 1].astype(np.uint64)
        h = out[start:stop]  # a view: hash in place
        np.copyto(h, c[: stop - start])
        for j in range(1, SHINGLE):
            h *= _K
            h += c[j : j + stop - start]
        _mix64(h)
    return out, offsets


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, max_perm: int = MAX_PERM) -> tuple[int, int]:
    """``(bands, rows)`` for banded LSH at ``threshold``: fewest false candidates below it while a
    pair exactly at the threshold still becomes a candidate with probability >= 0.99."""
    if not 0.0 < threshold <= 1.0:
        raise DedupError(f"near threshold must be in (0, 1], got {threshold}")
    s = np.linspace(0.0, threshold, 201)
    best: tuple[float, int, int] | None = None
    for rows in range(1, max_perm + 1):
        for bands in range(1, max_perm // rows + 1):
            if 1.0 - (1.0 - threshold**rows) ** bands < 0.99:
                continue
            fp = float(np.trapezoid(1.0 - (1.0 - s**rows) ** bands, s))
            if best is None or fp < best[0] - 1e-12:
                best = (fp, bands, rows)
    assert best is not None  # rows=1, bands=max_perm always qualifies for threshold > 0.04
    return best[1], best[2]


# --------------------------------------------------------------------------- near-duplicates: candidates


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2's hash-based unique is ~10x slower on large uint64 arrays."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x


def _gather_rows(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shingle hashes of ``rows`` only, as a new flat buffer with its own offsets."""
    starts = offsets[rows].astype(np.int64)
    counts = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    sub_offsets = np.zeros(rows.size + 1, dtype=np.uint64)
    np.cumsum(counts, out=sub_offsets[1:])
    index = np.repeat(starts - sub_offsets[:-1].astype(np.int64), counts) + np.arange(int(sub_offsets[-1]))
    return flat[index], sub_offsets


def _signatures(flat: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """R-MinHash signatures (rensa) as an ``(n, num_perm)`` uint32 array."""
    import rensa

    n = offsets.size - 1
    sig = np.empty((n, num_perm), dtype=np.uint32)
    step = 65536  # rensa hands rows back as Python lists; bound that memory
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        sub = flat[int(offsets[lo]) : int(offsets[hi])]
        m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(sub, offsets[lo : hi + 1] - offsets[lo], num_perm, seed)
        sig[lo:hi] = m.to_rows()
    return sig


def _bucket_pairs(keys: np.ndarray, roots: np.ndarray, cap: int) -> np.ndarray:
    """Index pairs ``i < j`` whose ``keys`` are equal and whose ``roots`` (groups found so far) differ.

    A bucket of up to ``cap`` rows gives all its pairs. A larger one keeps one row per group (the first)
    and gives a star from one of them plus a chain through them, so a template asked 10,000 times makes
    linear, not quadratic, work: candidate generation is verification against a group's representative.
    """
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, sk.size])
    out = []
    small = (sizes >= 2) & (sizes <= cap)
    if small.any():
        s, g = starts[small], sizes[small]
        # every position p in a bucket pairs with all later positions of the same bucket
        pos = np.repeat(s, g) + (np.arange(int(g.sum())) - np.repeat(np.cumsum(g) - g, g))
        later = np.repeat(s + g, g) - pos - 1
        left = np.repeat(pos, later)
        right = left + 1 + (np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later))
        p = np.stack([order[left], order[right]], axis=1)
        out.append(p[roots[p[:, 0]] != roots[p[:, 1]]])
    heavy = sizes > cap
    if heavy.any():
        shuffle = _mix64(np.arange(keys.size, dtype=np.uint64) ^ keys)  # a fresh order per bucket and band
        out.append(_star_and_chain(order, roots, starts[heavy], sizes[heavy], shuffle))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    return np.sort(pairs, axis=1)


def _star_and_chain(
    order: np.ndarray, roots: np.ndarray, starts: np.ndarray, sizes: np.ndarray, shuffle: np.ndarray
) -> np.ndarray:
    """For each heavy bucket ``order[start : start + size]``: one row per group, in ``shuffle`` order,
    paired with the bucket's first such row (a star) and with the next one (a chain); vectorized. Each
    band shuffles differently, so the bands of one bucket try different neighbours."""
    pos = np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes))
    bucket = np.repeat(np.arange(sizes.size), sizes)
    rows = order[pos]
    by = np.lexsort((shuffle[rows], roots[rows], bucket))  # bucket, then group, then shuffled
    b, r, x = bucket[by], roots[rows][by], rows[by]
    first = np.r_[True, (b[1:] != b[:-1]) | (r[1:] != r[:-1])]
    b, x = b[first], x[first]
    o = np.lexsort((shuffle[x], b))  # one row per group, shuffled inside each bucket
    b, x = b[o], x[o]
    head = np.r_[True, b[1:] != b[:-1]]
    center = x[head][np.cumsum(head) - 1]
    star = np.stack([center[~head], x[~head]], axis=1)
    same = b[1:] == b[:-1]
    chain = np.stack([x[:-1][same], x[1:][same]], axis=1)
    return np.concatenate([star, chain])


def _band_keys(sig: np.ndarray, band: int, rows: int, salt: np.ndarray) -> np.ndarray:
    """Each row's key for ``band``, mixed with its ``salt``: rows with different salts never share a bucket."""
    block = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
    key = salt ^ _U64(((band + 1) * int(_K)) % (1 << 64))
    for j in range(rows):
        key ^= block[:, j]
        key = _mix64(key)
    return key


class _ShingleSets:
    """The shingle sets of some texts, packed once, to answer exact Jaccard for any batch of pairs.

    Each text's shingles become keys ``(text << f) | fingerprint`` (the hash's low ``f = 64 - bits(texts)``
    bits, at least 40: a false shared shingle has odds below 1e-8 per pair); sorted and unique, they
    answer "is this shingle of ``a`` also in ``b``" for every pair with one ``searchsorted``.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        n = offsets.size - 1
        self.shift = _U64(64 - max(1, int(n).bit_length()))
        self.mask = (_U64(1) << self.shift) - _U64(1)
        keys = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets).astype(np.int64))
        keys <<= self.shift
        keys |= flat & self.mask
        keys.sort()  # in place: this is the biggest buffer of the near stage
        self.keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
        del keys
        self.size = np.bincount((self.keys >> self.shift).astype(np.int64), minlength=n)
        self.start = np.r_[0, np.cumsum(self.size)[:-1]]

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each pair ``(a, b)`` of text indices, vectorized over all pairs; batches of
        pairs run on two threads (numpy's sorting and searching release the GIL)."""
        out = np.zeros(len(pairs), dtype=np.float64)
        if not len(pairs):
            return out
        # query the smaller text's shingles in the larger one's, pairs ordered by the larger: the queries
        # then arrive nearly sorted, and numpy's binary search walks the key array cache-friendly
        small = self.size[pairs[:, 0]] <= self.size[pairs[:, 1]]
        pairs = np.where(small[:, None], pairs, pairs[:, ::-1])
        by = np.argsort(pairs[:, 1], kind="stable")
        pairs = pairs[by]
        # cut the pairs into batches whose queries fill about 4M slots (at least one pair each)
        cum = np.cumsum(self.size[pairs[:, 0]])
        ends = np.searchsorted(cum, np.arange(1 << 22, int(cum[-1]), 1 << 22), "right")
        ends = np.unique(np.r_[ends[ends > 0], len(pairs)])
        cuts = list(zip(np.r_[0, ends[:-1]].tolist(), ends.tolist(), strict=True))

        def run(cut: tuple[int, int]) -> None:
            lo, hi = cut
            a, b = pairs[lo:hi, 0], pairs[lo:hi, 1]
            n_q = self.size[a]
            pos = np.repeat(self.start[a], n_q) + (np.arange(int(n_q.sum())) - np.repeat(np.cumsum(n_q) - n_q, n_q))
            query = (np.repeat(b.astype(np.uint64), n_q) << self.shift) | (self.keys[pos] & self.mask)
            at = np.minimum(np.searchsorted(self.keys, query), self.keys.size - 1)
            hit = self.keys[at] == query
            inter = np.bincount(np.repeat(np.arange(hi - lo), n_q), weights=hit, minlength=hi - lo)
            out[lo:hi] = inter / (self.size[a] + self.size[b] - inter)

        if len(cuts) > 1:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(run, cuts))
        else:
            run(cuts[0])
        result = np.empty_like(out)
        result[by] = out
        return result


def _exact_jaccard(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair ``(a, b)`` of rows of ``(flat, offsets)``."""
    if not len(pairs):
        return np.zeros(0, dtype=np.float64)
    docs = _sorted_unique(pairs.ravel())
    sub, sub_offsets = _gather_rows(flat, offsets, docs)
    return _ShingleSets(sub, sub_offsets).jaccard(np.searchsorted(docs, pairs))


def _roots(parent: np.ndarray) -> np.ndarray:
    """Root of every index of a union-find ``parent`` array, by pointer jumping in numpy."""
    p = parent.copy()
    while True:
        q = p[p]
        if np.array_equal(q, p):
            return p
        p = q


def _union(parent: np.ndarray, pairs: np.ndarray) -> None:
    """Join the groups of each pair in ``parent`` (the smaller root stays root)."""
    par = parent.tolist()

    def find(x: int) -> int:
        while par[x] != x:
            par[x] = par[par[x]]
            x = par[x]
        return x

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            par[max(ra, rb)] = min(ra, rb)
    parent[:] = par


@dataclass(slots=True)
class NearPairs:
    """Verified near-duplicate pairs (indices into the texts given) and what it took to find them."""

    i: np.ndarray
    j: np.ndarray
    estimate: np.ndarray
    jaccard: np.ndarray
    stats: dict[str, Any]


def near_duplicate_pairs(
    norm_texts: Sequence[str],
    threshold: float = 0.8,
    *,
    seed: int = 0,
    bucket_cap: int = 16,
    groups: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
) -> NearPairs:
    """Pairs the MinHash LSH proposes whose exact shingle Jaccard is >= ``threshold``, enough of them
    to connect every group that verifying all proposed pairs would connect.

    Pipeline: shingle hashes (numpy) -> R-MinHash matrix (rensa, Rust, both cores) -> rensa's LSH
    flags the rows that share any band with another row -> those rows only get banded again in
    numpy to name the pairs -> a MinHash estimate drops hopeless pairs -> exact Jaccard decides.
    The first band is verified alone; the others then propose only pairs not yet in one group, so
    templated traffic (thousands of copies of one template) costs linear work. ``groups`` (one integer
    per text, or a function giving them for an array of row indices, asked for the flagged rows only)
    confines merges: texts with different values never pair.
    """
    import rensa

    t0 = time.perf_counter()
    bands, rows = lsh_params(threshold)
    num_perm = bands * rows
    stats: dict[str, Any] = {"bands": bands, "rows": rows, "num_perm": num_perm}
    none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    empty = NearPairs(none_i, none_i, none_f, none_f, stats)
    if len(norm_texts) < 2:
        return empty
    flat, offsets = shingle_hashes(norm_texts)
    stats["shingles"] = int(flat.size)
    t1 = time.perf_counter()
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm, seed)
    t2 = time.perf_counter()
    # The one-shot query only says which rows collide with some other row; rensa cannot hand back
    # the pairs or its signatures cheaply, so the (usually few) flagged rows are re-signed below.
    lsh = rensa.RMinHashLSH(threshold, num_perm, bands)
    flagged = np.flatnonzero(np.fromiter(lsh.query_duplicate_flags_matrix_one_shot(matrix), dtype=bool))
    del matrix, lsh
    stats["flagged"] = int(flagged.size)
    t3 = time.perf_counter()
    stats.update(seconds_shingle=t1 - t0, seconds_minhash=t2 - t1, seconds_lsh=t3 - t2)
    if flagged.size < 2:
        return empty
    if flagged.size < offsets.size - 1:
        flat, offsets = _gather_rows(flat, offsets, flagged)  # the flagged rows only: the biggest buffer
    sub_flat, sub_offsets = flat, offsets
    del flat, offsets
    sig = _signatures(sub_flat, sub_offsets, num_perm, seed)
    sets = _ShingleSets(sub_flat, sub_offsets)
    del sub_flat, sub_offsets
    if groups is None:
        salt = np.zeros(flagged.size, dtype=np.uint64)
    else:  # a function is asked for the rows LSH flagged only
        salt = _mix64((groups(flagged) if callable(groups) else groups[flagged]).astype(np.uint64))
    found = _verify_bands(sig, sets, salt, threshold, rows, bucket_cap, stats)
    stats["seconds_verify"] = time.perf_counter() - t3
    i, j, est, jac = found
    return NearPairs(flagged[i], flagged[j], est, jac, stats)


def _verify_bands(
    sig: np.ndarray,
    sets: _ShingleSets,
    salt: np.ndarray,
    threshold: float,
    rows: int,
    cap: int,
    stats: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Propose, estimate and verify pairs band by band; pairs already in one group are never proposed."""
    n, bands = sig.shape[0], sig.shape[1] // rows
    # 3.5 standard errors below the threshold: a pair truly at the threshold is dropped here ~1 in 4,000
    margin = 3.5 * math.sqrt(threshold * (1.0 - threshold) / sig.shape[1])
    parent = np.arange(n, dtype=np.int64)
    tried = np.zeros(0, dtype=np.int64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    m = np.int64(n)
    counts = {"candidates": 0, "estimated": 0, "verified": 0}
    for batch in ([0], list(range(1, min(4, bands))), list(range(4, bands))):
        roots = _roots(parent)
        proposed = [_bucket_pairs(_band_keys(sig, b, rows, salt), roots, cap) for b in batch]
        codes = _sorted_unique(
            np.concatenate([np.zeros(0, dtype=np.int64)] + [p[:, 0] * m + p[:, 1] for p in proposed])
        )
        del proposed
        if tried.size:  # a pair verified in an earlier batch is never verified again
            at = np.minimum(np.searchsorted(tried, codes), tried.size - 1)
            codes = codes[tried[at] != codes]
        tried = _sorted_unique(np.concatenate([tried, codes]))
        cand = np.stack([codes // m, codes % m], axis=1)
        counts["candidates"] += len(cand)
        est = np.empty(len(cand), dtype=np.float64)
        for lo in range(0, len(cand), 1 << 16):
            c = cand[lo : lo + (1 << 16)]
            est[lo : lo + len(c)] = (sig[c[:, 0]] == sig[c[:, 1]]).mean(axis=1)
        keep = est >= threshold - margin
        cand, est = cand[keep], est[keep]
        counts["estimated"] += len(cand)
        jac = sets.jaccard(cand)
        ok = jac >= threshold - 1e-12
        counts["verified"] += int(ok.sum())
        found.append((cand[ok], est[ok], jac[ok]))
        _union(parent, cand[ok])
    stats.update(counts)
    pairs = np.concatenate([f[0] for f in found])
    return pairs[:, 0], pairs[:, 1], np.concatenate([f[1] for f in found]), np.concatenate([f[2] for f in found])


# --------------------------------------------------------------------------- paraphrase: candidates and checks


def _wordlist(words: str) -> list[str]:
    return words.split()


def _wordset(words: str) -> frozenset[str]:
    return frozenset(_wordlist(words))


# Paraphrase verification is English-first and conservative: a false merge hides a distinct case
# from the eval set, a missed merge only leaves one redundant candidate.
_NEGATIONS = _wordset(
    "not never none nothing nobody nowhere neither nor without cannot cant dont doesnt didnt isnt arent wasnt "
    "werent wont wouldnt shouldnt couldnt havent hasnt hadnt mustnt neednt aint"
)
_NT_STEMS = _wordset("don doesn didn isn aren wasn weren won wouldn can couldn shouldn haven hasn hadn mustn needn ain")
# capitalized function words are sentence furniture ("..., Do I get charged?"), not names
_NOT_NAMES = _wordset(
    "i a an the my your our their his her its this that these those what which who whom whose when where why how "
    "do does did is are was were be been am can could will would shall should may might must have has had please "
    "hi hello hey thanks thank yes no ok okay and or but if so then also just there here it we you they he she me us "
    "them in on at to for of from with by about as"
)
_WORD = re.compile(r"\w+")
#: A sentence starts at the text's start, after ". ", "! ", "? ", and inside an opening quote or bracket
#: ('taffy was on sale for "Buy 1 pound': "Buy" is no name).
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|[\"“‘(\[]\s*)\W*(\w+)")

# --------------------------------------------------------------------------- placeholders and quantities

PLACEHOLDER = "\ue000"
"""What every scrub placeholder (``<PERSON_1>``, ``<EMAIL_2>``) becomes in the text dedup compares: one
neutral token, the same for every label and number, so placeholders neither inflate nor deflate the
overlap of two texts. The guards read it as "unknown": never a number, never a name, never equal."""

_PLACEHOLDER_RAW = re.compile(r"<[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_\d+>")
_PLACEHOLDER_NORM = re.compile(r"<[a-z][a-z0-9]*(?: [a-z0-9]+)* \d+>")


def canonical(text: str | bytes | None) -> str:
    """``normalize(text)`` with every scrub placeholder as the one neutral token :data:`PLACEHOLDER`."""
    norm = normalize(text)
    return _PLACEHOLDER_NORM.sub(PLACEHOLDER, norm) if "<" in norm else norm


def _as_str(text: str | bytes | None) -> str:
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text).decode("utf-8", "replace")
    return "" if text is None else str(text)


def _raw(text: str | bytes | None) -> str:
    """The text as a string with placeholders blanked: what the guards read."""
    s = _as_str(text)
    return _PLACEHOLDER_RAW.sub(" ", s) if "<" in s else s


_UNITS = {
    w: i
    for i, w in enumerate(
        _wordlist(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen"
        )
    )
}
_TENS = {w: 10 * i for i, w in enumerate(_wordlist("twenty thirty forty fifty sixty seventy eighty ninety"), 2)}
_SCALES = {
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
    "billion": 10**9,
    "dozen": 12,
    "decade": 10,
    "decades": 10,  # "four decades" is 40 years; "hundreds" and "dozens" count nothing exact
}
_ALONE = {
    "half": 0.5,
    "halved": 0.5,
    "quarter": 0.25,
    "twice": 2,
    "double": 2,
    "doubled": 2,
    "thrice": 3,
    "triple": 3,
    "tripled": 3,
    "quadruple": 4,
    "quadrupled": 4,
    "doubles": 2,
    "doubling": 2,
    "triples": 3,
    "tripling": 3,
    "quadruples": 4,
    "quadrupling": 4,
    "twofold": 2,
    "threefold": 3,
    "fourfold": 4,
    "fivefold": 5,
    "tenfold": 10,
}
_ALONE.update((w + "fold", n) for w, n in (*_UNITS.items(), *_TENS.items()) if n > 1)  # "sevenfold", "twentyfold"
#: Fraction words that are also ordinals: after "a" they are a fraction only before "of" or "as" ("a third
#: of them", "a fifth as much"); "a third set" counts sets.
_ORDINAL_TOO = _wordset("third thirds fourth fourths fifth fifths sixth sixths eighth eighths tenth tenths")
#: "A ratio of 7:11" states two values; elsewhere "7:11" is a time, a slot.
_RATIO = re.compile(r"(\bratios?\b[^.?!\d]{0,30})(\d+(?::\d+)+)\b", re.IGNORECASE)
_DENOMINATORS = {
    w + s: d
    for w, d in (
        ("half", 2),
        ("third", 3),
        ("quarter", 4),
        ("fourth", 4),
        ("fifth", 5),
        ("sixth", 6),
        ("eighth", 8),
        ("tenth", 10),
    )
    for s in ("", "s")
} | {"halves": 2}
#: A number right after one of these (or after "#") names a record, it does not count anything.
_ID_CUES = _wordset(
    "order orders ref reference account acct id invoice ticket tracking case no number confirmation booking "
    "reservation transaction serial customer member policy claim pnr sku item code pin"
)
_NUM_TOKEN = re.compile(r"#|\d[\w]*(?:[.,/:-]\d+)*|[^\W\d_]+(?:\d\w*)?|(?<![\w])\.\d+")
#: A digit token as ``_NUM_TOKEN`` cuts them, and the cue word (or "#") that may end the text before one.
_DIGITS = re.compile(r"(?<![\w.])\d\w*(?:[.,/:-]\d+)*")
_CUE_BEFORE = re.compile(r"(?<!\w)(?:#|(?:" + "|".join(sorted(_ID_CUES)) + r")[\s.:#-]{0,3})[\s#]*\Z", re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d").search
_WORD_NUMBERS = {*_UNITS, *_TENS, *_SCALES}
_NUMBERISH = {
    form
    for w in (*_WORD_NUMBERS, *_ALONE, *_DENOMINATORS)
    for form in (w, w.capitalize(), w.upper())
}  # fmt: skip
#: "Quarter" after these is a period, no fraction: "every quarter", "the last quarter" (not "the last quarter of");
#: a period may stand for 3 months or 4 a year.
_PERIOD_BEFORE = _wordset("the every each per last first second third fourth final next this that previous fiscal")
_PERIOD = re.compile(r"\b(?:" + "|".join(sorted(_PERIOD_BEFORE)) + r") quarter\b(?! of\b)")
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_UNIT = re.compile(r"(\d+)([a-z]{1,3})")


#: A count its own list spells out: "three main meals - breakfast, lunch, and dinner" states 3 only as the
#: list does, and another text may give the list alone ("breakfast, lunch and dinner").
_LIST_MARKS = (":", "(", " - ", "\u2013", "\u2014", " named ", " called ", " namely ", " including ")
_LIST_COUNT = re.compile(
    r"\b(two|three|four|five|six|seven|eight|nine|ten|[2-9]|10)((?:\s+[^\W\d_]+){1,5}?"
    r"(?:\s*[:(\u2013\u2014]|\s-|\s+(?:named|called|namely|including))\s*)"
    r"((?:(?!\s-\s)[^.!?;:()\u2013\u2014])+)",  # the list ends at a sentence's end, a bracket or a dash
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"\s*(?:,\s*(?:(and|or)\s+)?|\s(and|or|&)\s+)")
_LIST_WORDS = 3  # an item of more words ends the list: "..., and dinner, and also one more before bed"


def _listed(part: str) -> int:
    """How many items the list at the start of ``part`` has: short items cut by commas, the last one after
    "and" or "or" ("breakfast, lunch, and dinner" is 3); 0 when no list ends so."""
    pieces = _LIST_ITEM.split(part)
    # split() interleaves the two joiner groups: item, and-or, and-or, item, ...
    items, joins = pieces[0::3], [a or b for a, b in zip(pieces[1::3], pieces[2::3], strict=True)]
    count = 0
    for k, item in enumerate(items[1:], 1):
        if not 0 < len(item.split()) <= _LIST_WORDS or not 0 < len(items[0].split()) <= _LIST_WORDS:
            break
        if joins[k - 1]:
            count = k + 1
    return count


def _uncount(m: re.Match[str]) -> str:
    """The match without its count when the list after it has that many items."""
    n = m.group(1).lower()
    if _listed(m.group(3)) == (int(n) if n.isdigit() else _UNITS[n]):
        return m.group(2) + m.group(3)
    return m.group()


#: A value with the sum that gives it in brackets: "40 packages (10 less than 50)", "12 (3 times 4) eggs".
_WORKED = re.compile(
    r"\b(\d+(?:\.\d+)?)((?:\s+[^\W\d_]+){0,3}\s*\()"  # the value, up to three words, the bracket
    r"([^()\d]{0,30})(\d+(?:\.\d+)?)([^()\d]{1,30})(\d+(?:\.\d+)?)([^()\d]{0,30}\))"  # two values in it
)


def _unworked(m: re.Match[str]) -> str:
    """The match without its value when the two in brackets give it by one sum, difference, product or
    quotient: a rephrasing that works a step out in brackets states no value the original does not."""
    x, a, b = (Fraction(m.group(i)) for i in (1, 4, 6))
    worked = {a + b, abs(a - b), a * b}
    if a and b:
        worked |= {a / b, b / a}
    return "".join(m.group(2, 3, 4, 5, 6, 7)) if x in worked else m.group()


def _value(x: float) -> str:
    """A number's canonical spelling: ``5``, ``5.0`` and ``five`` are all ``"5"``."""
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _numeral(tok: str) -> float | None:
    """The value of one digit token, or ``None`` when it is a slot (a date, a time, a code, an identifier)."""
    if tok[0] == ".":
        return float("0" + tok)
    if _GROUPED.fullmatch(tok):
        return float(tok.replace(",", ""))
    if any(c in tok for c in ":-/") or tok.count(".") > 1:
        return None  # 2024-03-05, 10:30, 03/05/2024, 1.2.3 (a ratio "270/180" is split before this)
    if not tok.replace(".", "").isdecimal():  # "343⁷": a superscript is a digit to isdigit, not to float
        m = _UNIT.fullmatch(tok.lower())  # 5kg, 10am count; 3rd is an ordinal, A123 or 12AB34 codes
        return float(m.group(1)) if m and len(m.group(1)) < 6 and m.group(2) not in ("st", "nd", "rd", "th") else None
    digits = tok.split(".")[0]
    if (len(digits) >= 6 and not digits.endswith("00")) or (len(digits) >= 3 and digits[0] == "0"):
        return None  # a long digit run (an order or phone number), or one with a leading zero: a code
    return float(tok)


def _word_number(words: list[str]) -> float:
    """The value of a run of number words: "two hundred fifty" = 250, "three dozen" = 36."""
    total = current = 0.0
    for w in words:
        if w in _SCALES:
            current = max(current, 1.0) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0.0
        else:
            current += _UNITS.get(w, _TENS.get(w, 0))
    return total + current


def _new_number(last: str, word: str) -> bool:
    """Whether number word ``word`` right after ``last`` starts another number: "twenty two" is one (22),
    "two two-hour" and "three one-hour" are two, as are "twenty thirty"."""
    return (word in _UNITS and last in _UNITS) or (word in _TENS and last not in _SCALES)


def _digit_values(tok: str) -> list[float]:
    """Values of one digit token: "1/4" is 0.25, a ratio "270/180" is its two parts, a slot is none."""
    if tok.count("/") == 1:
        num, den = tok.split("/")
        if num.isdecimal() and den.isdecimal() and 0 < int(num) < int(den) <= 12:
            return [int(num) / int(den)]  # a proper fraction with a small denominator: a value
        parts = [num, den]
    else:
        parts = [tok]
    return [v for v in (_numeral(p) if p else None for p in parts) if v is not None]


_SLOT = " " + PLACEHOLDER + " "


def _slot(m: re.Match[str]) -> str:
    tok = m.group()
    at = m.start()
    if at >= 2 and m.string[at - 1] == "-" and m.string[at - 2].isalpha():
        return _SLOT  # a code: "COVID-19", "F-16"
    # fast paths for the common identifiers, the same answer as _digit_values gives: a date or a time
    # (no "/" that could make a fraction), a long digit run (an order number)
    if ("-" in tok or ":" in tok) and "/" not in tok:
        return _SLOT
    if len(tok) >= 6 and tok.isdecimal() and not tok.endswith("00"):
        return _SLOT
    if _digit_values(tok.lower()) and not _CUE_BEFORE.search(m.string, max(0, m.start() - 20), m.start()):
        return tok  # a quantity
    return _SLOT


def _slot_identifiers(text: str) -> str:
    """``text`` with every identifier (an order number, a date, a time, an ordinal, any number after
    "order", "#", "ref", "account" and the like) replaced by the neutral token :data:`PLACEHOLDER`:
    identifiers are slots that may differ between two copies of one case. Quantities stay."""
    return _DIGITS.sub(_slot, text) if _HAS_DIGIT(text) else text


def _quantities(raw: str) -> frozenset[str]:
    """The values a text reasons with, each once: :func:`_stated` as a set."""
    return frozenset(_stated(raw))


class _Read:
    """Values as :func:`_stated` reads them from ``toks``, each with the token it ends at, so a fraction
    right after a whole number joins it ("two and a half" is 2.5, "2 1/2" too) and a scale multiplies
    the value before it ("1 1/2 dozen" is 18)."""

    def __init__(self, toks: list[str]) -> None:
        self.toks = toks
        self.out: list[float] = []
        self.ends: list[int] = []  # the token each value of ``out`` ends at
        self.start = 0  # where the run of number words being read starts

    def add(self, value: float, end: int) -> None:
        self.out.append(value)
        self.ends.append(end)

    def extend(self, values: list[float], end: int) -> None:
        self.out += values
        self.ends += [end] * len(values)

    def _after_whole(self, start: int, joint: tuple[str, ...]) -> bool:
        """Whether the value read last is a whole number that ends right before ``start``, but for a
        ``joint`` word ("and" in "two and a half"; none in "2 1/2")."""
        gap = start - 1 - len(joint)
        if not self.out or self.ends[-1] != gap or self.out[-1] != int(self.out[-1]) or self.out[-1] < 1:
            return False
        return all(self.toks[gap + 1 + i].lower() == w for i, w in enumerate(joint))

    def fraction(self, value: float, start: int, end: int) -> None:
        """A fraction (tokens ``start``-``end``): joined to a whole number before it, unless it takes a part
        of something ("500 and a fifth as much", "a third of"), or of an hour in minutes ("half an hour" is
        30), or as it is."""
        part = self.toks[end + 1 : end + 2] in (["of"], ["as"])
        if not part and self._after_whole(start, ("and",) if self.toks[start - 1 : start] == ["and"] else ()):
            self.out[-1] += value  # "one and a half hours" is 1.5 hours, not 30 minutes
            self.ends[-1] = end
        else:
            self.add(value * _of_an_hour(self.toks, end), end)

    def run(self, value: float, end: int) -> None:
        """A run of number words (from :attr:`start`); one that starts with a scale multiplies the value
        right before it: "2 million", "1 1/2 dozen" (18), "half a dozen" (6; "half. A dozen" is two
        values: a capital "A" starts a sentence)."""
        at, last = self.start, self.ends[-1] if self.out else -9
        if self.toks[at].lower() in _SCALES and (
            last == at - 1 or (last == at - 2 and self.toks[at - 1] == "a" and self.out[-1] < 1)
        ):
            self.out[-1] *= value
            self.ends[-1] = end
        else:
            self.add(value, end)


def _stated(raw: str) -> list[str]:
    """The values a text reasons with, in the order it states them (a value stated twice is listed twice):
    digits, number words, fractions and percentages by value ("5" = "five" = "5.0", "1/4" = "a quarter" =
    "one-fourth" = "25%"), identifiers left out, and 1 left out ("an hour", "the first week", "peel one
    orange" say 1 without a digit).

    Identifiers are slots that may differ between two copies of one case: long digit runs, codes mixing
    letters and digits, dates, times and ordinals, and any number after "order", "#", "ref", "account" and
    the like. :func:`_quantities` counts each value once: a rephrasing may state once a number that the
    original states twice, and a different count is not a different value.
    """
    if ":" in raw:
        raw = _RATIO.sub(lambda m: m.group(1) + m.group(2).replace(":", " to "), raw)
    if any(mark in raw for mark in _LIST_MARKS):
        raw = _LIST_COUNT.sub(_uncount, raw)
        raw = _WORKED.sub(_unworked, raw)
    toks = _NUM_TOKEN.findall(_slot_identifiers(raw).replace("%", " percent "))
    hits = [k for k, t in enumerate(toks) if t[0].isdigit() or t[0] == "." or t in _NUMBERISH]
    if not hits:
        return []
    read = _Read(toks)
    words: list[str] = []
    for n, k in enumerate(hits):
        low = toks[k].lower()
        prev = toks[k - 1].lower() if k else ""
        scale = 0.01 if k + 1 < len(toks) and toks[k + 1].lower() == "percent" else 1.0  # 50% = half = 0.5
        following = toks[k + 1].lower() if n + 1 < len(hits) and hits[n + 1] == k + 1 else ""
        if low in _WORD_NUMBERS:
            if words and _new_number(words[-1], low):
                read.run(_word_number(words), k - 1)  # "three one-hour": 3, then 1
                words = []
            read.start = k if not words else read.start
            words.append(low)
        elif low in _DENOMINATORS and (words or (prev in ("a", "an") and _fraction_after_a(low, toks, k))):
            read.fraction((_word_number(words) or 1.0) / _DENOMINATORS[low], read.start if words else k - 1, k)
            words = []
        elif low in _ALONE and _ALONE[low] < 1:
            if not (low == "quarter" and prev in _PERIOD_BEFORE and toks[k + 1 : k + 2] != ["of"]):
                read.fraction(_ALONE[low], k - 1 if prev in ("a", "one") else k, k)  # "half", "and a half"
        elif low in _ALONE:
            read.add(_ALONE[low], k)
        elif low[0].isdigit() or low[0] == ".":
            values = [v * scale for v in _digit_values(low)]
            if len(values) == 1 and "/" in low and values[0] < 1:
                read.fraction(values[0], k, k)  # "2 1/2"
            else:
                read.extend(values, k)
        if words and following not in _WORD_NUMBERS and following not in _DENOMINATORS:
            read.run(_word_number(words) * scale, k)  # the run of number words ends here
            words = []
    return [v for v in map(_value, read.out) if v != "1"]


#: Words between a negation and what it negates: "no longer needs", "cannot be sold", "not even once".
_NEGATION_FILLER = _wordset("longer any anymore even yet really ever quite very too so much more all get got")
#: A negation whose word is unknown: nothing follows it in the text ("... or not").
_NEGATED_UNKNOWN = ""


def _fraction_after_a(word: str, toks: list[str], k: int) -> bool:
    """Whether ``word`` after "a" at ``toks[k]`` is a fraction: "a quarter", "a third of", not "a third set"."""
    return word not in _ORDINAL_TOO or (k + 1 < len(toks) and toks[k + 1].lower() in ("of", "as"))


def _of_an_hour(toks: list[str], k: int) -> float:
    """60 when the fraction at ``toks[k]`` is of an hour ("half an hour", "a quarter of an hour" are
    minutes: 30 and 15, as another text would state them), else 1."""
    after = [t.lower() for t in toks[k + 1 : k + 4] if t.lower() not in ("a", "an", "of")]
    return 60.0 if after[:1] in (["hour"], ["hours"]) else 1.0


def _negated(tokens: list[str]) -> frozenset[str]:
    """What the text negates: for each negation ("not", "never", "no", "don't"), the first content word
    after it as a name key (``_NEGATED_UNKNOWN`` when none follows). Empty: the text negates nothing."""
    out: set[str] = set()
    for k, t in enumerate(tokens):
        # "no", but not in "order no 5" (a number) or "oh no" (an exclamation); "don't" normalizes to "don t"
        if (
            t in _NEGATIONS
            or (
                t == "no"
                and not ((k + 1 < len(tokens) and tokens[k + 1][:1].isdigit()) or (k and tokens[k - 1] == "oh"))
            )
            or (t == "t" and k and tokens[k - 1] in _NT_STEMS)
        ):
            after = (w for w in tokens[k + 1 : k + 6] if _is_content(w) and w not in _NEGATION_FILLER)
            out.add(_name_key(next(after, _NEGATED_UNKNOWN)))
    return frozenset(out)


def _negation_differs(fa: _Facts, fb: _Facts) -> bool:
    """Whether one text negates what the other states plainly: one text negates and the other does not,
    and the word negated is in the other ("cancel" against "don't cancel") or unknown. A word negated in
    one text and absent from the other ("no longer needs" against "is done with") is a rephrasing the
    guard cannot read, so it is left to the other signals. Two texts that both negate agree."""
    if bool(fa.negated) == bool(fb.negated):
        return False
    mine, theirs = (fa, fb) if fa.negated else (fb, fa)
    return any(word == _NEGATED_UNKNOWN or word in theirs.keys for word in mine.negated)


def _name_key(token: str) -> str:
    """Fold plurals and possessives so "ATMs", "ATM's" and "ATM" (and "CDs" and "CD") are one name."""
    return token[:-1] if len(token) >= 3 and token.endswith("s") else token


def _names(raw: str) -> frozenset[str]:
    """Capitalized words that do not start a sentence ("Apple Pay", "Paris", "UK"), as name keys.

    Text in capitals or title case says nothing about names, so it yields none. ``raw`` has its
    placeholders blanked already: "<PERSON_1>" is not the name "person".
    """
    words = _WORD.findall(raw)
    caps = [w for w in words if w[:1].isupper()]
    if not caps or len(caps) * 2 > len(words):
        return frozenset()
    initial = {m.start(1) for m in _SENTENCE_START.finditer(raw)}
    out = set()
    for m in _WORD.finditer(raw):
        w = m.group()
        if w[:1].isupper() and m.start() not in initial:
            key = normalize(w)
            if key not in _NOT_NAMES and not key.isdigit():
                out.add(_name_key(key))
    return frozenset(out)


_BATCH = 1024
"""Blocks smaller than this are searched together, this many rows at a time: one matrix product, with
the pairs across blocks masked out, instead of one small search per block."""


def _knn(vecs: np.ndarray, k: int, exact_below: int, blocks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of every row (self excluded) among the rows of its own block (``blocks``: one
    integer per row; ``None``: one block): exact in blocks below ``exact_below`` rows, else usearch HNSW.

    Returns ``(index, cosine)`` arrays of shape ``(n, k)``, best first, ties by index; missing
    neighbours are ``-1``. Cosines are recomputed the same way on both paths, so a pair found by
    either gets the same score.
    """
    n = vecs.shape[0]
    k = min(k, n - 1)
    idx = np.full((n, max(k, 0)), -1, dtype=np.int64)
    if k <= 0:
        return idx, np.zeros(idx.shape, dtype=np.float64)
    labels = np.zeros(n, dtype=np.int64) if blocks is None else np.asarray(blocks, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    pending: list[np.ndarray] = []
    for rows in np.split(order, cuts):
        if rows.size < 2:
            continue
        if rows.size >= min(_BATCH, exact_below):
            found = _block_knn(vecs[rows], k, exact_below)
            idx[rows, : found.shape[1]] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
            continue
        if sum(p.size for p in pending) + rows.size > _BATCH:
            _batch_knn(vecs, labels, np.concatenate(pending), k, idx)
            pending = []
        pending.append(rows)
    if pending:
        _batch_knn(vecs, labels, np.concatenate(pending), k, idx)
    sim = np.empty(idx.shape, dtype=np.float64)
    for lo in range(0, n, 2048):  # (rows, k, dim) float64 blocks stay small
        blk = idx[lo : lo + 2048]
        sim[lo : lo + 2048] = np.einsum(
            "ij,ikj->ik", vecs[lo : lo + 2048].astype(np.float64), vecs[np.maximum(blk, 0)].astype(np.float64)
        )
    sim[idx < 0] = -np.inf
    o = np.lexsort((idx, -sim), axis=1)
    return np.take_along_axis(idx, o, axis=1), np.take_along_axis(sim, o, axis=1)


def _batch_knn(vecs: np.ndarray, labels: np.ndarray, rows: np.ndarray, k: int, idx: np.ndarray) -> None:
    """Exact top-``k`` of each of ``rows`` among those of ``rows`` in its own block, into ``idx``."""
    s = vecs[rows] @ vecs[rows].T
    lab = labels[rows]
    s[lab[:, None] != lab[None, :]] = -np.inf
    np.fill_diagonal(s, -np.inf)
    kk = min(k, rows.size - 1)
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    idx[rows, :kk] = np.where(np.isfinite(np.take_along_axis(s, top, axis=1)), rows[top], -1)


def _block_knn(vecs: np.ndarray, k: int, exact_below: int) -> np.ndarray:
    """Top-``k`` neighbours (local indices, ``-1`` where missing) of every row of one block."""
    n = vecs.shape[0]
    k = min(k, n - 1)
    idx = np.full((n, k), -1, dtype=np.int64)
    if n < exact_below:
        step = max(1, (1 << 24) // n)
        for lo in range(0, n, step):
            s = vecs[lo : lo + step] @ vecs.T
            s[np.arange(s.shape[0]), np.arange(lo, lo + s.shape[0])] = -np.inf
            idx[lo : lo + s.shape[0]] = np.argpartition(-s, k - 1, axis=1)[:, :k]
        return idx
    from usearch.index import Index

    # One thread for building: an HNSW graph built in parallel depends on thread timing, and dedup
    # promises the same answer for the same input. ef 64 builds and searches ~1.5x faster than 128 at
    # the same recall of close neighbours (bench_dedup --ann); scores are recomputed exactly after.
    index = Index(ndim=vecs.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=64, expansion_search=64)
    index.add(np.arange(n, dtype=np.uint64), vecs, threads=1)
    found = index.search(vecs, k + 1, threads=0)
    keys = np.asarray(found.keys).astype(np.int64).reshape(n, -1)
    valid = np.arange(keys.shape[1])[None, :] < np.asarray(found.counts).reshape(n, 1)  # type: ignore[union-attr]
    keys[~valid | (keys == np.arange(n)[:, None])] = -1
    # keep the k best that are not the row itself (usearch may return it anywhere among ties)
    order = np.argsort(keys < 0, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(keys, order, axis=1)


# --------------------------------------------------------------------------- union-find and the driver


class _Forest:
    """Union-find over trace indices that keeps the evidence of each merge and the loosest level used."""

    def __init__(self, parent: list[int]) -> None:
        self.parent = parent
        self.level: dict[int, Level] = {}

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def merge(
        self,
        score: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        why: Callable[[int], str],
        level: Level,
        sid: list[str],
        pairs: list[DupPair],
    ) -> None:
        """Kruskal order (best evidence first, ties by index): the reported forest is deterministic.

        ``why(k)`` words the evidence of edge ``k``; it is asked only for the edges that join two groups.
        """
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((hi, lo, -np.asarray(score, dtype=np.float64)))
        for k, x, y, s in zip(
            order.tolist(), lo[order].tolist(), hi[order].tolist(), score[order].tolist(), strict=True
        ):
            ra, rb = self.find(x), self.find(y)
            if ra == rb:
                continue
            r0, r1 = (ra, rb) if ra < rb else (rb, ra)
            self.parent[r1] = r0  # the smaller index (= smaller id) stays root
            self.level[r0] = max(
                self.level.get(ra, "exact"), self.level.get(rb, "exact"), level, key=_LEVEL_RANK.__getitem__
            )
            pairs.append(DupPair(sid[x], sid[y], level, round(s, 6), why(k)))

    def attach(self, heads: np.ndarray, members: np.ndarray, why: str, sid: list[str], pairs: list[DupPair]) -> None:
        """Join each root ``members[k]`` to the root ``heads[k] < members[k]`` at the near level, with
        Jaccard 1: no root is a member twice or both a member and a head, so no find and no sort."""
        for h, m in zip(heads.tolist(), members.tolist(), strict=True):
            self.parent[m] = h
            self.level[h] = "near"
            pairs.append(DupPair(sid[h], sid[m], "near", 1.0, why))

    def roots(self) -> np.ndarray:
        """Root of every index, by pointer jumping in numpy (no Python loop over all traces)."""
        return _roots(np.asarray(self.parent, dtype=np.int64))


Embed = Callable[[list[str]], np.ndarray]
"""``embed(texts)``: one vector per text, as rows of a 2-d array."""


def _check_inputs(
    ids: Sequence[str],
    texts: Sequence[Any],
    vectors: np.ndarray | None,
    embed: Embed | None,
    near: float | None,
    paraphrase: float | None,
) -> np.ndarray | None:
    if len(ids) != len(texts):
        raise DedupError(f"ids and texts differ in length: {len(ids)} ids, {len(texts)} texts")
    if not all(type(i) is str for i in ids):
        bad = next(i for i in ids if not isinstance(i, str))
        raise DedupError(f"ids must be strings, got {type(bad).__name__}")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise DedupError(f"duplicate id {dup!r}: each trace must appear once")
    for name, t in (("near", near), ("paraphrase", paraphrase)):
        if t is not None and not 0.0 < t <= 1.0:
            raise DedupError(f"{name} threshold must be in (0, 1], got {t}")
    if vectors is not None and embed is not None:
        raise DedupError("give vectors or embed, not both")
    if vectors is None:
        return None
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(ids):
        raise DedupError(f"vectors must have shape ({len(ids)}, dim), got {vecs.shape}")
    return vecs


def dedup(
    ids: Sequence[str],
    texts: Sequence[str | bytes | None],
    *,
    near: float | None = 0.8,
    paraphrase: float | None = PARAPHRASE,
    vectors: np.ndarray | None = None,
    embed: Embed | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    k: int = 10,
    exact_knn_below: int = 20_000,
    bucket_cap: int = 16,
) -> DedupResult:
    """Group duplicate traces at three levels and pick a representative for each group.

    Texts are compared as :func:`canonical` makes them (normalized, every scrub placeholder one neutral
    token), and quantities by value ("5" = "five" = "5.0"; see ``_quantities`` for what counts):

    - exact: equal canonical text;
    - near (``near`` = Jaccard threshold, ``None`` to skip): texts equal but for their identifiers (order
      number, date, a number after "order" or "#": each one neutral slot) join at Jaccard 1; among one
      text of each such class, MinHash + LSH over character 5-grams, verified by exact Jaccard, and only
      between texts with the same quantities;
    - paraphrase (``paraphrase`` = cosine threshold; runs when ``vectors`` or ``embed`` is given):
      mutual top-``k`` neighbours whose quantities, negation and names agree (a placeholder against a
      name is unknown, not different) and whose cosine reaches the threshold less the relief that
      shared quantities, shared words and the same values in the same order earn (see ``_needed``). ``embed`` is asked for one text per
      exact or near group only.

    Groups are the transitive closure of the accepted pairs. The representative is the text asked
    most often (the largest exact group), ties broken by the smallest id. The result does not depend
    on the order of the input rows.
    """
    vecs = _check_inputs(ids, texts, vectors, embed, near, paraphrase)
    report = progress or (lambda stage, done, total: None)
    n = len(ids)
    t0 = time.perf_counter()
    order = sorted(range(n), key=ids.__getitem__)
    sid = [ids[i] for i in order]
    stats: dict[str, Any] = {"traces": n}

    quantities: Quantities = functools.lru_cache(maxsize=None)(_quantities_of)
    report("normalize", 0, n)
    norm = [canonical(texts[i]) for i in order]
    report("normalize", n, n)

    # exact: one node per distinct canonical text; the node is its smallest index (= smallest id)
    report("exact", 0, n)
    first: dict[str, int] = {}
    node_of = [first.setdefault(t, i) for i, t in enumerate(norm)]
    weight = np.bincount(np.asarray(node_of, dtype=np.int64), minlength=n)
    reasons = {root: _exact_reason(norm[root]) for root in first.values() if weight[root] >= 2}
    pairs = [DupPair(sid[root], sid[i], "exact", 1.0, reasons[root]) for i, root in enumerate(node_of) if root != i]
    forest = _Forest(node_of)
    nodes = [i for i in first.values() if norm[i]]  # distinct non-empty texts, ascending
    stats["exact_groups"] = len(reasons)
    stats["seconds_exact"] = time.perf_counter() - t0
    report("exact", n, n)

    if near is not None and len(nodes) >= 2:
        report("near", 0, len(nodes))
        _near_stage(
            forest, nodes, norm, [texts[order[i]] for i in nodes], near, seed, bucket_cap, sid, pairs, stats, quantities
        )
        report("near", len(nodes), len(nodes))

    rejected: list[DupPair] = []
    if paraphrase is not None and (vecs is not None or embed is not None):
        t2 = time.perf_counter()
        members, block = _compared(_speakers(forest, nodes, weight), [texts[i] for i in order], quantities, stats)
        if vecs is not None:
            v = vecs[[order[i] for i in members]]
        else:
            v = np.asarray(embed([_as_str(texts[order[i]]) for i in members]), dtype=np.float32)  # type: ignore[misc]
            stats["embedded"] = len(members)
        raw = [texts[order[i]] for i in members]
        rejected = _paraphrase_stage(
            forest,
            (v, block),
            members,
            norm,
            raw,
            (paraphrase, k, exact_knn_below),
            sid,
            pairs,
            stats,
            report,
            quantities,
        )
        stats["seconds_paraphrase"] = time.perf_counter() - t2

    return _result(forest, sid, weight, pairs, rejected, stats, t0)


Quantities = Callable[[Any], frozenset[str]]
"""``quantities(text)``: :func:`_quantities` of a text as given, remembered for the length of one dedup."""


def _quantities_of(text: Any) -> frozenset[str]:
    """:func:`_quantities` of a text as given (str, bytes or ``None``): a :data:`Quantities` without memory."""
    return _quantities(_raw(text))


def _quantity_groups(raw: list[Any], quantities: Quantities) -> np.ndarray:
    """One integer per text: equal when the texts' quantities are equal."""
    keyed: dict[frozenset[str], int] = {}
    return np.fromiter((keyed.setdefault(quantities(t), len(keyed)) for t in raw), np.int64, len(raw))


def _block_key(text: Any, quantities: Quantities) -> frozenset[Fraction]:
    """The values a text's block is keyed on: its quantities and ordinal values (see :func:`_facts`) as
    :func:`_kin` classes, less the classes of values words may imply (``_IMPLIABLE_KIN``)."""
    stated = quantities(text)
    if _HAS_DIGIT(_as_str(text)):
        stated = stated | _ordinals(normalize(text).split())
    return frozenset(_kin(v) for v in stated) - _IMPLIABLE_KIN


def _quantity_blocks(raw: list[Any], quantities: Quantities) -> np.ndarray:
    """One integer per text: equal when the texts' quantities agree but for values that words may imply
    ("60" for "an hour", "2" for "both"; see ``_IMPLIED``) and for reciprocals ("3 times fewer" against
    "a third of": see :func:`_kin`). Two texts in different blocks state different values, so the
    paraphrase stage never compares them (``_numbers_differ`` would refuse the pair)."""
    keyed: dict[frozenset[Fraction], int] = {}
    return np.fromiter((keyed.setdefault(_block_key(t, quantities), len(keyed)) for t in raw), np.int64, len(raw))


def _near_stage(
    forest: _Forest,
    nodes: list[int],
    norm: list[str],
    raw: list[Any],
    near: float,
    seed: int,
    bucket_cap: int,
    sid: list[str],
    pairs: list[DupPair],
    stats: dict[str, Any],
    quantities: Quantities,
) -> None:
    """Near-duplicate pairs among the distinct texts ``nodes`` (``raw``: their texts), confined to texts
    with equal quantities.

    Texts equal but for their identifiers (each one neutral slot) join at once, at Jaccard 1; the LSH then
    sees one text of each such class, as written, so templated traffic (one template, a new order number
    each time) costs one text per template fill, not one per message, and a corpus without identifiers
    gets the pairs it always got.
    """
    t1 = time.perf_counter()
    slotted = [canonical(_slot_identifiers(_as_str(t))) for t in raw]
    head_of: dict[str, int] = {}
    head = np.fromiter((head_of.setdefault(t, k) for k, t in enumerate(slotted)), np.int64, len(slotted))
    node = np.asarray(nodes, dtype=np.int64)
    same = np.flatnonzero(head != np.arange(head.size))
    slots = "the same text but for identifiers (order numbers, dates, codes); quantities agree"
    forest.attach(node[head[same]], node[same], slots, sid, pairs)
    heads = np.fromiter(head_of.values(), np.int64, len(head_of))
    stats["near_slot_classes"] = int(heads.size)
    found = near_duplicate_pairs(
        [norm[i] for i in node[heads].tolist()],
        near,
        seed=seed,
        bucket_cap=bucket_cap,
        groups=lambda rows: _quantity_groups([raw[k] for k in heads[rows].tolist()], quantities),
    )
    est, jac = found.estimate, found.jaccard

    def why(k: int) -> str:
        return f"Jaccard of character 5-grams {jac[k]:.3f} (MinHash estimate {est[k]:.3f}) >= {near}; quantities agree"

    forest.merge(jac, node[heads[found.i]], node[heads[found.j]], why, "near", sid, pairs)
    stats.update({f"near_{key}": v for key, v in found.stats.items()})
    stats["seconds_near"] = time.perf_counter() - t1


def _paraphrase_stage(
    forest: _Forest,
    vb: tuple[np.ndarray, np.ndarray],
    members: list[int],
    norm: list[str],
    raw: list[Any],
    knobs: tuple[float, int, int],
    sid: list[str],
    pairs: list[DupPair],
    stats: dict[str, Any],
    report: Progress,
    quantities: Quantities,
) -> list[DupPair]:
    """Paraphrase pairs among one text per group (``members``; ``vb``: their vectors and quantity blocks,
    neighbours are searched inside a block); returns the refused pairs.

    ``knobs``: the cosine threshold, ``k`` neighbours, and the size below which search is exact.
    """
    threshold, k, exact_knn_below = knobs
    v, block = vb
    lengths = np.linalg.norm(v, axis=1)
    usable = np.flatnonzero(np.isfinite(lengths) & (lengths > 0))
    report("paraphrase", 0, len(usable))
    rejected: list[DupPair] = []
    if usable.size >= 2:
        nbr, cos = _knn(v[usable] / lengths[usable, None], k, exact_knn_below, block[usable])
        node = [members[u] for u in usable]
        edges, rejected = _paraphrase_edges(
            nbr, cos, threshold, node, norm, [raw[u] for u in usable.tolist()], sid, k, quantities
        )
        score = np.array([e[0] for e in edges], dtype=np.float64)
        forest.merge(
            score,
            np.array([e[1] for e in edges], dtype=np.int64),
            np.array([e[2] for e in edges], dtype=np.int64),
            lambda i: edges[i][3],
            "paraphrase",
            sid,
            pairs,
        )
        stats["paraphrase_candidates"] = len(edges) + len(rejected)
        stats["paraphrase_rejected"] = len(rejected)
    report("paraphrase", len(usable), len(usable))
    return rejected


def _compared(
    speakers: list[int], texts: list[Any], quantities: Quantities, stats: dict[str, Any]
) -> tuple[list[int], np.ndarray]:
    """The speakers (indices into ``texts``) the paraphrase stage compares, with their quantity blocks:
    a text alone in its block has no candidate, so it is neither embedded nor searched."""
    block = _quantity_blocks([texts[i] for i in speakers], quantities)
    keep = np.flatnonzero(np.bincount(block)[block] >= 2)
    members, block = [speakers[i] for i in keep.tolist()], block[keep]
    stats.update(
        paraphrase_speakers=len(speakers), paraphrase_compared=len(members), paraphrase_blocks=len(set(block.tolist()))
    )
    return members, block


def _speakers(forest: _Forest, nodes: list[int], weight: np.ndarray) -> list[int]:
    """One node per component, ascending: its heaviest exact group (ties: the smallest index)."""
    speaker: dict[int, int] = {}
    for i in nodes:
        r = forest.find(i)
        if r not in speaker or weight[i] > weight[speaker[r]]:
            speaker[r] = i
    return sorted(speaker.values())


def _exact_reason(norm: str) -> str:
    if not norm:
        return "both texts are empty after normalization"
    return f"identical after normalization (sha256 {sha256_hex(norm)[:12]})"


def _paraphrase_edges(
    nbr: np.ndarray,
    cos: np.ndarray,
    threshold: float,
    node: list[int],
    norm: list[str],
    raw: list[Any],
    sid: list[str],
    k: int,
    quantities: Quantities,
) -> tuple[list[tuple[float, int, int, str]], list[DupPair]]:
    """Verify each neighbour pair once that could pass; return accepted edges and rejected pairs."""
    neigh = [set(row[row >= 0].tolist()) for row in nbr]
    edges: list[tuple[float, int, int, str]] = []
    rejected: list[DupPair] = []
    cache: dict[int, _Facts] = {}

    def facts(u: int) -> _Facts:
        f = cache.get(u)
        if f is None:
            f = cache[u] = _facts(norm[node[u]], raw[u], quantities(raw[u]))
        return f

    floor = threshold - _MAX_RELIEF
    seen: set[tuple[int, int]] = set()
    for u in range(nbr.shape[0]):
        for w, c in zip(nbr[u].tolist(), cos[u].tolist(), strict=True):
            if w < 0 or c < floor:
                continue
            a, b = (u, w) if u < w else (w, u)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            fa, fb = facts(a), facts(b)
            need = _needed(threshold, fa, fb)
            if c < need:
                continue  # below what its evidence needs: not a candidate at all
            why = _refusal(fa, fb, mutual=a in neigh[b] and b in neigh[a])
            ia, ib = node[a], node[b]
            if why:
                rejected.append(
                    DupPair(sid[ia], sid[ib], "paraphrase", round(c, 6), f"cosine {c:.3f} >= {need:.3g} but {why}")
                )
            else:
                edges.append((c, ia, ib, f"cosine {c:.3f} >= {need:.3g}; mutual top-{k} neighbours; {_agree(fa)}"))
    rejected.sort(key=lambda p: (p.a, p.b))
    return edges, rejected


@dataclass(frozen=True, slots=True)
class _Facts:
    keys: frozenset[str]  # every token as a name key, to look names up in
    words: frozenset[str]  # content words (plurals folded, numbers left out), for overlap
    quantities: frozenset[str]
    negated: frozenset[str]  # what it negates (see _negated)
    names: frozenset[str]
    unknown: bool  # has a placeholder: a name missing from it may be hidden behind one
    implied: frozenset[str]  # values its words imply without a number: "an hour" may be 60 minutes
    raw: str  # the text as the guards read it (placeholders blanked), for what is read only when asked


def _facts(norm: str, text: Any, quantities: frozenset[str] | None = None) -> _Facts:
    """What the guards read in one text (``quantities``: its :func:`_quantities`, when known already).
    Its quantities here include the values ordinals above any day of a month say ("his 45th birthday" is
    45: see :func:`_ordinals`); the near stage leaves ordinals out, as identifiers."""
    toks = norm.split()
    distinct = set(toks)
    raw = _raw(text)
    return _Facts(
        frozenset(map(_name_key, distinct)),
        frozenset(_name_key(t) for t in distinct if _is_content(t)),
        (_quantities(raw) if quantities is None else quantities) | _ordinals(distinct),
        _negated(toks),
        _names(raw),
        PLACEHOLDER in norm,
        frozenset(v for t in distinct if t != "hour" or _hour_implies(norm) for v in _IMPLIED_ALL.get(t, ()))
        | _implied_by(norm),
        raw,
    )


_HOUR = re.compile(r"\bhour\b")
_HOUR_IN_MINUTES = re.compile(r"\b(?:half|quarters?|thirds?)\s+(?:of\s+)?(?:an\s+)?hour\b")


def _hour_implies(norm: str) -> bool:
    """Whether "hour" in ``norm`` may stand for 60 minutes: not when every "hour" is part of a fraction
    of an hour that states minutes already ("half an hour" is 30, not 30 and 60)."""
    return len(_HOUR.findall(norm)) > len(_HOUR_IN_MINUTES.findall(norm))


def _is_content(token: str) -> bool:
    """Words that count for overlap: not function words, placeholders or numbers (compared as values)."""
    return (
        len(token) > 1
        and token not in _NOT_NAMES
        and token not in _NUMBERISH
        and not _HAS_DIGIT(token)
        and token != PLACEHOLDER
    )


@functools.lru_cache(maxsize=1 << 16)  # a caller checks one text against several: its facts are read once
def _facts_of(text: str) -> _Facts:
    return _facts(canonical(text), text)


def paraphrase_verdict(
    a: str, b: str, cos: float, threshold: float = PARAPHRASE, guards: Collection[str] = GUARDS
) -> tuple[bool, str]:
    """Whether two texts at cosine ``cos`` are paraphrases by the guards :func:`dedup` applies (``guards``:
    the same numbers, negation and names; and the cosine their word overlap and shared quantities ask for),
    with why. For callers that find their candidate pairs another way (contamination: a tray against a
    corpus)."""
    fa, fb = _facts_of(a), _facts_of(b)
    need = _needed(threshold, fa, fb)
    if cos < need:
        return False, f"cosine {cos:.3f} < {need:.3g}"
    why = _refusal(fa, fb, mutual=True, guards=guards)
    return (
        (False, f"cosine {cos:.3f} >= {need:.3g} but {why}")
        if why
        else (True, f"cosine {cos:.3f} >= {need:.3g}; {_agree(fa)}")
    )


def guard_refusal(a: str, b: str, guards: Collection[str] = GUARDS) -> str:
    """Why ``guards`` tell two texts apart whatever their cosine ("numbers differ", ...); empty if they do not.
    For callers that decided on closeness another way (contamination: a window that stands out)."""
    return _refusal(_facts_of(a), _facts_of(b), mutual=True, guards=guards)


def _agree(f: _Facts) -> str:
    if f.quantities:
        return f"{len(f.quantities)} quantities, negation and names agree"
    return "numbers, negation and names agree"


#: A time stated in one unit may be stated in a smaller one elsewhere: "2 weeks" is 14 days, "3 hours" 180
#: minutes, "5 years" 60 months.
_IN_SMALLER = {
    "minute": (60,),
    "hour": (60,),
    "day": (24,),
    "week": (7,),
    "fortnight": (14,),
    "month": (30, 4),
    "year": (12, 52, 365),
    "decade": (10,),
}
_YEAR = tuple(map(str, _IN_SMALLER["year"]))
#: Words that say a number without a digit, and the values they may stand for in another text: "an hour"
#: is 60 minutes, "a week" 7 days, "both" 2. A value one text states and the other only implies this way
#: is unknown, not different.
_IMPLIED: dict[str, tuple[str, ...]] = {
    # one of a time unit in its smaller units ("a decade" is no word here: it states 10, see _SCALES)
    **{unit: tuple(map(str, factors)) for unit, factors in _IN_SMALLER.items() if unit != "decade"},
    "weekly": ("7",),
    "fortnight": ("14", "2"),
    "yearly": _YEAR,
    "annual": _YEAR,
    "annually": _YEAR,
    "both": ("2",),
    "pair": ("2",),
    "couple": ("2",),
    "twins": ("2",),
    "nickel": ("5",),
    "dime": ("10",),
}
#: More such words, whose values stay in dedup's block keys (``_IMPLIABLE``: a 3 left out of the keys would put
#: every templated day count in one block): a period ("quarterly" is every 3 months, 4 a year; "bi-monthly" says
#: 2; "every quarter": see :func:`_implied_by`), bills by their value ("ten twenties" are $20 bills), an age's
#: decade ("in his forties").
_ALSO_IMPLIED: dict[str, tuple[str, ...]] = {
    "quarterly": ("3", "4"),
    "bi": ("2",),
    "biweekly": ("2", "14"),
    "bimonthly": ("2",),
    "biannual": ("2",),
    "biannually": ("2",),
    "semiannual": ("2", "6"),
    "semiannually": ("2", "6"),
    "fortnightly": ("14", "2"),
    "fives": ("5",),
    "tens": ("10",),
    "hundreds": ("100",),
    **{w + "ies": (str(n),) for w, n in (("twent", 20), ("thirt", 30), ("fort", 40), ("fift", 50))},
}


_IMPLIABLE = frozenset(v for values in _IMPLIED.values() for v in values)
_IMPLIED_ALL = _IMPLIED | _ALSO_IMPLIED
_AMOUNT_OF = re.compile(
    r"\b(\d+(?:\.\d+)?|"
    + "|".join(sorted(_UNITS.keys() | _TENS.keys(), key=len, reverse=True))
    + r") ("
    + "|".join(_IN_SMALLER)
    + r")s?\b"
)
_ORDINAL_WORDS = {
    w: i
    for i, w in enumerate(_wordlist("second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"), 2)
}
#: Nouns an ordinal labels rather than counts: "the third phase" is "phase 3", "sixth grade" is "grade six";
#: "the second stop" says no 2 that "2 more people got on" could be.
_LABELS = _wordset(
    "stage stages phase phases grade level chapter step round part section lesson episode season volume act "
    "scene edition floor tier"
)
#: "A third" before neither "of", "as" nor a label ("a sixth grade") may be a fraction ("only a third accept") or
#: an ordinal ("a third set"): it states no value (see :func:`_fraction_after_a`) but may stand for its fraction
#: in another text.
_A_FRACTION_MAYBE = _wordset("third fourth fifth sixth eighth tenth")
_NOT_A_FRACTION = _LABELS | {"of", "as"}
#: "the 1980s" and "the 80s" name one decade.
_DECADE = re.compile(r"\b(?:(1[89]|20)(\d)0|(\d)0)s\b")


@functools.lru_cache(maxsize=1 << 14)
def _implied_by(norm: str) -> frozenset[str]:
    """Values normalized text ``norm`` implies without stating them, beyond single words (``_IMPLIED``): an
    amount of time in smaller units ("2 weeks": 14 days), the number of an ordinal that labels (``_LABELS``:
    "the third phase" is stage 3, "sixth grade" grade six; see :func:`_ordinals` for those it states), the
    other spelling of a decade ("1980s": 80s), zero in "nonzero", 3 months or 4 a year in a quarter that is a
    period ("every quarter", ``_PERIOD``), and the fraction "a third" may be (``_A_FRACTION_MAYBE``)."""
    out: set[str] = set()
    for m in _AMOUNT_OF.finditer(norm):
        n = float(m.group(1)) if m.group(1)[0].isdigit() else _UNITS.get(m.group(1), _TENS.get(m.group(1), 0))
        out.update(_value(n * f) for f in _IN_SMALLER[m.group(2)])
    toks = norm.split()
    out.update(str(_ORDINAL_WORDS[t]) for t, nxt in itertools.pairwise(toks) if t in _ORDINAL_WORDS and nxt in _LABELS)
    for m in _DECADE.finditer(norm):
        out.update((m.group(2) + "0",) if m.group(1) else (f"19{m.group(3)}0", f"20{m.group(3)}0"))
    if "nonzero" in norm:
        out.add("0")
    if "quarter" in norm and _PERIOD.search(norm):
        out.update(("3", "4"))
    out.update(
        _value(1 / _DENOMINATORS[t])
        for a, t, nxt in zip(toks, toks[1:], [*toks[2:], ""], strict=False)
        if a == "a" and t in _A_FRACTION_MAYBE and nxt not in _NOT_A_FRACTION
    )
    return frozenset(out)


#: An ordinal above any day of a month says a value: "his 45th birthday" is 45 years (up to 31 it is
#: more often a date, a slot; 1000 and above an identifier).
_ORDINAL = re.compile(r"(\d{2,3})(?:st|nd|rd|th)")


def _ordinals(tokens: Collection[str]) -> frozenset[str]:
    """Values normalized ``tokens`` say as ordinals ("45th": 45), from 32 to 999."""
    out = set()
    for t in tokens:
        m = _ORDINAL.fullmatch(t) if t[:1].isdigit() else None
        if m and 32 <= int(m.group(1)) <= 999:
            out.add(m.group(1))
    return frozenset(out)


@functools.lru_cache(maxsize=1 << 14)
def _kin(value: str) -> Fraction:
    """A value's class under reciprocals: 3 and 1/3 ("3 times fewer", "a third of"), 2 and 0.5 ("twice
    as old", "half the age") share one. The smaller of the value and its reciprocal, as an exact fraction
    (values are spelled to 6 decimals: 0.333333 is 1/3)."""
    x = Fraction(value).limit_denominator(10_000)
    return min(x, 1 / x) if x > 0 else x


#: A count that refers back to a set named before ("all three cities", "the three recipes"), and a list of
#: three or more short members ("Toulouse, Charleston, and Seattle") that may name that set in its place.
_REFERRED = re.compile(r"\b(?:all|the|these|those) (three|four|five|six|seven|eight|nine|ten|[3-9])\b", re.I)
_MEMBER = r"[^\W\d_]+(?: [^\W\d_]+){0,2}"
_LISTING = re.compile(rf"{_MEMBER}(?:, {_MEMBER})+,? (?:and|or) {_MEMBER}")
_LISTING_CUT = re.compile(r",? (?:and|or) |, ")


def _listed_instead(fa: _Facts, fb: _Facts, only_a: frozenset[str]) -> frozenset[str]:
    """The values of ``only_a`` that ``fa`` states once, as a count referring back ("all three cities"), where
    ``fb`` names as many members in one list: the other text named the set, not its size."""
    if not only_a or "," not in fb.raw:
        return frozenset()
    referred = {_value(_UNITS.get(m.group(1).lower()) or float(m.group(1))) for m in _REFERRED.finditer(fa.raw)}
    if not referred & only_a:
        return frozenset()
    sizes = {_value(len(_LISTING_CUT.split(m.group()))) for m in _LISTING.finditer(fb.raw)}
    stated = Counter(_stated(fa.raw))
    return frozenset(v for v in referred & only_a & sizes if stated[v] == 1)


#: The values a block key leaves out: those single words may imply (``_IMPLIED``). Not the small counts a
#: labelling ordinal or a list's own count may leave unstated: templated traffic states its day counts (2-9)
#: in digits, and one block for all of them fills each text's nearest neighbours with its own template's other
#: counts, refused, in place of its paraphrases (bench_templated.py: 3,551 → 4,863 representatives of 30,000).
_IMPLIABLE_KIN = frozenset(map(_kin, _IMPLIABLE))


def _numbers_differ(fa: _Facts, fb: _Facts) -> bool:
    """Whether two texts state different quantities: a value one states and the other neither states, nor
    implies in words ("an hour" for 60 minutes, "both" for 2; see ``_IMPLIED``), nor states as its
    reciprocal in place of it ("a third of" for "3 times fewer") is a different case."""
    qa, qb = fa.quantities, fb.quantities
    if qa == qb:
        return False
    # a value the other text writes as an identifier or a range ("order 42", "1916-1919") is unknown there
    only_a, only_b = qa - qb - _slots(fb), qb - qa - _slots(fa)
    only_a, only_b = only_a - _listed_instead(fa, fb, only_a), only_b - _listed_instead(fb, fa, only_b)
    if not only_a and not only_b:
        return False
    if _unknown(only_a, fb, only_b) and _unknown(only_b, fa, only_a):
        return False
    if only_a and only_b:
        return True
    # counted with repeats: a value one text states more often than the other, once more as a ratio, may
    # that time be stated in the other as its reciprocal ("twice as old ... in 2 years" against "half his
    # age ... in two years": 2 twice, once as "twice", against 2 and 0.5). Only where the one text adds
    # values and the other none: two texts that each state a value the other lacks are told apart above.
    adds, other = (fa, fb) if only_a else (fb, fa)
    return not _unknown(only_a | only_b, other, _stated_more(other, adds))


#: A token of a formula: it holds an operator or a bracket ("x^3", "Z_3[x]/(x^3", "sqrt(2)"); a lone
#: operator between two such tokens joins them into one formula.
_FORMULA_TOKEN = re.compile(r"[\^*=/|<>_()\[\]{}\\]")
_OPERATORS = frozenset(["+", "-", "*", "=", "x", "/", "^", "<=", ">=", "<", ">", "≤", "≥", "−"])
#: Two formulas this alike, but not the same, are the same expression with something changed.
FORMULA_ALIKE = 0.7


def _formula_token(t: str) -> bool:
    return bool(_FORMULA_TOKEN.search(t)) and any(c.isalnum() for c in t)


@functools.lru_cache(maxsize=1 << 14)
def _formulas(raw: str) -> frozenset[str]:
    """The formulas ``raw`` writes, lower-cased with spaces taken out: "Q(sqrt(2) + sqrt(3))" is
    ``q(sqrt(2)+sqrt(3))``."""
    out: set[str] = set()
    run: list[str] = []
    toks = raw.split()
    for k, t in enumerate(toks):
        glue = t in _OPERATORS and run and k + 1 < len(toks) and _formula_token(toks[k + 1])
        if glue or _formula_token(t):
            run.append(t)
        if run and (run[-1] is not t or t[-1] in ",;:?!" and _closed("".join(run))):  # a word or a comma ends it
            out.add("".join(run))
            run = []
    if run:
        out.add("".join(run))
    return frozenset(map(_bare, out))


def _closed(text: str) -> bool:
    """Whether every bracket opened in ``text`` is closed: a comma inside "Q(sqrt(2), sqrt(3))" ends nothing."""
    return text.count("(") <= text.count(")") and text.count("[") <= text.count("]")


def _bare(formula: str) -> str:
    """A formula lower-cased, without the punctuation around it and one pair of brackets around it all."""
    f = formula.strip(".,;:?!|").lower()
    return f[1:-1] if f[:1] == "(" and f[-1:] == ")" and f.count("(") == f.count(")") else f


def _formulas_differ(a: str, b: str) -> bool:
    """Whether the two texts write one formula two ways that differ: "Q(sqrt(2) + sqrt(3))" against
    "Q(sqrt(2), sqrt(3))", "x^3 + cx^2 + 1" against "x^3 + x^2 + c" are other questions. A formula only one
    text has, with nothing like it in the other, is not told apart: a rephrasing may say it in words; nor is
    one that holds the other ("a*b = a" against "a*b equals a")."""
    fa, fb = _formulas(a), _formulas(b)
    if not fa or not fb or fa == fb:
        return False
    only_b = fb - fa
    return any(
        f not in g and g not in f and SequenceMatcher(None, f, g).ratio() >= FORMULA_ALIKE
        for f in fa - fb
        for g in only_b
    )


@functools.lru_cache(maxsize=1 << 14)
def _counts(raw: str) -> tuple[Counter[str], Counter[str]]:
    """How many times ``raw`` states each of its values (see :func:`_stated`), and how many of those times
    as a ratio: "twice", "half", "3 times", "a third"."""
    toks = normalize(raw).split()
    ratios: Counter[str] = Counter()
    for k, t in enumerate(toks):
        prev = toks[k - 1] if k else ""
        if t in _ALONE:
            ratios[_value(_ALONE[t])] += 1
        elif t in _DENOMINATORS and prev in ("a", "an", "one"):
            ratios[_value(1 / _DENOMINATORS[t])] += 1
        elif t == "times" and (prev in _UNITS or prev.isdecimal()):
            ratios[_value(_UNITS[prev] if prev in _UNITS else float(prev))] += 1
    return Counter(_stated(raw)), ratios


def _stated_more(fa: _Facts, fb: _Facts) -> frozenset[str]:
    """The values both texts state that ``fa`` states more times than ``fb``, and more times as a ratio."""
    (ca, ra), (cb, rb) = _counts(fa.raw), _counts(fb.raw)
    return frozenset(v for v, n in ra.items() if 0 < cb[v] < ca[v] and rb[v] < n)


#: A whole number on its own: not a piece of a decimal, a price, a fraction, a percentage or a grouped
#: number ("1.5", "$2.50", "1/4", "2%", "1,000").
_DIGIT_RUN = re.compile(r"(?<![\d.,/])\d+(?![\d%]|[.,/]\d)")


def _slots(f: _Facts) -> frozenset[str]:
    """Whole numbers a text writes that it does not count as quantities: identifiers ("order 42", "#7")
    and the parts of codes and ranges ("1916-1919")."""
    return frozenset(_DIGIT_RUN.findall(f.raw)) - f.quantities


def _unknown(values: frozenset[str], other: _Facts, in_place: frozenset[str]) -> bool:
    """Whether each of ``values`` is one ``other`` implies, or states as its reciprocal among ``in_place``
    (the values only ``other`` states: a reciprocal of a value both state explains nothing)."""
    if values <= other.implied:
        return True
    kin = {_kin(v) for v in in_place}
    return all(v in other.implied or _kin(v) in kin for v in values)


def _overlap(fa: _Facts, fb: _Facts) -> float:
    """Jaccard of the two texts' content words."""
    union = len(fa.words | fb.words)
    return len(fa.words & fb.words) / union if union else 0.0


def _refusal(fa: _Facts, fb: _Facts, *, mutual: bool, guards: Collection[str] = GUARDS) -> str:
    """Why two texts that embed close together are not paraphrases; empty if they may be."""
    if not mutual:
        return "not mutual nearest neighbours"
    if "numbers" in guards and _numbers_differ(fa, fb):
        return "numbers differ"
    if "numbers" in guards and _formulas_differ(fa.raw, fb.raw):
        return "formulas differ"
    if "negation" in guards and _negation_differs(fa, fb):
        return "one is negated"
    if "names" in guards and _names_differ(fa, fb):
        return "names differ"
    return ""


#: Shared quantities that vouch for a name only one text has: two texts stating the same values, three or
#: more of them beyond the small counts every problem has (whole numbers up to 12), are one problem told
#: twice, and a name one of them adds ("PCs" for "computers", "December" for "the following month") is a
#: rephrasing, not another case. Small counts alone vouch for nothing: two different word problems often
#: share {2, 5, 8, 10}.
NAMES_VOUCHED_BY = 3


def _distinctive(value: str) -> bool:
    """A value rarer than the small counts (whole numbers up to 12) that most word problems state."""
    return not (value.isdecimal() and int(value) <= 12)


def _names_differ(fa: _Facts, fb: _Facts) -> bool:
    """Whether one text names what the other does not: a name against a placeholder is unknown, not
    different; so is a name only one text has when both state the same values (see
    :data:`NAMES_VOUCHED_BY`). Names each text has and the other lacks ("Apple Pay" against "Google Pay")
    differ always."""
    own_a = [n for n in fa.names if n not in fb.keys and not fb.unknown]
    own_b = [n for n in fb.names if n not in fa.keys and not fa.unknown]
    if own_a and own_b:
        return True
    if own_a or own_b:
        vouch = sum(map(_distinctive, fa.quantities)) >= NAMES_VOUCHED_BY
        return not (vouch and fa.quantities == fb.quantities)
    return False


#: Calibrated on MRPC train (``python bench/bench_paraphrase.py --calibrate``): a logistic model of
#: "paraphrase" over the pairs that pass the guards, with content-word overlap on either side of MRPC's
#: median (0.600) as two features, weighs overlap above the median at 1.327 units of cosine and overlap
#: below it at only 0.189 (a rephrasing with other words is hardly less likely a paraphrase: a straight
#: line through both sides had made it so, at 0.697), and each shared quantity (up to three) at 0.045.
_RELIEF_ABOVE = 1.327
_PENALTY_BELOW = 0.189
_OVERLAP_TYPICAL = 0.600
_RELIEF_PER_QUANTITY = 0.045
#: Two texts that state the same values in the same order, two or more of them beyond the small counts
#: (:func:`_same_values`), are one problem told twice more surely than shared words say: they need this much
#: less cosine. Set on the building half of GSM-Plus's rephrasings and on GSM8K train's questions against
#: each other (different problems; a set neither dedup's nor contamination's figures are measured on): there
#: the highest such pair of different problems scores, with MiniLM, 0.098 under contamination's bar (0.83;
#: the next 0.20 under), with WordLlama 0.31 under its 0.65. Half the narrowest gap, rounded.
_RELIEF_SAME_VALUES = 0.05
#: Values beyond the small counts (:func:`_distinctive`) two texts must share, in order, for that relief:
#: {5, 700, 4000} and {66, 1/3} have two; {2, 5, 10, 100} one (three or more small counts and one larger
#: value: some different problems share them in order at a cosine a rephrasing has).
SAME_VALUES_DISTINCTIVE = 2
_MAX_RELIEF = _RELIEF_ABOVE * (1.0 - _OVERLAP_TYPICAL) + 3 * _RELIEF_PER_QUANTITY + _RELIEF_SAME_VALUES


def _needed(threshold: float, fa: _Facts, fb: _Facts) -> float:
    """The cosine two texts must reach: ``threshold`` for a pair of typical word overlap and no shared
    quantity; more overlap or shared quantities lower the bar, less overlap raises it a little, and the
    same values in the same order lower it more."""
    shared = len(fa.quantities & fb.quantities)
    lift = _overlap(fa, fb) - _OVERLAP_TYPICAL
    relief = _RELIEF_ABOVE * max(lift, 0.0) + _PENALTY_BELOW * min(lift, 0.0)
    if _same_values(fa, fb):
        relief += _RELIEF_SAME_VALUES
    return threshold - relief - _RELIEF_PER_QUANTITY * min(shared, 3)


def _same_values(fa: _Facts, fb: _Facts) -> bool:
    """Whether two texts state the same values, first stated in the same order, and
    :data:`SAME_VALUES_DISTINCTIVE` or more of them beyond the small counts."""
    q = fa.quantities
    if q != fb.quantities or sum(map(_distinctive, q)) < SAME_VALUES_DISTINCTIVE:
        return False
    # a Counter keeps the order its keys were first counted in: the order the text first states its values
    return list(_counts(fa.raw)[0]) == list(_counts(fb.raw)[0])


def _result(
    forest: _Forest,
    sid: list[str],
    weight: np.ndarray,
    pairs: list[DupPair],
    rejected: list[DupPair],
    stats: dict[str, Any],
    t0: float,
) -> DedupResult:
    n = len(sid)
    roots = forest.roots()
    # representative: the most repeated text (its exact group's smallest index), ties by smallest index
    by = np.lexsort((np.arange(n), -weight, roots))
    head = by[np.r_[True, roots[by][1:] != roots[by][:-1]]] if n else by
    rep_at = np.empty(n, dtype=np.int64)
    rep_at[roots[head]] = head  # root -> its representative
    rep_idx = rep_at[roots]
    rep_of = dict(zip(sid, map(sid.__getitem__, rep_idx.tolist()), strict=True))
    sizes = np.bincount(roots, minlength=n)
    grouped = np.flatnonzero(sizes[roots] >= 2)
    grouped = grouped[np.argsort(roots[grouped], kind="stable")]  # by root, ascending index inside
    cuts = np.flatnonzero(np.diff(roots[grouped])) + 1
    groups = [
        DupGroup(
            sid[int(rep_idx[seg[0]])],
            tuple(map(sid.__getitem__, seg)),
            forest.level.get(int(roots[seg[0]]), "exact"),
            len(seg),
        )
        for seg in (part.tolist() for part in np.split(grouped, cuts) if part.size)
    ]
    groups.sort(key=lambda g: (-g.weight, g.representative))
    pairs.sort(key=lambda p: (_LEVEL_RANK[p.level], p.a, p.b))
    stats["groups"] = len(groups)
    stats["representatives"] = int(head.size)
    stats["seconds_total"] = time.perf_counter() - t0
    return DedupResult(groups, pairs, rep_of, rejected, stats)
