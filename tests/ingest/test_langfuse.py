"""Langfuse trace downloads: the 20 framework traces from Langfuse's own test suite, the older seeder variant,
Langfuse's ChatML mapper as a reference, and the driver end to end."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, detect, ingest_files
from evaltray.ingest.chat_payloads import messages_from, tool_definition
from evaltray.ingest.conversation import ToolRun, Turn, assemble_conversation
from evaltray.ingest.feedback import feedback_value
from evaltray.ingest.langfuse import observation_messages, parse

DATA = Path(__file__).parent.parent / "data" / "langfuse"
FRAMEWORKS = sorted(DATA.glob("*.trace.json"))
VERTEX_TOOLS = DATA / "google-vertex-tools-langchain-2025-09-19.json"


def _one(path: Path) -> Trace:
    items = list(parse(path, {}))
    assert [i for i in items if isinstance(i, Issue)] == []
    (trace,) = items
    assert isinstance(trace, Trace)
    return trace


def _load(name: str) -> dict[str, Any]:
    return orjson.loads((DATA / name).read_bytes())


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


# Worked out from the files: roles in order, tool calls, (input, output, total) tokens and USD cost summed over
# the innermost GENERATION observations, latency from trace.latency (the seeder file has none: first start to
# last end), model of the last model call.
EXPECTED = [
    (
        "agno-2025-06-11.trace.json",
        "080130871f53145aecf7c29d5dfb6e4c",
        "system user assistant tool assistant",
        ["duckduckgo_search"],
        (826, 245, 1071),
        0.000270899999,
        6991.0,
        "gpt-4o-mini",
    ),
    (
        "autogen-2025-06-06.trace.json",
        "1b72c51fabed12ae7df83bfd4a09f545",
        "system user assistant",
        [],
        (41, 3, 44),
        2.5e-05,
        645.0,
        "gpt-4o",
    ),
    (
        "beeai-2025-08-01.trace.json",
        "096fc09a30ab90d2431778f9ee2b3936",
        "system user assistant assistant assistant",
        [],
        (5542, None, 5542),
        0.0008313,
        17173.0,
        "gpt-4o-mini",
    ),
    (
        "claude-agent-2025-12-22.trace.json",
        "097f1d8982fa909b8cffb14a166ec272",
        "system user assistant assistant tool assistant tool assistant",
        ["mcp__weather__get_weather", "mcp__weather__get_weather"],
        (34, 232, 266),
        0.003582,
        7360.0,
        "claude-sonnet-4-5-20250929",
    ),
    (
        "crewai-2025-07-11.trace.json",
        "a287bb31e317433610d8827617471140",
        "system user assistant",
        [],
        (190, 164, 354),
        0.0001269,
        3750.0,
        "gpt-4o-mini",
    ),
    (
        "csharp-agent-with-gemini-2026-03-09.trace.json",
        "933dba1e9783f89d5d8bb032f041a2de",
        "system user assistant tool assistant assistant",
        ["get_custom_report", "final_result"],
        (8047, 414, 8461),
        0.0034491,
        14851.0,
        "gemini-2.5-flash",
    ),
    (
        "google-adk-2025-08-28.trace.json",
        "b82a0bdc1994fc5d1c8576ca032543f7",
        "system user assistant tool assistant",
        ["say_hello"],
        (67, 9, 76),
        1.03e-05,
        1848.0,
        "gemini-2.0-flash",
    ),
    (
        "google-gemini-2025-08-01.trace.json",
        "9f2f0fe0228fd81a9fe75882934b384a",
        "user assistant",
        [],
        (6, 2055, 2061),
        0.005139299999,
        12032.0,
        "gemini-2.5-flash",
    ),
    (
        "koog-2025-08-26.trace.json",
        "dff173a675b759ce1b70e522b27d6846",
        "system user assistant tool assistant tool assistant",
        ["HelloTool", "ByeTool"],
        (215, 125, 340),
        0.0017875,
        5843.0,
        "gpt-4o",
    ),
    (
        "langgraph-js-2025-10-30.trace.json",
        "2c1581dd9cecdafb6ca091b83d7ea99a",
        "user assistant tool assistant",
        ["get_weather"],
        (321, 59, 444),
        0.00032625,
        5290.0,
        "gpt-5-mini-2025-08-07",
    ),
    (
        "langgraph-python-2025-08-22.trace.json",
        "e1fde3efec57ce8a69bafd3fb928a7eb",
        "user user assistant tool assistant",
        ["Web-Search"],
        (168, 66, 234),
        0.000234,
        2610.0,
        "gpt-4o-2024-08-06",
    ),
    (
        "llamaindex-2025-06-05.trace.json",
        "12ea412956f99347b0503c1144acd0ec",
        "user assistant",
        [],
        (13, 81, 94),
        0.000842499999,
        2779.0,
        "gpt-4o",
    ),
    (
        "microsoft-agent-2025-12-17.trace.json",
        "8e419d3288419b5d944270505640e183",
        "system user assistant tool assistant",
        ["get_weather"],
        (293, 106, 399),
        0.00028525,
        4364.0,
        "gpt-5-mini-2025-08-07",
    ),
    (
        "openai-agents-2025-09-30.trace.json",
        "fee618f96dc31e0ca38b2f7b26eb8b29",
        "system user assistant tool assistant",
        ["get_weather"],
        (140, 44, 184),
        0.000632,
        2190.0,
        "gpt-4.1-2025-04-14",
    ),
    (
        "pydantic-ai-2025-06-06.trace.json",
        "25f4bdeebaab60e6e1bee7e8469554bc",
        "system user assistant",
        [],
        (31, 96, 127),
        0.0010375,
        4795.0,
        "gpt-4o",
    ),
    (
        "pydantic-ai-tools-2025-06-06.trace.json",
        "25f4bdeebaab60e6e1bee7e8469554bc",
        "system user assistant",
        [],
        (31, 96, 127),
        0.0010375,
        4795.0,
        "gpt-4o",
    ),
    (
        "pydantic-ai-tools-2025-12-04.trace.json",
        "7a38edd8123db47ad8dcb8aa4c5e3926",
        "system user assistant tool tool tool assistant user assistant system user assistant",
        ["get_pun_suggestion", "get_dad_joke_suggestion", "get_one_liner_suggestion", "final_result"],
        (1315, 209, 1524),
        0.000322649999,
        7424.0,
        "gpt-4o-mini-2024-07-18",
    ),
    (
        "pydantic-ai-with-gemini-2025-12-24.trace.json",
        "f68601af42c4a35e1d5e4699de569c1f",
        "user assistant",
        [],
        (40, 159, 199),
        0.0004095,
        1820.0,
        "gemini-2.5-flash",
    ),
    (
        "vercel-aisdk-2025-11-17.trace.json",
        "df41e597d0a85e0d7a6ae8ebfaa70aa0",
        "user assistant tool",
        ["getWeather"],
        (62, 85, 147),
        0.000927499999,
        3045.0,
        "gpt-5",
    ),
    (
        "vertex-ai-2025-08-01.trace.json",
        "0298935e31d66d7de9487cac935d7d99",
        "user assistant",
        [],
        (5, 845, 2023),
        0.00085,
        10722.0,
        "projects/vertex-ai-integration-467711/locations/europe-central2/publishers/google/models/gemini-2.5-flash",
    ),
    (
        "google-vertex-tools-langchain-2025-09-19.json",
        "vertex-gemini-trace-001",
        "system system user assistant user assistant",
        [],
        (1200, 15, 1215),
        0.00011,
        1874.0,
        "gemini-2.5-flash",
    ),
]


def test_every_file_is_in_the_table() -> None:
    assert len(FRAMEWORKS) == 20
    assert sorted([p.name for p in FRAMEWORKS] + [VERTEX_TOOLS.name]) == sorted(e[0] for e in EXPECTED)


@pytest.mark.parametrize(
    ("name", "trace_id", "roles", "calls", "tokens", "cost", "latency", "model"),
    EXPECTED,
    ids=[e[0].split(".")[0] for e in EXPECTED],
)
def test_each_file_gives_one_exact_trace(name, trace_id, roles, calls, tokens, cost, latency, model) -> None:
    trace = _one(DATA / name)
    assert trace.trace_id == trace_id
    assert trace.source_format == "langfuse"
    assert " ".join(m.role for m in trace.messages) == roles
    assert [c.name for m in trace.messages for c in m.tool_calls] == calls
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens) == tokens
    assert trace.cost_usd == pytest.approx(cost, rel=1e-9)
    assert trace.latency_ms == latency
    assert trace.model == model
    assert trace.status == "ok" and trace.error is None
    # every tool result answers a call made earlier in the conversation
    called = set()
    for m in trace.messages:
        called.update(c.id for c in m.tool_calls)
        if m.role == "tool" and m.tool_call_id is not None:
            assert m.tool_call_id in called


def test_sniffer_claims_the_exports_and_not_the_chatml_references() -> None:
    assert {detect(p).name for p in [*FRAMEWORKS, VERTEX_TOOLS]} == {"langfuse"}
    for ref in DATA.glob("*.chatml.json"):
        with pytest.raises(Exception, match="cannot tell the format"):
            detect(ref)


# ----------------------------------------------------------------------------------- against Langfuse's mapper

_CHATML_ROLE = {"model": "assistant"}


def _ours(msgs: list[Message]) -> list[tuple]:
    return [
        (m.role, " ".join((m.content or "").split()), tuple(c.name for c in m.tool_calls), m.tool_call_id) for m in msgs
    ]


def _theirs(msgs: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for m in msgs:
        content = m.get("content")
        if not isinstance(content, str):
            content = "" if content is None else orjson.dumps(content).decode()
        out.append(
            (
                _CHATML_ROLE.get(m.get("role"), m.get("role")),
                " ".join(content.split()),
                tuple(c.get("name") for c in m.get("tool_calls") or []),
                m.get("tool_call_id"),
            )
        )
    return out


# Where our messages differ from Langfuse's ChatML mapper on purpose (every other GENERATION side it mapped agrees):
EXPECTED_DIFFERENCES = {
    # agno's wrapper sends Python reprs ("role='user' content=..."): Langfuse makes role-less empty messages, we none
    ("agno-2025-06-11", "b38a82eaa62b551e", "input"),
    ("agno-2025-06-11", "ca136de468e156c9", "input"),
    # BeeAI content is a Python repr of text parts: Langfuse keeps the repr, we keep the text
    ("beeai-2025-08-01", "1f956cbea34725bd", "input"),
    ("beeai-2025-08-01", "4c5c5a7936ca24bc", "input"),
    ("beeai-2025-08-01", "52df0f7f9dad6b23", "input"),
    # Anthropic content blocks: Langfuse keeps the block list as text, we split text and tool_use calls
    ("claude-agent-2025-12-22", "2cc13e77781787fd", "output"),
    ("claude-agent-2025-12-22", "371496f71d82baed", "output"),
    ("claude-agent-2025-12-22", "e9aac170e5d48125", "output"),
    ("claude-agent-2025-12-22", "f8e8f040dc94e67e", "output"),
    # a Gemini functionResponse part: Langfuse leaves it a user message, we make it the tool's result
    ("google-adk-2025-08-28", "bded677884f031ce", "input"),
    # koog logs its calls as JSON text (as "tool" messages on input): we read them as the assistant's tool calls
    ("koog-2025-08-26", "e44e72cf2d221781", "input"),
    ("koog-2025-08-26", "042f9350c3729147", "output"),
    # LangChain.js names a tool result's role after the tool ("get_weather"): we call it a tool message
    ("langgraph-js-2025-10-30", "0856a1825ccee968", "input"),
    # pydantic-ai's gen_ai.choice event ({"index", "message"}): Langfuse gives a role-less empty message
    ("pydantic-ai-2025-06-06", "5cb389a3bdd21a6e", "output"),
    ("pydantic-ai-tools-2025-06-06", "5cb389a3bdd21a6e", "output"),
}


def test_generation_messages_match_langfuse_chatml_except_where_documented() -> None:
    agreed, differing = 0, set()
    for ref_path in sorted(DATA.glob("*.chatml.json")):
        stem = ref_path.name.removesuffix(".chatml.json")
        observations = {o["id"]: o for o in _load(f"{stem}.trace.json")["observations"]}
        for oid, ref in orjson.loads(ref_path.read_bytes()).items():
            if observations[oid]["type"] != "GENERATION":
                continue
            mine = dict(zip(("input", "output"), observation_messages(observations[oid]), strict=True))
            for side in ("input", "output"):
                if ref.get(side, {}).get("success"):
                    if _ours(mine[side]) == _theirs(ref[side]["data"]):
                        agreed += 1
                    else:
                        differing.add((stem, oid, side))
    assert differing == EXPECTED_DIFFERENCES
    assert agreed == 48


# ----------------------------------------------------------------------------------- what each framework teaches


def test_claude_agent_system_from_trace_input_and_tool_results_from_tool_observations() -> None:
    trace = _one(DATA / "claude-agent-2025-12-22.trace.json")
    assert trace.messages[0] == Message(
        role="system", content="You are a friendly travel assistant who helps with weather information."
    )
    assert trace.messages[3].tool_calls == [
        ToolCall("toolu_01TKoqQLvY2UWuC49qnD48y7", "mcp__weather__get_weather", {"city": "Berlin"})
    ]
    assert trace.messages[4] == Message(
        role="tool",
        content="Weather in Berlin: Cloudy, 59°F",
        tool_call_id="toolu_01TKoqQLvY2UWuC49qnD48y7",
        name="mcp__weather__get_weather",
    )
    assert trace.messages[6].content == "Weather in New York: Sunny, 75°F"
    assert trace.messages[6].tool_call_id == "toolu_01NtVat4vJLFfVd5TqdLHcA7"
    assert trace.provider == "anthropic"
    assert trace.feedback_score is None  # three EVAL judge scores, no user feedback
    assert [(s["name"], s["value"], s["source"]) for s in trace.metadata["scores"]] == [
        ("correctness", 0, "EVAL"),
        ("hallucination", 1, "EVAL"),
        ("toxicity", 0, "EVAL"),
    ]


def test_agno_wrapper_and_inner_generation_count_once() -> None:
    trace = _one(DATA / "agno-2025-06-11.trace.json")
    # the call comes from the wrapper's chat completion, the result from the inner call's "tool:" transcript
    call = trace.messages[2].tool_calls[0]
    assert (call.id, call.name, call.arguments) == (
        "call_VybxG748CQId8Xxo6wb2pWy1",
        "duckduckgo_search",
        {"query": "currently trending on Twitter"},
    )
    assert trace.messages[3].tool_call_id == "call_VybxG748CQId8Xxo6wb2pWy1"
    assert trace.messages[3].content.startswith('[\n  {\n    "title": "Twitter. It\'s what\'s happening / Twitter"')
    assert (
        trace.messages[0].content
        == "<additional_information>\n- Use markdown to format your answers.\n</additional_information>"
    )
    # tokens: the inner calls' 163+663 input, not the wrappers' re-estimated 542+1568
    assert trace.provider == "openai"
    assert [t["function"]["name"] for t in trace.tools] == ["duckduckgo_search", "duckduckgo_news"]
    assert trace.session_id == "35cc6c90-b657-4819-b66c-c931c03ad569"


def test_langchain_vertex_tool_messages_are_tool_definitions() -> None:
    trace = _one(VERTEX_TOOLS)
    assert [t["function"]["name"] for t in trace.tools] == [
        "transition_to_service_a",
        "transition_to_service_b",
        "transition_to_service_c",
        "get_customer_info",
        "escalate_to_human",
    ]
    assert trace.tools[3] == {
        "type": "function",
        "function": {
            "name": "get_customer_info",
            "description": "Retrieve customer information from the database.",
            "parameters": {
                "type": "object",
                "properties": {"customer_id": {"type": "string", "description": "The customer identifier"}},
                "required": [],
            },
        },
    }
    assert trace.messages[3].content == (
        "Hello! I'm your assistant and I'll be happy to help you today.\n"
        "\nTo better assist you, could you please share your full name?"
    )
    assert trace.messages[-1].content == "Thank you, John Smith. Which of our services are you interested in?"
    assert trace.provider == "google_vertexai"
    assert trace.metadata == {"environment": "default", "instrumentation": ["langfuse-sdk"], "observations": 1}


def test_two_agents_in_one_trace_keep_both_conversations() -> None:
    trace = _one(DATA / "pydantic-ai-tools-2025-12-04.trace.json")
    systems = [m.content for m in trace.messages if m.role == "system"]
    assert systems[1] == "You are a joke critic. Evaluate if the joke is funny and well-crafted."
    assert trace.messages[8].content == "Why do programmers hate nature?  \nIt has too many bugs!"
    final = trace.messages[-1].tool_calls[0]
    assert (final.name, final.arguments["quality"]) == ("final_result", "good")
    assert [m.tool_call_id for m in trace.messages if m.role == "tool"] == [
        "call_X0OSgjUukT5inyEQvuZQnHrk",
        "call_WxZcCvSDhGT4RJHlcU01k10x",
        "call_aRaObiWKKt6GzgDkkUl3bu1Q",
    ]
    assert trace.tags == ["example", "joke-generator"]
    meta = trace.metadata["trace_metadata"]
    assert (meta["environment"], meta["topic"], meta["iterations"], meta["evaluation"]["quality"]) == (
        "development",
        "programming",
        1,
        "good",
    )


def test_beeai_final_answer_comes_from_the_trace_output() -> None:
    trace = _one(DATA / "beeai-2025-08-01.trace.json")
    assert trace.messages[1].content.startswith("Message: I'm planning a trip to Barcelona, Spain.")
    assert trace.messages[-1].content.startswith("Barcelona is a vibrant city known for its rich cultural heritage")
    assert trace.output_tokens is None  # the generations logged input usage only
    assert [s["name"] for s in trace.metadata["scores"]] == ["hallucination", "toxicity"]


def test_gemini_function_response_and_koog_json_calls() -> None:
    adk = _one(DATA / "google-adk-2025-08-28.trace.json")
    assert adk.messages[3] == Message(role="tool", content='{"greeting":"Hello Langfuse 👋"}', name="say_hello")
    assert (adk.user_id, adk.session_id, adk.provider) == ("demo-user", "demo-session", "google")
    koog = _one(DATA / "koog-2025-08-26.trace.json")
    assert koog.messages[2].tool_calls == [ToolCall("call_n2HaWg9KFP0BZDqXv6G4b3nJ", "HelloTool", {"name": "Bob"})]
    assert koog.messages[3] == Message(
        role="tool", content="Hello my darling Bob!", tool_call_id="call_n2HaWg9KFP0BZDqXv6G4b3nJ", name="HelloTool"
    )
    assert koog.messages[-1].content == "Hello my darling Bob! And, bye my dear Bob!"


def test_trace_fields_user_session_tags_version() -> None:
    trace = _one(DATA / "autogen-2025-06-06.trace.json")
    assert (trace.user_id, trace.session_id, trace.tags, trace.name) == (
        "user_123",
        "session_abc",
        ["autogen", "dev"],
        "autogen-chat-trace",
    )
    assert trace.metadata == {
        "environment": "default",
        "version": "1.0.0",
        "trace_metadata": {"email": "user@langfuse.com"},
        "instrumentation": ["langfuse-sdk"],
        "observations": 2,
    }
    assert [(s.id, s.parent_id, s.kind, s.model) for s in trace.spans] == [
        ("95f4f51edeb603d9", None, "SPAN", None),
        ("83517f9062f5ada4", "95f4f51edeb603d9", "GENERATION", "gpt-4o"),
    ]
    csharp = _one(DATA / "csharp-agent-with-gemini-2026-03-09.trace.json")
    assert (csharp.user_id, csharp.model_version, csharp.provider) == (
        "g.aprozeanu",
        "gemini-2.5-flash",
        "gcp.vertex_ai",
    )
    assert csharp.messages[0].content.startswith("You are an expert on statistical analysis for the adtech company")
    assert csharp.metadata["environment"] == "preprod"


# ----------------------------------------------------------------------------------- feedback, errors, bad input


def test_user_feedback_scores_map_to_minus_one_one(tmp_path: Path) -> None:
    doc = _load("autogen-2025-06-06.trace.json")
    doc["trace"]["scores"] = [
        {
            "name": "user-feedback",
            "value": 0,
            "dataType": "BOOLEAN",
            "source": "API",
            "comment": "wrong greeting",
            "timestamp": "2025-06-06T11:32:00.000Z",
        },
        {
            "name": "hallucination",
            "value": 1,
            "dataType": "NUMERIC",
            "source": "EVAL",
            "timestamp": "2025-06-06T11:33:00.000Z",
        },
    ]
    trace = _one(_write(tmp_path, "down.json", doc))
    assert (trace.feedback_score, trace.feedback_comment) == (-1.0, "wrong greeting")
    doc["trace"]["scores"].append(
        {
            "name": "thumbs",
            "value": 1,
            "stringValue": "thumbs_up",
            "dataType": "CATEGORICAL",
            "source": "ANNOTATION",
            "timestamp": "2025-06-06T11:34:00.000Z",
        }
    )
    trace = _one(_write(tmp_path, "up.json", doc))
    assert (trace.feedback_score, trace.feedback_comment) == (1.0, None)  # the latest feedback wins


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (True, 1.0),
        (False, -1.0),
        (1, 1.0),
        (0, -1.0),
        (0.75, 0.5),
        (5, 1.0),
        (1.5, -0.75),
        (-0.5, -0.5),
        ("thumbs_down", -1.0),
        ("👍", 1.0),
        (7, None),
        ("meh", None),
        (None, None),
    ],
)
def test_feedback_value(value, score) -> None:
    assert feedback_value(value) == score


def test_an_error_observation_fails_the_trace_and_its_tool_result(tmp_path: Path) -> None:
    doc = _load("openai-agents-2025-09-30.trace.json")
    tool = next(o for o in doc["observations"] if o["id"] == "5b99c3e3411ed17b")
    tool.update(level="ERROR", statusMessage="weather service unavailable", output=None)
    trace = _one(_write(tmp_path, "failed-tool.json", doc))
    assert (trace.status, trace.error) == ("error", "get_weather: weather service unavailable")
    result = trace.messages[3]
    assert (result.role, result.tool_call_id, result.is_error) == ("tool", "call_Kud0j0DxWSmLzv9W5m6qVqXn", True)
    assert [s.status for s in trace.spans if s.id == "5b99c3e3411ed17b"] == ["error"]


def test_a_tool_observation_whose_call_no_generation_shows_is_added(tmp_path: Path) -> None:
    doc = _load("llamaindex-2025-06-05.trace.json")
    doc["observations"].append(
        {
            "id": "aa00000000000001",
            "type": "TOOL",
            "name": "search_docs",
            "parentObservationId": "3344aabdd4e66110",
            "startTime": "2025-06-05T15:45:52.975Z",
            "endTime": "2025-06-05T15:45:52.990Z",
            "level": "DEFAULT",
            "input": '{"query": "Langfuse"}',
            "output": '"Langfuse is an LLM engineering platform."',
        }
    )
    trace = _one(_write(tmp_path, "tool.json", doc))
    assert [m.role for m in trace.messages] == ["user", "assistant", "tool", "assistant"]
    assert trace.messages[1].tool_calls == [ToolCall(None, "search_docs", {"query": "Langfuse"})]
    assert trace.messages[2].content == "Langfuse is an LLM engineering platform."


def test_retrieved_documents_and_prompt_template(tmp_path: Path) -> None:
    doc = _load("llamaindex-2025-06-05.trace.json")
    generation = next(o for o in doc["observations"] if o["type"] == "GENERATION")
    generation.update(promptName="langfuse-qa", promptVersion=3)
    doc["observations"].append(
        {
            "id": "aa00000000000002",
            "type": "RETRIEVER",
            "name": "retrieve",
            "parentObservationId": "3344aabdd4e66110",
            "startTime": "2025-06-05T15:45:52.972Z",
            "endTime": "2025-06-05T15:45:52.973Z",
            "level": "DEFAULT",
            "input": '"What is Langfuse?"',
            "output": orjson.dumps(
                [
                    {"id": "kb-17", "text": "Langfuse is ..."},
                    {"text": "Tracing ...", "metadata": {"source": "docs/tracing.md"}},
                ]
            ).decode(),
            "metadata": orjson.dumps(
                {"attributes": {f"retrieval.documents.{i}.document.id": f"a{i}" for i in (10, 2)}}
            ).decode(),
        }
    )
    trace = _one(_write(tmp_path, "rag.json", doc))
    assert trace.retrieved_doc_ids == ["a2", "a10", "kb-17", "docs/tracing.md"]
    assert trace.prompt_template_id == "langfuse-qa:3"
    assert [m.role for m in trace.messages] == ["user", "assistant"]  # a retrieval is not a turn of the chat


def test_a_broken_observation_is_reported_and_the_trace_still_ingests(tmp_path: Path) -> None:
    text = (DATA / "autogen-2025-06-06.trace.json").read_text(encoding="utf-8")
    # the generation appears twice: once without payload inside "trace", then in full; break the full one
    at = text.rindex('"id": "83517f9062f5ada4"')
    path = tmp_path / "autogen-broken.json"
    path.write_text(
        text[:at] + text[at:].replace('"startTime": "2025-06-06T11:31:33.978Z"', '"startTime": "soon"', 1),
        encoding="utf-8",
    )
    issue, trace = parse(path, {})
    assert str(issue) == f"{path}:177: observation has no readable startTime (record 83517f9062f5ada4)"
    assert text.splitlines()[176].strip() == '"id": "83517f9062f5ada4",'
    # without its one generation the conversation falls back to the trace's own input and output
    assert [(m.role, m.content) for m in trace.messages] == [
        ("user", "Say 'Hello World!'"),
        ("assistant", "Hello World!"),
    ]
    assert trace.input_tokens is None and trace.model is None


def test_not_json_wrong_shape_array_and_jsonl(tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_bytes((DATA / "autogen-2025-06-06.trace.json").read_bytes()[:3000])
    (issue,) = parse(cut, {})
    assert isinstance(issue, Issue) and issue.reason.startswith("not valid JSON")
    wrong = _write(tmp_path, "wrong.json", {"trace": {"name": "no id"}, "observations": []})
    assert [str(i) for i in parse(wrong, {})] == [
        f"{wrong}: expected an object with 'trace' (having an 'id') and 'observations'"
    ]
    docs = [_load("autogen-2025-06-06.trace.json"), _load("llamaindex-2025-06-05.trace.json")]
    array = _write(tmp_path, "two.json", docs)
    assert [t.trace_id for t in parse(array, {})] == [
        "1b72c51fabed12ae7df83bfd4a09f545",
        "12ea412956f99347b0503c1144acd0ec",
    ]
    lines = tmp_path / "two.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n{broken\n")
    items = list(parse(lines, {}))
    assert [t.trace_id for t in items[:2]] == ["1b72c51fabed12ae7df83bfd4a09f545", "12ea412956f99347b0503c1144acd0ec"]
    assert str(items[2]).startswith(f"{lines}:3: not valid JSON")
    assert detect(lines).name == "langfuse" and detect(array).name == "langfuse"


def test_public_api_trace_with_observations_inside(tmp_path: Path) -> None:
    doc = _load("microsoft-agent-2025-12-17.trace.json")
    api = {**doc["trace"], "observations": doc["observations"]}  # GET /api/public/traces/{id}
    trace = _one(_write(tmp_path, "api.json", api))
    assert (trace.trace_id, [m.role for m in trace.messages]) == (
        "8e419d3288419b5d944270505640e183",
        ["system", "user", "assistant", "tool", "assistant"],
    )
    assert trace.input_tokens == 293


# ----------------------------------------------------------------------------------- the driver


def test_driver_ingest_query_reingest(ws) -> None:
    files = [
        DATA / "claude-agent-2025-12-22.trace.json",
        DATA / "pydantic-ai-2025-06-06.trace.json",
        DATA / "pydantic-ai-tools-2025-06-06.trace.json",
        VERTEX_TOOLS,
    ]
    report = ingest_files(ws, files, payload_sample=1.0)
    # the two pydantic-ai downloads are the same Langfuse trace: the second adds nothing
    assert (report.ingested, report.skipped, report.issues) == (3, 1, [])
    store = TraceStore(ws.traces_dir)
    rows = store.query(
        "source_format = 'langfuse'",
        columns=[
            "trace_id",
            "n_messages",
            "n_tool_calls",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "latency_ms",
            "model",
            "provider",
            "user_id",
            "session_id",
            "tags",
        ],
        order_by="trace_id",
    ).to_pylist()
    assert rows == [
        {
            "trace_id": "097f1d8982fa909b8cffb14a166ec272",
            "n_messages": 8,
            "n_tool_calls": 2,
            "input_tokens": 34,
            "output_tokens": 232,
            "cost_usd": 0.003582,
            "latency_ms": 7360.0,
            "model": "claude-sonnet-4-5-20250929",
            "provider": "anthropic",
            "user_id": None,
            "session_id": None,
            "tags": [],
        },
        {
            "trace_id": "25f4bdeebaab60e6e1bee7e8469554bc",
            "n_messages": 3,
            "n_tool_calls": 0,
            "input_tokens": 31,
            "output_tokens": 96,
            "cost_usd": 0.0010375,
            "latency_ms": 4795.0,
            "model": "gpt-4o",
            "provider": "openai",
            "user_id": "user_123",
            "session_id": "session_abc",
            "tags": ["dev", "pydantic-ai"],
        },
        {
            "trace_id": "vertex-gemini-trace-001",
            "n_messages": 6,
            "n_tool_calls": 0,
            "input_tokens": 1200,
            "output_tokens": 15,
            "cost_usd": 0.00011,
            "latency_ms": 1874.0,
            "model": "gemini-2.5-flash",
            "provider": "google_vertexai",
            "user_id": None,
            "session_id": None,
            "tags": [],
        },
    ]
    row = store.get(["097f1d8982fa909b8cffb14a166ec272"])["097f1d8982fa909b8cffb14a166ec272"]
    assert row["input_text"] == "What's the weather like in Berlin and New York?"
    assert row["output_text"].startswith("Great! Here's the current weather for both cities:")
    # stored compactly: fields at their default (no tool calls, not an error) are left out
    assert orjson.loads(row["messages"])[4] == {
        "role": "tool",
        "content": "Weather in Berlin: Cloudy, 59°F",
        "tool_call_id": "toolu_01TKoqQLvY2UWuC49qnD48y7",
        "name": "mcp__weather__get_weather",
    }
    again = ingest_files(ws, files)
    assert (again.ingested, again.skipped) == (0, 4)
    assert store.count() == 3


def test_driver_reports_the_broken_observation(ws, tmp_path: Path) -> None:
    text = (DATA / "koog-2025-08-26.trace.json").read_text(encoding="utf-8")
    at = text.rindex('"id": "33188493784a060d"')
    path = tmp_path / "koog-broken.json"
    path.write_text(
        text[:at] + text[at:].replace('"startTime": "2025-08-26T19:41:02.023Z"', '"startTime": null', 1),
        encoding="utf-8",
    )
    line = text[:at].count("\n") + 1
    report = ingest_files(ws, [path])
    assert report.ingested == 1
    assert [str(i) for i in report.issues] == [
        f"{path}:{line}: observation has no readable startTime (record 33188493784a060d)"
    ]
    (row,) = TraceStore(ws.traces_dir).query(columns=["n_messages", "n_tool_calls"]).to_pylist()
    assert row == {"n_messages": 7, "n_tool_calls": 2}  # the ByeTool span was only a span: the chat is whole


# ----------------------------------------------------------------------------------- the message helpers


def test_messages_from_common_shapes() -> None:
    anthropic = [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12°C", "is_error": True},
                {"type": "text", "text": "and tomorrow?"},
            ],
        }
    ]
    assert messages_from(anthropic) == [
        Message(role="tool", content="12°C", tool_call_id="toolu_1", is_error=True),
        Message(role="user", content="and tomorrow?"),
    ]
    gemini = {
        "contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}],
        "config": {"system_instruction": "Be brief.", "tools": [{"function_declarations": [{"name": "f"}]}]},
    }
    tools: list[dict] = []
    assert messages_from(gemini, tools=tools) == [
        Message(role="system", content="Be brief."),
        Message(role="assistant", tool_calls=[ToolCall(None, "f", {"x": 1})]),
    ]
    assert tools == [{"type": "function", "function": {"name": "f"}}]
    langchain = [
        {
            "lc": 1,
            "type": "constructor",
            "id": ["langchain", "schema", "messages", "ToolMessage"],
            "kwargs": {"content": "done", "tool_call_id": "c1", "status": "error"},
        }
    ]
    assert messages_from(langchain) == [Message(role="tool", content="done", tool_call_id="c1", is_error=True)]
    assert messages_from("system: Be kind.\nuser: hi\nthere\nassistant: None") == [
        Message(role="system", content="Be kind."),
        Message(role="user", content="hi\nthere"),
        Message(role="assistant"),
    ]
    assert messages_from('{"args": ["What is 2+2?"], "kwargs": {}}') == [Message(role="user", content="What is 2+2?")]
    assert messages_from({"content": "role"}) == []  # a role-less input says nothing about who spoke
    assert messages_from({"content": "42"}, "assistant") == [Message(role="assistant", content="42")]
    # text that merely looks like Python stays text
    assert messages_from("['a', 'b']") == [Message(role="user", content="['a', 'b']")]
    assert messages_from("x=5 y=2: what is x+y?") == [Message(role="user", content="x=5 y=2: what is x+y?")]
    assert messages_from(
        {
            "input": "and now?",
            "chat_history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        }
    ) == [
        Message(role="user", content="hi"),
        Message(role="assistant", content="hello"),
        Message(role="user", content="and now?"),
    ]


def test_tool_definition_spellings() -> None:
    want = {"type": "function", "function": {"name": "w", "description": "d", "parameters": {"type": "object"}}}
    assert tool_definition({"name": "w", "description": "d", "input_schema": {"type": "object"}}) == want
    assert (
        tool_definition('{"type": "function", "name": "w", "description": "d", "parameters": {"type": "object"}}')
        == want
    )
    assert (
        tool_definition({"tool.name": "w", "tool.description": "d", "tool.json_schema": '{"type": "object"}'}) == want
    )
    assert tool_definition({"description": "no name"}) is None


def test_assemble_conversation_does_not_repeat_resent_history() -> None:
    u, a = Message(role="user", content="hi"), Message(role="assistant", content="hello")
    u2 = Message(role="user", content="weather?")
    call = Message(role="assistant", tool_calls=[ToolCall("c1", "weather", {"city": "Oslo"})])
    turns = [
        Turn([u], [a]),
        Turn([u, a, u2], [copy.deepcopy(call)]),
        Turn(
            [u, a, u2, Message(role="assistant"), Message(role="tool", content="-3°C")],
            [Message(role="assistant", content="It is -3°C.")],
        ),
    ]
    msgs = assemble_conversation(turns, [ToolRun("weather", {"city": "Oslo"}, "-3°C")])
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "weather?"),
        ("assistant", None),
        ("tool", "-3°C"),
        ("assistant", "It is -3°C."),
    ]
    assert msgs[3].tool_calls == call.tool_calls  # the richer rendering of the same message is kept
    assert (msgs[4].tool_call_id, msgs[4].name) == ("c1", "weather")


def test_feature_comes_from_the_trace_metadata(tmp_path) -> None:
    doc = _load("agno-2025-06-11.trace.json")
    doc["trace"]["metadata"] = orjson.dumps({"feature": "trending", "attributes": {}}).decode()
    assert _one(_write(tmp_path, "agno.trace.json", doc)).feature == "trending"
    assert _one(DATA / "agno-2025-06-11.trace.json").feature is None  # no feature key: none
