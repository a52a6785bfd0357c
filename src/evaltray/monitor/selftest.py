"""Seed 003's fast self-test before a tray is called golden: five questions, each answered from the workspace's
own data with the evidence and what to do when the answer is no. "Five yeses means you have a golden set. One no
means the next eval number it produces is partly fiction." An answer the data cannot give is ``unknown``, which
is not a yes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from evaltray.core.store import Workspace
from evaltray.tray.gate import do_not_use

from .health import Facts, HealthReport, gather, health
from .registered import list_corpora

__all__ = ["RECENT_DAYS", "Answer", "SelfTest", "selftest"]

RECENT_DAYS = 90
#: the six-tuple every row must name (seed 003): where each part lives in a case
SIX_TUPLE = {
    "provenance": ("provenance", "source"),
    "label": ("expected",),
    "slice": ("slice",),
    "freshness": ("freshness", "last_verified_at"),
    "owner": ("owner",),
    "version": ("version", "added"),
}


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str  # yes, no or unknown
    evidence: str
    todo: str = ""
    rows: tuple[str, ...] = ()


@dataclass
class SelfTest:
    answers: list[Answer]

    @property
    def golden(self) -> bool:
        return all(a.answer == "yes" for a in self.answers)


def _part(case: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = case
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _six_tuple(f: Facts) -> Answer:
    q = "Can every row name its provenance, label, slice, freshness, owner, and version?"
    missing = {c["id"]: [n for n, p in SIX_TUPLE.items() if not _part(c, p)] for c in f.cases}
    bad = sorted(cid for cid, parts in missing.items() if parts)
    if not f.cases:
        return Answer(q, "unknown", "the tray has no rows", "promote reviewed rows first")
    pending = sum(c["version"]["added"] == "pending" for c in f.cases)
    evidence = f"{len(f.cases) - len(bad)} of {len(f.cases)} rows carry all six; {pending} await their first release"
    todo = "fill the missing parts through `evaltray review` and promote again" if bad else ""
    return Answer(q, "no" if bad else "yes", evidence, todo, tuple(bad[:50]))


def _signoff(report: HealthReport) -> Answer:
    q = "Can the policy/domain owner sign off on every label without re-reading the policy doc?"
    parts = [report.signal(n) for n in ("guide-version", "owners", "spot-check")]
    evidence = "; ".join(f"{s.name}: {s.value}" for s in parts)
    if any(s.level in ("amber", "red") for s in parts):
        todos = [s.todo for s in parts if s.todo and s.level in ("amber", "red")]
        return Answer(q, "no", evidence, "; ".join(todos), tuple(r for s in parts for r in s.rows[:20]))
    if parts[2].level == "unknown":
        return Answer(q, "unknown", evidence, "spot-check a sample: `evaltray health --send`, then `evaltray tasks`")
    return Answer(q, "yes", evidence)


def _slice_mix(report: HealthReport) -> Answer:
    q = "Does the slice mix match production traffic within 10 percentage points per slice?"
    s = report.signal("slice-mix")
    answer = {"green": "yes", "amber": "no"}.get(s.level, "unknown")
    return Answer(
        q, answer, s.value, s.todo or ("score live traffic by slice" if answer == "unknown" else ""), tuple(s.rows)
    )


def _recent(f: Facts) -> Answer:
    q = f"Have rows been added or retired in the last {RECENT_DAYS} days, with logged reasons?"
    if f.last_change is None:
        return Answer(q, "no", "no row was ever added or retired", "run `evaltray refresh`")
    days = (f.today - f.last_change).days
    answer = "yes" if days <= RECENT_DAYS else "no"
    evidence = f"last row added or retired {days} days ago (every addition and retirement is in the audit log)"
    return Answer(q, answer, evidence, "" if answer == "yes" else "run `evaltray refresh`")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents or path in folder.parents


def _unreadable(ws: Workspace, f: Facts, set_name: str) -> Answer:
    q = "Is the tray stored in a file that the system prompt cannot read?"
    tray = ws.cases_path(set_name).resolve()
    prompts = [c for c in list_corpora(ws) if c.kind in ("prompt", "judge")]
    if not prompts:
        todo = "register the system prompt and judge files: `evaltray corpora add PROMPTS --kind prompt --do-not-use`"
        return Answer(q, "unknown", "no prompt or judge file registered to check against", todo)
    reach = [str(c.path) for c in prompts if _inside(tray, c.path.resolve())]
    copied = do_not_use(ws, f.cases)
    evidence = (
        f"{len(prompts)} prompt/judge path(s) registered; {len(reach)} of them hold the tray file; "
        f"{len(copied)} tray row(s) are examples in a prompt"
    )
    if reach or copied:
        todo = "move the tray out of the prompt's folder; retire the rows the prompt shows (`evaltray contamination`)"
        return Answer(q, "no", evidence, todo, tuple(reach + sorted(copied)[:50]))
    return Answer(q, "yes", evidence)


def selftest(ws: Workspace, set_name: str | None = None, today: datetime | None = None) -> SelfTest:
    """The five yeses of seed 003 for one set."""
    set_name = ws.check_set(set_name)
    facts = gather(ws, set_name, today)
    report = health(facts, set_name)
    return SelfTest(
        [_six_tuple(facts), _signoff(report), _slice_mix(report), _recent(facts), _unreadable(ws, facts, set_name)]
    )
