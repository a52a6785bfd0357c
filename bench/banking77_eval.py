"""Intent-cluster quality on Banking77 (issue: curation): evaltray's clusterers vs plain k-means.

    python bench/banking77_eval.py                      # train split, every backend installed
    python bench/banking77_eval.py --backends wordllama --seeds 0 1 2 3 4
    python bench/banking77_eval.py --split test --k 154

For each embedding backend the script embeds the split once, then for every seed runs, on the
same vectors: the baseline (scikit-learn ``KMeans(n_clusters=k, random_state=seed)``, nothing
else), and evaltray's ``cluster_texts`` with spectral at ``k``, spherical k-means at ``k``,
spectral with ``k="auto"`` (silhouette, at most ``k`` clusters) and hdbscan (finds its own count,
leaves noise out). It prints mean ± standard deviation of purity, NMI, ARI, the cluster count and
coverage, and seconds per run. Data: Banking77 (PolyAI, CC-BY-4.0), read from
``../shared/data/intents/`` beside the repository unless ``--data`` says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaltray.curate.cluster import cluster_texts, evaluate
from evaltray.curate.embed import EmbeddingCache, EmbeddingError, get_embedder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "intents"
METRICS = ("purity", "nmi", "ari", "n_clusters", "coverage", "seconds")


def load(data: Path, split: str) -> tuple[list[str], list[str]]:
    with (data / f"banking77-{split}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def baseline(k: int) -> Callable[[list[str], np.ndarray, int], np.ndarray]:
    def run(texts: list[str], x: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, random_state=seed).fit_predict(x)

    return run


def ours(**kw: object) -> Callable[[list[str], np.ndarray, int], np.ndarray]:
    def run(texts: list[str], x: np.ndarray, seed: int) -> np.ndarray:
        return cluster_texts(texts, x, seed=seed, **kw).labels  # type: ignore[arg-type]

    return run


def fmt(values: list[float], digits: int) -> str:
    a = np.asarray(values, dtype=float)
    if len(a) == 1 or a.std() == 0:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", choices=("train", "test"), default="train")
    ap.add_argument("--backends", nargs="+", default=["wordllama", "st", "tfidf"])
    ap.add_argument("--k", type=int, default=154, help="cluster budget: 2 x the 77 intents by default")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache folder (default: a temp dir)")
    args = ap.parse_args(argv)

    texts, labels = load(args.data, args.split)
    print(
        f"# Banking77 {args.split}: {len(texts):,} texts, {len(set(labels))} intents, k = {args.k}, "
        f"seeds {args.seeds}; {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    cache = EmbeddingCache(args.cache or Path(tempfile.mkdtemp(prefix="evaltray-bench-")))
    runs = {
        f"baseline: sklearn KMeans k={args.k}": baseline(args.k),
        f"evaltray spectral k={args.k}": ours(k=args.k, method="spectral"),
        f"evaltray spherical k-means k={args.k}": ours(k=args.k, method="kmeans"),
        f"evaltray spectral k=auto (<= {args.k})": ours(k="auto", method="spectral", max_k=args.k),
        "evaltray hdbscan (own k, noise left out)": ours(method="hdbscan"),
    }
    for backend in args.backends:
        try:
            t0 = time.perf_counter()
            emb = get_embedder(backend)
            t_load = time.perf_counter() - t0
        except EmbeddingError as exc:
            print(f"\n## {backend}: skipped ({exc})")
            continue
        cached = cache.size(emb) if emb.fitted else 0
        t0 = time.perf_counter()
        x = cache.embed_cached(emb, texts)
        t_embed = time.perf_counter() - t0
        speed = (
            "read from the cache"
            if cached >= len(texts)
            else f"embed {t_embed:.1f} s ({len(texts) / max(t_embed, 1e-9):,.0f} texts/s)"
        )
        print(f"\n## {emb.name} (dim {emb.dim}): load {t_load:.1f} s, {speed}\n")
        print("| method | purity | NMI | ARI | clusters | coverage | s/run |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, run in runs.items():
            got: dict[str, list[float]] = {m: [] for m in METRICS}
            for seed in args.seeds:
                t0 = time.perf_counter()
                pred = run(texts, x, seed)
                got["seconds"].append(time.perf_counter() - t0)
                for m, v in evaluate(labels, pred).items():
                    got[m].append(v)
            print(
                f"| {name} | {fmt(got['purity'], 3)} | {fmt(got['nmi'], 3)} | {fmt(got['ari'], 3)} | "
                f"{fmt(got['n_clusters'], 0)} | {fmt(got['coverage'], 2)} | {fmt(got['seconds'], 1)} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
