"""Word n-gram hashing at corpus speed: texts are normalized as dedup normalizes them (casefold, punctuation to
spaces), cut into words and hashed in numpy, never a word at a time in Python.

A tray is small and a corpus large, so :class:`GramIndex` holds the tray's grams (a bitmap of their low bits
in front of a sorted array) and :meth:`GramIndex.probe` runs a batch of corpus text past it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaltray.curate.dedup import normalize

__all__ = ["GramIndex", "Hits", "WordBatch", "hash_words", "norm_bytes", "norm_lines", "word_batch"]

_U64 = np.uint64
_P = 0x100000001B3  # the FNV prime: odd, so invertible modulo 2**64
_BITS = 24  # bitmap in front of the sorted gram array: a probe of a corpus word touches 2 MiB at most


class _Powers:
    """P**k and P**-k modulo 2**64 for k below a size that grows on demand (a batch's byte count)."""

    def __init__(self) -> None:
        self.up = np.zeros(0, dtype=_U64)
        self.down = np.zeros(0, dtype=_U64)

    def need(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) < n:
            size = max(n, 2 * len(self.up), 1 << 22)  # doubling: a stream of growing batches rebuilds rarely
            self.up = np.cumprod(np.full(size, _P, dtype=_U64), dtype=_U64)
            self.down = np.cumprod(np.full(size, pow(_P, -1, 1 << 64), dtype=_U64), dtype=_U64)
        return self.up, self.down


_POWERS = _Powers()


def _table() -> bytes:
    # Each ASCII byte as normalize() leaves it, so the bytes path below cuts words exactly as normalize does.
    return bytes((normalize(chr(b)) or " ").encode("ascii")[0] for b in range(128)) + bytes(range(128, 256))


_ASCII = _table()


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_CHAR: dict[str, str] = {}


def _char(c: str) -> str:
    """What normalize makes of one (already casefolded, NFKC) character between two letters: itself, a space
    (punctuation, spaces) or nothing (format characters)."""
    out = _CHAR.get(c)
    if out is None and unicodedata.category(c)[0] == "M":  # a mark would combine with the letter before it
        out = _CHAR[c] = c
    if out is None:
        between = normalize("a" + c + "b")
        out = _CHAR[c] = " " if between == "a b" else "" if between == "ab" else between[1:-1]
    return out


def _norm_str(text: str) -> str | None:
    """Casefolded, NFKC-normalized ``text`` with each distinct non-ASCII character mapped as normalize maps it
    (a document has few, so not every character goes through a Python table); None when the result is not at
    normalize's fixed point after that round (the long way is then needed)."""
    t = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    for c in set(_NON_ASCII.findall(t)):
        mapped = _char(c)
        if mapped != c:
            t = t.replace(c, mapped)
    if t != t.casefold() or not unicodedata.is_normalized("NFKC", t):
        return None
    return t


def norm_bytes(text: str) -> bytes:
    """``normalize(text)`` as UTF-8 bytes, words separated by one or more spaces (ASCII text: one byte
    translation)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII)
    t = _norm_str(text)
    if t is None:
        return normalize(text).encode("utf-8", "surrogatepass")
    return t.encode("utf-8", "surrogatepass").translate(_ASCII)


def norm_lines(data: bytes) -> tuple[bytes, np.ndarray]:
    """Lines of UTF-8 text (each ending with ``\\n``) normalized at once, as :func:`norm_bytes` normalizes
    each: the bytes, and the offset of each line's first byte in them."""
    if data.isascii():
        out = data
    else:
        text = data.decode("utf-8", "surrogatepass")
        t = _norm_str(text)  # casefold, NFKC and the character map leave newlines alone
        out = (
            t.encode("utf-8", "surrogatepass")
            if t is not None
            else b"".join(norm_bytes(line) + b"\n" for line in text.split("\n")[:-1])
        )
    ends = np.flatnonzero(np.frombuffer(out, dtype=np.uint8) == 10)
    return out.translate(_ASCII), np.r_[0, ends[:-1] + 1].astype(np.int64)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: low bits of the result depend on every bit of the input."""
    z ^= z >> _U64(30)
    z *= _U64(0xBF58476D1CE4E5B9)
    z ^= z >> _U64(27)
    z *= _U64(0x94D049BB133111EB)
    z ^= z >> _U64(31)
    return z


@dataclass(frozen=True)
class WordBatch:
    """Words of many documents, hashed: ``hashes[i]`` is word i, ``doc[i]`` its document's index in the batch,
    ``start``/``end`` its bytes in ``data``."""

    data: bytes
    hashes: np.ndarray
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def words(self, lo: int, hi: int) -> list[bytes]:
        """Words ``lo`` to ``hi`` (exclusive) as bytes."""
        return [self.data[a:b] for a, b in zip(self.start[lo:hi].tolist(), self.end[lo:hi].tolist(), strict=True)]

    def span(self, lo: int, hi: int) -> str:
        """Words ``lo`` to ``hi`` as normalized text."""
        if hi <= lo:
            return ""
        return " ".join(self.data[int(self.start[lo]) : int(self.end[hi - 1])].decode("utf-8", "replace").split())


def word_batch(texts: Sequence[str]) -> WordBatch:
    """The hashed words of ``texts``; word i of the result belongs to text ``doc[i]``."""
    parts = [norm_bytes(t) for t in texts]
    # the index of each document's first byte in the joined bytes (after the leading space)
    offsets = np.cumsum([1] + [len(p) + 1 for p in parts[:-1]], dtype=np.int64)
    return hash_words(b" " + b" ".join(parts) + b" ", offsets)


def hash_words(data: bytes, offsets: np.ndarray) -> WordBatch:
    """The hashed words of normalized ``data`` (starting with a space) whose documents start at ``offsets``.

    A word's hash is a polynomial in its bytes, read off prefix sums of ``byte * P**position`` over the whole
    batch (times ``P**-start`` to put every word at position 0), so no Python loop runs per word.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    word = arr != 32
    start = np.flatnonzero(word[1:] > word[:-1]) + 1
    end = np.flatnonzero(word[1:] < word[:-1]) + 1
    if len(end) < len(start):  # data ending inside a word
        end = np.r_[end, len(arr)]
    # a word belongs to the last document starting at or before it
    doc = (np.searchsorted(offsets, start, side="right") - 1).astype(np.int64)
    up, down = _POWERS.need(len(arr))
    acc = arr.astype(_U64)
    acc *= up[: len(arr)]
    np.cumsum(acc, out=acc)
    hashes = (acc[end - 1] - acc[start - 1]) * down[start - 1]
    hashes += (end - start).astype(_U64)
    return WordBatch(data, _mix(hashes), doc, start, end)


def rolling(hashes: np.ndarray, doc: np.ndarray, lengths: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each length L (ascending): the hash of every L-gram that stays inside one document, and where
    it starts, as ``{L: (hash, start)}``."""
    n = len(hashes)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    h = np.zeros(n, dtype=_U64)
    done = 0
    for length in sorted(lengths):
        for j in range(done, min(length, n)):  # h[i] holds the (j+1)-gram starting at i (tail positions hold junk)
            np.multiply(h[: n - j], _U64(_P), out=h[: n - j])
            np.add(h[: n - j], hashes[j:], out=h[: n - j])
        done = max(done, min(length, n))
        count = n - length + 1
        if count <= 0:
            out[length] = (np.zeros(0, dtype=_U64), np.zeros(0, dtype=np.int64))
            continue
        inside = np.flatnonzero(doc[:count] == doc[length - 1 :])
        out[length] = (_mix(h[inside].copy()), inside)
    return out


@dataclass(frozen=True)
class Hits:
    """Gram hits: where in the batch (word index), which indexed text each one belongs to, and its hash."""

    pos: np.ndarray
    text: np.ndarray
    hash: np.ndarray


class GramIndex:
    """Hashes of the word L-grams of a few texts, for each L asked, probed by a stream of corpus batches.

    ``grams[L][t]`` is the set of text t's L-gram hashes (all of them when t is shorter than the longest L:
    then it is indexed whole, at its own length, when that length is one of the Ls)."""

    def __init__(self, texts: Sequence[str], lengths: Sequence[int]) -> None:
        self.lengths = sorted(set(lengths))
        batch = word_batch(texts)
        self.words = [batch.words(int(a), int(b)) for a, b in _doc_ranges(batch.doc, len(texts))]
        self.grams: dict[int, list[set[int]]] = {}
        self._keys: dict[int, np.ndarray] = {}
        self._owners: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._bitmap: dict[int, np.ndarray] = {}
        for length, (h, start) in rolling(batch.hashes, batch.doc, self.lengths).items():
            owner = batch.doc[start]
            self.grams[length] = [set() for _ in texts]
            for hv, t in zip(h.tolist(), owner.tolist(), strict=True):
                self.grams[length][t].add(hv)
            order = np.lexsort((owner, h))
            h, owner = h[order], owner[order]
            keys, first = np.unique(h, return_index=True)
            self._keys[length] = keys
            self._owners[length] = (np.append(first, len(h)), owner)
            bitmap = np.zeros(1 << _BITS, dtype=bool)
            bitmap[(keys & _U64((1 << _BITS) - 1)).astype(np.int64)] = True
            self._bitmap[length] = bitmap

    def probe(self, grams: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[int, Hits]:
        """The hits of a batch's grams (from :func:`rolling` with this index's lengths), per length."""
        out = {}
        for length in self.lengths:
            h, start = grams[length]
            keys = self._keys[length]
            maybe = np.flatnonzero(self._bitmap[length][(h & _U64((1 << _BITS) - 1)).astype(np.int64)])
            k = np.minimum(np.searchsorted(keys, h[maybe]), max(len(keys) - 1, 0))
            found = maybe[keys[k] == h[maybe]] if len(keys) else maybe[:0]
            k = k[keys[k] == h[maybe]] if len(keys) else k[:0]
            bounds, owner = self._owners[length]
            reps = bounds[k + 1] - bounds[k]  # a gram several texts share hits each of them
            idx = np.repeat(bounds[k], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
            out[length] = Hits(np.repeat(start[found], reps), owner[idx], np.repeat(h[found], reps))
        return out


def _doc_ranges(doc: np.ndarray, n: int) -> list[tuple[int, int]]:
    """``(first word, past last word)`` of each of ``n`` documents in a batch."""
    bounds = np.searchsorted(doc, np.arange(n + 1))
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(n)]


def doc_ranges(batch: WordBatch, n: int) -> list[tuple[int, int]]:
    """Each of the batch's ``n`` documents as a word range."""
    return _doc_ranges(batch.doc, n)
