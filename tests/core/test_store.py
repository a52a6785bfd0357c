"""The workspace store on its own: SQLite settings, users and roles, the audit log, locks, opening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from evaltray.core import keys
from evaltray.core.errors import NotFound, PermissionDenied, WorkspaceError
from evaltray.core.records import SIGN_ROLES, Role
from evaltray.core.settings import Settings
from evaltray.core.store import POOL_SIZE, Workspace, current_user, find_root, make_engine, write_turns


def test_sqlite_state_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(ws: Workspace) -> None:
    assert ws.engine.url.database == str(ws.root / ".evaltray" / "state.db")
    with ws.tx() as conn:
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 1, 1, 10000]  # synchronous 1 is NORMAL


def test_twenty_concurrent_requests_each_keep_a_pooled_connection(ws: Workspace) -> None:
    """A web server's threads each hold a connection at once; none waits, and every one is kept for reuse
    (SQLAlchemy's default pool of 5 + 10 made the 16th wait and closed the overflow ones after each use)."""
    held = [ws.engine.connect() for _ in range(POOL_SIZE + 5)]  # past the pool's size: overflow, no waiting
    assert ws.engine.pool.checkedout() == POOL_SIZE + 5  # type: ignore[attr-defined]
    for conn in held:
        conn.close()
    assert ws.engine.pool.checkedin() == POOL_SIZE  # type: ignore[attr-defined]
    assert make_engine("sqlite://").pool.__class__.__name__ == "SingletonThreadPool"  # in memory: one database


def test_roles_and_what_they_may_do(ws: Workspace) -> None:
    assert ws.role_of("alice") is Role.ADMIN  # init makes its user the admin
    ws.add_user("bob", "labeler", actor="alice")
    assert ws.role_of("bob") is Role.LABELER
    with pytest.raises(PermissionDenied) as err:
        ws.require("bob", SIGN_ROLES, "signing off")
    assert str(err.value) == "user 'bob' is a labeler; signing off needs one of: adjudicator, admin"
    with pytest.raises(PermissionDenied) as err:  # an adjudicator signs: no key, no role
        ws.add_user("bob", Role.ADJUDICATOR, actor="alice")
    assert str(err.value) == (
        "the adjudicator role signs, so 'bob' needs a public key: they run `evaltray user keygen bob`, "
        "then `evaltray user add bob --role adjudicator --key bob.pub`"
    )
    _, _, bob_key = keys.keygen("bob")
    ws.add_user("bob", Role.ADJUDICATOR, actor="alice", public_key=bob_key)  # a second add changes the role
    assert ws.require("bob", SIGN_ROLES, "signing off") is Role.ADJUDICATOR
    with pytest.raises(PermissionDenied) as err:
        ws.role_of("zed")
    assert (
        str(err.value) == "user 'zed' is not registered; an admin adds them with `evaltray user add zed --role labeler`"
    )
    with pytest.raises(NotFound) as err2:
        ws.add_user("zed", "boss", actor="alice")
    assert str(err2.value) == "unknown role 'boss': one of viewer, labeler, adjudicator, composition_owner, admin"
    assert [(u["name"], u["role"]) for u in ws.users()] == [("alice", "admin"), ("bob", "adjudicator")]
    with pytest.raises(PermissionDenied) as err:  # only an admin manages users
        ws.add_user("bob", Role.ADMIN, actor="bob")
    assert str(err.value) == "user 'bob' is a adjudicator; managing users needs one of: admin"


def test_every_user_change_is_in_the_audit_log(ws: Workspace) -> None:
    ws.add_user("bob", "labeler", actor="alice")
    ws.add_user("bob", "viewer", actor="alice")
    with ws.tx() as conn:
        ws.audit(conn, "bob", "case.retire", "case-1", reason="stale", n=2)
        rows = conn.execute(sa.select(ws.t["audit"]).order_by("id")).mappings().all()
    assert [(r["id"], r["actor"], r["action"], r["object_id"], orjson.loads(r["detail"])) for r in rows] == [
        (
            1,
            "alice",
            "user.set",
            "alice",
            {"role": "admin", "key": keys.fingerprint(keys.load_signer("alice").public_key)},
        ),
        (2, "alice", "user.set", "bob", {"role": "labeler"}),
        (3, "alice", "user.set", "bob", {"role": "viewer"}),
        (4, "bob", "case.retire", "case-1", {"reason": "stale", "n": 2}),
    ]
    assert all(r["at"].endswith("Z") for r in rows)


def test_a_lock_is_held_by_one_at_a_time(ws: Workspace) -> None:
    with ws.lock("ingest"):
        with pytest.raises(WorkspaceError) as err, ws.lock("ingest"):
            pass
        assert str(err.value) == (
            f"another evaltray process holds the ingest lock ({ws.root / '.evaltray' / 'ingest.lock'}); wait for it"
        )
        with ws.lock("release"):  # another name is another lock
            pass
    with ws.lock("ingest"):  # released on leaving
        pass


def test_the_acting_user_explicit_then_the_workspace_default_then_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTRAY_USER", "env-user")  # the CLI's business, not the library's
    monkeypatch.setattr("getpass.getuser", lambda: "login")
    assert current_user("bob", Settings(default_user="alice")) == "bob"
    assert current_user(None, Settings(default_user="alice")) == "alice"
    assert current_user(None, Settings()) == "login"
    assert current_user("", None) == "login"


def test_find_root_takes_the_given_folder_or_the_nearest_above_the_current_one(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = ws.root / "sets" / "main"
    monkeypatch.setenv("EVALTRAY_WORKSPACE", str(tmp_path / "elsewhere"))  # the CLI's business
    monkeypatch.chdir(deep)
    assert find_root(None) == ws.root
    assert find_root(ws.root) == ws.root
    with pytest.raises(WorkspaceError) as err:
        find_root(deep)
    assert str(err.value) == f"{deep}: no evaltray.toml here; run `evaltray init` first"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceError) as err:
        find_root(None)
    assert str(err.value) == f"no evaltray.toml in {tmp_path} or its parents; run `evaltray init NAME` first"


def test_the_state_database_url_given_beats_the_environment_and_the_file(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ws.root / "evaltray.toml"
    settings.write_text(
        settings.read_text().replace(
            '# url = "postgresql+psycopg://user@host/evaltray"', f'url = "sqlite:///{tmp_path / "file.db"}"'
        )
    )
    opened = Workspace.open(ws.root)
    assert opened.engine.url.database == str(tmp_path / "file.db")
    opened.close()
    monkeypatch.setenv("EVALTRAY_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    opened = Workspace.open(ws.root)
    assert opened.engine.url.database == str(tmp_path / "env.db")
    opened.close()
    opened = Workspace.open(ws.root, db_url=f"sqlite:///{tmp_path / 'given.db'}")
    assert opened.engine.url.database == str(tmp_path / "given.db")
    assert opened.users() == []  # a fresh database, migrated
    opened.close()


def test_a_state_database_that_cannot_be_opened_is_an_error(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError) as err:
        make_engine("not a url")
    assert str(err.value) == (
        "the state database URL ([state] url or $EVALTRAY_DB_URL) is not one SQLAlchemy reads, "
        "e.g. postgresql+psycopg://user@host/evaltray"
    )
    with pytest.raises(WorkspaceError) as err:
        make_engine("nosuchdb://u:secret@host/db")
    assert str(err.value) == (
        "state database nosuchdb://u:***@host/db: Can't load plugin: sqlalchemy.dialects:nosuchdb; "
        "install its driver (`pip install 'evaltray[postgres]'` for PostgreSQL)"
    )
    missing = tmp_path / "no" / "such" / "folder" / "state.db"
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(ws.root, db_url=f"sqlite:///{missing}")
    assert str(err.value) == f"cannot open the state database sqlite:///{missing}: unable to open database file"


def test_init_refuses_a_workspace_twice(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError) as err:
        Workspace.init(ws.root)
    assert str(err.value) == f"{ws.root}: already an evaltray workspace"


# ----------------------------------------------------------------------------- one write transaction, writers' turns


def _audit_actions(ws: Workspace) -> list[str]:
    with ws.tx() as conn:
        return list(conn.scalars(sa.select(ws.t["audit"].c.action).order_by(ws.t["audit"].c.id)))


def test_atomic_makes_the_transactions_inside_it_one_that_commits_or_rolls_back_whole(ws: Workspace) -> None:
    before = _audit_actions(ws)
    with pytest.raises(RuntimeError), ws.atomic() as outer:
        ws.record("alice", "first.thing", None)  # a tx() of its own outside atomic: here it joins
        with ws.tx() as inner:
            assert inner is outer
            ws.audit(inner, "alice", "second.thing", None)
        raise RuntimeError("the third step failed")
    assert _audit_actions(ws) == before  # neither write stayed
    with ws.atomic():
        ws.record("alice", "first.thing", None)
        with ws.atomic():  # nested: joins the outer one
            ws.record("alice", "second.thing", None)
    assert _audit_actions(ws) == [*before, "first.thing", "second.thing"]
    assert ws.verify_audit().broken_at is None


def test_atomic_takes_sqlites_write_lock_at_its_start(ws: Workspace) -> None:
    """BEGIN IMMEDIATE: another connection cannot write while the block has only read so far."""
    other = make_engine(str(ws.engine.url))  # a second process's engine: SQLite's own lock, no shared turns
    try:
        with ws.atomic() as conn:
            conn.execute(sa.select(ws.t["users"].c.name)).all()  # read only, so far
            with pytest.raises(sa.exc.OperationalError, match="database is locked"), other.begin() as theirs:
                theirs.exec_driver_sql("PRAGMA busy_timeout=0")
                theirs.execute(ws.t["audit"].delete().where(ws.t["audit"].c.id < 0))
    finally:
        other.dispose()


def test_writers_of_one_process_take_turns_and_the_turn_is_given_back_after_a_rollback(ws: Workspace) -> None:
    """A writer waits for the one in front of it to commit (no "database is locked"), in order; a transaction that
    fails gives its turn back, so the next writer does not wait out the busy timeout."""
    import threading
    import time

    order: list[str] = []
    holding = threading.Event()

    def slow() -> None:
        with ws.tx() as conn:
            ws.audit(conn, "alice", "slow.first", None)
            holding.set()
            time.sleep(0.3)
            order.append("slow committed")

    thread = threading.Thread(target=slow)
    thread.start()
    holding.wait(5)
    ws.record("alice", "fast.second", None)  # waits for its turn, then writes
    order.append("fast committed")
    thread.join()
    assert order == ["slow committed", "fast committed"]
    assert _audit_actions(ws)[-2:] == ["slow.first", "fast.second"]
    with pytest.raises(RuntimeError), ws.tx() as conn:
        ws.audit(conn, "alice", "rolled.back", None)
        raise RuntimeError("boom")
    turns = write_turns(ws.engine)
    assert turns is not None and not turns.taken()  # given back: the next writer does not wait out the timeout
    ws.record("alice", "after.rollback", None)
    assert _audit_actions(ws)[-1] == "after.rollback" and not turns.taken()
    assert write_turns(make_engine("sqlite://")) is None  # in memory: one shared connection, no turns


def test_a_second_audit_entry_in_a_transaction_chains_to_the_hash_just_written(ws: Workspace) -> None:
    """The first entry of a transaction reads the last hash; the ones after it chain to what it wrote."""
    reads: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        if text.lstrip().upper().startswith("SELECT AUDIT.HASH"):
            reads.append(text)

    sa.event.listen(ws.engine, "before_cursor_execute", statement)
    try:
        with ws.tx() as conn:
            for n in range(3):
                ws.audit(conn, "alice", "chained.entry", str(n))
        ws.record("alice", "next.transaction", None)  # a new transaction reads the hash again
    finally:
        sa.event.remove(ws.engine, "before_cursor_execute", statement)
    assert len(reads) == 2
    assert ws.verify_audit().broken_at is None
    audit = ws.t["audit"]
    with ws.tx() as conn:
        rows = conn.execute(sa.select(audit.c.prev_hash, audit.c.hash).order_by(audit.c.id)).all()
    assert all(row.prev_hash == before.hash for before, row in zip(rows, rows[1:], strict=False))
