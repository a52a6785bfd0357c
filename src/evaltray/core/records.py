"""Typed models: what a trace, a candidate, a review, a case and a release are.

Traces are plain slotted dataclasses because ingest builds millions of them; cases are pydantic
models because the tray is small, hand-reviewed, and ships a JSON Schema generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from .errors import ReleaseError

# --------------------------------------------------------------------------- traces


@dataclass(slots=True)
class ToolCall:
    """One call the model asked for; ``arguments`` is decoded JSON where the source allows."""

    id: str | None
    name: str
    arguments: Any = None


@dataclass(slots=True)
class Message:
    """One chat message in order: system, user, assistant (maybe with tool calls) or tool result."""

    role: str
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False


@dataclass(slots=True)
class Span:
    """A span or observation of the source trace, kept as a summary of the tree."""

    id: str
    parent_id: str | None
    name: str | None
    kind: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: str | None = None
    model: str | None = None


@dataclass(slots=True)
class Trace:
    """One production interaction, assembled from every span/observation that shares its id."""

    trace_id: str
    source_format: str
    messages: list[Message] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    model_version: str | None = None
    provider: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    feature: str | None = None
    tags: list[str] = field(default_factory=list)
    feedback_score: float | None = None
    feedback_comment: str | None = None
    prompt_template_id: str | None = None
    retrieved_doc_ids: list[str] = field(default_factory=list)
    corpus_version: str | None = None
    status: str = "ok"
    error: str | None = None
    spans: list[Span] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- vocabularies


class Role(StrEnum):
    """Workspace roles, weakest first."""

    VIEWER = "viewer"
    LABELER = "labeler"
    ADJUDICATOR = "adjudicator"
    COMPOSITION_OWNER = "composition_owner"
    ADMIN = "admin"


#: Roles that may write a label (the expected behaviour) and review verdicts.
LABEL_ROLES = frozenset({Role.LABELER, Role.ADJUDICATOR, Role.ADMIN})
#: Roles that may sign a row off through the validation gate (the adjudicator owns the guide).
SIGN_ROLES = frozenset({Role.ADJUDICATOR, Role.ADMIN})
#: Roles that may change the tray's composition: retire cases, cut releases.
COMPOSE_ROLES = frozenset({Role.COMPOSITION_OWNER, Role.ADJUDICATOR, Role.ADMIN})

Source = Literal["production", "synthetic", "sme", "user_feedback", "redteam", "known_bug"]
SOURCES: tuple[str, ...] = ("production", "synthetic", "sme", "user_feedback", "redteam", "known_bug")
Difficulty = Literal["easy", "medium", "hard"]
CaseType = Literal["typical", "edge", "adversarial", "safety"]
Verdict = Literal["pass", "fail"]
RejectReason = Literal["not_plausible", "unlabelable", "duplicate", "out_of_scope"]
REJECT_REASONS: tuple[str, ...] = ("not_plausible", "unlabelable", "duplicate", "out_of_scope")
ExpectedOrigin = Literal["human", "generated"]


# --------------------------------------------------------------------------- cases


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseInput(_Model):
    """What the system under test receives, snapshotted when the case was authored."""

    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list, description="retrieved passages, kept apart from the prompt")
    retrieved_doc_ids: list[str] = Field(default_factory=list, description="top-k document ids at authoring time")


class ExpectedToolCall(_Model):
    """A tool call the system must make: its name, and the arguments it must pass where they matter."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | None = Field(
        default=None, description="arguments that must be passed with these values (others may be too); none: any"
    )


#: Fields of :class:`Expected` a row holds only when they are set: rows written before they existed keep
#: their bytes, hence their content hashes and signatures.
_WRITTEN_WHEN_SET = ("tool_calls", "tool_calls_ordered")


class Expected(_Model):
    """The label: the correct behaviour, written by a person. At least one field is set."""

    reference: str | None = Field(default=None, description="a reference answer")
    behavior_code: str | None = Field(default=None, description="code from the guide's controlled vocabulary")
    assertions: list[str] = Field(
        default_factory=list, description="plain-language checks, e.g. 'mentions the 30-day window'"
    )
    origin: ExpectedOrigin = "human"
    written_by: str
    tool_calls: list[ExpectedToolCall] | None = Field(
        default=None, description="tool calls the answer must make (the tool_calls scorer); absent: none checked"
    )
    tool_calls_ordered: bool | None = Field(
        default=None, description="whether tool_calls must be made in the order given (default: any order)"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Expected:
        if not (self.reference or self.behavior_code or self.assertions or self.tool_calls):
            raise ValueError("expected behaviour is empty: give a reference, a behavior code, assertions or tool calls")
        return self

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _WRITTEN_WHEN_SET:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class Labels(_Model):
    feature: str | None = None
    scenario: str | None = None
    persona: str | None = None
    tags: list[str] = Field(default_factory=list)


class Provenance(_Model):
    source: Source
    trace_id: str | None = None
    ingest_date: str | None = None
    candidate_id: str
    labeled_by: str
    supersedes: str | None = None


class ReviewData(_Model):
    """The reviewer's judgement of the recorded output; kept beside the label, not as the label."""

    verdict: Verdict | None = None
    critique: str | None = None
    failure_tags: list[str] = Field(default_factory=list)
    recorded_output: str | None = None


class Freshness(_Model):
    last_verified_at: datetime
    verified_by: str


class Validation(_Model):
    """Who let the row through the gate, when, and on which review record."""

    review_id: int
    signed_by: str
    signed_at: datetime
    signoff_signature: str | None = Field(
        default=None, description="the signer's Ed25519 signature (base64) of the label, made at sign-off"
    )
    promoted_by: str | None = Field(default=None, description="who let the row through the gate")
    promotion_signature: str | None = Field(
        default=None, description="the promoter's Ed25519 signature (base64) of the whole row, made at promotion"
    )


class CaseVersion(_Model):
    added: str = Field(description="release version the case entered in; 'pending' until the next release")
    last_changed: str


class Case(_Model):
    """One golden-tray row: the input, the label and the six-tuple that makes it defensible."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    set: str
    input: CaseInput
    input_hash: str
    expected: Expected
    rubric: str | None = None
    guide_version: str
    corpus_version: str | None = None
    labels: Labels
    slice: str = Field(min_length=1)
    difficulty: Difficulty
    case_type: CaseType
    evaluation_type: str = "behavior"
    risk_level: Literal["low", "medium", "high"] = "medium"
    notes: str | None = None
    created_at: datetime
    provenance: Provenance
    review: ReviewData
    freshness: Freshness
    owner: str = Field(min_length=1)
    validation: Validation
    version: CaseVersion


class CaseStatus(StrEnum):
    """A case id in the registry: in the tray, or retired for good (its id is never reused)."""

    ACTIVE = "active"
    RETIRED = "retired"


class RegisteredCase(NamedTuple):
    """One row of the case registry as the gate checks it: what was signed off for the id.

    A tuple because a release reads every row (100k of them) straight from the database driver.
    """

    id: str
    set_name: str
    status: str
    review_id: int
    content_hash: str  # sha256 of the row as signed, its ``version`` aside
    retired_reason: str | None
    slice: str | None
    source: str | None
    difficulty: str | None
    case_type: str | None
    supersedes: str | None


@dataclass(frozen=True, slots=True)
class RegistryState:
    """The whole case registry and the ids of the signed reviews: what the gate trusts a tray row against."""

    cases: dict[str, RegisteredCase]
    signed_reviews: set[int]


# --------------------------------------------------------------------------- releases


class ReleaseStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclass(slots=True)
class SetCounts:
    """Cases of one set per split, slice, source, difficulty and case type, and held-out cases per slice."""

    split: dict[str, int]  # dev, holdout
    slice: dict[str, int]
    source: dict[str, int]
    difficulty: dict[str, int]
    case_type: dict[str, int]
    holdout_by_slice: dict[str, int]


@dataclass(slots=True)
class SourceMix:
    """The provenance mix against its target: shares overall, case counts per slice."""

    target: dict[str, float]
    actual: dict[str, float]
    by_slice: dict[str, dict[str, int]]


@dataclass(slots=True)
class SetManifest:
    """One set of a release: its snapshot file, per-case hashes, holdout, subsets and counts."""

    file: str  # relative to ``releases/``
    file_sha256: str
    n_cases: int
    content_hash: str
    cases: dict[str, str]  # case id → sha256 of its line, sorted by id like the snapshot
    holdout: list[str]
    subsets: dict[str, list[str]]
    counts: SetCounts
    source_mix: SourceMix

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "file_sha256": self.file_sha256,
            "n_cases": self.n_cases,
            "content_hash": self.content_hash,
            "cases": self.cases,
            "holdout": self.holdout,
            "subsets": self.subsets,
            "counts": _fields(self.counts),
            "source_mix": _fields(self.source_mix),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SetManifest:
        return cls(
            file=d["file"],
            file_sha256=d["file_sha256"],
            n_cases=d["n_cases"],
            content_hash=d["content_hash"],
            cases=d["cases"],
            holdout=d["holdout"],
            subsets=d["subsets"],
            counts=SetCounts(**d["counts"]),
            source_mix=SourceMix(**d["source_mix"]),
        )


@dataclass(slots=True)
class Release:
    """A release manifest, ``releases/<version>.json``: every set's snapshot and what changed since the parent.

    :meth:`to_json` is the file's exact bytes (sorted keys, two-space indent), which the release log hashes.
    """

    version: str
    parent: str | None
    created_at: str
    created_by: str
    workspace: str
    guide_version: str
    holdout_fraction: float
    notes: str | None
    sets: dict[str, SetManifest] = field(default_factory=dict)
    changelog: dict[str, dict[str, Any]] = field(default_factory=dict)  # set → what changed (release.diff_sets)
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    #: the audit log when the release was made: its newest row's id and hash, and how many rows it had
    audit_anchor: dict[str, Any] | None = None
    #: the creator's Ed25519 signature (base64) of the manifest without this field
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = _fields(self)
        d["sets"] = {name: s.to_dict() for name, s in self.sets.items()}
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def from_json(cls, body: bytes, where: str = "manifest") -> Release:
        """The manifest from its file's bytes; :class:`ReleaseError` naming ``where`` when they are not one."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ReleaseError(f"{where}: manifest is not valid JSON") from None
        try:
            sets = {name: SetManifest.from_dict(s) for name, s in data["sets"].items()}
            return cls(**{**data, "sets": sets})
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReleaseError(f"{where}: not a release manifest ({type(exc).__name__}: {exc})") from None


def _fields(record: Any) -> dict[str, Any]:
    """A slotted dataclass's fields, shallow (``dataclasses.asdict`` would copy every nested dict)."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def case_json_schema() -> dict[str, Any]:
    """The JSON Schema of a tray row, as shipped in ``evaltray/schemas/case.schema.json``."""
    schema = Case.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://evaltray.dev/schemas/case.schema.json"
    return schema
