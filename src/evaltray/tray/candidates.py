"""The candidate pool: cheap, untrusted rows waiting for a person's label and the gate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound, PermissionDenied
from evaltray.core.records import LABEL_ROLES, REJECT_REASONS, SOURCES
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.text import neutral_text
from evaltray.core.traces import conjunction, read_messages
from evaltray.core.util import content_hash, dumps, loads, now_iso

PENDING, REJECTED, PROMOTED = "pending", "rejected", "promoted"
log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A row of the pool, with JSON columns decoded."""

    id: str
    set_name: str
    source: str
    trace_id: str | None
    ingest_date: str | None
    input: dict[str, Any]
    recorded_output: str | None
    labels: dict[str, Any]
    slice: str | None
    difficulty: str | None
    case_type: str | None
    risk_level: str | None
    notes: str | None
    weight: int
    status: str
    reject_reason: str | None
    case_id: str | None
    supersedes: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    created_at: str = ""

    @classmethod
    def from_row(cls, row: Any) -> Candidate:
        m = row._mapping
        return cls(**{f.name: loads(m[f.name]) if f.name in _JSON_FIELDS else m[f.name] for f in fields(cls)})


#: Candidate fields stored as JSON text.
_JSON_FIELDS = frozenset({"input", "labels", "metadata"})


CUTS = ("last-user", "first-user")


def split_conversation(
    messages: list[dict[str, Any]], cut: str = "last-user"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a conversation into what the system received and what it did after.

    ``last-user`` cuts after the last user message (a chat turn to answer); ``first-user`` cuts after
    the first one (an agentic task whose whole trajectory is the behaviour under test). A user turn that is
    only machinery (a simulator's ``###STOP###``, a placeholder, template markup) is never the cut.
    """
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return messages, []
    worded = [
        i for i in users if not isinstance(messages[i].get("content"), str) or neutral_text(messages[i]["content"])
    ]
    users = worded or users
    at = users[-1] if cut == "last-user" else users[0]
    return messages[: at + 1], messages[at + 1 :]


def render_output(after: list[dict[str, Any]]) -> str | None:
    """The recorded behaviour as text a reviewer can read: replies, tool calls and tool results."""
    lines = []
    for m in after:
        role = m.get("role")
        if m.get("content"):
            lines.append(m["content"] if role == "assistant" else f"[{role}] {m['content']}")
        for call in m.get("tool_calls") or []:
            lines.append(f"[tool call] {call.get('name')}({dumps(call.get('arguments'))})")
    return "\n".join(lines) if lines else None


def candidate_id(set_name: str, key: str) -> str:
    return "cand-" + content_hash([set_name, key])[:12]


def _insert(
    ws: Workspace,
    conn: sa.Connection,
    cid: str,
    set_name: str,
    source: str,
    actor: str,
    *,
    input: dict[str, Any],
    recorded_output: str | None = None,
    trace_id: str | None = None,
    ingest_date: str | None = None,
    labels: dict[str, Any] | None = None,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    risk_level: str | None = None,
    notes: str | None = None,
    weight: int = 1,
    supersedes: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        ws.t["candidates"]
        .insert()
        .values(
            id=cid,
            set_name=set_name,
            source=source,
            trace_id=trace_id,
            ingest_date=ingest_date,
            input=dumps(input),
            recorded_output=recorded_output,
            labels=dumps(labels or {"tags": []}),
            slice=slice,
            difficulty=difficulty,
            case_type=case_type,
            risk_level=risk_level,
            notes=notes,
            weight=weight,
            status=PENDING,
            supersedes=supersedes,
            metadata=dumps(metadata or {}),
            created_by=actor,
            created_at=now_iso(),
        )
    )
    ws.audit(conn, actor, "candidate.add", cid, source=source, trace_id=trace_id, set=set_name)


#: The trace columns a pool row is made from.
_TRACE_COLUMNS = (
    "trace_id",
    "ingest_date",
    "messages",
    "tools",
    "feature",
    "tags",
    "retrieved_doc_ids",
    "feedback_score",
    "model",
    "corpus_version",
    "metadata",
    "scrubbed",
)


def add_from_traces(
    ws: Workspace,
    actor: str,
    where: str | None = None,
    limit: int | None = None,
    set_name: str | None = None,
    source: str = "production",
    trace_ids: Iterable[str] | None = None,
    cut: str = "last-user",
    annotate: Callable[[str], dict[str, Any]] | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Copy matching traces (with a kept payload) into the pool; traces already there are skipped.

    ``source='user_feedback'`` marks rows mined from feedback: they still need a written label.
    Where the workspace scrubs, traces not scrubbed yet are skipped too, with a warning saying how many.
    """
    ws.require(actor, CURATE_ROLES, "adding candidates")
    set_name = ws.check_set(set_name)
    if source not in SOURCES:
        raise EvaltrayError(f"unknown source {source!r} (one of: {', '.join(SOURCES)})")
    if cut not in CUTS:
        raise EvaltrayError(f"unknown cut {cut!r} (one of: {', '.join(CUTS)})")
    table = ws.trace_store().query(
        conjunction("payload_kept", where), columns=_TRACE_COLUMNS, order_by="start_time NULLS LAST, trace_id"
    )
    wanted = set(trace_ids) if trace_ids is not None else None
    cands = ws.t["candidates"]
    added: list[str] = []
    unscrubbed = 0
    with ws.tx() as conn:
        have = {r[0] for r in conn.execute(sa.select(cands.c.id).where(cands.c.set_name == set_name))}
        for row in table.to_pylist():
            if wanted is not None and row["trace_id"] not in wanted:
                continue
            cid = candidate_id(set_name, row["trace_id"])
            if cid in have:
                continue
            if ws.settings.scrub and row["scrubbed"] is not True:
                unscrubbed += 1  # its text would reach reviewers as recorded
                continue
            before, after = split_conversation(read_messages(row["messages"]), cut)
            if not before:
                continue
            extra = annotate(row["trace_id"]) if annotate else {}
            if not dry_run:
                _insert(ws, conn, cid, set_name, source, actor, **_trace_fields(row, before, after, extra))
            have.add(cid)
            added.append(cid)
            if limit is not None and len(added) >= limit:
                break
    if unscrubbed:
        log.warning(
            "skipped %d trace(s) not scrubbed yet (ingested with scrubbing off, or before it existed); "
            "run `evaltray scrub`, then add them again",
            unscrubbed,
        )
    return added


def _trace_fields(
    row: dict[str, Any], before: list[dict[str, Any]], after: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    """The pool fields (``_insert``'s keywords) of a trace cut into ``before`` and ``after``; the annotator's
    ``extra`` fills labels the trace leaves unset, adds metadata and may set a weight."""
    labels = {"feature": row["feature"], "scenario": None, "persona": None, "tags": list(row["tags"] or [])}
    labels.update({k: v for k, v in (extra.get("labels") or {}).items() if k in labels and v is not None})
    return {
        "input": {
            "messages": before,
            "tools": loads(row["tools"]) if row["tools"] else [],
            "context": [],
            "retrieved_doc_ids": list(row["retrieved_doc_ids"] or []),
        },
        "recorded_output": render_output(after),
        "trace_id": row["trace_id"],
        "ingest_date": row["ingest_date"],
        "labels": labels,
        "metadata": {
            "model": row["model"],
            "feedback_score": row["feedback_score"],
            "corpus_version": row["corpus_version"],
            "recorded_trajectory": after,
            "trace_metadata": loads(row["metadata"]) if row["metadata"] else {},
            **(extra.get("metadata") or {}),
        },
        "weight": int(extra.get("weight", 1)),
    }


def add_manual(
    ws: Workspace,
    actor: str,
    source: str,
    messages: list[dict[str, Any]],
    *,
    set_name: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    context: list[str] | None = None,
    labels: dict[str, Any] | None = None,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    risk_level: str | None = None,
    notes: str | None = None,
    supersedes: str | None = None,
    recorded_output: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """A candidate no trace produced (SME-written, red-team, a known bug, a synthetic input); ``metadata`` says
    where it came from (a synthetic input's generator, template hash and run)."""
    set_name = ws.check_set(set_name)
    if source not in SOURCES:
        raise EvaltrayError(f"unknown source {source!r} (one of: {', '.join(SOURCES)})")
    if ws.role_of(actor) not in LABEL_ROLES:
        raise PermissionDenied(f"user {actor!r} may not add cases (needs labeler, adjudicator or admin)")
    if not messages or not any(m.get("role") == "user" for m in messages):
        raise EvaltrayError("a case needs at least one user message")
    inp = {"messages": messages, "tools": tools or [], "context": context or [], "retrieved_doc_ids": []}
    key = f"{source}:{content_hash(inp)}:{supersedes or ''}"
    cands = ws.t["candidates"]
    with ws.tx() as conn:
        n = 0
        while True:  # the same input may come back after its case was retired; a pending twin is a duplicate
            cid = candidate_id(set_name, f"{key}:{n}" if n else key)
            row = conn.execute(sa.select(cands.c.status).where(cands.c.id == cid)).first()
            if row is None:
                break
            if row[0] == PENDING:
                raise EvaltrayError(f"candidate {cid} with this input is already pending")
            n += 1
        _insert(
            ws,
            conn,
            cid,
            set_name,
            source,
            actor,
            input=inp,
            labels=labels,
            slice=slice,
            difficulty=difficulty,
            case_type=case_type,
            risk_level=risk_level,
            notes=notes,
            supersedes=supersedes,
            recorded_output=recorded_output,
            metadata=metadata,
        )
    return cid


def get(ws: Workspace, cid: str) -> Candidate:
    cands = ws.t["candidates"]
    q = ws.statement("candidates.get", lambda: sa.select(cands).where(cands.c.id == sa.bindparam("cid")))
    with ws.tx() as conn:
        row = conn.execute(q, {"cid": cid}).first()
    if row is None:
        raise NotFound(f"no candidate {cid!r}")
    return Candidate.from_row(row)


def list_candidates(
    ws: Workspace, set_name: str | None = None, status: str | None = None, limit: int | None = None
) -> list[Candidate]:
    cands = ws.t["candidates"]
    q = sa.select(cands).order_by(cands.c.created_at, cands.c.id)
    if set_name:
        q = q.where(cands.c.set_name == set_name)
    if status:
        q = q.where(cands.c.status == status)
    if limit:
        q = q.limit(limit)
    with ws.tx() as conn:
        return [Candidate.from_row(r) for r in conn.execute(q)]


def set_labels(ws: Workspace, cid: str, actor: str, **labels: Any) -> Candidate:
    """Set feature/scenario/persona/tags (and slice, difficulty, case type) on a pending candidate."""
    ws.require(actor, LABEL_ROLES, "labeling a candidate")
    cand = get(ws, cid)
    if cand.status != PENDING:
        raise EvaltrayError(f"candidate {cid} is {cand.status}; only pending candidates can be relabeled here")
    columns = {k: v for k in ("slice", "difficulty", "case_type") if (v := labels.pop(k, None)) is not None}
    unknown = set(labels) - {"feature", "scenario", "persona", "tags"}
    if unknown:
        raise EvaltrayError(f"unknown label(s): {', '.join(sorted(unknown))}")
    merged = {**cand.labels, **{k: v for k, v in labels.items() if v is not None}}
    cands = ws.t["candidates"]
    with ws.tx() as conn:
        conn.execute(cands.update().where(cands.c.id == cid).values(labels=dumps(merged), **columns))
        ws.audit(conn, actor, "candidate.labels", cid, **labels, **columns)
    return get(ws, cid)


def reject(
    ws: Workspace, cid: str, reason: str, actor: str, note: str | None = None, dry_run: bool = False
) -> Candidate:
    """Move a candidate to the reject bin with one of the standard reasons; it is kept, never deleted."""
    reason = reason.strip().lower().replace(" ", "_").replace("-", "_")
    if reason not in REJECT_REASONS:
        raise EvaltrayError(f"unknown reject reason {reason!r} (one of: {', '.join(REJECT_REASONS)})")
    ws.require(actor, LABEL_ROLES, "rejecting a candidate")
    cand = get(ws, cid)
    if cand.status != PENDING:
        raise EvaltrayError(f"candidate {cid} is {cand.status}; only pending candidates can be rejected")
    if not dry_run:
        cands = ws.t["candidates"]
        with ws.tx() as conn:
            conn.execute(
                cands.update()
                .where(cands.c.id == cid)
                .values(
                    status=REJECTED, reject_reason=reason, reject_note=note, rejected_by=actor, rejected_at=now_iso()
                )
            )
            ws.audit(conn, actor, "candidate.reject", cid, reason=reason)
    cand.status, cand.reject_reason = REJECTED, reason
    return cand


def reject_bin(ws: Workspace, set_name: str | None = None) -> dict[str, int]:
    """How many candidates were rejected, by reason."""
    cands = ws.t["candidates"]
    q = (
        sa.select(cands.c.reject_reason, sa.func.count())
        .where(cands.c.status == REJECTED)
        .group_by(cands.c.reject_reason)
    )
    if set_name:
        q = q.where(cands.c.set_name == set_name)
    with ws.tx() as conn:
        return {r[0]: r[1] for r in conn.execute(q)}
