"""Scrubbing a batch over a worker pool (:mod:`evaltray.ingest._batch_scrub`)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import orjson
import pyarrow as pa
import pytest

from evaltray.core.records import Message, Trace
from evaltray.ingest._batch_scrub import MIN_PIECE_ROWS, gather, scrub_piece, submit
from evaltray.ingest._driver import storable
from evaltray.scrub import ScrubConfig, scrub_table

CONFIG = ScrubConfig(None, b"k" * 32)


def table(*conversations: list[str]) -> pa.Table:
    traces = [
        Trace(f"t{n}", "generic", [Message("user", text) for text in texts]) for n, texts in enumerate(conversations)
    ]
    return storable(traces)[1]


def contents(scrubbed: pa.Table) -> list[list[str]]:
    return [[m["content"] for m in orjson.loads(raw)] for raw in scrubbed.column("messages").to_pylist()]


def test_a_text_met_again_keeps_the_placeholder_its_own_trace_numbers() -> None:
    """The second trace meets another person first: the shared text's name is that trace's <PERSON_2>."""
    shared = "Hi, I am Jane Roe."
    batch = table([shared, "Thanks, Jane Roe."], ["This is Max Mustermann.", shared])
    got = scrub_piece(batch, CONFIG)[0]
    assert contents(got) == [
        ["Hi, I am <PERSON_1>.", "Thanks, <PERSON_1>."],
        ["This is <PERSON_1>.", "Hi, I am <PERSON_2>."],
    ]
    assert got.equals(scrub_table(batch, CONFIG)[0])


def test_each_distinct_text_is_detected_once_by_the_scrubbers_own_memory() -> None:
    scrubber = CONFIG.scrubber()
    seen: Counter[str] = Counter()
    detect = scrubber._detect

    def counted(text: str) -> list:
        seen[text] += 1
        return detect(text)

    scrubber._detect = counted  # type: ignore[method-assign]
    try:
        system = "You are a helpful support assistant."
        for n in range(3):
            scrubber.scrub_messages([{"role": "system", "content": system}], f"t{n}")
        assert seen[system] == 1
    finally:
        del scrubber._detect


def test_a_batch_is_split_one_piece_per_worker_and_comes_back_in_order() -> None:
    rows = 2 * MIN_PIECE_ROWS + 1
    batch = table(*[[f"Mail me at user{n}@example.com"] for n in range(rows)])
    with ThreadPoolExecutor(2) as pool:
        futures = submit(batch, CONFIG, pool, 2)
        pieces = gather(futures)
    assert [t.num_rows for t, _ in pieces] == [MIN_PIECE_ROWS + 1, MIN_PIECE_ROWS]
    whole = pa.concat_tables([t for t, _ in pieces])
    assert contents(whole) == [["Mail me at <EMAIL_1>"]] * rows
    assert whole.column("trace_id").to_pylist() == [f"t{n}" for n in range(rows)]


@pytest.mark.parametrize("config", [None, CONFIG], ids=["scrub off", "no pool"])
def test_without_a_pool_the_batch_is_done_at_once(config: ScrubConfig | None) -> None:
    batch = table(["Mail me at jane@example.com"])
    (future,) = submit(batch, config, None, 2)
    got, info = future.result()
    assert (info is None) == (config is None)
    assert contents(got) == [["Mail me at jane@example.com" if config is None else "Mail me at <EMAIL_1>"]]
