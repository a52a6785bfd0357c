"""The adjudicator's second looks at labels: overlap, gold control items, spot-checks, re-validation on a guide
change, and the raw verdicts the agreement report (:mod:`.agreement`) counts.

- **Overlap**: a share of candidates (``[labeling] overlap``, chosen by a hash of the candidate id) gets a second,
  blind label once the first is in (an ``overlap`` task, never for the first labeler); when the two verdicts
  differ an ``adjudicate`` task asks the adjudicator, whose decision (verdict and reason) is the label.
- **Control items**: golden rows whose verdict is known are mixed into a labeler's queue (``control`` tasks, one
  every ``1 / control_rate`` tasks): the labeler's pass/fail against the row's verdict measures them.
- **Spot-checks**: the adjudicator re-labels a random sample of golden rows blind (``spotcheck`` tasks); the share
  where they disagree with the row's verdict is seed 003's SME spot-check rate (under 5%).
- **Re-validation**: a guide version that changes some behaviour codes or slices sends those rows back to the
  queue as ``revalidate`` tasks.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import LABEL_ROLES, SIGN_ROLES, Role
from evaltray.core.store import Workspace

from .casefile import load_cases
from .review import get_review
from .tasks import (
    CLOSED,
    OPEN_ROLES,
    TASK_KINDS,
    Task,
    case_of,
    disputed_reviews,
    list_tasks,
    next_task,
    open_task,
    reassign_task,
    resolve_task,
)

__all__ = [
    "LabelPair",
    "Judged",
    "adjudications",
    "Handover",
    "control_results",
    "deactivate_user",
    "blind_row",
    "golden_rows",
    "mix_control",
    "next_for",
    "open_spotchecks",
    "overlap_pairs",
    "revalidate_affected",
    "shown_for",
    "spotcheck_results",
]

#: The kinds of task that are a real label of a candidate (what a control item is mixed in among).
LABELING = ("label", "overlap")


@dataclass(frozen=True)
class LabelPair:
    """Two labelers' verdicts on one candidate (overlap), and the adjudicator's decision where they differed."""

    candidate_id: str
    first: str  # the first labeler
    second: str
    first_verdict: str
    second_verdict: str
    at: str  # when the second label was closed
    adjudicator: str | None = None
    decision: str | None = None


@dataclass(frozen=True)
class Judged:
    """One person's pass/fail on a golden row against the verdict the row holds (a control item, a spot-check)."""

    case_id: str
    who: str
    verdict: str
    known: str
    at: str
    #: who labeled the row (``provenance.labeled_by``): whom a spot-check measures
    labeled_by: str | None = None

    @property
    def agrees(self) -> bool:
        return self.verdict == self.known


def golden_rows(ws: Workspace, set_name: str | None = None) -> dict[str, dict[str, Any]]:
    """Every active golden row with a pass/fail verdict on its recorded output, by id: of every set, or of one."""
    rows: dict[str, dict[str, Any]] = {}
    for name in [ws.check_set(set_name)] if set_name else ws.settings.sets:
        for cid, case in load_cases(ws, name).items():
            if (case.get("review") or {}).get("verdict") in ("pass", "fail"):
                rows[cid] = case
    return rows


# ----------------------------------------------------------------------------- opening tasks


def _rank(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode("utf-8")).hexdigest()


def mix_control(ws: Workspace, user: str) -> str | None:
    """Mix a control item into ``user``'s queue when it is due (after ``1 / control_rate - 1`` labels since their
    last one), assigned to them; its task id, or None when none is due or no golden row is left to show them."""
    rate = ws.settings.control_rate
    if rate <= 0 or ws.role_of(user) not in LABEL_ROLES:
        return None
    shown = _controls_due(ws, user, max(1, round(1 / rate)) - 1)
    if shown is None:
        return None
    rows = golden_rows(ws)
    left = sorted(
        (cid for cid, c in rows.items() if cid not in shown and c["provenance"].get("labeled_by") != user),
        key=lambda cid: _rank(user, cid),
    )
    if not left:
        return None
    return open_task(ws, "control", f"{left[0]}/{user}", reason="review queue", actor=user, assignee=user)


def _controls_due(ws: Workspace, user: str, every: int) -> set[str] | None:
    """The cases ``user`` was shown as control items, when another is due: none of theirs is open and
    ``every`` labeling tasks of theirs closed since their last one; else None. Counted in the database, so a
    reviewer with thousands of labels costs no more than a new one."""
    tasks = ws.t["tasks"]
    mine = tasks.c.assignee == user
    with ws.tx() as conn:
        q = sa.select(tasks.c.id, tasks.c.status, tasks.c.ref).where(mine, tasks.c.kind == "control")
        controls = list(conn.execute(q))
        if any(c.status != CLOSED for c in controls):
            return None
        last = max((c.id for c in controls), default=0)
        since = sa.select(sa.func.count()).where(
            mine, tasks.c.kind.in_(LABELING), tasks.c.status == CLOSED, tasks.c.id > last
        )
        if conn.execute(since).scalar_one() < every:
            return None
    return {c.ref.rpartition("/")[0] for c in controls}


def open_spotchecks(
    ws: Workspace, actor: str, sample: int, *, set_name: str | None = None, seed: int | None = None
) -> list[str]:
    """Open a ``spotcheck`` task on each of ``sample`` golden rows drawn at random (``seed`` fixes the draw),
    leaving out rows with a spot-check open; the task ids."""
    ws.require(actor, SIGN_ROLES, "opening spot-checks")
    if sample < 1:
        raise EvaltrayError(f"a spot-check samples 1 row or more, got {sample}")
    rows = golden_rows(ws, set_name)
    open_now = {t.ref for t in list_tasks(ws, kind="spotcheck", status="open")}
    pool = sorted(cid for cid in rows if cid not in open_now)
    drawn = random.Random(seed).sample(pool, min(sample, len(pool)))
    why = f"spot-check: {len(drawn)} golden rows drawn at random, re-labeled blind"
    return [open_task(ws, "spotcheck", cid, reason=why, actor=actor) for cid in sorted(drawn)]


def revalidate_affected(
    ws: Workspace,
    actor: str,
    version: str,
    *,
    codes: Iterable[str] = (),
    slices: Iterable[str] = (),
    dry_run: bool = False,
) -> list[str]:
    """Send the golden rows a new guide ``version`` affects (those whose behaviour code is in ``codes`` or whose
    slice is in ``slices``) back to the queue as ``revalidate`` tasks; the case ids."""
    ws.require(actor, OPEN_ROLES, "sending rows back for re-validation")
    codes, slices = {c.strip() for c in codes if c.strip()}, {s.strip() for s in slices if s.strip()}
    if not codes and not slices:
        raise EvaltrayError(f"guide v{version}: name the behaviour codes or slices it changes")
    hit = []
    for set_name in ws.settings.sets:
        for cid, case in load_cases(ws, set_name).items():
            if (case.get("expected") or {}).get("behavior_code") in codes or case.get("slice") in slices:
                hit.append(cid)
    named = ", ".join(sorted(codes | slices))
    if not dry_run:
        for cid in hit:
            open_task(ws, "revalidate", cid, reason=f"guide v{version} changes {named}", actor=actor)
    return sorted(hit)


@dataclass
class Handover:
    """What deactivating a user handed to their heir: the tasks they held, the golden rows they owned (sent
    back as ``revalidate`` tasks for the heir to re-sign), and the owner settings that still name them."""

    user: str
    heir: str
    tasks: list[str]
    rows: list[str]
    settings: list[str]
    removed: bool


def deactivate_user(ws: Workspace, actor: str, name: str, heir: str, *, dry_run: bool = False) -> Handover:
    """Take ``name`` off the workspace, handing their unfinished tasks and their golden rows to ``heir``: the rows
    come back as ``revalidate`` tasks assigned to the heir (seed 003: the trust chain is broken until somebody
    re-signs); control items mixed in for them are closed. ``[owners]`` settings that name them are listed (the
    workspace's ``evaltray.toml`` is edited by hand)."""
    ws.require(actor, frozenset({Role.ADMIN}), "deactivating a user")
    ws.role_of(name)
    if heir == name:
        raise EvaltrayError(f"user {name!r} cannot inherit their own rows; name another user as heir")
    heir_role = ws.role_of(heir)
    rows = sorted(cid for s in ws.settings.sets for cid, c in load_cases(ws, s).items() if c.get("owner") == name)
    if rows and heir_role not in SIGN_ROLES:
        raise EvaltrayError(
            f"user {name!r} owns {len(rows)} golden row(s), which their heir re-signs; {heir!r} is a "
            f"{heir_role.value}, name an adjudicator or admin"
        )
    held = [t for t in list_tasks(ws, assignee=name, status="open")]
    owners = [f"[owners] {k}" for k in ("label", "composition") if getattr(ws.settings, f"{k}_owner") == name]
    if not dry_run:
        for t in held:
            if t.kind == "control":
                resolve_task(ws, t.id, actor, "reject", reason=f"{name} was deactivated")
            else:
                reassign_task(ws, t.id, actor, heir if heir_role in TASK_KINDS.get(t.kind).roles else None)
        why = f"owner {name} deactivated; {heir} inherits the row"
        for cid in rows:
            tid = open_task(ws, "revalidate", cid, reason=why, actor=actor)
            reassign_task(ws, tid, actor, heir)
        ws.remove_user(name, actor)
    return Handover(name, heir, [t.id for t in held], rows, owners, not dry_run)


# ----------------------------------------------------------------------------- what the report counts


def overlap_pairs(ws: Workspace) -> list[LabelPair]:
    """Every candidate labeled twice through overlap (both verdicts given), with the decision where one was made."""
    decided = {t.ref: t for t in list_tasks(ws, kind="adjudicate", status="closed") if t.outcome == "done"}
    pairs = []
    for task in list_tasks(ws, kind="overlap", status="closed"):
        if task.outcome != "done" or "second_review" not in task.payload:
            continue
        first = get_review(ws, int(task.payload["review_before"]))
        second = get_review(ws, int(task.payload["second_review"]))
        if first.verdict is None or second.verdict is None:
            continue
        ruling = decided.get(task.ref)
        pairs.append(
            LabelPair(
                task.ref,
                first.reviewer,
                second.reviewer,
                first.verdict,
                second.verdict,
                str(task.closed_at),
                ruling.closed_by if ruling else None,
                ruling.verdict if ruling else None,
            )
        )
    return sorted(pairs, key=lambda p: (p.at, p.candidate_id))


def adjudications(ws: Workspace) -> list[Task]:
    """The adjudicator's decisions (closed ``adjudicate`` tasks: verdict, reason, who, when), oldest first."""
    done = [t for t in list_tasks(ws, kind="adjudicate", status="closed") if t.outcome == "done"]
    return sorted(done, key=lambda t: int(t.id))


def _judged(ws: Workspace, kind: str) -> list[Judged]:
    rows = golden_rows(ws)
    out = []
    for task in list_tasks(ws, kind=kind, status="closed"):
        case_id = task.ref.rpartition("/")[0] if kind == "control" else task.ref
        case = rows.get(case_id)
        if task.outcome != "done" or task.verdict is None or case is None:
            continue  # a row retired since has no verdict to hold the answer against
        known = case["review"]["verdict"]
        who = str(task.closed_by)
        out.append(Judged(case_id, who, task.verdict, known, str(task.closed_at), case["provenance"].get("labeled_by")))
    return sorted(out, key=lambda j: (j.at, j.case_id))


def control_results(ws: Workspace) -> list[Judged]:
    """Each control item answered: the labeler's verdict against the golden row's."""
    return _judged(ws, "control")


def spotcheck_results(ws: Workspace) -> list[Judged]:
    """Each spot-check made: the adjudicator's blind verdict against the golden row's."""
    return _judged(ws, "spotcheck")


# ----------------------------------------------------------------------------- what a person is shown


def next_for(ws: Workspace, user: str, kinds: Iterable[str] | None = None) -> Task | None:
    """``user``'s next task, a control item mixed in first when one is due (see :func:`mix_control`)."""
    if kinds is None or "control" in kinds:
        mix_control(ws, user)
    return next_task(ws, user, kinds=kinds)


def blind_row(ws: Workspace, case_id: str) -> dict[str, Any]:
    """What a control item or a spot-check shows of golden row ``case_id``: its input, the recorded output and its
    slice, never its label or verdict (the answer is to be given blind)."""
    case = case_of(ws, case_id)
    return {
        "case_id": case_id,
        "messages": list((case.get("input") or {}).get("messages") or []),
        "output": (case.get("review") or {}).get("recorded_output"),
        "slice": case.get("slice"),
    }


def shown_for(ws: Workspace, task: Task) -> dict[str, Any]:
    """What the person closing ``task`` reads besides the task itself: the two labels an ``adjudicate`` task
    weighs, the row a ``control`` or ``spotcheck`` task asks about; nothing for other kinds."""
    if task.kind == "adjudicate":
        labels = [
            {
                "reviewer": r.reviewer,
                "verdict": r.verdict,
                "expected": r.expected,
                "critique": r.critique,
                "failure_tags": r.failure_tags,
                "at": r.created_at,
            }
            for r in disputed_reviews(ws, task)
        ]
        return {"labels": labels}
    if task.kind in ("control", "spotcheck"):
        return blind_row(ws, task.ref.rpartition("/")[0] if task.kind == "control" else task.ref)
    return {}
