"""Stratified sampling of traces into the candidate pool, to the coverage plan's targets.

Seed 001: cluster by intent, take proportionally from large clusters and oversample small ones, and
add outliers (latency and cost above p95, negative feedback, errors, long conversations, tool
failures, terse refusals and runaway answers, conversations abandoned without resolution). Seed 002:
a plain uniform sample — the distribution users actually generate — is an option too. Every pick says
why it was made; the same seed gives the same sample.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.traces import TraceStore, conjunction, one_row, where_clause

from .derived import curation_maps
from .plan import CellCoverage, Plan, assign_traces, coverage, load_plan, plan_path

OUTLIERS = ("latency", "cost", "feedback", "errors", "long", "tool_failures", "terse", "verbose", "abandoned")
_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i am unable|i'm unable|i won't|sorry, but|i cannot help|unable to assist)\b", re.I
)


@dataclass
class Pick:
    trace_id: str
    stratum: str
    reason: str
    weight: int = 1
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SampleResult:
    picks: list[Pick] = field(default_factory=list)
    shortfall: dict[str, int] = field(default_factory=dict)  # stratum → how many the pool could not supply
    excluded: dict[str, int] = field(default_factory=dict)  # why traces were left out → how many


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _ordered(ids: Iterable[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda t: _rank(seed, t))


def allocate_clusters(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Proportional to cluster size, with small clusters oversampled: shares follow sqrt(size).

    Every cluster that has traces gets at least one pick while the budget allows.
    """
    sizes = {k: v for k, v in sizes.items() if v > 0}
    if not sizes or total <= 0:
        return {k: 0 for k in sizes}
    weights = {k: math.sqrt(v) for k, v in sizes.items()}
    w_total = sum(weights.values())
    exact = {k: total * w / w_total for k, w in weights.items()}
    out = {k: min(sizes[k], int(x)) for k, x in exact.items()}
    for k in sorted(sizes, key=lambda k: (-sizes[k], k)):
        if out[k] == 0 and sum(out.values()) < total:
            out[k] = 1
    # hand out what is left by largest remainder, never past a cluster's size
    while sum(out.values()) < total:
        room = [k for k in sizes if out[k] < sizes[k]]
        if not room:
            break
        k = max(room, key=lambda k: (exact[k] - out[k], -len(k), k))
        out[k] += 1
    return out


def _outlier_ids(store: TraceStore, kinds: Iterable[str], where: str | None) -> dict[str, list[str]]:
    """Trace ids per outlier kind; quantiles are taken over the traces in scope."""
    base = conjunction("payload_kept", where)
    with store.sandboxed(where) as con:
        q = one_row(
            con.execute(
                f"SELECT quantile_cont(latency_ms, 0.95), quantile_cont(cost_usd, 0.95), "
                f"quantile_cont(n_user_turns, 0.95), quantile_cont(output_chars, 0.95), quantile_cont(output_chars, 0.05) "
                f"FROM traces {where_clause(base)}"
            )
        )
    lat95, cost95, turns95, long95, short05 = q
    preds = {
        "latency": f"latency_ms > {lat95}" if lat95 is not None else None,
        "cost": f"cost_usd > {cost95}" if cost95 is not None else None,
        "feedback": "feedback_score < 0",
        "errors": "status = 'error'",
        "long": f"n_user_turns > {turns95} AND n_user_turns > 1" if turns95 is not None else None,
        "tool_failures": "n_tool_errors > 0",
        "verbose": f"output_chars > {long95}" if long95 is not None else None,
        "terse": f"output_chars > 0 AND output_chars < {max(short05 or 0, 1)}" if short05 is not None else None,
    }
    out: dict[str, list[str]] = {}
    for kind in kinds:
        if kind not in OUTLIERS:
            raise EvaltrayError(f"unknown outlier kind {kind!r} (one of: {', '.join(OUTLIERS)})")
        if kind == "abandoned":
            out[kind] = _abandoned(store, base)
            continue
        if kind == "terse":
            # short answers, or answers that read as refusals
            table = store.query(base, columns=["trace_id", "output_text", "output_chars"])
            short = short05 or 0
            out[kind] = [
                t
                for t, text, n in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
                if text and (n <= short or _REFUSAL.search(text[:300]))
            ]
            continue
        pred = preds[kind]
        out[kind] = (
            []
            if pred is None
            else store.query(f"{base} AND ({pred})", columns=["trace_id"]).column("trace_id").to_pylist()
        )
    return out


def _abandoned(store: TraceStore, base: str) -> list[str]:
    """Silent failures: the conversation ends on the user's turn (no answer came), or the last answer
    asks the user something and no reply followed. Feedback-mined rows miss these (seed 003)."""
    table = store.query(base, columns=["trace_id", "messages"])
    out = []
    import orjson

    for tid, raw in zip(table.column("trace_id").to_pylist(), table.column("messages").to_pylist(), strict=True):
        msgs = orjson.loads(raw) if raw else []
        said = [m for m in msgs if m.get("role") in ("user", "assistant") and m.get("content")]
        if not said:
            continue
        last = said[-1]
        if last["role"] == "user" or (len(said) > 2 and last["content"].rstrip().endswith("?")):
            out.append(tid)
    return out


class _Picks:
    """The picks made so far, at most ``size``; a trace is picked once, for the first reason found."""

    def __init__(self, size: int, weights: dict[str, int]) -> None:
        self.size = size
        self.weights = weights
        self.chosen: dict[str, Pick] = {}

    @property
    def room(self) -> int:
        return self.size - len(self.chosen)

    def take(self, tid: str, stratum: str, reason: str, labels: dict[str, str] | None = None) -> None:
        self.chosen[tid] = Pick(tid, stratum, reason, self.weights.get(tid, 1), labels or {})

    def sorted(self) -> list[Pick]:
        return sorted(self.chosen.values(), key=lambda p: p.trace_id)


def sample(
    ws: Workspace,
    plan: Plan | None,
    size: int,
    *,
    outliers: Iterable[str] = (),
    seed: int = 0,
    uniform: bool = False,
    clusters: dict[str, str] | None = None,
    exclude_clusters: Iterable[str] = (),
    dup_of: dict[str, str] | None = None,
    weights: dict[str, int] | None = None,
    where: str | None = None,
    set_name: str | None = None,
    outlier_share: float = 0.25,
    failure_share: float = 0.15,
) -> SampleResult:
    """Pick ``size`` traces: outlier strata first (up to ``outlier_share`` of the budget), then traffic
    from the clusters of traces reviewers tagged with a failure mode (up to ``failure_share``), then the
    plan's gaps (proportional within clusters, small clusters oversampled), then the rest by cluster.

    ``dup_of`` maps a trace to its duplicate group's representative: only representatives are picked,
    never a duplicate of a trace already in the pool or tray. ``uniform`` ignores strata.
    """
    if size <= 0:
        raise EvaltrayError("--size must be positive")
    set_name = ws.check_set(set_name)
    clusters = clusters or {}
    result = SampleResult()
    eligible = _eligible(ws, set_name, where, dup_of or {}, clusters, set(exclude_clusters), result.excluded)
    picks = _Picks(size, weights or {})
    if uniform:
        for t in _ordered(eligible, seed)[:size]:
            picks.take(t, "uniform", "uniform random sample of the traffic (seed 002)")
        result.picks = picks.sorted()
        return result
    kinds = list(outliers)
    if kinds:
        result.shortfall.update(_pick_outliers(ws.trace_store(), picks, eligible, kinds, where, seed, outlier_share))
    if clusters and failure_share > 0:
        _pick_failures(ws, set_name, picks, eligible, clusters, seed, failure_share)
    if plan is not None:
        result.shortfall.update(_pick_gaps(ws, plan, set_name, picks, eligible, clusters, where, seed))
    rest = [t for t in eligible if t not in picks.chosen]
    for t in _spread_over_clusters(rest, clusters, picks.room, seed):
        name = clusters.get(t)
        picks.take(
            t,
            f"cluster:{name}" if name else "traffic",
            f"cluster {name!r}: proportional share, small clusters oversampled"
            if name
            else "remaining budget, uniform",
        )
    result.picks = picks.sorted()
    return result


def _eligible(
    ws: Workspace,
    set_name: str,
    where: str | None,
    dup_of: dict[str, str],
    clusters: dict[str, str],
    excluded_clusters: set[str],
    excluded: dict[str, int],
) -> list[str]:
    """The traces in scope that may be picked; ``excluded`` counts the others by why they were left out."""
    from evaltray.tray import candidates as pool

    taken_traces = {c.trace_id for c in pool.list_candidates(ws, set_name) if c.trace_id}
    taken_groups = {dup_of.get(t, t) for t in taken_traces}
    base = conjunction("payload_kept", where)
    scope = ws.trace_store().query(base, columns=["trace_id"]).column("trace_id").to_pylist()
    eligible: list[str] = []
    for t in scope:
        if t in taken_traces:
            why = "already in the pool"
        elif dup_of.get(t, t) != t:
            why = "duplicate of a representative"
        elif t in taken_groups:
            why = "duplicate of a pool/tray row"
        elif clusters.get(t) in excluded_clusters:
            why = "excluded cluster"
        else:
            eligible.append(t)
            continue
        excluded[why] = excluded.get(why, 0) + 1
    return eligible


def _pick_outliers(
    store: TraceStore, picks: _Picks, eligible: list[str], kinds: list[str], where: str | None, seed: int, share: float
) -> dict[str, int]:
    """An equal share of ``share`` of the budget per outlier kind; returns what each kind fell short by."""
    shortfall = {}
    eligible_set = set(eligible)
    per_kind = max(1, int(picks.size * share) // len(kinds))
    found = _outlier_ids(store, kinds, where)
    for kind in kinds:
        ids = [t for t in _ordered(found[kind], seed) if t in eligible_set and t not in picks.chosen]
        for t in ids[: min(per_kind, picks.room)]:
            picks.take(t, f"outlier:{kind}", _OUTLIER_REASON[kind])
        if len(ids) < per_kind:
            shortfall[f"outlier:{kind}"] = per_kind - len(ids)
    return shortfall


def _pick_failures(
    ws: Workspace, set_name: str, picks: _Picks, eligible: list[str], clusters: dict[str, str], seed: int, share: float
) -> None:
    """Failure modes found in review: more traffic like the failing traces, from the same clusters."""
    tagged = failure_clusters(ws, set_name, clusters)
    if not tagged:
        return
    per_tag = max(1, int(picks.size * share) // len(tagged))
    for tag, names in sorted(tagged.items()):
        ids = [t for t in _ordered(eligible, seed) if clusters.get(t) in names and t not in picks.chosen]
        for t in ids[: min(per_tag, picks.room)]:
            picks.take(
                t, f"failure:{tag}", f"same intent cluster ({clusters[t]!r}) as traces a reviewer tagged {tag!r}"
            )


def _pick_gaps(
    ws: Workspace,
    plan: Plan,
    set_name: str,
    picks: _Picks,
    eligible: list[str],
    clusters: dict[str, str],
    where: str | None,
    seed: int,
) -> dict[str, int]:
    """Fill the plan's gaps, largest traffic first; returns what each cell fell short by."""
    shortfall = {}
    cov = coverage(ws, plan, set_name, clusters=clusters, fillable_per_cell=0)
    assigned = assign_traces(ws, plan, where=where, clusters=clusters)
    by_cell = _gap_fits(plan, cov.gaps, eligible, assigned)
    for c in cov.gaps:
        if picks.room <= 0:
            break
        key = tuple(c.cell.values())
        need = min(max(0, c.gap - c.pending), picks.room)
        where_cell = ", ".join(f"{a}={v}" for a, v in c.cell.items())
        got = 0
        for known in sorted(by_cell[key], reverse=True):
            ids = [t for t in by_cell[key][known] if t not in picks.chosen]
            for t in _spread_over_clusters(ids, clusters, need - got, seed):
                axes = assigned.get(t) or {}
                unknown = [a for a in c.cell if axes.get(a) is None]
                reason = f"fills a coverage gap ({c.filled}/{c.target} in plan cell {where_cell})"
                if unknown:
                    reason += f"; {', '.join(unknown)} not known from the trace: label it"
                picks.take(t, "cell:" + "/".join(key), reason, {a: v for a, v in c.cell.items() if a not in unknown})
                got += 1
        if got < need:
            shortfall["cell:" + "/".join(key)] = need - got
    return shortfall


def _gap_fits(
    plan: Plan, gaps: list[CellCoverage], eligible: list[str], assigned: dict[str, dict[str, str]]
) -> dict[tuple[str, ...], dict[int, list[str]]]:
    """Per gap cell, the traces that fit it, by how many of its axes they know.

    A trace fits a gap when the axes its rules set agree with the cell; traces that know more of the cell's
    axes come first (a pick with unknown axes names what a curator must label).
    """
    by_cell: dict[tuple[str, ...], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for t in eligible:
        axes = assigned.get(t) or {}
        if axes.get(plan.grid[0]) is None:
            continue
        for c in gaps:
            if all(axes.get(a) in (None, v) for a, v in c.cell.items()):
                known = sum(axes.get(a) is not None for a in c.cell)
                by_cell[tuple(c.cell.values())][known].append(t)
    return by_cell


def failure_clusters(ws: Workspace, set_name: str, clusters: dict[str, str]) -> dict[str, set[str]]:
    """Failure tag → names of the clusters holding traces whose latest review carries that tag."""
    from evaltray.tray import candidates as pool
    from evaltray.tray.review import latest_review

    out: dict[str, set[str]] = defaultdict(set)
    for cand in pool.list_candidates(ws, set_name):
        name = clusters.get(cand.trace_id or "")
        if not name:
            continue
        review = latest_review(ws, cand.id)
        for tag in review.failure_tags if review else []:
            out[tag].add(name)
    return dict(out)


def add_picks(
    ws: Workspace, actor: str, picks: list[Pick], seed: int, set_name: str | None = None, cut: str = "last-user"
) -> list[str]:
    """Put the picks into the candidate pool, each with its stratum, reason, weight and plan labels."""
    from evaltray.tray import candidates as pool

    by_id = {p.trace_id: p for p in picks}

    def annotate(trace_id: str) -> dict[str, Any]:
        p = by_id[trace_id]
        return {
            "labels": p.labels,
            "weight": p.weight,
            "metadata": {"sample": {"stratum": p.stratum, "reason": p.reason, "seed": seed}},
        }

    return pool.add_from_traces(ws, actor, set_name=set_name, trace_ids=list(by_id), cut=cut, annotate=annotate)


@dataclass
class PoolFill:
    """What :func:`sample_to_pool` picked, and the candidates it added for the picks."""

    sample: SampleResult
    added: list[str]  # candidate ids; none on a dry run
    plan: Plan | None  # the plan sampled to (None: a uniform sample, or no plan)
    plan_file: Path | None  # where that plan was read from


def sample_to_pool(
    ws: Workspace,
    actor: str,
    size: int,
    *,
    plan: Plan | Path | None = None,
    outliers: Iterable[str] = (),
    seed: int = 0,
    uniform: bool = False,
    exclude_clusters: Iterable[str] = (),
    where: str | None = None,
    set_name: str | None = None,
    cut: str = "last-user",
    dry_run: bool = False,
) -> PoolFill:
    """Sample ``size`` traces (see :func:`sample`) over the last dedup and clustering runs and add the picks to
    the candidate pool (nothing is added on a dry run).

    ``plan`` is a plan, a plan file, or None for the workspace's ``plan.yaml`` when there is one; a ``uniform``
    sample ignores it.
    """
    ws.require(actor, CURATE_ROLES, "sampling")
    plan_file = None
    if uniform:
        plan = None
    elif not isinstance(plan, Plan):
        path = plan or plan_path(ws)
        plan_file = path if plan is not None or path.exists() else None
        plan = load_plan(ws, plan_file) if plan_file is not None else None
    maps = curation_maps(ws)
    result = sample(
        ws,
        plan,
        size,
        outliers=outliers,
        seed=seed,
        uniform=uniform,
        clusters=maps.clusters,
        exclude_clusters=exclude_clusters,
        dup_of=maps.dup_of,
        weights=maps.weights,
        where=where,
        set_name=set_name,
    )
    added = [] if dry_run else add_picks(ws, actor, result.picks, seed, set_name=set_name, cut=cut)
    if not dry_run:
        ws.record(actor, "sample", set_name, size=size, seed=seed, picks=len(result.picks), added=len(added))
    return PoolFill(result, added, plan, plan_file)


def _spread_over_clusters(ids: list[str], clusters: dict[str, str], n: int, seed: int) -> list[str]:
    if n <= 0 or not ids:
        return []
    groups: dict[str, list[str]] = defaultdict(list)
    for t in ids:
        groups[clusters.get(t, "")].append(t)
    quota = allocate_clusters({k: len(v) for k, v in groups.items()}, min(n, len(ids)))
    picked = []
    for k in sorted(groups):
        picked += _ordered(groups[k], seed)[: quota.get(k, 0)]
    return _ordered(picked, seed)[:n]


_OUTLIER_REASON = {
    "latency": "latency above the 95th percentile",
    "cost": "cost above the 95th percentile",
    "feedback": "negative user feedback",
    "errors": "the trace ended in an error",
    "long": "conversation longer than the 95th percentile of user turns",
    "tool_failures": "a tool call failed",
    "terse": "terse answer or refusal (output length at or below the 5th percentile)",
    "verbose": "runaway answer (output length above the 95th percentile)",
    "abandoned": "conversation abandoned without resolution (silent failure)",
}


__all__ = ["OUTLIERS", "Pick", "PoolFill", "SampleResult", "add_picks", "allocate_clusters", "sample", "sample_to_pool"]
