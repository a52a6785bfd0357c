"""The one worker pool: how many workers, that the pool runs work with its initializer, that workers die
with their parent."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaltray.core import workers
from evaltray.core.errors import EvaltrayError
from evaltray.core.workers import MAX_DEFAULT_WORKERS, Rows, process_pool, worker_count

SRC = Path(workers.__file__).parents[2]  # the evaltray under test, not another install


class ParseError(EvaltrayError):
    pass


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTRAY_WORKERS", raising=False)


def test_requested_beats_the_environment_which_beats_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert worker_count() == 3
    monkeypatch.setenv("EVALTRAY_WORKERS", " 5 ")
    assert worker_count() == 5
    assert worker_count(2) == 2
    monkeypatch.setenv("EVALTRAY_WORKERS", "  ")  # blank is unset
    assert worker_count() == 3


def test_the_default_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert MAX_DEFAULT_WORKERS == 8
    assert worker_count() == 8
    assert worker_count(12) == 12  # asked for: not capped


@pytest.mark.parametrize(
    ("requested", "env", "message"),
    [
        (0, None, "workers must be at least 1, got 0"),
        (None, "0", "workers must be at least 1, got 0"),
        (None, "-2", "workers must be at least 1, got -2"),
        (None, "two", "EVALTRAY_WORKERS must be a whole number, got 'two'"),
    ],
)
def test_a_count_no_pool_can_have_is_the_callers_error(
    monkeypatch: pytest.MonkeyPatch, requested: int | None, env: str | None, message: str
) -> None:
    if env is not None:
        monkeypatch.setenv("EVALTRAY_WORKERS", env)
    with pytest.raises(ParseError) as err:
        worker_count(requested, ParseError)
    assert str(err.value) == message
    with pytest.raises(EvaltrayError, match=f"^{message}$"):
        worker_count(requested)


_GIVEN: list[str] = []


def _remember(value: str) -> None:
    _GIVEN.append(value)


def _report(x: int) -> tuple[int, int, list[str]]:
    return x * x, os.getpid(), list(_GIVEN)


def test_the_pool_runs_work_in_other_processes_each_started_by_the_initializer() -> None:
    with process_pool(2, _remember, ("handed over",)) as pool:
        results = list(pool.map(_report, range(6)))
    assert [r[0] for r in results] == [0, 1, 4, 9, 16, 25]
    assert {r[2] == ["handed over"] for r in results} == {True}  # once per worker, not once per task
    assert os.getpid() not in {r[1] for r in results}
    assert _GIVEN == []  # the parent's own state is untouched
    with process_pool(1) as pool:
        assert pool.submit(pow, 2, 10).result() == 1024


def _gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(sys.platform != "linux", reason="workers die with their parent on Linux (PR_SET_PDEATHSIG)")
def test_a_worker_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time\n"
        "from evaltray.core.workers import process_pool\n"
        "with process_pool(1) as pool:\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert worker != parent.pid and not _gone(worker)
    finally:
        parent.send_signal(signal.SIGKILL)  # no clean-up code runs: only the kernel can take the worker down
        parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker)


def test_rows_travel_as_their_own_rows_and_come_back_the_same_table() -> None:
    import pyarrow as pa

    schema = pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("n", pa.int64()),
        ],
        metadata={b"kind": b"test"},
    )
    table = pa.table(
        {
            "id": [f"t{i}" + "x" * 200 for i in range(1000)],
            "at": pa.array([i * 10**6 for i in range(1000)], pa.timestamp("us", tz="UTC")),
            "tags": [["a", None] if i % 3 else None for i in range(1000)],
            "n": [None if i % 7 == 0 else i for i in range(1000)],
        },
        schema=schema,
    )
    piece = table.slice(100, 50)
    back = pickle.loads(pickle.dumps(Rows(piece))).table()
    assert back.equals(piece) and back.schema.equals(piece.schema, check_metadata=True)
    # a slice pickled as a table carries all 1,000 rows; as Rows, its 50
    assert len(pickle.dumps(Rows(piece))) * 10 < len(pickle.dumps(piece))
    assert Rows(table.slice(0, 0)).table().num_rows == 0
