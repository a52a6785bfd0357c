"""Scoring a run: every answer through the chosen scorers, into ``runs/<run_id>/scores.jsonl``.

The cases are read again from where the run took them, and refused if they changed since: a release whose
hash is not the one the run recorded, a file whose sha256 differs. An answer the target failed to give
is an error, never a fail; a scorer that raises is that answer's error too; an answer no chosen scorer
could check is unscored. An answer passes when every scorer that applies passes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, file_sha256
from evaltray.curate.plan import load_plan, plan_path, slice_assertions
from evaltray.tray.release import load_manifest, select_cases
from evaltray.tray.tasks import open_task

from .judge import JudgeConfig, judge_answers
from .run import RUN_ROLES, Limits, RunError, read_results, run_dir
from .scorers import SCORERS, Score

__all__ = ["ScoreReport", "load_run", "read_scores", "run_cases", "score_run"]

#: The rule scorers run when none are named: those that score only what the case itself asks for (a reference,
#: or its own ``contains:``/``regex:``/``json-schema:``/``max-words:``/``max-chars:`` assertions or tool calls)
#: and say "unscored" otherwise. ``numeric`` is left out: it reads any number in a prose reference.
DEFAULT_SCORERS = ("exact", "contains", "regex", "json_schema", "tool_calls", "length")


def load_run(ws: Workspace, run_id: str) -> dict[str, Any]:
    """A run's ``run.json``."""
    path = run_dir(ws, run_id) / "run.json"
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunError(f"no run {run_id!r} in this workspace (runs/)") from None


def run_cases(ws: Workspace, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's cases by id, as they were when it ran; refused when they changed since."""
    src = manifest["source"]
    if src.get("release") is not None:
        now = load_manifest(ws, src["release"]).content_hash
        if now != src["release_hash"]:
            raise RunError(
                f"release {src['release']} has hash {now[:12]}, not the {src['release_hash'][:12]} the run used"
            )
        cases = select_cases(ws, src["release"], src["set"], src["split"], src["subset"])
        return {c["id"]: c for c in cases}
    path = Path(src["file"])
    if not path.exists() or file_sha256(path) != src["file_sha256"]:
        raise RunError(f"{path} changed (or is gone) since run {manifest['run_id']}; run it again")
    out = {}
    for raw in path.read_bytes().splitlines():
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # the run reported it
        if isinstance(row, dict) and "input" in row and str(row.get("id")) not in out:
            out[str(row.get("id"))] = {
                "id": str(row.get("id")),
                "expected": row.get("expected") or {},
                "slice": row.get("slice"),
                "risk_level": row.get("risk_level"),
                "case_type": row.get("case_type"),
            }
    return out


def with_slice_assertions(ws: Workspace, cases: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Give each case the assertions ``plan.yaml`` sets for its slice (``slices.<name>.assertions``, a slice's
    scorers) after its own; returns them per slice, for the record. No plan: nothing added."""
    plan = load_plan(ws) if plan_path(ws).exists() else None
    used: dict[str, list[str]] = {}
    for cid, case in cases.items():
        extra = slice_assertions(plan, case.get("slice"))
        if not extra:
            continue
        expected = dict(case.get("expected") or {})
        own = list(expected.get("assertions") or [])
        expected["assertions"] = own + [a for a in extra if a not in own]
        cases[cid] = {**case, "expected": expected}
        used[str(case["slice"])] = extra
    return used


@dataclass
class ScoreReport:
    run_id: str
    scorers: list[str]
    answers: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    unscored: int = 0
    by_scorer: dict[str, dict[str, int]] = field(default_factory=dict)
    path: Path | None = None
    review_tasks: list[str] = field(default_factory=list)  # judge_check tasks opened for a person's look
    slice_assertions: dict[str, list[str]] = field(default_factory=dict)  # from plan.yaml, per slice


def _verdict(case: dict[str, Any], answer: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """One answer's scores and overall status: pass, fail, error (the target's or a scorer's) or unscored."""
    base = {"case_id": answer["case_id"], "trial": answer["trial"], "slice": case.get("slice")}
    if answer.get("status") != "ok":
        return {**base, "status": "error", "reason": answer.get("error"), "scores": []}
    scores: list[Score] = []
    for name in names:
        try:
            scores.append(SCORERS.get(name)(case, answer))
        except EvaltrayError as exc:
            return {**base, "status": "error", "reason": f"scorer {name}: {exc}", "scores": []}
        except Exception as exc:  # noqa: BLE001 - a custom scorer's bug is that answer's error
            return {**base, "status": "error", "reason": f"scorer {name} raised {type(exc).__name__}", "scores": []}
    applied = [s for s in scores if s.passed is not None]
    status = "unscored" if not applied else "pass" if all(s.passed for s in applied) else "fail"
    return {
        **base,
        "status": status,
        "scores": [{"scorer": s.scorer, "passed": s.passed, "reason": s.reason} for s in scores],
    }


def _judged(
    folder: Path,
    answers: dict[tuple[str, int], dict[str, Any]],
    cases: dict[str, dict[str, Any]],
    judge: JudgeConfig,
    limits: Limits | None,
) -> None:
    """Attach the judge's verdicts to each answer the target gave (``answer["judge"]``); kept in judge.jsonl."""
    items = [
        (cases.get(cid, {"id": cid}), trial, a.get("output") or "")
        for (cid, trial), a in answers.items()
        if a.get("status") == "ok"
    ]
    verdicts = judge_answers(judge, items, limits)
    for a in answers.values():
        a["judge"] = []
    for v in verdicts:
        answers[(v.case_id, v.trial)]["judge"].append(dataclasses.asdict(v))
    lines = [
        orjson.dumps({**dataclasses.asdict(v), "judge": judge.name, "judge_hash": judge.hash}) + b"\n" for v in verdicts
    ]
    atomic_write(folder / "judge.jsonl", b"".join(lines))


def score_run(
    ws: Workspace,
    run_id: str,
    scorers: list[str] | None = None,
    actor: str | None = None,
    *,
    judge: JudgeConfig | None = None,
    limits: Limits | None = None,
) -> ScoreReport:
    """Score every answer of run ``run_id`` with ``scorers`` (default: the rule scorers) into scores.jsonl;
    the ``judge`` scorer asks ``judge`` about every answer first (``limits`` bound its requests)."""
    actor = ws.authorize(actor, RUN_ROLES, "scoring a run")
    names = list(scorers or DEFAULT_SCORERS)
    for name in names:
        SCORERS.get(name)  # an unknown scorer fails before anything is read
    if "judge" in names and judge is None:
        raise RunError("the judge scorer needs a judge: pass --judge judge.yaml")
    manifest = load_run(ws, run_id)
    cases = run_cases(ws, manifest)
    from_plan = with_slice_assertions(ws, cases)
    folder = run_dir(ws, run_id)
    answers = read_results(folder / "results.jsonl")
    review_tasks: list[str] = []
    if "judge" in names and judge is not None:
        _judged(folder, answers, cases, judge, limits)
        review_tasks = send_judge_checks(ws, run_id, answers, cases, judge, actor)
    path = folder / "scores.jsonl"
    report = ScoreReport(run_id, names, path=path, review_tasks=review_tasks, slice_assertions=from_plan)
    by: dict[str, Counter[str]] = {n: Counter() for n in names}
    lines = []
    for (cid, _), answer in sorted(answers.items()):
        row = _verdict(cases.get(cid, {"id": cid}), answer, names)
        lines.append(orjson.dumps(row) + b"\n")
        report.answers += 1
        setattr(report, _FIELD[row["status"]], getattr(report, _FIELD[row["status"]]) + 1)
        for s in row["scores"]:
            by[s["scorer"]]["n/a" if s["passed"] is None else "pass" if s["passed"] else "fail"] += 1
    report.by_scorer = {n: dict(c) for n, c in by.items()}
    atomic_write(path, b"".join(lines))
    meta: dict[str, Any] = {
        "run_id": run_id,
        "scorers": names,
        "evaltray": version("evaltray"),
        "counts": report.by_scorer,
        "slice_assertions": from_plan,
    }
    if judge is not None and "judge" in names:
        meta["judge"] = {"name": judge.name, "hash": judge.hash, "model": judge.model, "dimensions": judge.dimensions}
    atomic_write(folder / "scores.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    ws.record(actor, "score", run_id, scorers=names, answers=report.answers)
    return report


#: A case is high-risk when its row says so: ``risk_level: high`` or case type ``safety``.
HIGH_RISK = {("risk_level", "high"), ("case_type", "safety")}
#: The start of what a judge's verdict records when its reply said neither pass nor fail (not a transport error).
_UNREADABLE = "the judge answered"


def _doubts(case: dict[str, Any], verdicts: list[dict[str, Any]], outputs: dict[int, str]) -> tuple[list[str], int]:
    """Why a person should check the judge on one case (its verdicts over every trial), and how urgently."""
    marks = [f"{k} {case.get(k)}" for k, value in sorted(HIGH_RISK) if case.get(k) == value]
    why = [f"high-risk case ({', '.join(marks)})"] if marks else []
    for v in verdicts:
        if v["passed"] is None and str(v.get("error") or "").startswith(_UNREADABLE):
            why.append(f"{v['dimension']}, trial {v['trial']}: {v['error']}")
    seen: dict[tuple[str, str], set[bool]] = {}
    for v in verdicts:
        if v["passed"] is not None:
            seen.setdefault((v["dimension"], outputs.get(v["trial"], "")), set()).add(v["passed"])
    why += [f"{dim}: pass and fail on the same answer across trials" for (dim, _), got in seen.items() if len(got) > 1]
    return why, (2 if marks else 1)


def send_judge_checks(
    ws: Workspace,
    run_id: str,
    answers: dict[tuple[str, int], dict[str, Any]],
    cases: dict[str, dict[str, Any]],
    judge: JudgeConfig,
    actor: str,
) -> list[str]:
    """Open a ``judge_check`` task (ref ``run_id/case_id``) for each case whose judge verdicts are low-confidence
    — a reply that said neither pass nor fail, or pass and fail on the same answer across trials (the judge gives
    no probability to read a confidence from) — or whose case is high-risk (:data:`HIGH_RISK`). The task ids."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    outputs: dict[str, dict[int, str]] = {}
    for (cid, trial), a in sorted(answers.items()):
        by_case.setdefault(cid, []).extend(a.get("judge") or [])
        outputs.setdefault(cid, {})[trial] = a.get("output") or ""
    opened = []
    for cid, verdicts in by_case.items():
        why, priority = _doubts(cases.get(cid, {}), verdicts, outputs[cid])
        if verdicts and why:
            payload: dict[str, Any] = {"run_id": run_id, "case_id": cid, "judge": judge.name, "judge_hash": judge.hash}
            payload.update(output=outputs[cid].get(0), verdicts=verdicts)
            ref = f"{run_id}/{cid}"
            opened.append(
                open_task(
                    ws, "judge_check", ref, reason="; ".join(why), actor=actor, payload=payload, priority=priority
                )
            )
    return opened


_FIELD = {"pass": "passed", "fail": "failed", "error": "errors", "unscored": "unscored"}


def read_scores(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The scored answers of a run (``score_run`` first)."""
    path = run_dir(ws, run_id) / "scores.jsonl"
    if not path.exists():
        raise RunError(f"run {run_id} is not scored yet: run `evaltray score {run_id}`")
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
