"""Intent-cluster quality (issues 4, 11 §3, 17): evaltray's default clustering vs plain k-means, and k="auto".

    python bench/banking77_eval.py                                   # Banking77 train (the building set)
    python bench/banking77_eval.py --sets hwu64-train --intents 20   # the second building set, a variant
    python bench/banking77_eval.py --sets banking77-test clinc150 --clinc data_full.json   # measuring sets
    python bench/banking77_eval.py --backends tfidf --seeds 0 1 2 --resamples 3
    python bench/banking77_eval.py --per-intent 40 --resolutions 1 2 3 4 6 8 12   # building-set variant
    python bench/banking77_eval.py --sets clinc150 --clinc data_full.json --skip-true --seeds 0 1 2 3

For each embedding backend and intent set the script embeds the texts once, then for every seed runs,
on the same vectors: evaltray's ``cluster_texts`` at default settings (spectral, ``k="auto"``), and
plain scikit-learn ``KMeans(n_clusters=k, random_state=seed)`` at the k evaltray chose; then both at
the true number of intents. It prints purity, NMI, ARI, the cluster count and seconds per run (mean
± sd over seeds) and the time ratio. Stability: for each seed and each of ``--resamples`` seeded
removals of 1% of the texts, how far k="auto" moves from its full-set choice.

``--per-intent N`` and ``--intents N`` cut a set down (seeded) to at most N texts per intent, or to N of
its intents: variants of the building set with the density and intent count of other sets, to tune on
without touching those. ``--resolutions`` prints, instead, the count k="auto" picks at each modularity
resolution and which of them land within 25% of the true count. ``--gold-cut`` prints, instead, the share
of the k-NN graph's edge weight (5, 10, 15 neighbours) that the gold intents cut, beside KMeans' and
evaltray's clusters at the true count and k="auto"'s clusters (first seed).

Data: Banking77 (PolyAI, CC-BY-4.0) from ``../shared/data/intents/`` beside the repository unless
``--data`` says otherwise; CLINC150 (Larson et al. 2019, CC-BY-3.0) is ``data/data_full.json`` of
github.com/clinc/oos-eval (commit 828f8093932c8fe6ca7936c3d2e52903b1c523de), its ``train`` split
(15,000 texts, 150 intents, out-of-scope texts left out), read from ``--clinc``. HWU64 (Liu et al. 2019,
CC-BY-4.0; ``hwu64-train``, 9,960 texts of 64 intents, a second building set) is in ``bench/data/intents/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Imported here, before any timing: evaltray imports scikit-learn lazily, so without this the first timed
# clustering paid for loading it (seconds on a loaded machine) and the KMeans timed after it did not.
import sklearn.feature_extraction.text  # noqa: F401  (cluster names' CountVectorizer, likewise)
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from evaltray.curate.cluster import cluster_texts, cut_share, evaluate
from evaltray.curate.embed import EmbeddingCache, EmbeddingError, get_embedder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "intents"
HWU64 = Path(__file__).resolve().parent / "data" / "intents" / "hwu64-kfold1-train.csv"
SETS = ("banking77-train", "hwu64-train", "banking77-test", "clinc150")


def load(name: str, data: Path, clinc: Path | None) -> tuple[list[str], list[str]]:
    """Texts and intent labels of one set."""
    if name == "clinc150":
        if clinc is None:
            raise SystemExit("clinc150 needs --clinc PATH (data/data_full.json of github.com/clinc/oos-eval)")
        rows = json.loads(clinc.read_text(encoding="utf-8"))["train"]
        return [t for t, _ in rows], [label for _, label in rows]
    path = HWU64 if name == "hwu64-train" else data / f"{name}.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def cut(
    texts: list[str], labels: list[str], per_intent: int | None, intents: int | None
) -> tuple[list[str], list[str]]:
    """At most ``per_intent`` texts of each intent, of ``intents`` intents picked at random (seeded)."""
    rng = np.random.default_rng(7)
    y = np.asarray(labels)
    names = np.unique(y)
    if intents is not None:
        names = np.sort(rng.choice(names, size=min(intents, names.size), replace=False))
    keep: list[int] = []
    for name in names:
        idx = np.flatnonzero(y == name)
        keep += sorted(rng.choice(idx, size=min(per_intent or idx.size, idx.size), replace=False).tolist())
    keep.sort()
    return [texts[i] for i in keep], [labels[i] for i in keep]


def resolutions(texts: list[str], labels: list[str], x: np.ndarray, seeds: list[int], gammas: list[float]) -> None:
    """The count k="auto" picks at each modularity resolution, per seed; those within 25% of the truth marked."""
    truth = len(set(labels))
    print(f"| seed | {' | '.join(f'resolution {g:g}' for g in gammas)} |\n| --- |{' --- |' * len(gammas)}")
    for seed in seeds:
        ks = [cluster_texts(texts, x, seed=seed, resolution=g).n_clusters for g in gammas]
        cells = [f"**{k}**" if abs(k - truth) <= 0.25 * truth else str(k) for k in ks]
        print(f"| {seed} | {' | '.join(cells)} |", flush=True)
    print(f"\n(true count {truth}; bold: within 25%)", flush=True)


def gold_cut(texts: list[str], labels: list[str], x: np.ndarray, seed: int) -> None:
    """How much of the k-NN graph's edge weight the gold intents cut, against clusterings of the same count
    (and k="auto"'s): a gold labelling that cuts far more than they do is not a set of communities there."""
    truth = len(set(labels))
    runs = {
        "gold intents": np.asarray(labels),
        f"KMeans, k = {truth}": kmeans(x, truth, seed),
        f"evaltray spectral, k = {truth}": cluster_texts(texts, x, k=truth, seed=seed).labels,
    }
    auto = cluster_texts(texts, x, seed=seed)
    runs[f"evaltray k=auto ({auto.n_clusters})"] = auto.labels
    neighbours = (5, 10, 15)
    print(f"| labels (seed {seed}) | {' | '.join(f'cut share, {k} neighbours' for k in neighbours)} |")
    print(f"| --- |{' --- |' * len(neighbours)}")
    for name, lab in runs.items():
        print(f"| {name} | {' | '.join(f'{cut_share(x, lab, k):.3f}' for k in neighbours)} |", flush=True)


def fmt(values: list[float], digits: int) -> str:
    a = np.asarray(values, dtype=float)
    if len(a) == 1 or a.std() == 0:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def timed(fn: object, *args: object, **kw: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)  # type: ignore[operator]
    return out, time.perf_counter() - t0


def cpu_seconds(repeats: int, fn: object, *args: object, **kw: object) -> tuple[float, float, object]:
    """The least CPU time (``time.process_time``) and wall time of ``repeats`` calls (at least one), every thread
    pool held to one thread, and the last call's result: the work itself, which a loaded machine inflates less than
    wall time (idle OpenMP threads spin on busy cores and count as CPU time of the process that owns them)."""
    best, wall, out = math.inf, math.inf, None
    with threadpool_limits(1):
        for _ in range(max(repeats, 1)):
            t0, w0 = time.process_time(), time.perf_counter()
            out = fn(*args, **kw)  # type: ignore[operator]
            best, wall = min(best, time.process_time() - t0), min(wall, time.perf_counter() - w0)
    return best, wall, out


def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, random_state=seed).fit_predict(x)


def kmeans_choosing_k(x: np.ndarray, counts: list[int], seed: int) -> np.ndarray:
    """Plain k-means that must choose k as well: scikit-learn's KMeans at each of ``counts`` (the counts evaltray's
    k="auto" scored on the same vectors), the labels with the best silhouette kept. The silhouette is taken on a
    seeded sample of 3,000 texts (the full one costs a pass over all pairs per count), so this reference is the
    cheaper of the two usual ways to score it."""
    best, labels = -math.inf, np.zeros(x.shape[0], dtype=np.int64)
    for k in counts:
        lab = kmeans(x, k, seed)
        score = silhouette_score(x, lab, sample_size=min(3000, x.shape[0]), random_state=seed)
        if score > best:
            best, labels = score, lab
    return labels


def row(name: str, runs: list[tuple[dict[str, float], float]]) -> str:
    got = {m: [r[m] for r, _ in runs] for m in ("purity", "nmi", "ari", "n_clusters")}
    secs = [s for _, s in runs]
    return (
        f"| {name} | {fmt(got['purity'], 3)} | {fmt(got['nmi'], 3)} | {fmt(got['ari'], 3)} | "
        f"{fmt(got['n_clusters'], 0)} | {fmt(secs, 1)} |"
    )


def compare(
    texts: list[str], labels: list[str], x: np.ndarray, seeds: list[int], at_true: bool = True, repeats: int = 0
) -> list[int]:
    """Default clustering vs k-means at the k it chose and vs k-means choosing k by silhouette over the same
    counts, and (``at_true``) both at the true k: one table, then the time ratios (wall, and with ``repeats``
    CPU seconds on one thread, best of that many). Returns the k chosen at each seed."""
    truth = len(set(labels))
    rows: dict[str, list[tuple[dict[str, float], float]]] = {}
    wins = {"auto": 0, "choose": 0, "true": 0}
    ratios: dict[str, list[float]] = {}
    chosen: list[int] = []
    for seed in seeds:
        ours, t_ours = timed(cluster_texts, texts, x, seed=seed)
        k = ours.n_clusters  # type: ignore[attr-defined]
        counts = sorted(ours.k_scores)  # type: ignore[attr-defined]
        chosen.append(k)
        ref, t_ref = timed(kmeans, x, k, seed)
        # One thread: under load scikit-learn's threads made its many fits 3-10x slower in wall time.
        c_choice, t_choice, choice = cpu_seconds(repeats, kmeans_choosing_k, x, counts, seed)
        runs = {
            "auto": ("evaltray default (spectral, k=auto)", ours.labels, t_ours),  # type: ignore[attr-defined]
            "ref": ("sklearn KMeans, the k evaltray chose", ref, t_ref),
            "choose": ("sklearn KMeans choosing k by silhouette over the same counts (1 thread)", choice, t_choice),
        }
        if at_true:
            mine, t_mine = timed(cluster_texts, texts, x, k=truth, seed=seed)
            theirs, t_theirs = timed(kmeans, x, truth, seed)
            runs["mine"] = (f"evaltray spectral, k={truth} (true)", mine.labels, t_mine)  # type: ignore[attr-defined]
            runs["theirs"] = (f"sklearn KMeans, k={truth} (true)", theirs, t_theirs)
            ratios.setdefault("wall, at the true k", []).append(t_mine / t_theirs)
        scores = {key: evaluate(labels, lab) for key, (_, lab, _) in runs.items()}  # type: ignore[arg-type]
        for key, (name, _, sec) in runs.items():
            rows.setdefault(name, []).append((scores[key], sec))
        for win, (a, b) in {"auto": ("auto", "ref"), "choose": ("auto", "choose"), "true": ("mine", "theirs")}.items():
            if b in scores:
                wins[win] += all(scores[a][q] > scores[b][q] for q in ("purity", "nmi", "ari"))
        line = {"wall, one fit at k": t_ours / t_ref, "wall, choosing k": t_ours / t_choice}
        if repeats:
            c_ours = cpu_seconds(repeats, cluster_texts, texts, x, seed=seed)[0]
            line["CPU, one fit at k"] = c_ours / cpu_seconds(repeats, kmeans, x, k, seed)[0]
            line["CPU, choosing k"] = c_ours / c_choice
        for key, value in line.items():
            ratios.setdefault(key, []).append(value)
        print(
            f"  seed {seed}: k=auto {k} (true {truth}, {100 * (k - truth) / truth:+.0f}%), {len(counts)} counts scored, "
            f"k-means by silhouette chose {scores['choose']['n_clusters']}; "
            f"time {t_ours:.1f} s vs KMeans {t_ref:.1f} s vs KMeans choosing k {t_choice:.1f} s; ratios "
            + ", ".join(f"{key} {value:.2f}x" for key, value in line.items()),
            file=sys.stderr,
            flush=True,
        )
    print("| method | purity | NMI | ARI | clusters | s/run |\n| --- | --- | --- | --- | --- | --- |")
    for key, runs_ in rows.items():
        print(row(key, runs_))
    print(
        f"\nbeats KMeans on purity, NMI and ARI together: at its own k in {wins['auto']}/{len(seeds)} seeds, "
        f"KMeans choosing k in {wins['choose']}/{len(seeds)}, at the true k in {wins['true']}/{len(seeds) if at_true else 0}",
        flush=True,
    )
    print(
        "time ratio, evaltray k=auto ÷ (one KMeans fit at the k evaltray chose | KMeans choosing k by silhouette "
        "over the same counts); CPU: one thread each, best of "
        f"{repeats}: " + "; ".join(f"{key} {fmt(value, 2)}x" for key, value in ratios.items()),
        flush=True,
    )
    return chosen


def stability(texts: list[str], x: np.ndarray, seeds: list[int], resamples: int, truth: int, chosen: list[int]) -> None:
    """How far k="auto" moves from ``chosen`` (its full-set pick per seed) when 1% of the texts are removed
    (seeded removals), per seed."""
    moves: list[float] = []
    for seed, full in zip(seeds, chosen, strict=True):
        ks = []
        for r in range(resamples):
            keep = np.sort(np.random.default_rng(1000 + r).permutation(len(texts))[: int(len(texts) * 0.99)])
            ks.append(cluster_texts([texts[i] for i in keep], x[keep], seed=seed).n_clusters)
            moves.append(abs(ks[-1] - full) / full)
        print(f"- seed {seed}: full set k = {full} ({100 * (full - truth) / truth:+.0f}% of {truth}); 1% removed: {ks}")
    print(
        f"- largest move {100 * max(moves):.1f}%, mean {100 * float(np.mean(moves)):.1f}% (target <= 10%)", flush=True
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--clinc", type=Path, default=None, help="CLINC150 data_full.json")
    ap.add_argument("--sets", nargs="+", choices=SETS, default=["banking77-train"])
    ap.add_argument("--backends", nargs="+", default=["wordllama", "st", "tfidf"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--resamples", type=int, default=2, help="1%% removals per seed for the stability check (0: none)")
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache folder (default: a temp dir)")
    ap.add_argument("--per-intent", type=int, default=None, help="keep at most N texts of each intent (seeded)")
    ap.add_argument("--intents", type=int, default=None, help="keep N of the intents, picked at random (seeded)")
    ap.add_argument("--skip-true", action="store_true", help="leave out the runs at the true intent count")
    ap.add_argument("--repeats", type=int, default=0, help="also time CPU seconds on one thread, best of N (0: not)")
    ap.add_argument("--resolutions", nargs="+", type=float, default=None, help="scan k=auto over these resolutions")
    ap.add_argument("--gold-cut", action="store_true", help="share of graph weight the gold intents cut, vs clusters")
    args = ap.parse_args(argv)

    print(
        f"# seeds {args.seeds}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    cache = EmbeddingCache(args.cache or Path(tempfile.mkdtemp(prefix="evaltray-bench-")))
    for backend in args.backends:
        for name in args.sets:
            try:
                emb = get_embedder(backend)  # afresh per set: TF-IDF fits its vocabulary on the set itself
            except EmbeddingError as exc:
                print(f"\n## {backend}: skipped ({exc})")
                break
            texts, labels = cut(*load(name, args.data, args.clinc), args.per_intent, args.intents)
            x = cache.embed_cached(emb, texts)
            print(f"\n## {name} ({len(texts):,} texts, {len(set(labels))} intents), {emb.name} (dim {emb.dim})\n")
            if args.resolutions:
                resolutions(texts, labels, x, args.seeds, args.resolutions)
                continue
            if args.gold_cut:
                gold_cut(texts, labels, x, args.seeds[0])
                continue
            chosen = compare(texts, labels, x, args.seeds, not args.skip_true, args.repeats)
            if args.resamples < 1:
                continue
            print()
            stability(texts, x, args.seeds, args.resamples, len(set(labels)), chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
