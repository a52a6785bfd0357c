"""A scored run as numbers a team can defend: pass rates per slice with Wilson intervals, pinned to the
release hash the run used, with what each slice's size can and cannot show."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from evaltray.core.store import Workspace
from evaltray.tray.release import load_manifest

from .calibrate import corrected_rate, find_calibration
from .run import run_dir
from .score import load_run, read_scores, run_cases
from .stats import size_advice, wilson

__all__ = ["run_report"]

#: Below this many cases a slice's interval is reported, and flagged: it can show a collapse, not a fix.
SMALL_SLICE = 30


def _rate(statuses: list[str]) -> dict[str, Any]:
    passed, failed = statuses.count("pass"), statuses.count("fail")
    n = passed + failed
    out: dict[str, Any] = {
        "n": n,
        "passed": passed,
        "errors": statuses.count("error"),
        "unscored": statuses.count("unscored"),
    }
    if n:
        ci = wilson(passed, n)
        out.update(pass_rate=ci.estimate, low=ci.low, high=ci.high)
    else:
        out.update(pass_rate=None, low=None, high=None)
    return out


def run_report(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Overall and per-slice pass rates (first trial of each case; errors and unscored answers apart), the
    release and its hash (or ``unreleased``), the target, and a warning for each slice too small to trust."""
    manifest = load_run(ws, run_id)
    scored = read_scores(ws, run_id)
    rows = [r for r in scored if r["trial"] == 0]
    by_slice: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_slice[str(r.get("slice") or "(none)")].append(r["status"])
    overall = _rate([r["status"] for r in rows])
    slices = {name: _rate(statuses) for name, statuses in sorted(by_slice.items())}
    warnings = [
        f"slice {name}: {s['n']} scored cases can flag a collapse, not declare a fix"
        for name, s in slices.items()
        if 0 < s["n"] < SMALL_SLICE
    ]
    src = manifest["source"]
    cases = run_cases(ws, manifest)
    difficulty = _by_difficulty(rows, cases, warnings)
    judge = _judge_block(ws, run_id)
    if judge is not None and not judge["calibrated"]:
        warnings.insert(
            0, f"judge {judge['name']} is not calibrated: its verdicts are not corrected and the gate refuses them"
        )
    return {
        "run_id": run_id,
        "release": src.get("release") or "unreleased",
        "release_hash": src.get("release_hash"),
        "set": src.get("set"),
        "split": src.get("subset") or src.get("split"),
        "target": manifest["target"]["spec"],
        "target_hash": manifest["target"]["hash"],
        "overall": overall,
        "advice": size_advice(overall["n"]),
        "slices": slices,
        "judge": judge,
        "difficulty": difficulty,
        "holdout_gap": _holdout_gap(ws, src, rows),
        "traffic_weighted": _traffic_weighted(ws, slices),
        "trials": _trials(scored, manifest["trials"]),
        "warnings": warnings,
    }


#: A difficulty level this sure of passing (or failing) teaches nothing (seed 000): too easy, or too hard.
SATURATED, FLOORED, MIN_LEVEL = 0.95, 0.05, 10


def _by_difficulty(rows: list[dict[str, Any]], cases: dict[str, dict[str, Any]], warnings: list[str]) -> dict[str, Any]:
    """Pass rate per difficulty level; a level of 10+ cases that nearly always passes or fails is warned about."""
    by: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by[str(cases.get(r["case_id"], {}).get("difficulty") or "(none)")].append(r["status"])
    out = {level: _rate(statuses) for level, statuses in sorted(by.items())}
    for level, rate in out.items():
        if rate["n"] >= MIN_LEVEL and rate["pass_rate"] is not None:
            if rate["pass_rate"] >= SATURATED:
                warnings.append(f"difficulty {level}: {rate['pass_rate']:.0%} pass — saturated; add harder cases")
            elif rate["pass_rate"] <= FLOORED:
                warnings.append(
                    f"difficulty {level}: {rate['pass_rate']:.0%} pass — near zero; too hard to show progress"
                )
    return out


def _traffic_weighted(ws: Workspace, slices: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The pass rate weighted by how often each slice's feature occurs in production traffic (seed 003: most
    real traffic is not adversarial), over the slices whose feature the traces name; None without traffic."""
    traffic: dict[str, int] = {}
    if (
        ws.traces_dir.exists()
    ):  # one grouping query: the latency, token and cost percentiles of trace_stats are not needed
        with ws.trace_store().sandboxed() as con:
            rows = con.execute("SELECT feature, count(*) FROM traces WHERE feature IS NOT NULL GROUP BY feature")
            traffic = {str(feature): int(n) for feature, n in rows.fetchall()}
    weights: dict[str, float] = {}
    for name, s in slices.items():
        feature = name.split("/")[0]
        if s["pass_rate"] is not None and feature in traffic:
            share = traffic[feature] / sum(1 for other in slices if other.split("/")[0] == feature)
            weights[name] = share
    total = sum(weights.values())
    if not total:
        return None
    rate = sum(slices[name]["pass_rate"] * w for name, w in weights.items()) / total
    return {"pass_rate": rate, "weights": {k: w / total for k, w in weights.items()}}


def _holdout_gap(ws: Workspace, src: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Dev against holdout pass rate of a run on the whole release (``--split all``): a large gap means the
    team tuned to the dev split. None for other runs."""
    if src.get("release") is None or src.get("split") != "all" or src.get("subset"):
        return None
    held = set(load_manifest(ws, src["release"]).sets[src["set"]].holdout)
    dev = _rate([r["status"] for r in rows if r["case_id"] not in held])
    hold = _rate([r["status"] for r in rows if r["case_id"] in held])
    gap = None if dev["pass_rate"] is None or hold["pass_rate"] is None else dev["pass_rate"] - hold["pass_rate"]
    return {"dev": dev, "holdout": hold, "gap": gap}


def _trials(scored: list[dict[str, Any]], trials: int) -> dict[str, Any] | None:
    """With several trials per case: pass@k (some trial passed), pass^k (every trial passed) and the flaky
    cases (some, not all); cases with an error or no verdict in any trial are left out. None for one trial."""
    if trials < 2:
        return None
    by_case: dict[str, list[str]] = defaultdict(list)
    for r in scored:
        by_case[r["case_id"]].append(r["status"])
    judged = {cid: st for cid, st in by_case.items() if len(st) == trials and all(s in ("pass", "fail") for s in st)}
    if not judged:
        return {"k": trials, "cases": 0, "pass_at_k": None, "pass_hat_k": None, "flaky": []}
    any_pass = sum("pass" in st for st in judged.values())
    all_pass = sum(all(s == "pass" for s in st) for st in judged.values())
    n = len(judged)
    at_k, hat_k = wilson(any_pass, n), wilson(all_pass, n)
    return {
        "k": trials,
        "cases": n,
        "pass_at_k": {"pass_rate": at_k.estimate, "low": at_k.low, "high": at_k.high},
        "pass_hat_k": {"pass_rate": hat_k.estimate, "low": hat_k.low, "high": hat_k.high},
        "flaky": sorted(cid for cid, st in judged.items() if len(set(st)) > 1),
    }


def _judge_block(ws: Workspace, run_id: str) -> dict[str, Any] | None:
    """The judge that scored the run, its calibration, and its pass rate corrected for its TPR/TNR
    (Rogan–Gladen) when it is calibrated; None when no judge scored the run."""
    folder = run_dir(ws, run_id)
    meta = (
        orjson.loads((folder / "scores.json").read_bytes()).get("judge") if (folder / "scores.json").exists() else None
    )
    if meta is None or not (folder / "judge.jsonl").exists():
        return None
    overall: dict[tuple[str, int], bool | None] = {}
    for raw in (folder / "judge.jsonl").read_bytes().splitlines():
        v = orjson.loads(raw)
        if v["trial"] == 0:
            key = (v["case_id"], 0)
            before = overall.get(key, True)
            overall[key] = None if v["passed"] is None or before is None else before and v["passed"]
    judged = [p for p in overall.values() if p is not None]
    calibration = find_calibration(ws, meta["hash"])
    block: dict[str, Any] = {**meta, "judged": len(judged), "judge_passed": sum(judged), "calibrated": False}
    if calibration is None:
        block["calibration"] = None
        return block
    block["calibrated"] = calibration["calibrated"]
    block["calibration"] = {k: calibration[k] for k in ("n", "threshold", "created_at")}
    block["calibration"]["agreement"] = calibration["agreement"]["agreement"]["estimate"]
    if calibration["calibrated"] and judged:
        block["corrected"] = corrected_rate(calibration, sum(judged), len(judged))
    return block
