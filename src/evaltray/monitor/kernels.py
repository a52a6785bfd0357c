"""Compiled versions of the two byte loops a corpus scan spends its time in: picking the string values out of
JSONL lines (``corpus._strings_only``) and cutting normalized text into hashed words (``grams.hash_words``).

Each numpy pass of the reference versions reads every byte of the corpus (a dozen passes for the strings, four
for the word edges); here one loop over the bytes does the work, compiled by numba (the ``fast`` extra; no
compiler needed at install, the machine code is cached after the first run). The results are the reference's,
bit for bit: the scan finds the same matches with or without it (tests/monitor/test_kernels.py).

Importing this module fails without numba; :func:`evaltray.monitor.grams.kernels` imports it when first asked
and falls back to numpy.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["hash_words", "probe", "roll_probe", "rolling", "strings_only"]

_jit = numba.njit(cache=True, nogil=True)
_U64 = np.uint64
_GOLDEN, _PRIME = _U64(0x9E3779B97F4A7C15), _U64(0x100000001B3)
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_S30, _S27, _S31, _EIGHT = _U64(30), _U64(27), _U64(31), _U64(8)


@_jit
def _mix(z: Any) -> Any:
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    return z ^ (z >> _S31)


@_jit
def strings_only(arr: Any) -> Any:
    """``(out, kept)``: ``arr`` (valid JSON lines or blank lines, each ending with a newline) with every byte that
    is not the content of a string value (keys, numbers, syntax, escapes) turned to a space, newlines kept; and
    how many bytes were kept."""
    n = len(arr)
    out = np.full(n, 32, dtype=np.uint8)
    kept = 0
    i = 0
    while i < n:
        b = arr[i]
        if b == 10:
            out[i] = 10
        elif b == 34:  # a string opens: find its end, then whether a ':' makes it a key
            j, first = i + 1, -1  # first: the first escape's backslash
            while j < n and arr[j] != 34:
                if arr[j] == 92:
                    first = j if first < 0 else first
                    j += 1
                j += 1
            k = j + 1
            while k < n and (arr[k] == 32 or arr[k] == 9 or arr[k] == 13):
                k += 1
            if k >= n or arr[k] != 58:  # a value: its bytes as they are, then each escape and its byte blank
                out[i + 1 : j] = arr[i + 1 : j]
                kept += j - i - 1
                p = first
                while 0 <= p < j:
                    if arr[p] == 92:
                        out[p] = out[p + 1] = 32
                        kept -= 2
                        p += 2
                    else:
                        p += 1
            i = j
        i += 1
    return out, kept


@_jit
def hash_words(data: Any, offsets: Any) -> Any:
    """``(hashes, doc, start, end)`` of the words of normalized ``data`` whose documents start at ``offsets``:
    what :func:`evaltray.monitor.grams.hash_words` computes, in one pass over the bytes."""
    n = len(data)
    cap = n // 2 + 1  # untouched pages of these cost nothing
    hashes = np.empty(cap, dtype=np.uint64)
    doc = np.empty(cap, dtype=np.int64)
    start = np.empty(cap, dtype=np.int64)
    end = np.empty(cap, dtype=np.int64)
    w, d, i = 0, -1, 0
    while i < n:
        if data[i] == 32:
            i += 1
            continue
        s = i
        while d + 1 < len(offsets) and offsets[d + 1] <= s:  # the last document starting at or before it
            d += 1
        h, v, t = _U64(0), _U64(0), _U64(0)  # v: the current 8 bytes, little-endian; t: bits in it
        while i < n and data[i] != 32:
            if t == 64:  # a full chunk: the first one is kept as read, each later one mixed in
                h = v if i - s == 8 else _mix(h * _PRIME) ^ v
                v, t = _U64(0), _U64(0)
            v |= _U64(data[i]) << t
            t += _EIGHT
            i += 1
        size = i - s
        h = v if size <= 8 else _mix(h * _PRIME) ^ v
        hashes[w], doc[w], start[w], end[w] = _mix(h ^ (_U64(size) * _GOLDEN)), d, s, i
        w += 1
    return hashes[:w], doc[:w], start[:w], end[:w]


@_jit
def rolling(hashes: Any, doc: Any, length: int) -> Any:
    """``(hash, start)`` of every ``length``-gram of ``hashes`` that stays inside one document: what
    :func:`evaltray.monitor.grams.rolling` computes for one length (``sum(hashes[i + j] * P ** (length - 1 - j))``
    modulo 2**64, mixed), rolled along in one pass."""
    n = len(hashes)
    count = max(n - length + 1, 0)
    top = _U64(1)  # P ** (length - 1)
    for _ in range(length - 1):
        top *= _PRIME
    h = _U64(0)
    for j in range(min(length, n)):
        h = h * _PRIME + hashes[j]
    out = np.empty(count, dtype=np.uint64)
    at = np.empty(count, dtype=np.int64)
    m = 0
    for i in range(count):
        if i:
            h = (h - hashes[i - 1] * top) * _PRIME + hashes[i + length - 1]
        if doc[i] == doc[i + length - 1]:
            out[m], at[m] = _mix(h), i
            m += 1
    return out[:m], at[:m]


@_jit
def probe(h: Any, bits: Any, keys: Any, width: int) -> Any:
    """``(found, k)``: the indexes of ``h`` that are in the sorted ``keys`` and where each is in them; a bitmap
    of the keys' low ``width`` bits (packed, 64 to a word: it stays in cache) turns most grams away before the
    binary search."""
    mask = (_U64(1) << _U64(width)) - _U64(1)
    found = np.empty(len(h), dtype=np.int64)
    at = np.empty(len(h), dtype=np.int64)
    m = 0
    for i in range(len(h)):
        low = h[i] & mask
        if (bits[low >> _U64(6)] >> (low & _U64(63))) & _U64(1):
            k = np.searchsorted(keys, h[i])
            if k < len(keys) and keys[k] == h[i]:
                found[m], at[m] = i, k
                m += 1
    return found[:m], at[:m]


@_jit
def roll_probe(hashes: Any, doc: Any, length: int, bits: Any, keys: Any, width: int) -> Any:
    """``(start, k, hash)`` of each ``length``-gram inside one document that is in the sorted ``keys``: what
    :func:`rolling` then :func:`probe` find, without writing every gram down."""
    n = len(hashes)
    count = max(n - length + 1, 0)
    mask = (_U64(1) << _U64(width)) - _U64(1)
    top = _U64(1)
    for _ in range(length - 1):
        top *= _PRIME
    h = _U64(0)
    for j in range(min(length, n)):
        h = h * _PRIME + hashes[j]
    at = np.empty(16, dtype=np.int64)
    where = np.empty(16, dtype=np.int64)
    found = np.empty(16, dtype=np.uint64)
    m = 0
    for i in range(count):
        if i:
            h = (h - hashes[i - 1] * top) * _PRIME + hashes[i + length - 1]
        if doc[i] != doc[i + length - 1]:
            continue
        g = _mix(h)
        low = g & mask
        if not (bits[low >> _U64(6)] >> (low & _U64(63))) & _U64(1):
            continue
        k = np.searchsorted(keys, g)
        if k < len(keys) and keys[k] == g:
            if m == len(at):  # grow: hits are few
                at, where, found = (
                    np.concatenate((at, at)),
                    np.concatenate((where, where)),
                    np.concatenate((found, found)),
                )
            at[m], where[m], found[m] = i, k, g
            m += 1
    return at[:m], where[:m], found[:m]
