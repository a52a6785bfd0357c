"""Schema migrations: numbered from 1 without a gap, each applied once, in order."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from evaltray.core.migrations import MIGRATIONS, migrate, migration
from evaltray.core.store import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield engine
    engine.dispose()


def recorded(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.begin() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT number, name FROM schema_migrations ORDER BY number")]


def test_numbers_are_consecutive_from_one_in_registration_order() -> None:
    assert [(name, fn.__name__) for name, fn in MIGRATIONS.items()][:7] == [
        ("1", "m001_initial"),
        ("2", "m002_case_axes"),
        ("3", "m003_audit_chain"),
        ("4", "m004_keys"),
        ("5", "m005_tasks"),
        ("6", "m006_web_accounts"),
        ("7", "m007_monitor_corpora"),
    ]
    assert [int(name) for name, _ in MIGRATIONS.items()] == list(range(1, len(MIGRATIONS) + 1))


def test_a_fresh_database_gets_every_migration_once_and_a_rerun_applies_nothing(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert migrate(conn) == list(range(1, len(MIGRATIONS) + 1))
    assert len(recorded(engine)) == len(MIGRATIONS)
    assert recorded(engine)[:7] == [
        (1, "m001_initial"),
        (2, "m002_case_axes"),
        (3, "m003_audit_chain"),
        (4, "m004_keys"),
        (5, "m005_tasks"),
        (6, "m006_web_accounts"),
        (7, "m007_monitor_corpora"),
    ]
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == {
        "schema_migrations",
        "users",
        "candidates",
        "reviews",
        "cases",
        "releases",
        "audit",
        "ingest_files",
        "user_keys",
        "tasks",
        "failure_taxonomy",
        "web_sessions",
        "api_tokens",
        "review_drafts",
        "review_timings",
        "guide_versions",
        "corpora",  # the monitors' registered corpora
        "do_not_use",  # prompt examples tagged do-not-use-in-eval
        "plan_changes",  # slice-mix changes waiting for the composition owner
    }
    columns = [c["name"] for c in sa.inspect(engine).get_columns("cases")]
    assert columns[-7:-2] == ["slice", "source", "difficulty", "case_type", "supersedes"]  # from migration 2
    with engine.begin() as conn:
        assert migrate(conn) == []
    assert len(recorded(engine)) == len(MIGRATIONS)
    assert recorded(engine)[:7] == [
        (1, "m001_initial"),
        (2, "m002_case_axes"),
        (3, "m003_audit_chain"),
        (4, "m004_keys"),
        (5, "m005_tasks"),
        (6, "m006_web_accounts"),
        (7, "m007_monitor_corpora"),
    ]
    columns = [c["name"] for c in sa.inspect(engine).get_columns("audit")]
    assert columns[-2:] == ["prev_hash", "hash"]  # from migration 3
    columns = [c["name"] for c in sa.inspect(engine).get_columns("cases")]
    assert columns[-2:] == ["promoted_by", "promotion_signature"]  # from migration 4
    assert [c["name"] for c in sa.inspect(engine).get_columns("users")][-2:] == ["public_key", "password_hash"]


def test_a_database_behind_gets_only_what_it_lacks(engine: sa.Engine) -> None:
    first = MIGRATIONS.get("1")
    with engine.begin() as conn:  # a database made before migration 2 existed
        conn.exec_driver_sql("CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL)")
        first(conn)
        conn.exec_driver_sql("INSERT INTO schema_migrations VALUES (1, 'm001_initial')")
    with engine.begin() as conn:
        assert migrate(conn) == list(range(2, len(MIGRATIONS) + 1))
    assert len(recorded(engine)) == len(MIGRATIONS)
    assert recorded(engine)[:7] == [
        (1, "m001_initial"),
        (2, "m002_case_axes"),
        (3, "m003_audit_chain"),
        (4, "m004_keys"),
        (5, "m005_tasks"),
        (6, "m006_web_accounts"),
        (7, "m007_monitor_corpora"),
    ]


@pytest.mark.parametrize("offset", [-2, -1, 1])  # numbers 1 to 7 taken, 9 leaves a gap
def test_a_number_out_of_order_is_refused(offset: int) -> None:
    before = len(MIGRATIONS)
    number = before + 1 + offset  # only len + 1 is next
    with pytest.raises(RuntimeError) as err:
        migration(number)
    assert str(err.value) == f"migration {number} out of order"
    assert len(MIGRATIONS) == before  # nothing was registered
