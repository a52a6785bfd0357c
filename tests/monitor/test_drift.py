"""Drift (issue 14 part 3): JSD against scipy, the novelty index, thresholds, and a workspace's traffic where
shuffled traffic shows no drift and injected new intents do."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import orjson
import pytest
from scipy.spatial.distance import jensenshannon

from evaltray.ingest import ingest_files
from evaltray.monitor import drift
from evaltray.tray.candidates import list_candidates


def test_jsd_matches_scipy_and_hand_values():
    assert drift.jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert drift.jsd([3, 3], [3, 3]) == pytest.approx(0.0)
    # by hand: m = (.75, .25); KL(p||m) = .5 log2(2/3) + .5 log2(2) = .20752; KL(q||m) = log2(4/3) = .41504
    assert drift.jsd([0.5, 0.5], [1, 0]) == pytest.approx(0.31128, abs=1e-5)
    rng = np.random.default_rng(1)
    for _ in range(5):
        p, q = rng.random(12), rng.random(12)
        assert drift.jsd(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
    with pytest.raises(drift.DriftError):
        drift.jsd([0, 0], [1, 1])


def _blob(rng, center, n):
    x = center + rng.normal(0, 0.05, (n, len(center)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_novelty_flags_a_region_the_baseline_never_visits():
    rng = np.random.default_rng(0)
    centers = np.eye(16)
    base = np.vstack([_blob(rng, centers[i], 60) for i in range(4)])
    index = drift.NoveltyIndex.fit(base)
    own = index.score(base, skip_self=True)
    assert np.mean(own > index.cutoff) == pytest.approx(drift.FALSE_ALARM, abs=0.01)
    seen = np.vstack([_blob(rng, centers[i], 30) for i in range(4)])
    unseen = _blob(rng, centers[9], 30)
    assert np.mean(index.score(seen) > index.cutoff) < 0.15
    assert np.all(index.score(unseen) > index.cutoff)


def _side(label, n, **kw):
    return drift.Side(label, n, **kw)


def test_a_small_window_says_so_instead_of_reporting_drift():
    got = drift.compare(_side("baseline", 500), _side("window", 12))
    assert got.level == "unknown" and got.metrics == []
    assert "too few traces" in got.note and "window has 12" in got.note


def test_table_metrics_by_hand():
    base = _side(
        "b",
        100,
        counts={"model": Counter({"v1": 100}), "cluster_id": Counter({"0": 50, "1": 50})},
        mean_chars=100.0,
        tool_share=0.2,
    )
    win = _side(
        "w",
        100,
        counts={"model": Counter({"v1": 70, "v2": 30}), "cluster_id": Counter({"0": 100})},
        mean_chars=160.0,
        tool_share=0.25,
    )
    got = {m.name: m for m in drift.compare(base, win).metrics}
    assert got["new:model"].value == pytest.approx(0.30) and got["new:model"].level == "amber"
    assert "v2 (30)" in got["new:model"].detail
    # JSD of (.5, .5) against (1, 0): .31128 (above), red at .10
    assert got["cluster_jsd"].value == pytest.approx(0.3113, abs=1e-4) and got["cluster_jsd"].level == "red"
    assert got["input_length"].value == pytest.approx(0.6) and got["input_length"].level == "red"
    assert got["tool_use"].value == pytest.approx(0.05) and got["tool_use"].level == "green"


INTENTS = {
    "card": ["my card has not arrived yet", "when will my new card be delivered", "card still not here after a week"],
    "refund": ["I want a refund for my order", "how do I get my money back", "please refund the purchase"],
    "password": ["I forgot my password", "reset my login password please", "cannot sign in, password wrong"],
    "transfer": ["my bank transfer is pending", "why is the transfer taking so long", "transfer not received"],
}
NEW = ["how do I buy bitcoin in the app", "can I trade crypto currency here", "sell my ethereum coins"]
_TAILS = ["", " today", " please help", " thanks", " asap", " again", " urgently", " for my account"]


def _texts(phrases, n, rng):
    return [rng.choice(phrases) + rng.choice(_TAILS) for _ in range(n)]


def _ingest(ws, tmp_path, name, texts, day, model="m-1"):
    rows = [
        {"id": f"{name}-{i:04d}", "timestamp": day, "model": model, "messages": [{"role": "user", "content": t}]}
        for i, t in enumerate(texts)
    ]
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    ingest_files(ws, [path], actor="alice")


def _known(rng, n):
    return [t for phrases in INTENTS.values() for t in _texts(phrases, n, rng)]


def test_shuffled_traffic_shows_no_drift(ws, tmp_path):
    rng = random.Random(0)
    texts = _known(rng, 60)
    rng.shuffle(texts)
    _ingest(ws, tmp_path, "old", texts[:120], "2026-11-25T10:00:00Z")
    _ingest(ws, tmp_path, "new", texts[120:], "2026-12-05T10:00:00Z")
    got = drift.drift_report(ws, window="7d", baseline_window="14d")
    assert (got.n_baseline, got.n_window) == (120, 120)
    levels = {m.name: m.level for m in got.metrics}
    assert levels["centroid_shift"] == "green" and levels["novel_share"] == "green"
    assert levels["new:model"] == "green"
    assert got.new_clusters == []
    assert drift.latest_level(ws) == got.level


def test_injected_new_intents_are_flagged_with_examples_and_sent_to_the_pool(ws, tmp_path):
    rng = random.Random(1)
    _ingest(ws, tmp_path, "old", _known(rng, 40), "2026-11-25T10:00:00Z")
    _ingest(ws, tmp_path, "new", _known(rng, 25) + _texts(NEW, 40, rng), "2026-12-05T10:00:00Z", model="m-2")
    got = drift.drift_report(ws, window="7d", baseline_window="14d")
    metrics = {m.name: m for m in got.metrics}
    assert metrics["novel_share"].level == "red"
    assert metrics["new:model"].value == pytest.approx(1.0) and metrics["new:model"].level == "red"
    assert got.level == "red"
    assert got.new_clusters, "the crypto intent must surface as a new cluster"
    novel = got.novel_trace_ids()
    crypto = [t for t in novel if int(t.split("-")[1]) >= 100]  # the window's last 40 traces are the new intent
    # every trace of the new intent; of the 100 known ones, about the baseline's own false-alarm rate (10%)
    assert len(crypto) == 40 and len(novel) - len(crypto) <= 2 * drift.FALSE_ALARM * 100
    top = got.new_clusters[0]
    assert top.suggested_slice.startswith("new-") and top.examples
    assert any(w in top.examples[0]["text"] for w in ("bitcoin", "crypto", "ethereum"))
    added = drift.drift_to_candidates(ws, "alice", got)
    assert len(added) == len(novel) == len(list_candidates(ws))
    # the report is kept for health and the trend: its level, its metrics, its size
    assert drift.latest_level(ws) == "red"
    (kept,) = drift.drift_history(ws)
    assert (kept["n_baseline"], kept["n_window"], kept["new_clusters"]) == (
        got.n_baseline,
        got.n_window,
        len(got.new_clusters),
    )
    assert kept["metrics"]["novel_share"]["level"] == "red"
    from evaltray.monitor.health import latest_drift_level

    assert latest_drift_level(ws) == "red"


def test_a_release_baseline_and_both_baselines_refused(ws, tmp_path):
    with pytest.raises(drift.DriftError, match="not both"):
        drift.drift_report(ws, baseline="1.0.0", baseline_window="30d")
    with pytest.raises(drift.DriftError, match="no traces"):
        drift.drift_report(ws)


def test_smoothed_kl_and_total_variation_by_hand():
    from scipy.stats import entropy

    # add 1/2: (1.5, .5) and (.5, 1.5) -> (.75, .25) vs (.25, .75): .75 log2 3 + .25 log2(1/3) = .5 log2 3
    assert drift.kl_smoothed([1, 0], [0, 1]) == pytest.approx(0.5 * np.log2(3))
    assert drift.kl_smoothed([4, 4], [4, 4]) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    p, q = rng.integers(0, 30, 9), rng.integers(0, 30, 9)
    assert drift.kl_smoothed(p, q) == pytest.approx(entropy(p + 0.5, q + 0.5, base=2))
    assert drift.total_variation(Counter(en=8, es=2), Counter(en=5, es=5)) == pytest.approx(0.3)
    with pytest.raises(drift.DriftError):
        drift.total_variation(Counter(), Counter(en=1))


def test_intent_kl_language_and_retrieval_shifts():
    en = ["where is my card", "I want to reset my password", "how do I get a refund for this"]
    es = ["¿dónde está mi tarjeta?", "quiero cambiar la contraseña", "no me llega el reembolso"]
    shared = {f"question {i}": [f"d{i}", f"d{i + 1}"] for i in range(6)}
    base = _side("b", 100, counts={"cluster_id": Counter({"0": 50, "1": 50})}, texts=en * 20, retrieved=dict(shared))
    # the window: a third of the questions in Spanish; the retriever now returns one new id of two
    moved = {q: [ids[0], "new"] for q, ids in shared.items()}
    win = _side("w", 100, counts={"cluster_id": Counter({"0": 50, "1": 50})}, texts=en * 20 + es * 10, retrieved=moved)
    got = {m.name: m for m in drift.compare(base, win).metrics}
    assert got["intent_kl"].value == pytest.approx(0.0) and got["intent_kl"].level == "green"
    assert got["language"].value == pytest.approx(30 / 90, abs=1e-4) and got["language"].level == "red"
    assert "es 33%" in got["language"].detail
    # Jaccard of {d_i, d_i+1} and {d_i, new} = 1/3 for each question: 1 - 1/3
    assert got["retrieval_topk"].value == pytest.approx(2 / 3, abs=1e-4) and got["retrieval_topk"].level == "red"
    # unchanged retrieval and languages: both green; fewer shared questions than the minimum: not measured
    same = {m.name: m for m in drift.compare(base, _side("w", 100, texts=en * 10, retrieved=dict(shared))).metrics}
    assert same["language"].value == 0 and same["retrieval_topk"].value == 0
    few = dict(list(shared.items())[: drift.MIN_SHARED_QUERIES - 1])
    assert "retrieval_topk" not in {m.name for m in drift.compare(base, _side("w", 100, retrieved=few)).metrics}


def test_injected_language_retrieval_and_version_shifts_in_a_workspace(ws, tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from evaltray.monitor import refresh as refresh_mod
    from evaltray.monitor.refresh import refresh, refresh_due

    rng = random.Random(3)
    old = _known(rng, 30)
    docs = {t: [f"kb-{len(t) % 7}", "kb-faq"] for t in old}
    rows = [dict(text=t, docs=docs[t]) for t in old]
    _ingest_rows(ws, tmp_path, "old", rows, "2026-11-25T10:00:00Z", "m-1")
    refresh(ws, "alice", n=1)
    between = datetime.now(UTC)
    spanish = [
        "la tarjeta nueva no llega todavía",
        "quiero que me devuelvan el dinero",
        "no puedo entrar con la contraseña",
    ]
    new = [dict(text=t, docs=["kb-new-index"]) for t in old[:60]] + [
        dict(text=rng.choice(spanish), docs=[]) for _ in range(40)
    ]
    _ingest_rows(ws, tmp_path, "new", new, "2026-12-05T10:00:00Z", "m-2")
    got = {m.name: m for m in drift.drift_report(ws, window="7d", baseline_window="14d").metrics}
    assert got["language"].level == "red" and "es 40%" in got["language"].detail
    assert got["retrieval_topk"].value == pytest.approx(1.0) and got["retrieval_topk"].level == "red"
    assert got["new:model"].level == "red"
    (change,) = drift.version_changes(ws, between)
    assert change.startswith("model change: m-2 (first ingested")
    assert drift.version_changes(ws, datetime.now(UTC)) == []  # nothing new since now
    # refresh_due counts the whole second of the (whole-second) audit time as before: pin it to `between`
    monkeypatch.setattr(refresh_mod, "last_refresh", lambda _ws: between - timedelta(seconds=1))
    assert change in refresh_due(ws)


def _ingest_rows(ws, tmp_path, name, rows, day, model):
    recs = [
        {
            "id": f"{name}-{i:04d}",
            "timestamp": day,
            "model": model,
            "messages": [{"role": "user", "content": r["text"]}],
            # the OpenAI chat format reads retrieval from the record's metadata
            "metadata": {"retrieved_doc_ids": r["docs"]},
        }
        for i, r in enumerate(rows)
    ]
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    ingest_files(ws, [path], actor="alice")


def test_trend_keeps_gaps_and_thresholds_kept_with_the_report():
    from evaltray.monitor.drift_html import bounds, trend

    history = [
        {"created_at": "2026-12-01T00:00", "metrics": {"language": {"value": 0.05, "level": "green"}}},
        {"created_at": "2026-12-02T00:00", "metrics": {}},  # a window too small: a gap, not a zero
        {
            "created_at": "2026-12-03T00:00",
            "metrics": {"language": {"value": 0.3, "level": "red", "amber": 0.2, "red": 0.25}},
        },
    ]
    assert trend(history) == {"language": [("2026-12-01T00:00", 0.05, "green"), ("2026-12-03T00:00", 0.3, "red")]}
    assert bounds("language", history) == (0.2, 0.25)
    assert bounds("new:model", history[:1]) == drift.THRESHOLDS["new_values"]


def test_centroid_shift_counts_only_what_chance_does_not_give():
    rng = np.random.default_rng(4)
    spread = rng.normal(0, 1, (400, 32)) + 0.5  # varied texts: two random halves sit apart by chance alone
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    a, b = spread[:200], spread[200:]
    raw = drift.centroid_shift(a, b)
    assert raw > 0 and raw <= drift.chance_shift(a, b)  # same distribution: within what chance gives
    moved = b + np.eye(32)[0] * 0.8
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    assert drift.centroid_shift(a, moved) > 3 * drift.chance_shift(a, moved)
    # by hand: unit means (1, 0) and (0, 1) are a cosine distance of 1 apart
    assert drift.centroid_shift(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == pytest.approx(1.0)


def test_bm25_overlap_by_hand():
    assert drift.bm25_overlap(["the refund window is 30 days"], ["the refund window is 30 days"]) == 1.0
    assert drift.bm25_overlap(["refund window"], ["shipping rates"]) == 0.0
    # old "cat dog", new "cat": n=2, df(cat)=2, df(dog)=1, lengths 2 and 1, mean 1.5, k1=1.2, b=.75
    idf_cat, idf_dog = np.log(1 + 0.5 / 2.5), np.log(1 + 1.5 / 1.5)
    own = (idf_cat + idf_dog) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / 1.5))
    against = idf_cat * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / 1.5))
    assert drift.bm25_overlap(["cat dog"], ["cat"]) == pytest.approx(against / own)
    with pytest.raises(drift.DriftError):
        drift.bm25_overlap([], ["x"])


def test_reworded_passages_show_as_a_bm25_drift_in_a_workspace(ws, tmp_path):
    topics = ["refund", "shipping", "warranty", "password", "invoice", "exchange"]
    old_passage = "Our {t} policy: ask support within 30 days and keep the receipt."
    new_passage = "Payments page {i}: card fees, currencies, statements."

    def rows(name, day, passage):
        return [
            {
                "id": f"{name}-{i}",
                "timestamp": day,
                "input": f"question {i} about {t}",
                "context": [passage.format(t=t, i=i)],
            }
            for i, t in enumerate(topics * 10)
        ]

    for name, day, passage in (
        ("old", "2026-11-28T10:00:00Z", old_passage),
        ("new", "2026-12-05T10:00:00Z", new_passage),
    ):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows(name, day, passage)))
        ingest_files(ws, [path], actor="alice")
    got = {m.name: m for m in drift.drift_report(ws, window="7d").metrics}
    # only "page 30" shares a word ("30") with an old passage
    assert got["retrieval_bm25"].value == pytest.approx(1.0, abs=0.001) and got["retrieval_bm25"].level == "red"
    assert "60 questions" in got["retrieval_bm25"].detail
    same = drift.compare(
        _side("b", 60, passages={f"q{i}": [old_passage] for i in range(6)}),
        _side("w", 60, passages={f"q{i}": [old_passage] for i in range(6)}),
    )
    assert {m.name: m.value for m in same.metrics}["retrieval_bm25"] == 0.0


def test_two_reports_within_one_second_are_both_kept(ws, monkeypatch):
    from datetime import UTC, datetime

    from evaltray.monitor import drift as dr

    monkeypatch.setattr(dr, "now", lambda: datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC))  # whole seconds, as now() is
    for level in ("green", "red"):
        dr._keep(ws, dr.DriftReport("a", "b", 60, 60, level, [], []))
    assert [h["level"] for h in dr.drift_history(ws)] == ["green", "red"]


def test_contrast_by_hand_and_a_group_new_to_the_window_scores_above_the_cutoff():
    near = np.array([[1.0, 0.1, 0, 0, 0], [1.0, 0.0, 0.1, 0, 0]])
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    base = np.eye(5)[2:]
    # k = 1: each window trace's nearest other trace is the other window trace: share 1; chance (2-1)/(2+3-1) = 1/4
    assert drift.contrast(near, base, k=1) == pytest.approx([0.75, 0.75])
    # a copy of a trace's own text is no neighbour: with it the nearest is still the other window trace
    assert drift.contrast(np.vstack([near, near[:1]]), base, k=1)[1] == pytest.approx(1 - 2 / 5)
    rng = np.random.default_rng(0)
    centers = np.eye(16)
    old = np.vstack([_blob(rng, centers[i], 60) for i in range(4)])
    window = np.vstack([_blob(rng, centers[i], 30) for i in range(4)] + [_blob(rng, centers[9], 30)])
    score, cutoff, mixed = drift.window_novelty(old, window)
    assert np.all(score[120:] > cutoff) and np.mean(score[:120] > cutoff) < 0.2
    assert mixed[120:].mean() > 0.15 > mixed[:120].mean()


def test_contrast_shares_ties_in_proportion_and_a_text_the_baseline_has_scores_zero():
    a, c = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    # window a, c; baseline c, c, c. Chance: (2-1)/(2+3-1) = 1/4.
    # a: its 4 other traces all tie (a.c = 0.6), one of them a window trace: of k = 2 places, 2 x 1/4 are the
    # window's, a share of 1/4, so 0. c: the baseline has its text: 0 (its only non-copy, a, is a window trace).
    got = drift.contrast(np.vstack([a, c]), np.vstack([c, c, c]), k=2)
    assert got == pytest.approx([0.0, 0.0])
    # window a, c, c; baseline d. c has two traces not its copies, fewer than k = 3: a (window) and d (baseline),
    # a share of 1/2 among them; chance (3-1)/(3+1-1) = 2/3
    d = np.array([0.0, 1.0])
    assert drift.contrast(np.vstack([a, c, c]), d[None, :], k=3)[1:] == pytest.approx([1 / 2 - 2 / 3] * 2)
    # the order of the rows changes nothing (a sort's choice among ties would)
    rng = np.random.default_rng(3)
    templates = rng.normal(size=(6, 8))
    x, base = templates[rng.integers(0, 6, 40)], templates[rng.integers(0, 6, 80)]
    x, base = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, base))
    x[:, 0] += rng.normal(0, 1e-3, 40)  # copies of the window's texts: near, not equal, to the baseline's
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    wo, bo = rng.permutation(40), rng.permutation(80)
    assert drift.contrast(x[wo], base[bo]) == pytest.approx(drift.contrast(x, base)[wo], abs=1e-6)


def test_a_window_of_the_baselines_own_heavily_repeated_traffic_is_not_flagged():
    # 40 texts, each trace a copy of one (Zipf frequencies): the window is drawn as the baseline is. Before copies
    # in the baseline zeroed the contrast, the copies of one frequent text rose or fell together: 44%, 27% and
    # 16% of these windows were novel (seeds 0, 5, 4)
    p = 1 / np.arange(1, 41)
    p /= p.sum()
    for seed in (0, 4, 5):
        rng = np.random.default_rng(seed)
        texts = rng.normal(size=(40, 16))
        texts /= np.linalg.norm(texts, axis=1, keepdims=True)
        base, window = texts[rng.choice(40, 800, p=p)], texts[rng.choice(40, 400, p=p)]
        score, cutoff, _ = drift.window_novelty(base, window, seed=seed)
        assert np.mean(score > cutoff) <= drift.FALSE_ALARM


def test_intent_text_masks_numbers():
    got = drift.intent_text("Hi <PERSON_1>, order 8123456 on 2026-12-07 at 10:30 cost $19.99, 3 items (812345)")
    assert got == "Hi , order 0 on 0 at 0 cost $0, 0 items (0)"


_FEATURES = ("refunds", "shipping", "returns", "account", "billing", "warranty")


def _counted_chats(first, n, rng):
    """Chats as bench/_gen.write_chats makes them: a feature in turn, a random order number and a running count."""
    return [
        f"Hi, my order {rng.randint(10**6, 10**7)} about {_FEATURES[i % 6]} has a problem, what can you do? ({i})"
        for i in range(first, first + n)
    ]


def test_traffic_with_a_running_count_shows_no_novelty(ws, tmp_path):
    # the same generator on both sides; only the count goes on. With the numbers embedded, the window's counts
    # (400200-400299) were new to the baseline's (400000-400199) and the contrast called 23% of the window novel
    rng = random.Random(0)
    _ingest(ws, tmp_path, "old", _counted_chats(400_000, 200, rng), "2026-11-25T10:00:00Z")
    _ingest(ws, tmp_path, "new", _counted_chats(400_200, 100, rng), "2026-12-05T10:00:00Z")
    got = drift.drift_report(ws, window="7d", baseline_window="14d")
    metrics = {m.name: m for m in got.metrics}
    assert (got.n_baseline, got.n_window) == (200, 100)
    assert metrics["novel_share"].value == 0.0 and got.new_clusters == []
