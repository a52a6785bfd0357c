"""Word clusters from WordLlama's token embeddings: a feature of the name tagger that reaches words it never saw.

A word's vector is the mean of its WordLlama tokens' embeddings (the tokenizer and the 32k x 256 table ship in
the ``wordllama`` wheel, a core dependency); its cluster is the nearest of the centroids in
``evaltray/data/names/word_clusters.bin.gz``, fitted by ``bench/train_name_tagger.py`` on the building
corpora's words. "Kreutzmann" was never in training, but its vector sits with other surnames, so the weights
learnt for that cluster carry to it. Only the files are read: ``wordllama`` itself is never imported here.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

CLUSTER_FILE = "word_clusters.bin.gz"
_TOKENIZER = ("tokenizers", "l2_supercat_tokenizer_config.json")
_WEIGHTS = ("weights", "l2_supercat_256.safetensors")
#: A word with no vector (no WordLlama files): one shared cluster, so the features stay defined.
NONE = "-"
_CACHE = 200_000
_BATCH = 256


def wordllama_dir() -> Path | None:
    """The installed ``wordllama`` package's folder, found without importing it (its import sets up logging)."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(slots=True)
class WordVectors:
    """WordLlama's tokenizer and token table: :meth:`vectors` gives each word's mean token embedding."""

    tokenizer: object
    table: np.ndarray

    @classmethod
    def load(cls) -> WordVectors | None:
        base = wordllama_dir()
        if base is None or not base.joinpath(*_TOKENIZER).is_file() or not base.joinpath(*_WEIGHTS).is_file():
            return None
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        table = load_file(str(base.joinpath(*_WEIGHTS)))["embedding.weight"].astype(np.float32)
        return cls(Tokenizer.from_file(str(base.joinpath(*_TOKENIZER))), table)

    def token_ids(self, words: list[str]) -> list[list[int]]:
        tok = self.tokenizer
        # encode_batch starts a thread pool: worth it for a vocabulary, far slower for the few new words of a text
        if len(words) >= _BATCH:
            return [e.ids for e in tok.encode_batch(words, add_special_tokens=False)]  # type: ignore[attr-defined]
        return [tok.encode(w, add_special_tokens=False).ids for w in words]  # type: ignore[attr-defined]

    def vectors(self, words: list[str]) -> np.ndarray:
        """One unit-length row per word (the mean of its tokens' embeddings)."""
        out = np.zeros((len(words), self.table.shape[1]), dtype=np.float32)
        for i, ids in enumerate(self.token_ids(words)):
            if ids:
                out[i] = self.table[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@dataclass(slots=True)
class WordClusters:
    """Each word's cluster at every level of centroids (coarse to fine), cached per word."""

    vectors: WordVectors | None
    levels: list[np.ndarray]
    _cache: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    #: every level's centroids in one contiguous matrix, and each level's rows in it
    _stacked: np.ndarray = field(init=False, repr=False)
    _bounds: list[tuple[int, int]] = field(init=False, repr=False)
    #: each token's score against every centroid, filled as tokens are met
    _token_scores: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        dim = self.levels[0].shape[1] if self.levels else 1
        self._stacked = np.ascontiguousarray(np.vstack(self.levels) if self.levels else np.zeros((0, dim)), np.float32)
        ends = np.cumsum([len(c) for c in self.levels]).tolist()
        self._bounds = list(zip([0, *ends[:-1]], ends, strict=True))

    def of_many(self, words: list[str]) -> list[tuple[str, ...]]:
        """Each word's clusters; the words not met before are embedded together in one batch."""
        cache = self._cache
        new = list({w: None for w in words if w not in cache})
        if new:
            if len(cache) + len(new) > _CACHE:
                cache.clear()
            cache.update(zip(new, self.assign(new), strict=True))
        return [cache[w] for w in words]

    def assign(self, words: list[str]) -> list[tuple[str, ...]]:
        """The cluster ids of many words at once (training assigns a corpus' vocabulary in one call)."""
        if self.vectors is None or not self.levels:
            return [(NONE,) * max(1, len(self.levels))] * len(words)
        if len(words) >= _BATCH:  # a vocabulary: one matrix product
            scores = self.vectors.vectors(words) @ self._stacked.T
        else:
            # a text's few new words: the centroid scores of a word's mean vector rank the centroids as the sum of
            # its tokens' scores does, and those are kept per token (a small matrix product per call hands the
            # work to BLAS threads, which costs milliseconds on a busy machine)
            scores = [self._summed(ids) for ids in self.vectors.token_ids(words)]
        return [tuple(str(int(np.argmax(row[a:b]))) for a, b in self._bounds) for row in scores]

    def _summed(self, ids: list[int]) -> np.ndarray:
        known = self._token_scores
        total = np.zeros(len(self._stacked), dtype=np.float32)
        for t in ids:
            row = known.get(t)
            if row is None:
                assert self.vectors is not None
                row = known[t] = self._stacked @ self.vectors.table[t]
            total += row
        return total


def fit_levels(vecs: np.ndarray, ks: list[int], iterations: int = 20) -> list[np.ndarray]:
    """Spherical k-means at each k, started from rows spread evenly over ``vecs``: the same input gives the
    same centroids, so the trainer's ``--check`` can compare files byte for byte."""
    out = []
    for k in ks:
        cent = vecs[np.linspace(0, len(vecs) - 1, k).astype(int)].copy()
        for _ in range(iterations):
            assign = np.argmax(vecs @ cent.T, axis=1)
            for j in range(k):
                members = vecs[assign == j]
                if len(members):
                    mean = members.sum(axis=0)
                    cent[j] = mean / max(float(np.linalg.norm(mean)), 1e-9)
        out.append(cent.astype(np.float16))
    return out


def save_levels(levels: list[np.ndarray]) -> bytes:
    """Centroids as a header line (``k1 k2 ... dim``) and float16 rows, gzip'd with no timestamp."""
    dim = levels[0].shape[1]
    head = (" ".join(str(len(c)) for c in levels) + f" {dim}\n").encode("ascii")
    body = b"".join(c.astype("<f2").tobytes() for c in levels)
    return gzip.compress(head + body, compresslevel=9, mtime=0)


def parse_levels(data: bytes) -> list[np.ndarray]:
    raw = gzip.decompress(data)
    head, _, body = raw.partition(b"\n")
    *ks, dim = (int(x) for x in head.split())
    out, pos = [], 0
    for k in ks:
        n = k * dim * 2
        out.append(np.frombuffer(body[pos : pos + n], dtype="<f2").reshape(k, dim).astype(np.float32))
        pos += n
    return out


@lru_cache(maxsize=1)
def load_clusters() -> WordClusters:
    """The shipped centroids with WordLlama's table; without either, every word is in cluster :data:`NONE`."""
    ref = resources.files("evaltray") / "data" / "names" / CLUSTER_FILE
    levels = parse_levels(ref.read_bytes()) if ref.is_file() else []
    return WordClusters(WordVectors.load() if levels else None, levels)
