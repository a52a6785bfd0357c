"""Dedup and clustering over the workspace's traces: stored results, weights, persistent cluster edits."""

from __future__ import annotations

import json

import orjson
import pytest
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.errors import EvaltrayError
from evaltray.curate import derived
from evaltray.curate.cluster import ClusterError
from evaltray.ingest import ingest_files


def _chat(tid: str, *user_turns: str) -> dict:
    msgs = []
    for t in user_turns:
        msgs += [{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
    return {"id": tid, "messages": msgs}


ROWS = [
    _chat("a1", "How do I get a refund for my order?"),
    _chat("a2", "how do I get a REFUND for my order"),  # exact after normalisation
    _chat("a3", "How do I get a refund for my order??  "),  # exact too
    _chat("b1", "Where is my parcel? It has not arrived yet and it was due last week."),
    _chat("b2", "Where is my parcel? It has not arrived yet, and it was due last week already."),  # near: 0.805
    _chat("c1", "Can I change the delivery address of 2 orders?"),
    _chat("c2", "Can I change the delivery address of 3 orders?"),  # quantities differ: never a duplicate
    _chat("d1", "thanks", "bye"),
    _chat("d2", "What is your returns policy for shoes?", "thanks"),  # same last turn as nothing else
]


def _ingest(ws, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
    ingest_files(ws, [path])


def test_user_texts_join_every_user_turn(ws, tmp_path):
    _ingest(ws, tmp_path)
    ids, texts = derived.user_texts(ws)
    assert ids == sorted(r["id"] for r in ROWS)
    assert texts[ids.index("d2")] == "What is your returns policy for shoes?\nthanks"


def test_dedup_marks_groups_and_keeps_every_trace(ws, tmp_path):
    _ingest(ws, tmp_path)
    result = derived.dedup_traces(ws, near=0.8, paraphrase=None)
    maps = derived.curation_maps(ws)
    assert maps.dup_of["a2"] == maps.dup_of["a3"] == maps.dup_of["a1"] == "a1"
    assert maps.dup_of["b2"] == "b1"
    assert maps.dup_of["c2"] == "c2" and maps.dup_of["c1"] == "c1"
    assert maps.weights["a1"] == 3 and maps.weights["b1"] == 2 and "a2" not in maps.weights
    levels = {(p.a, p.b): p.level for p in result.pairs}
    assert levels[("a1", "a2")] == "exact" and levels[("b1", "b2")] == "near"
    table = derived.read_table(ws, "dedup")
    assert table.num_rows == len(ROWS)  # dedup never deletes: every trace keeps a row


def test_where_predicates_reach_the_stages_results(ws, tmp_path):
    _ingest(ws, tmp_path)
    store = ws.trace_store()
    # before any stage has run the columns exist, null
    assert store.query("dup_of IS NULL AND cluster_name IS NULL", columns=["trace_id"]).num_rows == len(ROWS)
    derived.dedup_traces(ws, near=0.8, paraphrase=None)
    derived.cluster_traces(ws, k=3, backend="tfidf")
    twins = store.query("dup_of <> trace_id", columns=["trace_id", "dup_of", "dup_level"], order_by="trace_id")
    assert twins.to_pylist() == [
        {"trace_id": "a2", "dup_of": "a1", "dup_level": "exact"},
        {"trace_id": "a3", "dup_of": "a1", "dup_level": "exact"},
        {"trace_id": "b2", "dup_of": "b1", "dup_level": "near"},
    ]
    heavy = store.query("dup_weight >= 2", columns=["trace_id", "dup_weight"], order_by="trace_id").to_pylist()
    assert heavy == [{"trace_id": "a1", "dup_weight": 3}, {"trace_id": "b1", "dup_weight": 2}]
    clusters = derived.curation_maps(ws).clusters
    name = clusters["a1"]
    same = store.query(f"cluster_name = '{name}'", columns=["trace_id"]).column("trace_id").to_pylist()
    assert sorted(same) == sorted(t for t, n in clusters.items() if n == name)
    result = CliRunner().invoke(
        cli,
        ["--workspace", str(ws.root), "traces", "list", "--where", "dup_of = trace_id AND dup_weight > 1", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert [r["trace_id"] for r in json.loads(result.output)] == ["a1", "b1"]


def test_cluster_names_persist_across_reclustering(ws, tmp_path):
    _ingest(ws, tmp_path)
    with pytest.raises(EvaltrayError, match="no clusters yet; run `evaltray cluster`"):
        derived.cluster_info(ws)
    clustering = derived.cluster_traces(ws, k=3, backend="tfidf")
    assert clustering.n_clusters == 3
    target = int(clustering.labels[0])
    edited = derived.edit_clusters(ws, "rename", target, name="refund questions")
    assert edited == derived.cluster_info(ws)  # what the edit returns is what was stored
    assert {c["name"] for c in edited["clusters"] if c["id"] == target} == {"refund questions"}
    with pytest.raises(ClusterError, match=r"^k must be a positive integer or 'auto', got 'many'$"):
        derived.cluster_traces(ws, k="many", backend="tfidf")
    again = derived.cluster_traces(ws, k=3, backend="tfidf")
    info = derived.cluster_info(ws)
    names = {c["id"]: c["name"] for c in info["clusters"]}
    assert "refund questions" in names.values()
    refund_cluster = int(again.labels[0])
    assert names[refund_cluster] == "refund questions"
    assert derived.curation_maps(ws).clusters["a1"] == "refund questions"


def test_cli_dedup_and_cluster_json(ws, tmp_path, monkeypatch):
    _ingest(ws, tmp_path)
    monkeypatch.chdir(ws.root)
    r = CliRunner().invoke(cli, ["dedup", "--no-paraphrase", "--json"], catch_exceptions=False)
    data = json.loads(r.stdout)
    assert data["traces"] == 9 and data["representatives"] == 6
    assert data["merged_by_level"] == {"exact": 2, "near": 1}
    r = CliRunner().invoke(cli, ["cluster", "--k", "2", "--backend", "tfidf", "--json"], catch_exceptions=False)
    assert r.exit_code == 0 and len(json.loads(r.stdout)["clusters"]) == 2
    r = CliRunner().invoke(cli, ["cluster", "merge", "0", "7"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stderr.startswith("Error: no cluster 7")


def _stages(calls: list[tuple[str, int, int]]) -> list[str]:
    """The stages in the order they started; and each stage's counts never go down and end at its total."""
    order: list[str] = []
    for stage, _, _ in calls:
        if stage not in order:
            order.append(stage)
    for stage in order:
        counts = [(d, t) for s, d, t in calls if s == stage]
        assert [d for d, _ in counts] == sorted(d for d, _ in counts), stage
        assert counts[-1][0] == counts[-1][1], stage
    return order


def test_dedup_and_cluster_report_each_stage_with_increasing_counts(ws, tmp_path):
    _ingest(ws, tmp_path)
    calls: list[tuple[str, int, int]] = []
    res = derived.dedup_traces(ws, backend="tfidf", progress=lambda *c: calls.append(c))
    # dedup embeds one text per exact or near group, after those stages (issue 17)
    assert _stages(calls) == ["read", "normalize", "exact", "near", "embed", "paraphrase"]
    m = res.stats["embedded"]
    assert calls[:2] == [("read", 0, 0), ("read", 9, 9)] and 2 <= m <= 9
    assert [c for c in calls if c[0] == "embed"] == [("embed", 0, m), ("embed", m, m)]
    calls.clear()
    derived.cluster_traces(ws, k=2, backend="tfidf", progress=lambda *c: calls.append(c))
    assert calls == [
        ("read", 0, 0),
        ("read", 9, 9),
        ("embed", 0, 9),
        ("embed", 9, 9),
        ("cluster", 0, 2),  # spectral with k given: the embedding, then the fit
        ("cluster", 1, 2),
        ("cluster", 2, 2),
        ("save", 0, 9),
        ("save", 9, 9),
    ]


def test_embed_and_cluster_count_inside_their_stage(ws, tmp_path, monkeypatch):
    from evaltray.curate import cluster, embed

    _ingest(ws, tmp_path)
    monkeypatch.setattr(embed, "PROGRESS_BATCH", 4)
    monkeypatch.setattr(cluster, "_k_grid", lambda n, max_k: [2, 3, 4])
    calls: list[tuple[str, int, int]] = []
    derived.cluster_traces(ws, k="auto", backend="tfidf", progress=lambda *c: calls.append(c))
    # nine new texts in batches of four; then the embedding, three cluster counts tried, the final fit
    assert [c for c in calls if c[0] == "embed"] == [
        ("embed", 0, 9),
        ("embed", 4, 9),
        ("embed", 8, 9),
        ("embed", 9, 9),
        ("embed", 9, 9),
    ]
    assert [c[1:] for c in calls if c[0] == "cluster"] == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    calls.clear()
    derived.cluster_traces(ws, k="auto", backend="tfidf", progress=lambda *c: calls.append(c))
    assert [c for c in calls if c[0] == "embed"] == [("embed", 0, 9), ("embed", 9, 9)]  # all cached now
