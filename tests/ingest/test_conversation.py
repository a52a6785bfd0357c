"""One conversation from model calls and tool runs (Langfuse observations, LangSmith runs), worked by hand."""

from __future__ import annotations

from evaltray.core.records import Message, ToolCall
from evaltray.ingest.conversation import (
    ToolRun,
    Turn,
    assemble_conversation,
    leaf_ids,
    prepend_system,
    same_message,
    trace_conversation,
)

Q, A = Message("user", "q"), Message("assistant", "a")


def test_leaf_ids_are_the_innermost_calls() -> None:
    # b sits inside a; c's parent x is not a call: both b and c are innermost
    assert leaf_ids(["a", "b", "c"], {"b": "a", "c": "x", "a": None, "x": None}) == (
        ["b", "c"],
        {"a": [], "b": ["a"], "c": []},
    )
    # a chain through a non-call: c inside b inside (m inside) a; ancestors nearest first
    assert leaf_ids(["a", "b", "c"], {"b": "m", "m": "a", "c": "b"}) == (["c"], {"a": [], "b": ["a"], "c": ["b", "a"]})


def test_prepend_system_only_where_there_is_none() -> None:
    assert prepend_system([Q], [Message("system", "S"), Message("user", "other")]) == [Message("system", "S"), Q]
    mine = [Message("system", "mine"), Q]
    assert prepend_system(mine, [Message("system", "S")]) == mine


def test_same_message_ignores_spacing_and_key_order() -> None:
    assert same_message(Message("assistant", "  a  b"), Message("assistant", "a b"))
    assert same_message(Message("assistant", '{"x": 1, "y": 2}'), Message("assistant", '{"y":2,"x":1}'))
    assert not same_message(Message("user", "a"), Message("assistant", "a"))


def test_trace_conversation_falls_back_on_the_traces_own_input_and_output() -> None:
    body = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]}
    assert trace_conversation([], [], body, "a") == [Message("system", "S"), Q, A]  # no model call at all
    assert trace_conversation([Turn([Q], [])], [], "q", "a") == [Q, A]  # calls logged their inputs only
    assert trace_conversation([Turn([Q, A], [])], [], "q", "a") == [Q, A]  # the answer is not repeated


def test_a_tool_run_joins_after_the_call_it_answers() -> None:
    call = Message("assistant", None, [ToolCall("c1", "weather", {"city": "Oslo"})])
    msgs = assemble_conversation(
        [Turn([Message("system", "S"), Q], [call])], [ToolRun("weather", {"city": "Oslo"}, "-3°C")]
    )
    assert msgs == [Message("system", "S"), Q, call, Message("tool", "-3°C", tool_call_id="c1", name="weather")]
    # a run no call asked for: its call is made up from the run (prefix and the {"input": …} wrapper dropped)
    assert assemble_conversation([], [ToolRun("execute_tool search", '{"input": {"q": "x"}}', "found")]) == [
        Message("assistant", None, [ToolCall(None, "search", {"q": "x"})]),
        Message("tool", "found", name="search"),
    ]
