"""What one span says about the model call, whatever convention wrote it: its role (llm, tool, agent …),
messages, tools, usage, cost, model, provider and error (:func:`read_span`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evaltray.core.messages import maybe_json
from evaltray.core.records import Message

from ._common import as_dict, as_float, as_int, first_value, parse_time
from .span_messages import (
    Groups,
    dotted_groups,
    event_messages,
    indexed_messages,
    io_messages,
    messages_from,
    openai_tool,
    result_text,
    span_tools,
    system_messages,
    unflatten,
    vercel_output,
)
from .spans import SpanRecord

_OI_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "RERANKER": "reranker",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
_OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
_LANGFUSE_TYPES = {
    "generation": "llm",
    "embedding": "embedding",
    "tool": "tool",
    "agent": "agent",
    "chain": "chain",
    "retriever": "retriever",
    "evaluator": "evaluator",
    "guardrail": "guardrail",
}
_TRACELOOP_KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
#: The roles of spans that take part in a model call: a trace with none of them (nor messages, a model or
#: tokens) is an HTTP or database trace of the same export.
GENAI_KINDS = frozenset({*_OI_KINDS.values(), *_OPERATIONS.values(), *_LANGFUSE_TYPES.values()})
_TTFT_KEYS = ("ai.response.msToFirstChunk",)


def _span_role(span: SpanRecord) -> str | None:
    a = span.attrs
    if a.get("openinference.span.kind"):
        return _OI_KINDS.get(str(a["openinference.span.kind"]).upper(), str(a["openinference.span.kind"]).lower())
    if a.get("langfuse.observation.type") in _LANGFUSE_TYPES:
        return _LANGFUSE_TYPES[a["langfuse.observation.type"]]
    if a.get("gen_ai.operation.name") in _OPERATIONS:
        return _OPERATIONS[a["gen_ai.operation.name"]]
    op = str(a.get("ai.operationId") or "")
    if op:
        if op.endswith((".doGenerate", ".doStream")):
            return "llm"
        if op.endswith(".doEmbed"):
            return "embedding"
        return "tool" if op == "ai.toolCall" else "chain"
    if a.get("traceloop.span.kind") in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[a["traceloop.span.kind"]]
    if any(k.startswith(("gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages")) for k in a) or any(
        e.name.startswith("gen_ai.") for e in span.events
    ):
        return "llm"
    return None


def _provider(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    # Vercel writes "<provider>.<api>" ("openai.responses"); the GenAI names keep their dots ("aws.bedrock")
    m = re.fullmatch(
        r"([\w-]+)\.(responses|chat|completion|completions|embedding|image|transcription|speech|messages)", text
    )
    return m.group(1) if m else text


@dataclass(slots=True)
class SpanReading:
    """What one span says about the conversation, usage and model."""

    role: str | None
    inputs: list[Message] = field(default_factory=list)
    outputs: list[Message] = field(default_factory=list)
    choices: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    fingerprint: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    ttft_ms: float | None = None
    tool_result: Message | None = None
    error: str | None = None
    #: the ids of the documents it retrieved or reranked (OpenInference), in order
    doc_ids: list[str] = field(default_factory=list)

    @property
    def has_usage(self) -> bool:
        return any(v is not None for v in (self.input_tokens, self.output_tokens, self.total_tokens, self.cost))


def _doc_ids(a: Mapping[str, Any], groups: Groups) -> list[str]:
    """The ids of the documents a retriever or reranker span lists, in order, each once."""
    ids: list[str] = []
    for prefix in ("retrieval.documents.", "reranker.output_documents."):
        for doc in unflatten(a, prefix, groups) or []:
            d = doc.get("document") if isinstance(doc, dict) else None
            if isinstance(d, dict) and d.get("id") is not None and str(d["id"]) not in ids:
                ids.append(str(d["id"]))
    return ids


def _first_messages(sources: Iterable[Callable[[], list[Message]]]) -> list[Message]:
    for source in sources:
        msgs = source()
        if msgs:
            return msgs
    return []


_INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    "ai.usage.tokens",
)
_OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
_TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total", "ai.usage.totalTokens")


def _count(a: Mapping[str, Any], keys: tuple[str, ...], details: Mapping[str, Any], *detail_keys: str) -> int | None:
    value = as_int(first_value(a, *keys))
    return value if value is not None else as_int(first_value(details, *detail_keys))


def _usage(a: Mapping[str, Any]) -> tuple[int | None, int | None, int | None, float | None]:
    details = maybe_json(a.get("langfuse.observation.usage_details"))
    ud = as_dict(details)  # Langfuse keeps OpenAI's key names here
    inp = _count(a, _INPUT_TOKENS, ud, "input", "prompt_tokens", "input_tokens")
    out = _count(a, _OUTPUT_TOKENS, ud, "output", "completion_tokens", "output_tokens")
    total = _count(a, _TOTAL_TOKENS, ud, "total", "total_tokens")
    cost_details = maybe_json(a.get("langfuse.observation.cost_details"))
    cost = as_float(first_value(a, "gen_ai.usage.cost", "llm.cost.total"))
    if cost is None and isinstance(cost_details, dict):
        cost = as_float(cost_details.get("total"))
        if cost is None:
            parts = [as_float(v) for v in cost_details.values()]
            cost = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
    return inp, out, total, cost


def _error(span: SpanRecord) -> str | None:
    a = span.attrs
    if span.status_code == 2:
        for ev in span.events:
            if ev.name == "exception":
                kind, msg = ev.attrs.get("exception.type"), ev.attrs.get("exception.message")
                if kind or msg:
                    return span.status_message or ": ".join(str(x) for x in (kind, msg) if x)
        return span.status_message or a.get("error.type") or "error"
    if str(a.get("langfuse.observation.level") or "").upper() == "ERROR":
        return a.get("langfuse.observation.status_message") or "error"
    return None


def _params(a: Mapping[str, Any]) -> dict[str, Any]:
    params = {
        k.removeprefix("gen_ai.request."): v
        for k, v in a.items()
        if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"
    }
    params.update({k.removeprefix("ai.settings."): v for k, v in a.items() if k.startswith("ai.settings.")})
    for key in ("llm.invocation_parameters", "langfuse.observation.model.parameters"):
        body = maybe_json(a.get(key))
        if isinstance(body, dict):
            params.update({k: v for k, v in body.items() if k not in ("model", "messages", "tools", "input")})
    return params


def _read_model(r: SpanReading, a: Mapping[str, Any]) -> None:
    """Fill in which model answered: request and response model, provider, fingerprint, id and finish reasons."""
    inv = maybe_json(a.get("llm.invocation_parameters"))
    r.request_model = first_value(a, "gen_ai.request.model", "ai.model.id") or (
        inv.get("model") if isinstance(inv, dict) else None
    )
    r.response_model = first_value(
        a, "gen_ai.response.model", "ai.response.model", "llm.model_name", "langfuse.observation.model.name"
    )
    r.provider = _provider(
        first_value(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
    )
    r.fingerprint = first_value(a, "openai.response.system_fingerprint", "gen_ai.openai.response.system_fingerprint")
    r.response_id = first_value(a, "gen_ai.response.id", "ai.response.id")
    reasons = first_value(a, "gen_ai.response.finish_reasons", "ai.response.finishReason")
    r.finish_reasons = [str(x) for x in reasons] if isinstance(reasons, list) else [str(reasons)] if reasons else []


def _ttft_ms(span: SpanRecord) -> float | None:
    """Milliseconds to the first output chunk: as recorded, else from Langfuse's completion start time."""
    a = span.attrs
    ttft = as_float(first_value(a, *_TTFT_KEYS))
    start_of_output = parse_time(a.get("langfuse.observation.completion_start_time"))
    if ttft is None and start_of_output and span.start:
        ttft = (start_of_output - span.start).total_seconds() * 1000.0
    return ttft


def _read_tool_call(r: SpanReading, span: SpanRecord) -> None:
    """Fill in a tool span's result message (its error when it has no result) and the tool's definition."""
    a = span.attrs
    result = first_value(
        a,
        "gen_ai.tool.call.result",
        "output.value",
        "langfuse.observation.output",
        "ai.toolCall.result",
        "ai.toolCall.output",
        "traceloop.entity.output",
        "output",
    )
    text = result_text(result) if result is not None else r.error
    r.tool_result = Message(
        role="tool",
        content=text,
        tool_call_id=first_value(a, "gen_ai.tool.call.id", "tool_call.id", "ai.toolCall.id"),
        name=first_value(a, "gen_ai.tool.name", "tool.name", "ai.toolCall.name", "tool_call.function.name")
        or span.name,
        is_error=r.error is not None,
    )
    description = first_value(a, "gen_ai.tool.description", "tool.description")
    params = maybe_json(a.get("tool.parameters"))
    tool = openai_tool({"name": r.tool_result.name, "description": description, "parameters": params})
    if tool is not None and (description or params):
        r.tools.append(tool)


def _input_messages(
    a: Mapping[str, Any], details: Mapping[str, Any], events_in: list[Message], groups: Groups
) -> list[Message]:
    """The messages sent to the model, from the first convention that has any, system instructions first."""
    system = system_messages(a.get("gen_ai.system_instructions") or details.get("gen_ai.system_instructions"))
    inputs = _first_messages(
        (
            lambda: messages_from(a.get("gen_ai.input.messages") or details.get("gen_ai.input.messages")),
            lambda: indexed_messages(a, "llm.input_messages.", groups=groups),
            lambda: indexed_messages(a, "gen_ai.prompt.", groups=groups),
            lambda: messages_from(a.get("gen_ai.prompt")),
            lambda: messages_from(a.get("ai.prompt.messages")),
            lambda: messages_from(a.get("ai.prompt")),
            lambda: messages_from(a.get("langfuse.observation.input")),
            lambda: events_in,
            lambda: messages_from(a.get("traceloop.entity.input")),
            lambda: io_messages(a, "input", "user"),
        )
    )
    if system and not (inputs and inputs[0].role == "system"):
        return system + inputs
    return inputs


def _output_messages(
    a: Mapping[str, Any], details: Mapping[str, Any], events_out: list[Message], groups: Groups
) -> list[Message]:
    """The model's output messages (every choice), from the first convention that has any."""
    return _first_messages(
        (
            lambda: messages_from(
                a.get("gen_ai.output.messages") or details.get("gen_ai.output.messages"), "assistant"
            ),
            lambda: indexed_messages(a, "llm.output_messages.", "assistant", groups),
            lambda: indexed_messages(a, "gen_ai.completion.", "assistant", groups),
            lambda: messages_from(a.get("gen_ai.completion"), "assistant"),
            lambda: vercel_output(a),
            lambda: messages_from(a.get("langfuse.observation.output"), "assistant"),
            lambda: events_out,
            lambda: messages_from(a.get("traceloop.entity.output"), "assistant"),
            lambda: io_messages(a, "output", "assistant"),
        )
    )


def read_span(span: SpanRecord) -> SpanReading:
    """Interpret one span's attributes and events, whatever convention wrote them."""
    a = span.attrs
    groups = dotted_groups(a)
    role = _span_role(span)
    r = SpanReading(role=role, error=_error(span))
    r.input_tokens, r.output_tokens, r.total_tokens, r.cost = _usage(a)
    _read_model(r, a)
    r.tools = span_tools(a, groups)
    r.doc_ids = _doc_ids(a, groups)
    r.ttft_ms = _ttft_ms(span)
    if role == "tool":
        _read_tool_call(r, span)
        return r

    events_in, events_out = event_messages(span.events)
    details = next((e.attrs for e in span.events if e.name == "gen_ai.client.inference.operation.details"), {})
    r.inputs = _input_messages(a, details, events_in, groups)
    outputs = _output_messages(a, details, events_out, groups)
    # n > 1 choices are alternatives, not turns: the conversation continues with the first
    r.choices = len(outputs)
    r.outputs = outputs[:1] if len(outputs) > 1 and all(m.role == "assistant" for m in outputs) else outputs
    if role in ("llm", None, "chain", "agent"):
        r.params = _params(a)
    if role is None and (r.inputs or r.outputs) and r.response_model:
        r.role = "llm"
    return r
