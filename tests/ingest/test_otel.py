"""OTLP/JSON with GenAI attributes (``otel``): contrib openai-v2 latest and legacy (+ logs), OpenLLMetry, Langfuse SDK."""

from __future__ import annotations

import base64
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaltray.core.records import Message, Span, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, detect, ingest_files
from evaltray.ingest.otel import parse
from evaltray.ingest.span_messages import unflatten
from evaltray.ingest.span_reading import read_span
from evaltray.ingest.spans import SpanRecord, any_value, attributes, hex_id

DATA = Path(__file__).parent.parent / "data" / "otel"
SCHEMAS = Path(__file__).parent.parent / "data" / "openinference" / "genai-message-schemas"
LATEST = DATA / "openai-v2_latest_tool-calls.traces.json"
STREAMING = DATA / "openai-v2_latest_streaming-tool-calls.traces.json"
LEGACY = DATA / "openai-v2_legacy_tool-calls.traces.json"
LEGACY_LOGS = DATA / "openai-v2_legacy_tool-calls.logs.json"
OPENLLMETRY = DATA / "openllmetry_parallel-tool-calls.traces.json"
LANGFUSE = DATA / "langfuse-py-sdk_trace.otlp.json"

QUESTION = "What's the weather in Seattle and San Francisco today?"
ANSWER = "Today, the weather in Seattle is 50 degrees and raining, while in San Francisco, it's 70 degrees and sunny."
SYSTEM = Message(role="system", content="You're a helpful assistant.")
SEATTLE = ToolCall(
    id="call_JpNb8OiAkbIbHzDggfpdDHpi", name="get_current_weather", arguments={"location": "Seattle, WA"}
)
SF = ToolCall(
    id="call_vaFQc3zK6hHTRZKXRI5Eo2cJ", name="get_current_weather", arguments={"location": "San Francisco, CA"}
)
FIRST_CALL = [SYSTEM, Message(role="user", content=QUESTION), Message(role="assistant", tool_calls=[SEATTLE, SF])]
WHOLE_CONVERSATION = [
    *FIRST_CALL,
    Message(role="tool", content="50 degrees and raining", tool_call_id=SEATTLE.id, name="get_current_weather"),
    Message(role="tool", content="70 degrees and sunny", tool_call_id=SF.id, name="get_current_weather"),
    Message(role="assistant", content=ANSWER),
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city and state, e.g. Boston, MA"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}


def traces(path: Path, options: dict[str, str] | None = None) -> list[Trace]:
    out = list(parse(path, options or {}))
    assert [i for i in out if isinstance(i, Issue)] == []
    return out  # type: ignore[return-value]


def ns(value: str) -> datetime:
    return datetime.fromtimestamp(int(value) // 10**9, UTC).replace(microsecond=int(value) % 10**9 // 1000)


# --------------------------------------------------------------------------- AnyValue and ids


def test_any_value_kinds() -> None:
    assert any_value({"stringValue": "chat"}) == "chat"
    assert any_value({"intValue": "75"}) == 75  # int64 travels as a JSON string
    assert any_value({"doubleValue": 0.5}) == 0.5
    assert math.isinf(any_value({"doubleValue": "Infinity"}))
    assert any_value({"boolValue": False}) is False
    assert any_value({"arrayValue": {"values": [{"stringValue": "demo"}, {"intValue": "2"}]}}) == ["demo", 2]
    assert any_value({"arrayValue": {}}) == []
    assert any_value(
        {
            "kvlistValue": {
                "values": [
                    {
                        "key": "message",
                        "value": {"kvlistValue": {"values": [{"key": "role", "value": {"stringValue": "tool"}}]}},
                    },
                ]
            }
        }
    ) == {"message": {"role": "tool"}}
    assert any_value({"bytesValue": "aGk="}) == "aGk="
    assert any_value({}) is None


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_encode(v) for v in value]}}
    return {"kvlistValue": {"values": [{"key": k, "value": _encode(v)} for k, v in value.items()]}}


_values = st.recursive(
    st.none().map(lambda _: "x")
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(_values)
def test_any_value_round_trip(value: Any) -> None:
    assert any_value(_encode(value)) == value


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["role", "content", "name"]), st.text(max_size=5), min_size=1),
        min_size=1,
        max_size=12,
    )
)
def test_unflatten_inverts_indexed_attributes(messages: list[dict[str, str]]) -> None:
    flat = {f"llm.input_messages.{i}.message.{k}": v for i, m in enumerate(messages) for k, v in m.items()}
    assert unflatten(flat, "llm.input_messages.") == [{"message": m} for m in messages]


def test_attributes_from_key_value_list() -> None:
    assert attributes([{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "75"}}, {"value": {}}]) == {
        "gen_ai.usage.input_tokens": 75
    }


def test_hex_ids() -> None:
    tid = "d55a853589ccf33f47a978c1cd7d74d3"
    assert hex_id(tid.upper(), 16) == tid
    assert hex_id("0x" + tid, 16) == tid  # Python's span.to_json()
    assert hex_id(base64.b64encode(bytes.fromhex(tid)).decode(), 16) == tid  # protobuf MessageToDict
    assert hex_id("0" * 32, 16) is None  # the invalid id
    assert hex_id("a4a1134d5a3a409d", 16) is None  # a span id is not a trace id
    assert hex_id("not-an-id", 8) is None


# --------------------------------------------------------------------------- the GenAI "parts" shape


@pytest.mark.parametrize("path", [LATEST, STREAMING, OPENLLMETRY])
def test_recorded_parts_follow_the_genai_schemas(path: Path) -> None:
    schemas = {key: orjson.loads((SCHEMAS / f"gen-ai-{key}-messages.json").read_bytes()) for key in ("input", "output")}
    doc = orjson.loads(path.read_bytes())
    checked = 0
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        attrs = attributes(span["attributes"])
        for key in ("input", "output"):
            jsonschema.validate(orjson.loads(attrs[f"gen_ai.{key}.messages"]), schemas[key])
            checked += 1
    assert checked == 2 * len(doc["resourceSpans"][0]["scopeSpans"][0]["spans"])


def test_system_instructions_reasoning_and_plain_text_input() -> None:
    # the latest conventions move the system prompt to gen_ai.system_instructions, a bare list of parts
    doc = orjson.loads(LATEST.read_bytes())
    attrs = attributes(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"])
    inputs = orjson.loads(attrs["gen_ai.input.messages"])
    attrs["gen_ai.system_instructions"] = orjson.dumps(inputs[0]["parts"]).decode()
    attrs["gen_ai.input.messages"] = orjson.dumps(
        [{"role": "assistant", "parts": [{"type": "reasoning", "content": "Two cities."}]}, *inputs[1:]]
    ).decode()
    r = read_span(SpanRecord("d55a853589ccf33f47a978c1cd7d74d3", "a4a1134d5a3a409d", attrs=attrs))
    assert r.inputs == [SYSTEM, Message(role="assistant"), Message(role="user", content=QUESTION)]
    # OpenInference input.value marked text/plain is text, even when it looks like JSON
    oi = read_span(
        SpanRecord(
            "d55a853589ccf33f47a978c1cd7d74d3",
            "a4a1134d5a3a409d",
            attrs={
                "openinference.span.kind": "LLM",
                "input.value": '["Seattle", "San Francisco"]',
                "input.mime_type": "text/plain",
            },
        )
    )
    assert oi.inputs == [Message(role="user", content='["Seattle", "San Francisco"]')]


# --------------------------------------------------------------------------- openai-v2, latest conventions


def test_latest_two_calls_are_two_traces() -> None:
    first, second = traces(LATEST)
    # no parent context: each chat call got its own traceId
    assert (first.trace_id, second.trace_id) == ("d55a853589ccf33f47a978c1cd7d74d3", "2637362785d62f68e06ef0e196959bda")
    assert first.messages == FIRST_CALL
    assert second.messages == WHOLE_CONVERSATION
    assert first.tools == [WEATHER_TOOL] and second.tools == []  # only the first call sent tool definitions
    assert (first.input_tokens, first.output_tokens, first.total_tokens) == (75, 51, 126)
    assert (second.input_tokens, second.output_tokens, second.total_tokens) == (99, 25, 124)
    assert (first.model, first.model_version, first.provider) == ("gpt-4o-mini-2024-07-18", "fp_0ba0d124f1", "openai")
    assert (first.start_time, first.end_time) == (ns("1795509671232199810"), ns("1795509671242958271"))
    assert first.start_time.microsecond == 232199  # truncated, not rounded through a float
    assert first.latency_ms == 10.759  # 242958 - 232199 µs
    assert first.name == "chat gpt-4o-mini" and first.status == "ok" and first.error is None
    assert first.spans == [
        Span(
            id="a4a1134d5a3a409d",
            parent_id=None,
            name="chat gpt-4o-mini",
            kind="llm",
            start_time=first.start_time,
            end_time=first.end_time,
            status="ok",
            model="gpt-4o-mini-2024-07-18",
        )
    ]
    assert first.metadata == {
        "service": "openai-v2-cassette-replay",
        "instrumentation": ["opentelemetry.util.genai.handler 0.5b0.dev"],
        "llm_calls": 1,
        "response_ids": ["chatcmpl-ASYMU9Ntix7ePttk0MSuerJstef6U"],
        "request_model": "gpt-4o-mini",
        "finish_reasons": ["tool_calls"],
    }


def test_streamed_tool_calls_arrive_whole() -> None:
    (t,) = traces(STREAMING)
    assert t.trace_id == "90560adc940dd1c4b96304c54105863f"
    assert t.messages[-1] == Message(
        role="assistant",
        tool_calls=[
            ToolCall(
                id="call_fHCjJqt9Pysde6vcJcvbXGBx", name="get_current_weather", arguments={"location": "Seattle, WA"}
            ),
            ToolCall(
                id="call_3J9foSw3CUb48lrqIXoTky6U",
                name="get_current_weather",
                arguments={"location": "San Francisco, CA"},
            ),
        ],
    )
    assert (t.input_tokens, t.output_tokens, t.model_version) == (75, 51, None)


# --------------------------------------------------------------------------- legacy conventions: content in logs


def test_legacy_spans_read_their_sibling_logs() -> None:
    first, second = traces(LEGACY)
    assert (first.trace_id, second.trace_id) == ("8abacc313e2d7b0a2168f0ba10a1cf2f", "356bbe0954de5abcafdf11d9840ea041")
    # the same cassette as the latest recording: the logs give back exactly the same conversation
    assert first.messages == FIRST_CALL
    assert second.messages == WHOLE_CONVERSATION
    assert (second.input_tokens, second.output_tokens, second.provider) == (99, 25, "openai")  # gen_ai.system


def test_legacy_spans_alone_have_no_content(tmp_path: Path) -> None:
    lone = shutil.copy(LEGACY, tmp_path / LEGACY.name)
    first, second = traces(Path(lone))
    assert (first.messages, second.messages) == ([], [])
    assert (first.input_tokens, second.output_tokens, first.model) == (75, 25, "gpt-4o-mini-2024-07-18")


def test_logs_alone_become_traces_keyed_by_trace_id(tmp_path: Path) -> None:
    lone = Path(shutil.copy(LEGACY_LOGS, tmp_path / LEGACY_LOGS.name))
    first, second = traces(lone)
    assert (first.trace_id, second.trace_id) == ("8abacc313e2d7b0a2168f0ba10a1cf2f", "356bbe0954de5abcafdf11d9840ea041")
    assert second.messages == WHOLE_CONVERSATION
    assert (second.provider, second.input_tokens, second.model) == ("openai", None, None)
    assert [s.id for s in second.spans] == ["d41b3b5c7b2e6ffc"]  # the span the records point at
    assert second.start_time == ns("1795509673362454278")  # its first record's observedTimeUnixNano


def test_logs_option_names_the_logs_file(tmp_path: Path) -> None:
    spans = Path(shutil.copy(LEGACY, tmp_path / "spans.json"))
    _, second = traces(spans, {"logs": str(LEGACY_LOGS)})
    assert second.messages == WHOLE_CONVERSATION


@pytest.mark.parametrize("order", [[LEGACY, LEGACY_LOGS], [LEGACY_LOGS, LEGACY]])
def test_either_file_first_gives_the_same_traces(ws, order: list[Path]) -> None:
    report = ingest_files(ws, order)
    assert [(f.ingested, f.skipped) for f in report.files] == [(2, 0), (0, 2)]
    rows = (
        TraceStore(ws.traces_dir)
        .query(columns=["trace_id", "n_messages", "input_tokens", "output_text"], order_by="trace_id")
        .to_pylist()
    )
    assert rows == [
        {"trace_id": "356bbe0954de5abcafdf11d9840ea041", "n_messages": 6, "input_tokens": 99, "output_text": ANSWER},
        {"trace_id": "8abacc313e2d7b0a2168f0ba10a1cf2f", "n_messages": 3, "input_tokens": 75, "output_text": None},
    ]


# --------------------------------------------------------------------------- OpenLLMetry


def test_openllmetry_flavour() -> None:
    (t,) = traces(OPENLLMETRY)
    assert t.trace_id == "e804e89507f43d2c6c221dd658ef738e" and t.name == "openai.chat"
    assert t.messages == [
        Message(role="user", content="What's the weather like in San Francisco and Boston?"),
        Message(
            role="assistant",
            tool_calls=[
                ToolCall(
                    id="call_3JNWJ9wdfRsmkhKWql4HqJhR",
                    name="get_current_weather",
                    arguments={"location": "San Francisco"},
                ),
                ToolCall(
                    id="call_8jQ7TzSBlLV4tzrMRpq5Tg98", name="get_current_weather", arguments={"location": "Boston"}
                ),
            ],
        ),
    ]
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (70, 46, 116)  # only OpenLLMetry sends the total
    assert (t.model, t.metadata["request_model"]) == ("gpt-3.5-turbo-0125", "gpt-3.5-turbo")
    assert t.metadata["finish_reasons"] == ["tool_call"]  # singular, unlike contrib
    assert t.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}
                    },
                    "required": ["location"],
                },
            },
        }
    ]


# --------------------------------------------------------------------------- Langfuse SDK export


def test_langfuse_sdk_trace_is_one_trace() -> None:
    (t,) = traces(LANGFUSE)
    assert t.trace_id == "73d8a033c7e61d9de1bce056e853c087"
    # two generations and two tool spans; the second generation already holds the tool results
    assert t.messages == WHOLE_CONVERSATION
    assert t.tools == [WEATHER_TOOL]
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (75 + 99, 51 + 25, 126 + 124)  # usage_details
    assert (t.model, t.model_version, t.provider, t.cost_usd) == ("gpt-4o-mini-2024-07-18", None, None, None)
    assert (t.name, t.user_id, t.session_id, t.tags) == ("weather-agent", "user_123", "sess_42", ["demo", "weather"])
    assert t.latency_ms == 21.636  # the root agent span: 1795509981484188276 → 1795509981505824201
    assert [(s.name, s.kind, s.parent_id) for s in t.spans] == [
        ("weather_agent", "agent", None),
        ("plan-tool-calls", "llm", "37b9c9507cd2bfab"),
        ("get_current_weather", "tool", "37b9c9507cd2bfab"),
        ("get_current_weather", "tool", "37b9c9507cd2bfab"),
        ("final-answer", "llm", "37b9c9507cd2bfab"),
    ]
    assert t.metadata == {
        "instrumentation": ["langfuse-sdk 4.14.3"],
        "environment": "demo",
        "trace_metadata": {"app_version": "1.2.3"},
        "llm_calls": 2,
        # the SDK turns its default max_tokens into the string "Infinity"
        "request": {
            "temperature": 1,
            "max_tokens": "Infinity",
            "top_p": 1,
            "frequency_penalty": 0,
            "presence_penalty": 0,
        },
    }


def _edit_span(path: Path, out: Path, span_id: str, **changes: Any) -> Path:
    doc = orjson.loads(path.read_bytes())
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        if span["spanId"] == span_id:
            span.update(changes)
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return out


def test_failed_tool_span_marks_the_tool_result(tmp_path: Path) -> None:
    failed = _edit_span(
        LANGFUSE,
        tmp_path / "failed.otlp.json",
        "4c256275043e14c9",
        status={"code": 2, "message": "weather service timed out"},
    )
    (t,) = traces(failed)
    assert (t.status, t.error) == ("error", "get_current_weather: weather service timed out")
    tools = [m for m in t.messages if m.role == "tool"]
    assert [(m.content, m.is_error) for m in tools] == [
        ("50 degrees and raining", True),
        ("70 degrees and sunny", False),
    ]
    assert [s.status for s in t.spans] == ["ok", "ok", "error", "ok", "ok"]


def test_tool_span_result_missing_from_history_is_added(tmp_path: Path) -> None:
    # drop the final generation: the tool spans are then the only record of the results
    doc = orjson.loads(LANGFUSE.read_bytes())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[:] = [s for s in spans if s["spanId"] != "97e84d0b3f9f3e8a"]
    path = tmp_path / "partial.otlp.json"
    path.write_bytes(orjson.dumps(doc))
    (t,) = traces(path)
    assert t.messages == [
        *FIRST_CALL,
        Message(role="tool", content="50 degrees and raining", name="get_current_weather"),
        Message(role="tool", content="70 degrees and sunny", name="get_current_weather"),
    ]
    assert (t.input_tokens, t.output_tokens) == (75, 51)


def test_langfuse_through_the_driver(ws) -> None:
    report = ingest_files(ws, [LANGFUSE])
    assert [(f.format, f.ingested, f.issues) for f in report.files] == [("otel", 1, [])]
    store = TraceStore(ws.traces_dir)
    row = store.get(["73d8a033c7e61d9de1bce056e853c087"])["73d8a033c7e61d9de1bce056e853c087"]
    assert {
        k: row[k]
        for k in (
            "source_format",
            "name",
            "user_id",
            "session_id",
            "tags",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "latency_ms",
            "n_messages",
            "n_tool_calls",
            "n_tool_errors",
            "status",
            "input_text",
            "output_text",
        )
    } == {
        "source_format": "otel",
        "name": "weather-agent",
        "user_id": "user_123",
        "session_id": "sess_42",
        "tags": ["demo", "weather"],
        "input_tokens": 174,
        "output_tokens": 76,
        "total_tokens": 250,
        "latency_ms": 21.636,
        "n_messages": 6,
        "n_tool_calls": 2,
        "n_tool_errors": 0,
        "status": "ok",
        "input_text": QUESTION,
        "output_text": ANSWER,
    }
    assert [s["name"] for s in orjson.loads(row["spans"])] == [
        "weather_agent",
        "plan-tool-calls",
        "get_current_weather",
        "get_current_weather",
        "final-answer",
    ]
    again = ingest_files(ws, [LANGFUSE])
    assert (again.ingested, again.skipped) == (0, 1)
    assert store.count() == 1


# --------------------------------------------------------------------------- bad input


def test_corrupted_span_is_reported_and_the_rest_ingested(ws, tmp_path: Path) -> None:
    broken = tmp_path / LATEST.name
    broken.write_text(LATEST.read_text().replace('"1795509671243109715"', '"yesterday"'))
    report = ingest_files(ws, [broken])
    assert [str(i) for i in report.issues] == [
        f"{broken}:143: span has an unreadable startTimeUnixNano (record c72392701d8e82a4)"
    ]
    assert report.ingested == 1
    assert TraceStore(ws.traces_dir).trace_ids() == {"d55a853589ccf33f47a978c1cd7d74d3"}


def test_span_without_trace_id(tmp_path: Path) -> None:
    broken = tmp_path / LATEST.name
    broken.write_text(LATEST.read_text().replace('"traceId": "d55a853589ccf33f47a978c1cd7d74d3"', '"traceId": ""'))
    out = list(parse(broken, {}))
    assert [str(i) for i in out if isinstance(i, Issue)] == [
        f"{broken}:47: span has no valid traceId (record a4a1134d5a3a409d)"
    ]  # the line of its spanId
    assert [t.trace_id for t in out if isinstance(t, Trace)] == ["2637362785d62f68e06ef0e196959bda"]


def test_collector_jsonl_with_a_broken_line(tmp_path: Path) -> None:
    # the collector's file exporter writes one export request per line; spans of a trace may be split
    doc = orjson.loads(LATEST.read_bytes())
    scope = doc["resourceSpans"][0]["scopeSpans"][0]
    lines = []
    for span in scope["spans"]:
        one = {"resourceSpans": [{**doc["resourceSpans"][0], "scopeSpans": [{**scope, "spans": [span]}]}]}
        lines.append(orjson.dumps(one).decode())
    path = tmp_path / "otel-export.jsonl"
    path.write_text(lines[0] + "\n" + lines[1][:200] + "\n" + lines[1] + "\n")
    out = list(parse(path, {}))
    issues = [i for i in out if isinstance(i, Issue)]
    assert [(i.line, i.reason) for i in issues] == [(2, "not valid JSON (Invalid control character at)")]
    assert [t.messages for t in out if isinstance(t, Trace)] == [FIRST_CALL, WHOLE_CONVERSATION]


def test_not_otlp(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text('{"spans": []}')
    assert [str(i) for i in parse(path, {})] == [
        f"{path}:1: not an OTLP/JSON document: expected 'resourceSpans' or 'resourceLogs'"
    ]


def test_http_only_traces_are_left_out(tmp_path: Path) -> None:
    doc = orjson.loads(LATEST.read_bytes())
    http = {
        "traceId": "5b8aa5a2d2c872e8321cf37308d69df2",
        "spanId": "051581bf3cb55c13",
        "name": "GET /health",
        "kind": 2,
        "startTimeUnixNano": "1795509671232199810",
        "endTimeUnixNano": "1795509671242958271",
        "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}}],
        "status": {},
    }
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(http)
    path = tmp_path / "app.json"
    path.write_bytes(orjson.dumps(doc))
    assert [t.trace_id for t in traces(path)] == [
        "d55a853589ccf33f47a978c1cd7d74d3",
        "2637362785d62f68e06ef0e196959bda",
    ]


@pytest.mark.parametrize("path", [LATEST, STREAMING, LEGACY, LEGACY_LOGS, OPENLLMETRY, LANGFUSE])
def test_detect(path: Path) -> None:
    assert detect(path).name == "otel"
