"""Hostile input read within limits: gzip bombs and YAML alias bombs are refused before they expand."""

from __future__ import annotations

import gzip

import pytest
import yaml

from evaltray.core.untrusted import ByteBudget, InputTooLarge, gunzip, load_yaml, size_text


def test_gunzip_reads_every_member_and_takes_from_the_budget() -> None:
    budget = ByteBudget(10)
    assert gunzip(gzip.compress(b"abc") + gzip.compress(b"defg"), budget) == b"abcdefg"
    assert budget.left == 3
    assert gunzip(gzip.compress(b"xyz"), budget) == b"xyz" and budget.left == 0
    with pytest.raises(InputTooLarge, match="^gzip data decompresses to more than 10 bytes; refused"):
        gunzip(gzip.compress(b"!"), budget)


def test_gunzip_stops_one_byte_past_the_limit() -> None:
    # 8 MB of zeros in about 8 KB: never more than limit + 1 bytes are produced
    bomb = gzip.compress(bytes(8_000_000))
    assert len(bomb) < 10_000
    with pytest.raises(InputTooLarge, match="^gzip data decompresses to more than 1 MiB; "):
        gunzip(bomb, ByteBudget(1 << 20))
    assert gunzip(gzip.compress(bytes(1 << 20)), ByteBudget(1 << 20)) == bytes(1 << 20)


def test_gunzip_corrupt_and_truncated_data_fail_as_gzip_does() -> None:
    data = gzip.compress(b"hello world" * 100)
    with pytest.raises(EOFError):
        gunzip(data[:-12], ByteBudget(1 << 20))
    with pytest.raises(OSError):
        gunzip(data[:10] + b"\xff" * 20 + data[30:], ByteBudget(1 << 20))
    with pytest.raises(OSError, match="trailing garbage"):
        gunzip(data + b"junk", ByteBudget(1 << 20))
    assert gunzip(data + b"\0\0", ByteBudget(1 << 20)) == b"hello world" * 100


def test_yaml_aliases_are_counted_as_what_they_expand_to() -> None:
    text = "a: &a [xx, yy]\nb: [*a, *a]\n"
    # a: 1 + (1+2) + (1+2) = 7; b: 1 + 7 + 7 = 15; keys "a", "b": 2 each; the mapping: 1
    node, doc = load_yaml(text, max_aliases=2, max_expanded=1 + 2 + 7 + 2 + 15)
    assert doc == {"a": ["xx", "yy"], "b": [["xx", "yy"], ["xx", "yy"]]} and node is not None
    with pytest.raises(InputTooLarge, match="^YAML expands to more than 26 bytes through its aliases"):
        load_yaml(text, max_aliases=2, max_expanded=26)
    with pytest.raises(InputTooLarge, match="^YAML uses more than 1 aliases; refused$"):
        load_yaml(text, max_aliases=1, max_expanded=1000)
    assert load_yaml("", 0, 0) == (None, None)
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: [", 0, 100)


def test_size_text() -> None:
    assert [size_text(n) for n in (1 << 30, 64 << 20, 512 << 10, 1000, 1025)] == [
        "1 GiB",
        "64 MiB",
        "512 KiB",
        "1,000 bytes",
        "1,025 bytes",
    ]
