"""Drift (issue 14 part 3): novel-intent detection on Banking77, and a drift report over 1M traces.

    python bench/bench_drift.py novelty --set train     # the building set: tune here
    python bench/bench_drift.py novelty --set test      # the measuring set: report here, never tune
    python bench/bench_drift.py scale -n 1000000
    python bench/bench_drift.py centroid              # chance-corrected centroid shift, on the test split
    python bench/bench_drift.py nodrift -n 1000000    # why the window contrast once raised a false alarm

``novelty``: 10 of Banking77's 77 intents (a seeded draw) are held out. With ``--set train`` the baseline is a
seeded half of the train split less the 10 intents and the stream is the other half (all 77); with
``--set test`` the baseline is the whole train split less the 10 intents and the stream is the test split (all
77). The script prints the AUROC of evaltray's per-trace novelty (:func:`drift.window_novelty`) at telling unseen-intent
traces from seen ones, its flag rate at the baseline's own cutoff, how many of the 10 intents surface as a
flagged new cluster (a new cluster whose majority intent it is) with examples; and, in the same run, the
reference: nearest-centroid novelty over the 67 known intents' centroids (the method goldset 0.1.0 uses), as a
ratio. Embeddings: the default backend (WordLlama).

``scale``: ``_gen.write_chats`` traces (seed 1, one every 3 s: 1M span 35 days), the cluster column filled from
each trace's feature (standing in for a stored clustering run, which the report reads and does not make),
then ``drift_report(window=7d, baseline_window=14d)`` timed against the 30 s target.

``nodrift``: the scale bench's chats (``write_chats``, seed 1) without a workspace: 4,000 user texts drawn from
the window's index range (the last 7 days at one chat every 3 s) and 4,000 from the 14 days before, as the report
samples them, then the share of the window called novel (``novel_share`` = that less the baseline's 10%) with
and without the window contrast, for the texts as embedded before (numbers kept) and as now (numbers masked,
``drift.intent_text``), split by time and, as the reference, the same 8,000 vectors reshuffled into two sides.
Then ``--rounds`` seeded pairs of 4,000 + 4,000 support messages from ``_gen.templated_texts`` (900 templates
with slot fills: less repetition once numbers are masked), the same generator on both sides.

``centroid``: on Banking77's test split (the measuring set; nothing here is tuned: the correction is a
permutation percentile and the 0.02 / 0.05 thresholds predate it), ``--rounds`` seeded draws of a baseline and
a window of ``--size`` texts each. Calm: both drawn from the same 67 intents. Moved: the window's texts 20%
from the 10 held-out intents. It prints the share of draws at amber or worse for the raw centroid distance (the
reference: the metric before the correction) and for the chance-corrected one.

Data: Banking77 (PolyAI, CC-BY-4.0, licence beside it) from ``../shared/data/intents/`` beside the repository
unless ``--data`` says otherwise; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gen import templated_texts, write_chats  # noqa: E402

from evaltray.core.store import Workspace  # noqa: E402
from evaltray.core.text import neutral_text  # noqa: E402
from evaltray.curate.derived import write_table  # noqa: E402
from evaltray.curate.embed import get_embedder, normalize_rows  # noqa: E402
from evaltray.ingest import ingest_files  # noqa: E402
from evaltray.monitor import drift  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "intents"
EPOCH0 = 1_731_000_000


def _load(data: Path, split: str) -> tuple[list[str], list[str]]:
    with (data / f"banking77-{split}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def _split(data: Path, which: str, seed: int) -> tuple[list[str], list[str], list[str], list[str], set[str]]:
    texts, labels = _load(data, "train")
    rng = np.random.default_rng(seed)
    unseen = set(rng.choice(sorted(set(labels)), 10, replace=False).tolist())
    if which == "train":
        order = rng.permutation(len(texts))
        half = len(texts) // 2
        b, s = order[:half], order[half:]
        st, sl = [texts[i] for i in s], [labels[i] for i in s]
    else:
        b = np.arange(len(texts))
        st, sl = _load(data, "test")
    bt = [texts[i] for i in b if labels[i] not in unseen]
    bl = [labels[i] for i in b if labels[i] not in unseen]
    return bt, bl, st, sl, unseen


def _centroid_novelty(base: np.ndarray, labels: list[str], stream: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    cents = normalize_rows(np.stack([base[lab == c].mean(0) for c in sorted(set(labels))]))
    return 1.0 - (stream @ cents.T).max(1)


def novelty(args: argparse.Namespace) -> None:
    bt, bl, st, sl, unseen = _split(args.data, args.set, args.seed)
    embedder = get_embedder("wordllama")
    t = time.perf_counter()
    # what drift_report embeds: the words, numbers masked (drift.intent_text)
    base = normalize_rows(embedder.embed([drift.intent_text(t) for t in bt]))
    stream = normalize_rows(embedder.embed([drift.intent_text(t) for t in st]))
    index = drift.NoveltyIndex.fit(base)
    alone = index.score(stream)  # the baseline-only score (before session 23), a same-run reference
    score, cutoff, near = drift.window_novelty(base, stream, weight=args.weight, seed=args.seed)
    y = np.array([c in unseen for c in sl])
    flagged = score > cutoff
    side = drift.Side("stream", len(st), ids=[str(i) for i in range(len(st))], texts=st)
    found = drift.new_clusters(side, stream, flagged, seed=args.seed, near=near)
    secs = time.perf_counter() - t
    surfaced = set()
    for c in found:
        top, n = Counter(sl[int(i)] for i in c.trace_ids).most_common(1)[0]
        if top in unseen and n / c.size >= 0.5 and c.examples:
            surfaced.add(top)
    ours, ref = roc_auc_score(y, score), roc_auc_score(y, _centroid_novelty(base, bl, stream))
    before = roc_auc_score(y, alone)
    print(
        f"Banking77 {args.set}: baseline {len(bt):,} texts of 67 intents; stream {len(st):,} of 77 (unseen: {y.sum()})"
    )
    print(f"  novelty AUROC, evaltray (kNN density + window contrast x{args.weight})   {ours:.3f}")
    print(f"  novelty AUROC, baseline-only kNN density (k={index.k}, before)   {before:.3f}")
    print(f"  novelty AUROC, reference (nearest intent centroid)     {ref:.3f}")
    print(f"  evaltray / reference                                   {ours / ref:.3f}x")
    print(
        f"  flagged at the baseline's own {1 - drift.FALSE_ALARM:.0%} quantile: {flagged[y].mean():.1%} of unseen-intent traces, "
        f"{flagged[~y].mean():.1%} of seen (false alarms)"
    )
    print(f"  new clusters: {len(found)}; unseen intents surfaced as one with examples: {len(surfaced)} of 10")
    print(f"  ({', '.join(sorted(surfaced))})")
    print(f"  {secs:.1f} s embed + score + cluster")


def scale(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "ws", name="bench", user="alice")
        write_chats(root / "chats.jsonl", args.n, seed=1)
        t = time.perf_counter()
        ingest_files(ws, [root / "chats.jsonl"], scrub=False, actor="alice")
        print(f"{args.n:,} chats ingested in {time.perf_counter() - t:.1f} s (scrub off)")
        table = ws.trace_store().query(columns=["trace_id", "feature"])
        feats = table.column("feature").to_pylist()
        names = sorted({f or "" for f in feats})
        ids = [names.index(f or "") for f in feats]
        write_table(
            ws,
            "clusters",
            pa.table(
                {
                    "trace_id": table.column("trace_id"),
                    "cluster_id": pa.array(ids, pa.int64()),
                    "cluster_name": pa.array(feats, pa.string()),
                }
            ),
        )
        end = datetime.fromtimestamp(EPOCH0 + 3 * args.n, UTC)
        drift.drift_report(ws, "7d", "14d", end=end)  # warm: the embedding model loads, the sample's vectors cache
        times, cpu = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            report = drift.drift_report(ws, "7d", "14d", end=end)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(
            f"drift report, window {report.n_window:,} traces vs baseline {report.n_baseline:,} "
            f"(best of {args.repeat}, warm cache): {min(times):.2f} s ({min(cpu):.2f} CPU s); target 30 s; "
            f"evaltray / target {min(times) / 30:.3f}x; level {report.level}"
        )
        for m in report.metrics:
            print(f"  {m.name:24} {m.value!s:>8} {m.level}")


def _chat_user_texts(n: int) -> list[str]:
    """The user turns of ``write_chats(n, seed=1)``, joined as ``user_texts`` joins them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chats.jsonl"
        write_chats(path, n, seed=1)
        out = []
        with path.open("rb") as fh:
            for line in fh:
                turns = [m["content"] for m in orjson.loads(line)["messages"] if m["role"] == "user"]
                out.append("\n".join(t if isinstance(t, str) else " ".join(p["text"] for p in t) for t in turns))
    return out


def nodrift(args: argparse.Namespace) -> None:
    texts = _chat_user_texts(args.n)
    window, base = 7 * 86400 // 3, 14 * 86400 // 3
    rng = np.random.default_rng(args.seed)
    wi = rng.choice(np.arange(args.n - window, args.n), drift.SAMPLE, replace=False)
    bi = rng.choice(np.arange(args.n - window - base, args.n - window), drift.SAMPLE, replace=False)
    embedder = get_embedder("wordllama")
    shuffle = rng.permutation(2 * drift.SAMPLE)
    amber, red = drift.THRESHOLDS["novel_share"]
    print(f"{args.n:,} chats; {drift.SAMPLE:,} sampled from the window's {window:,} and the baseline's {base:,}")
    for label, prep in (("numbers kept (before)", neutral_text), ("numbers masked (now)", drift.intent_text)):
        b, w = (normalize_rows(embedder.embed([prep(texts[i]) for i in idx])) for idx in (bi, wi))
        pooled = np.vstack([b, w])[shuffle]
        for split, (bv, wv) in (("by time", (b, w)), ("reshuffled", (pooled[: len(b)], pooled[len(b) :]))):
            for weight in (0.0, drift.CONTRAST):
                score, cutoff, near = drift.window_novelty(bv, wv, weight=weight, seed=args.seed)
                share = max(0.0, float(np.mean(score > cutoff)) - drift.FALSE_ALARM)
                level = "red" if share >= red else "amber" if share >= amber else "green"
                print(
                    f"  {label:22} {split:10} contrast x{weight}: novel_share {share:.4f} ({level}); "
                    f"window's mean contrast {near.mean():+.4f}"
                )
    _templated_nodrift(args.rounds, args.seed)


def _templated_nodrift(rounds: int, seed: int) -> None:
    embedder = get_embedder("wordllama")
    texts = templated_texts(2 * drift.SAMPLE * rounds, seed=seed)
    vectors = normalize_rows(embedder.embed([drift.intent_text(t) for t in texts]))
    print(f"templated_texts: {rounds} pairs of {drift.SAMPLE:,} + {drift.SAMPLE:,}, numbers masked")
    for r in range(rounds):
        pair = vectors[2 * drift.SAMPLE * r : 2 * drift.SAMPLE * (r + 1)]
        shares = []
        for weight in (0.0, drift.CONTRAST):
            score, cutoff, _ = drift.window_novelty(pair[: drift.SAMPLE], pair[drift.SAMPLE :], weight=weight, seed=r)
            shares.append(float(np.mean(score > cutoff)))
        print(f"  pair {r}: window called novel {shares[0]:.1%} without the contrast, {shares[1]:.1%} with it")


def centroid(args: argparse.Namespace) -> None:
    texts, labels = _load(args.data, "test")
    rng = np.random.default_rng(args.seed)
    unseen = set(rng.choice(sorted(set(labels)), 10, replace=False).tolist())
    vecs = normalize_rows(get_embedder("wordllama").embed(texts))
    seen_i = np.array([i for i, c in enumerate(labels) if c not in unseen])
    new_i = np.array([i for i, c in enumerate(labels) if c in unseen])
    amber = drift.THRESHOLDS["centroid_shift"][0]
    alarms = {"calm": [0, 0], "moved": [0, 0]}  # [raw, corrected] draws at amber or worse
    sums = {"calm": [0.0, 0.0], "moved": [0.0, 0.0]}  # [raw distance, chance] summed over draws
    for r in range(args.rounds):
        pick = rng.permutation(seen_i)
        base = vecs[pick[: args.size]]
        n_new = args.size // 5
        for case, win_i in (
            ("calm", pick[args.size : 2 * args.size]),
            ("moved", np.concatenate([pick[args.size : 2 * args.size - n_new], rng.choice(new_i, n_new, False)])),
        ):
            win = vecs[win_i]
            raw, chance = drift.centroid_shift(base, win), drift.chance_shift(base, win, seed=r)
            alarms[case][0] += raw >= amber
            alarms[case][1] += raw - chance >= amber
            sums[case][0] += raw
            sums[case][1] += chance
    n = args.rounds
    print(f"Banking77 test: {n} draws of {args.size} + {args.size} texts; amber at {amber}")
    for case, (raw, cor) in alarms.items():
        mean_raw, mean_chance = sums[case][0] / n, sums[case][1] / n
        print(
            f"  {case:5}: mean distance {mean_raw:.4f}, chance up to {mean_chance:.4f}; draws alarmed: "
            f"raw {raw / n:.0%}, chance-corrected {cor / n:.0%}"
        )
    cr, cc = alarms["calm"]
    print(f"  false alarms, corrected / raw: {cc}/{cr} = {cc / max(cr, 1):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    nov = sub.add_parser("novelty")
    nov.add_argument("--set", choices=["train", "test"], default="train")
    nov.add_argument("--data", type=Path, default=DATA)
    nov.add_argument("--seed", type=int, default=0)
    nov.add_argument("--weight", type=float, default=drift.CONTRAST, help="the window contrast weight (tune on train)")
    sc = sub.add_parser("scale")
    sc.add_argument("-n", type=int, default=1_000_000)
    sc.add_argument("--repeat", type=int, default=2)
    nd = sub.add_parser("nodrift")
    nd.add_argument("-n", type=int, default=1_000_000)
    nd.add_argument("--seed", type=int, default=0)
    nd.add_argument("--rounds", type=int, default=5)
    ce = sub.add_parser("centroid")
    ce.add_argument("--data", type=Path, default=DATA)
    ce.add_argument("--seed", type=int, default=0)
    ce.add_argument("--size", type=int, default=200)
    ce.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    {"novelty": novelty, "scale": scale, "centroid": centroid, "nodrift": nodrift}[args.what](args)


if __name__ == "__main__":
    main()
