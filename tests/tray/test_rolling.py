"""The rolling drift set (issue 14 part 6): releases of recent traffic, hashed, apart from golden ones, never a gate."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from evaltray.core.errors import NotFound
from evaltray.evaluate import compare
from evaltray.evaluate import run as runner
from evaltray.evaluate.targets import make_target
from evaltray.tray import rolling
from evaltray.tray.release import list_versions
from tests.monitor.test_drift import _ingest, _known

END = datetime(2026, 12, 6, tzinfo=UTC)


def test_a_rolling_release_samples_recent_traffic_and_tracks_what_changed(ws, tmp_path, monkeypatch):
    rng = random.Random(0)
    _ingest(ws, tmp_path, "old", _known(rng, 10), "2026-11-20T10:00:00Z")  # outside the 7-day window
    _ingest(ws, tmp_path, "new", _known(rng, 10), "2026-12-05T10:00:00Z")
    first = rolling.rolling_release(ws, "alice", n=25, end=END)
    assert first.n == 25 and first.parent is None and first.added == 25 and first.dropped == 0
    lines = rolling.rolling_cases_path(ws, first.version).read_bytes().splitlines()
    rows = [orjson.loads(x) for x in lines]
    assert len(rows) == 25 and all(r["trace_id"].startswith("new-") for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert rows[0]["input"]["messages"][-1]["role"] == "user"
    # same traffic, same seed: the same content hash; golden releases are untouched
    assert rolling.rolling_release(ws, "alice", n=25, end=END, dry_run=True).content_hash == first.content_hash
    assert list_versions(ws) == [] and rolling.list_rolling(ws) == [first.version]
    monkeypatch.setattr(rolling, "now", lambda: datetime(2030, 1, 1, tzinfo=UTC))
    second = rolling.rolling_release(ws, "alice", n=30, end=END, seed=1)
    assert second.parent == first.version and second.n == 30
    # 40 traces in the window: the two samples of 25 and 30 share at least 15
    assert second.added == len(set(second.hashes) - set(first.hashes)) <= 15
    assert second.dropped == 25 - (30 - second.added)
    assert rolling.load_rolling(ws, second.version).hashes == second.hashes
    with pytest.raises(rolling.RollingError, match="no conversations between"):
        rolling.rolling_release(ws, "alice", end=END - timedelta(days=60))
    with pytest.raises(NotFound, match="no rolling drift-set release"):
        rolling.load_rolling(ws, "1.0.0")


def test_a_run_on_the_rolling_set_is_refused_by_the_gate(ws, tmp_path, monkeypatch):
    _ingest(ws, tmp_path, "new", _known(random.Random(1), 5), "2026-12-05T10:00:00Z")
    rel = rolling.rolling_release(ws, "alice", n=20, end=END)
    (tmp_path / "echobot.py").write_text("def answer(inp):\n    return 'ok'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plan = runner.plan_rolling_run(ws, rel.version)
    assert len(plan.cases) == 20 and plan.source["rolling"] == rel.version
    made = runner.execute(ws, plan, make_target("python:echobot:answer"), actor="alice")
    with pytest.raises(compare.CompareError, match="rolling drift-set release .* never used for gating"):
        compare.gate(ws, made.run_id, made.run_id)
    from evaltray.evaluate import score

    scored = score.score_run(ws, made.run_id, ["length"], "alice")  # scored like any run on a file
    assert (scored.answers, scored.unscored) == (20, 20)


def test_trace_ids_that_differ_in_case_get_distinct_case_ids(ws, tmp_path):
    rows = [
        {"id": tid, "timestamp": "2026-12-05T10:00:00Z", "messages": [{"role": "user", "content": f"hello {tid}"}]}
        for tid in ("Order-1", "order-1", "order/1")
    ]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    from evaltray.ingest import ingest_files

    ingest_files(ws, [path], actor="alice")
    rel = rolling.rolling_release(ws, "alice", end=END)
    assert rel.n == 3 and len(rel.hashes) == 3
    assert sum(cid == "t-order-1" for cid in rel.hashes) == 1
