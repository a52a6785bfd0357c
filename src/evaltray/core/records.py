"""Typed models: what a trace, a candidate, a review, a case and a release are.

Traces are plain slotted dataclasses because ingest builds millions of them; cases are pydantic
models because the tray is small, hand-reviewed, and ships a JSON Schema generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class Expected(_Model):
    """The label: the correct behaviour, written by a person. At least one field is set."""

    reference: str | None = Field(default=None, description="a reference answer")
    behavior_code: str | None = Field(default=None, description="code from the guide's controlled vocabulary")
    assertions: list[str] = Field(default_factory=list, description="plain-language checks, e.g. 'mentions the 30-day window'")
    origin: ExpectedOrigin = "human"
    written_by: str

    @model_validator(mode="after")
    def _not_empty(self) -> Expected:
        if not (self.reference or self.behavior_code or self.assertions):
            raise ValueError("expected behaviour is empty: give a reference, a behavior code or assertions")
        return self


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


class ReleaseStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


def case_json_schema() -> dict[str, Any]:
    """The JSON Schema of a tray row, as shipped in ``evaltray/schemas/case.schema.json``."""
    schema = Case.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://evaltray.dev/schemas/case.schema.json"
    return schema
