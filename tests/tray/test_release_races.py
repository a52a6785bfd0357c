"""Releases against concurrent tray writers and against kill -9 at every write step (issue 10, §3)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaltray.core.errors import EvaltrayError, WorkspaceError
from evaltray.core.store import Workspace
from evaltray.tray import casefile, gate, lifecycle, release
from evaltray.tray.casefile import load_cases
from tests.cli.runner import run
from tests.core import test_postgres
from tests.helpers import labeled_candidate, tray_of

FORK = multiprocessing.get_context("fork")  # children inherit the imported package: no second start-up
ROUNDS = 50
pg_url = test_postgres.pg_url  # the PostgreSQL server fixture (skips where there is none)


def _in_child(root: Path, start: Any, action: Callable[[Workspace], object]) -> None:
    """Run ``action`` on a workspace opened in this (forked) process; exit 0 when it succeeded, 1 when
    evaltray refused it."""
    ws = Workspace.open(root)
    start.wait()
    try:
        action(ws)
    except EvaltrayError:
        os._exit(1)
    os._exit(0)


def _race(root: Path, actions: dict[str, Callable[[Workspace], object]]) -> dict[str, bool]:
    """Start every action in its own process at the same moment; which ones reported success."""
    start = FORK.Event()
    procs = {name: FORK.Process(target=_in_child, args=(root, start, act)) for name, act in actions.items()}
    for p in procs.values():
        p.start()
    start.set()
    for p in procs.values():
        p.join(60)
    return {name: p.exitcode == 0 for name, p in procs.items()}


def _tray_ids(ws: Workspace) -> set[str]:
    return set(load_cases(ws, "main"))


@pytest.mark.early
def test_release_racing_a_retire_and_a_promote_loses_nothing(ws):
    tray_of(ws, {"refunds": 3, "shipping": 3})
    promoted: set[str] = set()
    retired: set[str] = set()
    released = 0
    for r in range(ROUNDS):
        cand = labeled_candidate(ws, f"race {r}", slice="refunds" if r % 2 else "shipping")
        victim = sorted(_tray_ids(ws))[0 if r % 2 else -1]
        ws.engine.dispose()  # the children open their own connections
        ok = _race(
            ws.root,
            {
                "release": lambda w, r=r: release.create_release(w, f"1.{r}.0", "alice"),
                "retire": lambda w, v=victim: gate.retire(w, v, "race", "alice"),
                "promote": lambda w, c=cand: gate.promote(w, "alice", candidate_ids=[c]),
            },
        )
        assert ok == {"release": True, "retire": True, "promote": True}, f"round {r}"
        reg = {row["id"]: row for row in gate.case_registry(ws)}
        case_id = next(row["id"] for row in reg.values() if row["candidate_id"] == cand)
        promoted.add(case_id)
        retired.add(victim)
        released += 1
        tray = _tray_ids(ws)
        assert promoted - retired <= tray, f"round {r}: a promoted case was lost"
        assert not retired & tray, f"round {r}: a retired case came back"
        assert all(reg[c]["status"] == "retired" for c in retired), f"round {r}"
        assert gate.validate(ws) == [], f"round {r}"
        assert release.verify_release(ws, f"1.{r}.0") == [], f"round {r}"
        stamps = {c["id"]: c["version"] for c in load_cases(ws, "main").values()}
        snapshot = release.load_release_cases(ws, f"1.{r}.0", "main")["main"]
        lost = [c["id"] for c in snapshot if c["id"] in stamps and "pending" in stamps[c["id"]].values()]
        assert not lost, f"round {r}: released cases left pending in the tray: {lost}"
        assert not casefile.journal_path(ws).exists()
    assert len(release.list_versions(ws)) == released == ROUNDS


def test_every_tray_writer_takes_the_one_tray_lock(ws, monkeypatch):
    tray_of(ws, {"refunds": 2})
    case_id = sorted(_tray_ids(ws))[0]
    monkeypatch.setattr(casefile, "TRAY_LOCK_WAIT", 0.0)
    held = f"another evaltray process holds the tray lock ({ws.state_dir / 'tray.lock'}); wait for it"
    other = Workspace.open(ws.root)
    with other.lock("tray"):
        for write in (
            lambda: release.create_release(ws, "1.0.0", "alice"),
            lambda: gate.retire(ws, case_id, "gone", "alice"),
            lambda: gate.promote(ws, "alice"),
            lambda: lifecycle.relabel_case(ws, case_id, "alice", reference="new"),
            lambda: lifecycle.supersede_case(ws, case_id, "alice", lifecycle.case_input("new input")),
            lambda: lifecycle.repair_tray(ws, "alice"),
        ):
            with pytest.raises(WorkspaceError) as exc:
                write()
            assert str(exc.value) == held
    other.close()


# ----------------------------------------------------------------------------- kill -9 at every step

#: The write steps of a release of the workspace's two sets, ``main`` with pending versions (so it is
#: restamped) and ``edge`` empty, in order.
STEPS = [
    "journal",
    "stage main",
    "stage edge",
    "stage manifest",
    "place main",
    "place edge",
    "manifest",
    "restamp main",
    "release log",
    "journal removed",
]


def _crashed_copy(workspace: Workspace, root: Path, step: str) -> int | None:
    """A copy of ``workspace`` at ``root`` whose ``release create 1.1.0`` died at ``step``; its exit code."""
    shutil.copytree(workspace.root, root)
    proc = FORK.Process(target=_crash_at, args=(root, step))
    proc.start()
    proc.join(60)
    return proc.exitcode


def _crash_at(root: Path, step: str) -> None:
    ws = Workspace.open(root)
    casefile.WRITE_STEP_HOOKS.append(lambda done: os._exit(9) if done == step else None)
    release.create_release(ws, "1.1.0", "alice")
    os._exit(0)


@pytest.fixture
def half_way(ws):
    """A workspace with release 1.0.0, then two new cases and a retired one waiting for 1.1.0."""
    tray_of(ws, {"refunds": 3, "shipping": 2})
    release.create_release(ws, "1.0.0", "alice")
    tray_of(ws, {"refunds": 2}, prefix="later")
    gate.retire(ws, sorted(_tray_ids(ws))[0], "obsolete", "alice")
    ws.engine.dispose()
    return ws


def test_release_write_steps_are_the_documented_ones(half_way):
    seen: list[str] = []
    casefile.WRITE_STEP_HOOKS.append(seen.append)
    try:
        release.create_release(half_way, "1.1.0", "alice")
    finally:
        casefile.WRITE_STEP_HOOKS.clear()
    assert seen == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_every_release_step_recovers(half_way, tmp_path, step):
    root = tmp_path / f"crash-{STEPS.index(step)}"
    tray_before = (half_way.root / "sets" / "main" / "cases.jsonl").read_bytes()
    assert _crashed_copy(half_way, root, step) == 9
    ws = Workspace.open(root)
    committed = STEPS.index(step) >= STEPS.index("manifest")
    assert casefile.journal_path(ws).exists() == (step != "journal removed")
    done = lifecycle.repair_tray(ws, "alice")
    if step == "journal removed":
        assert done is None
    else:
        assert done == casefile.Recovered("release 1.1.0", "finished" if committed else "rolled back")
    assert not casefile.journal_path(ws).exists()
    assert gate.validate(ws) == []
    assert lifecycle.repair_tray(ws, "alice") is None  # nothing left to do
    if committed:
        assert release.list_versions(ws) == ["1.0.0", "1.1.0"]
        assert release.verify_release(ws, "1.1.0") == []
        snapshot = (root / "releases" / "1.1.0" / "main.jsonl").read_bytes()
        assert ws.cases_path("main").read_bytes() == snapshot  # the tray is restamped
        assert {c["version"]["last_changed"] for c in load_cases(ws, "main").values()} <= {"1.0.0", "1.1.0"}
    else:
        assert release.list_versions(ws) == ["1.0.0"]
        assert ws.cases_path("main").read_bytes() == tray_before
        assert sorted(p.name for p in (root / "releases").iterdir()) == ["1.0.0", "1.0.0.json"]
        release.create_release(ws, "1.1.0", "alice")  # the version is free again
        assert release.verify_release(ws, "1.1.0") == []
    assert gate.validate(ws) == []
    ws.close()


def test_the_next_tray_writer_finishes_a_committed_release(half_way, tmp_path):
    root = tmp_path / "crash"
    _crashed_copy(half_way, root, "manifest")
    ws = Workspace.open(root)
    assert release.verify_release(ws, "1.1.0") == ["release 1.1.0 is not in the workspace's release log"]
    gate.retire(ws, sorted(_tray_ids(ws))[0], "recovered first", "alice")
    assert release.verify_release(ws, "1.1.0") == []
    assert gate.validate(ws) == []
    actions = [r["action"] for r in _audit(ws)][-4:]
    assert actions == ["release.create", "release.recover", "case.retire", "tray.write"]
    ws.close()


def _audit(ws: Workspace) -> list[dict[str, object]]:
    with ws.tx() as conn:
        return [dict(r._mapping) for r in conn.execute(ws.t["audit"].select().order_by(ws.t["audit"].c.id))]


def test_tray_repair_command(half_way, tmp_path):
    root = tmp_path / "crash"
    _crashed_copy(half_way, root, "stage manifest")
    assert run("-w", str(root), "-u", "alice", "tray", "repair").stdout == "release 1.1.0: rolled back\n"
    assert run("-w", str(root), "-u", "alice", "tray", "repair").stdout == "nothing to repair\n"
    assert json.loads(run("-w", str(root), "-u", "alice", "tray", "repair", "--json").stdout) == {
        "recovered": None,
        "outcome": None,
    }
    assert (
        run("-w", str(root), "-u", "alice", "tray", "validate").stdout
        == "sets/main/cases.jsonl: ok\nsets/edge/cases.jsonl: ok\n"
    )


def test_the_tray_lock_spans_checkouts_sharing_one_postgres_database(pg_url, tmp_path):
    # two checkouts of one workspace (two machines) share the state database but not the lock file
    first = Workspace.init(tmp_path / "one", user="alice", db_url=pg_url)
    (tmp_path / "two").mkdir()
    shutil.copy(first.root / "evaltray.toml", tmp_path / "two" / "evaltray.toml")
    second = Workspace.open(tmp_path / "two", db_url=pg_url)
    try:
        with (
            first.lock("tray"),
            pytest.raises(WorkspaceError, match=r"^another evaltray process holds the tray lock \("),
            second.lock("tray"),
        ):
            pass
        with second.lock("tray"):  # released with the first one
            pass
    finally:
        first.close()
        second.close()


def test_creating_the_crashed_version_again_first_settles_it(half_way, tmp_path):
    root = tmp_path / "crash"
    _crashed_copy(half_way, root, "manifest")
    ws = Workspace.open(root)
    with pytest.raises(EvaltrayError, match=r"^release 1\.1\.0 exists; releases are never rewritten"):
        release.create_release(ws, "1.1.0", "alice")
    assert not casefile.journal_path(ws).exists()  # finished before the version was checked
    assert release.verify_release(ws, "1.1.0") == []
    ws.close()


# ----------------------------------------------------------------------------- kill -9 in a promote or a retire

#: The write steps of a promote or a retire (:func:`evaltray.tray.casefile.commit_tray`), in order.
TRAY_STEPS = ["journal", "stage", "registry", "place", "journal removed"]


def _crash_tray_write(root: Path, step: str, action: str, target: str) -> None:
    ws = Workspace.open(root)
    casefile.WRITE_STEP_HOOKS.append(lambda done: os._exit(9) if done == f"{action}: {step}" else None)
    if action == "promote":
        gate.promote(ws, "alice", candidate_ids=[target])
    else:
        gate.retire(ws, target, "obsolete", "alice")
    os._exit(0)


@pytest.fixture
def two_writes(ws):
    """A tray of three cases, one of them to retire, and a signed candidate waiting to be promoted."""
    tray_of(ws, {"refunds": 3})
    cand = labeled_candidate(ws, "waiting to be promoted")
    ws.engine.dispose()
    return ws, cand, sorted(_tray_ids(ws))[0]


def test_promote_and_retire_write_steps_are_the_documented_ones(two_writes):
    ws, cand, victim = two_writes
    seen: list[str] = []
    casefile.WRITE_STEP_HOOKS.append(seen.append)
    try:
        gate.promote(ws, "alice", candidate_ids=[cand])
        gate.retire(ws, victim, "obsolete", "alice")
    finally:
        casefile.WRITE_STEP_HOOKS.clear()
    assert seen == [f"promote: {s}" for s in TRAY_STEPS] + [f"retire: {s}" for s in TRAY_STEPS]


@pytest.mark.parametrize("action", ["promote", "retire"])
@pytest.mark.parametrize("step", TRAY_STEPS)
def test_kill_at_every_promote_and_retire_step_recovers(two_writes, tmp_path, action, step):
    ws0, cand, victim = two_writes
    root = tmp_path / f"crash-{action}-{TRAY_STEPS.index(step)}"
    shutil.copytree(ws0.root, root)
    before = (root / "sets" / "main" / "cases.jsonl").read_bytes()
    proc = FORK.Process(target=_crash_tray_write, args=(root, step, action, cand if action == "promote" else victim))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    ws = Workspace.open(root)
    committed = TRAY_STEPS.index(step) >= TRAY_STEPS.index("registry")
    assert casefile.tray_journal_path(ws).exists() == (step != "journal removed")
    done = lifecycle.repair_tray(ws, "alice")
    expected = None if step == "journal removed" else "finished" if committed else "rolled back"
    assert (done.outcome if done else None) == expected
    assert not casefile.tray_journal_path(ws).exists()
    assert not (root / "sets" / "main" / ".cases.jsonl.tmp").exists()
    assert gate.validate(ws) == []
    reg = {row["id"]: row["status"] for row in gate.case_registry(ws)}
    tray = _tray_ids(ws)
    if not committed:
        assert ws.cases_path("main").read_bytes() == before
        assert len(tray) == 3 and victim in tray
    elif action == "promote":
        assert len(tray) == 4 and reg.keys() == tray
    else:
        assert tray == reg.keys() - {victim} and reg[victim] == "retired"
    ws.close()
