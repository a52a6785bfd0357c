"""The same workflow on a real PostgreSQL server, started by the test (skipped where none is installed)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from evaltray.core.migrations import MIGRATIONS
from evaltray.core.store import Workspace
from evaltray.tray import candidates as pool
from evaltray.tray import gate, release
from evaltray.tray import review as rev
from tests.helpers import labeled_candidate

pytest.importorskip("psycopg")


def _pg_bin() -> Path | None:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists():
            return base
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    if os.environ.get("EVALTRAY_TEST_PG_URL"):
        yield os.environ["EVALTRAY_TEST_PG_URL"]
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (install Debian's postgresql)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user")
        run_as = ["runuser", "-u", "postgres", "--"]
    # not under pytest's tmp dir: that is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="evaltray-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if run_as:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "evaltray", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "evaltray", "evaltray"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://evaltray@127.0.0.1:{port}/evaltray"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_gate_and_release_on_postgres(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALTRAY_DB_URL", pg_url)
    ws = Workspace.init(tmp_path / "ws", user="alice")
    try:
        assert ws.engine.dialect.name == "postgresql"
        a = labeled_candidate(ws, "Where is my parcel?", slice="shipping")
        b = labeled_candidate(ws, "Refund please", slice="refunds", sign=False)
        report = gate.promote(ws, "alice")
        assert [p.candidate_id for p in report.promoted] == [a]
        assert report.blocked == [(b, ["not signed off: an adjudicator must sign the label (`evaltray signoff`)"])]
        rev.sign_off(ws, [b], "alice")
        gate.promote(ws, "alice")
        assert gate.validate(ws) == []
        c = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "asdf"}])
        pool.reject(ws, c, "unlabelable", "alice")
        assert pool.reject_bin(ws) == {"unlabelable": 1}
        r = release.create_release(ws, "1.0.0", "alice")
        assert r.manifest.sets["main"].n_cases == 2
        assert release.verify_release(ws, "1.0.0") == []
        assert [x["version"] for x in release.release_log(ws)] == ["1.0.0"]
        check = ws.verify_audit()  # the audit chain holds on PostgreSQL too, and an edit is named
        assert check.problem is None and check.rows > 5
        with ws.tx() as conn:
            conn.exec_driver_sql("UPDATE audit SET actor = 'eve' WHERE id = (SELECT max(id) FROM audit)")
            last = conn.exec_driver_sql("SELECT max(id) FROM audit").scalar()
        assert ws.verify_audit().problem == f"audit row {last}: its content does not match its hash (edited)"
        # migrations are recorded once and re-opening applies nothing new
        ws2 = Workspace.open(ws.root)
        with ws2.tx() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM schema_migrations").scalar() == len(MIGRATIONS)
        ws2.close()
    finally:
        ws.close()
