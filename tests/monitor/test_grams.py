"""Word hashing in numpy cuts words as dedup's normalize does, and grams never cross a document."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.curate.dedup import normalize
from evaltray.monitor.grams import GramIndex, doc_ranges, rolling, word_batch


@settings(deadline=None)  # the first call builds the power tables
@given(st.lists(st.text(max_size=40), max_size=6))
def test_words_are_normalize_s_words(texts):
    batch = word_batch(texts)
    got = [[w.decode() for w in batch.words(a, b)] for a, b in doc_ranges(batch, len(texts))]
    assert got == [normalize(t).split() for t in texts]


def test_equal_words_hash_equal_wherever_they_are_and_different_words_differ():
    batch = word_batch(["Refund, please!", "please refund", "refunds"])
    h = batch.hashes.tolist()
    assert h[0] == h[3] and h[1] == h[2]
    assert len({h[0], h[1], h[4]}) == 3


def test_index_finds_each_gram_of_a_text_and_none_across_documents():
    index = GramIndex(["c d e f", "x y z w"], [3])
    batch = word_batch(["a b c d", "e f", "b c d e f g", "w x y z w"])
    hits = index.probe(rolling(batch.hashes, batch.doc, [3]))[3]
    # "c d e" spans documents 0 and 1: no hit there; in document 2 "c d e" and "d e f" (text 0), then "x y z", "y z w"
    assert list(zip(hits.pos.tolist(), hits.text.tolist(), strict=True)) == [(7, 0), (8, 0), (13, 1), (14, 1)]
    assert index.grams[3][0] == set(hits.hash[:2].tolist())
