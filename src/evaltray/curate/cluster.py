"""Intent clusters over text embeddings: fit, name, edit, and keep the edits across re-clustering.

The default method is spectral clustering on a cosine k-nearest-neighbour graph: on Banking77
it beats plain k-means at the same number of clusters for both WordLlama and MiniLM vectors
(see ``bench/banking77_eval.py``). ``k="auto"`` picks the count whose labels have the best
modularity on that graph, searched finely around the best of a coarse ladder and read off a
parabola, so the choice moves smoothly with the data. Large inputs are fitted on a seeded sample
and the rest is assigned to the nearest cluster centroid, so 100k texts cluster in seconds.

Each cluster gets a name from its c-TF-IDF top terms and its most central texts as examples.
A user's merges, splits and renames are recorded in :class:`ClusterEdits` against *anchors*
(centroid plus a sample of member-text hashes), so passing them as ``pinned`` to the next
:func:`cluster_texts` call replays them on whatever clusters match best.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from evaltray.core.errors import EvaltrayError
from evaltray.core.text import neutral_text

from .embed import normalize_rows

__all__ = [
    "METHODS",
    "Anchor",
    "ClusterError",
    "ClusterEdit",
    "ClusterEdits",
    "ClusterInfo",
    "Clustering",
    "UnknownCluster",
    "cluster_texts",
    "cut_share",
    "evaluate",
    "neutral_text",
]

Method = Literal["spectral", "kmeans", "hdbscan"]
METHODS: tuple[str, ...] = ("spectral", "kmeans", "hdbscan")

#: Member hashes kept per anchor: enough to find a cluster again, small enough for a JSON file.
_ANCHOR_MEMBERS = 64
#: An anchor matches the cluster holding at least this share of its members still present...
_MIN_OVERLAP = 0.5
#: ...or, when too few of its members are present, the nearest centroid at least this similar.
#: On Banking77 the same intent's centroid across seeds is 0.99+ similar while neighbouring
#: intents reach 0.79 (WordLlama and MiniLM alike), so 0.85 sits between the two.
_MIN_CENTROID_SIM = 0.85
_SINGLE_THREAD_BELOW = 5000
#: k="auto": rows (at least; 10 per cluster tried) whose k-means fit labels each candidate k...
_AUTO_SAMPLE = 3000
#: ...the most spectral dimensions it computes (a larger k uses them all)...
_AUTO_DIM = 256
#: ...the ratio between coarse candidates; ``_FINE`` counts evenly spaced over log k (rungs included) are scored
#: within ``_SPAN`` rungs of the best rung, and the count is read off a parabola through all of them, each weighed
#: by a Gaussian over log k of one rung's width around the best-scoring count. The curve is flat at its peak:
#: an unweighted parabola over one rung each side followed whichever count one fit's noise put on top; on dense
#: curves of the building sets (Banking77 train at 40 per intent, WordLlama and TF-IDF; HWU64 WordLlama) this
#: rule moved k="auto" by at most 3.1-6.7% under 1% removals where that one moved it 5.8-13.6%, scoring as many
#: counts. The weights keep a sharp peak's long side from pulling the top far (8 blobs: 11, unweighted 12).
_LADDER = 1.5
_SPAN = 2
_FINE = 9
#: Modularity resolution scoring each candidate k. At 1 the peak lies near a third of the intents of
#: Banking77 train (WordLlama and TF-IDF alike), at 4 just above them; 3 is picked on that split only.
_RESOLUTION = 3.0
#: Subspace-iteration steps of the spectral embedding of more than 2,000 texts.
_SUBSPACE_STEPS = 15
#: ...orthonormalised after every this many steps (and after the last).
_ORTHO_EVERY = 3
#: k-means fits (seeds ``seed``, ``seed + 1``, …) whose scores are averaged at each candidate k: one fit's
#: noise moved k="auto" by up to 12.5% when 1% of the texts were removed (Banking77 train variants, TF-IDF);
#: the mean of two halves that noise at about 1.5x the search's time.
_AUTO_FITS = 2
#: The final clusters are cut from a graph with about (texts per cluster) / 6 neighbours per text, between
#: ``n_neighbors`` and twice it; the count search keeps ``n_neighbors``. On the building sets at k=auto's count
#: (WordLlama) 25-30 neighbours against 15 raised purity/ARI from 0.613/0.472 to 0.640-0.658/0.492-0.503 on HWU64
#: (155 texts per cluster) and 0.618/0.455 to 0.630/0.461 on Banking77 train (128); at 40 texts per intent
#: (about 70 per cluster) 20 and 30 gained nothing, and 30 lost on TF-IDF, so the widening follows cluster size.
_FINAL_SHARE = 6


class ClusterError(EvaltrayError, ValueError):
    """A clustering or an edit of one was asked for with arguments that cannot work."""


class UnknownCluster(ClusterError, KeyError):
    """No cluster has the id given."""

    __str__ = Exception.__str__  # the message as written, not quoted as a KeyError's key would be


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, eq=False)
class ClusterInfo:
    """One cluster: a readable name, its top terms, size, most central texts, unit centroid."""

    id: int
    name: str
    top_terms: tuple[str, ...]
    size: int
    #: Indexes into the clustered texts, most central first, no two with the same text.
    examples: tuple[int, ...]
    centroid: np.ndarray
    #: True when ``name`` was given by a user (rename or merge), not derived from top terms.
    named_by_user: bool = False


@dataclass(frozen=True)
class Anchor:
    """What identifies a cluster across runs: its centroid and hashes of its most central members."""

    centroid: tuple[float, ...]
    members: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"centroid": [round(x, 5) for x in self.centroid], "members": list(self.members)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Anchor:
        return cls(tuple(float(x) for x in d["centroid"]), tuple(str(m) for m in d["members"]))


@dataclass(frozen=True)
class ClusterEdit:
    """One user edit: ``merge`` (two anchors), ``split`` (one anchor, ``k``) or ``rename`` (one anchor, ``name``)."""

    op: Literal["merge", "split", "rename"]
    anchors: tuple[Anchor, ...]
    name: str | None = None
    k: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "anchors": [a.to_dict() for a in self.anchors]}
        if self.name is not None:
            d["name"] = self.name
        if self.k is not None:
            d["k"] = self.k
            d["seed"] = self.seed
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterEdit:
        op = d.get("op")
        if op not in ("merge", "split", "rename"):
            raise ClusterError(f"unknown cluster edit {op!r}")
        return cls(
            op, tuple(Anchor.from_dict(a) for a in d["anchors"]), d.get("name"), d.get("k"), int(d.get("seed", 0))
        )


@dataclass
class ClusterEdits:
    """A user's edits in the order made; JSON-able through ``to_dict``/``from_dict``."""

    edits: list[ClusterEdit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "edits": [e.to_dict() for e in self.edits]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterEdits:
        if d.get("version") != 1:
            raise ClusterError(f"unsupported cluster edits version {d.get('version')!r}")
        return cls([ClusterEdit.from_dict(e) for e in d.get("edits", [])])

    def __len__(self) -> int:
        return len(self.edits)


# --------------------------------------------------------------------------- clustering result


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Clustering:
    """Labels for every text (``-1``: in no cluster) and a :class:`ClusterInfo` per cluster.

    ``merge``, ``split`` and ``rename`` return a new Clustering and record the edit in ``edits``;
    ``unapplied`` lists pinned edits that found no matching cluster this time. ``k_scores`` holds the
    modularity ``k="auto"`` gave each cluster count it tried (empty when ``k`` was given).
    """

    def __init__(
        self,
        texts: list[str],
        vectors: np.ndarray,
        labels: np.ndarray,
        method: str,
        user_names: dict[int, str],
        edits: ClusterEdits,
        unapplied: list[ClusterEdit],
        terms: _Terms,
        n_examples: int,
        n_terms: int,
    ) -> None:
        self.labels = labels
        self.method = method
        self.edits = edits
        self.unapplied = unapplied
        self.k_scores: dict[int, float] = {}
        self._texts = texts
        self._vectors = vectors
        self._user_names = dict(user_names)
        self._terms = terms
        self._n_examples = n_examples
        self._n_terms = n_terms
        self._keys: list[str] | None = None
        self.clusters: list[ClusterInfo] = _describe(
            texts, vectors, labels, self._user_names, terms, n_examples, n_terms
        )
        self._by_id = {c.id: c for c in self.clusters}

    def __repr__(self) -> str:
        return f"Clustering(method={self.method!r}, n_clusters={len(self.clusters)}, n_texts={len(self.labels)})"

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    def cluster(self, cid: int) -> ClusterInfo:
        """The cluster with id ``cid``; a missing id is an :class:`UnknownCluster` naming the ids there are."""
        try:
            return self._by_id[cid]
        except KeyError:
            raise UnknownCluster(
                f"no cluster {cid} (there are {len(self.clusters)}: ids {sorted(self._by_id)[:20]}…)"
            ) from None

    def members(self, cid: int) -> np.ndarray:
        """Indexes of the texts in cluster ``cid``."""
        self.cluster(cid)
        return np.flatnonzero(self.labels == cid)

    # -- anchors

    def _text_keys(self) -> list[str]:
        if self._keys is None:
            self._keys = [_text_hash(t) for t in self._texts]
        return self._keys

    def anchor(self, cid: int) -> Anchor:
        """The anchor that finds cluster ``cid`` again in a later clustering."""
        info = self.cluster(cid)
        idx = self.members(cid)
        sims = self._vectors[idx] @ info.centroid
        central = idx[np.argsort(-sims, kind="stable")]
        keys = self._text_keys()
        seen: dict[str, None] = {}
        for i in central:
            seen.setdefault(keys[i], None)
            if len(seen) >= _ANCHOR_MEMBERS:
                break
        return Anchor(tuple(float(x) for x in info.centroid), tuple(seen))

    def match(self, anchor: Anchor) -> int | None:
        """The id of the cluster that best continues ``anchor``, or None when none is close enough."""
        if not self.clusters:
            return None
        wanted = set(anchor.members)
        keys = self._text_keys()
        hits = [int(self.labels[i]) for i, key in enumerate(keys) if key in wanted]
        if len(hits) >= min(3, len(wanted)) and hits:
            ids, counts = np.unique(np.array(hits), return_counts=True)
            ok = ids >= 0
            if ok.any():
                best = int(np.argmax(np.where(ok, counts, -1)))
                if counts[best] / len(hits) >= _MIN_OVERLAP:
                    return int(ids[best])
            return None
        centroids = np.stack([c.centroid for c in self.clusters])
        sims = centroids @ np.asarray(anchor.centroid, dtype=np.float32)
        best = int(np.argmax(sims))
        return self.clusters[best].id if sims[best] >= _MIN_CENTROID_SIM else None

    # -- edits

    def _with(
        self,
        labels: np.ndarray,
        user_names: dict[int, str],
        edit: ClusterEdit | None,
        *,
        edits: ClusterEdits | None = None,
        unapplied: list[ClusterEdit] | None = None,
    ) -> Clustering:
        if edits is None:
            edits = ClusterEdits([*self.edits.edits, edit]) if edit is not None else self.edits
        out = Clustering(
            self._texts,
            self._vectors,
            labels,
            self.method,
            user_names,
            edits,
            self.unapplied if unapplied is None else unapplied,
            self._terms,
            self._n_examples,
            self._n_terms,
        )
        out._keys = self._keys  # same texts: share the hashes instead of recomputing them
        out.k_scores = self.k_scores
        return out

    def merge(self, a: int, b: int, name: str | None = None) -> Clustering:
        """Cluster ``b`` folded into ``a`` (which keeps its id); the result keeps a user name of either."""
        if a == b:
            raise ClusterError(f"cannot merge cluster {a} with itself")
        edit = ClusterEdit("merge", (self.anchor(a), self.anchor(b)), name=name)
        labels = self.labels.copy()
        labels[labels == b] = a
        names = dict(self._user_names)
        b_name = names.pop(b, None)
        if name is not None:
            names[a] = name
        elif a not in names and b_name is not None:
            names[a] = b_name
        return self._with(labels, names, edit)

    def split(self, cid: int, k: int = 2, seed: int = 0) -> Clustering:
        """Cluster ``cid`` cut into ``k`` by k-means on its members; the largest part keeps ``cid``."""
        if k < 2:
            raise ClusterError(f"split needs k >= 2, got {k}")
        idx = self.members(cid)
        n_distinct = len({self._texts[i] for i in idx})
        if n_distinct < k:
            raise ClusterError(f"cluster {cid} has {n_distinct} distinct texts, too few to split into {k}")
        edit = ClusterEdit("split", (self.anchor(cid),), k=k, seed=seed)
        labels = _split_labels(self.labels, self._vectors, cid, k, seed)
        return self._with(labels, dict(self._user_names), edit)

    def rename(self, cid: int, name: str) -> Clustering:
        """Cluster ``cid`` named ``name`` by the user; the name follows the cluster when re-clustered."""
        if not name.strip():
            raise ClusterError("a cluster name cannot be empty")
        edit = ClusterEdit("rename", (self.anchor(cid),), name=name)
        return self._with(self.labels, {**self._user_names, cid: name}, edit)

    def replay(self, pinned: ClusterEdits) -> Clustering:
        """Apply ``pinned``'s edits in order to the clusters that match their anchors.

        Edits that apply are recorded again with fresh anchors; the others are kept as they were
        (so they may apply to a later clustering) and listed in ``unapplied``.
        """
        current = self._with(self.labels, self._user_names, None, edits=ClusterEdits())
        kept: list[ClusterEdit] = []
        unapplied: list[ClusterEdit] = []
        for edit in pinned.edits:
            ids = [current.match(a) for a in edit.anchors]
            applied: Clustering | None = None
            if None in ids:
                pass
            elif edit.op == "rename" and edit.name:
                applied = current.rename(ids[0], edit.name)  # type: ignore[arg-type]
            elif edit.op == "split" and edit.k:
                with contextlib.suppress(ValueError):  # too few texts to split this time
                    applied = current.split(ids[0], edit.k, edit.seed)  # type: ignore[arg-type]
            elif edit.op == "merge" and ids[0] == ids[1]:
                # Already one cluster this time: only the name applies, and the edit is kept as
                # recorded so it still merges in a later clustering that keeps them apart.
                cid = int(ids[0])  # type: ignore[arg-type]
                names = {**current._user_names, cid: edit.name} if edit.name else current._user_names
                current = current._with(current.labels, names, None)
                kept.append(edit)
                continue
            elif edit.op == "merge":
                applied = current.merge(ids[0], ids[1], edit.name)  # type: ignore[arg-type]
            if applied is None:
                unapplied.append(edit)
                kept.append(edit)
            else:
                kept.append(applied.edits.edits[-1])
                current = applied
        return current._with(current.labels, current._user_names, None, edits=ClusterEdits(kept), unapplied=unapplied)


# --------------------------------------------------------------------------- naming


@dataclass
class _Terms:
    """The document-term counts of every text, computed once per clustering for c-TF-IDF."""

    counts: sp.csr_matrix
    vocab: np.ndarray


def _term_counts(texts: Sequence[str], valid: np.ndarray) -> _Terms:
    from sklearn.feature_extraction.text import CountVectorizer

    n_valid = int(valid.sum())
    # binary: a term's weight in a cluster is how many member texts use it, not how often one repeats it.
    vec = CountVectorizer(
        stop_words="english",
        ngram_range=(1, 2),
        min_df=2 if n_valid >= 50 else 1,
        binary=True,
        max_features=50_000,
        token_pattern=r"(?u)\b[^\W\d_][\w']*[^\W_]\b",
    )
    docs = [t if ok else "" for t, ok in zip(texts, valid, strict=True)]
    try:
        counts = vec.fit_transform(docs).tocsr()
        vocab = vec.get_feature_names_out()
    except ValueError:
        # Only stop words, digits or nothing at all: names fall back to an example text.
        counts, vocab = sp.csr_matrix((len(texts), 0), dtype=np.int64), np.array([], dtype=object)
    return _Terms(counts, vocab)


def _indicator(labels: np.ndarray, ids: np.ndarray) -> sp.csr_matrix:
    """A (clusters x texts) 0/1 matrix: row j marks the members of cluster ``ids[j]``."""
    pos = {int(c): j for j, c in enumerate(ids)}
    rows = np.array([pos.get(int(lab), -1) for lab in labels], dtype=np.int64)
    keep = rows >= 0
    return sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], np.flatnonzero(keep))), shape=(len(ids), len(labels))
    )


def _readable_terms(ranked: Iterable[str], n: int) -> list[str]:
    """Top terms without repeats: a word already shown inside a chosen phrase is not listed again."""
    chosen: list[str] = []
    words: set[str] = set()
    for term in ranked:
        parts = term.split()
        if len(parts) == 1 and term in words:
            continue
        if len(parts) > 1 and all(p in words for p in parts):
            continue
        # A phrase supersedes its words already listed alone.
        chosen = [c for c in chosen if not (len(c.split()) == 1 and c in parts)]
        chosen.append(term)
        words.update(parts)
        if len(chosen) >= n:
            break
    return chosen


def _describe(
    texts: list[str],
    vectors: np.ndarray,
    labels: np.ndarray,
    user_names: dict[int, str],
    terms: _Terms,
    n_examples: int,
    n_terms: int,
) -> list[ClusterInfo]:
    ids, sizes = np.unique(labels[labels >= 0], return_counts=True)
    if ids.size == 0:
        return []
    ind = _indicator(labels, ids)
    centroids = normalize_rows(np.asarray(ind @ vectors))
    top: list[list[str]] = [[] for _ in ids]
    if terms.vocab.size:
        tf = np.asarray((ind @ terms.counts).todense(), dtype=np.float64)
        # c-TF-IDF over member-text counts: the share of the cluster's texts using a term, weighted
        # by how rare the term is across clusters (log(1 + mean cluster size / texts using it)).
        idf = np.log1p(float(sizes.mean()) / np.maximum(tf.sum(axis=0), 1.0))
        ctfidf = tf / sizes[:, None] * idf
        # A term only one or two members use ("hotel", "morning") says nothing about the intent.
        floor = np.maximum(2.0, 0.05 * sizes)[:, None]
        ctfidf[(tf < np.minimum(floor, sizes[:, None]))] = 0.0
        for j in range(len(ids)):
            order = np.argsort(-ctfidf[j], kind="stable")[: n_terms * 4]
            top[j] = _readable_terms((terms.vocab[o] for o in order if ctfidf[j, o] > 0), n_terms)
    order_by_label = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order_by_label], ids)
    infos: list[ClusterInfo] = []
    used: dict[str, int] = {}
    for j, cid in enumerate(ids):
        idx = order_by_label[bounds[j] : bounds[j] + sizes[j]]
        sims = vectors[idx] @ centroids[j]
        examples: list[int] = []
        seen: set[str] = set()
        for i in idx[np.argsort(-sims, kind="stable")]:
            if texts[i] not in seen:
                seen.add(texts[i])
                examples.append(int(i))
                if len(examples) >= n_examples:
                    break
        cid = int(cid)
        if cid in user_names:
            name, by_user = user_names[cid], True
        else:
            name = ", ".join(top[j][:3]) if top[j] else _shorten(neutral_text(texts[examples[0]])) or f"cluster {cid}"
            by_user = False
            # Two clusters with the same derived name (say, both halves of a split) stay distinguishable.
            if name in used:
                name = f"{name} #{cid}"
            used[name] = cid
        infos.append(ClusterInfo(cid, name, tuple(top[j]), int(sizes[j]), tuple(examples), centroids[j], by_user))
    infos.sort(key=lambda c: (-c.size, c.id))
    return infos


def _shorten(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- algorithms


#: Similarities this close are one value to the k-NN graph: copies of a text dotted at different places in one
#: matrix product can differ in the last bits (as in ``monitor/drift.py``).
_TIE = 1e-6


@dataclass(frozen=True)
class _Neighbours:
    """Each row's nearest other rows, most similar first: row ``r``'s columns are ``cols[ptr[r]:ptr[r + 1]]``,
    their similarities ``vals[...]``. A row holds its ``widest`` nearest and every column tied (within ``_TIE``)
    with the last of them, so a graph of any count up to ``widest`` can share out its ties."""

    ptr: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    widest: int


def _knn(x: np.ndarray, widest: int, chunk: int = 1024) -> _Neighbours:
    """Each unit row's ``widest`` most cosine-similar other rows of ``x`` and those tied with the last of them:
    one pass serves a graph of every count up to ``widest``."""
    n = x.shape[0]
    widest = min(widest, n - 1)
    sizes, cols, vals = [], [], []
    for s in range(0, n, chunk):
        sim = x[s : s + chunk] @ x.T
        r = np.arange(sim.shape[0])
        sim[r, s + r] = -np.inf
        got = _top(sim, widest)
        sizes.append(got[0])
        cols.append(got[1])
        vals.append(got[2])
    ptr = np.concatenate(([0], np.cumsum(np.concatenate(sizes))))
    return _Neighbours(ptr, np.concatenate(cols), np.concatenate(vals), widest)


def _top(sim: np.ndarray, k: int, stride: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` largest entries of ``sim`` and every entry tied (within ``_TIE``) with the ``k``-th:
    (entries per row, columns, values), rows one after another, largest first and equal values by column.

    A row's threshold is a high value of every ``stride``-th column, so only a few dozen candidates above it are
    sorted: a partition of every full row cost 60% of the k-NN graph on 10k texts. Rows with fewer than ``k``
    candidates (about 2%) take their exact ``k``-th largest value as the threshold instead.
    """
    rows_n = sim.shape[0]
    sub = sim[:, ::stride]
    m = -(-k // stride) + 4
    if m <= sub.shape[1]:
        th = np.partition(sub, -m, axis=1)[:, -m]
        short = (sim >= th[:, None]).sum(axis=1) < k
    else:
        th, short = np.empty(rows_n, dtype=sim.dtype), np.ones(rows_n, dtype=bool)
    if short.any():
        th[short] = np.partition(sim[short], -k, axis=1)[:, -k]
    # The k-th largest is at least the threshold, so every entry tied with it is at least the threshold less _TIE.
    rows, cols = np.nonzero(sim >= th[:, None] - _TIE)
    vals = sim[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=rows_n))[:-1]))
    keep = vals >= vals[starts + k - 1][rows] - _TIE
    return np.bincount(rows[keep], minlength=rows_n), cols[keep], vals[keep]


def _graph(nb: _Neighbours, n_neighbors: int) -> sp.csr_matrix:
    """Symmetric k-NN graph of each row's ``n_neighbors`` nearest (weights = positive similarities). Columns tied
    with the ``n_neighbors``-th share the places left equally, so the graph does not depend on the rows' order:
    a sort's pick among identical texts (22% of HWU64's rows with WordLlama) moved k="auto" by 9%."""
    n, k = nb.ptr.shape[0] - 1, min(n_neighbors, nb.widest)
    rows = np.repeat(np.arange(n), np.diff(nb.ptr))
    kth = nb.vals[nb.ptr[:-1] + k - 1][rows]
    above = nb.vals > kth + _TIE
    tied = ~above & (nb.vals >= kth - _TIE)
    # Sorted rows put the k-th among the tied, so each row has at least one tied entry and at most k - 1 above.
    share = (k - np.bincount(rows[above], minlength=n)) / np.maximum(np.bincount(rows[tied], minlength=n), 1)
    # A tiny floor keeps a point whose neighbours are all dissimilar attached to the graph.
    w = np.maximum(nb.vals, 1e-6) * np.where(above, 1.0, share[rows])
    keep = above | tied
    a = sp.csr_matrix((w[keep].astype(nb.vals.dtype), (rows[keep], nb.cols[keep])), shape=(n, n))
    return a.maximum(a.T).tocsr()


def _knn_graph(x: np.ndarray, n_neighbors: int, chunk: int = 1024) -> sp.csr_matrix:
    """Symmetric cosine k-NN graph (weights = positive similarities) over unit rows of ``x``."""
    return _graph(_knn(x, n_neighbors, chunk), n_neighbors)


def _final_neighbors(n: int, k: int, n_neighbors: int) -> int:
    """Neighbours per text of the graph the final ``k`` clusters are cut from: a sixth of the texts per cluster,
    at least ``n_neighbors`` and at most twice it (see ``_FINAL_SHARE``)."""
    return int(min(max(n_neighbors, round(n / (_FINAL_SHARE * max(k, 1)))), 2 * n_neighbors))


def _orthonormal(q: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning ``q``: Cholesky QR (two matrix products), Householder QR if that fails."""
    from scipy.linalg import solve_triangular

    try:
        chol = np.linalg.cholesky(q.T @ q)
    except np.linalg.LinAlgError:
        return np.linalg.qr(q)[0]
    return solve_triangular(chol, q.T, lower=True).T


def _spectral_embedding(a: sp.csr_matrix, dim: int, draws: np.ndarray) -> np.ndarray:
    """Top ``dim`` eigenvectors of graph ``a``'s normalised affinity ``D^-1/2 A D^-1/2``, largest first.

    Small graphs exactly; larger ones by seeded subspace iteration and a Rayleigh-Ritz step. Fifteen
    steps label Banking77 train as well as Lanczos to 1e-3 did (WordLlama, k = 77: purity 0.635 vs
    0.615, NMI 0.752 vs 0.759) in a quarter of its time.
    """
    d = np.asarray(a.sum(axis=1)).ravel()
    dinv = sp.diags(1.0 / np.sqrt(np.maximum(d, 1e-12)))
    m = (dinv @ a @ dinv).astype(np.float64).tocsr()
    n = m.shape[0]
    dim = min(dim, n - 1)
    if n <= 2000 or dim >= n // 2:
        _, u = np.linalg.eigh(m.toarray())
        return u[:, ::-1][:, :dim]
    # Each row's start is read off its own draw (see _row_draws), so permuted rows give the permuted embedding.
    q = _orthonormal(_uniform(_mix(draws[:, None], np.arange(dim, dtype=np.uint64)[None, :])) - 0.5)
    for step in range(1, _SUBSPACE_STEPS + 1):
        q = m @ q
        # Orthonormalising after every third product spans the same subspace (the top eigenvalues are near 1, so
        # three products leave the columns well conditioned) at a third of the cost of doing it every time.
        if step % _ORTHO_EVERY == 0 or step == _SUBSPACE_STEPS:
            q = _orthonormal(q)
    w, v = np.linalg.eigh(q.T @ (m @ q))
    return q @ v[:, np.argsort(-w, kind="stable")]


def _threads_for(n: int) -> Any:
    """One BLAS thread always, and one OpenMP thread too for small problems.

    OpenBLAS threads spin-wait for work; on a machine whose cores are busy (2 shared cores here)
    that made k-means++ 1.8x, Lanczos 5x and a 300x300 eigendecomposition 150x slower than one
    thread. scikit-learn's OpenMP k-means loops degrade far less, so they keep their threads on
    larger inputs.
    """
    return threadpool_limits(1) if n < _SINGLE_THREAD_BELOW else threadpool_limits(1, user_api="blas")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray, salt: int | np.ndarray) -> np.ndarray:
    """splitmix64 of ``h`` and ``salt``: a fixed pseudo-random 64-bit value for each pair."""
    with np.errstate(over="ignore"):
        z = h + (np.asarray(salt, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(h: np.ndarray) -> np.ndarray:
    """64-bit values as floats strictly between 0 and 1."""
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _row_draws(x: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit key per row, from the row's content: every random choice of a fit is read off these keys,
    so the fit does not depend on the rows' order, and a row keeps its draws when others come or go (position-
    based draws change for every row after a removed one: row order alone moved k="auto" 44-47 on a building
    set, and that spread is what 1% removed moved it by). The key hashes the row rounded to 1/4096, so the last
    bits (a vector normalised twice, an embedding batched differently) do not change it."""
    return _mix(_row_hash(np.rint(np.asarray(x, dtype=np.float64) * 4096.0).astype(np.int32)), seed)


def _row_hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes."""
    rows = np.ascontiguousarray(rows)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in rows),
        dtype=np.uint64,
        count=rows.shape[0],
    )


def _draw_order(x: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The rows sorted by their draws, rows of one draw (equal to 1/4096) by their exact bytes: one order for the
    same rows however they came, so every sum of a fit runs in the same order and gives the same last bits (an
    eigenvector basis of nearly equal eigenvalues turns with them: 24 or 25 clusters on 25 blobs by row order)."""
    order = np.argsort(draws, kind="stable")
    if (draws[order][1:] == draws[order][:-1]).any():
        order = np.lexsort((_row_hash(np.asarray(x, dtype=np.float32)), draws))
    return order


def _keyed_sample(draws: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` rows with the smallest draws, in draw order: the same rows in any order, and all but the removed
    ones when a few rows go."""
    idx = np.argpartition(draws, m - 1)[:m] if m < draws.size else np.arange(draws.size)
    return idx[np.argsort(draws[idx], kind="stable")]


def _race(weights: np.ndarray, draws: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """One row per salt, row ``i`` with probability ``weights[i] / weights.sum()``: the row whose
    ``weights[i] / Exp_i`` is the largest, ``Exp_i`` an exponential variate read off its own draw and the salt. A
    row's chance moves only with its weight, not with which other rows are there or where they stand."""
    exp = -np.log(_uniform(_mix(draws[:, None], salts[None, :])))
    return np.argmax(weights[:, None] / exp, axis=0)


def _keyed_centres(e: np.ndarray, draws: np.ndarray, k: int) -> np.ndarray:
    """``k`` starting centres among the rows of ``e`` by greedy k-means++ (scikit-learn's: at each step
    ``2 + log k`` candidates, each drawn with probability proportional to its squared distance to the nearest
    centre so far, and the one that lowers the total most is kept), the candidates drawn by :func:`_race`, so a
    pick moves only when a removed row, or the distances, would have changed it. (One candidate per step left a
    giant cluster at small counts on HWU64, TF-IDF.)"""
    trials = 2 + int(math.log(k))
    sq = np.einsum("ij,ij->i", e, e)
    chosen = [int(np.argmin(draws))]
    d2 = np.maximum(sq + sq[chosen[0]] - 2.0 * (e @ e[chosen[0]]), 0.0)
    for j in range(1, k):
        cand = _race(d2, draws, np.arange(j * trials, (j + 1) * trials, dtype=np.uint64))
        dc = np.maximum(sq[:, None] + sq[cand][None, :] - 2.0 * (e @ e[cand].T), 0.0)
        best = int(np.argmin(np.minimum(d2[:, None], dc).sum(axis=0)))
        chosen.append(int(cand[best]))
        np.minimum(d2, dc[:, best], out=d2)
    return e[chosen]


def _kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 3) -> np.ndarray:
    from sklearn.cluster import KMeans

    # float64 on purpose: scikit-learn's k-means++ on float32 goes through an upcasting distance
    # path that is several times slower (10k x 256 at k=154: 6.9 s vs 1.9 s here).
    with _threads_for(x.shape[0]):
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(np.asarray(x, dtype=np.float64))


def _k_grid(n: int, max_k: int) -> list[int]:
    """The coarse candidate cluster counts of ``k="auto"``: 2 up to ``max_k`` (below ``n``), 1.5x apart."""
    hi = max(2, min(max_k, n - 1))
    rungs = max(2, math.ceil(math.log(hi / 2) / math.log(_LADDER)) + 1) if hi > 2 else 1
    return sorted({int(round(v)) for v in np.geomspace(2, hi, num=rungs)})


class _Steps:
    """Counts the steps of a fit for a ``progress(stage, done, total)`` callback: the spectral embedding, each
    cluster count tried, the final fit."""

    def __init__(self, progress: Callable[[str, int, int], None] | None) -> None:
        self.progress, self.done, self.total = progress, 0, 1
        #: k="auto"'s score of each cluster count it tried.
        self.scores: dict[int, float] = {}

    def plan(self, steps: int) -> None:
        if steps == self.total and self.done:
            return
        self.total = steps
        if self.progress is not None:
            self.progress("cluster", self.done, self.total)

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress("cluster", self.done, max(self.total, self.done))


class _Modularity:
    """Scores cluster counts for ``k="auto"`` by the modularity of their labels on the k-NN graph ``a``.

    Modularity at resolution ``gamma`` (the share of edge weight inside clusters minus ``gamma`` times
    what random wiring of the same degrees would put there) is computed on every text, so unlike a
    sampled silhouette its curve over k is smooth. Labels for a candidate k come from k-means on a sample
    of ``u`` (the spectral embedding, or the vectors themselves), assigned to all rows; the sample and the
    starting centres are read off the rows' ``draws`` (:func:`_row_draws`), not their positions.
    """

    def __init__(
        self, a: sp.csr_matrix, u: np.ndarray, draws: np.ndarray, steps: _Steps, spectral: bool = True
    ) -> None:
        self.u, self.draws, self.steps, self.spectral = u, draws, steps, spectral
        self.rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        self.cols, self.weights = a.indices, a.data
        self.deg = np.asarray(a.sum(axis=1)).ravel()
        self.total = float(self.deg.sum())
        #: k -> (share of edge weight inside clusters, sum of the clusters' squared degree shares).
        self.parts: dict[int, tuple[float, float]] = {}

    def __call__(self, k: int, gamma: float = _RESOLUTION) -> float:
        if k not in self.parts:
            # k clusters use the leading k spectral dimensions, raw vectors all of theirs.
            e = normalize_rows(self.u[:, : min(k, self.u.shape[1])] if self.spectral else self.u).astype(np.float64)
            share, conc = np.mean([self.fit_parts(e, k, r) for r in range(_AUTO_FITS)], axis=0)
            self.parts[k] = (float(share), float(conc))
            self.steps.tick()
        share, concentration = self.parts[k]
        return share - gamma * concentration

    def fit_parts(self, e: np.ndarray, k: int, r: int) -> tuple[float, float]:
        """Fit ``r``'s (share of edge weight inside clusters, sum of squared degree shares) of the ``k`` labels
        k-means gives the rows ``e``, fitted on a sample and started from centres both read off the draws."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        draws = _mix(self.draws, r)
        pick = _keyed_sample(draws, min(e.shape[0], max(_AUTO_SAMPLE, 10 * k)))
        start = _keyed_centres(e[pick], _mix(draws[pick], 2**32), k)
        # 30 Lloyd steps: the score needs a fair partition, not a converged one.
        with warnings.catch_warnings():  # a k above the distinct points there are only scores low
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = KMeans(n_clusters=k, init=start, n_init=1, max_iter=30).fit(e[pick]).predict(e)
        per = np.bincount(labels, weights=self.deg)
        share = float(self.weights[labels[self.rows] == labels[self.cols]].sum()) / self.total
        return share, float(per @ per) / self.total**2

    def best_k(self, ladder: list[int], gamma: float = _RESOLUTION) -> int:
        """Climb ``ladder`` until the score at resolution ``gamma`` has fallen twice, score more counts within
        ``_SPAN`` rungs of the best one, and return :func:`_parabola_peak` of them, weighed around the best-scoring
        count: a count that moves smoothly with the data instead of jumping between rungs."""
        best = 0
        for i, k in enumerate(ladder):
            if self(k, gamma) > self(ladder[best], gamma):
                best = i
            elif i - best >= _SPAN:
                break
        lo, hi = ladder[max(best - _SPAN, 0)], ladder[min(best + _SPAN, len(ladder) - 1)]
        fine = sorted({int(round(v)) for v in np.geomspace(lo, hi, num=_FINE)} - set(self.parts))
        self.steps.plan(self.steps.done + len(fine) + 1)
        for k in fine:
            self(k, gamma)
        self.steps.scores = {k: self(k, gamma) for k in sorted(self.parts)}
        ks = [k for k in sorted(self.parts) if lo <= k <= hi]
        return _parabola_peak(ks, [self(k, gamma) for k in ks], math.log(_LADDER))


def _parabola_peak(ks: Sequence[int], scores: Sequence[float], width: float | None = None) -> int:
    """The count at the top of the least-squares parabola through ``scores`` over log ``ks``, kept within the
    counts given; the best-scoring count when the parabola opens upward or fewer than three counts are given.
    With ``width``, each count's squared error is weighed by ``exp(-d^2 / (2 width^2))``, ``d`` its distance in
    log k from the best-scoring count. On a flat peak every count's noise pulls the top a little instead of one
    count taking it."""
    lk, ys = np.log(np.asarray(ks, dtype=np.float64)), np.asarray(scores, dtype=np.float64)
    best = int(np.argmax(ys))
    peak = float(np.asarray(ks)[best])
    if lk.size >= 3:
        # polyfit weighs the residuals, not their squares: the square root of the weights.
        w = None if width is None else np.exp(-((lk - lk[best]) ** 2) / (4 * width**2))
        c2, c1, _ = np.polyfit(lk, ys, 2, w=w)
        if c2 < 0:
            peak = math.exp(min(max(-c1 / (2 * c2), float(lk.min())), float(lk.max())))
    return max(2, int(round(peak)))


def _spectral_fit(
    x: np.ndarray,
    draws: np.ndarray,
    k: int | Literal["auto"],
    seed: int,
    max_k: int,
    n_neighbors: int,
    steps: _Steps,
    resolution: float,
) -> np.ndarray:
    """Spectral labels for 3 or more unit rows: ``k="auto"`` searched on the ``n_neighbors`` graph, the final
    clusters cut from the embedding of a graph with ``_final_neighbors`` neighbours per text."""
    n = x.shape[0]
    nb = _knn(x, 2 * n_neighbors)
    a = _graph(nb, n_neighbors)
    u: np.ndarray | None = None
    if k != "auto":
        steps.plan(2)
        kk = min(int(k), n - 1)
    else:
        ladder = _k_grid(n, max_k)
        steps.plan(len(ladder) + 2)
        u = _spectral_embedding(a, min(ladder[-1], _AUTO_DIM), draws)
        steps.tick()
        kk = _Modularity(a, u, draws, steps).best_k(ladder, resolution)
    wide = _final_neighbors(n, kk, n_neighbors)
    if u is None or wide > n_neighbors:
        u = _spectral_embedding(a if wide == n_neighbors else _graph(nb, wide), kk, draws)
        if k != "auto":
            steps.tick()
    return _kmeans(normalize_rows(u[:, :kk]), kk, seed)


def _fit(
    x: np.ndarray,
    k: int | Literal["auto"],
    method: str,
    seed: int,
    max_k: int,
    n_neighbors: int,
    steps: _Steps,
    resolution: float = _RESOLUTION,
) -> np.ndarray:
    """Labels for the unit rows ``x`` (``-1`` only from hdbscan's noise), the same for the same rows in any order:
    they are fitted in :func:`_draw_order`."""
    draws = _row_draws(x, seed)
    order = _draw_order(x, draws)
    labels = np.empty(x.shape[0], dtype=np.int64)
    labels[order] = _fit_rows(x[order], draws[order], k, method, seed, max_k, n_neighbors, steps, resolution)
    return labels


def _fit_rows(
    x: np.ndarray,
    draws: np.ndarray,
    k: int | Literal["auto"],
    method: str,
    seed: int,
    max_k: int,
    n_neighbors: int,
    steps: _Steps,
    resolution: float,
) -> np.ndarray:
    """:func:`_fit` of rows already in their draw order (``draws``: :func:`_row_draws` of them)."""
    n = x.shape[0]
    # Below 600 texts fewer neighbours (n/40, at least 5): a small set's intents have few members, and
    # linking a text to more neighbours than its intent has links intents together (Banking77, 300
    # texts of 20 intents: k="auto" chose 14 clusters with 15 neighbours, 21 with 7).
    n_neighbors = min(n_neighbors, max(5, n // 40))
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if method == "kmeans":
        if k != "auto":
            return _kmeans(x, min(int(k), n), seed)
        ladder = _k_grid(n, max_k)
        steps.plan(len(ladder) + 1)
        scorer = _Modularity(_knn_graph(x, n_neighbors), x, draws, steps, spectral=False)
        return _kmeans(x, scorer.best_k(ladder, resolution), seed)
    if method == "spectral":
        if n < 3:
            return np.arange(n, dtype=np.int64)
        return _spectral_fit(x, draws, k, seed, max_k, n_neighbors, steps, resolution)
    if method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        if k != "auto":
            raise ClusterError("hdbscan finds its own number of clusters: pass k='auto'")
        if n < 10:
            return np.zeros(n, dtype=np.int64)
        # HDBSCAN on raw 256-d vectors takes a minute per 10k texts and finds little; on the
        # 64-d spectral embedding it takes seconds and recovers most intents.
        u = normalize_rows(_spectral_embedding(_knn_graph(x, n_neighbors), 64, draws))
        params: dict[str, Any] = {"min_cluster_size": max(5, n // 500), "min_samples": 5}
        if "copy" in HDBSCAN().get_params():
            params["copy"] = True  # scikit-learn >= 1.8 warns unless this is explicit
        return HDBSCAN(**params).fit_predict(u).astype(np.int64)
    raise ClusterError(f"unknown clustering method {method!r} (one of: {', '.join(METHODS)})")


def _nearest_centroid(x: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    lab = np.empty(x.shape[0], dtype=np.int64)
    sim = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], chunk):
        d = x[s : s + chunk] @ centroids.T
        lab[s : s + chunk] = d.argmax(axis=1)
        sim[s : s + chunk] = d.max(axis=1)
    return lab, sim


def _split_labels(labels: np.ndarray, vectors: np.ndarray, cid: int, k: int, seed: int) -> np.ndarray:
    idx = np.flatnonzero(labels == cid)
    sub = _kmeans(vectors[idx], k, seed)
    # The largest part keeps the old id so references to it stay meaningful.
    parts, counts = np.unique(sub, return_counts=True)
    order = parts[np.argsort(-counts, kind="stable")]
    new_ids = [cid] + list(range(int(labels.max()) + 1, int(labels.max()) + k))
    remap = {int(p): new_ids[r] for r, p in enumerate(order)}
    out = labels.copy()
    out[idx] = [remap[int(s)] for s in sub]
    return out


def _check(
    texts: list[str], x: np.ndarray, k: object, method: str, max_k: int | None, min_size: int | None, resolution: float
) -> None:
    """One-line refusals of arguments :func:`cluster_texts` cannot work with."""
    if x.ndim != 2 or x.shape[0] != len(texts):
        raise ClusterError(f"got {len(texts)} texts but vectors of shape {np.shape(x)}")
    if method not in METHODS:
        raise ClusterError(f"unknown clustering method {method!r} (one of: {', '.join(METHODS)})")
    if k != "auto" and (not isinstance(k, int | np.integer) or k < 1):
        raise ClusterError(f"k must be a positive integer or 'auto', got {k!r}")
    if max_k is not None and (not isinstance(max_k, int | np.integer) or max_k < 2):
        raise ClusterError(f"max_k must be an integer of at least 2, got {max_k!r}")
    if min_size is not None and (not isinstance(min_size, int | np.integer) or min_size < 1):
        raise ClusterError(f"min_size must be a positive integer, got {min_size!r}")
    if not isinstance(resolution, int | float) or not math.isfinite(resolution) or resolution <= 0:
        raise ClusterError(f"resolution must be a positive number, got {resolution!r}")


def _auto_max_k(n: int, max_k: int | None, min_size: int | None) -> int:
    """The most clusters ``k="auto"`` may choose for ``n`` texts: ``max_k`` if given, and no more than
    clusters of ``min_size`` (5 when not given; half the texts below 50) fit."""
    room = n // (min_size or 5) if n >= 50 or min_size else n // 2
    return max(2, min(room, max_k) if max_k is not None else room)


def _fold_small(labels: np.ndarray, x: np.ndarray, min_size: int) -> np.ndarray:
    """Members of clusters under ``min_size`` texts moved to the nearest larger cluster's centroid."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = ids[counts >= min_size]
    if keep.size == 0 or keep.size == ids.size:
        return labels
    centroids = normalize_rows(np.stack([x[labels == c].mean(axis=0) for c in keep]))
    moved = np.flatnonzero((labels >= 0) & ~np.isin(labels, keep))
    out = labels.copy()
    out[moved] = keep[_nearest_centroid(x[moved], centroids)[0]]
    return out


def _label(
    keys: list[str],
    x: np.ndarray,
    valid: np.ndarray,
    k: int | Literal["auto"],
    method: str,
    seed: int,
    max_k: int,
    max_fit: int,
    n_neighbors: int,
    steps: _Steps,
    resolution: float = _RESOLUTION,
) -> np.ndarray:
    """A label per row: distinct keys fitted once (a sample of them beyond ``max_fit``), the rest of the
    distinct ones sent to the nearest centroid, repeats given their first's label."""
    labels = np.full(len(keys), -1, dtype=np.int64)
    # Fit on distinct texts: a query repeated 1,000 times is one intent, not 1,000 votes.
    first: dict[str, int] = {}
    for i in np.flatnonzero(valid):
        first.setdefault(keys[i], int(i))
    uniq = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    if not uniq.size:
        return labels
    # The sample is read off the texts' draws, as the fit's own choices are: the same texts in any order.
    fit_idx = np.sort(uniq[_keyed_sample(_row_draws(x[uniq], seed), max_fit)]) if uniq.size > max_fit else uniq
    with _threads_for(fit_idx.size):
        fit_labels = _fit(x[fit_idx], k, method, seed, max_k, n_neighbors, steps, resolution)
    steps.tick()
    labels[fit_idx] = fit_labels
    ids = np.unique(fit_labels[fit_labels >= 0])
    rest = np.setdiff1d(uniq, fit_idx, assume_unique=True)
    if ids.size and rest.size:
        centroids = normalize_rows(np.stack([x[fit_idx[fit_labels == c]].mean(axis=0) for c in ids]))
        near, sim = _nearest_centroid(x[rest], centroids)
        lab = ids[near]
        if method == "hdbscan":
            # Keep hdbscan's notion of noise: a text farther from its centroid than the
            # cluster's loosest tenth of fitted members stays unassigned.
            floor = np.array([np.quantile(x[fit_idx[fit_labels == c]] @ centroids[j], 0.1) for j, c in enumerate(ids)])
            lab = np.where(sim >= floor[near], lab, -1)
        labels[rest] = lab
    for i in np.flatnonzero(valid):
        labels[i] = labels[first[keys[i]]]
    return labels


def cluster_texts(
    texts: Sequence[str],
    vectors: np.ndarray,
    k: int | Literal["auto"] = "auto",
    method: Method = "spectral",
    seed: int = 0,
    pinned: ClusterEdits | None = None,
    *,
    max_k: int | None = None,
    min_size: int | None = None,
    max_fit: int = 20_000,
    n_neighbors: int = 15,
    n_examples: int = 5,
    n_terms: int = 5,
    progress: Callable[[str, int, int], None] | None = None,
    resolution: float = _RESOLUTION,
) -> Clustering:
    """Cluster ``texts`` by their ``vectors``, name each cluster, and replay the ``pinned`` edits;
    ``progress("cluster", done, total)`` counts the steps of the fit (each cluster count tried is one).

    ``k="auto"`` picks the cluster count whose labels have the best modularity on the texts' k-NN
    graph, searched continuously (not on a fixed ladder) up to ``max_k`` (default: as many as clusters
    of ``min_size``, or of 5, fit); ``resolution`` is that modularity's resolution: higher asks for more,
    smaller clusters (3 by default). ``min_size``: clusters with fewer texts are folded into the nearest
    other cluster. Names and duplicate detection ignore scrub placeholders, simulator stop tokens and
    template markup (:func:`neutral_text`); embed ``neutral_text`` of each text too so they do not
    group texts either. Texts with a zero vector (empty texts) get label ``-1``, as does hdbscan's
    noise. Duplicate texts are fitted once; beyond ``max_fit`` distinct texts a seeded sample is
    fitted and the rest go to the nearest centroid. The same inputs and seed give the same clusters, in whatever
    order the texts come: every random choice is read off a seeded hash of each text's vector.
    """
    texts = list(texts)
    x = normalize_rows(vectors)
    _check(texts, np.asarray(vectors), k, method, max_k, min_size, resolution)
    valid = np.linalg.norm(x, axis=1) > 0.5
    plain = [neutral_text(t) for t in texts]
    n_distinct = len({t for t, ok in zip(plain, valid, strict=True) if ok})
    steps = _Steps(progress)
    labels = _label(
        plain,
        x,
        valid,
        k,
        method,
        seed,
        _auto_max_k(n_distinct, max_k, min_size),
        max_fit,
        n_neighbors,
        steps,
        resolution,
    )
    if min_size is not None and min_size > 1:
        labels = _fold_small(labels, x, min_size)
    labels = _relabel_by_size(labels)
    terms = _term_counts(plain, valid)
    result = Clustering(texts, x, labels, method, {}, ClusterEdits(), [], terms, n_examples, n_terms)
    result.k_scores = steps.scores
    if pinned is not None and pinned.edits:
        result = result.replay(pinned)
    return result


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Ids 0..K-1 with 0 the largest cluster (ties by first member): stable across equal runs."""
    ids, first_pos, counts = np.unique(labels[labels >= 0], return_index=True, return_counts=True)
    if ids.size == 0:
        return labels
    order = np.lexsort((first_pos, -counts))
    remap = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
    remap[ids[order]] = np.arange(ids.size)
    out = labels.copy()
    ok = labels >= 0
    out[ok] = remap[labels[ok]]
    return out


# --------------------------------------------------------------------------- evaluation


def cut_share(vectors: np.ndarray, labels: Sequence[Any] | np.ndarray, n_neighbors: int = 15) -> float:
    """The share of the cosine k-NN graph's edge weight (the graph ``k="auto"`` scores on) that joins texts
    of different ``labels``: 0 when every group is a component of its own, near 1 when groups ignore it.

    A diagnostic of how far a labelling is a set of communities on that graph: a gold labelling that cuts
    far more than k-means' labels at the same count is one no cut-based choice of k can recover.
    """
    x = normalize_rows(np.asarray(vectors, dtype=np.float32))
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    if y.shape[0] != x.shape[0]:
        raise ClusterError(f"{y.shape[0]} labels but {x.shape[0]} vectors")
    if x.shape[0] < 2:
        return 0.0
    a = _knn_graph(x, n_neighbors).tocoo()
    return float(a.data[y[a.row] != y[a.col]].sum() / a.data.sum())


def evaluate(labels_true: Sequence[Any] | np.ndarray, labels_pred: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Purity, NMI, ARI, cluster count and coverage of ``labels_pred`` (``-1`` = no cluster).

    Purity is the share of assigned texts that carry their cluster's majority intent; coverage is
    the share assigned at all. NMI and ARI count each unassigned text as a cluster of its own, so
    leaving hard texts out is not rewarded.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    pred = np.asarray(labels_pred, dtype=np.int64)
    _, truth = np.unique(np.asarray(labels_true), return_inverse=True)
    if truth.shape[0] != pred.shape[0]:
        raise ClusterError(f"{truth.shape[0]} true labels but {pred.shape[0]} predicted")
    assigned = pred >= 0
    n_assigned = int(assigned.sum())
    majority = 0
    for c in np.unique(pred[assigned]):
        majority += int(np.bincount(truth[pred == c]).max())
    singletons = pred.copy()
    singletons[~assigned] = pred.max(initial=0) + 1 + np.arange(int((~assigned).sum()))
    return {
        "purity": majority / n_assigned if n_assigned else 0.0,
        "nmi": float(normalized_mutual_info_score(truth, singletons)),
        "ari": float(adjusted_rand_score(truth, singletons)),
        "n_clusters": int(np.unique(pred[assigned]).size),
        "coverage": n_assigned / len(pred) if len(pred) else 0.0,
    }
