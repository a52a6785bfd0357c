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
from typing import Any

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore, one_row

from .plan import Plan, assign_traces, coverage

OUTLIERS = ("latency", "cost", "feedback", "errors", "long", "tool_failures", "terse", "verbose", "abandoned")
_REFUSAL = re.compile(r"\b(i can(?:no|')t|i am unable|i'm unable|i won't|sorry, but|i cannot help|unable to assist)\b", re.I)


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
    excluded: dict[str, int] = field(default_factory=dict)   # why traces were left out → how many


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
    base = "payload_kept" + (f" AND ({where})" if where else "")
    con = store.connect()
    try:
        q = one_row(con.execute(
            f"SELECT quantile_cont(latency_ms, 0.95), quantile_cont(cost_usd, 0.95), "
            f"quantile_cont(n_user_turns, 0.95), quantile_cont(output_chars, 0.95), quantile_cont(output_chars, 0.05) "
            f"FROM traces WHERE {base}"))
    finally:
        con.close()
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
            out[kind] = [t for t, text, n in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
                         if text and (n <= short or _REFUSAL.search(text[:300]))]
            continue
        pred = preds[kind]
        out[kind] = [] if pred is None else store.query(f"{base} AND ({pred})", columns=["trace_id"]).column(
            "trace_id").to_pylist()
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


def sample(ws: Workspace, plan: Plan | None, size: int, *, outliers: Iterable[str] = (), seed: int = 0,
           uniform: bool = False, clusters: dict[str, str] | None = None, exclude_clusters: Iterable[str] = (),
           dup_of: dict[str, str] | None = None, weights: dict[str, int] | None = None,
           where: str | None = None, set_name: str | None = None, outlier_share: float = 0.25,
           failure_share: float = 0.15) -> SampleResult:
    """Pick ``size`` traces: outlier strata first (up to ``outlier_share`` of the budget), then traffic
    from the clusters of traces reviewers tagged with a failure mode (up to ``failure_share``), then the
    plan's gaps (proportional within clusters, small clusters oversampled), then the rest by cluster.

    ``dup_of`` maps a trace to its duplicate group's representative: only representatives are picked,
    never a duplicate of a trace already in the pool or tray. ``uniform`` ignores strata.
    """
    if size <= 0:
        raise EvaltrayError("--size must be positive")
    set_name = ws.check_set(set_name)
    store = ws.trace_store()
    dup_of = dup_of or {}
    weights = weights or {}
    clusters = clusters or {}
    excluded_clusters = set(exclude_clusters)
    result = SampleResult()

    from evaltray.tray import candidates as pool

    taken_traces = {c.trace_id for c in pool.list_candidates(ws, set_name) if c.trace_id}
    taken_groups = {dup_of.get(t, t) for t in taken_traces}
    base = "payload_kept" + (f" AND ({where})" if where else "")
    scope = store.query(base, columns=["trace_id"]).column("trace_id").to_pylist()
    eligible: list[str] = []
    for t in scope:
        if t in taken_traces:
            result.excluded["already in the pool"] = result.excluded.get("already in the pool", 0) + 1
        elif dup_of.get(t, t) != t:
            result.excluded["duplicate of a representative"] = result.excluded.get("duplicate of a representative", 0) + 1
        elif t in taken_groups:
            result.excluded["duplicate of a pool/tray row"] = result.excluded.get("duplicate of a pool/tray row", 0) + 1
        elif clusters.get(t) in excluded_clusters:
            result.excluded["excluded cluster"] = result.excluded.get("excluded cluster", 0) + 1
        else:
            eligible.append(t)
    chosen: dict[str, Pick] = {}

    def take(tid: str, stratum: str, reason: str, labels: dict[str, str] | None = None) -> None:
        chosen[tid] = Pick(tid, stratum, reason, weights.get(tid, 1), labels or {})

    if uniform:
        for t in _ordered(eligible, seed)[:size]:
            take(t, "uniform", "uniform random sample of the traffic (seed 002)")
        result.picks = sorted(chosen.values(), key=lambda p: p.trace_id)
        return result

    eligible_set = set(eligible)
    kinds = list(outliers)
    if kinds:
        per_kind = max(1, int(size * outlier_share) // len(kinds))
        found = _outlier_ids(store, kinds, where)
        for kind in kinds:
            ids = [t for t in _ordered(found[kind], seed) if t in eligible_set and t not in chosen]
            for t in ids[:min(per_kind, size - len(chosen))]:
                take(t, f"outlier:{kind}", _OUTLIER_REASON[kind])
            if len(ids) < per_kind:
                result.shortfall[f"outlier:{kind}"] = per_kind - len(ids)

    if clusters and failure_share > 0:
        # failure modes found in review: more traffic like the failing traces, from the same clusters
        tagged = failure_clusters(ws, set_name, clusters)
        if tagged:
            per_tag = max(1, int(size * failure_share) // len(tagged))
            for tag, names in sorted(tagged.items()):
                ids = [t for t in _ordered(eligible, seed) if clusters.get(t) in names and t not in chosen]
                for t in ids[:min(per_tag, size - len(chosen))]:
                    take(t, f"failure:{tag}", f"same intent cluster ({clusters[t]!r}) as traces a reviewer "
                                              f"tagged {tag!r}")

    if plan is not None:
        cov = coverage(ws, plan, set_name, clusters=clusters, fillable_per_cell=0)
        assigned = assign_traces(ws, plan, where=where, clusters=clusters)
        # a trace fits a gap when the axes its rules set agree with the cell; traces that know more of
        # the cell's axes come first (a pick with unknown axes names what a curator must label)
        by_cell: dict[tuple[str, ...], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        for t in eligible:
            axes = assigned.get(t) or {}
            if axes.get(plan.grid[0]) is None:
                continue
            for c in cov.gaps:
                if all(axes.get(a) in (None, v) for a, v in c.cell.items()):
                    known = sum(axes.get(a) is not None for a in c.cell)
                    by_cell[tuple(c.cell.values())][known].append(t)
        for c in cov.gaps:
            if len(chosen) >= size:
                break
            key = tuple(c.cell.values())
            need = min(max(0, c.gap - c.pending), size - len(chosen))
            where_cell = ", ".join(f"{a}={v}" for a, v in c.cell.items())
            got = 0
            for known in sorted(by_cell[key], reverse=True):
                ids = [t for t in by_cell[key][known] if t not in chosen]
                for t in _spread_over_clusters(ids, clusters, need - got, seed):
                    axes = assigned.get(t) or {}
                    unknown = [a for a in c.cell if axes.get(a) is None]
                    reason = f"fills a coverage gap ({c.filled}/{c.target} in plan cell {where_cell})"
                    if unknown:
                        reason += f"; {', '.join(unknown)} not known from the trace: label it"
                    take(t, "cell:" + "/".join(key), reason, {a: v for a, v in c.cell.items() if a not in unknown})
                    got += 1
            if got < need:
                result.shortfall["cell:" + "/".join(key)] = need - got
    rest = [t for t in eligible if t not in chosen]
    for t in _spread_over_clusters(rest, clusters, size - len(chosen), seed):
        name = clusters.get(t)
        take(t, f"cluster:{name}" if name else "traffic",
             f"cluster {name!r}: proportional share, small clusters oversampled" if name else "remaining budget, uniform")
    result.picks = sorted(chosen.values(), key=lambda p: p.trace_id)
    return result


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


def add_picks(ws: Workspace, actor: str, picks: list[Pick], seed: int, set_name: str | None = None,
              cut: str = "last-user") -> list[str]:
    """Put the picks into the candidate pool, each with its stratum, reason, weight and plan labels."""
    from evaltray.tray import candidates as pool

    by_id = {p.trace_id: p for p in picks}

    def annotate(trace_id: str) -> dict[str, Any]:
        p = by_id[trace_id]
        return {"labels": p.labels, "weight": p.weight,
                "metadata": {"sample": {"stratum": p.stratum, "reason": p.reason, "seed": seed}}}

    return pool.add_from_traces(ws, actor, set_name=set_name, trace_ids=list(by_id), cut=cut, annotate=annotate)


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


__all__ = ["OUTLIERS", "Pick", "SampleResult", "allocate_clusters", "add_picks", "sample"]
