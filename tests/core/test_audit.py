"""The audit log is a hash chain: every writing command leaves a row, and a row deleted or edited afterwards
is named by ``audit verify`` (failed before: no chain, and dedup, cluster, plan, sample, export and vault
keygen left no row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from evaltray.core.audit import row_hash
from evaltray.core.store import Workspace
from evaltray.curate.plan import init_plan
from evaltray.scrub import create_vault_key
from evaltray.tray import candidates as pool
from tests.cli.conftest import shop  # noqa: F401 - the CLI tests' workspace
from tests.cli.runner import run


def _ids(ws: Workspace) -> list[int]:
    with ws.tx() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT id FROM audit ORDER BY id"))]


def _three_rows(ws: Workspace) -> list[int]:
    for name in ("bob", "carol", "dave"):
        ws.add_user(name, "labeler", actor="alice")
    return _ids(ws)


def test_an_untouched_log_verifies(ws):
    ids = _three_rows(ws)
    check = ws.verify_audit()
    assert (check.rows, check.broken_at, check.problem) == (4, None, None) and len(ids) == 4


def test_an_edited_row_is_named(ws):
    ids = _three_rows(ws)
    with ws.tx() as conn:
        conn.execute(sa.text('UPDATE audit SET detail = \'{"role":"admin"}\' WHERE id = :i'), {"i": ids[2]})
    check = ws.verify_audit()
    assert check.broken_at == ids[2]
    assert check.problem == f"audit row {ids[2]}: its content does not match its hash (edited)"


def test_a_deleted_row_is_named_by_the_gap(ws):
    ids = _three_rows(ws)
    with ws.tx() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = :i"), {"i": ids[2]})
    check = ws.verify_audit()
    assert check.broken_at == ids[3]
    assert check.problem == f"audit row {ids[3]}: does not follow row {ids[1]} (a row between them was deleted)"
    with ws.tx() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = :i"), {"i": ids[0]})
    assert ws.verify_audit().problem == (
        f"audit row {ids[1]}: does not follow the start of the log (a row between them was deleted)"
    )


def test_a_row_added_by_hand_is_named(ws):
    _three_rows(ws)
    with ws.tx() as conn:
        conn.execute(
            sa.text("INSERT INTO audit (id, at, actor, action, detail) VALUES (99, 'x', 'eve', 'review.sign', '{}')")
        )
    assert ws.verify_audit().problem == "audit row 99: no hash (written outside evaltray)"


def test_the_hash_covers_the_previous_hash_and_the_row(ws):
    ids = _three_rows(ws)
    with ws.tx() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM audit ORDER BY id"))]
    assert rows[0]["prev_hash"] == "" and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[2]["hash"] == row_hash(rows[1]["hash"], rows[2])
    assert [r["id"] for r in rows] == ids


def test_a_log_written_before_the_chain_is_chained_by_the_migration(tmp_path):
    ws = Workspace.init(tmp_path / "ws", user="alice")
    ws.add_user("bob", "labeler", actor="alice")
    with ws.tx() as conn:  # as it was before migration 3
        conn.execute(sa.text("UPDATE audit SET prev_hash = NULL, hash = NULL"))
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE number = 3"))
        conn.execute(sa.text("ALTER TABLE audit DROP COLUMN hash"))
        conn.execute(sa.text("ALTER TABLE audit DROP COLUMN prev_hash"))
    ws.close()
    again = Workspace.open(tmp_path / "ws")
    with again.tx() as conn:  # migration 3 ran again on opening
        assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations WHERE number = 3")).scalar() == 1
    check = again.verify_audit()
    assert (check.rows, check.problem) == (2, None)
    again.close()


def test_the_writers_that_left_no_row_now_audit(ws, tmp_path):
    init_plan(ws, ["refunds"], actor="alice")
    create_vault_key(tmp_path / "vault.key", ws=ws, actor="alice")
    pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Refund?"}])
    with ws.tx() as conn:
        rows = conn.execute(sa.text("SELECT actor, action, object_id, detail FROM audit ORDER BY id")).all()
    assert [(r.actor, r.action) for r in rows] == [
        ("alice", "user.set"),
        ("alice", "plan.init"),
        ("alice", "vault.keygen"),
        ("alice", "candidate.add"),
    ]
    assert (rows[1].object_id, json.loads(rows[1].detail)) == ("plan.yaml", {"features": ["refunds"], "force": False})
    assert ws.verify_audit().problem is None


@pytest.mark.usefixtures("shop")
def test_audit_verify_command():
    r = run("audit", "verify")
    assert r.stdout.startswith("audit log: ") and r.stdout.endswith(" rows, chain intact\n")
    run("dedup", "--no-paraphrase")
    db = Path.cwd() / ".evaltray" / "state.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        (last,) = conn.execute(sa.text("SELECT id FROM audit WHERE action = 'dedup'")).one()
        conn.execute(sa.text("UPDATE audit SET actor = 'eve' WHERE id = :i"), {"i": last})
    engine.dispose()
    r = run("audit", "verify", ok=False)
    assert (r.exit_code, r.stdout) == (1, f"audit row {last}: its content does not match its hash (edited)\n")
    assert json.loads(run("audit", "verify", "--json", ok=False).stdout)["broken_at"] == last
