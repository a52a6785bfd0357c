"""Helpers every parser shares: finding a record's line, and small readers of untrusted values."""

from __future__ import annotations

from pathlib import Path

from evaltray.ingest._common import LineFinder, as_dict, first_value, round_cost, sum_present


def test_record_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"id": "a",\n "spanId":"s1",\n "parent": "a",\n "id" :  "a"}\n')
    finder = LineFinder(path)
    assert finder.record_line("id", "a") == 1
    assert finder.record_line("id", "a", last=True) == 4  # any spacing around the colon
    assert finder.record_line("spanId", "s1") == 2
    assert finder.record_line("traceId", "s1") is None
    assert finder.record_line("traceId", "s1", anywhere=True) == 2  # the value alone
    assert finder.line_of('"parent"') == 3
    assert finder.line_of("missing") is None and finder.record_line("id", None) is None


def test_a_finder_reads_the_file_as_it_is_when_first_asked(tmp_path: Path) -> None:
    """What a finder read lasts as long as the finder (one parse): the next parse sees the file anew."""
    path = tmp_path / "x.json"
    path.write_text('{"id": "a"}\n')
    assert LineFinder(path).record_line("id", "a") == 1
    path.write_text('\n{"id": "a"}')  # the same size, the record a line lower
    assert LineFinder(path).record_line("id", "a") == 2


def test_value_helpers() -> None:
    assert first_value({"a": "", "b": None, "c": 0, "d": 1}, "a", "b", "c", "d") == 0  # 0 is a value
    assert first_value({}, "a") is None
    assert sum_present([1, None, 2.5]) == 3.5 and sum_present([None]) is None
    assert round_cost(0.000270899999000003) == 0.000270899999
    assert as_dict([1]) == {} and as_dict({"k": 1}) == {"k": 1}
