"""Word n-gram hashing at corpus speed: texts are normalized as dedup normalizes them (casefold, punctuation to
spaces), cut into words and hashed in numpy, never a word at a time in Python.

A tray is small and a corpus large, so :class:`GramIndex` holds the tray's grams (a bitmap of their low bits
in front of a sorted array) and :meth:`GramIndex.probe` runs a batch of corpus text past it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from evaltray.curate.dedup import normalize

__all__ = ["GramIndex", "Hits", "WordBatch", "hash_words", "kernels", "norm_bytes", "norm_lines", "word_batch"]

_U64 = np.uint64
_P = 0x100000001B3  # the FNV prime: odd, so invertible modulo 2**64
_BITS = 20  # bitmap in front of the sorted gram array (1 MiB: it stays in cache while a batch is probed)


_KERNELS: list[ModuleType | None] = []


def kernels() -> ModuleType | None:
    """The compiled byte loops (:mod:`evaltray.monitor.kernels`, the ``fast`` extra), imported when first asked;
    None without numba or with ``EVALTRAY_JIT=0`` (then numpy does the same work, more slowly)."""
    if os.environ.get("EVALTRAY_JIT", "1") == "0":
        return None
    if not _KERNELS:
        try:
            from . import kernels as compiled

            _KERNELS.append(compiled)
        except ImportError:
            _KERNELS.append(None)
    return _KERNELS[0]


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


#: A non-ASCII character's normalized UTF-8 bytes when it normalizes the same wherever it stands (no mark,
#: no Hangul jamo, nothing that composes with a neighbour), else None; filled as characters are met.
_ALONE: dict[str, bytes | None] = {}


def _alone(c: str) -> bytes | None:
    if c not in _ALONE:
        t = _norm_str(c)
        free = t is not None and all(
            unicodedata.combining(x) == 0 and unicodedata.category(x)[0] != "M" and not 0x1100 <= ord(x) <= 0x11FF
            for x in c + t
        )
        _ALONE[c] = t.encode("utf-8", "surrogatepass") if free and t is not None else None
    return _ALONE[c]


def _non_ascii(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each non-ASCII character of UTF-8 bytes starts, its byte length, and its bytes as an integer."""
    lead = np.flatnonzero(arr >= 0xC0)
    size = 2 + (arr[lead] >= 0xE0) + (arr[lead] >= 0xF0)
    view = np.ndarray((len(arr),), dtype="<u4", buffer=np.r_[arr, np.zeros(3, np.uint8)], strides=(1,))
    code = view[lead] & ((np.uint32(1) << (size.astype(np.uint32) * np.uint32(8))) - np.uint32(1))
    return lead, size, code


def norm_lines(data: bytes) -> tuple[bytes, np.ndarray]:
    """Lines of UTF-8 text (each ending with ``\\n``) normalized at once, as :func:`norm_bytes` normalizes
    each as far as its words go (a character normalize makes a space may come out as several spaces): the
    bytes, and the offset of each line's first byte in them.

    ASCII is one byte translation. Each distinct non-ASCII character that normalizes the same wherever it
    stands (nearly all: letters, currency, quotes, dashes) is looked up once: one normalize makes a space
    is overwritten with spaces in place, one it changes otherwise is spliced in; lines holding any other
    character (a combining mark) go through :func:`norm_bytes` whole."""
    arr = np.frombuffer(data, dtype=np.uint8)
    out = data
    if not data.isascii():
        lead, size, code = _non_ascii(arr)
        keys, first, which = np.unique(code, return_index=True, return_inverse=True)
        chars = [
            data[p : p + n].decode("utf-8", "surrogatepass") for p, n in zip(lead[first], size[first], strict=True)
        ]
        mapped = [_alone(c) for c in chars]
        if any(m is None for m in mapped):
            text = data.decode("utf-8", "surrogatepass")
            out = b"".join(norm_bytes(line) + b"\n" for line in text.split("\n")[:-1])
        else:
            out = _respell(arr, lead, size, which, chars, [m or b"" for m in mapped])
    ends = np.flatnonzero(np.frombuffer(out, dtype=np.uint8) == 10)
    return out.translate(_ASCII), np.r_[0, ends[:-1] + 1][: len(ends)].astype(np.int64)


def _respell(
    arr: np.ndarray, lead: np.ndarray, size: np.ndarray, which: np.ndarray, chars: list[str], mapped: list[bytes]
) -> bytes:
    """``arr`` with non-ASCII character ``i`` (at ``lead[which == i]``) written as ``mapped[i]``."""
    blank = np.array([m.translate(_ASCII).strip() == b"" for m in mapped])
    same = np.array([m == c.encode("utf-8", "surrogatepass") for c, m in zip(chars, mapped, strict=True)])
    out = arr.copy()
    at = blank[which] & ~same[which]
    for k in range(4):  # a character normalize makes a space: spaces over each of its bytes
        hit = at & (size > k)
        out[lead[hit] + k] = 32
    splice = np.flatnonzero(~blank[which] & ~same[which])
    if not len(splice):
        return out.tobytes()
    view, pieces, pos = memoryview(out.tobytes()), [], 0
    for p, n, i in zip(lead[splice].tolist(), size[splice].tolist(), which[splice].tolist(), strict=True):
        pieces += [view[pos:p], mapped[i]]
        pos = p + n
    pieces.append(view[pos:])
    return b"".join(pieces)


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


def _chunks(buf: bytes, at: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The ``min(size, 8)`` bytes of ``buf`` from each offset ``at`` as a little-endian integer (bytes past
    ``size`` masked off): one unaligned 8-byte read per word, not a Python step per byte."""
    view = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    out = view[at]
    short = np.flatnonzero(size < 8)
    out[short] &= (_U64(1) << (size[short].astype(_U64) * _U64(8))) - _U64(1)
    return out


def hash_words(data: bytes, offsets: np.ndarray) -> WordBatch:
    """The hashed words of normalized ``data`` (starting with a space) whose documents start at ``offsets``.

    A word's hash mixes its bytes read eight at a time (a few numpy passes over the words, one over the
    bytes to find them), then its length, so no Python loop runs per word and equal words hash equal
    wherever they stand. The compiled kernel, where installed, does the same in one pass."""
    arr = np.frombuffer(data, dtype=np.uint8)
    fast = kernels()
    if fast is not None:
        return WordBatch(data, *fast.hash_words(arr, np.asarray(offsets, dtype=np.int64)))
    edges = np.flatnonzero(np.diff((arr != 32).view(np.int8)))  # start - 1, end - 1, start - 1, ...
    if len(edges) % 2:  # data ending inside a word
        edges = np.r_[edges, len(arr) - 1]
    start, end = edges[0::2] + 1, edges[1::2] + 1
    # a word belongs to the last document starting at or before it
    doc = (np.searchsorted(offsets, start, side="right") - 1).astype(np.int64)
    buf = data + b" " * 8
    size = end - start
    hashes = _chunks(buf, start, size)
    long, k = np.flatnonzero(size > 8), 8
    while len(long):
        chunk = _chunks(buf, start[long] + k, size[long] - k)
        hashes[long] = _mix(hashes[long] * _U64(_P)) ^ chunk
        k += 8
        long = long[size[long] > k]
    return WordBatch(data, _mix(hashes ^ (size.astype(_U64) * _U64(0x9E3779B97F4A7C15))), doc, start, end)


def rolling(hashes: np.ndarray, doc: np.ndarray, lengths: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each length L (ascending): the hash of every L-gram that stays inside one document, and where
    it starts, as ``{L: (hash, start)}``."""
    fast = kernels()
    if fast is not None:
        return {length: fast.rolling(hashes, doc, length) for length in sorted(lengths)}
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
        self._bits: dict[int, np.ndarray] = {}  # the bitmap packed, for the compiled probe
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
            self._bits[length] = np.packbits(bitmap, bitorder="little").view("<u8")

    def _find(self, h: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The indexes of ``h`` that are ``length``-grams of the index, and each one's place in its keys."""
        keys, bitmap = self._keys[length], self._bitmap[length]
        fast = kernels()
        if fast is not None:
            return fast.probe(h, self._bits[length], keys, _BITS)  # type: ignore[no-any-return]
        maybe = np.flatnonzero(bitmap[(h & _U64((1 << _BITS) - 1)).astype(np.int64)])
        k = np.minimum(np.searchsorted(keys, h[maybe]), max(len(keys) - 1, 0))
        if not len(keys):
            return maybe[:0], k[:0]
        hit = keys[k] == h[maybe]
        return maybe[hit], k[hit]

    def probe(self, grams: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[int, Hits]:
        """The hits of a batch's grams (from :func:`rolling` with this index's lengths), per length."""
        out = {}
        for length in self.lengths:
            h, start = grams[length]
            found, k = self._find(h, length)
            out[length] = self._hits(length, start[found], k, h[found])
        return out

    def probe_words(self, hashes: np.ndarray, doc: np.ndarray) -> dict[int, Hits]:
        """:meth:`probe` of a batch's word hashes, the grams rolled and probed in one compiled pass (the ``fast``
        extra; without it, through :func:`rolling`)."""
        fast = kernels()
        if fast is None:
            return self.probe(rolling(hashes, doc, self.lengths))
        out = {}
        for length in self.lengths:
            start, k, h = fast.roll_probe(hashes, doc, length, self._bits[length], self._keys[length], _BITS)
            out[length] = self._hits(length, start, k, h)
        return out

    def _hits(self, length: int, start: np.ndarray, k: np.ndarray, h: np.ndarray) -> Hits:
        bounds, owner = self._owners[length]
        reps = bounds[k + 1] - bounds[k]  # a gram several texts share hits each of them
        idx = np.repeat(bounds[k], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
        return Hits(np.repeat(start, reps), owner[idx], np.repeat(h, reps))


def _doc_ranges(doc: np.ndarray, n: int) -> list[tuple[int, int]]:
    """``(first word, past last word)`` of each of ``n`` documents in a batch."""
    bounds = np.searchsorted(doc, np.arange(n + 1))
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(n)]


def doc_ranges(batch: WordBatch, n: int) -> list[tuple[int, int]]:
    """Each of the batch's ``n`` documents as a word range."""
    return _doc_ranges(batch.doc, n)
