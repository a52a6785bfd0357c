"""Corpora are streamed as documents; every line that cannot be read is reported where it is and skipped."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaltray.curate.dedup import normalize
from evaltray.monitor import corpus as cp
from evaltray.monitor.corpus import BadLine, CorpusError, Doc, read_corpus, strings_of


def test_strings_of_takes_every_string_in_order_and_no_key():
    value = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "n": 3}
    assert strings_of(value) == ["user", "hi", "assistant", "yo"]


def test_jsonl_reports_broken_binary_and_badly_encoded_lines_and_goes_on(tmp_path: Path):
    path = tmp_path / "ft.jsonl"
    path.write_bytes(
        orjson.dumps({"text": "first good line"})
        + b"\n{not json\n"
        + b'{"text": "nul \x00 inside"}\n'
        + b'{"text": "latin-1 \xe9t\xe9"}\n'
        + b"\n"
        + orjson.dumps({"prompt": "last", "completion": "good"})
    )
    items = list(read_corpus(path))
    assert [type(i).__name__ for i in items] == ["Doc", "BadLine", "BadLine", "BadLine", "Doc"]
    assert items[0] == Doc(str(path), 1, "first good line")
    assert (items[1].line, items[1].reason.startswith("not JSON (unexpected character")) == (2, True)
    assert items[2:4] == [
        BadLine(str(path), 3, "binary data (a NUL byte)"),
        BadLine(str(path), 4, "not UTF-8 (byte 19)"),
    ]
    assert items[4] == Doc(str(path), 6, "last\ngood")


def test_a_line_longer_than_the_limit_is_skipped_without_being_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cp, "MAX_LINE", 64)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"t": "' + b"x" * 500 + b'"}\n{"t": "after"}\n')
    items = list(read_corpus(path))
    assert items == [BadLine(str(path), 1, "line longer than 64 bytes, skipped"), Doc(str(path), 2, "after")]


def test_text_files_are_read_by_paragraph(tmp_path: Path):
    path = tmp_path / "prompt.txt"
    path.write_text("System: be kind.\n\nUser: where is my order?\nAssistant: on its way.\n\n\nlast\n")
    assert [(d.line, d.text) for d in read_corpus(path)] == [
        (1, "System: be kind.\n"),
        (3, "User: where is my order?\nAssistant: on its way.\n"),
        (7, "last\n"),
    ]


def test_parquet_rows_are_documents_of_their_string_columns(tmp_path: Path):
    path = tmp_path / "ft.parquet"
    pq.write_table(pa.table({"prompt": ["a b", "c d"], "n": [1, 2], "tags": [["x"], []]}), path)
    assert [(d.line, d.text) for d in read_corpus(path)] == [(1, "a b\nx"), (2, "c d")]


def test_a_judge_yaml_gives_each_string(tmp_path: Path):
    path = tmp_path / "judge.yaml"
    path.write_text("model: m\ndimensions:\n  correct: |\n    Is the answer right? The refund window is 30 days.\n")
    assert [d.text for d in read_corpus(path)] == ["m", "Is the answer right? The refund window is 30 days.\n"]


def test_a_folder_is_walked_in_path_order_and_other_files_are_left_alone(tmp_path: Path):
    (tmp_path / "b.md").write_text("bee\n")
    (tmp_path / "a.txt").write_text("ay\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    assert [d.text for d in read_corpus(tmp_path)] == ["ay\n", "bee\n"]


def test_a_missing_corpus_is_an_error(tmp_path: Path):
    with pytest.raises(CorpusError, match="no such file"):
        list(read_corpus(tmp_path / "nope.jsonl"))


def _block_lines(items: list) -> dict[int, list[str]]:
    """Line number -> its words, from the TextBlocks among ``items`` (normalized as the scanner reads them)."""
    from evaltray.monitor.grams import norm_lines

    out: dict[int, list[str]] = {}
    for item in items:
        if isinstance(item, cp.TextBlock):
            data, starts = norm_lines(item.data)
            for i, (a, b) in enumerate(zip(starts.tolist(), [*starts.tolist()[1:], len(data)], strict=True)):
                out[item.first + i] = data[a:b].decode().split()
    return out


def test_the_block_reader_gives_every_line_what_the_line_reader_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cp, "BLOCK", 64)  # many blocks, lines cut across reads
    path = tmp_path / "ft.jsonl"
    records = [
        {"messages": [{"role": "user", "content": 'She said "Stop!"\tThen\\left.\nNew line'}], "n": 3, "ok": True},
        {"text": "Crème brûlée – 3½ cups, “quoted” ’til ÀB"},
        {"key:colon": "value", "list": ["a b", 5, {"deep": "word"}], "empty": ""},
    ]
    path.write_bytes(
        b"\n".join(orjson.dumps(r) for r in records)
        + b'\n{"text": "caf\\u00e9 escaped"}\n{not json\n\n'
        + b'{"t" : "spaced key" , "u":"v"}\n'
        + b'{"text": "latin-1 \xe9t\xe9"}\n'
    )
    lines, blocks = list(read_corpus(path)), list(cp.read_jsonl_blocks(path))
    assert [x for x in blocks if isinstance(x, BadLine)] == [x for x in lines if isinstance(x, BadLine)]
    assert [x for x in blocks if isinstance(x, Doc)] == [Doc(str(path), 4, "café escaped")]  # \u escape: long way
    words = _block_lines(blocks)
    for doc in lines:
        if isinstance(doc, Doc) and doc.line != 4:
            assert words[doc.line] == normalize(doc.text).split(), doc.line
    assert words[1] == ["user", "she", "said", "stop", "then", "left", "new", "line"]  # keys, 3 and true left out
    assert words[3] == ["value", "a", "b", "word"]
    assert words[7] == ["spaced", "key", "v"]
    assert sum(x.docs for x in blocks if isinstance(x, cp.TextBlock)) == 4
