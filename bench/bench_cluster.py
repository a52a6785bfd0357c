"""Clustering 100k traces end to end (issue: curation): embed + cluster + name, against plain k-means.

    python bench/bench_cluster.py                 # 100,000 texts, WordLlama, k=auto and k=154
    python bench/bench_cluster.py -n 20000 --backend tfidf

The texts are Banking77's 13,083 real queries (train + test, CC-BY-4.0, read from
``../shared/data/intents/``), 40% given a greeting, 40% a sign-off, 30% lower-cased (seeded), so
the 100k are distinct (the clusterer's fit-each-distinct-text-once shortcut does not apply) and
each still carries its intent label, which lets the script report quality at scale too.

Timed, one after the other on the same vectors: loading the embedder, embedding, then
``cluster_texts`` (fit on a 20k sample, assign the rest, name every cluster with c-TF-IDF, pick
examples) and, as the reference, scikit-learn ``KMeans`` with the same cluster count on the same
vectors (no naming). Figures go to stdout.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

from evaltray.curate.cluster import cluster_texts, evaluate
from evaltray.curate.embed import get_embedder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "intents"
PREFIXES = (
    "hi, ",
    "hello, ",
    "hey ",
    "good morning, ",
    "quick question: ",
    "sorry to bother you, ",
    "urgent: ",
    "thanks in advance, ",
    "hi there! ",
    "excuse me, ",
    "please help: ",
)
SUFFIXES = (
    " thanks",
    " thank you!",
    " please help",
    " asap",
    " any idea?",
    " cheers",
    " ??",
    " this is the second time I ask",
    " I need it by friday",
    " (sent from my phone)",
    " please",
    " ty",
)
#: Share of texts that get a greeting, and (independently) a sign-off.
AFFIX_RATE = 0.4


def corpus(data: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` distinct labelled texts: real Banking77 queries in seeded greeting/sign-off/case variants."""
    base: list[tuple[str, str]] = []
    for split in ("train", "test"):
        with (data / f"banking77-{split}.csv").open(newline="", encoding="utf-8") as fh:
            base += [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[str] = []
    while len(texts) < n:
        text, label = base[rng.randrange(len(base))]
        body = text.lower() if rng.random() < 0.3 else text
        prefix = rng.choice(PREFIXES) if rng.random() < AFFIX_RATE else ""
        suffix = rng.choice(SUFFIXES) if rng.random() < AFFIX_RATE else ""
        t = f"{prefix}{body}{suffix}"
        if t not in seen:
            seen.add(t)
            texts.append(t)
            labels.append(label)
    return texts, labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--backend", default="wordllama")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ks", nargs="+", default=["auto", "154"], help="cluster counts to time ('auto' or an int)")
    args = ap.parse_args(argv)

    texts, labels = corpus(args.data, args.n, args.seed)
    print(
        f"# {len(texts):,} distinct texts from Banking77 ({len(set(labels))} intents); backend {args.backend}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )

    t0 = time.perf_counter()
    emb = get_embedder(args.backend)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    x = emb.embed(texts)
    t_embed = time.perf_counter() - t0
    print(f"load {emb.name}: {t_load:.2f} s; embed: {t_embed:.2f} s ({len(texts) / t_embed:,.0f} texts/s)\n")

    print("| k | step | seconds | end to end (load + embed + step) | purity | NMI | ARI | clusters |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k_arg in args.ks:
        k: int | str = k_arg if k_arg == "auto" else int(k_arg)
        t0 = time.perf_counter()
        result = cluster_texts(texts, x, k=k, seed=args.seed)  # type: ignore[arg-type]
        t_ours = time.perf_counter() - t0
        q = evaluate(labels, result.labels)
        e2e_ours = t_load + t_embed + t_ours
        print(
            f"| {k_arg} | evaltray cluster_texts (spectral, named) | {t_ours:.1f} | {e2e_ours:.1f} | "
            f"{q['purity']:.3f} | {q['nmi']:.3f} | {q['ari']:.3f} | {q['n_clusters']} |",
            flush=True,
        )

        from sklearn.cluster import KMeans

        t0 = time.perf_counter()
        ref = KMeans(n_clusters=result.n_clusters, random_state=args.seed).fit_predict(x)
        t_ref = time.perf_counter() - t0
        r = evaluate(labels, ref)
        e2e_ref = t_load + t_embed + t_ref
        print(
            f"| {result.n_clusters} | reference: sklearn KMeans, same k, unnamed | {t_ref:.1f} | {e2e_ref:.1f} | "
            f"{r['purity']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | {r['n_clusters']} |"
        )
        print(
            f"|  | ratio evaltray / reference | {t_ours / t_ref:.2f}x | {e2e_ours / e2e_ref:.2f}x |  |  |  |  |",
            flush=True,
        )
        # scikit-learn's k-means++ is far slower on float32 input (an upcasting distance path):
        # the same reference on a float64 copy shows how much of the gap that is.
        t0 = time.perf_counter()
        ref64 = KMeans(n_clusters=result.n_clusters, random_state=args.seed).fit_predict(x.astype(np.float64))
        t_ref64 = time.perf_counter() - t0
        r = evaluate(labels, ref64)
        print(
            f"| {result.n_clusters} | reference on a float64 copy | {t_ref64:.1f} | {t_load + t_embed + t_ref64:.1f} "
            f"| {r['purity']:.3f} | {r['nmi']:.3f} | {r['ari']:.3f} | {r['n_clusters']} |"
        )
        print(
            f"|  | ratio evaltray / float64 reference | {t_ours / t_ref64:.2f}x | "
            f"{e2e_ours / (t_load + t_embed + t_ref64):.2f}x |  |  |  |  |",
            flush=True,
        )
        print(
            f"\nk={k_arg}: end to end {e2e_ours:.1f} s for {len(texts):,} texts "
            f"({'under' if e2e_ours < 60 else 'OVER'} the 60 s target); first names: "
            f"{[c.name for c in result.clusters[:3]]}\n",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
