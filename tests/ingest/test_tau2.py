"""τ²-bench retail results: 40 simulated tool-calling conversations per file, as traces."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from evaltray.core.records import Message, ToolCall, Trace
from evaltray.core.traces import TraceStore
from evaltray.ingest import Issue, detect, ingest_files
from evaltray.ingest.tau2 import parse

DATA = Path(__file__).parent.parent / "data" / "tau2"
GPT = DATA / "tau2-bench-retail-gpt-4.1.json"
FT = DATA / "tau2-bench-retail-ft-gpt-4.1.json"


@pytest.fixture(scope="module")
def gpt() -> list[Trace]:
    return list(parse(GPT, {}))


@pytest.fixture(scope="module")
def ft() -> list[Trace]:
    return list(parse(FT, {}))


def _roles(traces: list[Trace]) -> Counter[str]:
    return Counter(m.role for t in traces for m in t.messages)


def test_counts_match_the_data_readme(gpt: list[Trace], ft: list[Trace]) -> None:
    for traces in (gpt, ft):
        assert len(traces) == 40 and all(isinstance(t, Trace) for t in traces)
        assert Counter(t.metadata["reward"] for t in traces) == {1.0: 34, 0.0: 6}
        assert Counter(t.metadata["termination_reason"] for t in traces) == {"user_stop": 40}
        assert all(t.feature == "retail" and t.source_format == "tau2" for t in traces)
    # the README's message counts, plus one system message (the policy) per trace
    assert _roles(gpt) == {"assistant": 516, "user": 290, "tool": 299, "system": 40}
    assert sum(len(t.messages) for t in gpt) == 1105 + 40
    assert _roles(ft) == {"assistant": 571, "user": 316, "tool": 292, "system": 40}
    assert sum(len(t.messages) for t in ft) == 1179 + 40
    assert sum(bool(m.tool_calls) for t in gpt for m in t.messages) == 226
    assert sum(len(m.tool_calls) for t in gpt for m in t.messages) == 299
    assert sum(bool(m.tool_calls) for t in ft for m in t.messages) == 255
    assert sum(len(m.tool_calls) for t in ft for m in t.messages) == 292
    assert sum(m.is_error for t in gpt for m in t.messages) == 12
    assert sum(m.is_error for t in ft for m in t.messages) == 23


def test_first_simulation_in_detail(gpt: list[Trace]) -> None:
    t = gpt[0]
    assert t.trace_id == "55094b9e-ef3e-42b4-8ca2-18e82cd7e7ae"
    assert t.model == "gpt-4.1"
    assert t.name == "retail task 40"
    assert t.cost_usd == 0.021688000000000002
    # agent tokens only: the user simulator's usage is not the agent's
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (32568, 377, 32945)
    assert t.latency_ms == pytest.approx(13646.436916998937)
    assert t.start_time == datetime(2025, 8, 1, 16, 16, 37, 53887, tzinfo=UTC)
    assert t.end_time == datetime(2025, 8, 1, 16, 16, 50, 700788, tzinfo=UTC)
    assert t.tools == []  # the results file has tool_defs: null
    assert t.tags == ["reward:1"]
    assert len(t.messages) == 19
    assert t.messages[0].role == "system" and t.messages[0].content.startswith("# Retail agent policy\n\n")
    assert t.messages[1] == Message(role="assistant", content="Hi! How can I help you today?")
    assert t.messages[5] == Message(
        role="assistant",
        content=None,
        tool_calls=[
            ToolCall(
                id="call_2xzbrH6DkKxcu4GnAB2Rdipb",
                name="find_user_id_by_email",
                arguments={"email": "isabella.lopez3271@example.com"},
            )
        ],
    )
    assert t.messages[6] == Message(
        role="tool",
        content="isabella_lopez_6490",
        tool_call_id="call_2xzbrH6DkKxcu4GnAB2Rdipb",
        name="find_user_id_by_email",
    )


def test_expected_behaviour_travels_in_metadata(gpt: list[Trace]) -> None:
    meta = gpt[0].metadata
    assert meta["task_id"] == "40"
    assert meta["reward"] == 1.0
    assert meta["user_cost"] == 0.007438
    assert meta["reason_for_call"].startswith("You want to know how much balance does your gift card have.")
    actions = meta["evaluation_criteria"]["actions"]
    assert [a["name"] for a in actions] == [
        "find_user_id_by_email",
        "get_user_details",
        "get_order_details",
        "modify_pending_order_payment",
    ]
    assert actions[3]["arguments"] == {"order_id": "#W4923227", "payment_method_id": "credit_card_8897086"}
    assert meta["evaluation_criteria"]["communicate_info"] == ["60", "mastercard"]
    assert meta["reward_info"]["db_check"] == {"db_match": True, "db_reward": 1.0}
    assert "task_description" not in meta  # all of its fields are null


def test_failed_task_and_tool_error(gpt: list[Trace]) -> None:
    by_id = {t.trace_id: t for t in gpt}
    failed = by_id["836083bb-b0d3-49bf-bd5b-5ca1afc1008e"]
    assert failed.metadata["task_id"] == "79"
    assert failed.metadata["reward"] == 0.0 and failed.tags == ["reward:0"]
    assert len(failed.messages) == 25
    assert failed.status == "ok"  # a failed task is a wrong answer, not a crashed run
    errored = by_id["e33bc476-16ba-463c-b43d-29300ccdc8ab"]
    (bad,) = [m for m in errored.messages if m.is_error]
    assert (bad.role, bad.content, bad.tool_call_id) == (
        "tool",
        "Error: Order not found",
        "call_vNtayzZbUqnPhXuWs2HcTVPs",
    )


def test_fine_tune_cost_is_unknown_not_free(ft: list[Trace]) -> None:
    # the harness priced the fine-tuned agent at 0.0 although it used tokens
    t = ft[0]
    assert t.trace_id == "da7bd81a-0e84-4b6d-88e6-45322fbb90d1"
    assert t.model == "ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm"
    assert t.cost_usd is None and t.metadata["agent_cost"] == 0.0
    assert (t.input_tokens, t.output_tokens) == (32149, 352)


def test_both_files_cover_the_same_tasks(gpt: list[Trace], ft: list[Trace]) -> None:
    assert {t.metadata["task_id"] for t in gpt} == {t.metadata["task_id"] for t in ft}
    assert not {t.trace_id for t in gpt} & {t.trace_id for t in ft}


def test_detect() -> None:
    # "simulations" lies past the sniffed head; the info block identifies the file
    assert detect(GPT).name == "tau2" and detect(FT).name == "tau2"


def test_driver_ingest_query_reingest(ws) -> None:
    report = ingest_files(ws, [GPT, FT])
    assert (report.ingested, report.issues) == (80, [])
    store = TraceStore(ws.traces_dir)
    totals = {}
    for model in ("gpt-4.1", "ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm"):
        (totals[model],) = store.query(
            f"model = '{model}' AND feature = 'retail'",
            columns=[
                "count(*) AS n",
                "sum(n_messages) AS messages",
                "sum(n_tool_calls) AS calls",
                "sum(n_tool_errors) AS errors",
            ],
        ).to_pylist()
    assert totals == {
        "gpt-4.1": {"n": 40, "messages": 1145, "calls": 299, "errors": 12},
        "ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm": {"n": 40, "messages": 1219, "calls": 292, "errors": 23},
    }
    row = store.get(["55094b9e-ef3e-42b4-8ca2-18e82cd7e7ae"])["55094b9e-ef3e-42b4-8ca2-18e82cd7e7ae"]
    assert row["input_text"] == (
        "That’s perfect, thank you so much! I really appreciate your help. That’s all I needed. \n\n###STOP###"
    )
    assert row["output_text"] == (
        "Your payment method for order #W4923227 has been changed to your Visa card ending in 8902. The amount "
        "previously charged to your Mastercard will be refunded within 5 to 7 business days.\n\n"
        "If you need any more assistance, feel free to ask!"
    )
    assert row["keep_reason"] == "sampled"
    assert orjson.loads(row["metadata"])["task_id"] == "40"
    again = ingest_files(ws, [GPT, FT])
    assert (again.ingested, again.skipped) == (0, 80)
    assert store.count() == 80


def test_driver_reports_a_broken_simulation_and_ingests_the_rest(ws, tmp_path: Path) -> None:
    text = GPT.read_text(encoding="utf-8")
    at = text.index('"id": "836083bb-b0d3-49bf-bd5b-5ca1afc1008e"')
    cut = text.index('"messages": [', at)
    path = tmp_path / "tau2-broken.json"
    path.write_text(text[:cut] + '"messages": null, "lost": [' + text[cut + len('"messages": [') :], encoding="utf-8")
    report = ingest_files(ws, [path])
    assert report.ingested == 39
    assert [str(i) for i in report.issues] == [
        f"{path}:27477: simulation has no 'messages' list (record 836083bb-b0d3-49bf-bd5b-5ca1afc1008e)"
    ]


def test_not_json_and_wrong_shape(tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_bytes(GPT.read_bytes()[:5000])
    (issue,) = parse(cut, {})
    assert isinstance(issue, Issue) and str(issue).startswith(f"{cut}:")
    assert "not valid JSON" in issue.reason
    other = tmp_path / "other.json"
    other.write_text('{"info": {}, "tasks": []}')
    assert [str(i) for i in parse(other, {})] == [
        f"{other}:1: expected a τ²-bench results object with a 'simulations' list"
    ]
