"""Empty texts, binary junk, 1 MB messages, other scripts and emoji go through every curation stage."""

from __future__ import annotations

import orjson

from evaltray.core.traces import TraceStore
from evaltray.curate import derived
from evaltray.curate.plan import Plan, Rule, coverage
from evaltray.curate.sample import sample
from evaltray.ingest import ingest_files

TEXTS = {
    "empty": "",
    "spaces": "   \n\t ",
    "junk": "\x00\x01\ufffd\ud7ff garbage \x7f" + "".join(chr(c) for c in range(0x80, 0xA0)),
    "huge": "refund " * 150_000,  # ~1 MB
    "zh": "我的订单什么时候到？请尽快回复。",
    "ar": "أين طلبي؟ لم يصل بعد",
    "hi": "मेरा ऑर्डर कहाँ है? कृपया मदद करें",
    "emoji": "👍👍 where is my 📦?? 🙏🏽",
    "mixed": "Straße Заказ 注文 order #12 😀 مرحبا",
    "plain": "Where is my parcel?",
}


def test_every_stage_survives_bad_text(ws, tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {
            "id": k,
            "metadata": {"feature": "support"},
            "messages": [{"role": "user", "content": v}, {"role": "assistant", "content": v[:50]}],
        }
        for k, v in TEXTS.items()
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    report = ingest_files(ws, [path])  # scrubbed at ingest: the workspace default
    assert report.ingested == len(TEXTS) and report.issues == []
    stored = TraceStore(ws.traces_dir).query(columns=["trace_id", "scrubbed", "payload_kept"]).to_pylist()
    assert {r["trace_id"] for r in stored} == set(TEXTS)
    assert all(r["scrubbed"] for r in stored)
    result = derived.dedup_traces(ws, near=0.8, paraphrase=0.9)
    assert set(result.rep_of) == {r["trace_id"] for r in stored if r["payload_kept"]}
    # both blank texts normalise to nothing: one exact group, the traces themselves stay
    assert result.rep_of["spaces"] == result.rep_of["empty"]
    clustering = derived.cluster_traces(ws, k=2)
    assert len(clustering.labels) == len(result.rep_of)
    plan = Plan(
        dimensions={"feature": ["support"], "scenario": ["any"]},
        grid=["feature", "scenario"],
        rules=[Rule(set={"feature": "support", "scenario": "any"}, where="feature = 'support'")],
    )
    cov = coverage(ws, plan)
    assert cov.cells[0].traffic == len(result.rep_of)
    maps = derived.curation_maps(ws)
    picked = sample(
        ws,
        plan,
        5,
        outliers=["terse", "verbose", "abandoned", "long"],
        seed=1,
        clusters=maps.clusters,
        dup_of=maps.dup_of,
        weights=maps.weights,
    )
    assert len(picked.picks) == 5
