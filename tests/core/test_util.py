"""Shared helpers: atomic writes, canonical JSON and the hashes taken over it."""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaltray.core.util import (
    atomic_write,
    bulk,
    canonical_json,
    content_hash,
    dumps,
    file_sha256,
    loads,
    now_iso,
    sha256_hex,
)

#: sha256 of the three bytes "abc" (FIPS 180-2, appendix B.1)
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_atomic_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cases.jsonl"
    atomic_write(path, b"old\n")
    atomic_write(path, iter([b"new ", b"rows\n"]), mode=0o600)
    assert path.read_bytes() == b"new rows\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["cases.jsonl"]


@pytest.mark.parametrize(("mask", "data_mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0, 0o666)])
def test_data_follows_the_umask_and_a_secret_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int, data_mode: int
) -> None:
    """A file without ``mode`` is made as any new file (0o666 less the umask); one with ``mode`` gets it
    exactly, and its bytes are never readable by others on the way: the temp file is created 0o600 (not
    loosened afterwards) and only then set to ``mode``."""
    created: list[int] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(mask)
    try:
        atomic_write(tmp_path / "cases.jsonl", b"{}\n")
        atomic_write(tmp_path / "vault.key", b"k\n", mode=0o600)
        atomic_write(tmp_path / "1.0.0.json", b"{}", mode=0o444)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"cases.jsonl": data_mode, "vault.key": 0o600, "1.0.0.json": 0o444}
    assert created == [0o666, 0o600, 0o600]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"old\n")

    def rows() -> Iterator[bytes]:
        yield b"half of the new "
        raise KeyboardInterrupt  # killed while writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, rows())
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cases.jsonl"]


def test_canonical_json_sorts_keys_writes_compact_utf8_and_stringifies_keys() -> None:
    obj = {"b": 1, "a": [1, 2], "c": {"z": None, "y": "é"}}
    assert canonical_json(obj) == b'{"a":[1,2],"b":1,"c":{"y":"\xc3\xa9","z":null}}'
    assert canonical_json({2: "x", 10: "y"}) == b'{"10":"y","2":"x"}'  # keys sorted as text
    assert canonical_json({"b": 2, "a": 1}) == canonical_json({"a": 1, "b": 2})


def test_hashes_against_values_worked_out_by_hand(tmp_path: Path) -> None:
    assert sha256_hex("abc") == sha256_hex(b"abc") == ABC
    # printf '{"a":1,"b":2}' | sha256sum
    assert content_hash({"b": 2, "a": 1}) == "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777"
    # printf '{"a":[1,2],"b":1,"c":{"y":"\xc3\xa9","z":null}}' | sha256sum
    assert content_hash({"c": {"z": None, "y": "é"}, "b": 1, "a": [1, 2]}) == (
        "f1864c1996294f4dd6f2fb7440ac01f6def358170843f70cf11a5655ccd983c5"
    )
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_sha256(tmp_path / "abc") == ABC
    big = tmp_path / "big"
    big.write_bytes(b"abc" * 700_000)  # more than one 1 MiB read
    assert file_sha256(big) == sha256_hex(b"abc" * 700_000)


def test_dumps_loads_and_the_time_format() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert loads('{"a":[1,"é"]}') == loads(b'{"a":[1,"\xc3\xa9"]}') == {"a": [1, "é"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_iso())


def test_bulk_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with bulk():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
