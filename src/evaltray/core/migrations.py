"""Append-only schema migrations for the workflow state (SQLite or PostgreSQL).

Each migration is a numbered function registered with ``@migration``; once released it is never
edited. A new column or table is a new function at the end of the file.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .audit import chain_all
from .registry import Registry

Migration = Callable[[Connection], None]
#: Every migration under its number (as text), in the order they apply.
MIGRATIONS: Registry[Migration] = Registry("migration")


def migration(number: int) -> Callable[[Migration], Migration]:
    """Register the decorated function as migration ``number``; numbers must be consecutive from 1."""
    if number != len(MIGRATIONS) + 1:
        raise RuntimeError(f"migration {number} out of order")
    return MIGRATIONS.register(str(number))


def _ts() -> sa.Column:
    return sa.Column("created_at", sa.String(40), nullable=False)


@migration(1)
def m001_initial(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "users",
        md,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(40), nullable=False),
        _ts(),
    )
    sa.Table(
        "candidates",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("set_name", sa.String(100), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("trace_id", sa.String(200), index=True),
        sa.Column("ingest_date", sa.String(20)),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("recorded_output", sa.Text),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("slice", sa.String(200)),
        sa.Column("difficulty", sa.String(20)),
        sa.Column("case_type", sa.String(20)),
        sa.Column("risk_level", sa.String(20)),
        sa.Column("notes", sa.Text),
        sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("reject_reason", sa.String(40)),
        sa.Column("reject_note", sa.Text),
        sa.Column("rejected_by", sa.String(200)),
        sa.Column("rejected_at", sa.String(40)),
        sa.Column("case_id", sa.String(64)),
        sa.Column("supersedes", sa.String(64)),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts(),
    )
    sa.Table(
        "reviews",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("candidate_id", sa.String(64), sa.ForeignKey("candidates.id"), nullable=False, index=True),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("expected", sa.Text, nullable=False),
        sa.Column("expected_first", sa.Boolean, nullable=False),
        sa.Column("verdict", sa.String(10)),
        sa.Column("critique", sa.Text),
        sa.Column("failure_tags", sa.Text, nullable=False),
        sa.Column("rubric", sa.Text),
        sa.Column("guide_version", sa.String(40), nullable=False),
        sa.Column("slice", sa.String(200)),
        sa.Column("difficulty", sa.String(20)),
        sa.Column("case_type", sa.String(20)),
        sa.Column("signed_by", sa.String(200)),
        sa.Column("signed_at", sa.String(40)),
        _ts(),
    )
    sa.Table(
        "cases",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("set_name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("candidate_id", sa.String(64), nullable=False),
        sa.Column("review_id", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("successor", sa.String(64)),
        sa.Column("retired_reason", sa.Text),
        sa.Column("retired_by", sa.String(200)),
        sa.Column("retired_at", sa.String(40)),
        _ts(),
    )
    sa.Table(
        "releases",
        md,
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts(),
    )
    sa.Table(
        "audit",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("object_id", sa.String(200)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    sa.Table(
        "ingest_files",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("n_traces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_issues", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40)),
    )
    md.create_all(conn)


@migration(2)
def m002_case_axes(conn: Connection) -> None:
    """The registry keeps each signed row's slice, source, difficulty, case type and predecessor, so a
    release need not parse rows that are byte-identical to what was signed."""
    for column in (
        "slice VARCHAR(200)",
        "source VARCHAR(40)",
        "difficulty VARCHAR(20)",
        "case_type VARCHAR(20)",
        "supersedes VARCHAR(64)",
    ):
        conn.execute(sa.text(f"ALTER TABLE cases ADD COLUMN {column}"))


@migration(3)
def m003_audit_chain(conn: Connection) -> None:
    """The audit log becomes a hash chain: each row keeps the previous row's hash and its own; the rows
    already there are chained in id order."""
    conn.execute(sa.text("ALTER TABLE audit ADD COLUMN prev_hash VARCHAR(64)"))
    conn.execute(sa.text("ALTER TABLE audit ADD COLUMN hash VARCHAR(64)"))
    chain_all(conn)


@migration(4)
def m004_keys(conn: Connection) -> None:
    """Signatures: each user's registered public key (and every key they ever had, so old signatures still
    verify), each sign-off's signature on its review, each promotion's signer and signature on its case."""
    conn.execute(sa.text("ALTER TABLE users ADD COLUMN public_key VARCHAR(100)"))
    conn.execute(sa.text("ALTER TABLE reviews ADD COLUMN signoff_signature VARCHAR(100)"))
    conn.execute(sa.text("ALTER TABLE cases ADD COLUMN promoted_by VARCHAR(200)"))
    conn.execute(sa.text("ALTER TABLE cases ADD COLUMN promotion_signature VARCHAR(100)"))
    md = sa.MetaData()
    sa.Table(
        "user_keys",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("public_key", sa.String(100), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        _ts(),
    )
    md.create_all(conn)


@migration(5)
def m005_tasks(conn: Connection) -> None:
    """The review queue of typed tasks (label, revalidate, judge_check, failing_case), each with its outcome and
    the time spent on it; and the failure taxonomy a person keeps from the proposed failure categories.
    ``open_key`` is ``kind:ref`` while a task is open and NULL once closed, so one open task per (kind, ref)."""
    md = sa.MetaData()
    tasks = sa.Table(
        "tasks",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False, index=True),
        sa.Column("ref", sa.String(300), nullable=False, index=True),
        sa.Column("open_key", sa.String(400), unique=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("assignee", sa.String(200), index=True),
        sa.Column("assigned_at", sa.String(40)),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(20)),
        sa.Column("outcome_reason", sa.Text),
        sa.Column("verdict", sa.String(10)),
        sa.Column("critique", sa.Text),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("escalated_by", sa.String(200)),
        sa.Column("closed_by", sa.String(200)),
        sa.Column("closed_at", sa.String(40)),
        _ts(),
    )
    # the next task is a walk down this index: most urgent, then oldest, of one status
    sa.Index("ix_tasks_queue", tasks.c.status, tasks.c.priority.desc(), tasks.c.id)
    sa.Table(
        "failure_taxonomy",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("keywords", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("merged_into", sa.String(200)),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts(),
    )
    md.create_all(conn)


@migration(6)
def m006_web_accounts(conn: Connection) -> None:
    """The web app's accounts: a password per user (argon2), sign-in sessions and API tokens (only their
    sha256 kept), review drafts that survive a reload, time spent per reviewed row, and the labeling guide's
    text per version."""
    conn.execute(sa.text("ALTER TABLE users ADD COLUMN password_hash VARCHAR(200)"))
    md = sa.MetaData()
    sa.Table(
        "web_sessions",
        md,
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        _ts(),
    )
    sa.Table(
        "api_tokens",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("label", sa.String(200)),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("last_used_at", sa.String(40)),
        sa.Column("revoked_at", sa.String(40)),
        _ts(),
    )
    sa.Table(
        "review_drafts",
        md,
        sa.Column("reviewer", sa.String(200), primary_key=True),
        sa.Column("candidate_id", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    sa.Table(
        "review_timings",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("candidate_id", sa.String(64), nullable=False, index=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("review_id", sa.Integer),
        sa.Column("seconds", sa.Integer, nullable=False),
        _ts(),
    )
    sa.Table(
        "guide_versions",
        md,
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
        _ts(),
    )
    md.create_all(conn)


@migration(7)
def m007_monitor_corpora(conn: Connection) -> None:
    """Monitors: the corpora a tray is checked against on every promote and release (fine-tuning data, prompt
    files, judge prompts), and the prompt examples tagged do-not-use-in-eval, by the key of their text."""
    md = sa.MetaData()
    sa.Table(
        "corpora",
        md,
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("registered_by", sa.String(200), nullable=False),
        _ts(),
    )
    sa.Table(
        "do_not_use",
        md,
        sa.Column("text_key", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(1100), nullable=False),
        sa.Column("tagged_by", sa.String(200), nullable=False),
        _ts(),
    )
    md.create_all(conn)


@migration(8)
def m008_queue_index(conn: Connection) -> None:
    """The review queue is a walk down pending candidates by age: one index serves its page, its neighbours
    and its counts, so a page of a 100k pool reads a page, not the pool."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_candidates_queue ON candidates (status, created_at, id)"))


@migration(9)
def m009_plan_changes(conn: Connection) -> None:
    """Changes to the coverage plan's slice mix and targets, proposed and waiting for the composition owner's
    approval: the proposed ``plan.yaml`` whole, the sha256 of the plan it was made from, and the decision."""
    md = sa.MetaData()
    sa.Table(
        "plan_changes",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("proposed_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("base_sha", sa.String(64), nullable=False),
        sa.Column("plan_text", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", sa.String(40)),
        sa.Column("decision_reason", sa.Text),
        _ts(),
    )
    md.create_all(conn)


@migration(10)
def m010_audit_action_index(conn: Connection) -> None:
    """Settings and markers kept in the audit log are looked up by action and object (the newest ``queue.blind``
    entry, read by every review page and every label saved): without an index that walked the whole log,
    tens of milliseconds a page once a workspace has a few 10k labels' worth of entries."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_audit_action ON audit (action, object_id)"))


def migrate(conn: Connection) -> list[int]:
    """Apply every migration not yet recorded; return the numbers applied."""
    conn.execute(
        sa.text("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL)")
    )
    done = {row[0] for row in conn.execute(sa.text("SELECT number FROM schema_migrations"))}
    applied = []
    for key, fn in MIGRATIONS.items():
        number = int(key)
        if number in done:
            continue
        fn(conn)
        conn.execute(
            sa.text("INSERT INTO schema_migrations (number, name) VALUES (:n, :name)"),
            {"n": number, "name": fn.__name__},
        )
        applied.append(number)
    return applied
