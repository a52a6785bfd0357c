"""The review queue: one queue of typed tasks a person takes, one at a time, and closes with an outcome.

A task is of a registered kind (:data:`TASK_KINDS`): ``label`` a candidate, ``revalidate`` a golden row,
``judge_check`` a judge verdict sent for a person's look, ``failing_case`` a failing answer of a run. It names
what it is about in ``ref`` (a candidate id, a case id, ``run_id/case_id``); while it is open there is one task
per (kind, ref), so opening it again returns the same id. :func:`next_task` hands a person the next task their
role may take (their own unfinished one first, then escalated ones to those who sign, then by priority and
age); :func:`resolve_task` closes it: ``done``, ``reject`` with a reason, ``escalate`` to the adjudicator (the
task stays open for them) or ``bug`` ("this is a bug — fix it, don't build a judge", collected by
:func:`bug_list`); :func:`release_task` hands a task taken back unfinished. :func:`open_label_tasks` puts the
candidate pool's unreviewed candidates in the queue. The time spent is summed per task. Every action is audited.

The adjudicator's second looks are kinds too (:mod:`.oversight`): ``overlap`` (a second, blind label of a
hashed share of candidates, opened when the first label task closes, never for the first labeler),
``adjudicate`` (the two verdicts differ: the adjudicator's decision, with a reason, becomes the label),
``control`` (a known-answer golden row mixed into one labeler's queue) and ``spotcheck`` (the adjudicator
re-labels a sampled golden row blind).

A golden row with an open ``revalidate`` task counts as a candidate, not an asset, until somebody re-signs it
(seed 003): :func:`awaiting_revalidation` lists those rows, and only ``done`` by a role that signs closes the
task, by recording a new signed review of the row (its current label, or a new one) that ``promote`` applies;
``reject`` retires the row with the reason.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound, PermissionDenied
from evaltray.core.records import LABEL_ROLES, REJECT_REASONS, SIGN_ROLES, Role
from evaltray.core.registry import Registry
from evaltray.core.store import Workspace, inserted_id
from evaltray.core.util import atomic_write, dumps, loads, now_iso

from . import candidates as pool
from .gate import retire
from .lifecycle import get_case, relabel_case
from .review import Review, get_review, latest_review, normalize_expected, queue, record_review, unreviewed

__all__ = [
    "OUTCOMES",
    "TASK_KINDS",
    "Task",
    "Closing",
    "Resolution",
    "TaskClosedMeanwhile",
    "TaskError",
    "TaskKind",
    "awaiting_revalidation",
    "bug_list",
    "case_of",
    "disputed_reviews",
    "export_bugs",
    "close_prepared",
    "get_task",
    "hold_task",
    "in_overlap",
    "list_tasks",
    "next_task",
    "OwnLabel",
    "open_label_tasks",
    "open_new_label_tasks",
    "open_tasks_about",
    "reassign_task",
    "open_task",
    "prepare_close",
    "release_task",
    "resolve_task",
]

OPEN, ESCALATED, CLOSED = "open", "escalated", "closed"
STATUSES = (OPEN, ESCALATED, CLOSED)
OUTCOMES = ("done", "reject", "escalate", "bug")
MAX_REF = 300  # the column's width
#: Who may open a task: anybody who works on the data (a viewer only reads).
OPEN_ROLES = frozenset(Role) - {Role.VIEWER}


class TaskError(EvaltrayError):
    """A task that does not exist, or an action on it that its kind, status or the actor's role forbids."""


class TaskClosedMeanwhile(TaskError):
    """Another request closed the task first (two reviewers' queue walks, or a review and a walk, racing)."""


class OwnLabel(PermissionDenied):
    """An adjudicator asked to decide a disagreement in which one of the two labels is their own."""


@dataclass(frozen=True)
class TaskKind:
    """One kind of task: what its ``ref`` names and which roles may take and close it."""

    name: str
    ref: str  # what ref names, in words
    roles: frozenset[Role]
    what: str  # the task, said to the person who takes it


TASK_KINDS: Registry[TaskKind] = Registry("task kind", error=TaskError)
for _kind in (
    TaskKind("label", "a candidate id", LABEL_ROLES, "write the expected behaviour and judge the recorded output"),
    TaskKind("revalidate", "a case id", SIGN_ROLES, "re-validate a golden row and re-sign it (or reject it)"),
    TaskKind("judge_check", "run_id/case_id", LABEL_ROLES, "check a judge verdict sent for a person's look"),
    TaskKind("failing_case", "run_id/case_id", LABEL_ROLES, "look at a failing case of a run"),
    TaskKind("overlap", "a candidate id", LABEL_ROLES, "label a candidate a second time, blind to the first label"),
    TaskKind("adjudicate", "a candidate id", SIGN_ROLES, "decide between two labels that disagree; final"),
    TaskKind("control", "case_id/labeler", LABEL_ROLES, "judge the recorded output: pass or fail"),
    TaskKind("spotcheck", "a case id", SIGN_ROLES, "re-label a golden row, blind to its label: pass or fail"),
):
    TASK_KINDS.add(_kind.name, _kind)


@dataclass
class Task:
    """A row of the queue, its JSON columns decoded."""

    id: str
    kind: str
    ref: str
    status: str
    reason: str
    priority: int
    opened_by: str
    created_at: str
    payload: dict[str, Any] = field(default_factory=dict)
    assignee: str | None = None
    assigned_at: str | None = None
    seconds: float = 0.0
    outcome: str | None = None
    outcome_reason: str | None = None
    verdict: str | None = None
    critique: str | None = None
    tags: list[str] = field(default_factory=list)
    escalated_by: str | None = None
    closed_by: str | None = None
    closed_at: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Task:
        m = dict(row._mapping)
        m.pop("open_key", None)
        m["id"] = str(m["id"])
        m["payload"], m["tags"] = loads(m["payload"]), loads(m["tags"])
        return cls(**m)


def _int_id(task_id: str) -> int:
    try:
        return int(str(task_id).removeprefix("task-"))
    except ValueError:
        raise TaskError(f"{task_id!r} is not a task id (a number, as `evaltray tasks list` shows)") from None


def open_task(
    ws: Workspace,
    kind: str,
    ref: str,
    *,
    reason: str,
    actor: str,
    payload: dict[str, Any] | None = None,
    priority: int = 0,
    assignee: str | None = None,
    unreviewed: bool = False,
) -> str:
    """Open a ``kind`` task about ``ref`` and return its id; while one is open for (kind, ref), its id (a higher
    ``priority`` raises it, the payload merges in). ``assignee`` hands a new task to that person at once.
    ``unreviewed``: open it only while candidate ``ref`` has no review, checked in the transaction that opens
    it (a list of the pool read a moment ago may name a candidate labelled since); "" when it has one."""
    TASK_KINDS.get(kind)
    ref = str(ref).strip()
    if not ref:
        raise TaskError(f"a {kind} task needs a ref ({TASK_KINDS.get(kind).ref})")
    if not reason.strip():
        raise TaskError(f"a {kind} task about {ref} needs a reason")
    if len(ref) > MAX_REF:
        raise TaskError(f"a task's ref is at most {MAX_REF} characters; {ref[:40]}… is {len(ref)}")
    ws.require(actor, OPEN_ROLES, "opening a review task")
    opening = (kind, ref, reason.strip(), actor, payload or {}, priority, assignee, unreviewed)
    try:
        return _open_once(ws, opening)
    except sa.exc.IntegrityError:  # opened by another writer since we looked: that task is the one
        return _open_once(ws, opening)


def _open_once(ws: Workspace, opening: tuple[Any, ...]) -> str:
    """:func:`_open_in` with ``opening`` (its arguments after the connection) in a transaction of its own."""
    with ws.tx() as conn:
        return _open_in(ws, conn, *opening)


def _open_in(
    ws: Workspace,
    conn: sa.Connection,
    kind: str,
    ref: str,
    reason: str,
    actor: str,
    payload: dict[str, Any],
    priority: int,
    assignee: str | None,
    unreviewed: bool,
) -> str:
    """:func:`open_task`'s work inside the caller's transaction ``conn`` (checked arguments)."""
    tasks, reviews = ws.t["tasks"], ws.t["reviews"]
    key, last = f"{kind}:{ref}", None
    if kind == "label" or unreviewed:  # the latest review: a label task's baseline, and the unreviewed check
        last = conn.execute(sa.select(sa.func.max(reviews.c.id)).where(reviews.c.candidate_id == ref)).scalar()
        if unreviewed and last is not None:
            return ""
    old = conn.execute(sa.select(tasks).where(tasks.c.open_key == key)).first()
    if old is not None:
        merged = {**loads(old.payload), **payload}
        if priority > old.priority or merged != loads(old.payload):
            conn.execute(
                tasks.update()
                .where(tasks.c.id == old.id)
                .values(priority=max(old.priority, priority), payload=dumps(merged))
            )
        return str(old.id)
    return _insert_task(ws, conn, (kind, ref, reason, actor, payload, priority, assignee), last)


def _insert_task(ws: Workspace, conn: sa.Connection, opening: tuple[Any, ...], last: int | None) -> str:
    """Write the task ``opening`` names (as :func:`_open_in`'s arguments, checked) and its audit entry; ``last``
    is the candidate's latest review id, a label task's baseline."""
    kind, ref, reason, actor, payload, priority, assignee = opening
    values = dict(kind=kind, ref=ref, open_key=f"{kind}:{ref}", status=OPEN, reason=reason, priority=priority)
    if assignee is not None:
        values.update(assignee=assignee, assigned_at=now_iso())
    # a review after the baseline is what closes a label task
    payload = {**payload, **({"review_before": last} if kind == "label" else {})}
    tid = inserted_id(
        conn, ws.t["tasks"].insert().values(**values, payload=dumps(payload), opened_by=actor, created_at=now_iso())
    )
    ws.audit(conn, actor, "task.open", ref, task_id=tid, kind=kind, reason=reason)
    return str(tid)


def get_task(ws: Workspace, task_id: str) -> Task:
    tasks = ws.t["tasks"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(tasks).where(tasks.c.id == _int_id(task_id))).first()
    if row is None:
        raise NotFound(f"no task {task_id}")
    return Task.from_row(row)


def open_tasks_about(ws: Workspace, ref: str, kinds: Iterable[str]) -> dict[str, Task]:
    """The open (or escalated) task of each of ``kinds`` about ``ref``, by kind: one look-up of the open-task key's
    index, however many tasks the queue has held."""
    tasks = ws.t["tasks"]
    keys = [f"{kind}:{ref}" for kind in kinds]
    with ws.tx() as conn:
        return {r.kind: Task.from_row(r) for r in conn.execute(sa.select(tasks).where(tasks.c.open_key.in_(keys)))}


def list_tasks(
    ws: Workspace,
    *,
    kind: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    outcome: str | None = None,
    ref: str | None = None,
    limit: int | None = None,
) -> list[Task]:
    """Tasks, filtered; ``status`` ``open`` means not closed (escalated ones too). Most urgent first, then oldest."""
    tasks = ws.t["tasks"]
    q = sa.select(tasks)
    if kind is not None:
        TASK_KINDS.get(kind)
        q = q.where(tasks.c.kind == kind)
    if status is not None:
        if status not in STATUSES:
            raise TaskError(f"unknown task status {status!r}: one of {', '.join(STATUSES)}")
        q = q.where(tasks.c.status != CLOSED) if status == OPEN else q.where(tasks.c.status == status)
    for column, value in (("assignee", assignee), ("outcome", outcome), ("ref", ref)):
        if value is not None:
            q = q.where(tasks.c[column] == value)
    q = q.order_by(tasks.c.priority.desc(), tasks.c.id).limit(limit)
    with ws.tx() as conn:
        return [Task.from_row(r) for r in conn.execute(q)]


def awaiting_revalidation(ws: Workspace, set_name: str | None = None) -> list[str]:
    """Golden rows (case ids) sent back for re-validation and not re-signed yet: candidates, not assets. With
    ``set_name``, only that set's rows."""
    refs = sorted(t.ref for t in list_tasks(ws, kind="revalidate", status=OPEN))
    if set_name is None or not refs:
        return refs
    cases = ws.t["cases"]
    with ws.tx() as conn:
        q = sa.select(cases.c.id).where(cases.c.set_name == ws.check_set(set_name), cases.c.id.in_(refs))
        in_set = set(conn.execute(q).scalars())
    return [r for r in refs if r in in_set]


# ----------------------------------------------------------------------------- taking tasks


def _takeable(role: Role, kinds: Iterable[str] | None) -> list[str]:
    wanted = list(kinds) if kinds else TASK_KINDS.names()
    for k in wanted:
        TASK_KINDS.get(k)
    return [k for k in wanted if role in TASK_KINDS.get(k).roles]


def next_task(ws: Workspace, user: str, *, kinds: Iterable[str] | None = None) -> Task | None:
    """The task ``user`` works on next, assigned to them: their own unfinished one first, then (for a role that
    signs) an escalated one, then the most urgent, oldest open one of the ``kinds`` their role may take; None
    when the queue holds nothing for them. A label task whose candidate was reviewed or rejected elsewhere is
    closed on the way."""
    role = ws.require(user, LABEL_ROLES, "taking review tasks")
    allowed = _takeable(role, kinds)
    if not allowed:
        return None
    tasks = ws.t["tasks"]
    statuses = [ESCALATED, OPEN] if role in SIGN_ROLES else [OPEN]
    mine = sa.select(tasks).where(tasks.c.assignee == user, tasks.c.status != CLOSED, tasks.c.kind.in_(allowed))
    passed: set[int] = set()  # not for this user (a second label of their own first one), or another walk's claim
    with _walking() as ahead:
        return _walk(ws, user, mine, statuses, allowed, passed, ahead)


#: How many :func:`next_task` walks are under way in this process (see :func:`_spread`).
_WALKERS = [0]
_WALKERS_LOCK = threading.Lock()


@contextlib.contextmanager
def _walking() -> Iterator[int]:
    """Count this walk among those under way; how many were under way when it began."""
    with _WALKERS_LOCK:
        ahead = _WALKERS[0]
        _WALKERS[0] += 1
    try:
        yield ahead
    finally:
        with _WALKERS_LOCK:
            _WALKERS[0] -= 1


#: The tasks a walk of this process is claiming now, per database: see :func:`_claiming`.
_CLAIMING: weakref.WeakKeyDictionary[sa.Engine, set[int]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _claiming(ws: Workspace, task: Task) -> Iterator[bool]:
    """Whether this walk has ``task`` to itself among the walks of this process, until its claim is committed: a
    walk that finds another one claiming it goes on to the next task without a look or a claim (a claim that
    loses is a wait for the write lock: twenty reviewers asking at once lost 1.5 claims a next task, on average)."""
    with _WALKERS_LOCK:
        held = _CLAIMING.setdefault(ws.engine, set())
        ours = int(task.id) not in held
        held.add(int(task.id))
    try:
        yield ours
    finally:
        if ours:
            with _WALKERS_LOCK:
                held.discard(int(task.id))


def _spread(rows: list[Any], ahead: int) -> list[Any]:
    """The free tasks in the order this walk tries them: the n-th of reviewers asking at once (``ahead`` = n)
    starts at the n-th of the most urgent ones, rather than all queueing to claim the oldest (each claim that
    loses is a wait for the write lock). Alone, a reviewer gets the oldest, as the queue's order says."""
    lead = next((i for i, r in enumerate(rows) if r.priority != rows[0].priority), len(rows))
    k = ahead % lead if lead else 0
    return rows[k:lead] + rows[:k] + rows[lead:]


def _walk(
    ws: Workspace,
    user: str,
    mine: sa.Select[Any],
    statuses: list[str],
    allowed: list[str],
    passed: set[int],
    ahead: int,
) -> Task | None:
    """:func:`next_task`'s walk down the queue (``mine``: the user's own unfinished task)."""
    tasks = ws.t["tasks"]
    while True:
        free = [  # one walk down the queue index per status, escalated ones first
            sa.select(tasks)
            .where(tasks.c.status == status, tasks.c.assignee.is_(None), tasks.c.kind.in_(allowed))
            .where(tasks.c.id.not_in(passed))
            .order_by(tasks.c.priority.desc(), tasks.c.id)
            .limit(20)
            for status in statuses
        ]
        with ws.tx() as conn:
            row = conn.execute(mine.order_by(tasks.c.id).limit(1)).first()
            rows = [row] if row is not None else _spread(_first_found(conn, free), ahead)
        if not rows:
            return None
        for row in rows:
            task = Task.from_row(row)
            if task.assignee == user:
                if not _closed_elsewhere(ws, task):
                    return task
                continue
            if not _for(task, user):
                passed.add(int(task.id))
                continue
            with _claiming(ws, task) as ours:
                if not ours:  # another walk here claims it: whether it wins or not, it is not free for this one
                    passed.add(int(task.id))
                    continue
                if _taken_since(ws, task) or _closed_elsewhere(ws, task):
                    continue
                claimed = _claim(ws, task, user)
            if claimed is not None:
                return claimed


def _for(task: Task, user: str) -> bool:
    """Whether ``user`` may take ``task``: a second label never goes to the first labeler, a control item only
    to the labeler it was mixed in for."""
    if task.kind == "overlap":
        return task.payload.get("first_reviewer") != user
    if task.kind == "control":
        return task.ref.rpartition("/")[2] == user
    if task.kind == "adjudicate":
        return user not in task.payload.get("labelers", [])
    return True


def _first_found(conn: sa.Connection, queries: list[sa.Select[Any]]) -> list[Any]:
    for q in queries:
        rows = list(conn.execute(q))
        if rows:
            return rows
    return []


def _taken_since(ws: Workspace, task: Task) -> bool:
    """Whether somebody took ``task`` (or it was closed) since the walk read it: a look, where a claim that
    fails is a write, so twenty reviewers walking at once went through the write lock once per task passed."""
    tasks = ws.t["tasks"]
    q = ws.statement(
        "tasks.taken", lambda: sa.select(tasks.c.assignee, tasks.c.status).where(tasks.c.id == sa.bindparam("tid"))
    )
    with ws.tx() as conn:
        row = conn.execute(q, {"tid": int(task.id)}).first()
    return row is None or row.assignee is not None or row.status == CLOSED


def _claim(ws: Workspace, task: Task, user: str) -> Task | None:
    """``task`` assigned to ``user``; None when somebody took it first."""
    tasks = ws.t["tasks"]
    at = now_iso()
    claim = ws.statement(
        "tasks.claim",
        lambda: tasks.update().where(
            tasks.c.id == sa.bindparam("tid"), tasks.c.assignee.is_(None), tasks.c.status != CLOSED
        ),
    )
    with ws.tx() as conn:
        taken = conn.execute(claim, {"tid": int(task.id), "assignee": user, "assigned_at": at}).rowcount
        if taken:
            ws.audit(conn, user, "task.assign", task.ref, task_id=int(task.id), kind=task.kind)
    return replace(task, assignee=user, assigned_at=at) if taken else None


def _closed_elsewhere(ws: Workspace, task: Task) -> bool:
    """Close a label task whose candidate was reviewed or rejected outside the queue; whether it was."""
    if task.kind != "label" or task.status == ESCALATED:
        return False
    try:
        cand = pool.get(ws, task.ref)
    except NotFound:
        outcome, why = "reject", "the candidate is gone"
    else:
        if cand.status == pool.REJECTED:
            outcome, why = "reject", str(cand.reject_reason)
        elif _review_since(ws, task) is not None:
            outcome, why = "done", "reviewed outside the queue"
        else:
            return False
    with contextlib.suppress(TaskClosedMeanwhile):  # another walk closed it first: closed all the same
        _close(ws, task, "evaltray", outcome, outcome_reason=why, seconds=0.0)
    return True


def release_task(ws: Workspace, task_id: str, actor: str) -> Task:
    """Hand a task taken but not finished back to the queue (its assignee, or an adjudicator, may)."""
    task = get_task(ws, task_id)
    role = ws.require(actor, LABEL_ROLES, "handing back a review task")
    if task.status == CLOSED or task.assignee is None:
        raise TaskError(f"task {task.id} is not taken by anybody")
    if task.assignee != actor and role not in SIGN_ROLES:
        raise PermissionDenied(f"task {task.id} is {task.assignee}'s; only they or an adjudicator hand it back")
    tasks = ws.t["tasks"]
    with ws.tx() as conn:
        conn.execute(tasks.update().where(tasks.c.id == int(task.id)).values(assignee=None, assigned_at=None))
        ws.audit(conn, actor, "task.release", task.ref, task_id=int(task.id), kind=task.kind, was=task.assignee)
    return get_task(ws, task.id)


def reassign_task(ws: Workspace, task_id: str, actor: str, to: str | None) -> Task:
    """Give an unfinished task to ``to`` (None: back to the queue), as an admin does when its assignee leaves."""
    ws.require(actor, frozenset({Role.ADMIN}), "handing a task to somebody else")
    task = get_task(ws, task_id)
    if task.status == CLOSED:
        raise TaskError(f"task {task.id} is closed")
    tasks = ws.t["tasks"]
    with ws.tx() as conn:
        values = {"assignee": to, "assigned_at": now_iso() if to else None}
        conn.execute(tasks.update().where(tasks.c.id == int(task.id)).values(**values))
        ws.audit(conn, actor, "task.reassign", task.ref, task_id=int(task.id), was=task.assignee, to=to)
    return get_task(ws, task.id)


#: Label tasks :func:`open_label_tasks` opens per transaction: one write (and one role check) per chunk rather
#: than per task (a refill of 100 cost 800 statements and 200 transactions inside one reviewer's page load),
#: yet short enough that a reviewer saving a label meanwhile waits for one chunk at most.
OPEN_CHUNK = 25


def open_label_tasks(ws: Workspace, actor: str, set_name: str | None = None, limit: int | None = None) -> list[str]:
    """A ``label`` task for each candidate of the pool that awaits its first review (oldest first, at most
    ``limit``): the candidate queue, in the one task queue. The task ids (those already open included). Each
    candidate is checked unreviewed in the transaction that opens its task, as :func:`open_task` does."""
    cands = queue(ws, ws.check_set(set_name) if set_name else None, limit=limit)
    if not cands:
        return []
    ws.require(actor, OPEN_ROLES, "opening a review task")
    reason = "new in the candidate pool"
    opened: list[str] = []
    for at in range(0, len(cands), OPEN_CHUNK):
        chunk = [c.id for c in cands[at : at + OPEN_CHUNK]]
        try:
            ids = _open_labels(ws, actor, reason, chunk)
        except sa.exc.IntegrityError:  # one opened by another writer since we looked: the retry finds it
            ids = _open_labels(ws, actor, reason, chunk)
        opened += [tid for tid in ids if tid]
    return opened


def open_new_label_tasks(ws: Workspace, actor: str, limit: int) -> list[str]:
    """A ``label`` task for each of the pool's oldest ``limit`` unreviewed candidates that has none open yet, in one
    transaction; the new tasks' ids. Unlike :func:`open_label_tasks` it never reads the candidates already in the
    queue, so a top-up of a queue that holds many costs what it opens (the web server's background top-up)."""
    cands, tasks = ws.t["candidates"], ws.t["tasks"]
    open_key = sa.literal("label:") + cands.c.id
    q = (
        sa.select(cands.c.id)
        .where(unreviewed(ws, None), ~sa.exists().where(tasks.c.open_key == open_key))
        .order_by(cands.c.created_at, cands.c.id)
        .limit(limit)
    )
    with ws.tx() as conn:
        ids = list(conn.scalars(q))
    if not ids:
        return []
    ws.require(actor, OPEN_ROLES, "opening a review task")
    try:
        return _open_new_labels(ws, actor, ids)
    except sa.exc.IntegrityError:  # another process opened one of them since we looked: the retry leaves it out
        return _open_new_labels(ws, actor, ids)


def _open_new_labels(ws: Workspace, actor: str, candidate_ids: list[str]) -> list[str]:
    """A label task for each of ``candidate_ids`` that still has no review and no open label task, checked for
    all of them at once in the write transaction that opens them (two reads, then a write per task)."""
    reviews, tasks = ws.t["reviews"], ws.t["tasks"]
    with ws.atomic() as conn:
        reviewed = set(conn.scalars(sa.select(reviews.c.candidate_id).where(reviews.c.candidate_id.in_(candidate_ids))))
        keys = [f"label:{cid}" for cid in candidate_ids]
        queued = set(conn.scalars(sa.select(tasks.c.open_key).where(tasks.c.open_key.in_(keys))))
        fresh = [cid for cid in candidate_ids if cid not in reviewed and f"label:{cid}" not in queued]
        reason = "new in the candidate pool"
        return [_insert_task(ws, conn, ("label", cid, reason, actor, {}, 0, None), None) for cid in fresh]


def _open_labels(ws: Workspace, actor: str, reason: str, candidate_ids: list[str]) -> list[str]:
    """A label task for each of ``candidate_ids`` still unreviewed, in one transaction ("" for a reviewed one)."""
    with ws.tx() as conn:
        return [_open_in(ws, conn, "label", cid, reason, actor, {}, 0, None, True) for cid in candidate_ids]


# ----------------------------------------------------------------------------- closing tasks


@dataclass
class Resolution:
    """What a person said when closing a task (all optional but the outcome; see :func:`resolve_task`)."""

    reason: str | None = None
    verdict: str | None = None
    critique: str | None = None
    tags: list[str] = field(default_factory=list)
    seconds: float | None = None
    label: dict[str, Any] | None = None
    #: the review that does a label task, when the caller has just written it (so it is not read back)
    review: Review | None = None


@dataclass
class Closing:
    """A task's closing, checked (:func:`prepare_close`) and not written yet (:func:`close_prepared` writes it)."""

    task: Task
    actor: str
    outcome: str
    said: Resolution


def resolve_task(
    ws: Workspace,
    task_id: str,
    actor: str,
    outcome: str,
    *,
    reason: str | None = None,
    verdict: str | None = None,
    critique: str | None = None,
    tags: Iterable[str] = (),
    seconds: float | None = None,
    label: dict[str, Any] | None = None,
) -> Task:
    """Close task ``task_id`` with ``outcome`` (one of :data:`OUTCOMES`): ``reject`` needs a ``reason`` (for a
    label task one of the reject reasons: the candidate goes to the reject bin); ``escalate`` hands it to the
    adjudicator, open; ``bug`` adds it to the bug list with its ``critique`` and ``tags``. A label task is done
    once its candidate has a review; a revalidate task is done by re-signing the row (``label``: a new
    expected behaviour, else its current one). ``seconds`` spent (default: since it was assigned to ``actor``)
    add to the task's time. ``verdict`` is the person's pass/fail (a judge check's answer)."""
    if outcome not in OUTCOMES:
        raise TaskError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    said = Resolution(reason, verdict, critique, list(tags), seconds, label)
    return close_prepared(ws, prepare_close(ws, get_task(ws, task_id), actor, outcome, said))


def prepare_close(ws: Workspace, task: Task, actor: str, outcome: str, said: Resolution) -> Closing:
    """:func:`resolve_task`'s checks of closing ``task`` (as read a moment ago) with ``outcome`` and what ``said``
    says: the actor's role, the task's status, the fields. A caller that writes more in the same transaction
    makes these reads before it (:meth:`~evaltray.core.store.Workspace.atomic`), then :func:`close_prepared`."""
    if outcome not in OUTCOMES:
        raise TaskError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    kind = TASK_KINDS.get(task.kind)
    roles = SIGN_ROLES if task.status == ESCALATED else kind.roles
    ws.require(actor, roles, f"closing {'an escalated' if task.status == ESCALATED else 'a'} {task.kind} task")
    if task.status == CLOSED:
        raise TaskError(f"task {task.id} ({task.kind} {task.ref}) is already closed ({task.outcome})")
    if said.verdict is not None and said.verdict not in ("pass", "fail"):
        raise TaskError(f"verdict must be pass or fail, got {said.verdict!r}")
    if task.kind == "adjudicate":
        _refuse_own_label(ws, task, actor)
    said = replace(
        said,
        reason=(said.reason or "").strip() or None,
        critique=(said.critique or "").strip() or None,
        tags=sorted(set(said.tags)),
        seconds=_spent(task, actor, said.seconds),
    )
    if outcome == "reject" and not said.reason:
        raise TaskError(f"task {task.id}: rejecting needs a reason")
    return Closing(task, actor, outcome, said)


def close_prepared(ws: Workspace, closing: Closing, review: Review | None = None) -> Task:
    """Close the task as :func:`prepare_close` checked it (its outcome's action, then the task; ``review``: the
    review that does a label task, just written by the caller); the task as closed."""
    task, actor, outcome = closing.task, closing.actor, closing.outcome
    said = replace(closing.said, review=review) if review is not None else closing.said
    if outcome == "escalate":
        return _escalate(ws, task, actor, said)
    _ACTIONS.get((task.kind, outcome), _nothing)(ws, task, actor, said)
    return _close(
        ws,
        task,
        actor,
        outcome,
        outcome_reason=said.reason,
        seconds=said.seconds,
        verdict=said.verdict,
        critique=said.critique,
        tags=dumps(said.tags),
    )


def hold_task(ws: Workspace, task: Task) -> bool:
    """Whether ``task`` is still not closed, read again in the caller's write transaction, which keeps it so: on
    PostgreSQL its row stays locked to the end (on SQLite the transaction holds the whole database's write lock).
    A claim or a close locks the row, then the audit log; a transaction that writes the audit log before it
    closes the task (a label saved) takes the row first too, so that the two wait for each other in that one
    order instead of each holding what the other waits for (a deadlock)."""
    tasks = ws.t["tasks"]
    q = ws.statement("tasks.hold", lambda: sa.select(tasks.c.status).where(tasks.c.id == sa.bindparam("tid")))
    with ws.tx() as conn:
        held = q.with_for_update() if ws.engine.dialect.name == "postgresql" else q
        status = conn.execute(held, {"tid": int(task.id)}).scalar()
    return status is not None and status != CLOSED


def _refuse_own_label(ws: Workspace, task: Task, actor: str) -> None:
    """Refuse ``actor`` an ``adjudicate`` task whose disputed labels include theirs: the task goes back to the
    queue (unassigned, marked so that neither labeler takes it again) for another adjudicator."""
    labelers = [r.reviewer for r in disputed_reviews(ws, task)]
    if actor not in labelers:
        return
    tasks = ws.t["tasks"]
    payload = {**task.payload, "labelers": sorted(set(labelers))}
    values: dict[str, Any] = {"payload": dumps(payload)}
    if task.assignee == actor:
        values.update(assignee=None, assigned_at=None)
    with ws.tx() as conn:
        conn.execute(tasks.update().where(tasks.c.id == int(task.id)).values(**values))
        ws.audit(conn, actor, "task.recuse", task.ref, task_id=int(task.id), kind=task.kind)
    others = [u["name"] for u in ws.users() if Role(u["role"]) in SIGN_ROLES and u["name"] not in labelers]
    routed = (
        f"it is back in the queue for another adjudicator ({', '.join(others)})"
        if others
        else "no other adjudicator or admin is registered: add one (`evaltray user add NAME --role adjudicator`)"
    )
    raise OwnLabel(f"task {task.id}: {actor} labeled candidate {task.ref} and may not adjudicate it; {routed}")


def _spent(task: Task, actor: str, seconds: float | None) -> float:
    if seconds is not None:
        if seconds < 0:
            raise TaskError(f"task {task.id}: time spent cannot be negative ({seconds})")
        return float(seconds)
    if task.assignee != actor or not task.assigned_at:
        return 0.0
    started = datetime.fromisoformat(task.assigned_at)
    return max(0.0, (datetime.fromisoformat(now_iso()) - started).total_seconds())


def _close(ws: Workspace, task: Task, actor: str, outcome: str, **values: Any) -> Task:
    """Close ``task`` (unless another request closed it first: :class:`TaskClosedMeanwhile`); the task as closed."""
    tasks = ws.t["tasks"]
    spent = round(task.seconds + float(values.pop("seconds") or 0.0), 3)
    closed = dict(status=CLOSED, outcome=outcome, closed_by=actor, closed_at=now_iso(), seconds=spent, **values)
    close = ws.statement(
        "tasks.close", lambda: tasks.update().where(tasks.c.id == sa.bindparam("tid"), tasks.c.status != CLOSED)
    )
    with ws.tx() as conn:
        done = conn.execute(close, {"tid": int(task.id), "open_key": None, **closed}).rowcount
        if not done:
            raise TaskClosedMeanwhile(f"task {task.id} was closed meanwhile")
        detail = {k: v for k, v in values.items() if k in ("outcome_reason", "verdict")}
        ws.audit(conn, actor, "task.close", task.ref, task_id=int(task.id), kind=task.kind, outcome=outcome, **detail)
    if "tags" in closed:  # the column's JSON, as the row read back would give it
        closed["tags"] = loads(closed["tags"])
    return replace(task, **closed)  # what reading the row back gave, without the read


def _escalate(ws: Workspace, task: Task, actor: str, said: Resolution) -> Task:
    if task.status == ESCALATED:
        raise TaskError(f"task {task.id} is already with the adjudicator; they close it")
    tasks = ws.t["tasks"]
    with ws.tx() as conn:
        conn.execute(
            tasks.update()
            .where(tasks.c.id == int(task.id))
            .values(
                status=ESCALATED,
                assignee=None,
                assigned_at=None,
                escalated_by=actor,
                seconds=round(task.seconds + (said.seconds or 0.0), 3),
                outcome_reason=said.reason,
                critique=said.critique,
                tags=dumps(said.tags),
            )
        )
        ws.audit(conn, actor, "task.escalate", task.ref, task_id=int(task.id), kind=task.kind, reason=said.reason)
    return get_task(ws, task.id)


def _nothing(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    """Most outcomes change nothing but the task."""


def _review_since(ws: Workspace, task: Task) -> Review | None:
    """The latest review of the task's candidate when it came since the task was opened, else None."""
    review, before = latest_review(ws, task.ref), task.payload.get("review_before")
    return review if review is not None and (before is None or review.id > int(before)) else None


def _label_done(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    first = said.review if said.review is not None else _review_since(ws, task)
    if first is None:
        raise TaskError(
            f"task {task.id}: candidate {task.ref} has no review since the task was opened; record one (`evaltray review`)"
        )
    share = ws.settings.overlap
    if first.verdict is not None and in_overlap(task.ref, share):
        open_task(
            ws,
            "overlap",
            task.ref,
            reason=f"overlap: {share:.0%} of candidates get a second, blind label",
            actor=actor,
            payload={"first_reviewer": first.reviewer, "review_before": first.id},
        )


def in_overlap(ref: str, share: float) -> bool:
    """Whether ``ref`` is among the ``share`` of items labeled twice: chosen by a hash of it, so every process and
    every run choose the same items."""
    point = int.from_bytes(hashlib.sha256(ref.encode("utf-8")).digest()[:8], "big") / 2**64
    return point < share


def _overlap_done(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    """The second label is in: when its verdict differs from the first, the adjudicator decides."""
    first = get_review(ws, int(task.payload["review_before"]))
    second = latest_review(ws, task.ref)
    if second is None or second.id <= first.id or second.reviewer == first.reviewer:
        raise TaskError(
            f"task {task.id}: candidate {task.ref} has no second label since {first.reviewer}'s; record one "
            "(`evaltray review`)"
        )
    _note(ws, task, second_review=second.id)
    if None not in (first.verdict, second.verdict) and first.verdict != second.verdict:
        open_task(
            ws,
            "adjudicate",
            task.ref,
            reason=f"{first.reviewer} said {first.verdict}, {second.reviewer} said {second.verdict}",
            actor=actor,
            payload={"reviews": [first.id, second.id], "labelers": sorted({first.reviewer, second.reviewer})},
            priority=1,
        )


def disputed_reviews(ws: Workspace, task: Task) -> list[Review]:
    """The two labels an ``adjudicate`` task is about, in the order they were made."""
    return [get_review(ws, int(r)) for r in task.payload.get("reviews", [])]


def _adjudicate_done(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    """Record the adjudicator's decision as the candidate's label: their verdict, with the expected behaviour of
    the label they side with (or the one they write), and their reason; it is final."""
    if said.verdict is None or not said.reason:
        raise TaskError(f"task {task.id}: the adjudicator's decision needs a verdict (pass or fail) and a reason")
    sided = next((r for r in disputed_reviews(ws, task) if r.verdict == said.verdict), None)
    if said.label is not None:
        label = said.label
        expected = normalize_expected(
            ws, actor, label.get("reference"), label.get("behavior_code"), label.get("assertions")
        )
    elif sided is not None:
        expected = sided.expected
    else:
        raise TaskError(f"task {task.id}: neither label says {said.verdict}; write the expected behaviour")
    decision = record_review(
        ws,
        task.ref,
        actor,
        expected,
        verdict=said.verdict,
        critique=said.critique or said.reason,
        failure_tags=said.tags or (sided.failure_tags if sided else []),
        slice=sided.slice if sided else None,
        expected_first=False,  # the adjudicator reads both labels before deciding
        provenance={"via": "adjudicate", "task_id": int(task.id), "reason": said.reason},
    )
    _note(ws, task, decision_review=decision.id)


def _note(ws: Workspace, task: Task, **more: Any) -> None:
    """Keep what closing the task made (the review ids a report joins on) in its payload."""
    tasks = ws.t["tasks"]
    task.payload = {**task.payload, **more}
    with ws.tx() as conn:
        conn.execute(tasks.update().where(tasks.c.id == int(task.id)).values(payload=dumps(task.payload)))


def _verdict_given(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    if said.verdict is None:
        raise TaskError(f"task {task.id}: answer pass or fail on the recorded output")
    if task.kind == "control" and task.ref.rpartition("/")[2] != actor:
        raise TaskError(f"task {task.id} is a control item of {task.ref.rpartition('/')[2]}'s; only they answer it")


def _label_reject(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    reason = str(said.reason).strip().lower().replace(" ", "_").replace("-", "_")
    if reason not in REJECT_REASONS:
        raise TaskError(f"task {task.id}: reject reason {said.reason!r} is not one of {', '.join(REJECT_REASONS)}")
    if pool.get(ws, task.ref).status == pool.PENDING:
        pool.reject(ws, task.ref, reason, actor, note=said.critique)


def _revalidate_done(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    """Re-sign the row: a new signed review of its label (or of ``said.label``), applied by ``promote``."""
    if ws.role_of(actor) not in SIGN_ROLES:
        raise PermissionDenied(f"user {actor!r} may not sign; re-validating case {task.ref} needs an adjudicator")
    label = said.label if said.label is not None else _case_label(ws, task.ref)
    relabel_case(
        ws,
        task.ref,
        actor,
        reference=label.get("reference"),
        behavior_code=label.get("behavior_code"),
        assertions=label.get("assertions") or (),
        critique=said.critique,
    )


def case_of(ws: Workspace, case_id: str) -> dict[str, Any]:
    """The golden row ``case_id`` as the tray holds it (what a revalidate task is about)."""
    cases = ws.t["cases"]
    with ws.tx() as conn:
        set_name = conn.execute(sa.select(cases.c.set_name).where(cases.c.id == case_id)).scalar()
    if set_name is None:
        raise NotFound(f"no case {case_id!r}")
    return get_case(ws, case_id, set_name)


def _case_label(ws: Workspace, case_id: str) -> dict[str, Any]:
    expected: dict[str, Any] = case_of(ws, case_id)["expected"]
    return expected


def _revalidate_reject(ws: Workspace, task: Task, actor: str, said: Resolution) -> None:
    """The row does not hold up: it leaves the tray (retired with the reason; its id stays reserved)."""
    retire(ws, task.ref, f"re-validation: {said.reason}", actor)


_ACTIONS: dict[tuple[str, str], Callable[[Workspace, Task, str, Resolution], None]] = {
    ("label", "done"): _label_done,
    ("label", "reject"): _label_reject,
    ("revalidate", "done"): _revalidate_done,
    ("revalidate", "reject"): _revalidate_reject,
    ("overlap", "done"): _overlap_done,
    ("adjudicate", "done"): _adjudicate_done,
    ("control", "done"): _verdict_given,
    ("spotcheck", "done"): _verdict_given,
}


# ----------------------------------------------------------------------------- the bug list

BUG_FIELDS = ("task_id", "kind", "case_id", "candidate_id", "trace_id", "run_id", "critique", "tags", "who", "when")


def _ids(ws: Workspace, task: Task) -> dict[str, str | None]:
    """The case, candidate, trace and run a task is about, as far as the workspace knows them."""
    ids: dict[str, str | None] = dict.fromkeys(("case_id", "candidate_id", "trace_id", "run_id"))
    if task.kind in ("label", "overlap", "adjudicate"):
        ids["candidate_id"] = task.ref
    elif task.kind in ("revalidate", "spotcheck"):
        ids["case_id"] = task.ref
    elif task.kind == "control":
        ids["case_id"] = task.ref.rpartition("/")[0]
    else:
        run_id, _, case_id = task.ref.partition("/")
        ids["run_id"], ids["case_id"] = run_id, case_id or None
    if ids["case_id"] and not ids["candidate_id"]:
        cases = ws.t["cases"]
        with ws.tx() as conn:
            ids["candidate_id"] = conn.execute(
                sa.select(cases.c.candidate_id).where(cases.c.id == ids["case_id"])
            ).scalar()
    if ids["candidate_id"]:
        with contextlib.suppress(NotFound):
            ids["trace_id"] = pool.get(ws, ids["candidate_id"]).trace_id
    ids["trace_id"] = ids["trace_id"] or task.payload.get("trace_id")
    return ids


def bug_list(ws: Workspace) -> list[dict[str, Any]]:
    """Every task closed as ``bug``, oldest first: what it is about, the critique and tags, who said so, when."""
    rows = []
    for task in sorted(list_tasks(ws, outcome="bug"), key=lambda t: int(t.id)):
        rows.append(
            {
                "task_id": task.id,
                "kind": task.kind,
                **_ids(ws, task),
                "critique": task.critique,
                "tags": task.tags,
                "who": task.closed_by,
                "when": task.closed_at,
            }
        )
    return rows


def export_bugs(ws: Workspace, path: Path, actor: str) -> int:
    """Write the bug list to ``path``: JSON lines, or CSV (tags ``;``-joined) when it ends in ``.csv``. How many."""
    ws.require(actor, frozenset(Role), "exporting the bug list")
    rows = bug_list(ws)
    if path.suffix.lower() == ".csv":
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=BUG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "tags": "; ".join(row["tags"])})
        body = buf.getvalue().encode("utf-8")
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        body = b"".join(dumps(row).encode("utf-8") + b"\n" for row in rows)
    else:
        raise TaskError(f"{path}: the bug list is written as .jsonl or .csv")
    atomic_write(path, body)
    ws.record(actor, "bugs.export", None, file=path.name, bugs=len(rows))
    return len(rows)
