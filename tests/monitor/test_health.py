"""Tray health on hand-built facts: each signal's threshold at its edge, with the rows behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from evaltray.monitor.health import Facts, health

TODAY = datetime(2026, 12, 1, tzinfo=UTC)


def _case(
    cid: str,
    slice_: str = "refunds",
    *,
    age: int = 10,
    verified: int | None = None,
    source: str = "production",
    owner: str = "alice",
    guide: str = "1",
    text: str | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "slice": slice_,
        "created_at": (TODAY - timedelta(days=age)).isoformat(),
        "freshness": {"last_verified_at": (TODAY - timedelta(days=age if verified is None else verified)).isoformat()},
        "provenance": {"source": source},
        "owner": owner,
        "guide_version": guide,
        "expected": {"reference": "x"},
        "version": {"added": "1.0.0"},
        "input": {"messages": [{"role": "user", "content": text or f"question number {cid} about {slice_}"}]},
    }


def _facts(cases: list[dict[str, Any]], **kw: Any) -> Facts:
    kw.setdefault("users", {"alice"})
    kw.setdefault("source_target", {"production": 1.0})
    return Facts(cases=cases, today=TODAY, **kw)


def test_rows_due_for_revalidation_at_180_days_and_for_retirement_review_at_18_months():
    cases = [_case("a", age=179), _case("b", age=180), _case("c", age=548), _case("d", age=547, verified=5)]
    report = health(_facts(cases))
    reval = report.signal("revalidation")
    assert (reval.level, reval.rows) == ("amber", ["b", "c"])  # d was re-verified 5 days ago
    retire = report.signal("retirement")
    assert (retire.level, retire.rows) == ("amber", ["c"])  # d is one day short of 18 months
    fresh = health(_facts([_case("a", age=179)]))
    assert fresh.signal("revalidation").level == fresh.signal("retirement").level == "green"


def test_last_update_amber_after_60_quiet_days_red_when_traffic_shifted():
    cases = [_case("a"), _case("b", "shipping")]
    quiet = _facts(cases, last_change=TODAY - timedelta(days=60))
    assert health(quiet).signal("last-update").level == "amber"
    assert health(_facts(cases, last_change=TODAY - timedelta(days=59))).signal("last-update").level == "green"
    shifted = _facts(cases, last_change=TODAY - timedelta(days=60), drift="red")
    assert health(shifted).signal("last-update").level == "red"
    # traffic moved to shipping: tray 50/50, traffic 20/80 -> 30 pp off, a shift even without the drift monitor
    moved = _facts(cases, last_change=TODAY - timedelta(days=61), traffic={"refunds": 20, "shipping": 80})
    assert health(moved).signal("last-update").detail == {"days": 61, "shifted": True}


def test_slice_mix_within_10_pp_and_intended_oversampling_is_no_alarm():
    # tray: refunds 6, shipping 3, eu 1 (60/30/10); traffic: 50/45/5
    cases = [_case(f"r{i}") for i in range(6)] + [_case(f"s{i}", "shipping") for i in range(3)] + [_case("e", "eu")]
    traffic = {"refunds": 50, "shipping": 45, "eu": 5}
    sig = health(_facts(cases, traffic=traffic)).signal("slice-mix")
    assert sig.detail["slices"]["refunds"]["gap_pp"] == 10.0  # exactly 10 is within
    assert sig.detail["slices"]["shipping"]["gap_pp"] == -15.0
    assert (sig.level, sig.rows) == ("amber", ["shipping"])
    traffic = {"refunds": 60, "shipping": 38, "eu": 2}  # eu 10% of the tray vs 2% of traffic: 8 pp
    assert health(_facts(cases, traffic=traffic)).signal("slice-mix").level == "green"
    over = health(_facts(cases, traffic={"refunds": 40, "shipping": 30, "eu": 30}, intended={"refunds"}))
    sig = over.signal("slice-mix")  # refunds +20 pp but oversampled on purpose; eu -20 pp is an alarm
    assert sig.detail["slices"]["refunds"] == {"tray": 0.6, "traffic": 0.4, "gap_pp": 20.0, "intended": True}
    assert (sig.level, sig.rows) == ("amber", ["eu"])
    assert "1 oversampled as the plan intends" in sig.value
    assert health(_facts(cases)).signal("slice-mix").level == "unknown"


def test_spot_check_disagreement_under_5_percent():
    cases = [_case("a")]
    assert health(_facts(cases, spot_checks=100, spot_rejected=4)).signal("spot-check").level == "green"
    sig = health(_facts(cases, spot_checks=100, spot_rejected=5)).signal("spot-check")
    assert (sig.level, sig.detail) == ("red", {"rate": 0.05})
    assert health(_facts(cases)).signal("spot-check").level == "unknown"


def test_source_mix_against_target_and_single_source_slices():
    cases = [_case(f"p{i}") for i in range(5)] + [_case(f"s{i}", source="synthetic") for i in range(3)]
    cases += [_case("m0", "eu", source="sme"), _case("m1", "eu", source="sme")]
    target = {"production": 0.5, "synthetic": 0.3, "sme": 0.15, "user_feedback": 0.05}
    sig = health(_facts(cases, source_target=target)).signal("source-mix")
    # shares 50/30/20/0 against 50/30/15/5: within 10 pp each; eu comes from sme only
    assert sig.detail["shares"] == {"production": 0.5, "sme": 0.2, "synthetic": 0.3, "user_feedback": 0.0}
    assert (sig.level, sig.rows, sig.detail["off"]) == ("amber", ["eu"], [])
    target = {"production": 0.3, "synthetic": 0.3, "sme": 0.3, "user_feedback": 0.1}
    assert health(_facts(cases, source_target=target)).signal("source-mix").detail["off"] == ["production"]


def test_owners_who_left_are_red_with_their_rows():
    cases = [_case("a"), _case("b", owner="bob"), _case("c", owner="bob")]
    sig = health(_facts(cases, users={"alice"})).signal("owners")
    assert (sig.level, sig.rows, sig.detail) == ("red", ["b", "c"], {"left": ["bob"]})


def test_holdout_share_gone_rows_and_unheld_slices():
    cases = [_case(f"r{i}") for i in range(10)] + [_case(f"s{i}", "shipping") for i in range(5)]
    ok = health(_facts(cases, holdout=["r0", "r1", "s0"], release="1.0.0")).signal("holdout")
    assert (ok.level, ok.detail) == ("green", {"share": 0.2})
    bare = health(_facts(cases, holdout=["r0", "r1", "r2"], release="1.0.0")).signal("holdout")
    assert (bare.level, bare.rows) == ("amber", ["shipping"])
    gone = health(_facts(cases, holdout=["r0", "s0", "x9"], release="1.0.0")).signal("holdout")
    assert (gone.level, gone.rows) == ("red", ["x9"])  # 2 of 15 left = 13.3%, and x9 left the tray
    assert health(_facts(cases)).signal("holdout").level == "unknown"


def test_near_duplicate_inputs_and_older_guide_versions():
    cases = [
        _case("a", text="where is my refund for order 1234 it has been two weeks now"),
        _case("b", text="Where is my refund for order 1234? It has been two weeks now!"),
        _case("c", text="how do I change the delivery address on my parcel", guide="0"),
    ]
    report = health(_facts(cases, guide_version="1"))
    assert (report.signal("duplicates").level, report.signal("duplicates").rows) == ("amber", ["a~b"])
    guide = report.signal("guide-version")
    assert (guide.level, guide.rows) == ("amber", ["c"])
    assert report.level == "amber"


def test_the_report_level_is_the_worst_signal():
    report = health(_facts([_case("a", owner="gone")]))
    assert report.level == "red"


def test_spot_check_counts_blind_relabels_with_rejected_revalidations():
    cases = [_case("a")]
    sig = health(_facts(cases, relabeled=20, relabeled_otherwise=1)).signal("spot-check")
    assert (sig.level, sig.detail) == ("red", {"rate": 0.05})  # 1 of 20 is 5%: not under it
    sig = health(_facts(cases, relabeled=20, relabeled_otherwise=1, spot_checks=30)).signal("spot-check")
    assert (sig.level, sig.detail) == ("green", {"rate": 0.02})
    assert sig.value == "1 of 50 rows checked disagree (2.0%): 1 of 20 spot-checks, 0 of 30 re-validations rejected"


def test_human_agreement_against_the_bar_and_flagged_labelers():
    cases = [_case("a")]
    assert health(_facts(cases)).signal("human-agreement").level == "unknown"
    sig = health(_facts(cases, overlap_items=10, overlap_agreed=8)).signal("human-agreement")
    assert (sig.level, sig.detail, sig.rows) == ("green", {"agreement": 0.8}, [])
    sig = health(_facts(cases, overlap_items=10, overlap_agreed=7)).signal("human-agreement")
    assert (sig.level, sig.value) == ("amber", "70.0% of 10 items labeled twice agree; 0 labeler(s) flagged")
    sig = health(_facts(cases, overlap_items=10, overlap_agreed=9, flagged_labelers=["ana"])).signal("human-agreement")
    assert (sig.level, sig.rows, sig.todo) == ("amber", ["ana"], "retrain or re-check ana (control items)")
    strict = health(_facts(cases, overlap_items=10, overlap_agreed=9, human_agreement=0.95))
    assert strict.signal("human-agreement").level == "amber"
