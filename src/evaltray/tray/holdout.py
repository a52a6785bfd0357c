"""The holdout and the named subsets of a release: stratified by slice, stable from one release to the next.

Every choice ranks ids by a hash of the id alone, so it does not depend on input order, and a case
held out once stays held out in every later release.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1 << 18)  # a release ranks each id twice (holdout, then the pr subset)
def rank(key: str) -> str:
    """A deterministic pseudo-random order over ids, independent of input order."""
    return hashlib.sha256(f"evaltray-holdout:{key}".encode()).hexdigest()


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` across strata in proportion to ``sizes`` (largest remainder, ties by name)."""
    n = sum(sizes.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in sizes}
    exact = {k: total * v / n for k, v in sizes.items()}
    out = {k: int(x) for k, x in exact.items()}
    left = total - sum(out.values())
    order = sorted(sizes, key=lambda k: (-(exact[k] - out[k]), rank(k)))
    for k in order[:left]:
        out[k] += 1
    return out


def _ids_by_slice(cases: list[dict[str, Any]]) -> dict[str, list[str]]:
    by_slice: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        by_slice[c["slice"]].append(c["id"])
    return by_slice


def assign_holdout(cases: list[dict[str, Any]], fraction: float, previous: set[str]) -> set[str]:
    """Stratified holdout by slice; every case already held out stays held out."""
    by_slice = _ids_by_slice(cases)
    target = allocate({s: len(ids) for s, ids in by_slice.items()}, round(fraction * len(cases)))
    held: set[str] = set()
    for s, ids in by_slice.items():
        kept = [i for i in ids if i in previous]
        held.update(kept)
        need = target[s] - len(kept)
        if need > 0:
            fresh = sorted((i for i in ids if i not in previous), key=rank)
            held.update(fresh[:need])
    return held


def pr_subset(cases: list[dict[str, Any]], size: int) -> list[str]:
    """A ~``size``-case subset of the dev split, stratified by slice, for pull-request checks."""
    if len(cases) <= size:
        return sorted(c["id"] for c in cases)
    by_slice = _ids_by_slice(cases)
    quota = allocate({s: len(v) for s, v in by_slice.items()}, size)
    # every slice gets at least one row while the budget allows: a PR check should touch each slice
    for s in sorted(by_slice, key=lambda s: (-len(by_slice[s]), s)):
        if quota[s] == 0 and sum(quota.values()) < size + len(by_slice):
            quota[s] = 1
    picked: list[str] = []
    for s, ids in by_slice.items():
        picked += heapq.nsmallest(quota[s], ids, key=rank)
    return sorted(picked)


__all__ = ["allocate", "assign_holdout", "pr_subset", "rank"]
