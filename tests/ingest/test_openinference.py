"""Span JSON (``openinference``): Vercel AI SDK v6 captures and the OpenInference/GenAI attribute fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import orjson
import pytest

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, ingest_files
from evaltray.ingest.openinference import NOT_SPANS, _sniff, parse

DATA = Path(__file__).parent.parent / "data" / "openinference"
VERCEL = DATA / "vercel-v6-spans"
ALL_SPANS = VERCEL / "all-spans.json"
BY_OPERATION = VERCEL / "spans-by-operation.json"
FIXTURES = DATA / "genai-attribute-fixtures"
SCHEMAS = DATA / "genai-message-schemas"
GENAI = FIXTURES / "otel_genai_client_span_tool_calls.json"
OPENINFERENCE = FIXTURES / "openinference_client_span_tool_calls.json"

PARIS = [
    Message(role="user", content="Weather in Paris?"),
    Message(
        role="assistant",
        content="Absolutely! Let me check the weather for you.",
        tool_calls=[ToolCall(id="1234", name="get_weather", arguments={"location": "Paris"})],
    ),
    Message(role="tool", content="rainy, 57°F", tool_call_id="1234", name="get_weather"),
    Message(role="assistant", content="The weather in Paris is currently rainy with a temperature of 57°F."),
]
HAIKU = "Lines of code align,  \nLogic dances through the night—  \nDreams in data flow."
# all-spans.json in file order; every span has its own traceId, even a parent and its child
VERCEL_IDS = [
    ("b3e700af9eab81e19f72f964d62a35af", "ai.generateText.doGenerate"),
    ("700d5f98fe2420adcf6ab0822f7a323c", "ai.generateText"),
    ("edff2fc5854be6170e8cccccec0c82cf", "ai.generateText.doGenerate"),
    ("673a889f59126f8b4c90dce5a1f99368", "ai.generateText"),
    ("8f60802815d6e97da2dbc4708a8e5c7b", "ai.generateObject.doGenerate"),
    ("f99cc53c9bb8fe40462f7a48999e7088", "ai.generateObject"),
    ("478d4dcc697ecfabc5e7a3d6e4216291", "ai.streamText.doStream"),
    ("8185b815e471184c6525a601a042be42", "ai.streamText"),
    ("045d21a7f69972edf509fe0ff911f3f5", "ai.embed.doEmbed"),
    ("91621bbaaf1920e94ae594e91b3a99fd", "ai.embed"),
]


def traces(path: Path) -> list[Trace]:
    out = list(parse(path, {}))
    assert [i for i in out if isinstance(i, Issue)] == []
    return out  # type: ignore[return-value]


def one(path: Path) -> Trace:
    (t,) = traces(path)
    return t


# --------------------------------------------------------------------------- the two attribute styles


def test_genai_parts_and_openinference_indexed_give_the_same_messages() -> None:
    genai, oi = one(GENAI), one(OPENINFERENCE)
    assert genai.messages == oi.messages == PARIS
    assert (genai.input_tokens, genai.output_tokens, genai.total_tokens) == (97, 52, 149)  # total = 97 + 52
    assert (oi.input_tokens, oi.output_tokens, oi.total_tokens) == (97, 52, 149)  # llm.token_count.total
    assert (genai.model, genai.provider) == (oi.model, oi.provider) == ("gpt-4-0613", "openai")
    # the sources name the request settings differently: max_tokens against OpenAI's max_completion_tokens
    assert genai.metadata["request"] == {"max_tokens": 200, "temperature": 0.5, "top_p": 0.9}
    assert oi.metadata["request"] == {"temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 200}
    assert genai.metadata["request_model"] == oi.metadata["request_model"] == "gpt-4"


@pytest.mark.parametrize(
    "name", ["otel_genai_deprecated_client_span_tool_calls.json", "openinference_client_span_input_output_only.json"]
)
def test_other_encodings_of_the_same_call(name: str) -> None:
    # gen_ai.prompt/gen_ai.completion JSON strings; input.value/output.value only
    assert one(FIXTURES / name).messages == PARIS


def test_parts_in_the_fixture_follow_the_genai_schemas() -> None:
    attrs = orjson.loads(GENAI.read_bytes())
    for key in ("input", "output"):
        schema = orjson.loads((SCHEMAS / f"gen-ai-{key}-messages.json").read_bytes())
        jsonschema.validate(orjson.loads(attrs[f"gen_ai.{key}.messages"]), schema)
    # OpenAI's shape is not GenAI's: "parts" is required (an untyped part would pass as a GenericPart)
    bad = [{"role": "user", "content": "Weather in Paris?"}]
    schema = orjson.loads((SCHEMAS / "gen-ai-input-messages.json").read_bytes())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_tool_execution_span_is_a_tool_result() -> None:
    t = one(FIXTURES / "otel_genai_tool_execution_span.json")
    assert t.messages == [
        Message(
            role="tool",
            tool_call_id="1234",
            name="get_weather",
            content='{"status": "success", "report": "The weather in New York is sunny with a temperature of 25 degrees '
            'Celsius (77 degrees Fahrenheit)."}',
        )
    ]
    assert t.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Retrieves the current weather report for a specified city.",
            },
        }
    ]
    assert [(s.name, s.kind) for s in t.spans] == [("execute_tool", "tool")]


def test_attribute_maps_get_content_ids() -> None:
    first, again = one(GENAI), one(GENAI)
    assert first.trace_id == again.trace_id == "oi-f1c07f1f2af6742a50ad"
    assert one(OPENINFERENCE).trace_id != first.trace_id


# --------------------------------------------------------------------------- Vercel AI SDK v6


def test_vercel_all_spans() -> None:
    ts = traces(ALL_SPANS)
    assert [(t.trace_id, t.spans[0].name) for t in ts] == VERCEL_IDS
    haiku = ts[0]
    assert haiku.messages == [
        Message(role="user", content="Write a haiku about programming."),
        Message(role="assistant", content=HAIKU),
    ]
    assert (haiku.name, haiku.model, haiku.provider) == ("test-generate-text", "gpt-4o-mini-2024-07-18", "openai")
    assert (haiku.input_tokens, haiku.output_tokens, haiku.total_tokens) == (14, 20, 34)
    assert haiku.latency_ms == 1779.415  # [1770131992, 242000000] → [1770131994, 21415667]
    assert haiku.metadata["trace_metadata"] == {"testCategory": "text-generation", "customField": "custom-value"}
    assert haiku.metadata["request_model"] == "gpt-4o-mini"
    # the parent span carries the same call as {"prompt": …} and ai.response.text
    assert ts[1].messages == haiku.messages and ts[1].spans[0].kind == "chain"
    assert ts[1].model == "gpt-4o-mini"  # the parent only knows the requested model


def test_vercel_multi_turn_and_structured_output() -> None:
    ts = {t.trace_id: t for t in traces(ALL_SPANS)}
    turns = [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="What is 2 + 2?"),
        Message(role="assistant", content="2 + 2 equals 4."),
        Message(role="user", content="And what is 3 + 3?"),
        Message(role="assistant", content="3 + 3 equals 6."),
    ]
    # child: ai.prompt.messages with content parts; parent: ai.prompt {"messages"} with plain strings
    assert ts["edff2fc5854be6170e8cccccec0c82cf"].messages == ts["673a889f59126f8b4c90dce5a1f99368"].messages == turns
    recipe = ts["8f60802815d6e97da2dbc4708a8e5c7b"].messages[-1]
    assert recipe.role == "assistant" and orjson.loads(recipe.content)["name"] == "Scrambled Eggs"
    assert (
        ts["8f60802815d6e97da2dbc4708a8e5c7b"].input_tokens,
        ts["8f60802815d6e97da2dbc4708a8e5c7b"].output_tokens,
    ) == (63, 156)


def test_vercel_stream_and_embedding() -> None:
    ts = {t.trace_id: t for t in traces(ALL_SPANS)}
    stream = ts["478d4dcc697ecfabc5e7a3d6e4216291"]
    assert stream.messages[-1].content.startswith("In code’s embrace, where types align,")
    assert (stream.input_tokens, stream.output_tokens, stream.total_tokens) == (15, 112, 127)
    assert stream.metadata["time_to_first_token_ms"] == 426.8535000000011
    embed = ts["045d21a7f69972edf509fe0ff911f3f5"]
    assert (embed.messages, embed.model, embed.input_tokens, embed.total_tokens) == (
        [],
        "text-embedding-3-small",
        10,
        10,
    )
    assert embed.spans[0].kind == "embedding"


def test_spans_by_operation_and_single_operation_files_hold_the_same_spans() -> None:
    everything = {t.trace_id: t.messages for t in traces(ALL_SPANS)}
    assert {t.trace_id: t.messages for t in traces(BY_OPERATION)} == everything
    singles = [t for p in sorted(VERCEL.glob("ai-*.json")) for t in traces(p)]
    assert len(singles) == 10 and {t.trace_id: t.messages for t in singles} == everything


# --------------------------------------------------------------------------- not spans, sniffing


@pytest.mark.parametrize(
    "path",
    [VERCEL / "capture-results.json", SCHEMAS / "gen-ai-input-messages.json", SCHEMAS / "gen-ai-output-messages.json"],
)
def test_files_that_are_not_spans(path: Path) -> None:
    assert [str(i) for i in parse(path, {})] == [f"{path}:1: {NOT_SPANS}"]
    assert not _sniff(path, path.read_bytes()[:65536])


def test_every_span_file_is_claimed() -> None:
    claimed = sorted(
        p.name for p in [*VERCEL.glob("*.json"), *FIXTURES.glob("*.json")] if _sniff(p, p.read_bytes()[:65536])
    )
    assert len(claimed) == 15 and "capture-results.json" not in claimed


def test_python_console_exporter_shape(tmp_path: Path) -> None:
    # span.to_json() as Python's ConsoleSpanExporter prints it: concatenated, not an array
    attrs = orjson.loads(OPENINFERENCE.read_bytes())
    spans = [
        {
            "name": "ChatCompletion",
            "context": {
                "trace_id": "0x5b8aa5a2d2c872e8321cf37308d69df2",
                "span_id": "0x051581bf3cb55c13",
                "trace_state": "[]",
            },
            "kind": "SpanKind.INTERNAL",
            "parent_id": None,
            "start_time": "2026-02-03T15:19:52.242000Z",
            "end_time": "2026-02-03T15:19:54.021415Z",
            "status": {"status_code": "ERROR", "description": "429"},
            "attributes": attrs,
            "events": [],
            "links": [],
            "resource": {"attributes": {"service.name": "bot"}},
        }
    ]
    path = tmp_path / "console.txt"
    path.write_text("\n".join(orjson.dumps(s, option=orjson.OPT_INDENT_2).decode() for s in spans * 2) + "\n")
    assert _sniff(path, path.read_bytes())
    (t,) = traces(path)  # the same span printed twice counts once
    assert (t.trace_id, t.messages, t.latency_ms) == ("5b8aa5a2d2c872e8321cf37308d69df2", PARIS, 1779.415)
    assert (t.status, t.error, t.metadata["service"]) == ("error", "ChatCompletion: 429", "bot")


# --------------------------------------------------------------------------- through the driver


def test_vercel_through_the_driver(ws) -> None:
    report = ingest_files(ws, [ALL_SPANS])
    assert [(f.format, f.ingested, f.issues) for f in report.files] == [("openinference", 10, [])]
    store = TraceStore(ws.traces_dir)
    row = store.get(["b3e700af9eab81e19f72f964d62a35af"])["b3e700af9eab81e19f72f964d62a35af"]
    assert {
        k: row[k]
        for k in (
            "source_format",
            "name",
            "model",
            "provider",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "latency_ms",
            "n_messages",
            "input_text",
            "output_text",
        )
    } == {
        "source_format": "openinference",
        "name": "test-generate-text",
        "model": "gpt-4o-mini-2024-07-18",
        "provider": "openai",
        "input_tokens": 14,
        "output_tokens": 20,
        "total_tokens": 34,
        "latency_ms": 1779.415,
        "n_messages": 2,
        "input_text": "Write a haiku about programming.",
        "output_text": HAIKU,
    }
    # the same spans again, grouped by operation: nothing new
    again = ingest_files(ws, [ALL_SPANS, BY_OPERATION])
    assert [(f.ingested, f.skipped) for f in again.files] == [(0, 10), (0, 10)]
    assert store.count() == 10


def test_attribute_maps_through_the_driver(ws) -> None:
    report = ingest_files(ws, [GENAI, OPENINFERENCE])
    assert report.ingested == 2
    rows = TraceStore(ws.traces_dir).query(columns=["messages", "n_tool_calls", "total_tokens"]).to_pylist()
    assert rows[0] == rows[1]  # both styles store the same conversation
    assert (rows[0]["n_tool_calls"], rows[0]["total_tokens"]) == (1, 149)
    assert ingest_files(ws, [GENAI]).skipped == 1


def test_corrupted_span_is_reported_and_the_rest_ingested(ws, tmp_path: Path) -> None:
    broken = tmp_path / ALL_SPANS.name
    broken.write_text(ALL_SPANS.read_text().replace('"traceId": "edff2fc5854be6170e8cccccec0c82cf"', '"traceId": ""'))
    report = ingest_files(ws, [broken])
    assert [str(i) for i in report.issues] == [f"{broken}:92: span has no valid traceId (record 6c0201026326855d)"]
    assert report.ingested == 9
    assert "edff2fc5854be6170e8cccccec0c82cf" not in TraceStore(ws.traces_dir).trace_ids()


def test_not_a_span_file_through_the_driver(ws, tmp_path: Path) -> None:
    path = Path(shutil.copy(VERCEL / "capture-results.json", tmp_path / "capture-results.json"))
    report = ingest_files(ws, [path], fmt="openinference")
    assert (report.ingested, [str(i) for i in report.issues]) == (0, [f"{path}:1: {NOT_SPANS}"])


def test_non_span_items_in_an_array(tmp_path: Path) -> None:
    spans = orjson.loads((VERCEL / "ai-generateText.json").read_bytes())
    path = tmp_path / "mixed.json"
    path.write_bytes(orjson.dumps([spans[0], {"name": "orphan", "attributes": {}}]))
    out = list(parse(path, {}))
    assert [str(i) for i in out if isinstance(i, Issue)] == [
        f"{path}:1: not a span: no 'spanContext' with a 'spanId' (record orphan)"
    ]
    assert [t.trace_id for t in out if isinstance(t, Trace)] == ["700d5f98fe2420adcf6ab0822f7a323c"]
