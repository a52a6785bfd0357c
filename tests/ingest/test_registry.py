"""Formats live in the one registry; the chat JSONL fast path is part of its format."""

from __future__ import annotations

import pytest

from evaltray.core.errors import IngestError
from evaltray.ingest import FORMATS, get_format, register
from evaltray.ingest.openai import chat_rows

NAMES = [
    "csv",
    "jsonl",
    "langfuse",
    "langsmith",
    "openai",
    "openai-exchange",
    "openinference",
    "otel",
    "parquet",
    "tau2",
    "vcr-openai",
]


def test_every_format_is_registered_once() -> None:
    assert FORMATS.names() == NAMES
    assert [name for name in FORMATS] == NAMES  # the CLI lists them so
    assert get_format("otel").name == "otel"
    # sniffers run in this order for --format auto
    assert [f.name for _, f in sorted(FORMATS.items(), key=lambda item: item[1].priority)][:3] == [
        "langfuse",
        "langsmith",
        "tau2",
    ]


def test_an_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(IngestError) as err:
        get_format("xml")
    assert str(err.value) == f"unknown ingest format 'xml': one of {', '.join(NAMES)}"


def test_only_the_chat_jsonl_format_has_a_line_reader() -> None:
    assert [name for name, f in FORMATS.items() if f.line_reader is not None] == ["openai"]
    assert get_format("openai").line_reader is chat_rows
    read = chat_rows()
    assert read(b'{"id": "x", "messages": [{"role": "user", "content": "hi"}]}', {})[:2] == ("x", "openai")


def test_a_name_taken_twice_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="ingest format 'openai' registered twice"):
        register("openai")(lambda path, options: iter(()))
