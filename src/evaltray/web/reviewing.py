"""What the review queue page reads and keeps: the next typed task, its items, each reviewer's draft, time
spent per row, and whether each queue (task kind) is blind.

The blind rule is not here: the page drives :class:`evaltray.tray.review.ReviewSession`, which keeps it; this
module only says, per queue, whether the session is blind (:func:`queue_blind`). That setting lives in the audit
log: the newest ``queue.blind`` entry for the kind wins, so every change says who and when, no schema change is
needed, and a workspace where no admin ever set it follows ``write_expected_first`` of its settings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import SIGN_ROLES
from evaltray.core.store import Workspace, proved
from evaltray.core.util import dumps, loads, now_iso
from evaltray.tray import oversight
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.tray.candidates import Candidate

#: How many of the pool's unreviewed candidates are kept in the task queue (as label tasks) when a person asks
#: for their next task: enough to keep every reviewer busy without a write per candidate of a large pool.
LABEL_BATCH = 100
#: Fewer free label tasks than this, and the person asking tops the queue up (only what is missing is written):
#: with twenty reviewers, waiting until none was left made all of them queue behind one refill of a hundred.
LOW_WATER = 30
#: One top-up at a time in this process: a second reviewer who finds one under way goes on with a free task,
#: or, when none is left, waits for its first chunk rather than writing the same tasks again.
_TOPPING_UP = threading.Lock()
_LOG = logging.getLogger(__name__)
BLIND_ACTION = "queue.blind"
#: The queues with something to hide until the person has written their own answer: a label task's recorded
#: output. A revalidate, judge_check or failing_case task is about what was said already, so it shows it.
BLIND_KINDS = ("label",)


def queue_items(
    ws: Workspace, reviewer: str, set_name: str | None = None, limit: int | None = None, offset: int = 0
) -> list[Candidate]:
    """The label queue's candidates for ``reviewer``, in order (``limit`` of them from ``offset``): pending
    candidates with no review yet, oldest first. The next task of any kind is :func:`next_item`."""
    return rev.queue(ws, set_name, limit=limit, offset=offset)


def queue_place(ws: Workspace, reviewer: str, candidate_id: str) -> rev.QueuePlace:
    """Where ``candidate_id`` stands in ``reviewer``'s label queue (position, length, neighbours)."""
    return rev.queue_place(ws, candidate_id)


def next_item(
    ws: Workspace, reviewer: str, kinds: list[str] | None = None, top_up: LabelTopUp | None = None
) -> tq.Task | None:
    """The task ``reviewer`` works on next, of any kind their role may take (or of ``kinds``), assigned to
    them. With ``top_up`` (the server's), the queue is only read and taken from here: the top-up is asked to look
    after the task is taken, and waited for only when no free task was left. Without it, the pool's unreviewed
    candidates are put in the queue as label tasks first, by this caller, topped up to :data:`LABEL_BATCH` once
    fewer than :data:`LOW_WATER` are free. Either way, when the free one seen was taken by another reviewer
    meanwhile, the queue is topped up and looked at again. None when nothing waits for them."""
    labels = not kinds or "label" in kinds
    if top_up is not None:
        task = oversight.next_for(ws, reviewer, kinds=kinds)
        if labels:
            mark = top_up.ask(reviewer)
            while task is None:  # none free: the top-up's next chunk, while it opens any (others wait for it too)
                opened = top_up.wait(mark)
                task = oversight.next_for(ws, reviewer, kinds=kinds)
                if not opened:
                    break
                mark = top_up.ask(reviewer)
        return task
    if labels:
        _top_up(ws, reviewer)
    task = oversight.next_for(ws, reviewer, kinds=kinds)
    if task is None and labels and tq.open_label_tasks(ws, reviewer, limit=LABEL_BATCH):
        task = oversight.next_for(ws, reviewer, kinds=kinds)
    return task


def _free_label_tasks(ws: Workspace, up_to: int | None = None) -> int:
    """Open label tasks nobody has taken, counted up to ``up_to`` (default :data:`LOW_WATER`)."""
    tasks = ws.t["tasks"]
    free = sa.select(tasks.c.id).where(tasks.c.status == tq.OPEN, tasks.c.kind == "label", tasks.c.assignee.is_(None))
    limit = LOW_WATER if up_to is None else up_to
    with ws.tx() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(free.limit(limit).subquery())).scalar_one())


def _top_up(ws: Workspace, reviewer: str) -> None:
    """Label tasks for the pool's oldest :data:`LABEL_BATCH` unreviewed candidates, once fewer than
    :data:`LOW_WATER` are free: by this reviewer, unless another top-up is under way. Then a free task left
    is enough; with none, the reviewer waits for that top-up's first chunk (it commits chunk by chunk), not
    for all of it."""
    free = _free_label_tasks(ws)
    while free < LOW_WATER:
        if _TOPPING_UP.acquire(blocking=False):
            try:
                tq.open_label_tasks(ws, reviewer, limit=LABEL_BATCH)
            finally:
                _TOPPING_UP.release()
            return
        if free > 0:
            return
        time.sleep(0.01)
        free = _free_label_tasks(ws)


#: Label tasks the background top-up opens per transaction: small, so that a label saved meanwhile waits for
#: one short chunk at most (each task is an insert and an audit entry under the write lock).
TOP_UP_CHUNK = 5


class LabelTopUp:
    """Keeps the label queue topped up from a thread of its own in the server process, so that a reviewer's
    ``GET /queue`` only takes a task already open (a top-up inside it was the next-task page's tail).

    :meth:`ask` after each task taken: the thread counts the free label tasks and, once fewer than
    :data:`LOW_WATER`, opens new ones up to :data:`LABEL_BATCH` free, :data:`TOP_UP_CHUNK` per transaction (or
    one for each reviewer waiting, when more wait), in the name of the reviewer who asked (whose role allows
    it). One top-up at a time; asks that come meanwhile make one more look. The thread ends after
    :data:`IDLE_S` without an ask and starts again at the next one.
    """

    #: Seconds without an ask after which the thread ends.
    IDLE_S = 60.0
    #: The longest a reviewer who found no free task waits for the top-up's next chunk (seconds).
    WAIT_S = 30.0

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._cond = threading.Condition()
        self._asker: str | None = None
        self._busy = False
        #: chunks committed (or looks that found nothing to open): what :meth:`wait` waits to see move
        self._progress = 0
        #: the progress mark of the last chunk opened
        self._last_chunk = 0
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: reviewers waiting in :meth:`wait` now (none free for them): the next chunk opens a task for each
        self._waiting = 0

    def ask(self, reviewer: str) -> int:
        """Have the queue looked at, in ``reviewer``'s name; the progress mark :meth:`wait` waits past."""
        with self._cond:
            self._asker = reviewer
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="evaltray-label-top-up", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._progress

    def wait(self, mark: int, timeout: float | None = None) -> bool:
        """Until a chunk (or a look that found nothing to open) after ``mark`` is in, at most ``timeout`` s;
        whether a chunk was opened since ``mark`` (so that one may be free, and more may follow)."""
        with self._cond:
            self._waiting += 1
            try:
                moved = self._cond.wait_for(
                    lambda: self._progress > mark or self._stopped, self.WAIT_S if timeout is None else timeout
                )
            finally:
                self._waiting -= 1
            return moved and self._last_chunk > mark and not self._stopped

    def idle(self, timeout: float) -> bool:
        """Wait until no top-up is under way or asked for; whether that happened within ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and self._asker is None, timeout)

    def stop(self) -> None:
        """End the thread (the server is shutting down); a top-up under way finishes its chunk first."""
        with self._cond:
            self._stopped = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(self.WAIT_S)

    def _run(self) -> None:
        while True:
            with self._cond:
                asked = self._cond.wait_for(lambda: self._asker is not None or self._stopped, self.IDLE_S)
                if self._stopped or not asked:
                    self._thread = None
                    return
                asker, self._asker, self._busy = str(self._asker), None, True
            try:
                with proved(asker):  # the reviewer's session proved them when they asked
                    self._fill(asker)
            except Exception:  # noqa: BLE001 - logged; the next ask tries again, a reviewer waiting is let go
                _LOG.exception("label queue top-up in the name of %s failed", asker)
            finally:
                with self._cond:
                    self._busy = False
                    self._progress += 1
                    self._cond.notify_all()

    def _fill(self, asker: str) -> None:
        free = _free_label_tasks(self.ws, LABEL_BATCH)
        if free >= LOW_WATER:
            return
        while free < LABEL_BATCH and not self._stopped:
            chunk = max(TOP_UP_CHUNK, self._waiting)  # twenty at an empty queue: one chunk, one walk each
            opened = tq.open_new_label_tasks(self.ws, asker, min(chunk, LABEL_BATCH - free))
            if not opened:
                return
            free += len(opened)
            with self._cond:
                self._progress += 1
                self._last_chunk = self._progress
                self._cond.notify_all()


_MAKING = threading.Lock()


def top_up_of(app: Any) -> LabelTopUp:
    """The web app's :class:`LabelTopUp` (made at its first use; the app's lifespan stops it)."""
    found: LabelTopUp | None = getattr(app.state, "label_top_up", None)
    if found is None:
        with _MAKING:
            found = getattr(app.state, "label_top_up", None)
            if found is None:
                found = app.state.label_top_up = LabelTopUp(app.state.ws)
    return found


def label_task(ws: Workspace, candidate_id: str, reviewer: str | None = None) -> tq.Task | None:
    """The open (or escalated) label task about ``candidate_id``, if any; else, for a ``reviewer`` who did not
    label it first, its open second label (``overlap``), which their review closes as a label task's does."""
    found = tq.open_tasks_about(ws, candidate_id, ("label",) if reviewer is None else ("label", "overlap"))
    if "label" in found or reviewer is None:
        return found.get("label")
    second = found.get("overlap")
    return second if second is not None and second.payload.get("first_reviewer") != reviewer else None


def label_closing(
    ws: Workspace, reviewer: str, task: tq.Task | None, outcome: str, seconds: int, reason: str | None = None
) -> tq.Closing | None:
    """What closing the candidate's label task (``task``, as :func:`label_task` gave it to the page) with the
    seconds the page measured takes, checked before the save's write transaction; None when there is none to
    close, or it is escalated and stays with the adjudicator (unless an adjudicator did the work)."""
    if task is None or (task.status == "escalated" and ws.role_of(reviewer) not in SIGN_ROLES):
        return None
    said = tq.Resolution(reason=reason, seconds=float(seconds))
    return tq.prepare_close(ws, task, reviewer, outcome, said)


def hold_label_task(ws: Workspace, closing: tq.Closing | None) -> tq.Closing | None:
    """First in the save's write transaction: the label task read again, its row locked (on PostgreSQL, before the
    audit log is: see :func:`~evaltray.tray.tasks.hold_task`); ``closing``, or None when the task was closed
    meanwhile (by a queue walk, or another review of the candidate: this review stands all the same)."""
    return closing if closing is not None and tq.hold_task(ws, closing.task) else None


def close_label_task(ws: Workspace, closing: tq.Closing | None, review: rev.Review | None = None) -> None:
    """Close the label task (as :func:`hold_label_task` kept it) once the page recorded its review (``review``,
    just written) or rejection."""
    if closing is not None:
        tq.close_prepared(ws, closing, review)


def queue_blind(ws: Workspace, kind: str) -> bool:
    """Whether the ``kind`` queue is blind: the newest ``queue.blind`` audit entry for it, else the workspace's
    ``write_expected_first``. A queue with nothing to hide (not in :data:`BLIND_KINDS`) is never blind."""
    tq.TASK_KINDS.get(kind)
    if kind not in BLIND_KINDS:
        return False
    audit = ws.t["audit"]
    q = ws.statement(
        "audit.blind",
        lambda: (
            sa.select(audit.c.detail)
            .where(audit.c.action == BLIND_ACTION, audit.c.object_id == sa.bindparam("kind"))
            .order_by(audit.c.id.desc())
            .limit(1)
        ),
    )
    with ws.tx() as conn:
        detail = conn.execute(q, {"kind": kind}).scalar()
    return bool(loads(detail)["blind"]) if detail is not None else bool(ws.settings.write_expected_first)


def set_queue_blind(ws: Workspace, kind: str, blind: bool, actor: str) -> None:
    """Turn the blind rule on or off for the ``kind`` queue (the caller checked that ``actor`` is an admin)."""
    tq.TASK_KINDS.get(kind)
    if kind not in BLIND_KINDS:
        raise tq.TaskError(f"the {kind} queue shows what it is about; only {', '.join(BLIND_KINDS)} can be blind")
    ws.record(actor, BLIND_ACTION, kind, blind=blind)


#: What a draft keeps: the expected behaviour, the review's fields, and where the blind rule stands.
DRAFT_FIELDS = ("reference", "behavior_code", "assertions", "verdict", "critique", "failure_tags", "slice")


@dataclass
class Draft:
    """A reviewer's unfinished work on one candidate, kept on the server so it survives a reload."""

    values: dict[str, str] = field(default_factory=dict)
    #: the expected behaviour was written (so the recorded output may be shown)
    expected_written: bool = False
    #: the output was shown before the expected behaviour (a session that is not blind)
    output_seen_first: bool = False
    opened_at: str = ""
    #: whether the draft has its row (a draft only opened has none)
    kept: bool = False

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def assertions(self) -> list[str]:
        return [line.strip() for line in self.get("assertions").splitlines() if line.strip()]

    def failure_tags(self) -> list[str]:
        return [t.strip() for t in self.get("failure_tags").split(",") if t.strip()]


def _body(draft: Draft) -> str:
    return dumps(
        {"values": draft.values, "expected_written": draft.expected_written, "seen_first": draft.output_seen_first}
    )


def open_draft(ws: Workspace, reviewer: str, candidate_id: str, task: tq.Task | None = None) -> Draft:
    """``reviewer``'s draft of ``candidate_id``, read only: a row is kept from the first :func:`save_draft` on (a
    page that is only opened writes nothing). The row's clock starts when ``task`` (its label task) was assigned
    to ``reviewer``, else when the draft was first kept, else now."""
    drafts = ws.t["review_drafts"]
    q = ws.statement(
        "drafts.get",
        lambda: sa.select(drafts.c.body, drafts.c.opened_at).where(
            (drafts.c.reviewer == sa.bindparam("who")) & (drafts.c.candidate_id == sa.bindparam("cid"))
        ),
    )
    with ws.tx() as conn:
        row = conn.execute(q, {"who": reviewer, "cid": candidate_id}).first()
    if row is None:
        taken = task.assigned_at if task is not None and task.assignee == reviewer else None
        return Draft(opened_at=taken or now_iso())
    body = loads(row.body)
    return Draft(
        values={k: str(v) for k, v in body["values"].items() if k in DRAFT_FIELDS},
        expected_written=bool(body["expected_written"]),
        output_seen_first=bool(body["seen_first"]),
        opened_at=row.opened_at,
        kept=True,
    )


def save_draft(ws: Workspace, reviewer: str, candidate_id: str, draft: Draft) -> None:
    """Keep ``draft`` (the row is made by the first save, with the draft's clock)."""
    drafts = ws.t["review_drafts"]
    key = (drafts.c.reviewer == reviewer) & (drafts.c.candidate_id == candidate_id)
    stamp = now_iso()
    update = drafts.update().where(key).values(body=_body(draft), updated_at=stamp)
    try:
        with ws.tx() as conn:
            if not (draft.kept and conn.execute(update).rowcount):
                row = dict(reviewer=reviewer, candidate_id=candidate_id, opened_at=draft.opened_at or stamp)
                conn.execute(drafts.insert().values(**row, body=_body(draft), updated_at=stamp))
    except sa.exc.IntegrityError:  # kept by another request of theirs since it was read: that row it is
        with ws.tx() as conn:
            conn.execute(update)
    draft.kept = True


def form_values(form: Any) -> dict[str, str]:
    """The draft fields a posted form carries (others ignored), as text."""
    return {k: v for k in DRAFT_FIELDS if isinstance(v := form.get(k), str)}


def spent(draft: Draft) -> int:
    """The whole seconds from when ``draft``'s clock started until now."""
    opened = datetime.fromisoformat(draft.opened_at.replace("Z", "+00:00"))
    return max(0, int((datetime.fromisoformat(now_iso().replace("Z", "+00:00")) - opened).total_seconds()))


def finish(
    ws: Workspace, reviewer: str, candidate_id: str, outcome: str, seconds: int, review_id: int | None = None
) -> None:
    """Record the ``seconds`` from first opening the row to ``outcome`` (``review`` or ``reject``; see
    :func:`spent`), and drop the draft."""
    drafts, timings = ws.t["review_drafts"], ws.t["review_timings"]
    timed = dict(reviewer=reviewer, candidate_id=candidate_id, outcome=outcome, review_id=review_id, seconds=seconds)
    drop = ws.statement(
        "drafts.drop",
        lambda: drafts.delete().where(
            (drafts.c.reviewer == sa.bindparam("who")) & (drafts.c.candidate_id == sa.bindparam("cid"))
        ),
    )
    with ws.tx() as conn:
        conn.execute(ws.statement("timings.insert", timings.insert), {**timed, "created_at": now_iso()})
        conn.execute(drop, {"who": reviewer, "cid": candidate_id})


def timings(ws: Workspace, candidate_id: str | None = None) -> list[dict[str, Any]]:
    """Time spent per reviewed row (who, which candidate, outcome, review id, seconds), oldest first."""
    t = ws.t["review_timings"]
    q = sa.select(t).order_by(t.c.id)
    if candidate_id is not None:
        q = q.where(t.c.candidate_id == candidate_id)
    with ws.tx() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


@dataclass
class Shown:
    """A candidate as the page shows it: the output and the recorded trajectory only once they may be seen."""

    candidate: Candidate
    metadata: dict[str, Any]
    output: str | None
    trajectory: list[dict[str, Any]]
    revealed: bool
    blind: bool


def shown(step: rev.ReviewStep, draft: Draft, blind: bool, ws: Workspace, reviewer: str | None) -> Shown:
    """What of ``step``'s candidate the page may show: the recorded output comes from the step itself (which
    refuses it in a blind session before the expected behaviour is written); the trajectory kept in the
    candidate's metadata is the output too, so it is held back with it. ``reviewer`` (None for a reader, who
    keeps no draft) has the draft note an output shown before the expected behaviour."""
    cand = step.candidate
    meta = {k: v for k, v in cand.metadata.items() if k != "recorded_trajectory"}
    output: str | None = None
    revealed = False
    if draft.expected_written:
        try:
            step.write_expected(draft.get("reference"), draft.get("behavior_code"), draft.assertions())
        except EvaltrayError:  # emptied since it was written: the output stays hidden until it is written again
            draft.expected_written = False
        else:
            output, revealed = step.recorded_output(), True
    if not revealed and not blind:
        output, revealed = step.recorded_output(), True
        if not draft.output_seen_first and reviewer is not None:
            draft.output_seen_first = True
            save_draft(ws, reviewer, cand.id, draft)
    trajectory = list(cand.metadata.get("recorded_trajectory") or []) if revealed else []
    return Shown(cand, meta, output, trajectory, revealed, blind)
