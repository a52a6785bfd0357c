"""Word hashing in numpy cuts words as dedup's normalize does, and grams never cross a document."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.curate.dedup import normalize
from evaltray.monitor.grams import GramIndex, doc_ranges, norm_lines, rolling, word_batch


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


@settings(deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=30),
        max_size=6,
    )
)
def test_lines_normalized_at_once_have_each_line_s_words(lines):
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    out, starts = norm_lines(data)
    bounds = [*starts.tolist(), len(out)]
    got = [out[a:b].decode("utf-8", "surrogatepass").split() for a, b in zip(bounds, bounds[1:], strict=False)]
    assert got == [normalize(line).split() for line in lines]


def test_a_line_with_a_combining_mark_is_normalized_whole_and_others_by_character():
    out, starts = norm_lines("Cafe\u0301 au lait\n“Quoted” – ÀB ﬁne ³\n".encode())
    assert out[: starts[1]].decode().split() == ["café", "au", "lait"]  # e + combining acute composes
    assert out[starts[1] :].decode().split() == ["quoted", "àb", "fine", "3"]


def test_hash_words_hashes_long_words_by_every_byte():
    batch = word_batch(["abcdefghijklmnopq abcdefghijklmnopr abcdefghijklmnopq"])
    h = batch.hashes.tolist()
    assert h[0] == h[2] != h[1]
