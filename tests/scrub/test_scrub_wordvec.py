"""Word clusters for the name tagger: vectors from token embeddings, centroids fitted and shipped, assignment."""

from __future__ import annotations

import numpy as np

from evaltray.scrub._wordvec import (
    NONE,
    WordClusters,
    WordVectors,
    fit_levels,
    load_clusters,
    parse_levels,
    save_levels,
)


class _Enc:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids


class _Tok:
    """A stand-in tokenizer: one token per letter (a=0, b=1, ...)."""

    def encode(self, word: str, add_special_tokens: bool = False) -> _Enc:
        return _Enc([ord(ch) - ord("a") for ch in word])

    def encode_batch(self, words: list[str], add_special_tokens: bool = False) -> list[_Enc]:
        return [self.encode(w) for w in words]


# token a points along x, b along y, c halfway between
_TABLE = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)


def test_a_words_vector_is_its_tokens_mean_at_unit_length() -> None:
    vecs = WordVectors(_Tok(), _TABLE).vectors(["a", "ab", "bbb", ""])
    assert np.allclose(vecs[0], [1.0, 0.0])
    assert np.allclose(vecs[1], [2**-0.5, 2**-0.5])  # mean (0.5, 0.5), normalised
    assert np.allclose(vecs[2], [0.0, 1.0])
    assert np.allclose(vecs[3], [0.0, 0.0])  # no tokens: no direction, never a division by zero


def test_clusters_are_the_nearest_centroid_at_each_level() -> None:
    coarse = np.array([[1.0, 0.0]], dtype=np.float32)
    fine = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    clusters = WordClusters(WordVectors(_Tok(), _TABLE), [coarse, fine])
    assert clusters.of_many(["a", "b", "aab", "abb", "a"]) == [
        ("0", "0"),
        ("0", "1"),
        ("0", "0"),
        ("0", "1"),
        ("0", "0"),
    ]
    assert clusters.of_many(["b"]) == [("0", "1")]  # from the cache, the same answer


def test_without_wordllama_every_word_shares_one_cluster() -> None:
    clusters = WordClusters(None, [np.zeros((2, 2)), np.zeros((3, 2))])
    assert clusters.of_many(["Anna", "the"]) == [(NONE, NONE), (NONE, NONE)]


def test_fitted_centroids_separate_two_groups_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0.0]) + rng.normal(0, 0.05, (20, 2))
    b = np.array([0.0, 1.0]) + rng.normal(0, 0.05, (20, 2))
    vecs = np.vstack([a, b]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    levels = fit_levels(vecs, [2])
    assign = np.argmax(vecs @ levels[0].astype(np.float32).T, axis=1)
    assert len(set(assign[:20])) == 1 and len(set(assign[20:])) == 1 and assign[0] != assign[20]
    data = save_levels(levels)
    assert data == save_levels(fit_levels(vecs, [2]))  # one input, one file, byte for byte
    back = parse_levels(data)
    assert [c.shape for c in back] == [(2, 2)] and np.array_equal(back[0], levels[0].astype(np.float32))


def test_the_shipped_clusters_put_names_together() -> None:
    clusters = load_clusters()
    assert [len(c) for c in clusters.levels] == [64, 512]
    jennifer, jessica, the, said, told = clusters.of_many(["Jennifer", "Jessica", "the", "said", "told"])
    assert jennifer[0] == jessica[0] and said[0] == told[0]  # two given names, two verbs of speech
    assert len({jennifer[0], the[0], said[0]}) == 3
