"""The holdout and the pr subset: stratified by slice, stable across releases, independent of input order."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.tray.holdout import allocate, assign_holdout, pr_subset, rank

#: rank order of these ids, from sha256("evaltray-holdout:<id>"): c-2, c-4, c-1, c-5, c-3
FIVE = ["c-1", "c-2", "c-3", "c-4", "c-5"]


def _cases(slices):
    return [{"id": f"c-{i:04d}", "slice": s} for i, s in enumerate(slices)]


def test_rank_is_a_salted_sha256_of_the_id():
    assert rank("a") == hashlib.sha256(b"evaltray-holdout:a").hexdigest()
    assert rank("a").startswith("3aae03de") and rank("b").startswith("6be3b07b")
    assert sorted(FIVE, key=rank) == ["c-2", "c-4", "c-1", "c-5", "c-3"]


def test_allocate_largest_remainder_by_hand():
    # 20% of 23 = 4.6 → 5; exact shares 2.17, 1.30, 0.87, 0.26 → floors 2,1,0,0 (3) + 2 largest remainders (c, b)
    assert allocate({"a": 10, "b": 6, "c": 4, "d": 1}, 5) == {"a": 2, "b": 2, "c": 1, "d": 0}
    assert allocate({"a": 0}, 3) == {"a": 0}
    # a tie (0.5 each) goes to the lower rank: rank("a") < rank("b")
    assert allocate({"a": 1, "b": 1}, 1) == {"a": 1, "b": 0}


def test_holdout_is_stratified_by_slice():
    cases = _cases(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    held = assign_holdout(cases, 0.2, set())
    by = {s: sum(1 for c in cases if c["id"] in held and c["slice"] == s) for s in "abc"}
    assert by == {"a": 10, "b": 6, "c": 4}


def test_holdout_picks_the_lowest_ranks_and_rounds_half_to_even():
    cases = [{"id": i, "slice": "s"} for i in FIVE]
    assert assign_holdout(cases, 0.4, set()) == {"c-2", "c-4"}  # 0.4 × 5 = 2
    assert assign_holdout(cases, 0.5, set()) == {"c-2", "c-4"}  # round(2.5) = 2
    assert assign_holdout(cases, 0.7, set()) == {"c-2", "c-4", "c-1", "c-5"}  # round(3.5) = 4


def test_held_out_case_stays_held_out_by_hand():
    # release 1 holds out c-2 and c-4; release 2 retires c-2: c-4 stays, and the lowest-ranked
    # newcomer to the dev split (c-1) tops the holdout back up to round(0.4 × 4) = 2
    v2 = [{"id": i, "slice": "s"} for i in ("c-1", "c-3", "c-4", "c-5")]
    assert assign_holdout(v2, 0.4, {"c-2", "c-4"}) == {"c-1", "c-4"}
    # a smaller fraction later never returns a held-out case to the dev split
    cases = [{"id": i, "slice": "s"} for i in FIVE]
    assert assign_holdout(cases, 0.2, {"c-2", "c-4", "c-1"}) == {"c-1", "c-2", "c-4"}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(5, 120), grow=st.integers(0, 60), drop=st.integers(0, 10), seed=st.integers(0, 10**6))
def test_holdout_stays_held_out_across_releases(n, grow, drop, seed):
    rng = random.Random(seed)
    slices = ["x", "y", "z"]
    v1 = [{"id": f"c-{rng.getrandbits(40):010x}", "slice": rng.choice(slices)} for _ in range(n)]
    held1 = assign_holdout(v1, 0.2, set())
    assert len(held1) == round(0.2 * n)
    survivors = v1[drop:]
    v2 = survivors + [{"id": f"c-{rng.getrandbits(40):010x}", "slice": rng.choice(slices)} for _ in range(grow)]
    held2 = assign_holdout(v2, 0.2, held1)
    assert {c["id"] for c in survivors if c["id"] in held1} <= held2
    # deterministic and independent of input order
    assert assign_holdout(list(reversed(v2)), 0.2, held1) == held2


def test_pr_subset_touches_every_slice():
    cases = _cases(["big"] * 200 + ["mid"] * 40 + ["tiny"] * 2)
    picked = pr_subset(cases, 50)
    slices = {c["slice"] for c in cases if c["id"] in picked}
    assert slices == {"big", "mid", "tiny"}
    assert 50 <= len(picked) <= 51
    assert pr_subset(cases[:30], 50) == sorted(c["id"] for c in cases[:30])


def test_pr_subset_by_hand():
    # size 4 over big 10 / tiny 1: shares 3.64 and 0.36 → big 4, tiny 0; tiny then gets its one row (5 in all)
    big = [{"id": f"b-{i}", "slice": "big"} for i in range(10)]
    picked = pr_subset([*big, {"id": "t-0", "slice": "tiny"}], 4)
    assert len(picked) == 5 and "t-0" in picked
    assert [i for i in picked if i != "t-0"] == sorted(sorted((c["id"] for c in big), key=rank)[:4])
