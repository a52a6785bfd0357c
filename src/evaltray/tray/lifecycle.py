"""A case's life outside the review queue: written by hand, relabeled, superseded; and the tray's views
(one case, the registry, counts, validation of every set) that front ends show.

Each function is one user action, so the CLI, the web app and scripts call the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import Workspace

from . import candidates as pool
from .casefile import Recovered, load_cases, tray_lock
from .gate import ACTIVE, Problem, case_registry, derive_slice, validate
from .review import Review, normalize_expected, record_review

__all__ = [
    "AddedCase",
    "CaseInput",
    "add_case",
    "case_input",
    "get_case",
    "list_cases",
    "missing_for_gate",
    "relabel_case",
    "repair_tray",
    "supersede_case",
    "tray_stats",
    "validate_sets",
]

#: The axes ``tray_stats`` counts cases by.
STAT_AXES = ("slice", "source", "difficulty", "case_type")


@dataclass(frozen=True)
class CaseInput:
    """What a case asks: the conversation so far, the tools on offer and the context retrieved."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    context: list[str]


def case_input(value: Any) -> CaseInput:
    """A case input from JSON: a list of messages, or an object with ``messages`` (or ``input``, one user
    message) and optional ``tools`` and ``context``."""
    if isinstance(value, str):
        return CaseInput([{"role": "user", "content": value}], [], [])
    if isinstance(value, list):
        value = {"messages": value}
    if not isinstance(value, dict):
        raise EvaltrayError(f"a case input is a JSON object or a list of messages, not {type(value).__name__}")
    messages = value.get("messages")
    if not messages:
        if not isinstance(value.get("input"), str):
            raise EvaltrayError("a case input needs `messages` (a list) or `input` (the user message)")
        messages = [{"role": "user", "content": value["input"]}]
    tools, context = value.get("tools") or [], value.get("context") or []
    if not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
        raise EvaltrayError("`messages` must be a list of objects with a role and content")
    if not isinstance(tools, list) or not isinstance(context, list):
        raise EvaltrayError("`tools` and `context` must be lists")
    return CaseInput(messages, tools, context)


@dataclass(frozen=True)
class AddedCase:
    candidate_id: str
    labeled: bool
    signed: bool
    #: what ``promote`` still needs of it (see :func:`missing_for_gate`); empty when the gate takes it
    missing: tuple[str, ...] = ()


def missing_for_gate(
    ws: Workspace,
    cand: pool.Candidate,
    *,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    labeled: bool = True,
    signed: bool = True,
) -> list[str]:
    """What the gate still needs of a candidate that a review with these fields would give it, in the order
    ``slice``, ``difficulty``, ``case type``, ``expected behaviour``, ``sign-off``; empty when nothing is
    missing. The candidate's own slice, difficulty and case type count, and so does a slice its labels give."""
    have = {
        "slice": slice or cand.slice or derive_slice(cand.labels, ws.settings.slice_by),
        "difficulty": difficulty or cand.difficulty,
        "case type": case_type or cand.case_type,
        "expected behaviour": labeled,
        "sign-off": signed,
    }
    return [name for name, value in have.items() if not value]


def add_case(
    ws: Workspace,
    actor: str,
    source: str,
    given: CaseInput,
    *,
    set_name: str | None = None,
    reference: str | None = None,
    behavior_code: str | None = None,
    assertions: Iterable[str] = (),
    labels: dict[str, Any] | None = None,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    risk_level: str | None = None,
    notes: str | None = None,
) -> AddedCase:
    """A case no trace produced, as a candidate; with an expected behaviour it is labeled (and signed where the
    actor may sign) at once, so ``promote`` can take it into the tray."""
    asserts = list(assertions)
    expected = None
    if reference or behavior_code or asserts:  # checked before anything is written
        expected = normalize_expected(ws, actor, reference, behavior_code, asserts)
    cid = pool.add_manual(
        ws,
        actor,
        source,
        given.messages,
        set_name=set_name,
        tools=given.tools,
        context=given.context,
        labels=labels,
        slice=slice,
        difficulty=difficulty,
        case_type=case_type,
        risk_level=risk_level,
        notes=notes,
    )
    if expected is None:
        missing = missing_for_gate(
            ws, pool.get(ws, cid), slice=slice, difficulty=difficulty, case_type=case_type, labeled=False, signed=False
        )
        return AddedCase(cid, labeled=False, signed=False, missing=tuple(missing))
    review = record_review(
        ws,
        cid,
        actor,
        expected,
        slice=slice,
        difficulty=difficulty,
        case_type=case_type,
        expected_first=True,
        sign=True,
    )
    signed = bool(review.signed_by)
    missing = missing_for_gate(
        ws, pool.get(ws, cid), slice=slice, difficulty=difficulty, case_type=case_type, signed=signed
    )
    return AddedCase(cid, labeled=True, signed=signed, missing=tuple(missing))


def _active(ws: Workspace, case_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The registry row and the tray row of an active case."""
    reg = {r["id"]: r for r in case_registry(ws)}.get(case_id)
    if reg is None or reg["status"] != ACTIVE:
        raise NotFound(f"no active case {case_id!r}")
    return reg, load_cases(ws, reg["set_name"])[case_id]


def relabel_case(
    ws: Workspace,
    case_id: str,
    actor: str,
    *,
    reference: str | None = None,
    behavior_code: str | None = None,
    assertions: Iterable[str] = (),
    critique: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_calls_ordered: bool | None = None,
) -> Review:
    """A new, signed label for an active case; ``promote`` applies it under the same id, as a relabel.

    The verdict, failure tags, rubric, slice, difficulty and case type carry over from the case.
    """
    expected = normalize_expected(
        ws,
        actor,
        reference,
        behavior_code,
        list(assertions),
        tool_calls=tool_calls,
        tool_calls_ordered=tool_calls_ordered,
    )
    with tray_lock(ws, actor):  # the case stays active while its new label is recorded
        reg, old = _active(ws, case_id)
        return record_review(
            ws,
            reg["candidate_id"],
            actor,
            expected,
            verdict=old["review"]["verdict"],
            critique=critique or old["review"]["critique"],
            failure_tags=old["review"]["failure_tags"],
            rubric=old.get("rubric"),
            slice=old["slice"],
            difficulty=old["difficulty"],
            case_type=old["case_type"],
            sign=True,
        )


def supersede_case(ws: Workspace, case_id: str, actor: str, given: CaseInput) -> str:
    """A candidate with a new input for an active case; once labeled and promoted it gets a new id and the old
    case retires. Tools and context the new input leaves out carry over, as do labels and slice."""
    with tray_lock(ws, actor):  # the case stays active while its successor is recorded
        reg, old = _active(ws, case_id)
        return pool.add_manual(
            ws,
            actor,
            old["provenance"]["source"],
            given.messages,
            set_name=reg["set_name"],
            tools=given.tools or old["input"]["tools"],
            context=given.context or old["input"]["context"],
            labels=old["labels"],
            slice=old["slice"],
            difficulty=old["difficulty"],
            case_type=old["case_type"],
            risk_level=old["risk_level"],
            notes=old.get("notes"),
            supersedes=case_id,
        )


def repair_tray(ws: Workspace, actor: str) -> Recovered | None:
    """Finish or roll back a release a crash left half-written (every tray writer does this first too);
    None when there was nothing to repair."""
    ws.role_of(actor)  # a registered user
    with tray_lock(ws, actor) as recovered:
        return recovered


def get_case(ws: Workspace, case_id: str, set_name: str | None = None) -> dict[str, Any]:
    """One case of a set's tray, as stored."""
    set_name = ws.check_set(set_name)
    case = load_cases(ws, set_name).get(case_id)
    if case is None:
        raise NotFound(f"no case {case_id!r} in set {set_name!r}")
    return case


def list_cases(ws: Workspace, set_name: str | None = None, include_retired: bool = False) -> list[dict[str, Any]]:
    """The case registry of a set (retired ids too, with ``include_retired``), by id."""
    return [r for r in case_registry(ws, ws.check_set(set_name)) if include_retired or r["status"] == ACTIVE]


def tray_stats(ws: Workspace, set_name: str | None = None) -> dict[str, Any]:
    """Cases of a set's tray counted by slice, source, difficulty and case type, and in ``total``."""
    cases = list(load_cases(ws, ws.check_set(set_name)).values())
    stats: dict[str, Any] = {
        axis: dict(Counter(str(c["provenance"]["source"] if axis == "source" else c[axis]) for c in cases))
        for axis in STAT_AXES
    }
    stats["total"] = len(cases)
    return stats


def validate_sets(ws: Workspace, set_name: str | None = None) -> dict[str, list[Problem]]:
    """The problems of one set's tray file, or of every set's; an empty list means the file is sound."""
    names = [ws.check_set(set_name)] if set_name else ws.settings.sets
    return {name: validate(ws, name) for name in names}
