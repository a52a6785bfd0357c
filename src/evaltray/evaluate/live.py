"""The live pass rate: a calibrated judge on a random sample of recent production traces.

``score_live`` draws a seeded random sample of the traces that started in a window (``7d``: the last seven
days), judges each recorded answer with the rubric of the slice the trace maps to (the coverage plan's
mapping rules and the workspace's ``slice_by``, as a candidate made from the trace would get; the plan's
``slices.<name>.rubric``, else ``slices."*".rubric``, else the rubric given), and reports the pass rate
with its Wilson interval overall and per slice, corrected for the judge's TPR/TNR where it is calibrated.
An uncalibrated judge is refused unless allowed, and then flagged on every result. A random share of the
verdicts is chosen for people to check (the judge's agreement on live traffic is measured, not assumed).
Each result is kept in ``live/<live_id>/`` (``live.json`` and ``verdicts.jsonl``, readable with DuckDB
beside the runs), so the monitors can set the live rate beside the golden one.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import Workspace
from evaltray.core.traces import conjunction, read_messages
from evaltray.core.util import atomic_write, content_hash, now_iso, parse_duration
from evaltray.curate.plan import Plan, assign_traces, load_plan, plan_path
from evaltray.tray.candidates import render_output, split_conversation
from evaltray.tray.gate import derive_slice
from evaltray.tray.tasks import list_tasks, open_task

from .calibrate import corrected_rate, find_calibration
from .judge import JudgeConfig, judge_answers
from .run import RUN_ROLES, Limits
from .stats import Interval, StatsError, agreement, wilson

__all__ = [
    "DEFAULT_HUMAN_SHARE",
    "LiveError",
    "LiveResult",
    "list_live",
    "parse_window",
    "read_live",
    "sample_ids",
    "score_live",
    "send_for_review",
]

LIVE_DIR = "live"
#: The share of live verdicts people check. 10% of the default 500-trace sample is 50 human verdicts a
#: window: the 100 a calibration needs (seed 002) every two windows, at a tenth of the labelling cost.
DEFAULT_HUMAN_SHARE = 0.10
#: The task kind a live verdict chosen for people is opened as (``evaltray.tray.tasks``).
NO_SLICE = "(none)"


class LiveError(EvaltrayError):
    """A live score that cannot be made: a bad window, an uncalibrated judge, no traces in the window."""


def parse_window(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` as a duration."""
    found = parse_duration(text)
    if found is None:
        raise LiveError(f"window {text!r}: a positive number and a unit, m, h, d or w (e.g. 7d)")
    return found


def _rank(seed: int) -> str:
    """The draw's order: the MD5 of the trace id salted with the seed (stable across DuckDB versions). Uniform,
    repeatable for a seed, and
    independent of how the traces are stored or read, so only the ``n`` drawn ids ever leave DuckDB."""
    return f"md5(trace_id || ':{int(seed)}'), trace_id"


def sample_ids(ws: Workspace, predicate: str | None, n: int, seed: int) -> tuple[list[str], int]:
    """``n`` trace ids (with a kept payload, matching ``predicate``) drawn at random with ``seed`` (all of them
    when there are fewer), sorted, and how many traces there were to draw from."""
    if n < 1:
        raise LiveError("the sample needs at least one trace")
    store = ws.trace_store()
    where = conjunction("payload_kept", predicate)
    total = int(store.query(where, columns=["count(*) AS n"]).column("n")[0].as_py())
    drawn = store.query(where, columns=["trace_id"], limit=n, order_by=_rank(seed)).column("trace_id").to_pylist()
    return sorted(drawn), total


def _id_predicate(ids: list[str]) -> str:
    """``trace_id IN (…)`` for ``ids``, each a SQL string literal (a quote doubled): the mapping rules run on the
    sample only, not on every trace of the window."""
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    return f"trace_id IN ({quoted})"


@dataclass
class LiveResult:
    """A live pass rate: the judge and its calibration, the window, the sample, rates overall and per slice."""

    live_id: str
    path: str
    judge: dict[str, Any]
    calibrated: bool
    calibration: dict[str, Any] | None
    window: str
    since: str
    until: str
    seed: int
    eligible: int  # traces with a kept payload in the window
    sampled: int
    no_answer: int = 0  # sampled traces with no recorded answer to judge
    overall: dict[str, Any] = field(default_factory=dict)
    corrected: dict[str, Any] | None = None
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    human_share: float = DEFAULT_HUMAN_SHARE
    review_ids: list[str] = field(default_factory=list)  # trace ids whose verdicts go to people
    tasks: list[str] = field(default_factory=list)  # the judge_check tasks opened for people
    agreement: dict[str, Any] = field(default_factory=dict)  # the judge against people on live traffic so far
    warnings: list[str] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(verdicts: list[bool | None]) -> dict[str, Any]:
    judged = [v for v in verdicts if v is not None]
    out: dict[str, Any] = {"n": len(judged), "passed": sum(judged), "errors": len(verdicts) - len(judged)}
    if judged:
        ci = wilson(sum(judged), len(judged))
        out.update(pass_rate=ci.estimate, low=ci.low, high=ci.high)
    else:
        out.update(pass_rate=None, low=None, high=None)
    return out


def _window_predicate(since: datetime, until: datetime, where: str | None) -> str:
    """Traces that started (or, without a start time, were ingested) in [since, until), and match ``where``."""
    at = "coalesce(start_time, ingested_at)"
    bounds = f"{at} >= TIMESTAMPTZ '{since.isoformat()}' AND {at} < TIMESTAMPTZ '{until.isoformat()}'"
    return conjunction(bounds, where)


def rubric_for(plan: Plan | None, slice_name: str, default: str | None) -> tuple[str | None, str]:
    """The rubric a trace of ``slice_name`` is judged with, and where it came from (slice, plan, given, none)."""
    slices = plan.slices if plan is not None else {}
    own = (slices.get(slice_name) or {}).get("rubric")
    if own:
        return str(own), "slice"
    common = (slices.get("*") or {}).get("rubric")
    if common:
        return str(common), "plan"
    return (default, "given") if default else (None, "none")


def _slices(ws: Workspace, plan: Plan | None, rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each trace's slice: its feature and the axes the plan's rules set, named by the workspace's slice_by."""
    assigned = assign_traces(ws, plan, where=_id_predicate(sorted(rows))) if plan is not None else {}
    out = {}
    for tid, row in rows.items():
        labels = {"feature": row.get("feature"), **assigned.get(tid, {})}
        out[tid] = derive_slice(labels, ws.settings.slice_by) or NO_SLICE
    return out


def _judge_items(
    rows: dict[str, dict[str, Any]], slices: dict[str, str], plan: Plan | None, default_rubric: str | None
) -> tuple[list[tuple[dict[str, Any], int, str]], dict[str, str]]:
    """The judge's (case, trial, answer) items for traces with a recorded answer, and each one's rubric source."""
    items, source = [], {}
    for tid in sorted(rows):
        before, after = split_conversation(read_messages(rows[tid]["messages"]))
        answer = render_output(after)
        if not before or answer is None:
            continue
        rubric, source[tid] = rubric_for(plan, slices[tid], default_rubric)
        items.append(({"id": tid, "input": {"messages": before}, "rubric": rubric, "expected": {}}, 0, answer))
    return items, source


def _combined(verdicts: list[Any]) -> dict[str, dict[str, Any]]:
    """Per trace: passed (every dimension passed; None when any gave no verdict), critiques and errors."""
    out: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        row = out.setdefault(v.case_id, {"passed": True, "critique": None, "error": None, "dimensions": {}})
        row["dimensions"][v.dimension] = v.passed
        if v.passed is None:
            row["passed"], row["error"] = None, row["error"] or v.error
        elif row["passed"] is not None:
            row["passed"] = row["passed"] and v.passed
            if not v.passed and row["critique"] is None:
                row["critique"] = v.critique
    return out


def _check_judge(ws: Workspace, judge: JudgeConfig, allow_uncalibrated: bool) -> dict[str, Any] | None:
    calibration = find_calibration(ws, judge.hash)
    if calibration is not None and calibration["calibrated"]:
        return calibration
    state = "was never calibrated in this workspace" if calibration is None else "is uncalibrated"
    if not allow_uncalibrated:
        raise LiveError(
            f"judge {judge.name} {state}: run `evaltray judge calibrate --judge FILE` first, or pass --allow-uncalibrated"
        )
    return calibration


def _choose_for_people(ids: list[str], share: float, seed: int) -> list[str]:
    """``share`` of ``ids`` (rounded, at least one when the share is not 0), drawn with its own seeded stream."""
    k = min(len(ids), max(1, round(share * len(ids)))) if share and ids else 0
    return sorted(random.Random(f"{seed}:people").sample(sorted(ids), k))


def score_live(
    ws: Workspace,
    judge: JudgeConfig,
    *,
    window: str = "7d",
    sample: int = 500,
    seed: int = 0,
    human_share: float = DEFAULT_HUMAN_SHARE,
    default_rubric: str | None = None,
    where: str | None = None,
    allow_uncalibrated: bool = False,
    until: datetime | None = None,
    limits: Limits | None = None,
    actor: str | None = None,
) -> LiveResult:
    """Judge a seeded random ``sample`` of the production traces of the last ``window`` (before ``until``,
    default now), store the verdicts and rates under ``live/``, and send ``human_share`` of them to people."""
    actor = ws.authorize(actor, RUN_ROLES, "scoring live traffic")
    span = parse_window(window)
    if not 0 <= human_share <= 1:
        raise LiveError(f"the human share must lie in [0, 1], got {human_share}")
    calibration = _check_judge(ws, judge, allow_uncalibrated)
    end = (until or datetime.now(UTC)).astimezone(UTC)
    chosen, eligible = sample_ids(ws, _window_predicate(end - span, end, where), sample, seed)
    if not chosen:
        raise LiveError(f"no traces with a kept payload in the last {window} (before {end.isoformat()})")
    rows = ws.trace_store().get(chosen)
    plan = load_plan(ws) if plan_path(ws).exists() else None
    slices = _slices(ws, plan, rows)
    items, rubric_source = _judge_items(rows, slices, plan, default_rubric)
    verdicts = _combined(judge_answers(judge, items, limits) if items else [])
    judged = [tid for tid in sorted(verdicts) if verdicts[tid]["passed"] is not None]
    key = {"judge": judge.hash, "window": window, "until": end.isoformat(), "seed": seed, "ids": chosen}
    live_id = "l-" + content_hash(key)[:12]
    result = LiveResult(
        live_id,
        str(ws.root / LIVE_DIR / live_id),
        {"name": judge.name, "hash": judge.hash, "model": judge.model, "dimensions": judge.dimensions},
        bool(calibration and calibration["calibrated"]),
        None if calibration is None else {k: calibration[k] for k in ("n", "threshold", "calibrated", "created_at")},
        window,
        (end - span).isoformat(),
        end.isoformat(),
        seed,
        eligible,
        len(chosen),
        no_answer=len(rows) - len(items),
        human_share=human_share,
        created_at=now_iso(),
    )
    result.review_ids = _choose_for_people(judged, human_share, seed)
    _rates(result, verdicts, slices, calibration, rubric_source)
    _save(result, verdicts, slices, rubric_source)
    result.agreement = live_agreement(ws, judge.hash)
    result.tasks = send_for_review(ws, result, verdicts, actor, {item[0]["id"]: item[2] for item in items})
    atomic_write(Path(result.path) / "live.json", orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    ws.record(actor, "score-live", live_id, judge=judge.hash, sampled=len(chosen), judged=len(judged))
    return result


def _rates(
    result: LiveResult,
    verdicts: dict[str, dict[str, Any]],
    slices: dict[str, str],
    calibration: dict[str, Any] | None,
    rubric_source: dict[str, str],
) -> None:
    by_slice: dict[str, list[bool | None]] = defaultdict(list)
    for tid, v in verdicts.items():
        by_slice[slices[tid]].append(v["passed"])
    result.overall = _rate([v["passed"] for v in verdicts.values()])
    result.slices = {name: _rate(vs) for name, vs in sorted(by_slice.items())}
    if calibration is not None and calibration["calibrated"]:
        result.corrected = corrected_rate(calibration, result.overall["passed"], result.overall["n"])
    if not result.calibrated:
        result.warnings.insert(0, f"UNCALIBRATED judge {result.judge['name']}: its verdicts are counted as given")
    unruled = sum(1 for s in rubric_source.values() if s == "none")
    if unruled:
        result.warnings.append(
            f"{unruled} traces were judged with no rubric (give slices.<name>.rubric in plan.yaml, or --rubric)"
        )
    if result.no_answer:
        result.warnings.append(f"{result.no_answer} sampled traces hold no recorded answer and were not judged")


def _save(
    result: LiveResult, verdicts: dict[str, dict[str, Any]], slices: dict[str, str], rubric_source: dict[str, str]
) -> None:
    chosen = set(result.review_ids)
    lines = [
        orjson.dumps(
            {
                "live_id": result.live_id,
                "trace_id": tid,
                "slice": slices[tid],
                **v,
                "rubric": rubric_source.get(tid),
                "human_review": tid in chosen,
                "judge_hash": result.judge["hash"],
            }
        )
        + b"\n"
        for tid, v in sorted(verdicts.items())
    ]
    atomic_write(Path(result.path) / "verdicts.jsonl", b"".join(lines))


def send_for_review(
    ws: Workspace, result: LiveResult, verdicts: dict[str, dict[str, Any]], actor: str, answers: dict[str, str]
) -> list[str]:
    """Open a ``judge_check`` task (ref ``live_id/trace_id``) for each verdict chosen for people: their ids."""
    opened = []
    for tid in result.review_ids:
        v = verdicts[tid]
        payload = {
            "live_id": result.live_id,
            "trace_id": tid,
            "judge": result.judge["name"],
            "judge_hash": result.judge["hash"],
            "output": answers.get(tid),
            "verdicts": [{"verdict": "pass" if v["passed"] else "fail", "critique": v["critique"]}],
        }
        reason = f"live verdict of judge {result.judge['name']}: does a person agree?"
        opened.append(
            open_task(ws, "judge_check", f"{result.live_id}/{tid}", reason=reason, actor=actor, payload=payload)
        )
    return opened


def _interval(ci: Interval) -> dict[str, float]:
    return {"rate": ci.estimate, "low": ci.low, "high": ci.high}


def live_agreement(ws: Workspace, judge_hash: str) -> dict[str, Any]:
    """The judge against people on live traffic: every closed ``judge_check`` task of a live result of this
    judge that a person answered pass or fail. Agreement with its Wilson interval, and κ, TPR and TNR once
    people have said both pass and fail."""
    pairs = [
        (t.verdict == "pass", t.payload["verdicts"][0]["verdict"] == "pass")
        for t in list_tasks(ws, kind="judge_check", status="closed", outcome="done")
        if t.verdict is not None and t.payload.get("live_id") and t.payload.get("judge_hash") == judge_hash
    ]
    if not pairs:
        return {"n": 0}
    same = sum(h == j for h, j in pairs)
    found: dict[str, Any] = {"n": len(pairs), "agreed": same, **_interval(wilson(same, len(pairs)))}
    try:
        a = agreement([h for h, _ in pairs], [j for _, j in pairs])
    except StatsError:  # people said only pass, or only fail: no κ yet
        return found
    return found | {"kappa": a.kappa, "tpr": _interval(a.tpr), "tnr": _interval(a.tnr)}


def read_live(ws: Workspace, live_id: str) -> dict[str, Any]:
    """A stored live result (``live.json``)."""
    if not re.fullmatch(r"l-[0-9a-f]+", live_id):
        raise LiveError(f"{live_id!r} is not a live result id (l-…)")
    path = ws.root / LIVE_DIR / live_id / "live.json"
    if not path.exists():
        raise NotFound(f"no live result {live_id!r} in this workspace (live/)")
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def list_live(ws: Workspace) -> list[dict[str, Any]]:
    """Every stored live result, oldest first: what a monitor sets beside the golden pass rate."""
    folder = ws.root / LIVE_DIR
    found = [orjson.loads(p.read_bytes()) for p in folder.glob("l-*/live.json")] if folder.exists() else []
    return sorted(found, key=lambda r: (r["until"], r["created_at"]))
