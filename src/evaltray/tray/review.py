"""Reviews: a person writes the expected behaviour (the label), then judges the recorded output.

An adjudicator (or admin) signs the review off; only a signed review lets a candidate pass the gate.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import LABEL_ROLES, SIGN_ROLES
from evaltray.core.store import Workspace, inserted_id
from evaltray.core.util import dumps, loads, now_iso

from .candidates import PENDING, PROMOTED, Candidate, get

DIFFICULTIES = ("easy", "medium", "hard")
CASE_TYPES = ("typical", "edge", "adversarial", "safety")


@dataclass
class Review:
    id: int
    candidate_id: str
    reviewer: str
    expected: dict[str, Any]
    expected_first: bool
    verdict: str | None
    critique: str | None
    failure_tags: list[str]
    rubric: str | None
    guide_version: str
    slice: str | None
    difficulty: str | None
    case_type: str | None
    signed_by: str | None
    signed_at: str | None
    created_at: str

    @classmethod
    def from_row(cls, row: Any) -> Review:
        m = dict(row._mapping)
        m["expected"] = loads(m["expected"])
        m["failure_tags"] = loads(m["failure_tags"])
        m["expected_first"] = bool(m["expected_first"])
        return cls(**m)


def normalize_expected(ws: Workspace, reviewer: str, reference: str | None = None, behavior_code: str | None = None,
                       assertions: list[str] | None = None, origin: str = "human") -> dict[str, Any]:
    """The expected-behaviour record; an empty one, or a code outside the guide's vocabulary, is refused."""
    reference = (reference or "").strip() or None
    code = (behavior_code or "").strip() or None
    asserts = [a.strip() for a in assertions or [] if a and a.strip()]
    if not (reference or code or asserts):
        raise EvaltrayError("the expected behaviour is empty: write a reference answer, a behavior code or assertions")
    vocab = ws.settings.behavior_codes
    if code and vocab and code not in vocab:
        raise EvaltrayError(f"behavior code {code!r} is not in labeling guide v{ws.settings.guide_version} "
                            f"(known: {', '.join(vocab)})")
    if origin not in ("human", "generated"):
        raise EvaltrayError(f"expected_origin must be 'human' or 'generated', got {origin!r}")
    return {"reference": reference, "behavior_code": code, "assertions": asserts, "origin": origin, "written_by": reviewer}


def record_review(ws: Workspace, candidate_id: str, reviewer: str, expected: dict[str, Any], *,
                  verdict: str | None = None, critique: str | None = None, failure_tags: list[str] | None = None,
                  rubric: str | None = None, slice: str | None = None, difficulty: str | None = None,
                  case_type: str | None = None, expected_first: bool = True, sign: bool = False) -> Review:
    """Store a review; with ``sign`` and a signing role it is signed off at once."""
    role = ws.require(reviewer, LABEL_ROLES, "labeling")
    cand = get(ws, candidate_id)
    if cand.status not in (PENDING, PROMOTED):
        raise EvaltrayError(f"candidate {candidate_id} is {cand.status}; it cannot be reviewed")
    if verdict is not None and verdict not in ("pass", "fail"):
        raise EvaltrayError(f"verdict must be pass or fail, got {verdict!r}")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise EvaltrayError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    if case_type is not None and case_type not in CASE_TYPES:
        raise EvaltrayError(f"case type must be one of {', '.join(CASE_TYPES)}, got {case_type!r}")
    now = now_iso()
    signed = sign and role in SIGN_ROLES
    values: dict[str, Any] = dict(
        candidate_id=candidate_id, reviewer=reviewer, expected=dumps(expected), expected_first=expected_first,
        verdict=verdict, critique=(critique or "").strip() or None, failure_tags=dumps(sorted(set(failure_tags or []))),
        rubric=rubric, guide_version=ws.settings.guide_version, slice=slice, difficulty=difficulty, case_type=case_type,
        signed_by=reviewer if signed else None, signed_at=now if signed else None, created_at=now,
    )
    reviews = ws.t["reviews"]
    with ws.tx() as conn:
        rid = inserted_id(conn, reviews.insert().values(**values))
        ws.audit(conn, reviewer, "review.add", candidate_id, review_id=rid, verdict=verdict, signed=signed)
    return Review(id=rid, **{**values, "expected": expected, "failure_tags": sorted(set(failure_tags or []))})


def latest_review(ws: Workspace, candidate_id: str) -> Review | None:
    reviews = ws.t["reviews"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.candidate_id == candidate_id)
                           .order_by(reviews.c.id.desc()).limit(1)).first()
    return Review.from_row(row) if row else None


def sign_off(ws: Workspace, candidate_ids: list[str], signer: str, dry_run: bool = False) -> list[int]:
    """Sign the latest review of each candidate; a candidate without a review is an error."""
    ws.require(signer, SIGN_ROLES, "signing labels off")
    signed: list[int] = []
    reviews = ws.t["reviews"]
    for cid in candidate_ids:
        review = latest_review(ws, cid)
        if review is None:
            raise EvaltrayError(f"candidate {cid} has no review to sign; label it first (`evaltray review`)")
        if review.signed_by:
            continue
        if not dry_run:
            with ws.tx() as conn:
                conn.execute(reviews.update().where(reviews.c.id == review.id).values(signed_by=signer, signed_at=now_iso()))
                ws.audit(conn, signer, "review.sign", cid, review_id=review.id)
        signed.append(review.id)
    return signed


def queue(ws: Workspace, set_name: str | None = None) -> list[Candidate]:
    """Pending candidates with no review yet, oldest first."""
    cands, reviews = ws.t["candidates"], ws.t["reviews"]
    reviewed = sa.select(reviews.c.candidate_id)
    q = (sa.select(cands).where(cands.c.status == PENDING, cands.c.id.not_in(reviewed))
         .order_by(cands.c.created_at, cands.c.id))
    if set_name:
        q = q.where(cands.c.set_name == set_name)
    with ws.tx() as conn:
        return [Candidate.from_row(r) for r in conn.execute(q)]


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


_TRUE = {"1", "true", "yes", "y"}


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in loads(value)]
    return [v.strip() for v in value.split(";") if v.strip()]


def import_labels(ws: Workspace, path: Path, actor: str, dry_run: bool = False) -> ImportReport:
    """Import labels made elsewhere from CSV (or JSONL); a bad row is reported as ``file:line`` and skipped.

    Columns: ``candidate_id`` and at least one of ``expected`` / ``behavior_code`` / ``assertions``
    (``;``-separated or a JSON list); optional ``verdict, critique, failure_tags, labeled_by, slice,
    difficulty, case_type, rubric, expected_origin`` (human|generated) and ``sign`` (yes/no).
    """
    report = ImportReport()
    for lineno, row in _read_rows(path):
        where = f"{path}:{lineno}"
        if row.get("_bad"):
            report.problems.append(f"{where}: not valid JSON")
            continue
        cid = (row.get("candidate_id") or "").strip()
        try:
            if not cid:
                raise EvaltrayError("no candidate_id")
            labeler = (row.get("labeled_by") or "").strip() or actor
            expected = normalize_expected(ws, labeler, row.get("expected") or row.get("reference"),
                                          row.get("behavior_code"), _split_list(row.get("assertions")),
                                          (row.get("expected_origin") or "human").strip() or "human")
            if dry_run:
                get(ws, cid)
                ws.require(labeler, LABEL_ROLES, "labeling")
                continue
            review = record_review(
                ws, cid, labeler, expected, verdict=(row.get("verdict") or "").strip().lower() or None,
                critique=row.get("critique"), failure_tags=_split_list(row.get("failure_tags")),
                rubric=row.get("rubric") or None, slice=(row.get("slice") or "").strip() or None,
                difficulty=(row.get("difficulty") or "").strip() or None,
                case_type=(row.get("case_type") or "").strip() or None,
                expected_first=False,  # made elsewhere: we cannot vouch that the output was hidden
                sign=(row.get("sign") or "").strip().lower() in _TRUE,
            )
            report.imported.append(review.id)
        except EvaltrayError as exc:
            report.problems.append(f"{where}: {exc}" + (f" (candidate {cid})" if cid and cid not in str(exc) else ""))
    return report


def _read_rows(path: Path):  # type: ignore[no-untyped-def]
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if raw.strip():
                    try:
                        obj = loads(raw)
                    except Exception:  # noqa: BLE001 - orjson raises its own JSONDecodeError
                        yield lineno, {"candidate_id": "", "_bad": "1"}
                        continue
                    yield lineno, {k: (dumps(v) if isinstance(v, (list, dict)) else (None if v is None else str(v)))
                                   for k, v in obj.items()}
        return
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, row
