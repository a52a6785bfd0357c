"""The refresh ritual, the watch and the self-test on real workspaces built here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from evaltray.ingest import ingest_files
from evaltray.monitor.health import tray_health
from evaltray.monitor.refresh import RefreshError, last_refresh, parse_every, refresh, refresh_due, watch
from evaltray.monitor.registered import register_corpus, tag_examples
from evaltray.monitor.selftest import selftest
from evaltray.tray import candidates as pool
from evaltray.tray import gate
from evaltray.tray.tasks import list_tasks
from tests.helpers import labeled_candidate, tray_of


def _traces(ws, tmp_path: Path, n: int) -> None:
    """``n`` traces, t0 the oldest, one hour apart."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"t{i}",
            "timestamp": (start + timedelta(hours=i)).isoformat(),
            "messages": [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": "ok"}],
        }
        for i in range(n)
    ]
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    ingest_files(ws, [path], actor="alice")


def test_refresh_pulls_the_newest_conversations_and_logs_its_triggers(ws, tmp_path):
    _traces(ws, tmp_path, 8)
    assert last_refresh(ws) is None and refresh_due(ws) == ["never refreshed"]
    result = refresh(ws, "alice", n=3)
    assert len(result.pulled) == 3
    traces = sorted(c.trace_id for c in pool.list_candidates(ws))
    assert traces == ["t5", "t6", "t7"]
    assert result.triggers == ["never refreshed"]
    assert last_refresh(ws) is not None and refresh_due(ws) == []
    again = refresh(ws, "alice", incident="refunds double-charged")  # 50 asked, 5 left
    assert len(again.pulled) == 5 and again.triggers == ["incident: refunds double-charged"]
    assert refresh_due(ws, datetime.now(UTC) + timedelta(days=30)) == ["cadence: last refresh 30 days ago (every 30)"]


def test_refresh_refuses_an_empty_incident_and_a_dry_run_writes_nothing(ws, tmp_path):
    _traces(ws, tmp_path, 2)
    with pytest.raises(RefreshError, match="an incident needs a description"):
        refresh(ws, "alice", incident="  ")
    result = refresh(ws, "alice", dry_run=True)
    assert len(result.pulled) == 2 and last_refresh(ws) is None


def test_rows_due_are_sent_back_for_revalidation_once(ws):
    tray_of(ws, {"refunds": 2})
    later = datetime.now(UTC) + timedelta(days=181)
    report = tray_health(ws, today=later)
    assert len(report.signal("revalidation").rows) == 2
    result = refresh(ws, "alice", today=later)
    assert len(result.revalidate) == 2
    assert sorted(t.ref for t in list_tasks(ws, kind="revalidate", status="open")) == sorted(result.revalidate)
    refresh(ws, "alice", today=later)
    assert len(list_tasks(ws, kind="revalidate")) == 2  # an open task is kept, not doubled


def test_watch_runs_when_due_and_exits_with_the_level(ws):
    tray_of(ws, {"refunds": 2})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    first = watch(ws, parse_every("1d"), today=now)
    assert first.ran and first.report is not None
    assert first.status == {"green": 0, "amber": 1, "red": 2}[first.report.level]
    assert not watch(ws, parse_every("1d"), today=now + timedelta(hours=23)).ran
    assert watch(ws, parse_every("1d"), today=now + timedelta(hours=24)).ran
    assert watch(ws, parse_every("1d"), today=now + timedelta(hours=25), force=True).ran


def test_every_is_parsed_or_refused():
    assert parse_every("12h") == timedelta(hours=12) and parse_every("1w") == timedelta(days=7)
    with pytest.raises(RefreshError, match="--every '1 day'"):
        parse_every("1 day")


def test_selftest_answers_from_the_workspace(ws):
    tray_of(ws, {"refunds": 3})
    result = selftest(ws)
    by = {i: a.answer for i, a in enumerate(result.answers, 1)}
    # every row carries the six-tuple; nobody spot-checked yet; no live traffic; just added; no prompt registered
    assert by == {1: "yes", 2: "unknown", 3: "unknown", 4: "yes", 5: "unknown"}
    assert result.answers[0].evidence == "3 of 3 rows carry all six; 3 await their first release"
    assert not result.golden
    late = selftest(ws, today=datetime.now(UTC) + timedelta(days=91))
    assert late.answers[3].answer == "no" and late.answers[3].todo == "run `evaltray refresh`"


def test_selftest_says_no_when_a_prompt_shows_a_tray_row(ws, tmp_path):
    labeled_candidate(ws, "can I return shoes after thirty days")
    labeled_candidate(ws, "where is my parcel from last week")
    gate.promote(ws, "alice")
    prompt = tmp_path / "system.txt"
    prompt.write_text("You are a shop assistant.\nUser: Can I return shoes after thirty days\n")
    register_corpus(ws, "alice", prompt, "prompt")
    assert selftest(ws).answers[4].answer == "yes"  # registered, nothing tagged yet, tray file elsewhere
    tag_examples(ws, "alice", prompt)
    answer = selftest(ws).answers[4]
    assert answer.answer == "no" and len(answer.rows) == 1
    assert "1 tray row(s) are examples in a prompt" in answer.evidence
