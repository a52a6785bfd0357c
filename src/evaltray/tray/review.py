"""Reviews: a person writes the expected behaviour (the label), then judges the recorded output.

An adjudicator (or admin) signs the review off; only a signed review lets a candidate pass the gate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from evaltray.core.errors import EvaltrayError
from evaltray.core.keys import Signer
from evaltray.core.records import LABEL_ROLES, SIGN_ROLES, ExpectedToolCall
from evaltray.core.store import Workspace, inserted_id
from evaltray.core.util import dumps, loads, now_iso

from .candidates import PENDING, PROMOTED, REJECTED, Candidate, get
from .signatures import input_hash, label_of, signoff_message

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
    signoff_signature: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Review:
        m = dict(row._mapping)
        m["expected"] = loads(m["expected"])
        m["failure_tags"] = loads(m["failure_tags"])
        m["expected_first"] = bool(m["expected_first"])
        return cls(**m)


def review_label(cand: Candidate, review: Review) -> dict[str, Any]:
    """What signing ``review`` off signs (:func:`.signatures.label_of` of the row it will make)."""
    return label_of(
        {
            "provenance": {"candidate_id": cand.id},
            "set": cand.set_name,
            "input_hash": input_hash(cand.input),
            "expected": review.expected,
            "rubric": review.rubric,
            "guide_version": review.guide_version,
            "review": {"verdict": review.verdict, "critique": review.critique, "failure_tags": review.failure_tags},
        }
    )


def normalize_expected(
    ws: Workspace,
    reviewer: str,
    reference: str | None = None,
    behavior_code: str | None = None,
    assertions: list[str] | None = None,
    origin: str = "human",
    tool_calls: list[dict[str, Any]] | None = None,
    tool_calls_ordered: bool | None = None,
) -> dict[str, Any]:
    """The expected-behaviour record; an empty one, or a code outside the guide's vocabulary, is refused.
    ``tool_calls`` (``{name, arguments?}``, in order where ``tool_calls_ordered``) are kept only when given."""
    reference = (reference or "").strip() or None
    code = (behavior_code or "").strip() or None
    asserts = [a.strip() for a in assertions or [] if a and a.strip()]
    calls = _tool_calls(tool_calls)
    if not (reference or code or asserts or calls):
        raise EvaltrayError(
            "the expected behaviour is empty: write a reference answer, a behavior code, assertions or tool calls"
        )
    vocab = ws.settings.behavior_codes
    if code and vocab and code not in vocab:
        raise EvaltrayError(
            f"behavior code {code!r} is not in labeling guide v{ws.settings.guide_version} (known: {', '.join(vocab)})"
        )
    if origin not in ("human", "generated"):
        raise EvaltrayError(f"expected_origin must be 'human' or 'generated', got {origin!r}")
    expected: dict[str, Any] = {
        "reference": reference,
        "behavior_code": code,
        "assertions": asserts,
        "origin": origin,
        "written_by": reviewer,
    }
    if calls:  # only when set: a label without them keeps the bytes (and signatures) it always had
        expected["tool_calls"] = calls
        if tool_calls_ordered is not None:
            expected["tool_calls_ordered"] = bool(tool_calls_ordered)
    return expected


def _tool_calls(given: Any) -> list[dict[str, Any]]:
    """Expected tool calls in their stored form (``name``, ``arguments`` or null); a malformed one is refused."""
    if not given:
        return []
    if not isinstance(given, list):
        raise EvaltrayError("tool_calls must be a list of {name, arguments} objects")
    out = []
    for i, call in enumerate(given):
        try:
            out.append(ExpectedToolCall.model_validate(call).model_dump(mode="json"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            where = f"{where}: " if where else ""
            raise EvaltrayError(f"tool_calls[{i}]: {where}{first['msg']} (each is {{name, arguments?}})") from None
    return out


def record_review(
    ws: Workspace,
    candidate_id: str,
    reviewer: str,
    expected: dict[str, Any],
    *,
    verdict: str | None = None,
    critique: str | None = None,
    failure_tags: list[str] | None = None,
    rubric: str | None = None,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    expected_first: bool = True,
    sign: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Review:
    """Store a review; with ``sign`` and a signing role it is signed off at once. ``provenance`` (where
    the label came from) is kept in the audit row."""
    ready = prepare_review(
        ws,
        candidate_id,
        reviewer,
        expected,
        verdict=verdict,
        critique=critique,
        failure_tags=failure_tags,
        rubric=rubric,
        slice=slice,
        difficulty=difficulty,
        case_type=case_type,
        expected_first=expected_first,
        sign=sign,
        provenance=provenance,
    )
    return write_review(ws, ready)


@dataclass
class ReadyReview:
    """A review checked and built (:func:`prepare_review`), not written yet: :func:`write_review` writes it."""

    candidate: Candidate
    values: dict[str, Any]
    expected: dict[str, Any]
    failure_tags: list[str]
    signer: Signer | None
    provenance: dict[str, Any]


def prepare_review(
    ws: Workspace,
    cand: Candidate | str,
    reviewer: str,
    expected: dict[str, Any],
    *,
    verdict: str | None = None,
    critique: str | None = None,
    failure_tags: list[str] | None = None,
    rubric: str | None = None,
    slice: str | None = None,
    difficulty: str | None = None,
    case_type: str | None = None,
    expected_first: bool = True,
    sign: bool = False,
    provenance: dict[str, Any] | None = None,
) -> ReadyReview:
    """Everything :func:`record_review` checks and reads before it writes (the reviewer's role and key, the
    fields), for ``cand`` as read a moment ago (or its id: read after the role is checked, so that a
    user who may not label learns nothing of it): the write transaction then only re-reads its status."""
    role = ws.require(reviewer, LABEL_ROLES, "labeling")
    if isinstance(cand, str):
        cand = get(ws, cand)
    _reviewable(cand.id, cand.status)
    if verdict is not None and verdict not in ("pass", "fail"):
        raise EvaltrayError(f"verdict must be pass or fail, got {verdict!r}")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise EvaltrayError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    if case_type is not None and case_type not in CASE_TYPES:
        raise EvaltrayError(f"case type must be one of {', '.join(CASE_TYPES)}, got {case_type!r}")
    now = now_iso()
    signed = sign and role in SIGN_ROLES
    tags = sorted(set(failure_tags or []))
    values: dict[str, Any] = dict(
        candidate_id=cand.id,
        reviewer=reviewer,
        expected=dumps(expected),
        expected_first=expected_first,
        verdict=verdict,
        critique=(critique or "").strip() or None,
        failure_tags=dumps(tags),
        rubric=rubric,
        guide_version=ws.settings.guide_version,
        slice=slice,
        difficulty=difficulty,
        case_type=case_type,
        signed_by=reviewer if signed else None,
        signed_at=now if signed else None,
        created_at=now,
    )
    return ReadyReview(cand, values, expected, tags, ws.signer(reviewer) if signed else None, provenance or {})


def _reviewable(candidate_id: str, status: str | None) -> None:
    if status not in (PENDING, PROMOTED):
        raise EvaltrayError(f"candidate {candidate_id} is {status}; it cannot be reviewed")


def write_review(ws: Workspace, ready: ReadyReview) -> Review:
    """Write a review :func:`prepare_review` built, with its audit entry (and sign-off), in one transaction (or
    the caller's :meth:`~Workspace.atomic` block); the candidate's status is read again in it, the one thing
    that may have changed since (a rejection)."""
    reviews, cands = ws.t["reviews"], ws.t["candidates"]
    values, cid = ready.values, ready.candidate.id
    status = ws.statement(
        "candidates.status", lambda: sa.select(cands.c.status).where(cands.c.id == sa.bindparam("cid"))
    )
    with ws.tx() as conn:
        _reviewable(cid, conn.execute(status, {"cid": cid}).scalar())
        rid = inserted_id(conn, ws.statement("reviews.insert", reviews.insert), values)
        review = Review(id=rid, **{**values, "expected": ready.expected, "failure_tags": ready.failure_tags})
        if ready.signer is not None:
            label = review_label(ready.candidate, review)
            review.signoff_signature = ready.signer.sign(signoff_message(review.reviewer, rid, label))
            conn.execute(reviews.update().where(reviews.c.id == rid).values(signoff_signature=review.signoff_signature))
        signed = ready.signer is not None
        ws.audit(
            conn,
            review.reviewer,
            "review.add",
            cid,
            review_id=rid,
            verdict=review.verdict,
            signed=signed,
            **ready.provenance,
        )
    return review


def latest_review(ws: Workspace, candidate_id: str) -> Review | None:
    reviews = ws.t["reviews"]
    q = ws.statement(
        "reviews.latest",
        lambda: (
            sa.select(reviews)
            .where(reviews.c.candidate_id == sa.bindparam("cid"))
            .order_by(reviews.c.id.desc())
            .limit(1)
        ),
    )
    with ws.tx() as conn:
        row = conn.execute(q, {"cid": candidate_id}).first()
    return Review.from_row(row) if row else None


def get_review(ws: Workspace, review_id: int) -> Review:
    """The review ``review_id``."""
    reviews = ws.t["reviews"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.id == int(review_id))).first()
    if row is None:
        raise EvaltrayError(f"no review {review_id}")
    return Review.from_row(row)


def unsigned(ws: Workspace, set_name: str | None = None) -> list[str]:
    """Candidates of the set (not rejected) whose latest review awaits a sign-off, oldest first: one query
    from the unsigned reviews (the home page asks on every visit; a look-up per candidate cost 100k of them)."""
    cands, reviews = ws.t["candidates"], ws.t["reviews"]
    later = reviews.alias("later")
    newest = ~sa.exists().where(later.c.candidate_id == reviews.c.candidate_id, later.c.id > reviews.c.id)
    q = (
        sa.select(cands.c.id)
        .join(reviews, reviews.c.candidate_id == cands.c.id)
        .where(
            cands.c.set_name == ws.check_set(set_name),
            cands.c.status != REJECTED,
            sa.or_(reviews.c.signed_by.is_(None), reviews.c.signed_by == ""),
            newest,
        )
        .order_by(cands.c.created_at, cands.c.id)
    )
    with ws.tx() as conn:
        return list(conn.scalars(q))


def sign_off(
    ws: Workspace,
    candidate_ids: Iterable[str],
    signer: str,
    dry_run: bool = False,
    *,
    every_unsigned: bool = False,
    set_name: str | None = None,
) -> list[int]:
    """Sign the latest review of each candidate (and, with ``every_unsigned``, of every :func:`unsigned` one
    of the set); a candidate without a review is an error. Returns the ids of the reviews signed: none when
    nothing awaited a sign-off. Each sign-off is signed with ``signer``'s key (:func:`review_label`)."""
    ws.require(signer, SIGN_ROLES, "signing labels off")
    key = ws.signer(signer)
    signed: list[int] = []
    reviews = ws.t["reviews"]
    ids = list(candidate_ids) + (unsigned(ws, set_name) if every_unsigned else [])
    for cid in ids:
        review = latest_review(ws, cid)
        if review is None:
            raise EvaltrayError(f"candidate {cid} has no review to sign; label it first (`evaltray review`)")
        if review.signed_by:
            continue
        if not dry_run:
            signature = key.sign(signoff_message(signer, review.id, review_label(get(ws, cid), review)))
            with ws.tx() as conn:
                conn.execute(
                    reviews.update()
                    .where(reviews.c.id == review.id)
                    .values(signed_by=signer, signed_at=now_iso(), signoff_signature=signature)
                )
                ws.audit(conn, signer, "review.sign", cid, review_id=review.id)
        signed.append(review.id)
    return signed


def unreviewed(ws: Workspace, set_name: str | None) -> sa.ColumnElement[bool]:
    """The queue's condition: pending, with no review yet (of ``set_name`` where given)."""
    cands, reviews = ws.t["candidates"], ws.t["reviews"]
    cond = sa.and_(cands.c.status == PENDING, ~sa.exists().where(reviews.c.candidate_id == cands.c.id).correlate(cands))
    return sa.and_(cond, cands.c.set_name == set_name) if set_name else cond


def queue(ws: Workspace, set_name: str | None = None, limit: int | None = None, offset: int = 0) -> list[Candidate]:
    """Pending candidates with no review yet, oldest first (``limit`` of them from ``offset``: a walk down the
    queue index, so a page of a large pool costs a page, not the pool)."""
    cands = ws.t["candidates"]
    q = sa.select(cands).where(unreviewed(ws, set_name)).order_by(cands.c.created_at, cands.c.id)
    q = q.limit(limit).offset(offset) if limit is not None else q.offset(offset)
    with ws.tx() as conn:
        return [Candidate.from_row(r) for r in conn.execute(q)]


@dataclass
class QueuePlace:
    """Where a candidate stands in the queue: its 1-based position (None when it is not in it), the queue's
    length, and the candidates before and after it (the first one when it is not in it)."""

    position: int | None
    total: int
    prev_id: str | None
    next_id: str | None


#: The review page counts the queue up to here: a count walks the rows it counts, and "over 1,000" tells a
#: reviewer as much as the exact figure of a 100k pool.
COUNT_CAP = 1000


def _count_waiting(
    ws: Workspace, conn: Any, set_name: str | None, *where: sa.ColumnElement[bool], cap: int | None = None
) -> int:
    """How many queue rows meet ``where``; with ``cap``, at most ``cap + 1`` (one more: "over ``cap``")."""
    cands = ws.t["candidates"]
    rows = sa.select(cands.c.id).where(unreviewed(ws, set_name), *where)
    if cap is not None:
        rows = rows.order_by(cands.c.status, cands.c.created_at, cands.c.id).limit(cap + 1)
    return int(conn.execute(sa.select(sa.func.count()).select_from(rows.subquery())).scalar_one())


def queue_length(ws: Workspace, set_name: str | None = None, cap: int | None = None) -> int:
    """How many candidates wait for their first review (with ``cap``: at most ``cap + 1``)."""
    with ws.tx() as conn:
        return _count_waiting(ws, conn, set_name, cap=cap)


def queue_place(ws: Workspace, cid: str, set_name: str | None = None, cap: int | None = COUNT_CAP) -> QueuePlace:
    """:class:`QueuePlace` of ``cid`` from index walks, never reading the whole queue: the position and the
    length are counted up to ``cap`` (``cap + 1`` meaning "over ``cap``"; None: exact)."""
    cands = ws.t["candidates"]
    key = (cands.c.created_at, cands.c.id)
    waiting = unreviewed(ws, set_name)
    with ws.tx() as conn:
        here = conn.execute(sa.select(*key).where(cands.c.id == cid, waiting)).first()
        total = _count_waiting(ws, conn, set_name, cap=cap)
        if here is None:
            first = conn.execute(sa.select(cands.c.id).where(waiting).order_by(*key).limit(1)).scalar()
            return QueuePlace(None, total, None, first)
        before, after = sa.tuple_(*key) < sa.tuple_(*here), sa.tuple_(*key) > sa.tuple_(*here)
        position = min(_count_waiting(ws, conn, set_name, before, cap=cap) + 1, total)
        back = sa.select(cands.c.id).where(waiting, before).order_by(*(c.desc() for c in key)).limit(1)
        ahead = sa.select(cands.c.id).where(waiting, after).order_by(*key).limit(1)
        return QueuePlace(position, total, conn.execute(back).scalar(), conn.execute(ahead).scalar())


# ----------------------------------------------------------------------------- a review session


class BlindReviewError(EvaltrayError):
    """A step of a review was taken out of order: the blind rule (seed 001) forbids it."""


class ReviewSession:
    """One reviewer's pass over candidates (the named ones, else the queue), in order.

    The blind rule (seed 001, ``write_expected_first``) is kept here, so every front end keeps it: a
    candidate's recorded output is given out only once its expected behaviour is written, unless the session
    is opened with ``show_output_first``; each review records whether its expected behaviour came first.
    """

    def __init__(
        self,
        ws: Workspace,
        reviewer: str,
        candidate_ids: Iterable[str] = (),
        *,
        set_name: str | None = None,
        limit: int | None = None,
        show_output_first: bool = False,
        sign: bool = True,
    ) -> None:
        self.ws = ws
        self.reviewer = reviewer
        #: whether the recorded output stays hidden until the expected behaviour is written
        self.blind = ws.settings.write_expected_first and not show_output_first
        #: whether the reviews are signed off as they are recorded (the reviewer's role allows it)
        self.signs = sign and ws.role_of(reviewer) in SIGN_ROLES
        ids = list(candidate_ids)
        items = [get(ws, c) for c in ids] if ids else queue(ws, set_name)
        self.candidates = items if limit is None else items[:limit]

    def __iter__(self) -> Iterator[ReviewStep]:
        return (ReviewStep(self, cand) for cand in self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def review_all(
        self,
        reference: str | None = None,
        behavior_code: str | None = None,
        assertions: Iterable[str] = (),
        **review: Any,
    ) -> list[Review]:
        """Give every candidate the same expected behaviour (written before any output is seen) and review fields
        (``verdict``, ``critique``, ``failure_tags``, ``slice``, ``difficulty``, ``case_type``)."""
        done = []
        for step in self:
            step.write_expected(reference, behavior_code, list(assertions))
            done.append(step.record(**review))
        return done


class ReviewStep:
    """One candidate under review: write its expected behaviour, see its recorded output, record the review.

    ``candidate`` is the candidate without its recorded output; :meth:`recorded_output` gives that out.
    """

    def __init__(self, session: ReviewSession, candidate: Candidate) -> None:
        self._session = session
        self._output = candidate.recorded_output
        self.candidate = replace(candidate, recorded_output=None)
        self.expected: dict[str, Any] | None = None
        self._output_seen_first = False

    def write_expected(
        self, reference: str | None = None, behavior_code: str | None = None, assertions: list[str] | None = None
    ) -> dict[str, Any]:
        """Write the expected behaviour (see :func:`normalize_expected`); it may be rewritten until recorded."""
        s = self._session
        self.expected = normalize_expected(s.ws, s.reviewer, reference, behavior_code, assertions)
        return self.expected

    def recorded_output(self) -> str | None:
        """The output the system recorded; in a blind session only once the expected behaviour is written."""
        if self.expected is None:
            if self._session.blind:
                raise BlindReviewError(
                    f"candidate {self.candidate.id}: write the expected behaviour before the "
                    "recorded output is shown (blind review)"
                )
            self._output_seen_first = True
        return self._output

    def record(
        self,
        *,
        verdict: str | None = None,
        critique: str | None = None,
        failure_tags: list[str] | None = None,
        slice: str | None = None,
        difficulty: str | None = None,
        case_type: str | None = None,
    ) -> Review:
        """Store the review; it is recorded as blind unless the output was shown before the expected behaviour."""
        ready = self.prepare(
            verdict=verdict,
            critique=critique,
            failure_tags=failure_tags,
            slice=slice,
            difficulty=difficulty,
            case_type=case_type,
        )
        return write_review(self._session.ws, ready)

    def prepare(
        self,
        *,
        verdict: str | None = None,
        critique: str | None = None,
        failure_tags: list[str] | None = None,
        slice: str | None = None,
        difficulty: str | None = None,
        case_type: str | None = None,
    ) -> ReadyReview:
        """:meth:`record`'s checks and reads, for a caller that writes the review (:func:`write_review`) in a
        transaction of its own making; the candidate is the one the session read."""
        if self.expected is None:
            raise BlindReviewError(
                f"candidate {self.candidate.id}: write the expected behaviour before recording the review"
            )
        s = self._session
        return prepare_review(
            s.ws,
            replace(self.candidate, recorded_output=self._output),
            s.reviewer,
            self.expected,
            verdict=verdict,
            critique=critique,
            failure_tags=failure_tags,
            slice=slice or None,
            difficulty=difficulty,
            case_type=case_type,
            expected_first=not self._output_seen_first,
            sign=s.signs,
        )


# ----------------------------------------------------------------------------- labels made elsewhere


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


_TRUE = {"1", "true", "yes", "y"}
#: Columns by which a labels file might claim a sign-off; such a file is refused.
_SIGN_COLUMNS = ("sign", "signoff", "signed")


def split_list(value: str | None) -> list[str]:
    """A list a person typed: ``a; b; c`` or a JSON list; blanks dropped."""
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
    difficulty, case_type, rubric, expected_origin`` (human|generated).

    Imported labels are labels, never sign-offs: each review is recorded as made by ``actor``, the file's
    ``labeled_by`` is kept only as provenance (``claimed_by`` in the audit row), and a file that asks for a
    sign-off (a ``sign`` or ``signoff`` column saying yes) is refused before anything is stored.
    """
    ws.require(actor, LABEL_ROLES, "importing labels")
    report = ImportReport()
    rows = list(_read_rows(path))  # read whole first: a refused file stores nothing
    for lineno, row in rows:
        for column in _SIGN_COLUMNS:
            if (row.get(column) or "").strip().lower() in _TRUE:
                raise EvaltrayError(
                    f"{path}:{lineno}: column {column!r} asks for a sign-off; imported labels are never signed "
                    "off: drop the column and have an adjudicator run `evaltray signoff`"
                )
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if row.get("_bad"):
            report.problems.append(f"{where}: not valid JSON")
            continue
        cid = (row.get("candidate_id") or "").strip()
        try:
            if not cid:
                raise EvaltrayError("no candidate_id")
            claimed = (row.get("labeled_by") or "").strip() or None
            expected = normalize_expected(
                ws,
                actor,
                row.get("expected") or row.get("reference"),
                row.get("behavior_code"),
                split_list(row.get("assertions")),
                (row.get("expected_origin") or "human").strip() or "human",
                tool_calls=_json_list(row.get("tool_calls"), "tool_calls"),
                tool_calls_ordered=(row.get("tool_calls_ordered") or "").strip().lower() in _TRUE or None,
            )
            if dry_run:
                get(ws, cid)
                continue
            review = record_review(
                ws,
                cid,
                actor,
                expected,
                verdict=(row.get("verdict") or "").strip().lower() or None,
                critique=row.get("critique"),
                failure_tags=split_list(row.get("failure_tags")),
                rubric=row.get("rubric") or None,
                slice=(row.get("slice") or "").strip() or None,
                difficulty=(row.get("difficulty") or "").strip() or None,
                case_type=(row.get("case_type") or "").strip() or None,
                expected_first=False,  # made elsewhere: we cannot vouch that the output was hidden
                provenance={"via": "labels.import", "file": path.name, "line": lineno, "claimed_by": claimed},
            )
            report.imported.append(review.id)
        except EvaltrayError as exc:
            report.problems.append(f"{where}: {exc}" + (f" (candidate {cid})" if cid and cid not in str(exc) else ""))
    return report


def _json_list(value: str | None, column: str) -> list[Any] | None:
    """A column holding a JSON list (a JSONL value arrives here re-encoded as JSON text)."""
    if not value or not value.strip():
        return None
    try:
        got = loads(value)
    except Exception:  # noqa: BLE001 - orjson raises its own JSONDecodeError
        raise EvaltrayError(f"column {column!r} is not a JSON list") from None
    if not isinstance(got, list):
        raise EvaltrayError(f"column {column!r} is not a JSON list")
    return got


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
                    yield (
                        lineno,
                        {
                            k: (dumps(v) if isinstance(v, (list, dict)) else (None if v is None else str(v)))
                            for k, v in obj.items()
                        },
                    )
        return
    try:  # decoded whole first, so a file that is not text fails before any label is stored
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvaltrayError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise EvaltrayError(f"{path}:{reader.line_num}: not readable as CSV ({exc})") from None
