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


def test_satisfied_by_the_scale_the_scores_use():
    from evaltray.monitor.health import satisfied_at

    assert satisfied_at([1.0, -1.0, 1.0]) == 0.5  # thumbs
    assert satisfied_at([1.0, 3.0, 5.0]) == 4.0  # 1-5 CSAT: top two boxes
    assert satisfied_at([7.0, 10.0]) == 9.0
    assert satisfied_at([55.0]) == 80.0
    assert satisfied_at([]) == 0.5


def test_saturation_needs_a_90_percent_pass_rate_and_feedback_that_does_not_improve():
    # 92% pass; satisfied 24 of 40 now (60%) against 30 of 50 before (60%): not improving -> amber
    sig = health(
        _facts([], golden_pass=0.92, golden_run="r-1", feedback_now=(24, 40), feedback_before=(30, 50))
    ).signal("saturation")
    assert sig.level == "amber" and sig.detail == {"pass_rate": 0.92, "satisfied_now": 0.6, "satisfied_before": 0.6}
    # 31 of 50 now (62%) is an improvement -> green; so is a pass rate under 90%
    assert (
        health(_facts([], golden_pass=0.92, feedback_now=(31, 50), feedback_before=(30, 50))).signal("saturation").level
        == "green"
    )
    assert (
        health(_facts([], golden_pass=0.89, feedback_now=(20, 50), feedback_before=(30, 50))).signal("saturation").level
        == "green"
    )
    few = health(_facts([], golden_pass=0.95, feedback_now=(5, 29), feedback_before=(30, 50))).signal("saturation")
    assert few.level == "unknown" and few.value.startswith("not enough data: 29 and 50")
    assert health(_facts([])).signal("saturation").level == "unknown"


def test_feedback_agreement_sets_each_slice_pass_rate_against_its_satisfied_users():
    slices = {
        "billing": (18, 14, 20),  # 90% pass, 70% satisfied: 20 points -> red
        "refunds": (17, 14, 20),  # 85% vs 70%: 15 points -> amber
        "orders": (30, 28, 40),  # 75% vs 70%: 5 points -> green
        "returns": (10, 2, 10),  # 10 rated: not enough data, whatever the gap
    }
    sig = health(_facts([], slice_feedback=slices)).signal("feedback-agreement")
    assert sig.level == "red" and sig.rows == ["billing", "refunds"]
    rows = sig.detail["slices"]
    assert rows["billing"] == {"pass_rate": 0.9, "rated": 20, "gap_pp": 20.0, "satisfied": 0.7}
    assert rows["orders"]["gap_pp"] == 5.0 and rows["returns"]["gap_pp"] is None
    del slices["billing"]
    assert health(_facts([], slice_feedback=slices)).signal("feedback-agreement").level == "amber"
    only_few = health(_facts([], slice_feedback={"returns": (10, 2, 10)})).signal("feedback-agreement")
    assert only_few.level == "unknown" and only_few.value.startswith("not enough data")


def test_gather_reads_feedback_periods_and_the_newest_live_verdicts(ws, tmp_path):
    import orjson

    from evaltray.ingest import ingest_files
    from evaltray.monitor.health import gather

    rows = []
    for i in range(40):  # the last 30 days: 10 of 40 thumbs up; the 30 days before: 20 of 40
        rows.append({"id": f"now-{i}", "timestamp": "2026-11-20T10:00:00Z", "feedback": "up" if i < 10 else "down"})
        rows.append({"id": f"old-{i}", "timestamp": "2026-10-20T10:00:00Z", "feedback": "up" if i < 20 else "down"})
    rows.append({"id": "unrated", "timestamp": "2026-11-20T10:00:00Z"})
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps({**r, "messages": [{"role": "user", "content": r["id"]}]}) + b"\n" for r in rows)
    )
    ingest_files(ws, [path], actor="alice")
    live = ws.root / "live" / "l-0a"
    live.mkdir(parents=True)
    live.joinpath("live.json").write_bytes(
        orjson.dumps({"live_id": "l-0a", "until": "2026-12-01", "created_at": "2026-12-01", "slices": {}})
    )
    verdicts = [("now-0", "a", True), ("now-15", "a", True), ("now-16", "a", False), ("unrated", "a", True)]
    verdicts += [("old-0", "b", None)]
    live.joinpath("verdicts.jsonl").write_bytes(
        b"".join(orjson.dumps({"trace_id": t, "slice": s, "passed": p}) + b"\n" for t, s, p in verdicts)
    )
    facts = gather(ws, today=TODAY)
    assert facts.feedback_now == (10, 40) and facts.feedback_before == (20, 40)
    # slice a: three rated verdicts (the unrated trace is left out): 2 passed, 1 satisfied (now-0)
    assert facts.slice_feedback == {"a": (2, 1, 3)}
    assert facts.golden_pass is None
