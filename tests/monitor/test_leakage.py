"""The live-gap signal on hand-made pass rates: amber from 15 points, red from 20, with the slices behind it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from evaltray.monitor.leakage import JsonLiveSource, LeakageError, Rate, Rates, live_gap, rates_of


def _rates(overall: tuple[int, int], **slices: tuple[int, int]) -> Rates:
    return Rates(Rate(*overall), {k: Rate(*v) for k, v in slices.items()})


def test_seed_003_s_example_is_red_and_names_the_slice():
    # seed 003: golden 94% against live 71% -> 23 points
    golden = _rates((94, 100), refunds=(48, 50), shipping=(46, 50))
    live = _rates((710, 1000), refunds=(300, 500), shipping=(410, 500))
    report = live_gap(golden, live)
    assert (report.overall.gap, report.overall.level) == (23.0, "red")
    by = {s.slice: (s.gap, s.level) for s in report.slices}
    assert by == {"refunds": (36.0, "red"), "shipping": (10.0, "green")}
    assert report.culprits == ["refunds"] and report.level == "red"


def test_amber_from_15_points_green_below():
    assert live_gap(_rates((90, 100)), _rates((75, 100))).level == "amber"  # exactly 15
    assert live_gap(_rates((90, 100)), _rates((76, 100))).level == "green"  # 14
    assert live_gap(_rates((90, 100)), _rates((70, 100))).level == "red"  # exactly 20


def test_a_slice_too_small_to_trust_is_shown_but_raises_nothing():
    report = live_gap(_rates((80, 100), rare=(5, 5)), _rates((78, 100), rare=(0, 5)))
    assert {s.slice: s.level for s in report.slices} == {"rare": "red"}
    assert report.level == "green" and report.culprits == []


def test_a_slice_on_one_side_only_has_no_gap():
    report = live_gap(_rates((80, 100), new=(10, 10)), _rates((80, 100)))
    assert [(s.slice, s.gap, s.level) for s in report.slices] == [("new", None, "unknown")]


def test_live_rates_from_a_json_file_and_bad_files_said_plainly(tmp_path: Path):
    path = tmp_path / "live.json"
    path.write_bytes(orjson.dumps({"overall": {"passed": 7, "n": 10}, "slices": {"a": {"passed": 1, "n": 2}}}))
    assert JsonLiveSource(path).pass_rates() == _rates((7, 10), a=(1, 2))
    with pytest.raises(LeakageError, match="passed 11 is not between 0 and n 10"):
        rates_of({"overall": {"passed": 11, "n": 10}}, "live")
    with pytest.raises(LeakageError, match="expected an object with `overall`"):
        rates_of([], "live")
    path.write_text("{")
    with pytest.raises(LeakageError, match="not JSON"):
        JsonLiveSource(path).pass_rates()


def test_live_rates_from_a_stored_score_live_result(ws):
    from evaltray.monitor.leakage import StoredLiveSource

    with pytest.raises(LeakageError, match="no live pass rate in this workspace: run `evaltray score-live` first"):
        StoredLiveSource(ws).pass_rates()
    for live_id, until, overall in (
        ("l-aaaa", "2026-11-01T00:00:00+00:00", (7, 10)),
        ("l-bbbb", "2026-12-01T00:00:00+00:00", (71, 100)),
    ):
        folder = ws.root / "live" / live_id
        folder.mkdir(parents=True)
        data = {
            "live_id": live_id,
            "until": until,
            "created_at": until,
            "overall": {"n": overall[1], "passed": overall[0], "errors": 1},
            "slices": {"refunds": {"n": 50, "passed": 30, "errors": 0}},
        }
        (folder / "live.json").write_bytes(orjson.dumps(data))
    newest = StoredLiveSource(ws).pass_rates()  # the newest window's result
    assert newest == Rates(Rate(71, 100), {"refunds": Rate(30, 50)})
    assert StoredLiveSource(ws, "l-aaaa").pass_rates().overall == Rate(7, 10)
    report = live_gap(_rates((94, 100), refunds=(48, 50)), newest)
    assert (report.overall.gap, report.level, report.culprits) == (23.0, "red", ["refunds"])
