"""Drift: how far a rolling window of live traces has moved from a baseline (issue 14 part 3).

The baseline is the window before (``--baseline-window 30d``: the 30 days before the window) or a release's
cases (``--baseline 1.2.0``). Each metric has a documented default threshold (:data:`THRESHOLDS`, amber and
red) and a level; the report's level is the worst of them. Metrics:

- ``centroid_shift``: cosine distance between the unit means of the two sides' embeddings, less what chance
  alone gives two samples of that size (the 95th percentile over :data:`PERMUTATIONS` seeded reshuffles of
  both sides' vectors): two halves of 200 varied queries are ~0.05 apart with nothing moved;
- ``cluster_jsd``: Jensen–Shannon divergence (base 2, 0 to 1) of the stored clusters' shares;
- ``novel_share``: the share of window traces in no known region, less the baseline's own false-alarm rate.
  A trace's novelty is how much farther it lies from its ``k`` nearest baseline traces than those lie from
  their own neighbours (a local-density ratio, :class:`NoveltyIndex`) plus its contrast: the share of window
  traces among its 20 nearest traces of both sides, less chance (:func:`window_novelty`). It is novel above
  the 90th percentile of what the baseline's own traces score (picked on Banking77 train). Novel traces are
  clustered; each cluster of :data:`MIN_NEW_CLUSTER` or more whose traces' mean contrast is at least
  :data:`MIN_NEW_CONTRAST` (concentrated in the window) is a new intent,
  shown with examples and a suggested slice;
- ``intent_kl``: Kullback–Leibler divergence (bits) of the window's cluster shares from the baseline's, each
  cluster's count smoothed by adding one half (so a cluster one side never saw does not make it infinite);
- ``new:<column>``: the share of window traffic on a model, model version, provider (vendor), prompt template,
  system-message hash or tool-schema hash the baseline never had;
- ``input_length``: relative change of the mean input length; ``tool_use``: change of the share of traces
  that call a tool;
- ``language``: the share of traffic that changed language (total variation distance of the sampled texts'
  languages, by :func:`evaltray.monitor.style.language`);
- ``retrieval_bm25``: for questions asked on both sides with retrieved passages (a case's ``input.context``,
  its top-k snapshot when authored; a trace's ``context``), one minus how much of the old passages the new
  ones still hold: each old passage's best BM25 score against the new passages over its score against itself
  (:func:`bm25_overlap`), averaged. It sees a re-chunked or re-worded index that keeps document ids;
- ``retrieval_topk``: for questions asked on both sides (the same text, case and spaces aside) with retrieved
  document ids, one minus the mean overlap (Jaccard) of their top-k ids: the retriever answering differently.

Text metrics use a seeded uniform sample of at most :data:`SAMPLE` traces a side, so a report over a million
traces costs a few DuckDB aggregates and two samples; they embed each text with its numbers masked
(:func:`intent_text`): order numbers, dates and running counts grow with time and are no intent. A side with
fewer than :data:`MIN_TRACES` traces gives no levels: the report says the window is too small instead of
reporting noise as drift.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, now

__all__ = [
    "CATEGORICAL",
    "DRIFT_DIR",
    "drift_history",
    "latest_level",
    "MIN_TRACES",
    "THRESHOLDS",
    "DriftReport",
    "Metric",
    "NewCluster",
    "NoveltyIndex",
    "Side",
    "compare",
    "contrast",
    "intent_text",
    "jsd",
    "window_novelty",
]

#: (amber, red) for each metric; documented defaults (the seeds give no number for these).
THRESHOLDS: dict[str, tuple[float, float]] = {
    "centroid_shift": (0.02, 0.05),
    "cluster_jsd": (0.05, 0.10),
    "novel_share": (0.05, 0.10),
    "new_values": (0.01, 0.50),
    "input_length": (0.25, 0.50),
    "tool_use": (0.10, 0.20),
    "intent_kl": (0.20, 0.40),
    "language": (0.10, 0.20),
    "retrieval_topk": (0.30, 0.50),
    "retrieval_bm25": (0.30, 0.50),
}
#: The trace columns whose new values are changes to report (a new model, prompt, system message, tool schema).
CATEGORICAL = ("model", "model_version", "provider", "prompt_template_id", "system_hash", "tools_hash")
MIN_TRACES = 50
SAMPLE = 4000
#: Neighbours the novelty score looks at (picked on Banking77 train, see bench/bench_drift.py).
NOVELTY_K = 5
#: The baseline's own share of traces called novel: the cutoff is its (1 - this) quantile.
FALSE_ALARM = 0.10
#: Weight of the window contrast in a window trace's novelty (:func:`window_novelty`); 1 and 20 neighbours picked on
#: Banking77 train (AUROC 0.877 without, 0.938 with). It once called 16% of a million templated chats with no new
#: intent novel: their running counters were new to the baseline (:func:`intent_text` masks numbers now).
CONTRAST = 1.0
CONTRAST_K = 20
#: A group of novel window traces is a new cluster only when its traces' mean contrast is at least this (picked on
#: Banking77 train: seen-intent groups 0.11-0.17, unseen 0.14-0.41).
MIN_NEW_CONTRAST = 0.15
MIN_NEW_CLUSTER = 5
#: Questions asked on both sides that ``retrieval_topk`` needs before it says anything.
MIN_SHARED_QUERIES = 5
#: Distinct retrieving questions read a side for ``retrieval_topk``.
QUERY_LIMIT = 20000
_CHUNK = 2048


class DriftError(EvaltrayError):
    """A drift report that cannot be made: a bad window, no baseline."""


def jsd(p: Any, q: Any) -> float:
    """Jensen–Shannon divergence of two distributions (counts or shares; normalized here), base 2: 0 to 1."""
    a, b = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if a.shape != b.shape or a.sum() <= 0 or b.sum() <= 0 or (a < 0).any() or (b < 0).any():
        raise DriftError("two non-empty distributions of the same length are needed")
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return max(0.0, (kl(a) + kl(b)) / 2)


def kl_smoothed(p: Any, q: Any, alpha: float = 0.5) -> float:
    """Kullback–Leibler divergence KL(p || q) in bits of two count vectors, each count plus ``alpha`` first."""
    a, b = np.asarray(p, dtype=float) + alpha, np.asarray(q, dtype=float) + alpha
    if a.shape != b.shape or a.size == 0 or (a <= 0).any() or (b <= 0).any():
        raise DriftError("two count vectors of the same non-zero length are needed")
    a, b = a / a.sum(), b / b.sum()
    return max(0.0, float(np.sum(a * np.log2(a / b))))


def total_variation(p: Counter[str], q: Counter[str]) -> float:
    """Half the L1 distance of two distributions given as counts: the share that would have to move."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        raise DriftError("two non-empty distributions are needed")
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in set(p) | set(q))


def _top_k(x: np.ndarray, base: np.ndarray, k: int, skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar ``base`` rows of each ``x`` row (unit vectors): indexes and similarities."""
    idx = np.empty((len(x), k), dtype=np.int64)
    sim = np.empty((len(x), k), dtype=np.float32)
    for start in range(0, len(x), _CHUNK):
        s = x[start : start + _CHUNK] @ base.T
        if skip_self:
            rows = np.arange(len(s))
            s[rows, rows + start] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        idx[start : start + len(s)] = part
        sim[start : start + len(s)] = np.take_along_axis(s, part, 1)
    return idx, sim


@dataclass(frozen=True)
class NoveltyIndex:
    """Novelty of traces against a baseline's unit vectors: 1 minus the ratio of a trace's mean similarity to
    its ``k`` nearest baseline traces over those traces' own mean similarity to their neighbours."""

    vectors: np.ndarray
    local: np.ndarray
    k: int
    cutoff: float

    @classmethod
    def fit(cls, vectors: np.ndarray, k: int = NOVELTY_K, false_alarm: float = FALSE_ALARM) -> NoveltyIndex:
        base = np.asarray(vectors, dtype=np.float32)
        if len(base) <= k:
            raise DriftError(f"a novelty baseline needs more than {k} traces, got {len(base)}")
        _, sim = _top_k(base, base, k, skip_self=True)
        local = np.maximum(sim.mean(1), 1e-6)
        index = cls(base, local, k, 0.0)
        own = index.score(base, skip_self=True)
        return cls(base, local, k, float(np.quantile(own, 1 - false_alarm)))

    def score(self, x: np.ndarray, skip_self: bool = False) -> np.ndarray:
        idx, sim = _top_k(np.asarray(x, dtype=np.float32), self.vectors, self.k, skip_self)
        return 1.0 - sim.mean(1) / self.local[idx].mean(1)


def contrast(x: np.ndarray, base: np.ndarray, k: int = CONTRAST_K) -> np.ndarray:
    """For each window trace (row of ``x``), the share of its ``k`` nearest traces in window and baseline pooled
    that are window traces, less the share chance gives when both come from one traffic: a new intent's traces
    have each other near and no baseline trace. Sizes cancel out: the same with a small window or a large one.
    Copies of the trace's own text (and the trace itself) are not neighbours: a question asked twice is not
    two traces of a new intent, and a trace whose text the baseline has (a copy) gets 0: it is no new intent, and
    its neighbours' shares, all its copies' at once, would make a lottery of heavily repeated traffic. Traces
    tied at the ``k``-th similarity share the places left, each side by its count among them: which of many
    copies of one template a sort happens to pick says nothing."""
    m, n = len(x), len(base)
    k = min(k, m + n - 1)
    if m < 2 or k < 1:
        return np.zeros(m, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    pooled = np.vstack([x, base]).astype(np.float32)
    chance = (m - 1) / (m + n - 1)
    share = np.empty(m, dtype=np.float32)
    for start in range(0, m, _CHUNK):
        s = x[start : start + _CHUNK] @ pooled.T
        copy = s >= 1 - 1e-5
        s[copy] = -np.inf
        seen = copy[:, m:].any(1)
        share[start : start + len(s)] = np.where(seen, chance, _window_share(s, m, k, chance))
    return share - np.float32(chance)


#: Similarities this close are one value to :func:`contrast` (copies of a text dotted at different places in one
#: matrix product can differ in the last bits).
_TIE = 1e-6


def _window_share(s: np.ndarray, m: int, k: int, chance: float) -> np.ndarray:
    """Per row of similarities ``s`` (columns: ``m`` window traces, then the baseline; a copy at -inf), the share
    of window traces among its ``k`` nearest, those tied with the ``k``-th counted in proportion; among fewer
    when fewer are not copies, and ``chance`` when none is."""
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]
    above = s > kth + _TIE
    tied = (s >= kth - _TIE) & ~above & np.isfinite(kth)  # a row with fewer than k non-copies ties on nothing
    n_above, n_tied = above.sum(1), tied.sum(1)
    taken = np.minimum(k - n_above, n_tied)
    window = above[:, :m].sum(1) + taken * tied[:, :m].sum(1) / np.maximum(n_tied, 1)
    counted = n_above + taken
    return np.where(counted > 0, window / np.maximum(counted, 1), chance)


#: Seeded halvings of the baseline whose contrasts make a window's novelty cutoff (each baseline trace gets one
#: contrast per halving, as one half's trace against the other half).
HALVINGS = 3


def window_novelty(
    base: np.ndarray,
    window: np.ndarray,
    k: int = NOVELTY_K,
    false_alarm: float = FALSE_ALARM,
    weight: float = CONTRAST,
    seed: int = 0,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Each window trace's novelty against the baseline (unit vectors), the cutoff above which it is novel, and
    each one's :func:`contrast`.

    The score is :meth:`NoveltyIndex.score` plus ``weight`` times :func:`contrast`: one trace unlike the
    baseline scores high, a group of window traces like each other and unlike the baseline higher still. The
    cutoff is the ``1 - false_alarm`` quantile of what the baseline's own traces score (their novelty among the
    other baseline traces, their contrast as one seeded half against the other): what traffic with no drift
    gets."""
    base, window = np.asarray(base, dtype=np.float32), np.asarray(window, dtype=np.float32)
    index = NoveltyIndex.fit(base, k)
    near = contrast(window, base)
    score = index.score(window) + weight * near
    own = index.score(base, skip_self=True)
    rng = np.random.default_rng(seed)
    pooled = []
    for _ in range(HALVINGS):
        order = rng.permutation(len(base))
        one, two = order[: len(base) // 2], order[len(base) // 2 :]
        mixed = np.empty(len(base), dtype=np.float32)
        mixed[one], mixed[two] = contrast(base[one], base[two]), contrast(base[two], base[one])
        pooled.append(own + weight * mixed)
    return score, float(np.quantile(np.concatenate(pooled), 1 - false_alarm)), near


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its trace count, aggregates, and a sample of its texts."""

    label: str
    n: int
    #: per column of :data:`CATEGORICAL` (and ``cluster_id``): value -> trace count
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    mean_chars: float | None = None
    tool_share: float | None = None
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    #: a question (lower case, spaces collapsed) -> the document ids retrieved for it
    retrieved: dict[str, list[str]] = field(default_factory=dict)
    #: a question -> the passages retrieved for it
    passages: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    amber: float
    red: float
    level: str
    detail: str = ""


@dataclass(frozen=True)
class NewCluster:
    name: str
    size: int
    share: float
    suggested_slice: str
    examples: list[dict[str, str]]
    trace_ids: list[str]


@dataclass
class DriftReport:
    baseline: str
    window: str
    n_baseline: int
    n_window: int
    level: str
    metrics: list[Metric]
    new_clusters: list[NewCluster]
    note: str = ""

    def novel_trace_ids(self) -> list[str]:
        return [t for c in self.new_clusters for t in c.trace_ids]


def _level(value: float | None, name: str) -> str:
    if value is None:
        return "unknown"
    amber, red = THRESHOLDS[name]
    return "red" if value >= red else "amber" if value >= amber else "green"


def _metric(name: str, value: float | None, detail: str = "", kind: str | None = None) -> Metric:
    amber, red = THRESHOLDS[kind or name]
    shown = None if value is None else round(float(value), 4)
    return Metric(name, shown, amber, red, _level(value, kind or name), detail)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x)
    return x / norm if norm else x


def centroid_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine distance between the unit means of two sets of vectors."""
    return float(1.0 - _unit(np.asarray(a).mean(0)) @ _unit(np.asarray(b).mean(0)))


def _slug(name: str) -> str:
    return "new-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "intent")


def new_clusters(
    window: Side, vectors: np.ndarray, novel: np.ndarray, seed: int = 0, near: np.ndarray | None = None
) -> list[NewCluster]:
    """The novel window traces grouped by intent: each group of :data:`MIN_NEW_CLUSTER` or more (and, given each
    trace's :func:`contrast` as ``near``, of mean contrast :data:`MIN_NEW_CONTRAST` or more), largest first."""
    from evaltray.curate.cluster import cluster_texts

    pick = np.flatnonzero(novel)
    if len(pick) < MIN_NEW_CLUSTER:
        return []
    texts = [window.texts[i] for i in pick]
    found = cluster_texts(texts, vectors[pick], k="auto", seed=seed, min_size=MIN_NEW_CLUSTER)
    out = []
    for c in found.clusters:
        members = pick[np.flatnonzero(found.labels == c.id)]
        if len(members) < MIN_NEW_CLUSTER or (near is not None and float(near[members].mean()) < MIN_NEW_CONTRAST):
            continue
        examples = [{"trace_id": window.ids[pick[i]], "text": texts[i][:300]} for i in c.examples]
        ids = [window.ids[i] for i in members]
        out.append(NewCluster(c.name, len(members), len(members) / len(window.texts), _slug(c.name), examples, ids))
    return sorted(out, key=lambda c: -c.size)


#: Reshuffles of the pooled vectors that measure the centroid distance chance alone gives.
PERMUTATIONS = 20


def chance_shift(a: np.ndarray, b: np.ndarray, seed: int = 0, rounds: int = PERMUTATIONS) -> float:
    """The 95th percentile of :func:`centroid_shift` over ``rounds`` random splits of ``a`` and ``b`` pooled
    into groups of their sizes: the shift two samples of those sizes show when nothing moved."""
    pooled = np.vstack([a, b])
    rng = np.random.default_rng(seed)
    shifts = []
    for _ in range(rounds):
        order = rng.permutation(len(pooled))
        shifts.append(centroid_shift(pooled[order[: len(a)]], pooled[order[len(a) :]]))
    return float(np.quantile(shifts, 0.95))


def _text_metrics(
    base: Side, window: Side, base_vecs: np.ndarray, win_vecs: np.ndarray, seed: int
) -> tuple[list[Metric], list[NewCluster]]:
    score, cutoff, near = window_novelty(base_vecs, win_vecs, seed=seed)
    novel = score > cutoff
    share = float(novel.mean())
    found = new_clusters(window, win_vecs, novel, seed, near)
    raw, chance = centroid_shift(base_vecs, win_vecs), chance_shift(base_vecs, win_vecs, seed)
    metrics = [
        _metric("centroid_shift", max(0.0, raw - chance), f"{raw:.4f} apart; chance alone gives up to {chance:.4f}"),
        _metric(
            "novel_share",
            max(0.0, share - FALSE_ALARM),
            f"{share:.1%} of sampled window traces novel (baseline's own rate {FALSE_ALARM:.0%}); "
            f"{len(found)} new cluster(s)",
        ),
    ]
    return metrics, found


def _shares(counts: Counter[str], keys: list[str]) -> np.ndarray:
    return np.array([counts.get(k, 0) for k in keys], dtype=float)


def _intent_metrics(base: Side, window: Side) -> list[Metric]:
    bc, wc = base.counts.get("cluster_id"), window.counts.get("cluster_id")
    if not bc or not wc:
        return []
    keys = sorted(set(bc) | set(wc))
    p, q = _shares(wc, keys), _shares(bc, keys)
    top = max(keys, key=lambda k: wc.get(k, 0) / sum(wc.values()) - bc.get(k, 0) / sum(bc.values()))
    return [
        _metric("cluster_jsd", jsd(q, p), f"over {len(keys)} clusters"),
        _metric("intent_kl", kl_smoothed(p, q), f"window vs baseline, add-1/2 smoothing; most grown: cluster {top}"),
    ]


def _language_metric(base: Side, window: Side) -> list[Metric]:
    from .style import language

    if not base.texts or not window.texts:
        return []
    b, w = Counter(map(language, base.texts)), Counter(map(language, window.texts))
    shown = ", ".join(
        f"{k} {w[k] / len(window.texts):.0%} (was {b.get(k, 0) / len(base.texts):.0%})" for k, _ in w.most_common(4)
    )
    return [_metric("language", total_variation(b, w), shown)]


def _retrieval_metric(base: Side, window: Side) -> list[Metric]:
    shared = [q for q in window.retrieved if q in base.retrieved]
    if len(shared) < MIN_SHARED_QUERIES:
        return []
    overlaps = []
    for q in shared:
        a, b = set(base.retrieved[q]), set(window.retrieved[q])
        overlaps.append(len(a & b) / len(a | b))
    mean = float(np.mean(overlaps))
    detail = f"{len(shared)} questions asked on both sides; mean top-k overlap {mean:.0%}"
    return [_metric("retrieval_topk", 1.0 - mean, detail)]


_TOKEN = re.compile(r"\w+", re.UNICODE)


def bm25_overlap(old: list[str], new: list[str], k1: float = 1.2, b: float = 0.75) -> float:
    """How much of the ``old`` passages the ``new`` ones still hold, 0 to 1: the mean over old passages of
    its best BM25 score against a new passage over its BM25 score against itself (statistics over both lists;
    each ratio capped at 1). 1 when the same passages come back."""
    docs = [Counter(_TOKEN.findall(t.lower())) for t in (*old, *new)]
    if not old or not new:
        raise DriftError("passages on both sides are needed")
    lengths = np.array([sum(d.values()) for d in docs], dtype=float)
    avg = max(float(lengths.mean()), 1.0)
    df: Counter[str] = Counter(t for d in docs for t in d)
    n = len(docs)

    def score(query: Counter[str], i: int) -> float:
        d, norm = docs[i], k1 * (1 - b + b * lengths[i] / avg)
        return sum(
            np.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * d[t] * (k1 + 1) / (d[t] + norm) for t in query if t in d
        )

    ratios = []
    for i, q in enumerate(docs[: len(old)]):
        own = score(q, i)
        if own > 0:
            ratios.append(min(1.0, max(score(q, len(old) + j) for j in range(len(new))) / own))
    return float(np.mean(ratios)) if ratios else 1.0


def _bm25_metric(base: Side, window: Side) -> list[Metric]:
    shared = [q for q in window.passages if q in base.passages]
    if len(shared) < MIN_SHARED_QUERIES:
        return []
    mean = float(np.mean([bm25_overlap(base.passages[q], window.passages[q]) for q in shared]))
    detail = f"{len(shared)} questions with passages on both sides; BM25 overlap with the old passages {mean:.0%}"
    return [_metric("retrieval_bm25", 1.0 - mean, detail)]


def _table_metrics(base: Side, window: Side) -> list[Metric]:
    out = _intent_metrics(base, window)
    for col in CATEGORICAL:
        b, w = base.counts.get(col), window.counts.get(col)
        if not b or not w:
            continue
        new = {v: n for v, n in w.items() if v not in b}
        share = sum(new.values()) / sum(w.values())
        detail = ", ".join(f"{v} ({n})" for v, n in sorted(new.items(), key=lambda x: -x[1])[:5])
        out.append(_metric(f"new:{col}", share, f"new: {detail}" if new else "no new value", "new_values"))
    if base.mean_chars and window.mean_chars is not None:
        change = abs(window.mean_chars - base.mean_chars) / base.mean_chars
        out.append(_metric("input_length", change, f"mean {base.mean_chars:.0f} -> {window.mean_chars:.0f} characters"))
    if base.tool_share is not None and window.tool_share is not None:
        out.append(
            _metric(
                "tool_use",
                abs(window.tool_share - base.tool_share),
                f"{base.tool_share:.1%} -> {window.tool_share:.1%} of traces call a tool",
            )
        )
    return out + _language_metric(base, window) + _retrieval_metric(base, window) + _bm25_metric(base, window)


_ORDER = {"unknown": 0, "green": 1, "amber": 2, "red": 3}


def compare(
    base: Side,
    window: Side,
    base_vecs: np.ndarray | None = None,
    win_vecs: np.ndarray | None = None,
    seed: int = 0,
    min_traces: int = MIN_TRACES,
) -> DriftReport:
    """Every metric of ``window`` against ``base`` (vectors: unit embeddings of each side's sampled texts)."""
    small = [s for s in (base, window) if s.n < min_traces]
    if small:
        said = "; ".join(f"{s.label} has {s.n} trace(s)" for s in small)
        note = f"too few traces to measure drift ({said}; at least {min_traces} a side)"
        return DriftReport(base.label, window.label, base.n, window.n, "unknown", [], [], note)
    metrics = _table_metrics(base, window)
    found: list[NewCluster] = []
    if base_vecs is not None and win_vecs is not None and len(base_vecs) > NOVELTY_K and len(win_vecs):
        text, found = _text_metrics(base, window, base_vecs, win_vecs, seed)
        metrics = text + metrics
    level = max((m.level for m in metrics), key=_ORDER.__getitem__, default="unknown")
    return DriftReport(base.label, window.label, base.n, window.n, level, metrics, found)


def window_bounds(end: datetime, window: timedelta, baseline: timedelta | None) -> tuple[datetime, datetime, datetime]:
    """(baseline start, window start, end): the window is the last ``window`` before ``end``, the baseline the
    ``baseline`` before that."""
    start = end - window
    return start - (baseline or window), start, end


# --------------------------------------------------------------------------- a workspace's traffic


def _between(start: datetime, end: datetime) -> str:
    return f"start_time >= TIMESTAMPTZ '{start.isoformat()}' AND start_time < TIMESTAMPTZ '{end.isoformat()}'"


def _aggregates(ws: Workspace, where: str) -> tuple[int, float | None, float | None, dict[str, Counter[str]]]:
    """Trace count, mean input length, share calling a tool, and value counts per column, over ``where``."""
    counts: dict[str, Counter[str]] = {}
    with ws.trace_store().sandboxed() as con:
        n, chars, tools = con.execute(
            "SELECT count(*), avg(length(input_text)), avg(CASE WHEN n_tool_calls > 0 THEN 1.0 ELSE 0.0 END)"
            f" FROM traces WHERE {where}"
        ).fetchone() or (0, None, None)
        for col in (*CATEGORICAL, "cluster_id"):
            rows = con.execute(
                f"SELECT CAST({col} AS VARCHAR), count(*) FROM traces WHERE {where} AND {col} IS NOT NULL GROUP BY 1"
            ).fetchall()
            counts[col] = Counter({str(v): int(c) for v, c in rows})
    return int(n), None if chars is None else float(chars), None if tools is None else float(tools), counts


def question_key(text: str) -> str:
    """A question as ``retrieval_topk`` matches it across sides: lower case, runs of spaces as one."""
    return " ".join(text.lower().split())


def _retrieved(ws: Workspace, where: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The newest retrieved document ids and passages per distinct question (at most :data:`QUERY_LIMIT`
    questions each)."""
    with ws.trace_store().sandboxed() as con:
        rows = con.execute(
            "SELECT input_text, arg_max(retrieved_doc_ids, start_time) FROM traces"
            f" WHERE {where} AND input_text IS NOT NULL AND len(retrieved_doc_ids) > 0"
            f" GROUP BY 1 ORDER BY 1 LIMIT {QUERY_LIMIT}"
        ).fetchall()
        ctx = con.execute(
            "SELECT input_text, arg_max(metadata, start_time) FROM traces"
            f" WHERE {where} AND input_text IS NOT NULL AND metadata LIKE '%\"context\"%'"
            f" GROUP BY 1 ORDER BY 1 LIMIT {QUERY_LIMIT}"
        ).fetchall()
    passages = {}
    for q, meta in ctx:
        got = orjson.loads(meta).get("context") if meta else None
        if isinstance(got, list) and got:
            passages[question_key(q)] = [str(p) for p in got]
    return {question_key(q): list(ids) for q, ids in rows}, passages


#: What each :data:`CATEGORICAL` column's change is called in a refresh trigger.
CHANGE_NAMES = {
    "model": "model change",
    "model_version": "model version change",
    "provider": "vendor change",
    "prompt_template_id": "prompt template change",
    "system_hash": "system message hash change",
    "tools_hash": "tool schema hash change",
}


def version_changes(ws: Workspace, since: datetime) -> list[str]:
    """Each model, model version, vendor, prompt template, system-message or tool-schema hash first ingested at
    or after ``since`` while other traffic came before it: the changes a refresh is due for. Ingest time, not
    start time, so a back-filled file counts when it arrives."""
    stamp = f"TIMESTAMPTZ '{since.isoformat()}'"
    out = []
    with ws.trace_store().sandboxed() as con:
        (before,) = con.execute(f"SELECT count(*) FROM traces WHERE ingested_at < {stamp}").fetchone() or (0,)
        if not before:
            return []
        for col in CATEGORICAL:
            rows = con.execute(
                f"SELECT CAST({col} AS VARCHAR) v, min(ingested_at) m FROM traces WHERE {col} IS NOT NULL"
                f" GROUP BY 1 HAVING min(ingested_at) >= {stamp} ORDER BY m, v LIMIT 5"
            ).fetchall()
            out += [f"{CHANGE_NAMES[col]}: {v} (first ingested {m:%Y-%m-%d %H:%M})" for v, m in rows]
    return out


def traffic_side(
    ws: Workspace, label: str, start: datetime, end: datetime, sample: int = SAMPLE, seed: int = 0
) -> Side:
    """The traces that started in [start, end): aggregates over all of them, texts of a seeded sample."""
    from evaltray.curate.derived import user_texts

    where = _between(start, end)
    n, chars, tools, counts = _aggregates(ws, where)
    ids, texts = user_texts(ws, where, limit=sample, order_by=f"md5(trace_id || ':{int(seed)}'), trace_id")
    return Side(label, n, counts, chars, tools, ids, texts, *_retrieved(ws, where))


def release_side(ws: Workspace, version: str, set_name: str | None = None) -> Side:
    """A release's cases as a baseline: their user texts, input lengths, and the document ids and passages each
    case's input retrieved when it was authored (its top-k snapshot; traces' other columns they do not carry)."""
    from evaltray.tray.gate import user_text
    from evaltray.tray.release import select_cases

    cases = select_cases(ws, version, set_name)
    texts = [user_text(c) for c in cases]
    chars = float(np.mean([len(t) for t in texts])) if texts else None
    retrieved = {
        question_key(t): list(c["input"].get("retrieved_doc_ids") or [])
        for t, c in zip(texts, cases, strict=True)
        if c["input"].get("retrieved_doc_ids")
    }
    passages = {
        question_key(t): list(c["input"]["context"])
        for t, c in zip(texts, cases, strict=True)
        if c["input"].get("context")
    }
    ids = [str(c["id"]) for c in cases]
    return Side(f"release {version}", len(cases), {}, chars, None, ids, texts, retrieved, passages)


def latest_start(ws: Workspace) -> datetime:
    """The newest trace's start time (a window ends there by default)."""
    with ws.trace_store().sandboxed() as con:
        (latest,) = con.execute("SELECT max(start_time) FROM traces").fetchone() or (None,)
    if latest is None:
        raise DriftError("no traces with a start time; ingest some first")
    return latest if isinstance(latest, datetime) else datetime.fromisoformat(str(latest))


#: A number as :func:`intent_text` masks it: digits with the separators of dates, times, prices and codes.
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")


def intent_text(text: str) -> str:
    """What drift embeds of a trace: its words (:func:`neutral_text`) with every number as one ``0``. An order
    number, a date or a running count says what was asked about, not what was asked, and grows with time: a
    window's numbers are new to the baseline before it, so unmasked they make steady traffic look novel."""
    from evaltray.core.text import neutral_text

    return _NUMBER.sub("0", neutral_text(text))


def embed_pair(ws: Workspace, a: list[str], b: list[str], backend: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Unit embeddings of two lists of texts as :func:`intent_text` has them, in one call (a fitted backend such
    as tfidf sees both); None, None when no text has a word."""
    from evaltray.curate.derived import embed_texts
    from evaltray.curate.embed import normalize_rows

    texts = [intent_text(t) for t in (*a, *b)]
    if not any(t.strip() for t in texts):
        return None, None
    vectors = normalize_rows(np.asarray(embed_texts(ws, texts, backend)))
    return vectors[: len(a)], vectors[len(a) :]


def drift_report(
    ws: Workspace,
    window: str = "7d",
    baseline_window: str | None = None,
    baseline: str | None = None,
    end: datetime | None = None,
    backend: str = "wordllama",
    sample: int = SAMPLE,
    seed: int = 0,
    min_traces: int = MIN_TRACES,
) -> DriftReport:
    """The last ``window`` of traces (ending at ``end``, default the newest trace) against the
    ``baseline_window`` before it (default: as long as the window) or against release ``baseline``'s cases."""
    from evaltray.evaluate.live import parse_window

    if baseline is not None and baseline_window is not None:
        raise DriftError("give a baseline release or a baseline window, not both")
    span = parse_window(window)
    end = end or latest_start(ws) + timedelta(microseconds=1)
    b_start, w_start, _ = window_bounds(end, span, parse_window(baseline_window) if baseline_window else None)
    win = traffic_side(ws, f"window {w_start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}", w_start, end, sample, seed)
    if baseline is not None:
        base = release_side(ws, baseline)
    else:
        base = traffic_side(
            ws, f"baseline {b_start:%Y-%m-%d %H:%M}..{w_start:%Y-%m-%d %H:%M}", b_start, w_start, sample, seed
        )
    if min(base.n, win.n) < min_traces:
        report = compare(base, win, min_traces=min_traces)
    else:
        report = compare(base, win, *embed_pair(ws, base.texts, win.texts, backend), seed, min_traces)
    _keep(ws, report)
    return report


#: Each drift report's summary is kept here (one file a report), for health and the trend over time.
DRIFT_DIR = Path(".evaltray") / "drift"


def _keep(ws: Workspace, report: DriftReport) -> None:
    stamp = now()
    summary = {
        "created_at": stamp.isoformat(),
        "level": report.level,
        "baseline": report.baseline,
        "window": report.window,
        "n_baseline": report.n_baseline,
        "n_window": report.n_window,
        "metrics": {
            m.name: {"value": m.value, "level": m.level, "amber": m.amber, "red": m.red} for m in report.metrics
        },
        "new_clusters": len(report.new_clusters),
    }
    # named to the microsecond (``now()`` keeps whole seconds): two reports within a second are two files
    folder = ws.root / DRIFT_DIR
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    while (folder / f"{name}.json").exists():
        name += "x"
    atomic_write(folder / f"{name}.json", orjson.dumps(summary))


def drift_history(ws: Workspace) -> list[dict[str, Any]]:
    """Every kept drift report's summary, oldest first (the trend over time)."""
    folder = ws.root / DRIFT_DIR
    return [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def latest_level(ws: Workspace) -> str | None:
    """The newest drift report's level (green, amber, red, or unknown for a window too small), None if none ran."""
    history = drift_history(ws)
    return str(history[-1]["level"]) if history else None


def drift_to_candidates(ws: Workspace, actor: str, report: DriftReport, set_name: str | None = None) -> list[str]:
    """Send the traces of the report's new clusters to the candidate pool; the candidate ids added."""
    from evaltray.tray.candidates import add_from_traces

    ids = report.novel_trace_ids()
    return add_from_traces(ws, actor, set_name=set_name, trace_ids=ids) if ids else []
