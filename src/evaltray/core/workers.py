"""The one worker pool: how stages (ingest, scrub) fan work out over processes.

Linux forks (no re-import, and a worker dies with its parent, so a killed run leaves no worker holding
the workspace lock); elsewhere fork is unsafe and spawn re-imports the caller's main module. State a
worker needs travels in ``initargs`` to ``initializer``, never through globals set before forking.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from evaltray.core.errors import EvaltrayError
from evaltray.core.settings import env_workers

#: The most workers a default count uses: beyond it, writing the results is the bottleneck.
MAX_DEFAULT_WORKERS = 8


def worker_count(requested: int | None = None, error: type[EvaltrayError] = EvaltrayError) -> int:
    """``requested``, else ``$EVALTRAY_WORKERS``, else the CPUs this process may use (at most
    :data:`MAX_DEFAULT_WORKERS`); ``error`` is what a count below one raises."""
    if requested is None:
        requested = env_workers(error)
    if requested is None:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(usable, MAX_DEFAULT_WORKERS)
    if requested < 1:
        raise error(f"workers must be at least 1, got {requested}")
    return requested


@contextlib.contextmanager
def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes that die with this one; shut down (pending work cancelled) on exit."""
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(), initializer, initargs)
    )
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns on fork with threads; the workers use none
            warnings.simplefilter("ignore", DeprecationWarning)
            yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Rows:
    """A table on its way to or from a worker process, as one Arrow IPC stream: only its own rows travel.

    A pyarrow table pickles column by column, copying every row of the buffers a slice views: each piece of a
    batch sent to a worker carried the whole batch (1,500 of 3,000 OTLP rows: 44 ms to pickle and unpickle,
    against ~2 ms as a stream). The stream holds the schema, so :meth:`table` gives back the same table."""

    __slots__ = ("data",)

    def __init__(self, table: Any) -> None:
        import pyarrow as pa  # not at import: the CLI starts without pyarrow

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        self.data = sink.getvalue().to_pybytes()

    def table(self) -> Any:
        import pyarrow as pa

        return pa.ipc.open_stream(self.data).read_all()


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def _die_with_parent(parent: int) -> None:
    """Linux: a worker is killed with its parent, so a killed run leaves no worker holding its lock."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
