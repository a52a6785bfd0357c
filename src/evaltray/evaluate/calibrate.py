"""Judge calibration: a judge counts only once it agrees with people on the same outputs.

Human verdicts come from the workspace's reviews (the pass/fail a reviewer gave a recorded output, the
case's expected behaviour the reference both judge from), from closed ``judge_check`` tasks (the pass/fail a
person gave a run's or a live trace's output, keyed by the task's ref ``run_id/case_id`` or
``live_id/trace_id``), or from a file; judge verdicts from running the
judge on those same outputs, or from a file (JSONL of ``id``, ``verdict`` pass/fail/null, ``critique``), so
a judge that ran in another tool can be calibrated too. Refused below 100 human labels (seed 002) and
while the humans themselves agree less than 80% on outputs two of them reviewed (seed 001: fix the
labeling guide first). A judge below the workspace's agreement threshold (85%, seed 001) is stored as
uncalibrated; reports say so and use the calibration's TPR/TNR to correct a judge-based pass rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import Workspace
from evaltray.core.untrusted import json_lines
from evaltray.core.util import atomic_write, now_iso, sha256_hex
from evaltray.tray.candidates import list_candidates
from evaltray.tray.review import latest_review
from evaltray.tray.tasks import case_of, list_tasks

from .judge import JudgeConfig, judge_answers
from .run import RUN_ROLES, Limits
from .stats import Agreement, StatsError, agreement, rogan_gladen

__all__ = ["MIN_HUMAN_AGREEMENT", "MIN_LABELS", "Calibration", "CalibrationError", "calibrate", "find_calibration"]

#: Seed 002: at least 100 human labels before a judge is calibrated.
MIN_LABELS = 100
#: Seed 001: humans must agree with each other this often before a judge is measured against them.
MIN_HUMAN_AGREEMENT = 0.80
#: Pairs of humans on one output needed before their agreement is taken as measured.
MIN_HUMAN_PAIRS = 10
#: Seed 001: a judge counts from 85% agreement with people.
DEFAULT_THRESHOLD = 0.85


class CalibrationError(EvaltrayError):
    """A calibration that cannot be made: too few labels, humans who disagree, files that do not match."""


@dataclass
class Calibration:
    """A judge against people on the same outputs, and whether it may be trusted (``calibrated``)."""

    judge: str
    judge_hash: str
    n: int
    agreement: Agreement
    threshold: float
    calibrated: bool
    human_pairs: int
    human_agreement: float | None
    no_verdict: list[str] = field(default_factory=list)  # ids the judge gave no verdict on
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _verdict(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("pass", "true", "1", "yes"):
        return True
    if text in ("fail", "false", "0", "no"):
        return False
    raise CalibrationError(f"{where}: verdict {value!r} is neither pass nor fail")


def read_verdicts(path: Path) -> dict[str, tuple[bool | None, str | None]]:
    """``{id: (verdict, critique)}`` from a JSONL file; a line without an id or a readable verdict is an
    error naming the file and line."""
    out: dict[str, tuple[bool | None, str | None]] = {}
    for where, row in json_lines(path, CalibrationError):
        if not isinstance(row, dict) or row.get("id") is None:
            raise CalibrationError(f"{where}: a verdict line needs an id")
        out[str(row["id"])] = (_verdict(row.get("verdict"), where), row.get("critique"))
    return out


def _reviewed(ws: Workspace) -> tuple[dict[str, bool], list[tuple[dict[str, Any], int, str]]]:
    """Human verdicts on recorded outputs by candidate id, and the (case, trial, output) items to judge."""
    humans: dict[str, bool] = {}
    items = []
    for cand in list_candidates(ws):
        review = latest_review(ws, cand.id)
        if review is None or review.verdict not in ("pass", "fail") or not cand.recorded_output:
            continue
        humans[cand.id] = review.verdict == "pass"
        case = {"id": cand.id, "input": cand.input, "expected": review.expected, "rubric": review.rubric}
        items.append((case, 0, cand.recorded_output))
    return humans, items


Judged = dict[str, tuple[bool | None, str | None]]


def _payload_verdict(verdicts: list[dict[str, Any]], where: str) -> tuple[bool | None, str | None]:
    """The judge's verdict on a judge check's output (trial 0): pass when every dimension passed, None when any
    gave no verdict, else fail with the first failing critique."""
    said = [v for v in verdicts if v.get("trial", 0) == 0]
    got = [(v["passed"] if "passed" in v else _verdict(v.get("verdict"), where), v.get("critique")) for v in said]
    if not got or any(p is None for p, _ in got):
        return None, next((str(v.get("error")) for v in said if v.get("error")), None)
    return all(p for p, _ in got), next((c for p, c in got if not p), None)


def _checked(
    ws: Workspace, judge_hash: str | None
) -> tuple[dict[str, bool], list[tuple[dict[str, Any], int, str]], Judged]:
    """Human verdicts from closed ``judge_check`` tasks by ref (the latest task of a ref counts); the judge's
    own verdicts from the task when it is the judge calibrated (same hash), else the items to judge (a run's
    output with its golden case; a live trace of another judge has no case to judge it against: left out)."""
    humans: dict[str, bool] = {}
    items: list[tuple[dict[str, Any], int, str]] = []
    judged: Judged = {}
    tasks = sorted(list_tasks(ws, kind="judge_check", status="closed", outcome="done"), key=lambda t: int(t.id))
    latest = {t.ref: t for t in tasks if t.verdict in ("pass", "fail") and t.payload.get("output")}
    for ref, t in sorted(latest.items()):
        if judge_hash is not None and t.payload.get("judge_hash") == judge_hash:
            judged[ref] = _payload_verdict(t.payload.get("verdicts") or [], f"task {t.id}")
        elif judge_hash is not None:
            try:
                case = case_of(ws, str(t.payload.get("case_id")))
            except NotFound:
                continue
            items.append(({**case, "id": ref}, 0, str(t.payload["output"])))
        humans[ref] = t.verdict == "pass"
    return humans, items, judged


def _human_baseline(ws: Workspace) -> tuple[int, float | None]:
    """How often two different reviewers gave one output the same verdict (their first verdicts)."""
    reviews = ws.t["reviews"]
    first: dict[str, dict[str, str]] = {}
    with ws.tx() as conn:
        rows = conn.execute(
            sa.select(reviews.c.candidate_id, reviews.c.reviewer, reviews.c.verdict)
            .where(reviews.c.verdict.in_(["pass", "fail"]))
            .order_by(reviews.c.id)
        )
        for cid, reviewer, verdict in rows:
            first.setdefault(cid, {}).setdefault(reviewer, verdict)
    pairs = [list(v.values())[:2] for v in first.values() if len(v) >= 2]
    if not pairs:
        return 0, None
    return len(pairs), sum(a == b for a, b in pairs) / len(pairs)


def calibrate(
    ws: Workspace,
    judge: JudgeConfig | None = None,
    *,
    human_file: Path | None = None,
    judge_file: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    limits: Limits | None = None,
    actor: str | None = None,
) -> Calibration:
    """Measure a judge against human verdicts and store the result under ``.evaltray/judges/``."""
    actor = ws.authorize(actor, RUN_ROLES, "calibrating a judge")
    if judge is None and judge_file is None:
        raise CalibrationError("give a judge to run (--judge judge.yaml) or its verdicts (--judge-verdicts FILE)")
    if human_file is not None:
        humans = {k: v for k, (v, _) in read_verdicts(human_file).items() if v is not None}
        items: list[tuple[dict[str, Any], int, str]] = []
        known: Judged = {}
    else:
        humans, items = _reviewed(ws)
        checked, more, known = _checked(ws, None if judge is None or judge_file is not None else judge.hash)
        humans, items = humans | checked, items + more
    if len(humans) < MIN_LABELS:
        raise CalibrationError(f"calibration needs at least {MIN_LABELS} human verdicts; there are {len(humans)}")
    pairs, human_rate = _human_baseline(ws) if human_file is None else (0, None)
    if human_rate is not None and pairs >= MIN_HUMAN_PAIRS and human_rate < MIN_HUMAN_AGREEMENT:
        raise CalibrationError(
            f"reviewers agree on {human_rate:.0%} of the {pairs} outputs two of them reviewed (below "
            f"{MIN_HUMAN_AGREEMENT:.0%}): fix the labeling guide before measuring a judge against them"
        )
    judged = known | _judge_verdicts(judge, judge_file, items, limits) if items or judge_file or not known else known
    return _measure(ws, actor, judge, judge_file, humans, judged, threshold, (pairs, human_rate))


def _judge_verdicts(
    judge: JudgeConfig | None,
    judge_file: Path | None,
    items: list[tuple[dict[str, Any], int, str]],
    limits: Limits | None,
) -> dict[str, tuple[bool | None, str | None]]:
    if judge_file is not None:
        return read_verdicts(judge_file)
    if not items:
        raise CalibrationError(
            "a judge run needs the outputs: calibrate against the workspace's reviews, or give --judge-verdicts"
        )
    assert judge is not None
    out: dict[str, tuple[bool | None, str | None]] = {}
    for v in judge_answers(judge, items, limits):
        passed, critique = out.get(v.case_id, (True, None))
        if v.passed is None or passed is None:
            out[v.case_id] = (None, v.error)
        else:
            out[v.case_id] = (passed and v.passed, critique or (None if v.passed else v.critique))
    return out


def _measure(
    ws: Workspace,
    actor: str,
    judge: JudgeConfig | None,
    judge_file: Path | None,
    humans: dict[str, bool],
    judged: dict[str, tuple[bool | None, str | None]],
    threshold: float,
    baseline: tuple[int, float | None],
) -> Calibration:
    ids = sorted(set(humans) & set(judged))
    no_verdict = [i for i in ids if judged[i][0] is None]
    both = [i for i in ids if judged[i][0] is not None]
    if len(both) < MIN_LABELS:
        raise CalibrationError(
            f"only {len(both)} outputs have both a human and a judge verdict; {MIN_LABELS} are needed"
        )
    result = agreement([humans[i] for i in both], [bool(judged[i][0]) for i in both])
    name = judge.name if judge is not None else f"file:{judge_file.name if judge_file else '?'}"
    j_hash = judge.hash if judge is not None else sha256_hex(judge_file.read_bytes()) if judge_file else ""
    cal = Calibration(
        judge=name,
        judge_hash=j_hash,
        n=len(both),
        agreement=result,
        threshold=threshold,
        calibrated=result.agreement.estimate >= threshold,
        human_pairs=baseline[0],
        human_agreement=baseline[1],
        no_verdict=no_verdict,
        disagreements=[
            {
                "id": i,
                "human": "pass" if humans[i] else "fail",
                "judge": "pass" if judged[i][0] else "fail",
                "critique": judged[i][1],
            }
            for i in both
            if humans[i] != judged[i][0]
        ],
        created_at=now_iso(),
    )
    atomic_write(
        ws.state_dir / "judges" / f"{j_hash[:32]}.json", orjson.dumps(cal.to_dict(), option=orjson.OPT_INDENT_2)
    )
    ws.record(actor, "judge.calibrate", name, judge_hash=j_hash, n=cal.n, agreement=result.agreement.estimate)
    return cal


def corrected_rate(calibration: dict[str, Any], passed: int, n: int) -> dict[str, Any] | None:
    """A judge's pass rate of ``passed`` in ``n`` corrected for its TPR/TNR (Rogan–Gladen) from a stored
    calibration: ``pass_rate``, ``low``, ``high``; ``error`` when the correction is undefined; None for n = 0."""
    if n == 0:
        return None
    agree = calibration["agreement"]
    conf = agree["confusion"]
    try:
        ci = rogan_gladen(
            passed,
            n,
            tpr=agree["tpr"]["estimate"],
            tnr=agree["tnr"]["estimate"],
            n_pos=conf["human_pass_judge_pass"] + conf["human_pass_judge_fail"],
            n_neg=conf["human_fail_judge_pass"] + conf["human_fail_judge_fail"],
        )
    except StatsError as exc:
        return {"error": str(exc)}
    return {"pass_rate": ci.estimate, "low": ci.low, "high": ci.high}


def find_calibration(ws: Workspace, judge_hash: str) -> dict[str, Any] | None:
    """The stored calibration of the judge with ``judge_hash``, if it was calibrated in this workspace."""
    path = ws.state_dir / "judges" / f"{judge_hash[:32]}.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None
