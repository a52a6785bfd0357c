"""Every API function that writes refuses an unregistered user and a role without the right, in one line,
before it writes anything, so every front end gets the same check (failed before for ingest, dedup,
cluster, plan, sample, candidates add, scrub, export and vault keygen)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaltray.core.errors import PermissionDenied
from evaltray.core.records import ReleaseStatus
from evaltray.core.store import Workspace
from evaltray.curate import derived
from evaltray.curate.plan import init_plan
from evaltray.curate.sample import sample_to_pool
from evaltray.ingest import ingest_files
from evaltray.scrub import create_vault_key, scrub_store
from evaltray.tray import candidates as pool
from evaltray.tray import gate, release
from evaltray.tray import review as rev
from evaltray.tray.export import export_release
from tests.cli.conftest import shop  # noqa: F401 - the CLI tests' workspace
from tests.cli.runner import run

LABEL = "adjudicator, admin, labeler"
COMPOSE = "adjudicator, admin, composition_owner"

#: (what the refusal says a viewer lacks, the roles it names, the call as ``user``).
CALLS: list[tuple[str, str, Callable[[Workspace, Path, str], Any]]] = [
    ("ingesting", LABEL, lambda ws, tmp, u: ingest_files(ws, [tmp / "t.jsonl"], actor=u)),
    ("dedup", LABEL, lambda ws, tmp, u: derived.dedup_traces(ws, actor=u)),
    ("clustering", LABEL, lambda ws, tmp, u: derived.cluster_traces(ws, actor=u)),
    ("editing clusters", LABEL, lambda ws, tmp, u: derived.edit_clusters(ws, "merge", 0, 1, actor=u)),
    ("writing a plan", LABEL, lambda ws, tmp, u: init_plan(ws, actor=u)),
    ("sampling", LABEL, lambda ws, tmp, u: sample_to_pool(ws, u, 5)),
    ("adding candidates", LABEL, lambda ws, tmp, u: pool.add_from_traces(ws, u)),
    ("labeling a candidate", LABEL, lambda ws, tmp, u: pool.set_labels(ws, "c1", u, feature="x")),
    ("rejecting a candidate", LABEL, lambda ws, tmp, u: pool.reject(ws, "c1", "duplicate", u)),
    ("labeling", LABEL, lambda ws, tmp, u: rev.record_review(ws, "c1", u, {"reference": "x"})),
    ("importing labels", LABEL, lambda ws, tmp, u: rev.import_labels(ws, tmp / "labels.csv", u)),
    ("signing labels off", "adjudicator, admin", lambda ws, tmp, u: rev.sign_off(ws, ["c1"], u)),
    ("promoting", COMPOSE, lambda ws, tmp, u: gate.promote(ws, u)),
    ("retiring a case", COMPOSE, lambda ws, tmp, u: gate.retire(ws, "k1", "gone", u)),
    ("creating a release", COMPOSE, lambda ws, tmp, u: release.create_release(ws, "1.0.0", u)),
    (
        "changing a release's status",
        COMPOSE,
        lambda ws, tmp, u: release.set_status(ws, "1.0.0", ReleaseStatus.ARCHIVED, u),
    ),
    ("exporting a release", COMPOSE, lambda ws, tmp, u: export_release(ws, "1.0.0", to="jsonl", actor=u)),
    ("scrubbing", LABEL, lambda ws, tmp, u: scrub_store(ws, u)),
    ("making a vault key", "admin", lambda ws, tmp, u: create_vault_key(tmp / "vault.key", ws=ws, actor=u)),
]


@pytest.fixture
def audited(ws: Workspace, tmp_path: Path) -> Workspace:
    ws.add_user("vera", "viewer", actor="alice")
    (tmp_path / "t.jsonl").write_text('{"input": "hi", "output": "hello"}\n')
    (tmp_path / "labels.csv").write_text("candidate_id,expected\nc1,x\n")
    return ws


def _audit_rows(ws: Workspace) -> int:
    with ws.tx() as conn:
        return len(conn.execute(ws.t["audit"].select()).all())


@pytest.mark.parametrize(("what", "roles", "call"), CALLS, ids=[c[0] for c in CALLS])
def test_an_unregistered_user_is_refused(audited, tmp_path, what, roles, call):
    before = _audit_rows(audited)
    with pytest.raises(PermissionDenied) as exc:
        call(audited, tmp_path, "mallory")
    assert str(exc.value) == (
        "user 'mallory' is not registered; an admin adds them with `evaltray user add mallory --role labeler`"
    )
    assert _audit_rows(audited) == before and not (tmp_path / "vault.key").exists()


@pytest.mark.parametrize(("what", "roles", "call"), CALLS, ids=[c[0] for c in CALLS])
def test_a_viewer_is_refused(audited, tmp_path, what, roles, call):
    before = _audit_rows(audited)
    with pytest.raises(PermissionDenied) as exc:
        call(audited, tmp_path, "vera")
    assert str(exc.value) == f"user 'vera' is a viewer; {what} needs one of: {roles}"
    assert _audit_rows(audited) == before and not (tmp_path / "vault.key").exists()


def test_add_manual_refuses_a_viewer(audited):
    with pytest.raises(PermissionDenied) as exc:
        pool.add_manual(audited, "vera", "sme", [{"role": "user", "content": "hi"}])
    assert str(exc.value) == "user 'vera' may not add cases (needs labeler, adjudicator or admin)"


@pytest.mark.usefixtures("shop")
@pytest.mark.parametrize(
    ("args", "what", "roles"),
    [
        (("dedup",), "dedup", LABEL),
        (("cluster",), "clustering", LABEL),
        (("plan", "init"), "writing a plan", LABEL),
        (("export", "1.0.0", "--to", "jsonl"), "exporting a release", COMPOSE),
        (("vault", "keygen", "../vault.key"), "making a vault key", "admin"),
    ],
)
def test_the_cli_gets_the_same_one_line_refusal(args, what, roles):
    run("users", "add", "vera", "--role", "viewer")
    r = run("--user", "vera", *args, ok=False)
    assert (r.exit_code, r.stderr) == (1, f"Error: user 'vera' is a viewer; {what} needs one of: {roles}\n")
