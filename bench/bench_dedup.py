"""Benchmark for near-duplicate dedup (issue: curation): rensa MinHash + LSH vs datasketch, and the ANN choice.

    python bench/bench_dedup.py                 # 1M traces end to end + datasketch on a 50k subset
    python bench/bench_dedup.py -n 200000       # smaller
    python bench/bench_dedup.py --ann           # also usearch vs faiss-cpu for the paraphrase level

The corpus is synthetic on purpose: only a generator knows the true near-duplicate pairs. Texts are
drawn from a Markov chain over Banking77's 10,003 real customer queries (CC-BY-4.0, in
tests/data/dedup/) plus greetings, sign-offs and fresh numbers; planted near-duplicates are word edits
(typo, inserted or dropped word) of a base text, kept only if their exact Jaccard of character 5-grams
is >= 0.8; re-asks (case, punctuation, spacing changed) exercise the exact level. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaltray.curate.dedup import (
    _exact_jaccard,
    dedup,
    lsh_params,
    near_duplicate_pairs,
    normalize,
    shingle_hashes,
)

THRESHOLD = 0.8

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "dedup"
PREFIXES = (
    "",
    "",
    "",
    "",
    "",
    "",
    "hi, ",
    "hello, ",
    "hey, ",
    "good morning, ",
    "quick question: ",
    "sorry to bother you, ",
    "urgent: ",
    "thanks in advance, ",
)
SUFFIXES = (
    "",
    "",
    "",
    "",
    "",
    "",
    " thanks",
    " thank you!",
    " please help",
    " asap",
    " any idea?",
    " cheers",
    " this is the second time I ask",
    " I need it by friday",
    " my account is under my work email",
)
FILLERS = ("please", "actually", "just", "really", "again", "now", "today", "kindly", "still", "also")
END = ""


class Chain:
    """A word-level Markov chain (order 2, backing off to order 1) over Banking77's real queries.

    Templates alone make every text a near-twin of thousands of siblings; a chain over 10,003 real
    queries gives fluent, varied short texts with realistic repeats of popular questions.
    """

    def __init__(self, sentences: list[str]) -> None:
        self.starts: list[tuple[str, str]] = []
        self.two: dict[tuple[str, str], list[str]] = {}
        self.one: dict[str, list[str]] = {}
        for s in sentences:
            w = s.split()
            if len(w) < 2:
                continue
            self.starts.append((w[0], w[1]))
            w = [*w, END]
            for a, b, c in zip(w, w[1:], w[2:], strict=False):
                self.two.setdefault((a, b), []).append(c)
            for a, b in zip(w, w[1:], strict=False):
                self.one.setdefault(a, []).append(b)

    def sample(self, rng: random.Random) -> str:
        a, b = rng.choice(self.starts)
        out = [a, b]
        while len(out) < 40:
            options = (None if rng.random() < 0.25 else self.two.get((a, b))) or self.one.get(b) or [END]
            nxt = rng.choice(options)
            if nxt == END:
                if len(out) >= 4 or not self.one.get(b):
                    break
                nxt = rng.choice([x for x in self.one[b] if x != END] or [END])
                if nxt == END:
                    break
            out.append(nxt)
            a, b = b, nxt
        text = " ".join(out)
        if rng.random() < 0.3:  # fresh numbers: order ids, amounts, card digits
            text += rng.choice((" order {}", " for {} euros", " card ending {}", " on the {}th")).format(
                rng.randint(1, 9999)
            )
        return rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)


def _chain() -> Chain:
    import csv

    with (DATA / "banking77-train.csv").open(newline="", encoding="utf-8") as fh:
        return Chain([r["text"] for r in csv.DictReader(fh)])


def _shingles(norm: str) -> set[str]:
    """Reference shingle set, written independently of the engine's vectorized hashing."""
    s = "\0" * 4 + norm + "\0" * 4
    return {s[i : i + 5] for i in range(len(s) - 4)}


def jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(normalize(a)), _shingles(normalize(b))
    return len(sa & sb) / len(sa | sb)


def _edit(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    op = rng.random()
    k = rng.randrange(len(words))
    w = words[k]
    if op < 0.4 and len(w) >= 4:  # typo: swap or drop an inner letter
        p = rng.randrange(1, len(w) - 2)
        words[k] = w[:p] + w[p + 1] + w[p] + w[p + 2 :] if rng.random() < 0.5 else w[:p] + w[p + 1 :]
    elif op < 0.75:
        words.insert(k, rng.choice(FILLERS))
    elif len(words) > 4:
        del words[k]
    else:
        words.append(rng.choice(FILLERS))
    return " ".join(words)


def _reask(rng: random.Random, text: str) -> str:
    """Same question, different surface: case, punctuation and spacing only (the exact level's job)."""
    out = text.upper() if rng.random() < 0.2 else (text.capitalize() if rng.random() < 0.5 else text)
    out = out.rstrip("?!. ") + rng.choice(("", "?", "??", "!", "."))
    return out.replace(" ", "  ", 1) if rng.random() < 0.3 else out


def make_corpus(
    n: int, seed: int = 7, planted_share: float = 0.10, reask_share: float = 0.10
) -> tuple[list[str], list[str], list[tuple[int, int, float]]]:
    """``n`` texts with planted near-duplicate pairs ``(i, j, jaccard)``, all with Jaccard >= 0.8."""
    rng = random.Random(seed)
    chain = _chain()
    texts: list[str] = []
    planted: list[tuple[int, int, float]] = []
    n_planted = int(n * planted_share)
    n_reask = int(n * reask_share)
    while len(texts) < n - n_planted - n_reask:
        texts.append(chain.sample(rng))
    while n_planted > 0:  # families: a base and 1-3 word-edited variants of it
        base_i = rng.randrange(len(texts))
        base = texts[base_i]
        for _ in range(min(n_planted, rng.randint(1, 3))):
            for _attempt in range(6):
                var = _edit(rng, base)
                if rng.random() < 0.25:
                    var = _edit(rng, var)
                j = jaccard(base, var)
                if THRESHOLD <= j < 1.0:
                    planted.append((base_i, len(texts), j))
                    texts.append(var)
                    n_planted -= 1
                    break
            else:
                n_planted -= 1
                texts.append(chain.sample(rng))
    popular = [texts[rng.randrange(len(texts))] for _ in range(50)]
    for _ in range(n_reask):  # re-asks: most of any random text, some of 50 very popular questions
        src = rng.choice(popular) if rng.random() < 0.3 else texts[rng.randrange(len(texts))]
        texts.append(_reask(rng, src))
    return [f"t{i:07d}" for i in range(len(texts))], texts, planted


# --------------------------------------------------------------------------- datasketch, same pipeline


def _same_quantities(texts: list[str], planted: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The planted pairs whose two texts state the same quantities (dedup's own reading of them)."""
    from evaltray.curate import dedup as engine

    read = getattr(engine, "_quantities", None)
    if read is None:  # an engine without a quantity guard
        return planted
    return [(a, b, j) for a, b, j in planted if read(engine._raw(texts[a])) == read(engine._raw(texts[b]))]


def _identity(x: int) -> int:
    return x


def near_pairs_datasketch(norm_texts: list[str], threshold: float, *, prehashed: bool) -> tuple[np.ndarray, dict]:
    """The engine's near stage with datasketch doing MinHash + LSH: same shingles, bands and verification."""
    from datasketch import MinHash, MinHashLSH

    bands, rows = lsh_params(threshold)
    num_perm = bands * rows
    t0 = time.perf_counter()
    flat, offsets = shingle_hashes(norm_texts)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    sigs = []
    if prehashed:  # datasketch's cheapest input: our 64-bit shingle hashes cut to 32 bits, identity hashfunc
        low = (flat & np.uint64(0xFFFFFFFF)).tolist()
        bounds = offsets.tolist()
        sigs = MinHash.bulk(
            (low[bounds[d] : bounds[d + 1]] for d in range(len(norm_texts))), num_perm=num_perm, hashfunc=_identity
        )
    else:  # how datasketch is normally fed: byte-string tokens, its own SHA-1 hashing
        toks = (["\0" * 4 + t + "\0" * 4] for t in norm_texts)
        token_sets = ([s[i : i + 5].encode("utf-8", "surrogatepass") for i in range(len(s) - 4)] for (s,) in toks)
        sigs = MinHash.bulk(token_sets, num_perm=num_perm)
    t1 = time.perf_counter()
    with lsh.insertion_session() as session:
        for d, m in enumerate(sigs):
            session.insert(d, m)
    cand = set()
    for d, m in enumerate(sigs):
        for e in lsh.query(m):
            if e != d:
                cand.add((min(d, e), max(d, e)))
    t2 = time.perf_counter()
    pairs = np.array(sorted(cand), dtype=np.int64).reshape(-1, 2)
    est = np.array([sigs[a].jaccard(sigs[b]) for a, b in pairs.tolist()])
    keep = pairs[est >= threshold - 0.2]
    jac = _exact_jaccard(flat, offsets, keep)
    t3 = time.perf_counter()
    return keep[jac >= threshold], {"minhash": t1 - t0, "lsh": t2 - t1, "verify": t3 - t2, "total": t3 - t0}


# --------------------------------------------------------------------------- reporting helpers


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _timed(fn: Callable[[], object], repeat: int = 1) -> tuple[object, float]:
    """Result and the best wall time of ``repeat`` runs (the machine is shared: the best is the least disturbed)."""
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        got = fn()
        if time.perf_counter() - t < best:
            best, out = time.perf_counter() - t, got
    return out, best


def run_near(n: int, subset: int, seed: int) -> None:
    print(f"# near-duplicates: {n:,} traces, threshold {THRESHOLD}, LSH {lsh_params(THRESHOLD)} (bands, rows)")
    ids, texts, planted = make_corpus(n, seed)
    print(
        f"corpus: {len(texts):,} texts, mean {np.mean([len(t) for t in texts]):.0f} chars; "
        f"{len(planted):,} planted pairs with Jaccard >= {THRESHOLD}"
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res, secs = _timed(lambda: dedup(ids, texts, near=THRESHOLD, paraphrase=None))
    s = res.stats  # type: ignore[attr-defined]
    print(
        f"dedup() end to end: {secs:.2f} s = {n / secs:,.0f} traces/s; peak RSS of the process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB ({rss_before:,.0f} MiB before dedup) "
        f"(normalize+exact {s['seconds_exact']:.2f} s, near {s['seconds_near']:.2f} s)"
    )
    print(
        "  near stage: "
        + ", ".join(f"{k[len('near_seconds_') :]} {s[k]:.2f} s" for k in s if k.startswith("near_seconds_"))
    )
    distinct = n - sum(1 for p in res.pairs if p.level == "exact")  # type: ignore[attr-defined]
    full_rate = distinct / s["seconds_near"]
    print(f"  near stage throughput on all {distinct:,} distinct texts: {full_rate:,.0f} texts/s")
    print(
        f"  {s['representatives']:,} representatives left; exact groups {s['exact_groups']:,}; "
        f"flagged by LSH {s['near_flagged']:,}; candidates {s['near_candidates']:,}; "
        f"kept by estimate {s['near_estimated']:,}; verified {s['near_verified']:,}"
    )
    rep = res.rep_of  # type: ignore[attr-defined]
    found = sum(rep[ids[a]] == rep[ids[b]] for a, b, _ in planted)
    print(f"recall of planted pairs: {found:,}/{len(planted):,} = {_pct(found / len(planted))}")
    same = _same_quantities(texts, planted)
    f_same = sum(rep[ids[a]] == rep[ids[b]] for a, b, _ in same)
    print(
        f"  of the {len(same):,} planted pairs whose quantities agree (an edit may change a number: then the "
        f"near stage keeps them apart on purpose): {f_same:,} = {_pct(f_same / max(1, len(same)))}"
    )
    for lo, hi in ((0.8, 0.85), (0.85, 0.9), (0.9, 1.0)):
        sel = [(a, b) for a, b, j in planted if lo <= j < hi]
        if sel:
            f = sum(rep[ids[a]] == rep[ids[b]] for a, b in sel)
            print(f"  Jaccard [{lo}, {hi}): {f:,}/{len(sel):,} = {_pct(f / len(sel))}")
    near = [p for p in res.pairs if p.level == "near"]  # type: ignore[attr-defined]
    idx = {t: i for i, t in enumerate(ids)}
    rng = random.Random(1)
    sample = rng.sample(near, min(len(near), 20_000))
    ok = sum(jaccard(texts[idx[p.a]], texts[idx[p.b]]) >= THRESHOLD - 1e-9 for p in sample)
    planted_set = {(ids[a], ids[b]) for a, b, _ in planted}
    print(
        f"precision of merge evidence (independent Jaccard recomputation, {len(sample):,} sampled near pairs): "
        f"{_pct(ok / max(1, len(sample)))}; {len(near):,} near merges, of which "
        f"{sum((p.a, p.b) in planted_set for p in near):,} are planted pairs (the rest are real near-duplicates the "
        "templates made by chance)"
    )
    groups = [g for g in res.groups if g.level == "near"]  # type: ignore[attr-defined]
    co = []
    for g in rng.sample(groups, min(len(groups), 5000)):
        a, b = rng.sample(g.members, 2)
        co.append(jaccard(texts[idx[a]], texts[idx[b]]))
    if co:
        print(
            f"group purity: {_pct(float(np.mean(np.array(co) >= THRESHOLD)))} of random member pairs in "
            f"{len(co):,} sampled near groups have Jaccard >= {THRESHOLD} (others joined through a chain)"
        )

    # the same random subset of distinct normalized texts for both libraries
    norm = sorted({normalize(t) for t in texts})
    rng.shuffle(norm)
    sub = norm[:subset]
    print(
        f"\n# MinHash + LSH on the same {len(sub):,} distinct texts (near stage only: shingle, sketch, LSH, verify; "
        "best of 3 runs for rensa, 2 for datasketch)"
    )
    r_res, r_secs = _timed(lambda: near_duplicate_pairs(sub, THRESHOLD), repeat=3)
    r_pairs = {(int(a), int(b)) for a, b in zip(r_res.i, r_res.j, strict=True)}  # type: ignore[attr-defined]
    print(f"rensa      : {r_secs:.2f} s = {len(sub) / r_secs:,.0f} texts/s, {len(r_pairs):,} verified pairs")
    for prehashed in (False, True):
        (d_pairs, d_t), d_secs = _timed(
            lambda p=prehashed: near_pairs_datasketch(sub, THRESHOLD, prehashed=p),  # type: ignore[misc]
            repeat=2,
        )
        dp = {(int(a), int(b)) for a, b in d_pairs}
        label = "datasketch (prehashed, identity hashfunc)" if prehashed else "datasketch (bytes tokens, SHA-1)"
        print(
            f"{label}: {d_secs:.2f} s = {len(sub) / d_secs:,.0f} texts/s, {len(dp):,} verified pairs "
            f"(minhash {d_t['minhash']:.1f} s, lsh {d_t['lsh']:.1f} s, verify {d_t['verify']:.1f} s)\n"
            f"    rensa/datasketch throughput on the same {len(sub):,} texts = {d_secs / r_secs:.1f}x; "
            f"rensa on all {distinct:,} texts (denser: more pairs to check) vs datasketch here = "
            f"{full_rate / (len(sub) / d_secs):.1f}x; pairs found by both {len(dp & r_pairs):,}, "
            f"only rensa {len(r_pairs - dp):,}, only datasketch {len(dp - r_pairs):,}"
        )


# --------------------------------------------------------------------------- ANN for the paraphrase level


def run_ann(n: int, seed: int) -> None:
    """usearch vs faiss-cpu on TF-IDF+SVD vectors: build, query, recall@10 against exact search."""
    import csv

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    with (DATA / "banking77-test.csv").open(newline="", encoding="utf-8") as fh:
        real = [r["text"] for r in csv.DictReader(fh)]
    _, texts, _ = make_corpus(n, seed)
    corpus = real + texts
    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=2, sublinear_tf=True).fit_transform(corpus)
    vec = TruncatedSVD(128, random_state=0).fit_transform(x).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-12
    n, k = vec.shape[0], 10
    print(f"\n# ANN for paraphrase candidates: {n:,} x {vec.shape[1]} float32 vectors, top-{k}, {os.cpu_count()} cores")
    q = vec[:: max(1, n // 5000)][:5000]
    qi = np.arange(0, n, max(1, n // 5000))[:5000]
    t = time.perf_counter()
    truth = np.argpartition(-(q @ vec.T), k, axis=1)[:, : k + 1]
    print(f"exact (numpy blocked matmul) for {len(q):,} queries: {time.perf_counter() - t:.2f} s")

    def recall(found: np.ndarray) -> float:
        hits = 0
        for row, t_row, self_i in zip(found, truth, qi, strict=True):
            want = [x for x in t_row if x != self_i][:k]
            hits += len(set(want) & set(row.tolist()))
        return hits / (len(q) * k)

    sims = q @ vec.T
    hi = [t_row[(sims[r, t_row] >= 0.9) & (t_row != qi[r])] for r, t_row in enumerate(truth)]

    def recall_hi(found: np.ndarray) -> float:
        """Recall of the true top-10 neighbours with cosine >= 0.9: the ones paraphrase dedup needs."""
        return sum(len(set(h.tolist()) & set(f.tolist())) for h, f in zip(hi, found, strict=True)) / max(
            1, sum(len(h) for h in hi)
        )

    from usearch.index import Index

    # everything single-threaded (build and search): the machine is shared, and dedup builds with one
    # thread anyway so the graph does not depend on thread timing
    for dtype, ef in (("f32", 128), ("f32", 64), ("f16", 64)):
        index = Index(
            ndim=vec.shape[1], metric="ip", dtype=dtype, connectivity=16, expansion_add=ef, expansion_search=ef
        )
        t = time.perf_counter()
        index.add(np.arange(n, dtype=np.uint64), vec, threads=1)
        build = time.perf_counter() - t
        t = time.perf_counter()
        found = np.asarray(index.search(vec, k + 1, threads=1).keys)
        search = time.perf_counter() - t
        print(
            f"usearch HNSW {dtype} (M=16, ef {ef}): build {build:.1f} s, search all {n:,} {search:.1f} s, "
            f"recall@{k} {_pct(recall(found[qi]))}, recall of neighbours with cosine >= 0.9 "
            f"{_pct(recall_hi(found[qi]))}"
        )
    import faiss

    faiss.omp_set_num_threads(1)
    for name, ef in (("HNSWFlat", 128), ("HNSWFlat", 64), ("HNSWSQ fp16", 64)):
        if name == "HNSWFlat":
            index = faiss.IndexHNSWFlat(vec.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWSQ(vec.shape[1], faiss.ScalarQuantizer.QT_fp16, 16, faiss.METRIC_INNER_PRODUCT)
            index.train(vec)
        index.hnsw.efConstruction = ef
        index.hnsw.efSearch = ef
        t = time.perf_counter()
        index.add(vec)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, found = index.search(vec, k + 1)
        search = time.perf_counter() - t
        print(
            f"faiss {name} (M=16, ef {ef}): build {build:.1f} s, search all {n:,} {search:.1f} s, "
            f"recall@{k} {_pct(recall(found[qi]))}, recall of neighbours with cosine >= 0.9 "
            f"{_pct(recall_hi(found[qi]))}"
        )

    # determinism: the same input must give the same neighbours (dedup promises order independence)
    small = vec[:30_000]
    runs = []
    for _ in range(2):
        index = Index(
            ndim=vec.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=64, expansion_search=64
        )
        index.add(np.arange(len(small), dtype=np.uint64), small, threads=1)
        runs.append(np.asarray(index.search(small, k, threads=0).keys))
    print(
        f"usearch f32 ef 64 (the engine's setting) single-thread build twice on {len(small):,} vectors: identical neighbours = "
        f"{np.array_equal(*runs)}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1_000_000, help="traces in the corpus (default 1,000,000)")
    ap.add_argument("--subset", type=int, default=50_000, help="texts for the datasketch comparison")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ann", action="store_true", help="also compare usearch and faiss-cpu")
    ap.add_argument("--ann-n", type=int, default=60_000, help="synthetic texts added to Banking77 for --ann")
    ap.add_argument("--skip-near", action="store_true")
    args = ap.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_near:
        run_near(args.n, args.subset, args.seed)
    if args.ann:
        run_ann(args.ann_n, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
