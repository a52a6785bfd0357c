"""OpenAI chat formats: fine-tuning JSONL (``openai``), request/response exchange dumps and VCR cassettes."""

from __future__ import annotations

import copy
import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, detect, ingest_files
from evaltray.ingest import _common as ingest_common
from evaltray.ingest.openai import parse as parse_openai
from evaltray.ingest.openai_exchange import Call, assemble_stream, group_calls, parse_exchange, parse_vcr

DATA = Path(__file__).parent.parent / "data" / "openai"
DRONE = DATA / "drone_training.first5.jsonl"
EXCHANGE = DATA / "chat_completions_tool_calls.exchange.json"
CASSETTE = DATA / "test_chat_completion_tool_calls_with_content.yaml"
STREAM = DATA / "test_chat_completion_multiple_tools_streaming_with_content.yaml"

FIRST_ID = "chatcmpl-ASYMU9Ntix7ePttk0MSuerJstef6U"
QUESTION = "What's the weather in Seattle and San Francisco today?"
ANSWER = "Today, the weather in Seattle is 50 degrees and raining, while in San Francisco, it's 70 degrees and sunny."
SEATTLE = ToolCall(
    id="call_JpNb8OiAkbIbHzDggfpdDHpi", name="get_current_weather", arguments={"location": "Seattle, WA"}
)
SF = ToolCall(
    id="call_vaFQc3zK6hHTRZKXRI5Eo2cJ", name="get_current_weather", arguments={"location": "San Francisco, CA"}
)


# --------------------------------------------------------------------------- fine-tuning JSONL (openai.py)


def test_drone_training_lines() -> None:
    traces = list(parse_openai(DRONE, {}))
    assert len(traces) == 5 and all(isinstance(t, Trace) for t in traces)
    first = traces[0]
    assert [m.role for m in first.messages] == ["system", "user", "assistant"]
    assert first.messages[0].content.startswith("You are an intelligent AI that controls a drone.")
    assert first.messages[1].content == "Let's get the drone in the air, can you make it take off"
    # the assistant message has no "content" key at all
    assert first.messages[2] == Message(
        role="assistant",
        content=None,
        tool_calls=[ToolCall(id="call_id", name="takeoff_drone", arguments={"altitude": 100})],
    )
    assert len(first.tools) == 16
    assert first.tools[0]["function"]["name"] == "takeoff_drone"
    assert first.tools[-1]["function"]["name"] == "reject_request"


def test_drone_double_encoded_arguments_are_decoded() -> None:
    traces = list(parse_openai(DRONE, {}))
    # lines 3-5 carry arguments encoded twice: "\"{\\\"location\\\": \\\"current\\\"}\""
    assert [t.messages[-1].tool_calls[0].arguments for t in traces] == [
        {"altitude": 100},
        {"altitude": 100},
        {"location": "current"},
        {"location": "current"},
        {"location": "home_base"},
    ]


def test_drone_placeholder_call_ids_do_not_become_trace_ids() -> None:
    traces = list(parse_openai(DRONE, {}))
    assert {c.id for t in traces for m in t.messages for c in m.tool_calls} == {"call_id"}
    ids = [t.trace_id for t in traces]
    assert len(set(ids)) == 5 and all(i.startswith("oai-") for i in ids)
    assert [t.trace_id for t in parse_openai(DRONE, {})] == ids  # stable across runs


def test_drone_malformed_lines(tmp_path: Path) -> None:
    lines = DRONE.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:200] + b"\n"
    lines[2] = b'{"prompt": "land", "id": "ex-3"}\n'
    lines[3] = b"[]\n"
    path = tmp_path / "drone.jsonl"
    path.write_bytes(b"".join(lines))
    items = list(parse_openai(path, {}))
    assert [str(i) for i in items if isinstance(i, Issue)] == [
        f"{path}:2: not valid JSON (unexpected control character in string)",
        f"{path}:3: no 'messages' list (record ex-3)",
        f"{path}:4: expected a JSON object with 'messages'",
    ]
    good = [t for t in items if isinstance(t, Trace)]
    assert [t.messages[1].content for t in good] == [
        "Let's get the drone in the air, can you make it take off",
        "Bring the drone back home and land it safely",
    ]


def test_drone_through_the_driver(ws) -> None:
    report = ingest_files(ws, [DRONE])
    assert (report.ingested, report.issues) == (5, [])
    rows = (
        TraceStore(ws.traces_dir)
        .query(columns=["source_format", "n_messages", "n_tool_calls", "output_text", "tools_hash"])
        .to_pylist()
    )
    assert {r["source_format"] for r in rows} == {"openai"}
    assert [(r["n_messages"], r["n_tool_calls"], r["output_text"]) for r in rows] == [(3, 1, None)] * 5
    assert len({r["tools_hash"] for r in rows}) == 1  # the same 16 tools, repeated on every line
    assert ingest_files(ws, [DRONE]).skipped == 5


# --------------------------------------------------------------------------- exchange dumps


def _check_weather_trace(t: Trace) -> None:
    assert t.trace_id == FIRST_ID
    assert t.messages == [
        Message(role="system", content="You're a helpful assistant."),
        Message(role="user", content=QUESTION),
        Message(role="assistant", content=None, tool_calls=[SEATTLE, SF]),
        Message(role="tool", content="50 degrees and raining", tool_call_id=SEATTLE.id, name="get_current_weather"),
        Message(role="tool", content="70 degrees and sunny", tool_call_id=SF.id, name="get_current_weather"),
        Message(role="assistant", content=ANSWER),
    ]
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (75 + 99, 51 + 25, 126 + 124)
    assert (t.model, t.model_version, t.provider) == ("gpt-4o-mini-2024-07-18", "fp_9b78b61c52", "openai")
    assert [tool["function"]["name"] for tool in t.tools] == ["get_current_weather"]
    assert t.start_time == datetime(2024, 11, 11, 23, 43, 54, tzinfo=UTC)
    assert [(s.id, s.name, s.status) for s in t.spans] == [
        (FIRST_ID, "chat gpt-4o-mini", "ok"),
        ("chatcmpl-ASYMVzdmBGDbUoHFmt6R16tdtZUzR", "chat gpt-4o-mini", "ok"),
    ]
    assert t.metadata["calls"] == 2
    assert t.metadata["finish_reasons"] == ["tool_calls", "stop"]
    assert t.metadata["request"] == {"model": "gpt-4o-mini", "tool_choice": "auto"}
    assert t.status == "ok"


def test_exchange_two_calls_are_one_trace() -> None:
    (t,) = parse_exchange(EXCHANGE, {})
    assert t.source_format == "openai-exchange"
    _check_weather_trace(t)
    assert t.latency_ms is None  # the dump keeps no timings


def test_exchange_interleaved_conversations_stay_apart() -> None:
    a1, a2 = orjson.loads(EXCHANGE.read_bytes())
    b1 = copy.deepcopy(a1)
    b1["request_body"]["messages"][1]["content"] = "And in Boston?"
    b1["response_body"]["id"] = "chatcmpl-other"
    calls = [Call(None, x["request_body"], x["response_body"]) for x in (a1, b1, a2)]
    groups = group_calls(calls)
    assert [[c.response["id"] for c in g] for g in groups] == [
        [FIRST_ID, "chatcmpl-ASYMVzdmBGDbUoHFmt6R16tdtZUzR"],
        ["chatcmpl-other"],
    ]


def test_exchange_broken_call_is_reported(tmp_path: Path) -> None:
    text = EXCHANGE.read_text(encoding="utf-8")
    at = text.index('"messages": [', text.index('"messages": [') + 1)  # the second request's messages
    path = tmp_path / "exchange.json"
    path.write_text(text[:at] + '"messagez": [' + text[at + len('"messages": [') :], encoding="utf-8")
    items = list(parse_exchange(path, {}))
    assert [str(i) for i in items if isinstance(i, Issue)] == [
        f"{path}:150: exchange #2: request_body is not a chat-completions request "
        "(record chatcmpl-ASYMVzdmBGDbUoHFmt6R16tdtZUzR)"
    ]
    (t,) = [t for t in items if isinstance(t, Trace)]
    assert t.trace_id == FIRST_ID and len(t.messages) == 3 and t.metadata["calls"] == 1


def test_exchange_error_response(tmp_path: Path) -> None:
    a1, _ = orjson.loads(EXCHANGE.read_bytes())
    a1["status"] = {"code": 429, "message": "Too Many Requests"}
    a1["response_body"] = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
    path = tmp_path / "error.json"
    path.write_bytes(orjson.dumps([a1]))
    (t,) = parse_exchange(path, {})
    assert (t.status, t.error) == ("error", "Rate limit reached")
    assert t.trace_id.startswith("openai-exchange-")  # no response id to use
    assert [m.role for m in t.messages] == ["system", "user"]
    assert t.spans[0].status == "error"


# --------------------------------------------------------------------------- VCR cassettes


def test_cassette_matches_the_exchange_dump() -> None:
    (t,) = parse_vcr(CASSETTE, {})
    assert t.source_format == "vcr-openai"
    _check_weather_trace(t)
    assert t.latency_ms == 748 + 531  # openai-processing-ms of the two responses


def test_streaming_cassette_is_reassembled() -> None:
    (t,) = parse_vcr(STREAM, {})
    assert t.trace_id == "chatcmpl-ASYMbACebDoWcuraMEWQhU48q4dAp"
    assert [m.role for m in t.messages] == ["system", "user", "assistant"]
    assert t.messages[-1].tool_calls == [
        ToolCall(id="call_fHCjJqt9Pysde6vcJcvbXGBx", name="get_current_weather", arguments={"location": "Seattle, WA"}),
        ToolCall(
            id="call_3J9foSw3CUb48lrqIXoTky6U", name="get_current_weather", arguments={"location": "San Francisco, CA"}
        ),
    ]
    assert (t.input_tokens, t.output_tokens, t.latency_ms) == (75, 51, 1399.0)
    assert t.metadata["finish_reasons"] == ["tool_calls"]
    assert t.metadata["request"]["stream"] is True


def test_assemble_stream_text_deltas() -> None:
    chunks = [
        {
            "id": "c1",
            "model": "m",
            "created": 1,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    ]
    text = "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in chunks) + "data: [DONE]\n\n"
    body = assemble_stream(text)
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}
    ]
    assert (body["id"], body["model"], body["created"]) == ("c1", "m", 1)


def test_cassette_with_a_broken_body(tmp_path: Path) -> None:
    text = CASSETTE.read_text(encoding="utf-8")
    path = tmp_path / "cassette.yaml"
    path.write_text(text.replace('"role": "tool",', '"role": "tool",,', 1), encoding="utf-8")
    items = list(parse_vcr(path, {}))
    assert [str(i) for i in items if isinstance(i, Issue)] == [f"{path}:178: request body is not valid JSON"]
    (t,) = [t for t in items if isinstance(t, Trace)]
    assert t.trace_id == FIRST_ID and t.metadata["calls"] == 1


def test_cassette_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("interactions:\n- request: {body: [unclosed\n", encoding="utf-8")
    (issue,) = parse_vcr(path, {})
    assert isinstance(issue, Issue) and issue.line == 3 and issue.reason.startswith("not valid YAML (")


# --------------------------------------------------------------------------- detection and the driver


@pytest.mark.parametrize(
    ("path", "name"),
    [(DRONE, "openai"), (EXCHANGE, "openai-exchange"), (CASSETTE, "vcr-openai"), (STREAM, "vcr-openai")],
)
def test_detect(path: Path, name: str) -> None:
    assert detect(path).name == name


def test_driver_same_conversation_from_two_recordings(ws) -> None:
    first = ingest_files(ws, [EXCHANGE])
    assert (first.ingested, first.issues) == (1, [])
    # the cassette recorded the same two calls: same trace id, nothing added
    second = ingest_files(ws, [CASSETTE, STREAM])
    assert [(f.format, f.ingested, f.skipped) for f in second.files] == [("vcr-openai", 0, 1), ("vcr-openai", 1, 0)]
    store = TraceStore(ws.traces_dir)
    row = store.get([FIRST_ID])[FIRST_ID]
    assert (row["source_format"], row["n_messages"], row["n_tool_calls"], row["total_tokens"]) == (
        "openai-exchange",
        6,
        2,
        250,
    )
    assert (row["input_text"], row["output_text"]) == (QUESTION, ANSWER)
    assert [s["id"] for s in orjson.loads(row["spans"])] == [FIRST_ID, "chatcmpl-ASYMVzdmBGDbUoHFmt6R16tdtZUzR"]
    assert store.count() == 2


def test_a_parse_shares_no_value_with_the_next(tmp_path: Path) -> None:
    """A caller that changes a trace it was given does not change what the next parse of the file gives."""
    path = tmp_path / "chats.jsonl"
    tools = [{"type": "function", "function": {"name": "f"}}]
    path.write_bytes(orjson.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}], "tools": tools}) + b"\n")
    (first,) = parse_openai(path, {})
    assert isinstance(first, Trace)
    first.tools.append({"type": "function", "function": {"name": "added by a caller"}})
    (again,) = parse_openai(path, {})
    assert isinstance(again, Trace) and again.tools == tools


# --------------------------------------------------------------------------- hostile cassettes (bombs)


def _gzipped_cassette(path: Path, pad: int = 0) -> Path:
    """The tool-calls cassette with every response body gzipped (as vcrpy records them: ``!!binary``), each
    body padded with ``pad`` spaces (valid JSON whitespace) first."""
    doc = yaml.safe_load(CASSETTE.read_text(encoding="utf-8"))
    for item in doc["interactions"]:
        body = item["response"]["body"]
        body["string"] = gzip.compress((" " * pad + body["string"]).encode("utf-8"))
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_gzipped_bodies_read_as_the_plain_ones(tmp_path: Path) -> None:
    (plain,) = parse_vcr(CASSETTE, {})
    (zipped,) = parse_vcr(_gzipped_cassette(tmp_path / "gz.yaml"), {})
    assert zipped == plain


def test_a_gzip_bomb_is_refused_with_one_issue(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest_common, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    # each body expands 3 MB of whitespace from a few KB: past the 1 MiB the file may expand to
    path = _gzipped_cassette(tmp_path / "bomb.yaml", pad=3_000_000)
    assert path.stat().st_size < 30_000
    items = list(parse_vcr(path, {}))
    assert [str(i) for i in items] == [
        f"{path}:2: gzip data decompresses to more than 1 MiB; refused as a decompression bomb"
    ]


def test_the_decompression_limit_counts_all_bodies_of_a_file(tmp_path: Path, monkeypatch) -> None:
    # two bodies of 600 KB each: neither is past 1 MiB alone, together they are
    monkeypatch.setattr(ingest_common, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = _gzipped_cassette(tmp_path / "two.yaml", pad=600_000)
    items = list(parse_vcr(path, {}))
    assert [str(i) for i in items] == [
        f"{path}:{_second_line(path)}: gzip data decompresses to more than 1 MiB; refused as a decompression bomb"
    ]


def _second_line(path: Path) -> int:
    lines = [i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("- request:")]
    return lines[1]


def test_a_bomb_among_files_leaves_the_others_ingested(ws, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest_common, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    bomb = _gzipped_cassette(tmp_path / "bomb.yaml", pad=3_000_000)
    report = ingest_files(ws, [bomb, CASSETTE])
    assert [(f.format, f.ingested) for f in report.files] == [("vcr-openai", 0), ("vcr-openai", 1)]
    assert [str(i) for i in report.issues] == [
        f"{bomb}:2: gzip data decompresses to more than 1 MiB; refused as a decompression bomb"
    ]


def _laughs(levels: int) -> str:
    """A billion-laughs cassette: each level a list of ten aliases to the level below."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]")
    lines.append(f"interactions: [*l{levels}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path, monkeypatch) -> None:
    # 5 levels: 10**5 "lol"s, about 400 KB expanded from under 400 bytes; the lowered limit is 64 KiB
    monkeypatch.setattr(ingest_common, "MAX_DECOMPRESSED_BYTES", 1 << 16)
    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs(5), encoding="utf-8")
    assert path.stat().st_size < 400
    (issue,) = parse_vcr(path, {})
    assert str(issue) == f"{path}: YAML expands to more than 64 KiB through its aliases; refused as an alias bomb"


def test_yaml_aliases_past_the_limit_or_recursive_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest_common, "MAX_YAML_ALIASES", 5)
    path = tmp_path / "aliases.yaml"
    path.write_text("h: &h {a: 1}\ninteractions: [*h, *h, *h, *h, *h, *h]\n", encoding="utf-8")
    (issue,) = parse_vcr(path, {})
    assert str(issue) == f"{path}: YAML uses more than 5 aliases; refused"
    path.write_text("interactions: &r [*r]\n", encoding="utf-8")
    (issue,) = parse_vcr(path, {})
    assert str(issue) == f"{path}: a YAML alias refers to the node that holds it; refused"
