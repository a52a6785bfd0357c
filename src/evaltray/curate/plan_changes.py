"""Changes to the coverage plan's slice mix and targets wait for the composition owner (seed 003 gives the tray
two owners: labels and composition). Anybody who works on the data proposes a new ``plan.yaml``; the change
stays pending, shown as a diff (per slice: ``target_share`` before → after, the slice's share of the tray now and
of production traffic), until a composition owner or an admin approves it, which writes the file, or rejects it,
each with a reason; every step is audited (``plan.propose``, ``plan.approve``, ``plan.reject``).

A change is made against the plan as it was (its sha256 is kept): when ``plan.yaml`` changed since, approving is
refused, so an approval never silently undoes an edit the approver did not see.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.records import Role
from evaltray.core.store import Workspace, inserted_id
from evaltray.core.util import atomic_write, now_iso, sha256_hex
from evaltray.tray.casefile import load_cases

from .plan import Plan, plan_path

__all__ = [
    "APPROVE_ROLES",
    "PROPOSE_ROLES",
    "PlanChange",
    "PlanChangeError",
    "PlanDiff",
    "SliceRow",
    "StalePlan",
    "decide",
    "get_change",
    "list_changes",
    "plan_diff",
    "propose",
]

#: Who approves or rejects a change of the slice mix (seed 003's composition owner; an admin stands in).
APPROVE_ROLES = frozenset({Role.COMPOSITION_OWNER, Role.ADMIN})
#: Who may propose one: anybody who works on the data.
PROPOSE_ROLES = frozenset(Role) - {Role.VIEWER}
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class PlanChangeError(EvaltrayError):
    """A plan change that cannot be proposed or decided as asked."""


class StalePlan(PlanChangeError):
    """``plan.yaml`` changed since the change was proposed: approving it would undo what changed meanwhile."""


@dataclass(frozen=True)
class PlanChange:
    """One proposed ``plan.yaml`` and what became of it."""

    id: int
    proposed_by: str
    created_at: str
    reason: str
    base_sha: str
    plan_text: str
    status: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None


@dataclass(frozen=True)
class SliceRow:
    """One slice in a change's diff: its target share before and after, its share of the tray and of traffic."""

    slice: str
    before: float | None
    after: float | None
    tray: float | None
    production: float | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class PlanDiff:
    """What a change changes: per slice, and every other part of the plan that differs (before, after)."""

    change_id: int
    slices: list[SliceRow]
    other: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    stale: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "stale": self.stale,
            "slices": [{**r.__dict__, "changed": r.changed} for r in self.slices],
            "other": {k: {"before": b, "after": a} for k, (b, a) in self.other.items()},
        }


def _current_text(ws: Workspace) -> str:
    path = plan_path(ws)
    return path.read_text(encoding="utf-8") if path.exists() else ""


def propose(ws: Workspace, actor: str, text: str, reason: str) -> PlanChange:
    """Propose ``text`` as the new ``plan.yaml``: checked as a plan, kept pending with ``reason`` and the sha256
    of the plan it changes. Nothing is written to ``plan.yaml``."""
    ws.require(actor, PROPOSE_ROLES, "proposing a plan change")
    if not reason.strip():
        raise PlanChangeError("a plan change needs a reason: why the slice mix or targets should change")
    text = text.replace("\r\n", "\n")
    Plan.loads(text, "the proposed plan")
    current = _current_text(ws)
    if text.strip() == current.strip():
        raise PlanChangeError("the proposed plan is the plan as it is: nothing to change")
    values = {
        "proposed_by": actor,
        "reason": reason.strip(),
        "base_sha": sha256_hex(current),
        "plan_text": text,
        "status": PENDING,
        "created_at": now_iso(),
    }
    with ws.tx() as conn:
        change_id = inserted_id(conn, ws.t["plan_changes"].insert().values(**values))
        ws.audit(conn, actor, "plan.propose", str(change_id), reason=values["reason"], base_sha=values["base_sha"])
    return get_change(ws, change_id)


def get_change(ws: Workspace, change_id: int | str) -> PlanChange:
    try:
        key = int(str(change_id).removeprefix("#"))
    except ValueError:
        raise NotFound(f"{change_id!r} is not a plan change id (a number, as `evaltray plan changes` lists)") from None
    changes = ws.t["plan_changes"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(changes).where(changes.c.id == key)).first()
    if row is None:
        raise NotFound(f"no plan change {key}")
    return PlanChange(**row._mapping)


def list_changes(ws: Workspace, status: str | None = None) -> list[PlanChange]:
    """Plan changes, newest first (only those with ``status`` when given)."""
    changes = ws.t["plan_changes"]
    q = sa.select(changes).order_by(changes.c.id.desc())
    if status:
        q = q.where(changes.c.status == status)
    with ws.tx() as conn:
        return [PlanChange(**r._mapping) for r in conn.execute(q)]


def _shares(counts: Counter[str] | dict[str, int] | None) -> dict[str, float]:
    total = sum((counts or {}).values())
    return {k: round(v / total, 4) for k, v in (counts or {}).items()} if total else {}


def plan_diff(
    ws: Workspace, change: PlanChange, traffic: dict[str, int] | None = None, set_name: str | None = None
) -> PlanDiff:
    """``change`` against the plan as it is now: each slice either plan names or the tray holds, with its
    ``target_share`` before and after, its share of the tray (``set_name``, default set) and of ``traffic``
    (live conversations per slice, as ``score-live`` counts them; None: not known)."""
    path = plan_path(ws)
    before = Plan.load(path).to_dict() if path.exists() else {}
    after = Plan.loads(change.plan_text, f"plan change {change.id}").to_dict()
    tray = _shares(Counter(str(c.get("slice")) for c in load_cases(ws, ws.check_set(set_name)).values()))
    live = _shares(traffic)
    old, new = before.get("slices") or {}, after.get("slices") or {}
    rows = [
        SliceRow(
            name,
            (old.get(name) or {}).get("target_share"),
            (new.get(name) or {}).get("target_share"),
            tray.get(name),
            live.get(name) if traffic is not None else None,
        )
        for name in sorted(set(old) | set(new) | set(tray))
    ]
    other = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if k != "slices"}
    for name in sorted(set(old) | set(new)):
        rest = [{k: v for k, v in (d.get(name) or {}).items() if k != "target_share"} for d in (old, new)]
        other[f"slices.{name}"] = (rest[0] or None, rest[1] or None)
    changed = {k: v for k, v in other.items() if v[0] != v[1]}
    stale = change.status == PENDING and sha256_hex(_current_text(ws)) != change.base_sha
    return PlanDiff(change.id, rows, changed, stale)


def decide(ws: Workspace, actor: str, change_id: int | str, approve: bool, reason: str) -> PlanChange:
    """Approve (``plan.yaml`` becomes the proposed text) or reject a pending change, with ``reason``; a
    composition owner's or admin's act, audited. Approving a change made against an older plan is refused."""
    ws.require(actor, APPROVE_ROLES, "approving or rejecting a plan change")
    change = get_change(ws, change_id)
    if not reason.strip():
        raise PlanChangeError(f"plan change {change.id}: say why you {'approve' if approve else 'reject'} it")
    if change.status != PENDING:
        raise PlanChangeError(f"plan change {change.id} was already {change.status} by {change.decided_by}")
    with ws.lock("plan", wait=10.0):  # two approvals of changes made from the same plan take turns
        return _decide(ws, actor, change, approve, reason.strip())


def _decide(ws: Workspace, actor: str, change: PlanChange, approve: bool, reason: str) -> PlanChange:
    if approve and sha256_hex(_current_text(ws)) != change.base_sha:
        raise StalePlan(
            f"plan change {change.id}: plan.yaml changed since {change.proposed_by} proposed it; reject it and "
            "propose the change again from the plan as it is now"
        )
    if approve:
        Plan.loads(change.plan_text, f"plan change {change.id}")  # still a plan this version loads
    changes = ws.t["plan_changes"]
    status = APPROVED if approve else REJECTED
    with ws.tx() as conn:
        done = conn.execute(
            changes.update()
            .where(changes.c.id == change.id, changes.c.status == PENDING)
            .values(status=status, decided_by=actor, decided_at=now_iso(), decision_reason=reason)
        ).rowcount
        if not done:
            raise PlanChangeError(f"plan change {change.id} was decided meanwhile")
        ws.audit(conn, actor, f"plan.{'approve' if approve else 'reject'}", str(change.id), reason=reason)
        if approve:  # inside the transaction: a file that cannot be written leaves the change pending
            atomic_write(plan_path(ws), change.plan_text.encode("utf-8"))
    return get_change(ws, change.id)
