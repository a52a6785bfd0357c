"""The dashboards' figures: each board's numbers worked out by hand from a small tray."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evaltray.core.registry import UnknownName
from evaltray.monitor import dashboards
from evaltray.tray import candidates as pool
from evaltray.tray import gate
from evaltray.tray.release import create_release
from tests.helpers import labeled_candidate, tray_of


def _run(run_id: str, created_at: str, rates: dict[str, float | None]) -> dict:
    return {"run_id": run_id, "created_at": created_at, "slices": {s: {"pass_rate": r} for s, r in rates.items()}}


def test_the_slice_delta_compares_the_newest_run_with_the_oldest_in_the_8_week_window():
    runs = [
        _run("r-old", "2026-09-01T00:00:00Z", {"refunds": 0.10}),  # before the window: ignored
        _run("r-a", "2026-10-20T00:00:00Z", {"refunds": 0.50, "billing": 0.80}),
        _run("r-b", "2026-11-10T00:00:00Z", {"refunds": None, "shipping": 0.9}),
        _run("r-c", "2026-12-01T00:00:00Z", {"refunds": 0.625, "billing": 0.70}),
    ]
    got = dashboards.slice_deltas(runs, datetime(2026, 12, 7, tzinfo=UTC))
    assert got["refunds"] == {"from_run": "r-a", "to_run": "r-c", "from": 0.5, "to": 0.625, "delta_pp": 12.5}
    assert got["billing"]["delta_pp"] == -10.0
    assert got["shipping"] == {"from_run": "r-b", "to_run": "r-b", "from": 0.9, "to": 0.9, "delta_pp": None}


def test_source_mix_per_slice_against_the_target(ws):
    tray_of(ws, {"refunds": 3}, source="sme")
    tray_of(ws, {"refunds": 1, "billing": 2}, source="production", prefix="p")
    got = dashboards.board(ws, "sources")
    assert got["title"] == "Source mix: each slice's sources against the target mix"
    assert got["slices"]["refunds"] == {
        "n": 4,
        "shares": {"sme": 0.75, "production": 0.25},
        "counts": {"sme": 3, "production": 1},
    }
    assert got["slices"]["billing"]["shares"] == {"production": 1.0}
    assert got["actual"]["sme"] == pytest.approx(0.5) and got["target"] == dict(ws.settings.source_mix)


def test_reject_bin_and_releases_with_their_per_slice_changes(ws):
    tray_of(ws, {"refunds": 2, "billing": 1})
    create_release(ws, "1.0.0", "alice")
    labeled_candidate(ws, "a new billing question", slice="billing")
    gate.promote(ws, "alice")
    [refund] = [c["id"] for c in gate.case_registry(ws) if c["slice"] == "refunds"][:1]
    gate.retire(ws, refund, "stale policy", "alice")
    create_release(ws, "1.1.0", "alice")
    for n in (1, 2, 3):
        cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": f"spam {n}"}])
        pool.reject(ws, cid, "out_of_scope" if n < 3 else "duplicate", "alice")
    assert dashboards.board(ws, "rejects")["by_reason"] == {"out_of_scope": 2, "duplicate": 1}
    assert dashboards.board(ws, "rejects")["total"] == 3
    newest, first = dashboards.board(ws, "releases")["releases"]
    assert (newest["version"], newest["parent"], first["version"]) == ("1.1.0", "1.0.0", "1.0.0")
    assert newest["n_cases"]["main"] == 3
    by_slice = newest["sets"]["main"]["by_slice"]
    assert by_slice["added"] == {"billing": 1} and by_slice["retired"] == {"refunds": 1}


def test_coverage_without_a_plan_says_how_to_make_one_and_an_unknown_board_is_named(ws):
    got = dashboards.board(ws, "coverage")
    assert got["plan"] is None and "evaltray plan init" in got["note"]
    with pytest.raises(UnknownName):
        dashboards.board(ws, "nope")


def test_health_lists_the_worst_signal_first(ws):
    tray_of(ws, {"refunds": 2})
    got = dashboards.board(ws, "health")
    levels = [s["level"] for s in got["signals"]]
    order = {"red": 0, "amber": 1, "unknown": 2, "green": 3}
    assert levels == sorted(levels, key=order.__getitem__) and got["level"] in order
