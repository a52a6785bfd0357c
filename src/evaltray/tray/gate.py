"""The golden tray's one-way validation gate, and the case registry behind it.

A row enters the tray file (:mod:`.casefile`) only through :func:`promote`, which needs a complete
six-tuple and a signed review; :func:`validate` catches any row that got there another way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError

from evaltray.core.errors import GateError, NotFound
from evaltray.core.keys import Signer
from evaltray.core.records import COMPOSE_ROLES, SIGN_ROLES, Case, CaseStatus, RegisteredCase, RegistryState, Role
from evaltray.core.registry import Registry
from evaltray.core.store import Workspace
from evaltray.core.util import bulk, content_hash, now_iso, sha256_hex

from .candidates import PENDING, PROMOTED, Candidate, get
from .casefile import (
    PENDING_VERSION,
    TrayRows,
    commit_tray,
    line_signed_hash,
    load_cases,
    read_tray,
    signed_hash,
    tray_lock,
)
from .review import Review, latest_review
from .signatures import Keys, input_hash, label_of, latest_signed_release, prove_rows, sign_promotion
from .signatures import signoff_problem as signoff_signature_problem

ACTIVE, RETIRED = CaseStatus.ACTIVE.value, CaseStatus.RETIRED.value


# ----------------------------------------------------------------------------- checks the monitors add

#: What a check says of a case: its id, a sentence, and whether it refuses the case (else it warns).
Finding = tuple[str, str, bool]
#: Checks ``promote`` runs on the rows it is about to admit: ``(ws, set, tray as it will be, new rows,
#: strict)``. The monitors (``evaltray.monitor``) register here; tray imports none of them.
PromoteCheck = Callable[[Workspace, str, dict[str, dict[str, Any]], list[dict[str, Any]], bool], list[Finding]]
PROMOTE_CHECKS: Registry[PromoteCheck] = Registry("promote check")
#: Checks ``release create`` runs on each set's tray, under the tray lock: ``(ws, set, strict)``.
ReleaseCheck = Callable[[Workspace, str, bool], list[Finding]]
RELEASE_CHECKS: Registry[ReleaseCheck] = Registry("release check")


def example_key(text: str) -> str:
    """The key a prompt example is tagged do-not-use-in-eval by: its text casefolded, spaces collapsed, hashed."""
    return sha256_hex(" ".join(text.casefold().split()))


def user_text(case: dict[str, Any]) -> str:
    """A case's user turns, one after another: what a prompt example would have to equal."""
    msgs = (case.get("input") or {}).get("messages") or []
    return "\n".join(m["content"] for m in msgs if m.get("role") == "user" and isinstance(m.get("content"), str))


def tagged_examples(ws: Workspace) -> dict[str, str]:
    """Every prompt example tagged do-not-use-in-eval: its key and where it was tagged (``file:line``)."""
    table = ws.t["do_not_use"]
    with ws.tx() as conn:
        return {key: source for key, source in conn.execute(sa.select(table.c.text_key, table.c.source))}


def do_not_use(ws: Workspace, cases: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The cases whose user text is a prompt example tagged do-not-use-in-eval, each with where it was tagged."""
    tagged = tagged_examples(ws)
    if not tagged:
        return {}
    return {str(c["id"]): tagged[k] for c in cases if (k := example_key(user_text(c))) in tagged}


def refuse_do_not_use(ws: Workspace, cases: Iterable[dict[str, Any]], what: str) -> None:
    """Dataset loaders enforce the tag: cases that are tagged prompt examples stop ``what``, naming their ids."""
    tagged = do_not_use(ws, cases)
    if tagged:
        named = ", ".join(f"{cid} ({src})" for cid, src in sorted(tagged.items())[:10])
        raise GateError(
            f"{what}: {len(tagged)} case(s) are prompt examples tagged do-not-use-in-eval: {named}; "
            "retire them (`evaltray retire ID --reason contaminated`)"
        )


def _run_promote_checks(
    ws: Workspace, set_name: str, tray: dict[str, dict[str, Any]], rows: list[dict[str, Any]], strict: bool
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Refusals by case id, and warnings, of every registered promote check."""
    refused: dict[str, list[str]] = {}
    warnings: list[tuple[str, str]] = []
    for _, check in PROMOTE_CHECKS.items():
        for case_id, message, refuse in check(ws, set_name, tray, rows, strict):
            if refuse:
                refused.setdefault(case_id, []).append(message)
            else:
                warnings.append((case_id, message))
    return refused, warnings


# ----------------------------------------------------------------------------- the gate

#: Who may let rows through the gate.
PROMOTE_ROLES = SIGN_ROLES | {Role.COMPOSITION_OWNER}


@dataclass
class Promotion:
    candidate_id: str
    case_id: str
    kind: str  # new | relabel | supersede


@dataclass
class PromoteReport:
    promoted: list[Promotion] = field(default_factory=list)
    blocked: list[tuple[str, list[str]]] = field(default_factory=list)
    awaiting_review: int = 0
    #: (case id, sentence) from the monitors' promote checks that did not refuse the case
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        """The report as JSON (what ``evaltray promote --json`` prints and the web's promote answers)."""
        return {
            "promoted": [asdict(p) for p in self.promoted],
            "blocked": [{"candidate_id": c, "problems": p} for c, p in self.blocked],
            "warnings": [{"case_id": c, "warning": w} for c, w in self.warnings],
            "awaiting_review": self.awaiting_review,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PromoteReport:
        """The report :meth:`as_data` wrote (a CLI reading a team server's answer)."""
        return cls(
            [Promotion(**p) for p in data["promoted"]],
            [(b["candidate_id"], list(b["problems"])) for b in data["blocked"]],
            int(data["awaiting_review"]),
            [(w["case_id"], w["warning"]) for w in data["warnings"]],
        )


def derive_slice(labels: dict[str, Any], keys: list[str]) -> str | None:
    parts = [str(labels.get(k)) for k in keys if labels.get(k)]
    return "/".join(parts) if parts else None


def build_case(
    ws: Workspace, cand: Candidate, review: Review, case_id: str, *, created_at: str, version_added: str
) -> dict[str, Any]:
    """The tray row for a candidate and its signed review (not yet checked)."""
    labels = {
        "feature": cand.labels.get("feature"),
        "scenario": cand.labels.get("scenario"),
        "persona": cand.labels.get("persona"),
        "tags": list(cand.labels.get("tags") or []),
    }
    return {
        "id": case_id,
        "set": cand.set_name,
        "input": cand.input,
        "input_hash": input_hash(cand.input),
        "expected": review.expected,
        "rubric": review.rubric,
        "guide_version": review.guide_version,
        "corpus_version": cand.metadata.get("corpus_version"),
        "labels": labels,
        "slice": review.slice or cand.slice or derive_slice(labels, ws.settings.slice_by),
        "difficulty": review.difficulty or cand.difficulty,
        "case_type": review.case_type or cand.case_type,
        "evaluation_type": cand.metadata.get("evaluation_type", "behavior"),
        "risk_level": cand.risk_level or "medium",
        "notes": cand.notes,
        "created_at": created_at,
        "provenance": {
            "source": cand.source,
            "trace_id": cand.trace_id,
            "ingest_date": cand.ingest_date,
            "candidate_id": cand.id,
            "labeled_by": review.expected.get("written_by"),
            "supersedes": cand.supersedes,
        },
        "review": {
            "verdict": review.verdict,
            "critique": review.critique,
            "failure_tags": review.failure_tags,
            "recorded_output": cand.recorded_output,
        },
        "freshness": {"last_verified_at": review.signed_at, "verified_by": review.signed_by},
        "owner": ws.settings.label_owner or review.signed_by,
        "validation": {
            "review_id": review.id,
            "signed_by": review.signed_by,
            "signed_at": review.signed_at,
            "signoff_signature": review.signoff_signature,
        },
        "version": {"added": version_added, "last_changed": PENDING_VERSION},
    }


def _schema_problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        msg = "missing" if err["type"] in ("missing", "none_required") else err["msg"]
        if err["type"] in ("string_type", "literal_error", "enum") and err.get("input") is None:
            msg = "missing"
        out.append(f"{loc}: {msg}")
    return out


def check_case(case: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """Validate a row against :class:`Case`; return its normal JSON form or the problems."""
    try:
        model = Case.model_validate(case)
    except ValidationError as exc:
        return None, _schema_problems(exc)
    return model.model_dump(mode="json"), []


def _gate_problems(ws: Workspace, cand: Candidate, review: Review, case: dict[str, Any], keys: Keys) -> list[str]:
    """The gate's rules on the label itself: signed off, with a signature of this label, by someone who may
    sign; written by a person; and (for a synthetic case) not a copy of the generated output."""
    problems = []
    if not review.signed_by:
        problems.append("not signed off: an adjudicator must sign the label (`evaltray signoff`)")
    elif ws.role_of(review.signed_by) not in SIGN_ROLES:
        problems.append(f"signed by {review.signed_by!r}, whose role may not sign")
    else:
        found = signoff_signature_problem(keys, review.signed_by, review.signoff_signature, review.id, label_of(case))
        problems += [found] if found else []
    if review.expected.get("origin") != "human":
        problems.append("the expected behaviour was generated, not written by a person")
    ref = (review.expected.get("reference") or "").strip()
    if cand.source == "synthetic" and ref and cand.recorded_output and ref == cand.recorded_output.strip():
        problems.append("synthetic case whose expected output copies the generated output")
    return problems


def new_case_id(set_name: str, inp: dict[str, Any], taken: set[str]) -> str:
    """A stable id from the set and the input; a salt avoids every id ever used (retired ids stay retired)."""
    salt = 0
    while True:
        cid = "c-" + content_hash([set_name, inp, salt])[:10]
        if cid not in taken:
            return cid
        salt += 1


def promote(
    ws: Workspace,
    actor: str,
    set_name: str | None = None,
    candidate_ids: list[str] | None = None,
    dry_run: bool = False,
    strict: bool = False,
    signer: Signer | None = None,
) -> PromoteReport:
    """Move every signed, complete candidate into the tray, each row signed with ``actor``'s key (or with
    ``signer``, a web server's registered key, when the server proved who ``actor`` is); report what
    is blocked and why (a sign-off whose signature does not verify is blocked). The registered promote checks
    run on the new rows: what they refuse is blocked, what they warn of is reported (``strict``: refused)."""
    set_name = ws.check_set(set_name)
    ws.require(actor, PROMOTE_ROLES, "promoting")
    signer = signer or ws.signer(actor)
    keys = ws.registered_keys()
    report = PromoteReport()
    with tray_lock(ws, actor, recover=not dry_run):
        ids, registry = _promotion_queue(ws, set_name, candidate_ids)  # read under the lock: no stale registry
        tray = load_cases(ws, set_name)
        taken = set(registry)
        updates: list[tuple[Candidate, Review, dict[str, Any], str]] = []
        for cid in ids:
            cand = get(ws, cid)
            review = latest_review(ws, cid)
            if review is None:
                report.awaiting_review += cand.status == PENDING
                continue
            slot = _slot(cand, review, registry, tray, set_name, taken)
            if slot is None:
                continue
            row, problems = _admit(ws, cand, review, slot, tray, set_name, keys)
            if row is None:
                report.blocked.append((cid, problems))
                continue
            sign_promotion(signer, row)
            taken.add(slot.case_id)
            tray[slot.case_id] = row
            if cand.supersedes:
                tray.pop(cand.supersedes, None)
            updates.append((cand, review, row, slot.kind))
            report.promoted.append(Promotion(cid, slot.case_id, slot.kind))
        updates = _checked(ws, set_name, tray, updates, report, strict)
        if dry_run or not updates:
            return report
        commit_tray(
            ws, actor, set_name, "promote", tray.values(), lambda conn: _register(ws, conn, actor, set_name, updates)
        )
    return report


def _checked(
    ws: Workspace,
    set_name: str,
    tray: dict[str, dict[str, Any]],
    updates: list[tuple[Candidate, Review, dict[str, Any], str]],
    report: PromoteReport,
    strict: bool,
) -> list[tuple[Candidate, Review, dict[str, Any], str]]:
    """The updates the promote checks let through; the refused ones move to ``report.blocked``."""
    fresh = [row for _, _, row, kind in updates if kind == "new"]  # a relabel or supersede keeps its input's past
    if not fresh or not len(PROMOTE_CHECKS):
        return updates
    refused, report.warnings = _run_promote_checks(ws, set_name, tray, fresh, strict)
    kept = []
    for cand, review, row, kind in updates:
        if row["id"] in refused:
            tray.pop(row["id"], None)
            report.blocked.append((cand.id, refused[row["id"]]))
            report.promoted = [p for p in report.promoted if p.case_id != row["id"]]
        else:
            kept.append((cand, review, row, kind))
    return kept


def _promotion_queue(
    ws: Workspace, set_name: str, candidate_ids: list[str] | None
) -> tuple[list[str], dict[str, sa.Row[Any]]]:
    """The ids of the set's pending and promoted candidates (those asked for), in id order, and the
    case registry by id."""
    cands_t, cases_t = ws.t["candidates"], ws.t["cases"]
    q = sa.select(cands_t.c.id).where(cands_t.c.set_name == set_name, cands_t.c.status.in_([PENDING, PROMOTED]))
    if candidate_ids:
        q = q.where(cands_t.c.id.in_(candidate_ids))
    with ws.tx() as conn:
        ids = [r[0] for r in conn.execute(q.order_by(cands_t.c.id))]
        registry = {r.id: r for r in conn.execute(sa.select(cases_t))}
    return ids, registry


@dataclass(frozen=True)
class _Slot:
    """Where a reviewed candidate lands in the tray, and the stamps its row keeps."""

    kind: str  # new | relabel | supersede
    case_id: str
    created_at: str
    version_added: str


def _slot(
    cand: Candidate,
    review: Review,
    registry: dict[str, sa.Row[Any]],
    tray: dict[str, dict[str, Any]],
    set_name: str,
    taken: set[str],
) -> _Slot | None:
    """A fresh case for a pending candidate; for a promoted one, a relabel of its active case when a newer
    signed review exists, else None (nothing to do)."""
    if cand.status == PROMOTED:
        reg = registry.get(cand.case_id or "")
        if reg is None or reg.status != ACTIVE or reg.review_id == review.id or not review.signed_by:
            return None
        old = tray.get(reg.id, {})
        return _Slot(
            "relabel",
            reg.id,
            old.get("created_at", reg.created_at),
            old.get("version", {}).get("added", PENDING_VERSION),
        )
    kind = "supersede" if cand.supersedes else "new"
    return _Slot(kind, new_case_id(set_name, cand.input, taken), now_iso(), PENDING_VERSION)


def _admit(
    ws: Workspace,
    cand: Candidate,
    review: Review,
    slot: _Slot,
    tray: dict[str, dict[str, Any]],
    set_name: str,
    keys: Keys,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The gate's rules for one candidate: its checked tray row when it may pass, else None and every reason."""
    case = build_case(ws, cand, review, slot.case_id, created_at=slot.created_at, version_added=slot.version_added)
    row, schema = check_case(case)
    problems = _gate_problems(ws, cand, review, row or case, keys)
    if not review.signed_by:  # the sign-off problem already says it; skip its knock-on fields
        schema = [p for p in schema if not p.startswith(("freshness.", "validation.", "owner"))]
    problems += schema
    if cand.supersedes and cand.supersedes not in tray:
        problems.append(f"supersedes {cand.supersedes}, which is not an active case in set {set_name}")
    if problems:
        return None, problems
    assert row is not None  # no schema problem means a row
    return row, []


def _register(
    ws: Workspace,
    conn: sa.Connection,
    actor: str,
    set_name: str,
    updates: list[tuple[Candidate, Review, dict[str, Any], str]],
) -> None:
    """Record promoted rows in the case registry, mark their candidates, retire what they supersede, and
    audit each, in ``conn``'s transaction."""
    cands_t, cases_t = ws.t["candidates"], ws.t["cases"]
    for cand, review, row, kind in updates:
        values = dict(
            review_id=review.id,
            content_hash=signed_hash(row),
            slice=row["slice"],
            source=row["provenance"]["source"],
            difficulty=row["difficulty"],
            case_type=row["case_type"],
            supersedes=row["provenance"]["supersedes"],
            promoted_by=row["validation"]["promoted_by"],
            promotion_signature=row["validation"]["promotion_signature"],
        )
        if kind == "relabel":
            conn.execute(cases_t.update().where(cases_t.c.id == row["id"]).values(**values))
        else:
            conn.execute(
                cases_t.insert().values(
                    id=row["id"],
                    set_name=set_name,
                    status=ACTIVE,
                    candidate_id=cand.id,
                    created_at=row["created_at"],
                    **values,
                )
            )
            conn.execute(cands_t.update().where(cands_t.c.id == cand.id).values(status=PROMOTED, case_id=row["id"]))
        if cand.supersedes:
            conn.execute(
                cases_t.update()
                .where(cases_t.c.id == cand.supersedes)
                .values(
                    status=RETIRED,
                    successor=row["id"],
                    retired_reason=f"superseded by {row['id']} (input changed)",
                    retired_by=actor,
                    retired_at=now_iso(),
                )
            )
        signed_as = row["validation"]["promoted_by"]
        extra = {} if signed_as == actor else {"signed_as": signed_as}  # the server's key, the person's act
        ws.audit(conn, actor, f"case.{kind}", row["id"], candidate=cand.id, review_id=review.id, **extra)


def retire(
    ws: Workspace, case_id: str, reason: str, actor: str, set_name: str | None = None, dry_run: bool = False
) -> None:
    """Take a case out of the tray; its id stays reserved forever and the next release drops it."""
    if not reason.strip():
        raise GateError("retiring needs a reason (--reason)")
    ws.require(actor, COMPOSE_ROLES, "retiring a case")
    with tray_lock(ws, actor, recover=not dry_run):
        set_name = _retirable(ws, case_id)  # checked under the lock: a retire racing this one has landed
        if dry_run:
            return
        tray = load_cases(ws, set_name)
        tray.pop(case_id, None)
        cases_t = ws.t["cases"]

        def record(conn: sa.Connection) -> None:
            conn.execute(
                cases_t.update()
                .where(cases_t.c.id == case_id)
                .values(status=RETIRED, retired_reason=reason.strip(), retired_by=actor, retired_at=now_iso())
            )
            ws.audit(conn, actor, "case.retire", case_id, reason=reason.strip())

        commit_tray(ws, actor, set_name, "retire", tray.values(), record)


def _retirable(ws: Workspace, case_id: str) -> str:
    """The set of active case ``case_id``; an unknown or retired id is an error."""
    cases_t = ws.t["cases"]
    with ws.tx() as conn:
        reg = conn.execute(sa.select(cases_t).where(cases_t.c.id == case_id)).first()
    if reg is None:
        raise NotFound(f"no case {case_id!r}")
    if reg.status == RETIRED:
        raise GateError(f"case {case_id} is already retired ({reg.retired_reason})")
    return str(reg.set_name)


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    line: int | None
    case_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        cid = f" {self.case_id}" if self.case_id else ""
        return f"{where}{cid}: {self.message}"


def validate(ws: Workspace, set_name: str | None = None, release_versions: set[str] | None = None) -> list[Problem]:
    """Every way a tray file can be wrong, row by row; an empty list means it is sound."""
    set_name = ws.check_set(set_name)
    with bulk():
        return validate_rows(ws, set_name, read_tray(ws, set_name), release_versions)


def _fetch(conn: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    """Rows as the database driver returns them: a 100k-case tray is 100k registry rows, and
    SQLAlchemy's row processing costs seconds there."""
    cur = conn.connection.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


_REGISTRY_SQL = f"SELECT {', '.join(RegisteredCase._fields)} FROM cases"


def registry_state(ws: Workspace) -> RegistryState:
    """Every case id ever issued with what was signed, and the ids of signed reviews."""
    with ws.tx() as conn:
        cases = {r[0]: r for r in map(RegisteredCase._make, _fetch(conn, _REGISTRY_SQL))}
        signed = {r[0] for r in _fetch(conn, "SELECT id FROM reviews WHERE signed_by IS NOT NULL")}
    return RegistryState(cases, signed)


def read_signed(
    ws: Workspace, set_name: str, release_versions: set[str], state: RegistryState | None = None
) -> tuple[TrayRows, list[Problem]]:
    """The tray's rows for a release, and every problem :func:`validate` finds.

    Lines byte for byte what was signed are not parsed (:func:`.casefile.read_tray` gives their rows as
    registry stubs); any other line is parsed and checked in full. ``state``: the case registry
    (:func:`registry_state`), when the caller reads several sets.
    """
    state = state or registry_state(ws)
    tray = read_tray(ws, set_name, signed=state)
    return tray, validate_rows(ws, set_name, tray, release_versions, state)


def validate_rows(
    ws: Workspace,
    set_name: str,
    tray: TrayRows,
    release_versions: set[str] | None = None,
    state: RegistryState | None = None,
) -> list[Problem]:
    """:func:`validate` over a tray already read (a release reads it once). A row byte-identical to what
    was signed is recognised from its stored line without serialising it again, and the tray's
    ``trusted`` rows were already found to be so."""
    problems = [Problem(line, None, why) for line, why in tray.bad]
    state = state or registry_state(ws)
    registry, signed, trusted, raws = state.cases, state.signed_reviews, tray.trusted, tray.raws
    versions = ws.release_versions() if release_versions is None else release_versions
    known_versions = versions | {PENDING_VERSION}
    seen: dict[str, int] = {}
    previous = ""
    to_prove: list[tuple[int, int, str]] = []  # (index, line, id) of each row whose signatures are checked
    for i, (line, row) in enumerate(tray.rows):
        cid = row.get("id") if isinstance(row.get("id"), str) else None
        if cid is None:
            problems.append(Problem(line, None, "id: missing"))
            continue
        if cid in seen:
            problems.append(Problem(line, cid, f"duplicate id (also on line {seen[cid]})"))
            continue
        seen[cid] = line
        to_prove.append((i, line, cid))
        if cid < previous:
            problems.append(Problem(line, cid, f"not sorted by id (comes after {previous})"))
        previous = max(previous, cid)
        reg = registry.get(cid)
        if i in trusted:
            version = row["version"]
            if {version.get("added"), version.get("last_changed")} - known_versions:
                problems += [
                    Problem(line, cid, f"version.{k} {version.get(k)!r} is not a release of this workspace")
                    for k in ("added", "last_changed")
                    if version.get(k) not in known_versions
                ]
            continue
        if (
            reg is not None
            and reg.status == ACTIVE
            and reg.set_name == set_name
            and reg.review_id in signed
            and row.get("validation", {}).get("review_id") == reg.review_id
            and (line_signed_hash(raws[i], row) or signed_hash(row)) == reg.content_hash
        ):
            # byte for byte what passed the gate: the schema and every rule held then; only the
            # version stamps, outside the signed hash, can have changed since
            version = row.get("version")
            if not isinstance(version, dict) or {version.get("added"), version.get("last_changed")} - known_versions:
                problems += _row_problems(row, line, cid, reg, signed, set_name, known_versions)
            continue
        problems += _row_problems(row, line, cid, reg, signed, set_name, known_versions)
    missing = [
        cid for cid, reg in registry.items() if reg.set_name == set_name and reg.status == ACTIVE and cid not in seen
    ]
    problems += [
        Problem(None, cid, "active case missing from the file (deleted by hand? use `evaltray cases retire`)")
        for cid in sorted(missing)
    ]
    return problems + _signature_problems(ws, tray, to_prove)


def _signature_problems(ws: Workspace, tray: TrayRows, to_prove: list[tuple[int, int, str]]) -> list[Problem]:
    """Each row's sign-off and promotion signatures checked against the registered keys; a line byte for
    byte as the newest signed release holds it was proved when that release was made, and is not again."""
    keys = ws.registered_keys()
    released = latest_signed_release(ws, keys)
    lines: list[tuple[Any, str, bytes]] = []
    for i, line, cid in to_prove:
        raw = tray.raws[i]
        if released and released.get(cid) == hashlib.sha256(raw).hexdigest():
            continue
        if i in tray.trusted:  # the line the gate wrote: already the row's normal form
            lines.append((line, cid, raw))
        else:  # a line laid out by hand is checked as the row it holds
            row = tray.rows[i][1]
            lines.append((line, cid, orjson.dumps(check_case(row)[0] or row)))
    return [Problem(line, cid, p) for line, cid, p in prove_rows(lines, keys)]


def _row_problems(
    row: dict[str, Any],
    line: int,
    cid: str,
    reg: RegisteredCase | None,
    signed: set[int],
    set_name: str,
    known_versions: set[str],
) -> list[Problem]:
    """The full check of one row that is not exactly what was signed off."""
    problems: list[Problem] = []
    norm, schema = check_case(row)
    problems += [Problem(line, cid, p) for p in schema]
    if reg is None:
        return problems + [
            Problem(line, cid, "no review record: this row did not pass the gate (hand-edited into the file?)")
        ]
    if reg.status == RETIRED:
        return problems + [Problem(line, cid, f"id was retired ({reg.retired_reason}); retired ids are never reused")]
    if reg.set_name != set_name:
        problems.append(Problem(line, cid, f"id belongs to set {reg.set_name!r}"))
    if norm is None:
        return problems
    if input_hash(norm["input"]) != norm["input_hash"]:
        problems.append(Problem(line, cid, "input changed without a new id (an input edit must supersede the case)"))
    if signed_hash(norm) != reg.content_hash:
        problems.append(Problem(line, cid, "row differs from what was signed off (hand-edited after promotion?)"))
    if norm["validation"]["review_id"] != reg.review_id or reg.review_id not in signed:
        problems.append(Problem(line, cid, "validation does not match the signed review on record"))
    if norm["expected"]["origin"] != "human":
        problems.append(Problem(line, cid, "expected behaviour was generated, not written by a person"))
    ref = (norm["expected"].get("reference") or "").strip()
    recorded = (norm["review"].get("recorded_output") or "").strip()
    if norm["provenance"]["source"] == "synthetic" and ref and ref == recorded:
        problems.append(Problem(line, cid, "synthetic case whose expected output copies the generated output"))
    for key in ("added", "last_changed"):
        if norm["version"][key] not in known_versions:
            problems.append(
                Problem(line, cid, f"version.{key} {norm['version'][key]!r} is not a release of this workspace")
            )
    return problems


def case_registry(ws: Workspace, set_name: str | None = None) -> list[dict[str, Any]]:
    """Every id ever issued (active and retired), for reports."""
    cases_t = ws.t["cases"]
    q = sa.select(cases_t).order_by(cases_t.c.id)
    if set_name:
        q = q.where(cases_t.c.set_name == set_name)
    with ws.tx() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


__all__ = [
    "ACTIVE",
    "PROMOTE_ROLES",
    "RETIRED",
    "Problem",
    "PromoteReport",
    "Promotion",
    "build_case",
    "case_registry",
    "check_case",
    "input_hash",
    "new_case_id",
    "promote",
    "read_signed",
    "registry_state",
    "retire",
    "validate",
    "validate_rows",
]
