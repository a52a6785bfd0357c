"""The golden tray and its one-way validation gate.

``sets/<name>/cases.jsonl`` holds one active case per line, sorted by id. A row enters only through
:func:`promote`, which needs a complete six-tuple and a signed review; :func:`validate` catches any
row that got there another way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.records import COMPOSE_ROLES, SIGN_ROLES, Case, Role
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, bulk, content_hash, now_iso, sha256_hex

from .candidates import PENDING, PROMOTED, Candidate, get
from .review import Review, latest_review

ACTIVE, RETIRED = "active", "retired"
PENDING_VERSION = "pending"


# ----------------------------------------------------------------------------- file I/O


def read_tray(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """Rows of a tray file with their line numbers, and the lines that are not JSON objects."""
    rows, bad, _, _ = read_tray_bytes(path)
    return rows, bad


def read_tray_bytes(path: Path, stub: Callable[[bytes], dict[str, Any] | None] | None = None
                    ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]], list[bytes], set[int]]:
    """:func:`read_tray`, plus each row's line exactly as stored (without its newline).

    A line for which ``stub`` returns a row is not parsed; the indexes of those rows come last.
    """
    rows: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str]] = []
    raws: list[bytes] = []
    stubbed: set[int] = set()
    data = path.read_bytes() if path.exists() else b""
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        obj = stub(raw) if stub is not None else None
        if obj is not None:
            stubbed.add(len(rows))
        else:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad.append((lineno, "not valid JSON"))
                continue
            if not isinstance(obj, dict):
                bad.append((lineno, "not a JSON object"))
                continue
        rows.append((lineno, obj))
        raws.append(raw)
    return rows, bad, raws, stubbed


def load_cases(ws: Workspace, set_name: str) -> dict[str, dict[str, Any]]:
    """The tray's cases by id (for writing; :func:`validate` is the strict reader)."""
    rows, bad = read_tray(ws.cases_path(set_name))
    if bad:
        line, why = bad[0]
        raise EvaltrayError(f"{ws.cases_path(set_name)}:{line}: {why}; run `evaltray tray validate`")
    return {row["id"]: row for _, row in rows}


def case_line(case: dict[str, Any]) -> bytes:
    """One tray line: schema field order (readable diffs), compact JSON."""
    return orjson.dumps(case) + b"\n"


def write_tray(path: Path, cases: Iterable[dict[str, Any]]) -> None:
    ordered = sorted(cases, key=lambda c: c["id"])
    atomic_write(path, b"".join(case_line(c) for c in ordered))


def signed_hash(case: dict[str, Any]) -> str:
    """Hash of what the signer approved: the row as written (schema field order, compact JSON) minus
    ``version``, which releases stamp later."""
    return sha256_hex(orjson.dumps({k: v for k, v in case.items() if k != "version"}))


_VERSION_KEY = b',"version":'


def line_signed_hash(raw: bytes, case: dict[str, Any]) -> str | None:
    """:func:`signed_hash` straight from a stored line whose last field is ``version`` (as evaltray
    writes every line), without serialising the row again; None when the line is shaped otherwise."""
    at = raw.rfind(_VERSION_KEY)
    if at < 0 or raw[at + len(_VERSION_KEY):] != orjson.dumps(case.get("version")) + b"}":
        return None
    return sha256_hex(raw[:at] + b"}")


def restamp(raw: bytes, case: dict[str, Any], version: str) -> bytes:
    """The stored line with ``pending`` version fields set to ``version`` (``case`` is updated too)."""
    v = case["version"]
    if PENDING_VERSION not in (v["added"], v["last_changed"]):
        return raw
    new = {"added": version if v["added"] == PENDING_VERSION else v["added"], "last_changed": version}
    old_tail = _VERSION_KEY + orjson.dumps(v) + b"}"
    case["version"] = new
    if raw.endswith(old_tail):
        return raw[: -len(old_tail)] + _VERSION_KEY + orjson.dumps(new) + b"}"
    return orjson.dumps(case)


def input_hash(inp: dict[str, Any]) -> str:
    return content_hash(inp)[:16]


# ----------------------------------------------------------------------------- the gate


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


def derive_slice(labels: dict[str, Any], keys: list[str]) -> str | None:
    parts = [str(labels.get(k)) for k in keys if labels.get(k)]
    return "/".join(parts) if parts else None


def build_case(ws: Workspace, cand: Candidate, review: Review, case_id: str, *, created_at: str,
               version_added: str) -> dict[str, Any]:
    """The tray row for a candidate and its signed review (not yet checked)."""
    labels = {"feature": cand.labels.get("feature"), "scenario": cand.labels.get("scenario"),
              "persona": cand.labels.get("persona"), "tags": list(cand.labels.get("tags") or [])}
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
        "provenance": {"source": cand.source, "trace_id": cand.trace_id, "ingest_date": cand.ingest_date,
                       "candidate_id": cand.id, "labeled_by": review.expected.get("written_by"),
                       "supersedes": cand.supersedes},
        "review": {"verdict": review.verdict, "critique": review.critique, "failure_tags": review.failure_tags,
                   "recorded_output": cand.recorded_output},
        "freshness": {"last_verified_at": review.signed_at, "verified_by": review.signed_by},
        "owner": ws.settings.label_owner or review.signed_by,
        "validation": {"review_id": review.id, "signed_by": review.signed_by, "signed_at": review.signed_at},
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


def _gate_problems(ws: Workspace, cand: Candidate, review: Review) -> list[str]:
    problems = []
    if not review.signed_by:
        problems.append("not signed off: an adjudicator must sign the label (`evaltray signoff`)")
    elif ws.role_of(review.signed_by) not in SIGN_ROLES:
        problems.append(f"signed by {review.signed_by!r}, whose role may not sign")
    if review.expected.get("origin") != "human":
        problems.append("the expected behaviour was generated, not written by a person")
    ref = (review.expected.get("reference") or "").strip()
    if cand.source == "synthetic" and ref and cand.recorded_output and ref == cand.recorded_output.strip():
        problems.append("synthetic case whose expected output copies the generated output")
    return problems


def _taken_ids(conn: sa.Connection, ws: Workspace) -> set[str]:
    return {r[0] for r in conn.execute(sa.select(ws.t["cases"].c.id))}


def new_case_id(set_name: str, inp: dict[str, Any], taken: set[str]) -> str:
    """A stable id from the set and the input; a salt avoids every id ever used (retired ids stay retired)."""
    salt = 0
    while True:
        cid = "c-" + content_hash([set_name, inp, salt])[:10]
        if cid not in taken:
            return cid
        salt += 1


def promote(ws: Workspace, actor: str, set_name: str | None = None, candidate_ids: list[str] | None = None,
            dry_run: bool = False) -> PromoteReport:
    """Move every signed, complete candidate into the tray; report what is blocked and why."""
    set_name = ws.check_set(set_name)
    ws.require(actor, SIGN_ROLES | {Role.COMPOSITION_OWNER}, "promoting")
    cands_t, cases_t = ws.t["candidates"], ws.t["cases"]
    q = sa.select(cands_t.c.id).where(cands_t.c.set_name == set_name, cands_t.c.status.in_([PENDING, PROMOTED]))
    if candidate_ids:
        q = q.where(cands_t.c.id.in_(candidate_ids))
    with ws.tx() as conn:
        ids = [r[0] for r in conn.execute(q.order_by(cands_t.c.id))]
        registry = {r.id: r for r in conn.execute(sa.select(cases_t))}
    report = PromoteReport()
    with ws.lock(f"tray-{set_name}"):
        tray = load_cases(ws, set_name)
        taken = set(registry)
        updates: list[tuple[Candidate, Review, dict[str, Any], str]] = []
        for cid in ids:
            cand = get(ws, cid)
            review = latest_review(ws, cid)
            if review is None:
                report.awaiting_review += cand.status == PENDING
                continue
            if cand.status == PROMOTED:
                reg = registry.get(cand.case_id or "")
                if reg is None or reg.status != ACTIVE or reg.review_id == review.id or not review.signed_by:
                    continue
                kind, case_id = "relabel", reg.id
                old = tray.get(case_id, {})
                created, added = old.get("created_at", reg.created_at), old.get("version", {}).get("added", PENDING_VERSION)
            else:
                kind = "supersede" if cand.supersedes else "new"
                case_id = new_case_id(set_name, cand.input, taken)
                created, added = now_iso(), PENDING_VERSION
            problems = _gate_problems(ws, cand, review)
            row, schema = check_case(build_case(ws, cand, review, case_id, created_at=created, version_added=added))
            if not review.signed_by:  # the sign-off problem already says it; skip its knock-on fields
                schema = [p for p in schema if not p.startswith(("freshness.", "validation.", "owner"))]
            problems += schema
            if cand.supersedes and cand.supersedes not in tray:
                problems.append(f"supersedes {cand.supersedes}, which is not an active case in set {set_name}")
            if problems:
                report.blocked.append((cid, problems))
                continue
            assert row is not None
            taken.add(case_id)
            tray[case_id] = row
            if cand.supersedes:
                tray.pop(cand.supersedes, None)
            updates.append((cand, review, row, kind))
            report.promoted.append(Promotion(cid, case_id, kind))
        if dry_run or not updates:
            return report
        write_tray(ws.cases_path(set_name), tray.values())
        with ws.tx() as conn:
            for cand, review, row, kind in updates:
                values = dict(review_id=review.id, content_hash=signed_hash(row), slice=row["slice"],
                              source=row["provenance"]["source"], difficulty=row["difficulty"],
                              case_type=row["case_type"], supersedes=row["provenance"]["supersedes"])
                if kind == "relabel":
                    conn.execute(cases_t.update().where(cases_t.c.id == row["id"]).values(**values))
                else:
                    conn.execute(cases_t.insert().values(id=row["id"], set_name=set_name, status=ACTIVE,
                                                         candidate_id=cand.id, created_at=row["created_at"], **values))
                    conn.execute(cands_t.update().where(cands_t.c.id == cand.id).values(status=PROMOTED, case_id=row["id"]))
                if cand.supersedes:
                    conn.execute(cases_t.update().where(cases_t.c.id == cand.supersedes).values(
                        status=RETIRED, successor=row["id"], retired_reason=f"superseded by {row['id']} (input changed)",
                        retired_by=actor, retired_at=now_iso()))
                ws.audit(conn, actor, f"case.{kind}", row["id"], candidate=cand.id, review_id=review.id)
    return report


def retire(ws: Workspace, case_id: str, reason: str, actor: str, set_name: str | None = None,
           dry_run: bool = False) -> None:
    """Take a case out of the tray; its id stays reserved forever and the next release drops it."""
    if not reason.strip():
        raise EvaltrayError("retiring needs a reason (--reason)")
    ws.require(actor, COMPOSE_ROLES, "retiring a case")
    cases_t = ws.t["cases"]
    with ws.tx() as conn:
        reg = conn.execute(sa.select(cases_t).where(cases_t.c.id == case_id)).first()
    if reg is None:
        raise NotFound(f"no case {case_id!r}")
    if reg.status == RETIRED:
        raise EvaltrayError(f"case {case_id} is already retired ({reg.retired_reason})")
    set_name = reg.set_name
    if dry_run:
        return
    with ws.lock(f"tray-{set_name}"):
        tray = load_cases(ws, set_name)
        tray.pop(case_id, None)
        write_tray(ws.cases_path(set_name), tray.values())
        with ws.tx() as conn:
            conn.execute(cases_t.update().where(cases_t.c.id == case_id).values(
                status=RETIRED, retired_reason=reason.strip(), retired_by=actor, retired_at=now_iso()))
            ws.audit(conn, actor, "case.retire", case_id, reason=reason.strip())


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
        rows, bad, raws, _ = read_tray_bytes(ws.cases_path(set_name))
        return validate_rows(ws, set_name, rows, bad, release_versions, raws)


def _fetch(conn: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    """Rows as the database driver returns them: a 100k-case tray is 100k registry rows, and
    SQLAlchemy's row processing costs seconds there."""
    cur = conn.connection.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


_REGISTRY_SQL = ("SELECT id, set_name, status, review_id, content_hash, retired_reason, slice, source, difficulty, "
                 "case_type, supersedes FROM cases")


def registry_state(ws: Workspace) -> tuple[dict[str, tuple[Any, ...]], set[int]]:
    """Every case id ever issued with what was signed, and the ids of signed reviews."""
    with ws.tx() as conn:
        registry = {r[0]: r for r in _fetch(conn, _REGISTRY_SQL)}
        signed = {r[0] for r in _fetch(conn, "SELECT id FROM reviews WHERE signed_by IS NOT NULL")}
    return registry, signed


def read_signed(ws: Workspace, set_name: str, release_versions: set[str],
                state: tuple[dict[str, tuple[Any, ...]], set[int]] | None = None
                ) -> tuple[list[dict[str, Any]], list[bytes], list[Problem]]:
    """The tray's rows for a release, each with its stored line, and every problem :func:`validate` finds.

    A line that is byte for byte what was signed (its ``version`` aside) is not parsed: its row is a
    stub made from the registry (id, slice, source, difficulty, case type, predecessor, version) —
    all a release needs from a case it does not diff. Any other line is parsed and checked in full.
    ``state``: the case registry (:func:`registry_state`), when the caller reads several sets.
    """
    registry, signed = state or registry_state(ws)
    rows, bad, raws, trusted = read_tray_bytes(ws.cases_path(set_name),
                                               lambda raw: _stub(raw, registry, signed, set_name))
    problems = validate_rows(ws, set_name, rows, bad, release_versions, raws, (registry, signed), trusted)
    return [row for _, row in rows], raws, problems


def _stub(raw: bytes, registry: dict[str, tuple[Any, ...]], signed: set[int], set_name: str) -> dict[str, Any] | None:
    if not raw.startswith(b'{"id":"'):
        return None
    end = raw.find(b'"', 7)
    cid = raw[7:end].decode("utf-8", "replace")
    reg = registry.get(cid)
    if reg is None or reg[1] != set_name or reg[2] != ACTIVE or reg[3] not in signed or reg[6] is None:
        return None
    at = raw.rfind(_VERSION_KEY)
    if at < 0 or not raw.endswith(b"}"):
        return None
    try:
        version = orjson.loads(raw[at + len(_VERSION_KEY):-1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(version, dict) or raw[at + len(_VERSION_KEY):-1] != orjson.dumps(version):
        return None
    digest = hashlib.sha256(memoryview(raw)[:at])  # the line minus its version, without copying it
    digest.update(b"}")
    if digest.hexdigest() != reg[4]:
        return None
    return {"id": cid, "slice": reg[6], "provenance": {"source": reg[7], "supersedes": reg[10]},
            "difficulty": reg[8], "case_type": reg[9], "version": version}


def validate_rows(ws: Workspace, set_name: str, rows: list[tuple[int, dict[str, Any]]], bad: list[tuple[int, str]],
                  release_versions: set[str] | None = None, raws: list[bytes] | None = None,
                  state: tuple[dict[str, tuple[Any, ...]], set[int]] | None = None,
                  trusted: set[int] | None = None) -> list[Problem]:
    """:func:`validate` over rows already read (a release reads the tray once); with the stored
    ``raws`` a row byte-identical to what was signed is recognised without serialising it again, and
    rows at the ``trusted`` indexes were already found to be so."""
    problems = [Problem(line, None, why) for line, why in bad]
    registry, signed = state or registry_state(ws)
    trusted = trusted or set()
    versions = ws.release_versions() if release_versions is None else release_versions
    known_versions = versions | {PENDING_VERSION}
    seen: dict[str, int] = {}
    previous = ""
    for i, (line, row) in enumerate(rows):
        cid = row.get("id") if isinstance(row.get("id"), str) else None
        if cid is None:
            problems.append(Problem(line, None, "id: missing"))
            continue
        if cid in seen:
            problems.append(Problem(line, cid, f"duplicate id (also on line {seen[cid]})"))
            continue
        seen[cid] = line
        if cid < previous:
            problems.append(Problem(line, cid, f"not sorted by id (comes after {previous})"))
        previous = max(previous, cid)
        reg = registry.get(cid)
        if i in trusted:
            version = row["version"]
            if {version.get("added"), version.get("last_changed")} - known_versions:
                problems += [Problem(line, cid, f"version.{k} {version.get(k)!r} is not a release of this workspace")
                             for k in ("added", "last_changed") if version.get(k) not in known_versions]
            continue
        if reg is not None and reg[2] == ACTIVE and reg[1] == set_name and reg[3] in signed \
                and row.get("validation", {}).get("review_id") == reg[3] \
                and ((raws and line_signed_hash(raws[i], row)) or signed_hash(row)) == reg[4]:
            # byte for byte what passed the gate: the schema and every rule held then; only the
            # version stamps, outside the signed hash, can have changed since
            version = row.get("version")
            if not isinstance(version, dict) or {version.get("added"), version.get("last_changed")} - known_versions:
                problems += _row_problems(row, line, cid, reg, signed, set_name, known_versions)
            continue
        problems += _row_problems(row, line, cid, reg, signed, set_name, known_versions)
    missing = [cid for cid, reg in registry.items() if reg[1] == set_name and reg[2] == ACTIVE and cid not in seen]
    problems += [Problem(None, cid, "active case missing from the file (deleted by hand? use `evaltray cases retire`)")
                 for cid in sorted(missing)]
    return problems


def _row_problems(row: dict[str, Any], line: int, cid: str, reg: Any, signed: set[int], set_name: str,
                  known_versions: set[str]) -> list[Problem]:
    """The full check of one row that is not exactly what was signed off."""
    problems: list[Problem] = []
    norm, schema = check_case(row)
    problems += [Problem(line, cid, p) for p in schema]
    if reg is None:
        return problems + [Problem(line, cid, "no review record: this row did not pass the gate (hand-edited into the file?)")]
    if reg[2] == RETIRED:
        return problems + [Problem(line, cid, f"id was retired ({reg[5]}); retired ids are never reused")]
    if reg[1] != set_name:
        problems.append(Problem(line, cid, f"id belongs to set {reg[1]!r}"))
    if norm is None:
        return problems
    if input_hash(norm["input"]) != norm["input_hash"]:
        problems.append(Problem(line, cid, "input changed without a new id (an input edit must supersede the case)"))
    if signed_hash(norm) != reg[4]:
        problems.append(Problem(line, cid, "row differs from what was signed off (hand-edited after promotion?)"))
    if norm["validation"]["review_id"] != reg[3] or reg[3] not in signed:
        problems.append(Problem(line, cid, "validation does not match the signed review on record"))
    if norm["expected"]["origin"] != "human":
        problems.append(Problem(line, cid, "expected behaviour was generated, not written by a person"))
    ref = (norm["expected"].get("reference") or "").strip()
    recorded = (norm["review"].get("recorded_output") or "").strip()
    if norm["provenance"]["source"] == "synthetic" and ref and ref == recorded:
        problems.append(Problem(line, cid, "synthetic case whose expected output copies the generated output"))
    for key in ("added", "last_changed"):
        if norm["version"][key] not in known_versions:
            problems.append(Problem(line, cid, f"version.{key} {norm['version'][key]!r} is not a release of this workspace"))
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
    "Problem", "PromoteReport", "Promotion", "build_case", "case_registry", "check_case", "load_cases",
    "new_case_id", "promote", "read_signed", "read_tray", "read_tray_bytes", "restamp", "retire", "signed_hash", "validate", "validate_rows", "write_tray",
]
