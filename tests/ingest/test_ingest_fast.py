"""The chunked, parallel ingest of OpenAI chat JSONL gives exactly the rows of the Trace path.

The test file is built from real recordings: the OpenAI cookbook's drone fine-tuning lines (no ids,
arguments encoded twice), the two chat-completions calls of the opentelemetry-python-contrib cassette
(a reply in ``choices``, usage, ``system_fingerprint``) and the 40 tau2-bench retail conversations
(flat tool calls, tool errors, multi-turn), each as one line; then a few named mutations of those
lines for the shapes they lack, and broken lines.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaltray.core.errors import IngestError
from evaltray.core.messages import chat_message, chat_message_record
from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.store import Workspace
from evaltray.core.traces import (
    _MESSAGES,
    COLUMNS,
    CallRecord,
    MessageRecord,
    RowBuilder,
    TraceStore,
    message_from_record,
    message_record,
    trace_values,
)
from evaltray.core.workers import worker_count
from evaltray.ingest import BadRecord, _driver, ingest_files, openai
from evaltray.ingest._common import content_id
from evaltray.ingest._registry import get_format
from evaltray.ingest.openai import chat_row
from evaltray.ingest.openai import parse as parse_openai

DATA = Path(__file__).parent.parent / "data"
DRONE = DATA / "openai" / "drone_training.first5.jsonl"
EXCHANGE = DATA / "openai" / "chat_completions_tool_calls.exchange.json"
TAU2 = DATA / "tau2" / "tau2-bench-retail-gpt-4.1.json"


def _d(obj: Any) -> bytes:
    return orjson.dumps(obj)


def realistic_lines() -> list[bytes]:
    """60 lines: 47 real records, 8 mutations of them, 5 broken or blank lines (positions matter: see below)."""
    drone = DRONE.read_bytes().splitlines()
    calls = orjson.loads(EXCHANGE.read_bytes())
    tau = orjson.loads(TAU2.read_bytes())
    policy = tau["info"]["environment_info"]["policy"]
    exchange = []
    for c in calls:  # each call as the line a request logger writes: request, reply, usage
        resp = c["response_body"]
        exchange.append(
            {
                **c["request_body"],
                "id": resp["id"],
                "model": resp["model"],
                "choices": resp["choices"],
                "usage": resp["usage"],
                "created": resp["created"],
                "system_fingerprint": resp["system_fingerprint"],
            }
        )
    sims = []
    for s in tau["simulations"]:
        sims.append(
            {
                "id": s["id"],
                "created_at": s["start_time"],
                "model": "gpt-4.1",
                "messages": [{"role": "system", "content": policy}, *s["messages"]],
                "metadata": {
                    "session_id": f"task-{s['task_id']}",
                    "feature": "retail",
                    "latency_ms": s["duration"] * 1000,
                    "cost_usd": s["agent_cost"],
                    "feedback": "up" if s["reward_info"]["reward"] == 1.0 else "down",
                    "termination_reason": s["termination_reason"],
                },
            }
        )

    first = orjson.loads(drone[0])
    parts = orjson.loads(_d(exchange[0]))  # the user's question as content parts, with an image; no id
    del parts["id"]
    parts["messages"][1]["content"] = [
        {"type": "text", "text": parts["messages"][1]["content"]},
        {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
    ]
    legacy = orjson.loads(drone[1])  # the tool call in the legacy function_call form
    call = legacy["messages"][-1].pop("tool_calls")[0]
    legacy["messages"][-1]["function_call"] = call["function"]
    legacy["custom_id"] = "req-legacy"
    function_role = orjson.loads(_d(exchange[1]))  # tool results from the deprecated "function" role
    function_role["id"] = "fn-role"
    for m in function_role["messages"]:
        if m["role"] == "tool":
            m["role"], m["name"] = "function", "get_current_weather"
    failed = {
        **exchange[0],
        "id": "failed-call",
        "choices": None,
        "error": {"message": "Rate limit reached", "code": "rate_limit"},
    }
    labelled = {
        **exchange[1],
        "id": None,
        "conversation_id": "conv-7",
        "metadata": {
            "tags": ["weather", "eval"],
            "retrieved_doc_ids": ["kb-12", 99],
            "prompt_id": "weather-v3",
            "user_id": 42,
            "feedback": {"score": 0.5},
        },
    }
    tools_as_text = {**orjson.loads(drone[2]), "trace_id": "tools-text"}
    tools_as_text["tools"] = _d(tools_as_text["tools"]).decode()  # tools as a JSON string

    lines = [*drone, _d(exchange[0]), _d(exchange[1])]  # lines 1-7
    lines += [_d(s) for s in sims[:20]]  # lines 8-27
    lines += [b'{"messages": [{"role": "user", "content": "hi"}', b""]  # 28 truncated, 29 blank
    lines += [_d(first), _d(parts), _d(legacy), b"[1, 2]"]  # 30 drone 1 again, 31, 32, 33 not an object
    lines += [_d(s) for s in sims[20:]]  # lines 34-53
    lines += [_d(function_role), b'{"custom_id": "req-9", "body": {}}']  # 54, 55 no messages
    lines += [_d(sims[0]), _d(failed), _d(labelled), _d(first), _d(tools_as_text)]  # 56 repeat of line 8, 57-60
    return lines


ISSUES = [
    "{path}:28: not valid JSON (unexpected end of data)",
    "{path}:33: expected a JSON object with 'messages'",
    "{path}:55: no 'messages' list (record req-9)",
]


def _rows(ws: Workspace) -> list[dict[str, Any]]:
    table = TraceStore(ws.traces_dir).query(order_by="trace_id")
    return [{k: v for k, v in r.items() if k not in ("ingested_at", "ingest_date")} for r in table.to_pylist()]


def _ingest(root: Path, path: Path, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    ws = Workspace.init(root, name="fast", user="alice")
    try:
        report = ingest_files(ws, [path], fmt="openai", **kw)
        return report, _rows(ws)
    finally:
        ws.close()


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chats") / "chats.jsonl"
    path.write_bytes(b"\n".join(realistic_lines()) + b"\n")
    return path


@pytest.fixture(scope="module")
def trace_path(realistic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    """The reference: parse() yields Traces, the driver turns them into rows (the path other formats take)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_driver, "get_format", lambda name: dataclasses.replace(get_format(name), line_reader=None))
        return _ingest(tmp_path_factory.mktemp("ws") / "w", realistic)


def test_the_trace_path_reads_the_realistic_file(realistic: Path, trace_path) -> None:
    report, rows = trace_path
    assert [str(i) for i in report.issues] == [i.format(path=realistic) for i in ISSUES]
    # 60 lines: 3 broken, 1 blank, 1 repeating line 8's id; the other 55 are traces
    assert (report.ingested, report.skipped, len(rows)) == (55, 1, 55)
    by_id = {r["trace_id"]: r for r in rows}
    drone_1 = content_id(orjson.loads(DRONE.read_bytes().splitlines()[0]), {}, "oai")
    assert drone_1 == next(iter(parse_openai(DRONE, {}))).trace_id
    # the same question asked three times is three traces: occurrence numbers follow the file
    assert {f"{drone_1}-1", f"{drone_1}-2"} <= by_id.keys()
    sim0 = by_id["55094b9e-ef3e-42b4-8ca2-18e82cd7e7ae"]  # 18 messages + the policy; 4 tool calls, 5 user turns
    assert (sim0["n_messages"], sim0["n_tool_calls"], sim0["n_user_turns"], sim0["n_tool_errors"]) == (19, 4, 5, 0)
    assert sim0["output_text"].startswith("Your payment method for order #W4923227 has been changed to your Visa")
    assert (sim0["session_id"], sim0["latency_ms"], sim0["feedback_score"]) == ("task-40", 13646.436916998937, 1.0)
    sim11 = by_id["e33bc476-16ba-463c-b43d-29300ccdc8ab"]  # one tool call failed
    assert (sim11["n_tool_errors"], sim11["keep_reason"]) == (1, "tool_failure")
    reasons = [r["keep_reason"] for r in rows]
    # sims 14, 21, 26, 28, 29 and 36 have reward 0; 11, 12, 20, 22, 23 a failed tool call (14, 21, 26 too);
    # sim 38 is the only latency above the p95 of the 40 (sim 26's); the rate-limited call is an error
    assert {k: reasons.count(k) for k in set(reasons)} == {
        "negative_feedback": 6,
        "tool_failure": 5,
        "latency_outlier": 1,
        "error": 1,
        "sampled": 42,
    }
    assert by_id["req-legacy"]["n_tool_calls"] == 1
    # stored compactly: a field at its default (a null id here) is left out
    assert orjson.loads(by_id["req-legacy"]["messages"])[-1] == {
        "role": "assistant",
        "tool_calls": [{"name": "takeoff_drone", "arguments": {"altitude": 100}}],
    }
    assert [m["role"] for m in orjson.loads(by_id["fn-role"]["messages"])][-3:] == ["tool", "tool", "assistant"]
    failed = by_id["failed-call"]
    assert (failed["status"], failed["error"]) == ("error", "{'message': 'Rate limit reached', 'code': 'rate_limit'}")
    conv = by_id["conv-7"]
    assert (
        conv["tags"],
        conv["retrieved_doc_ids"],
        conv["prompt_template_id"],
        conv["user_id"],
        conv["feedback_score"],
    ) == (["weather", "eval"], ["kb-12", "99"], "weather-v3", "42", 0.5)
    assert by_id["tools-text"]["tools_hash"] == by_id[drone_1]["tools_hash"]  # the same 16 tools, once as text
    (image,) = [r for r in rows if r["input_text"] and r["input_text"].endswith("[image_url]")]
    assert image["input_text"] == "What's the weather in Seattle and San Francisco today?\n[image_url]"


@pytest.mark.parametrize("how", ["one chunk", "few rows at once", "many chunks", "two workers"])
def test_chunked_ingest_gives_the_rows_of_the_trace_path(
    how: str, realistic: Path, trace_path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "few rows at once":  # one chunk, read 1,000 bytes at a time (lines span reads), Arrow 7 rows at a time
        monkeypatch.setattr(_driver, "_ROWS_AT_ONCE", 7)
        monkeypatch.setattr(_driver, "_READ_BYTES", 1000)
    elif how == "many chunks":  # ~30 chunks: content-id repeats, the repeated id and issues cross chunk borders
        monkeypatch.setattr(_driver, "CHUNK_BYTES", 16_384)
    elif how == "two workers":
        monkeypatch.setattr(_driver, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(_driver, "PARALLEL_CHUNK_BYTES", 65_536)
    report, rows = _ingest(tmp_path / "w", realistic, workers=2 if how == "two workers" else 1)
    want_report, want_rows = trace_path
    assert [str(i) for i in report.issues] == [str(i) for i in want_report.issues]
    assert (report.ingested, report.skipped, report.files[0].payload_kept) == (55, 1, 55)
    assert [r["trace_id"] for r in rows] == [r["trace_id"] for r in want_rows]
    # a chunk is the batch for the latency/cost quantile: with many, only the outlier labels may differ
    skip = {"keep_reason"} if how not in ("one chunk", "few rows at once") else set()
    for got, want in zip(rows, want_rows, strict=True):
        assert {k: v for k, v in got.items() if k not in skip} == {k: v for k, v in want.items() if k not in skip}


def test_reingest_of_the_realistic_file_adds_nothing(
    realistic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_driver, "CHUNK_BYTES", 16_384)
    ws = Workspace.init(tmp_path / "w", name="fast", user="alice")
    try:
        ingest_files(ws, [realistic], fmt="openai")
        again = ingest_files(ws, [realistic], fmt="openai")
        assert (again.ingested, again.skipped) == (0, 56)
        assert TraceStore(ws.traces_dir).count() == 55
        assert not list((ws.traces_dir / ".tmp").glob("*"))
    finally:
        ws.close()


def test_a_value_the_store_cannot_hold_is_an_issue_not_a_crash(ws, tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    ok = {"id": "ok", "messages": [{"role": "user", "content": "hi"}]}
    huge = {"id": "huge", "messages": [{"role": "user", "content": "hi"}], "usage": {"prompt_tokens": 1e30}}
    path.write_bytes(b"\n".join([_d(ok), _d(huge), _d({**ok, "id": "ok2"})]) + b"\n")
    report = ingest_files(ws, [path], fmt="openai")
    assert [str(i) for i in report.issues] == [
        f"{path}:2: input_tokens: value does not fit the trace store's column (record huge)"
    ]
    assert sorted(TraceStore(ws.traces_dir).trace_ids()) == ["ok", "ok2"]


def test_rows_turned_into_arrow_a_few_at_a_time_keep_issues_in_line_order(
    ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unstorable row found when its rows become Arrow is reported in line order among the lines after it that
    are not JSON, and the content-derived ids of the rows after it still count repeats."""
    monkeypatch.setattr(_driver, "_ROWS_AT_ONCE", 2)
    path = tmp_path / "chats.jsonl"
    ok = {"messages": [{"role": "user", "content": "hi"}]}  # no id: one from its content
    huge = {"id": "huge", "messages": [{"role": "user", "content": "hi"}], "usage": {"prompt_tokens": 1e30}}
    path.write_bytes(b"\n".join([_d(huge), _d({**ok, "id": "a"}), b"{bad", _d(ok), _d(ok), b"[1]", _d(ok)]) + b"\n")
    report = ingest_files(ws, [path], fmt="openai")
    assert [str(i) for i in report.issues] == [
        f"{path}:1: input_tokens: value does not fit the trace store's column (record huge)",
        f"{path}:3: not valid JSON (unexpected character, expected a string key)",
        f"{path}:6: expected a JSON object with 'messages'",
    ]
    first = content_id(ok, {}, "oai")
    assert sorted(TraceStore(ws.traces_dir).trace_ids()) == sorted(["a", first, f"{first}-1", f"{first}-2"])


def test_odd_value_types_are_an_issue_not_a_crash(ws, tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    odd = {"id": "odd", "created": ["not", "a time"], "messages": [{"role": "user", "content": "hi"}]}
    path.write_bytes(_d(odd) + b"\n" + _d({"id": "ok", "messages": [{"role": "user", "content": "x"}]}) + b"\n")
    report = ingest_files(ws, [path], fmt="openai")
    assert [str(i) for i in report.issues] == [f"{path}:1: a field has an unexpected type (ValueError) (record odd)"]
    assert [str(i) for i in parse_openai(path, {}) if not isinstance(i, Trace)] == [str(report.issues[0])]


def test_lines_the_decoder_rejects_are_issues_with_orjsons_reasons(ws, tmp_path: Path) -> None:
    """Bytes that are not UTF-8, nesting deeper than any JSON parser here takes, a lone surrogate: each
    line is reported (with the reason orjson gives, as before the typed decoder) and the rest ingests."""
    ok = _d({"id": "ok", "messages": [{"role": "user", "content": "hi"}]})
    lines = [
        b'{"id":"a","messages":[{"role":"user","content":"caf\xe9"}]}',
        b'{"id":"d","messages":[{"role":"user","content":"x"}],"metadata":{"a":' + b"[" * 2000 + b"]" * 2000 + b"}}",
        b'{"id":"c","messages":[{"role":"user","content":"\\ud800 x"}]}',
        ok,
    ]
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ingest_files(ws, [path], fmt="openai")
    assert [str(i) for i in report.issues] == [
        f"{path}:1: not valid JSON (str is not valid UTF-8: surrogates not allowed)",
        f"{path}:2: not valid JSON (depth limit exceeded)",
        f"{path}:3: not valid JSON (no low surrogate in string)",
    ]
    assert TraceStore(ws.traces_dir).trace_ids() == {"ok"}


# --------------------------------------------------------------------------- one rule set


def test_stored_message_form_follows_the_dataclasses() -> None:
    assert [f.name for f in msgspec.structs.fields(MessageRecord)] == [f.name for f in dataclasses.fields(Message)]
    assert [f.name for f in msgspec.structs.fields(CallRecord)] == [f.name for f in dataclasses.fields(ToolCall)]
    # compact: a field at its default is left out, so a plain message is its role and text
    assert orjson.loads(
        _MESSAGES.encode(
            [
                message_record(Message("user", "hi")),
                message_record(Message("assistant", tool_calls=[ToolCall(None, "f", {"x": 1})])),
                message_record(Message("tool", "boom", tool_call_id="c1", name="f", is_error=True)),
            ]
        )
    ) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
        {"role": "tool", "content": "boom", "tool_call_id": "c1", "name": "f", "is_error": True},
    ]
    # RowBuilder.row takes a trace's fields in Trace order, which chat_fields and trace_from_chat rely on
    params = list(inspect.signature(RowBuilder().row).parameters)
    assert params == [f.name for f in dataclasses.fields(Trace)]


def test_row_of_a_trace_and_its_fast_row_are_the_same() -> None:
    for raw in DRONE.read_bytes().splitlines():
        (trace,) = parse_openai_line(raw)
        assert chat_row(raw, {}) == trace_values(trace)
    assert len(COLUMNS) == len(trace_values(trace))


def parse_openai_line(raw: bytes) -> list[Trace]:
    return [t for t in _parse_bytes(raw) if isinstance(t, Trace)]


def _parse_bytes(raw: bytes) -> list[Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.jsonl"
        path.write_bytes(raw + b"\n")
        return list(parse_openai(path, {}))


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6))
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)
_args = st.one_of(
    _json,
    _json.map(lambda v: orjson.dumps(v).decode()),
    _json.map(lambda v: orjson.dumps(orjson.dumps(v).decode()).decode()),
)
_call = st.one_of(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.none(), st.text(max_size=5)),
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": st.one_of(st.none(), st.text(max_size=5)), "arguments": _args}),
        }
    ),
    st.fixed_dictionaries(
        {"name": st.text(max_size=5), "arguments": _args},
        optional={"tool_call_id": st.text(max_size=3), "function": st.text(max_size=4)},
    ),
    st.fixed_dictionaries({"tool_name": st.text(max_size=5)}, optional={"args": _args, "input": _args}),
    _scalar,
)
_content = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=8)}),
            st.fixed_dictionaries({"type": st.sampled_from(["image_url", "input_audio", "file"])}),
            st.text(max_size=4),
        ),
        max_size=3,
    ),
    st.dictionaries(st.sampled_from(["text", "value", "x"]), _scalar, max_size=2),
)
_message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["user", "assistant", "tool", "function", "system"]), st.integers(0, 3))},
        optional={
            "content": _content,
            "tool_calls": st.one_of(st.lists(_call, max_size=3), _scalar),
            "function_call": st.one_of(
                _scalar,
                st.fixed_dictionaries(
                    {"name": st.one_of(st.none(), st.text(max_size=4))}, optional={"arguments": _args}
                ),
            ),
            "tool_call_id": st.text(max_size=4),
            "name": st.text(max_size=4),
            "error": _scalar,
            "is_error": _scalar,
        },
    ),
    _json,
)


@settings(max_examples=300, deadline=None)
@given(_message)
def test_message_records_follow_the_shared_message_rules(raw: Any) -> None:
    """chat_message_record, core.messages.chat_message (every other format) and the chat JSONL decoder agree."""
    try:
        want = chat_message(raw)
    except TypeError:  # e.g. tool_calls as a number: neither reads it
        with pytest.raises(TypeError):
            chat_message_record(raw)
        return
    got = chat_message_record(raw)
    assert (None if got is None else message_from_record(got)) == want
    if want is None:
        return
    assert message_record(want) == got
    # the decoder keeps a source message as it is only where the rules would not change it
    kept = openai._stored(msgspec.json.decode(_d(raw), type=openai._Message))
    assert _MESSAGES.encode(kept) == _MESSAGES.encode(got)
    assert message_from_record(kept) == want


_line = st.fixed_dictionaries(
    {"messages": st.lists(_message, min_size=1, max_size=3)},
    optional={
        "id": st.one_of(st.text(max_size=4), st.integers(0, 9), st.none()),
        "choices": st.one_of(
            _json, st.lists(st.one_of(_json, st.fixed_dictionaries({"message": _message})), max_size=2)
        ),
        "response": st.one_of(
            _json,
            st.fixed_dictionaries({"choices": st.lists(st.fixed_dictionaries({"message": _message}), max_size=1)}),
        ),
        "usage": st.one_of(
            _json,
            st.fixed_dictionaries(
                {},
                optional={
                    k: st.one_of(st.none(), st.integers(0, 99))
                    for k in ("prompt_tokens", "input_tokens", "completion_tokens", "output_tokens", "total_tokens")
                },
            ),
        ),
        "metadata": st.one_of(
            _json,
            st.fixed_dictionaries(
                {},
                optional={
                    "tags": _json,
                    "feedback": _json,
                    "session_id": _scalar,
                    "latency_ms": st.floats(0, 1e4),
                    "extra": _json,
                },
            ),
        ),
        "tools": _json,
        "tags": _json,
        "feedback": _json,
        "error": _json,
        "model": _scalar,
        "created": st.integers(0, 2**40),
    },
)


@settings(max_examples=300, deadline=None)
@given(_line)
def test_a_line_decoded_directly_and_the_careful_way_gives_the_same_row(obj: dict[str, Any]) -> None:
    """The typed decoder and the fallback for values of unexpected types (orjson, then the rules' shape) agree."""
    raw = _d(obj)
    try:
        careful = trace_values(openai.trace_from_chat(obj, "fallback"))
    except (TypeError, ValueError):  # e.g. an unreadable time: both report it
        with pytest.raises(BadRecord):
            chat_row(raw, {})
        return
    if openai._line_id(openai._line_from_dict(obj)) is None:
        careful = (content_id(obj, {}, "oai"), *careful[1:])
    assert chat_row(raw, {}) == careful


def test_values_of_unexpected_types_are_read_as_the_rules_read_them() -> None:
    """Worked by hand: what a line of odd types stores; the typed decoder cannot read it, the fallback does."""
    odd = {
        "id": 7,
        "messages": [
            {"role": "user", "content": "hi"},
            "not a message",
            {"content": "no role"},
            {"role": None, "content": ["a", {"type": "text", "text": "b"}]},
        ],
        "choices": {"message": {"role": "assistant", "content": "ignored: choices is not a list"}},
        "response": {"choices": [{"message": {"role": "assistant", "content": "not read either"}}]},
        "usage": [1, 2],
        "metadata": "not an object",
        "tools": '[{"type": "function"}]',
        "tags": "one",
    }
    with pytest.raises(msgspec.ValidationError):
        openai._DECODER.decode(_d(odd))
    row = dict(zip(COLUMNS, chat_row(_d(odd), {}), strict=True))
    assert orjson.loads(row["messages"]) == [{"role": "user", "content": "hi"}, {"role": "None", "content": "a\nb"}]
    assert (row["trace_id"], row["n_messages"], row["n_user_turns"], row["output_text"]) == ("7", 2, 1, None)
    assert (row["input_tokens"], row["total_tokens"], row["metadata"], row["tags"]) == (None, None, None, ["one"])
    assert orjson.loads(row["tools"]) == [{"type": "function"}]


# --------------------------------------------------------------------------- workers


def test_workers_option_and_environment(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_bytes(_d({"id": "a", "messages": [{"role": "user", "content": "hi"}]}) + b"\n")
    with pytest.raises(IngestError, match="workers must be at least 1, got 0"):
        ingest_files(ws, [path], workers=0)
    monkeypatch.setenv("EVALTRAY_WORKERS", "two")
    with pytest.raises(IngestError, match="EVALTRAY_WORKERS must be a whole number, got 'two'"):
        ingest_files(ws, [path])
    monkeypatch.setenv("EVALTRAY_WORKERS", "3")
    assert worker_count(None, IngestError) == 3
    assert worker_count(1, IngestError) == 1


_PARALLEL_INGEST = """
import sys
from pathlib import Path
from evaltray.ingest import _driver, ingest_files
from evaltray.core.store import Workspace
_driver.PARALLEL_MIN_BYTES, _driver.PARALLEL_CHUNK_BYTES = 0, 1 << 19
ws = Workspace.open(Path(sys.argv[1]))
ingest_files(ws, [Path(sys.argv[2])], fmt="openai", workers=2)
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a killed child nobody reaped yet is a zombie, not a worker


@pytest.mark.skipif(sys.platform != "linux", reason="workers die with their parent on Linux only")
def test_kill_9_of_a_parallel_ingest_then_resume(ws, tmp_path: Path) -> None:
    n = 60_000
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(
                _d(
                    {
                        "id": f"t{i}",
                        "messages": [
                            {"role": "user", "content": f"question {i}"},
                            {"role": "assistant", "content": f"answer {i}"},
                        ],
                    }
                )
                + b"\n"
            )
    cmd = [sys.executable, "-c", _PARALLEL_INGEST, str(ws.root), str(path)]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while not list(ws.traces_dir.glob("ingest_date=*/*.parquet")):
        assert proc.poll() is None, "ingest finished before it could be killed: make the file bigger"
        assert time.monotonic() < deadline
        workers = _children(proc.pid) or workers
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < TraceStore(ws.traces_dir).count() < n
    time.sleep(0.5)
    assert workers and not [w for w in workers if _running(w)]  # no orphan still parsing
    subprocess.run(cmd, check=True)  # the lock is free again
    ids = TraceStore(ws.traces_dir).query(columns=["trace_id"]).column("trace_id").to_pylist()
    assert len(ids) == n and len(set(ids)) == n
    assert not list((ws.traces_dir / ".tmp").glob("*"))
