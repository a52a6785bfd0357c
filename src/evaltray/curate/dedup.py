"""Three-level dedup: exact (normalized text), near (MinHash + LSH, verified Jaccard), paraphrase (ANN, verified).

Dedup never drops a trace. It marks clusters of duplicates, picks one representative per cluster and
gives it a weight (how many traces it stands for), and keeps the evidence for every merge as a
``DupPair``. The result depends only on the set of ``(id, text, vector)`` rows, never on their order:
rows are sorted by id before anything else happens.
"""

from __future__ import annotations

import functools
import math
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from evaltray.core.errors import EvaltrayError
from evaltray.core.util import sha256_hex

__all__ = [
    "DedupError",
    "DedupResult",
    "DupGroup",
    "DupPair",
    "NearPairs",
    "dedup",
    "lsh_params",
    "near_duplicate_pairs",
    "normalize",
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


def _bucket_pairs(keys: np.ndarray, cap: int) -> np.ndarray:
    """Index pairs ``i < j`` whose ``keys`` are equal. Buckets larger than ``cap`` give a star from
    their smallest index plus a chain, so one huge bucket cannot make quadratic work."""
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
        out.append(np.stack([order[left], order[right]], axis=1))
    for s, g in zip(starts[sizes > cap].tolist(), sizes[sizes > cap].tolist(), strict=True):
        members = order[s : s + g]  # stable sort: ascending index within the bucket
        out.append(np.stack([np.full(g - 1, members[0]), members[1:]], axis=1))
        out.append(np.stack([members[1:-1], members[2:]], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    return np.sort(pairs, axis=1)


def _band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    block = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
    key = np.full(sig.shape[0], _U64(((band + 1) * int(_K)) % (1 << 64)), dtype=np.uint64)
    for j in range(rows):
        key ^= block[:, j]
        key = _mix64(key)
    return key


def _exact_jaccard(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair ``(a, b)``, vectorized over all pairs.

    Each text's shingles become keys ``(text << f) | fingerprint`` (the hash's low ``f = 64 - bits(texts)``
    bits, at least 40: a false shared shingle has odds below 1e-8 per pair); sorted and unique, they
    answer "is this shingle of ``a`` also in ``b``" for every pair with one ``searchsorted``.
    """
    out = np.zeros(len(pairs), dtype=np.float64)
    if not len(pairs):
        return out
    docs = _sorted_unique(pairs.ravel())
    local = np.searchsorted(docs, pairs)
    sub, sub_offsets = _gather_rows(flat, offsets, docs)
    shift = _U64(64 - max(1, int(docs.size).bit_length()))
    mask = (_U64(1) << shift) - _U64(1)
    owner = np.repeat(np.arange(docs.size, dtype=np.uint64), np.diff(sub_offsets).astype(np.int64))
    keys = _sorted_unique((owner << shift) | (sub & mask))
    owner = (keys >> shift).astype(np.int64)
    size = np.bincount(owner, minlength=docs.size)
    start = np.r_[0, np.cumsum(size)[:-1]]
    step = 1 << 22  # bound the query buffer
    lo = 0
    while lo < len(pairs):
        # take pairs until their queries fill a step (at least one pair)
        count = size[local[lo:, 0]]
        hi = lo + max(1, int(np.searchsorted(np.cumsum(count), step)))
        a, b = local[lo:hi, 0], local[lo:hi, 1]
        n_q = size[a]
        pos = np.repeat(start[a], n_q) + (np.arange(int(n_q.sum())) - np.repeat(np.cumsum(n_q) - n_q, n_q))
        query = (np.repeat(b.astype(np.uint64), n_q) << shift) | (keys[pos] & mask)
        at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        inter = np.bincount(np.repeat(np.arange(hi - lo), n_q), weights=keys[at] == query, minlength=hi - lo)
        out[lo:hi] = inter / (size[a] + size[b] - inter)
        lo = hi
    return out


@dataclass(slots=True)
class NearPairs:
    """Verified near-duplicate pairs (indices into the texts given) and what it took to find them."""

    i: np.ndarray
    j: np.ndarray
    estimate: np.ndarray
    jaccard: np.ndarray
    stats: dict[str, Any]


def near_duplicate_pairs(
    norm_texts: Sequence[str], threshold: float = 0.8, *, seed: int = 0, bucket_cap: int = 64
) -> NearPairs:
    """All pairs the MinHash LSH proposes whose exact shingle Jaccard is >= ``threshold``.

    Pipeline: shingle hashes (numpy) -> R-MinHash matrix (rensa, Rust, both cores) -> rensa's LSH
    flags the rows that share any band with another row -> those rows only get banded again in
    numpy to name the pairs -> a MinHash estimate drops hopeless pairs -> exact Jaccard decides.
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
    if flagged.size < 2:
        stats.update(seconds_shingle=t1 - t0, seconds_minhash=t2 - t1, seconds_lsh=t3 - t2)
        return empty
    sub_flat, sub_offsets = _gather_rows(flat, offsets, flagged)
    del flat, offsets  # the corpus-wide hashes are the biggest buffer; only the flagged rows matter now
    sig = _signatures(sub_flat, sub_offsets, num_perm, seed)
    m = np.int64(sig.shape[0])
    codes = _sorted_unique(
        np.concatenate(
            [p[:, 0] * m + p[:, 1] for p in (_bucket_pairs(_band_keys(sig, b, rows), bucket_cap) for b in range(bands))]
        )
    )
    cand = np.stack([codes // m, codes % m], axis=1)
    stats["candidates"] = int(len(cand))
    t4 = time.perf_counter()
    est = np.empty(len(cand), dtype=np.float64)
    for lo in range(0, len(cand), 1 << 16):
        c = cand[lo : lo + (1 << 16)]
        est[lo : lo + len(c)] = (sig[c[:, 0]] == sig[c[:, 1]]).mean(axis=1)
    # 3.5 standard errors below the threshold: a pair truly at the threshold is dropped here ~1 in 4,000
    margin = 3.5 * math.sqrt(threshold * (1.0 - threshold) / num_perm)
    keep = est >= threshold - margin
    cand, est = cand[keep], est[keep]
    jac = _exact_jaccard(sub_flat, sub_offsets, cand)
    ok = jac >= threshold - 1e-12
    t5 = time.perf_counter()
    stats.update(
        estimated=int(len(cand)),
        verified=int(ok.sum()),
        seconds_shingle=t1 - t0,
        seconds_minhash=t2 - t1,
        seconds_lsh=t3 - t2,
        seconds_candidates=t4 - t3,
        seconds_verify=t5 - t4,
    )
    return NearPairs(flagged[cand[ok, 0]], flagged[cand[ok, 1]], est[ok], jac[ok], stats)


# --------------------------------------------------------------------------- paraphrase: candidates and checks


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


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
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"\w+")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)\W*(\w+)")


def _numbers(norm: str) -> frozenset[str]:
    """Digit runs: "$100" and "100" agree, "order 123" and "order 456" do not."""
    return frozenset(_DIGITS.findall(norm))


def _negated(tokens: list[str]) -> bool:
    for k, t in enumerate(tokens):
        if t in _NEGATIONS:
            return True
        # "no", but not in "order no 5" (a number) or "oh no" (an exclamation)
        if t == "no" and not ((k + 1 < len(tokens) and tokens[k + 1][:1].isdigit()) or (k and tokens[k - 1] == "oh")):
            return True
        if t == "t" and k and tokens[k - 1] in _NT_STEMS:  # "don't" normalizes to "don t"
            return True
    return False


def _name_key(token: str) -> str:
    """Fold plurals and possessives so "ATMs", "ATM's" and "ATM" are one name."""
    return token[:-1] if len(token) > 3 and token.endswith("s") else token


def _names(raw: str) -> frozenset[str]:
    """Capitalized words that do not start a sentence ("Apple Pay", "Paris", "UK"), as name keys.

    Text in capitals or title case says nothing about names, so it yields none.
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
            if key not in _NOT_NAMES:
                out.add(_name_key(key))
    return frozenset(out)


def _knn(vecs: np.ndarray, k: int, exact_below: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of every row (self excluded): exact below ``exact_below`` rows, else usearch HNSW.

    Returns ``(index, cosine)`` arrays of shape ``(n, k)``, best first, ties by index; missing
    neighbours are ``-1``. Cosines are recomputed the same way on both paths, so a pair found by
    either gets the same score.
    """
    n = vecs.shape[0]
    k = min(k, n - 1)
    idx = np.full((n, max(k, 0)), -1, dtype=np.int64)
    if k <= 0:
        return idx, np.zeros(idx.shape, dtype=np.float64)
    if n < exact_below:
        step = max(1, (1 << 24) // n)
        for lo in range(0, n, step):
            s = vecs[lo : lo + step] @ vecs.T
            s[np.arange(s.shape[0]), np.arange(lo, lo + s.shape[0])] = -np.inf
            idx[lo : lo + s.shape[0]] = np.argpartition(-s, k - 1, axis=1)[:, :k]
    else:
        from usearch.index import Index

        # One thread for building: an HNSW graph built in parallel depends on thread timing, and dedup
        # promises the same answer for the same input. ef 64 builds and searches ~1.5x faster than 128 at
        # the same recall of close neighbours (bench_dedup --ann); scores are recomputed exactly below.
        index = Index(
            ndim=vecs.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=64, expansion_search=64
        )
        index.add(np.arange(n, dtype=np.uint64), vecs, threads=1)
        found = index.search(vecs, k + 1, threads=0)
        keys = np.asarray(found.keys).astype(np.int64)
        valid = np.arange(k + 1)[None, :] < np.asarray(found.counts)[:, None]  # type: ignore[union-attr]
        keys[~valid | (keys == np.arange(n)[:, None])] = -1
        # keep the k best that are not the row itself (usearch may return it anywhere among ties)
        order = np.argsort(keys < 0, axis=1, kind="stable")[:, :k]
        idx = np.take_along_axis(keys, order, axis=1)
    sim = np.empty(idx.shape, dtype=np.float64)
    for lo in range(0, n, 2048):  # (rows, k, dim) float64 blocks stay small
        blk = idx[lo : lo + 2048]
        sim[lo : lo + 2048] = np.einsum(
            "ij,ikj->ik", vecs[lo : lo + 2048].astype(np.float64), vecs[np.maximum(blk, 0)].astype(np.float64)
        )
    sim[idx < 0] = -np.inf
    o = np.lexsort((idx, -sim), axis=1)
    return np.take_along_axis(idx, o, axis=1), np.take_along_axis(sim, o, axis=1)


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
        self, edges: list[tuple[float, int, int, str]], level: Level, sid: list[str], pairs: list[DupPair]
    ) -> None:
        """Kruskal order (best evidence first, ties by index): the reported forest is deterministic."""
        for score, a, b, reason in sorted(edges, key=lambda e: (-e[0], e[1], e[2])):
            ra, rb = self.find(a), self.find(b)
            if ra == rb:
                continue
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo  # the smaller index (= smaller id) stays root
            self.level[lo] = max(
                self.level.get(ra, "exact"), self.level.get(rb, "exact"), level, key=_LEVEL_RANK.__getitem__
            )
            pairs.append(DupPair(sid[min(a, b)], sid[max(a, b)], level, round(score, 6), reason))

    def roots(self) -> np.ndarray:
        """Root of every index, by pointer jumping in numpy (no Python loop over all traces)."""
        p = np.asarray(self.parent, dtype=np.int64)
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


def _check_inputs(
    ids: Sequence[str], texts: Sequence[Any], vectors: np.ndarray | None, near: float | None, paraphrase: float | None
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
    paraphrase: float | None = 0.9,
    vectors: np.ndarray | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    k: int = 10,
    exact_knn_below: int = 20_000,
    bucket_cap: int = 64,
) -> DedupResult:
    """Group duplicate traces at three levels and pick a representative for each group.

    - exact: equal ``normalize(text)``;
    - near (``near`` = Jaccard threshold, ``None`` to skip): MinHash + LSH over character 5-grams,
      every pair verified by exact Jaccard;
    - paraphrase (``paraphrase`` = cosine threshold; runs only when ``vectors`` is given): top-``k``
      neighbours above the threshold, merged only if they are mutual neighbours and agree on numbers,
      negation and capitalized names ("refund order 123" never merges with "refund order 456").

    Groups are the transitive closure of the accepted pairs. The representative is the text asked
    most often (the largest exact group), ties broken by the smallest id. The result does not depend
    on the order of the input rows.
    """
    vecs = _check_inputs(ids, texts, vectors, near, paraphrase)
    report = progress or (lambda stage, done, total: None)
    n = len(ids)
    t0 = time.perf_counter()
    order = sorted(range(n), key=ids.__getitem__)
    sid = [ids[i] for i in order]
    stats: dict[str, Any] = {"traces": n}

    report("normalize", 0, n)
    norm = [normalize(texts[i]) for i in order]
    report("normalize", n, n)

    # exact: one node per distinct normalized text; the node is its smallest index (= smallest id)
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
        t1 = time.perf_counter()
        found = near_duplicate_pairs([norm[i] for i in nodes], near, seed=seed, bucket_cap=bucket_cap)
        edges = [
            (jac, nodes[a], nodes[b], f"Jaccard of character 5-grams {jac:.3f} (MinHash estimate {est:.3f}) >= {near}")
            for a, b, est, jac in zip(
                found.i.tolist(), found.j.tolist(), found.estimate.tolist(), found.jaccard.tolist(), strict=True
            )
        ]
        forest.merge(edges, "near", sid, pairs)
        stats.update({f"near_{key}": v for key, v in found.stats.items()})
        stats["seconds_near"] = time.perf_counter() - t1
        report("near", len(nodes), len(nodes))

    rejected: list[DupPair] = []
    if paraphrase is not None and vecs is not None:
        t2 = time.perf_counter()
        members = _speakers(forest, nodes, weight)
        v = vecs[[order[i] for i in members]]
        lengths = np.linalg.norm(v, axis=1)
        usable = np.flatnonzero(np.isfinite(lengths) & (lengths > 0))
        report("paraphrase", 0, len(usable))
        if usable.size >= 2:
            nbr, cos = _knn(v[usable] / lengths[usable, None], k, exact_knn_below)
            node = [members[u] for u in usable]
            edges, rejected = _paraphrase_edges(
                nbr, cos, paraphrase, node, norm, [texts[order[i]] for i in node], sid, k
            )
            forest.merge(edges, "paraphrase", sid, pairs)
            stats["paraphrase_candidates"] = len(edges) + len(rejected)
            stats["paraphrase_rejected"] = len(rejected)
        stats["seconds_paraphrase"] = time.perf_counter() - t2
        report("paraphrase", len(usable), len(usable))

    return _result(forest, sid, weight, pairs, rejected, stats, t0)


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
) -> tuple[list[tuple[float, int, int, str]], list[DupPair]]:
    """Verify each above-threshold neighbour pair once; return accepted edges and rejected pairs."""
    neigh = [set(row[row >= 0].tolist()) for row in nbr]
    edges: list[tuple[float, int, int, str]] = []
    rejected: list[DupPair] = []
    cache: dict[int, _Facts] = {}

    def facts(u: int) -> _Facts:
        f = cache.get(u)
        if f is None:
            toks = norm[node[u]].split()
            text = raw[u]
            raw_text = text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else str(text or "")
            f = cache[u] = _Facts(
                frozenset(map(_name_key, toks)), _numbers(norm[node[u]]), _negated(toks), _names(raw_text)
            )
        return f

    seen: set[tuple[int, int]] = set()
    for u in range(nbr.shape[0]):
        for w, c in zip(nbr[u].tolist(), cos[u].tolist(), strict=True):
            if w < 0 or c < threshold:
                continue
            a, b = (u, w) if u < w else (w, u)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            why = _refusal(facts(a), facts(b), mutual=a in neigh[b] and b in neigh[a])
            ia, ib = node[a], node[b]
            if why:
                rejected.append(
                    DupPair(sid[ia], sid[ib], "paraphrase", round(c, 6), f"cosine {c:.3f} >= {threshold} but {why}")
                )
            else:
                edges.append(
                    (
                        c,
                        ia,
                        ib,
                        f"cosine {c:.3f} >= {threshold}; mutual top-{k} neighbours; numbers, negation and names agree",
                    )
                )
    rejected.sort(key=lambda p: (p.a, p.b))
    return edges, rejected


@dataclass(frozen=True, slots=True)
class _Facts:
    keys: frozenset[str]  # every token as a name key, to look names up in
    numbers: frozenset[str]
    negated: bool
    names: frozenset[str]


def _refusal(fa: _Facts, fb: _Facts, *, mutual: bool) -> str:
    """Why two texts that embed close together are not paraphrases; empty if they may be."""
    if not mutual:
        return "not mutual nearest neighbours"
    if fa.numbers != fb.numbers:
        return "numbers differ"
    if fa.negated != fb.negated:
        return "one is negated"
    if any((name in fa.keys) != (name in fb.keys) for name in fa.names | fb.names):
        return "names differ"
    return ""


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
