"""Stratified sampling to the plan: allocation by hand, outliers, gaps, determinism, no duplicates."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.core.store import Workspace
from evaltray.curate.plan import Plan, Rule
from evaltray.curate.sample import add_picks, allocate_clusters, sample
from evaltray.ingest import ingest_files
from evaltray.tray import candidates as pool


def test_allocate_clusters_oversamples_small_ones_by_hand():
    # sqrt weights 10, 5, 1 → exact shares 6.25, 3.125, 0.625 → floors 6, 3, 0; the small one gets its 1
    assert allocate_clusters({"a": 100, "b": 25, "c": 1}, 10) == {"a": 6, "b": 3, "c": 1}
    # a proportional split would have given c nothing and a 8
    assert allocate_clusters({"a": 3, "b": 1}, 10) == {"a": 3, "b": 1}  # never past a cluster's size
    assert allocate_clusters({}, 5) == {}


def _rows(n_refund=12, n_ship=6):
    rows = []
    for i in range(n_refund + n_ship):
        feature = "refunds" if i < n_refund else "shipping"
        msgs = [
            {"role": "user", "content": f"{feature} question number {i}"},
            {"role": "assistant", "content": "Sure." if i % 7 else "I'm sorry, but I can't help with that."},
        ]
        rows.append(
            {
                "id": f"t{i:02d}",
                "metadata": {"feature": feature, "latency_ms": 10_000 if i == 3 else 100 + i},
                "feedback": "down" if i == 5 else None,
                "messages": msgs,
            }
        )
    rows.append(
        {
            "id": "t99",
            "metadata": {"feature": "refunds"},
            "messages": [
                {"role": "user", "content": "hello?"},
                {"role": "assistant", "content": "Which order?"},
                {"role": "user", "content": "refunds for order 7"},
            ],
        }
    )  # ends on the user's turn
    return rows


def _ws(tmp_path, rows=None):
    ws = Workspace.init(tmp_path / "ws", user="alice")
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (rows or _rows())))
    ingest_files(ws, [path])
    return ws


PLAN = Plan(
    dimensions={"feature": ["refunds", "shipping"], "scenario": ["happy-path", "irate-user"], "persona": ["customer"]},
    target_per_cell=2,
    rules=[
        Rule(set={"feature": "refunds"}, where="feature = 'refunds'"),
        Rule(set={"feature": "shipping"}, where="feature = 'shipping'"),
        Rule(set={"scenario": "irate-user"}, where="feedback_score < 0"),
    ],
)


def test_outliers_are_picked_with_reasons(tmp_path):
    ws = _ws(tmp_path)
    res = sample(ws, None, 12, outliers=["latency", "feedback", "abandoned", "terse"], seed=1)
    by = {p.trace_id: p for p in res.picks}
    assert by["t03"].stratum == "outlier:latency" and by["t03"].reason == "latency above the 95th percentile"
    assert by["t05"].stratum == "outlier:feedback"
    assert by["t99"].stratum == "outlier:abandoned"
    assert {p.stratum for p in res.picks if p.trace_id in ("t00", "t07", "t14")} <= {"outlier:terse", "traffic"}
    assert len(res.picks) == 12
    ws.close()


def test_gaps_are_filled_first_and_meet_targets(tmp_path):
    ws = _ws(tmp_path)
    res = sample(ws, PLAN, 8, seed=0)
    from collections import Counter

    # each of the 4 gap cells gets its target of 2; t05 (thumbs down) is the only trace the rules put in
    # refunds/irate-user, so it comes first there, and the second pick is a refunds trace of unknown scenario
    assert Counter(p.stratum for p in res.picks) == {
        f"cell:{f}/{s}/customer": 2 for f in ("refunds", "shipping") for s in ("happy-path", "irate-user")
    }
    assert res.shortfall == {}
    irate = [p for p in res.picks if p.stratum == "cell:refunds/irate-user/customer"]
    t05 = next(p for p in irate if p.trace_id == "t05")
    assert t05.labels == {"feature": "refunds", "scenario": "irate-user"}
    assert t05.reason == (
        "fills a coverage gap (0/2 in plan cell feature=refunds, scenario=irate-user, "
        "persona=customer); persona not known from the trace: label it"
    )
    other = next(p for p in irate if p.trace_id != "t05")
    assert other.labels == {"feature": "refunds"}
    assert other.reason.endswith("; scenario, persona not known from the trace: label it")
    small = sample(ws, PLAN, 3, seed=0)
    assert len(small.picks) == 3
    added = add_picks(ws, "alice", res.picks, seed=0)
    assert len(added) == 8
    cand = next(c for c in pool.list_candidates(ws) if c.trace_id == "t05")
    assert cand.labels["scenario"] == "irate-user"
    assert cand.metadata["sample"]["reason"].startswith("fills a coverage gap (0/2 in plan cell feature=refunds")
    # sampling again never re-picks what is in the pool
    again = sample(ws, PLAN, 4, seed=0)
    assert not {p.trace_id for p in again.picks} & {p.trace_id for p in res.picks}
    assert again.excluded["already in the pool"] == 8
    ws.close()


def test_duplicates_are_never_picked_and_weights_travel(tmp_path):
    ws = _ws(tmp_path)
    dup_of = {"t01": "t00", "t02": "t00", "t00": "t00"}
    res = sample(ws, None, 50, dup_of=dup_of, weights={"t00": 3}, seed=0)
    ids = {p.trace_id for p in res.picks}
    assert "t00" in ids and not ids & {"t01", "t02"}
    assert next(p for p in res.picks if p.trace_id == "t00").weight == 3
    assert res.excluded == {"duplicate of a representative": 2}
    pool.add_from_traces(ws, "alice", trace_ids=["t00"])
    res2 = sample(ws, None, 50, dup_of=dup_of, seed=0)
    assert "t00" not in {p.trace_id for p in res2.picks}
    ws.close()


def test_uniform_and_excluded_clusters(tmp_path):
    ws = _ws(tmp_path)
    clusters = {f"t{i:02d}": ("faq" if i < 10 else "other") for i in range(18)}
    res = sample(ws, None, 5, uniform=True, seed=3)
    assert len(res.picks) == 5 and {p.stratum for p in res.picks} == {"uniform"}
    res = sample(ws, None, 50, clusters=clusters, exclude_clusters=["faq"], seed=3)
    assert not {p.trace_id for p in res.picks} & {f"t{i:02d}" for i in range(10)}
    assert res.excluded == {"excluded cluster": 10}
    ws.close()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 19))
def test_sampling_is_deterministic_for_a_seed(tmp_path_factory, seed, size):
    root = tmp_path_factory.mktemp("s")
    ws = _ws(root)
    a = sample(ws, PLAN, size, outliers=["latency", "terse"], seed=seed)
    b = sample(ws, PLAN, size, outliers=["latency", "terse"], seed=seed)
    assert [(p.trace_id, p.stratum) for p in a.picks] == [(p.trace_id, p.stratum) for p in b.picks]
    assert len(a.picks) == min(size, 19)
    ws.close()


def test_failure_mode_strata_follow_tagged_clusters(tmp_path):
    from evaltray.tray import review as rev

    ws = _ws(tmp_path)
    clusters = {f"t{i:02d}": ("late parcels" if i >= 12 else "refund asks") for i in range(18)}
    (cid,) = pool.add_from_traces(ws, "alice", trace_ids=["t13"])
    rev.record_review(
        ws,
        cid,
        "alice",
        rev.normalize_expected(ws, "alice", reference="r"),
        verdict="fail",
        failure_tags=["wrong-carrier"],
    )
    res = sample(ws, None, 10, clusters=clusters, seed=0)
    failing = [p for p in res.picks if p.stratum == "failure:wrong-carrier"]
    # 15% of 10 → 1 pick per tag, from the cluster of the tagged trace, never the tagged trace itself
    assert len(failing) == 1 and clusters[failing[0].trace_id] == "late parcels" and failing[0].trace_id != "t13"
    assert failing[0].reason == "same intent cluster ('late parcels') as traces a reviewer tagged 'wrong-carrier'"
    ws.close()


def test_sample_to_pool_samples_and_fills_the_pool_in_one_call(tmp_path):
    from evaltray.curate.plan import plan_path
    from evaltray.curate.sample import sample_to_pool

    ws = _ws(tmp_path)
    # no plan.yaml: a sample without a plan, nothing added on a dry run
    dry = sample_to_pool(ws, "alice", 4, seed=2, dry_run=True)
    assert (dry.plan, dry.plan_file, dry.added) == (None, None, [])
    assert [p.trace_id for p in dry.sample.picks] == [p.trace_id for p in sample(ws, None, 4, seed=2).picks]
    assert pool.list_candidates(ws) == []
    # the workspace's plan.yaml is read when it exists; the picks become candidates with their reasons
    PLAN.save(plan_path(ws))
    expected = [(p.trace_id, p.stratum) for p in sample(ws, PLAN, 8, seed=0).picks]
    fill = sample_to_pool(ws, "alice", 8, seed=0)
    assert fill.plan_file == plan_path(ws) and fill.plan is not None and fill.plan.grid == PLAN.grid
    assert [(p.trace_id, p.stratum) for p in fill.sample.picks] == expected
    by_trace = {c.trace_id: c for c in pool.list_candidates(ws)}
    assert sorted(fill.added) == sorted(c.id for c in by_trace.values()) and len(fill.added) == 8
    assert by_trace["t05"].metadata["sample"] == {
        "stratum": "cell:refunds/irate-user/customer",
        "seed": 0,
        "reason": next(p.reason for p in fill.sample.picks if p.trace_id == "t05"),
    }
    # uniform ignores the plan; a plan object is used as given
    uniform = sample_to_pool(ws, "alice", 2, uniform=True, seed=1, dry_run=True)
    assert uniform.plan is None and {p.stratum for p in uniform.sample.picks} == {"uniform"}
    assert sample_to_pool(ws, "alice", 2, plan=PLAN, dry_run=True).plan_file is None
    ws.close()


def test_a_predicate_cannot_undo_the_payload_filter_anywhere(tmp_path):
    """`1) OR (1` would close the parenthesis after `payload_kept AND (` and widen the scope; every stage that
    scopes by --where refuses it (it failed before in sampling, outliers, dedup and the candidate pool)."""
    from evaltray.core.errors import QueryError
    from evaltray.curate.derived import dedup_traces

    ws = _ws(tmp_path)
    sneaky = "1) OR (1"
    calls = [
        lambda: sample(ws, None, 4, seed=1, where=sneaky),
        lambda: sample(ws, None, 4, outliers=["latency"], seed=1, where=sneaky),
        lambda: dedup_traces(ws, where=sneaky),
        lambda: pool.add_from_traces(ws, "alice", where=sneaky),
    ]
    for call in calls:
        with pytest.raises(QueryError, match=r"must be a single boolean expression"):
            call()
    ws.close()
