"""Scrubbing one batch of trace-store rows over a worker pool.

The OTLP receiver's flusher hands a batch here and assembles the next one while the workers scrub it.
Chat traffic repeats text (a system prompt in every trace, a multi-turn call resending the history); the
scrubber remembers each text's findings itself, and placeholders are numbered per trace after detection
(:class:`~evaltray.scrub.PlaceholderMap`), so the rows come out exactly as
:func:`~evaltray.scrub.scrub_table` alone writes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import pyarrow as pa

from evaltray.core.errors import IngestError
from evaltray.core.workers import Rows

if TYPE_CHECKING:  # the scrub package imports Presidio (seconds): only when a workspace scrubs
    from evaltray.scrub import ScrubConfig, TableScrub

#: A batch smaller than this is one piece: splitting it would cost more in pickling than it saves.
MIN_PIECE_ROWS = 64

Scrubbed = tuple[pa.Table, "TableScrub | None"]


def scrub_piece(table: pa.Table, config: ScrubConfig) -> tuple[pa.Table, TableScrub]:
    """:func:`~evaltray.scrub.scrub_table` of ``table`` (a worker's task)."""
    from evaltray.scrub import scrub_table

    return scrub_table(table, config)


def submit(table: pa.Table, config: ScrubConfig | None, pool: Executor | None, workers: int) -> list[Future[Scrubbed]]:
    """``table`` in pieces, one per worker, each scrubbed by ``pool`` (here, at once, without a pool); with
    no ``config`` (scrubbing off) the table itself, done."""
    if config is None or pool is None or table.num_rows < MIN_PIECE_ROWS * 2:
        done: Future[Scrubbed] = Future()
        done.set_result((table, None) if config is None else scrub_piece(table, config))
        return [done]
    from evaltray.scrub import scrub_rows

    size = -(-table.num_rows // workers)
    with _worker_death():
        return [pool.submit(scrub_rows, Rows(table.slice(s, size)), config) for s in range(0, table.num_rows, size)]


def gather(futures: list[Future[Scrubbed]] | list[Future[tuple[Rows, TableScrub]]]) -> list[Scrubbed]:
    """The pieces' results in order (rows a worker sent back as :class:`~evaltray.core.workers.Rows`, read)."""
    with _worker_death():
        results = [f.result() for f in futures]
    return [(rows.table() if isinstance(rows, Rows) else rows, report) for rows, report in results]


@contextlib.contextmanager
def _worker_death() -> Iterator[None]:
    """A worker that died is an :class:`IngestError`: the batch stays journaled and is scrubbed again."""
    try:
        yield
    except BrokenProcessPool:
        raise IngestError(
            "a scrub worker process died (out of memory?); the batch stays journaled and is scrubbed again"
        ) from None
