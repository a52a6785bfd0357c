"""What one span says, whichever convention wrote its attributes, worked by hand."""

from __future__ import annotations

from evaltray.core.records import Message
from evaltray.ingest.span_reading import read_span
from evaltray.ingest.spans import SpanRecord


def test_an_openinference_tool_span_that_failed() -> None:
    span = SpanRecord(
        "t",
        "s",
        attrs={"openinference.span.kind": "TOOL", "tool.name": "calc", "output.value": "42", "tool_call.id": "c1"},
        status_code=2,
        status_message="bad",
    )
    r = read_span(span)
    assert (r.role, r.error) == ("tool", "bad")
    assert r.tool_result == Message("tool", "42", tool_call_id="c1", name="calc", is_error=True)


def test_a_langfuse_generation_reports_usage_cost_model_and_parameters() -> None:
    r = read_span(
        SpanRecord(
            "t",
            "s",
            attrs={
                "langfuse.observation.type": "generation",
                "langfuse.observation.usage_details": '{"input": 7, "output": 3}',
                "langfuse.observation.cost_details": '{"input": 0.001, "output": 0.002}',
                "llm.model_name": "m",
                "gen_ai.system": "openai",
                "gen_ai.request.temperature": 0.2,
            },
        )
    )
    assert (r.role, r.input_tokens, r.output_tokens, r.total_tokens) == ("llm", 7, 3, None)
    assert round(r.cost or 0, 6) == 0.003  # no total: the parts add up
    assert (r.response_model, r.provider, r.params, r.has_usage) == ("m", "openai", {"temperature": 0.2}, True)


def test_a_vercel_call_and_its_provider() -> None:
    r = read_span(
        SpanRecord(
            "t",
            "s",
            attrs={
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.provider": "openai.responses",
                "ai.prompt.messages": '[{"role": "user", "content": "q"}]',
                "ai.response.text": "a",
            },
        )
    )
    assert (r.role, r.provider) == ("llm", "openai")  # "<provider>.<api>"
    assert (r.inputs, r.outputs) == ([Message("user", "q")], [Message("assistant", "a")])
