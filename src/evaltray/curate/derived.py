"""Per-trace results of the curation stages (dedup, clusters), kept beside the trace store.

Traces are append-only; what dedup and clustering conclude about them is recomputed and replaced
whole, so it lives in ``.evaltray/derived/*.parquet`` (written atomically) and joins the traces by id.
Cluster names and a user's merges, splits and renames persist in ``.evaltray/derived/clusters.json``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.util import atomic_write

#: ``progress(stage, done, total)``: each stage reports ``(stage, 0, total)`` as it starts and ``(stage, total,
#: total)`` as it ends (a total of 0: not known yet), and counts in between where it can: ``embed`` by texts
#: (batches of new ones), ``cluster`` by steps of the fit (each cluster count tried is one). The stages of
#: dedup: read, embed, then dedup's own (normalize, exact, near, paraphrase); of clustering: read, embed,
#: cluster, save.
Progress = Callable[[str, int, int], None]


def _silent(stage: str, done: int, total: int) -> None:
    """The progress callback of a caller that asked for none."""


def derived_dir(ws: Workspace) -> Path:
    return ws.state_dir / "derived"


def write_table(ws: Workspace, name: str, table: pa.Table) -> Path:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    path = derived_dir(ws) / f"{name}.parquet"
    atomic_write(path, buf.getvalue())
    return path


def read_table(ws: Workspace, name: str) -> pa.Table | None:
    path = derived_dir(ws) / f"{name}.parquet"
    return pq.read_table(path) if path.exists() else None


def user_texts(
    ws: Workspace, where: str | None = None, limit: int | None = None, order_by: str = "trace_id"
) -> tuple[list[str], list[str]]:
    """Trace ids and the user's side of each conversation (all user turns joined), payload-kept traces only;
    at most ``limit`` of them, the first in ``order_by`` (a seeded hash order draws a uniform sample).

    The last user turn alone would make every "thanks, bye" a duplicate of every other.
    """
    from evaltray.core.traces import conjunction, read_messages

    base = conjunction("payload_kept", where)
    table = ws.trace_store().query(base, columns=["trace_id", "messages"], order_by=order_by, limit=limit)
    ids, texts = [], []
    for tid, raw in zip(table.column("trace_id").to_pylist(), table.column("messages").to_pylist(), strict=True):
        turns = [m.get("content") or "" for m in read_messages(raw) if m.get("role") == "user"]
        ids.append(tid)
        texts.append("\n".join(t for t in turns if t))
    return ids, texts


def _read(ws: Workspace, where: str | None, report: Progress) -> tuple[list[str], list[str]]:
    report("read", 0, 0)
    ids, texts = user_texts(ws, where)
    report("read", len(ids), len(ids))
    return ids, texts


# --------------------------------------------------------------------------- dedup


def dedup_traces(
    ws: Workspace,
    near: float | None = 0.8,
    paraphrase: float | None = 0.675,
    backend: str = "wordllama",
    where: str | None = None,
    progress: Progress | None = None,
    actor: str | None = None,
) -> Any:
    """Mark duplicate groups over the traces (never deleting one) and store the groups and the evidence."""
    from .dedup import dedup

    actor = ws.authorize(actor, CURATE_ROLES, "dedup")
    report = progress or _silent
    ids, texts = _read(ws, where, report)
    embed = None
    if paraphrase is not None and ids:  # dedup asks for one text per exact or near group only

        def embed(some: list[str]) -> Any:
            return embed_texts(ws, some, backend, report=report)

    result = dedup(ids, texts, near=near, paraphrase=paraphrase, embed=embed, progress=report)
    level = {m: g.level for g in result.groups for m in g.members}
    weights = result.weights
    write_table(
        ws,
        "dedup",
        pa.table(
            {
                "trace_id": pa.array(ids, pa.string()),
                "dup_of": pa.array([result.rep_of[t] for t in ids], pa.string()),
                "dup_level": pa.array([level.get(t) for t in ids], pa.string()),
                "dup_weight": pa.array([weights.get(t, 0) for t in ids], pa.int64()),
            }
        ),
    )
    write_table(
        ws,
        "dedup_pairs",
        pa.table(
            {
                "a": [p.a for p in result.pairs],
                "b": [p.b for p in result.pairs],
                "level": [p.level for p in result.pairs],
                "score": pa.array([p.score for p in result.pairs], pa.float64()),
                "reason": [p.reason for p in result.pairs],
            }
        ),
    )
    ws.record(actor, "dedup", None, traces=len(ids), groups=len(result.groups), where=where)
    return result


# --------------------------------------------------------------------------- embeddings and clusters


def embed_texts(
    ws: Workspace,
    texts: list[str],
    backend: str = "wordllama",
    model_path: str | None = None,
    report: Progress | None = None,
) -> Any:
    """Vectors for ``texts``, cached by text hash in the workspace; ``report`` hears of the ``embed`` stage
    as batches finish."""
    from .embed import EmbeddingCache, get_embedder

    report = report or _silent
    report("embed", 0, len(texts))
    embedder = get_embedder(backend, model_path=model_path, cache_dir=ws.state_dir / "models")
    vectors = EmbeddingCache(ws.state_dir / "embeddings").embed_cached(
        embedder, texts, lambda done, total: report("embed", done, total)
    )
    report("embed", len(texts), len(texts))
    return vectors


def _edits_path(ws: Workspace) -> Path:
    return derived_dir(ws) / "clusters.json"


def load_edits(ws: Workspace) -> Any:
    from .cluster import ClusterEdits

    path = _edits_path(ws)
    if not path.exists():
        return ClusterEdits()
    return ClusterEdits.from_dict(orjson.loads(path.read_bytes()).get("edits") or {"version": 1, "edits": []})


def cluster_traces(
    ws: Workspace,
    k: int | str = "auto",
    backend: str = "wordllama",
    method: str = "spectral",
    model_path: str | None = None,
    where: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    actor: str | None = None,
    max_k: int | None = None,
    min_size: int | None = None,
    resolution: float | None = None,
) -> Any:
    """Cluster the traces' user text by intent, name the clusters, replay the user's edits, store it all;
    ``progress`` hears of each stage (see :data:`Progress`).

    The stored clusters are replaced whole: traces clustered before that ``where`` leaves out lose their
    cluster, and their number is kept as ``params["dropped"]`` for the caller to say so.
    """
    actor = ws.authorize(actor, CURATE_ROLES, "clustering")
    report = progress or _silent
    params: dict[str, Any] = {
        "backend": backend,
        "method": method,
        "k": k,
        "seed": seed,
        "max_k": max_k,
        "min_size": min_size,
    }
    if resolution is not None:  # k=auto's modularity resolution; stored only when it is not the default
        params["resolution"] = resolution
    _k(k)
    ids, texts = _read(ws, where, report)
    if not ids:
        raise EvaltrayError("no traces with a payload to cluster; ingest some first")
    n = len(texts)
    clustering = _cluster(ws, texts, params, model_path, report)
    report("save", 0, n)
    save_clustering(ws, ids, texts, clustering, {**params, "where": where, "dropped": _dropped(ws, ids)})
    report("save", n, n)
    ws.record(actor, "cluster", None, traces=len(ids), clusters=len(clustering.clusters), where=where)
    return clustering


def _cluster(
    ws: Workspace,
    texts: list[str],
    params: dict[str, Any],
    model_path: str | None = None,
    report: Progress | None = None,
) -> Any:
    """Embed ``texts`` without their placeholders and markup, cluster them as ``params`` say, replay the edits."""
    from evaltray.core.text import neutral_text

    from .cluster import cluster_texts

    vectors = embed_texts(ws, [neutral_text(t) for t in texts], params["backend"], model_path, report)
    return cluster_texts(
        texts,
        vectors,
        k=_k(params["k"]),
        method=params["method"],
        seed=params["seed"],
        pinned=load_edits(ws),
        max_k=params.get("max_k"),
        min_size=params.get("min_size"),
        progress=report,
        **({"resolution": params["resolution"]} if params.get("resolution") is not None else {}),
    )


def _dropped(ws: Workspace, ids: list[str]) -> int:
    """How many traces in a cluster of the stored run are not among ``ids`` (and so lose it now)."""
    old = read_table(ws, "clusters")
    if old is None:
        return 0
    keep = set(ids)
    return sum(
        1
        for t, c in zip(old.column("trace_id").to_pylist(), old.column("cluster_id").to_pylist(), strict=True)
        if c is not None and c >= 0 and t not in keep
    )


def _k(k: int | str) -> int | Literal["auto"]:
    """``auto``, or the number of clusters as an int."""
    from .cluster import ClusterError

    if k == "auto":
        return "auto"
    if isinstance(k, int):
        return k
    try:
        return int(k)
    except ValueError:
        raise ClusterError(f"k must be a positive integer or 'auto', got {k!r}") from None


def save_clustering(
    ws: Workspace, ids: list[str], texts: list[str], clustering: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """Store the cluster of each trace, and the clusters' names, terms, examples and edits; return the latter."""
    names = {c.id: c.name for c in clustering.clusters}
    labels = [int(x) for x in clustering.labels]
    write_table(
        ws,
        "clusters",
        pa.table(
            {
                "trace_id": pa.array(ids, pa.string()),
                "cluster_id": pa.array(labels, pa.int64()),
                "cluster_name": pa.array([names.get(x) for x in labels], pa.string()),
            }
        ),
    )
    info = {
        "params": params,
        "edits": clustering.edits.to_dict(),
        "unapplied": [e.to_dict() for e in clustering.unapplied],
        "clusters": [
            {
                "id": c.id,
                "name": c.name,
                "top_terms": list(c.top_terms),
                "size": c.size,
                "named_by_user": c.named_by_user,
                "examples": [{"trace_id": ids[i], "text": texts[i][:300]} for i in c.examples],
            }
            for c in clustering.clusters
        ],
    }
    atomic_write(_edits_path(ws), orjson.dumps(info, option=orjson.OPT_INDENT_2))
    return info


def cluster_info(ws: Workspace) -> dict[str, Any]:
    path = _edits_path(ws)
    if not path.exists():
        raise EvaltrayError("no clusters yet; run `evaltray cluster`")
    return orjson.loads(path.read_bytes())


def edit_clusters(
    ws: Workspace,
    op: str,
    a: int,
    b: int | None = None,
    name: str | None = None,
    k: int = 2,
    actor: str | None = None,
) -> dict[str, Any]:
    """Merge, split or rename clusters of the last run; the edit is kept and replayed on re-clustering.

    Returns the clusters as :func:`cluster_info` gives them after the edit.
    """
    actor = ws.authorize(actor, CURATE_ROLES, "editing clusters")
    info = cluster_info(ws)
    params = info["params"]
    ids, texts = user_texts(ws, params.get("where"))  # the traces the stored run clustered
    clustering = _cluster(ws, texts, params)
    known = {c.id for c in clustering.clusters}
    for cid in (a, b):
        if cid is not None and cid not in known:
            raise EvaltrayError(
                f"no cluster {cid} (clusters: 0–{max(known) if known else -1}); see `evaltray cluster list`"
            )
    if op == "merge":
        if b is None:
            raise EvaltrayError("merge needs two cluster ids")
        clustering = clustering.merge(a, b, name=name)
    elif op == "split":
        clustering = clustering.split(a, k=k)
    elif op == "rename":
        if not name:
            raise EvaltrayError("rename needs a name")
        clustering = clustering.rename(a, name)
    else:
        raise EvaltrayError(f"unknown cluster edit {op!r}")
    saved = save_clustering(ws, ids, texts, clustering, params)
    ws.record(actor, f"cluster.{op}", str(a), b=b, name=name, k=k if op == "split" else None)
    return saved


# --------------------------------------------------------------------------- what sampling reads


@dataclass
class CurationMaps:
    dup_of: dict[str, str] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)


def curation_maps(ws: Workspace) -> CurationMaps:
    """Duplicate representatives, their weights and cluster names per trace, from the last runs."""
    maps = CurationMaps()
    dedup = read_table(ws, "dedup")
    if dedup is not None:
        ids = dedup.column("trace_id").to_pylist()
        maps.dup_of = dict(zip(ids, dedup.column("dup_of").to_pylist(), strict=True))
        maps.weights = {t: w for t, w in zip(ids, dedup.column("dup_weight").to_pylist(), strict=True) if w}
    clusters = read_table(ws, "clusters")
    if clusters is not None:
        maps.clusters = {
            t: n
            for t, n in zip(
                clusters.column("trace_id").to_pylist(), clusters.column("cluster_name").to_pylist(), strict=True
            )
            if n
        }
    return maps
