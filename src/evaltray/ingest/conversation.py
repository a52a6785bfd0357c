"""One conversation from many model calls and tool runs: history each call resends is not repeated, a wrapper
call and the call it wraps count once, and tool results seen only as runs join after their call
(:func:`assemble_conversation`). Langfuse observations and LangSmith runs are both read this way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evaltray.core.records import Message, ToolCall

from .chat_payloads import decode, messages_from, norm_text, norm_value

_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass(slots=True)
class Turn:
    """One model call: the messages it was sent and the messages it answered."""

    inputs: list[Message]
    outputs: list[Message]
    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True)
class ToolRun:
    """One tool execution recorded beside the model calls (a Langfuse TOOL observation, a LangSmith tool run)."""

    name: str
    arguments: Any
    output: str | None
    is_error: bool = False
    call_id: str | None = None
    start: datetime | None = None


def same_message(a: Message, b: Message) -> bool:
    """Whether two renderings are the same message (one instrumentation may drop a call or the text)."""
    if a.role != b.role:
        return False
    if a.tool_call_id and b.tool_call_id and a.tool_call_id != b.tool_call_id:
        return False
    na, nb = [c.name for c in a.tool_calls], [c.name for c in b.tool_calls]
    if na and nb and na != nb:
        return False
    ta, tb = norm_text(a.content or ""), norm_text(b.content or "")
    if ta == tb:
        return True
    return (not ta or not tb) and bool(na or nb)


def _weight(m: Message) -> tuple[int, int, bool, int]:
    return len(m.tool_calls), sum(1 for c in m.tool_calls if c.id), m.tool_call_id is not None, len(m.content or "")


def _richer(a: Message, b: Message) -> Message:
    base, other = (b, a) if _weight(b) > _weight(a) else (a, b)
    return Message(
        role=base.role,
        content=base.content or other.content,
        tool_calls=base.tool_calls or other.tool_calls,
        tool_call_id=base.tool_call_id or other.tool_call_id,
        name=base.name or other.name,
        is_error=base.is_error or other.is_error,
    )


def _cover(seg: list[Message], inp: list[Message]) -> list[tuple[int, int]] | None:
    """Pairs (i, j) placing every message of ``seg`` in order inside ``inp``; None if ``inp`` does not replay it."""
    pairs, j = [], 0
    for i, m in enumerate(seg):
        while j < len(inp) and not same_message(m, inp[j]):
            j += 1
        if j == len(inp):
            return None
        pairs.append((i, j))
        j += 1
    return pairs


class _Conversation:
    """Messages with the time each entered, merged call by call."""

    def __init__(self) -> None:
        self.msgs: list[Message] = []
        self.times: list[datetime | None] = []
        self.segments = [0]  # where each independent conversation (a second agent) starts

    def merge_input(self, inp: list[Message], when: datetime | None) -> None:
        if not inp:
            return
        for s in self.segments:  # earliest first: a full history replaces everything it replays
            pairs = _cover(self.msgs[s:], inp)
            if pairs is not None:
                merged, times = list(inp), [when] * len(inp)
                for i, j in pairs:
                    merged[j], times[j] = _richer(self.msgs[s + i], inp[j]), self.times[s + i]
                self.msgs[s:], self.times[s:] = merged, times
                self.segments = [x for x in self.segments if x <= s]
                return
        last, k = self.segments[-1], 0
        while k < len(inp) and any(same_message(m, inp[k]) for m in self.msgs[last:]):
            k += 1  # the part of the history this call does show is already here
        if k == 0:
            self.segments.append(len(self.msgs))
        self.add(inp[k:], when)

    def add(self, msgs: list[Message], when: datetime | None) -> None:
        self.msgs += msgs
        self.times += [when] * len(msgs)

    def add_tool_run(self, run: ToolRun) -> None:
        found = _find_call(self.msgs, run)
        if found is not None:
            idx, call = found
            answer = _answer(self.msgs, idx, call)
            if answer is not None:
                answer.is_error = answer.is_error or run.is_error
                return
            if run.output is None and not run.is_error:
                return
            end = idx + 1
            while end < len(self.msgs) and self.msgs[end].role == "tool":
                end += 1
            self.msgs.insert(
                end,
                Message(role="tool", content=run.output, tool_call_id=call.id, name=call.name, is_error=run.is_error),
            )
            self.times.insert(end, run.start)
            return
        if run.output is None and not run.is_error:
            return
        pos = len(self.msgs)
        if run.start is not None:
            pos = next((i for i, t in enumerate(self.times) if t is not None and t > run.start), len(self.msgs))
        name = _tool_name(run.name)
        call = ToolCall(id=run.call_id, name=name, arguments=_unwrap_args(run.arguments))
        self.msgs[pos:pos] = [
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", content=run.output, tool_call_id=run.call_id, name=name, is_error=run.is_error),
        ]
        self.times[pos:pos] = [run.start, run.start]


def _tool_name(name: str) -> str:
    for prefix in ("execute_tool ", "running tool: ", "tool."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _bare(name: str) -> str:
    """A tool's own name without its namespace (``mcp__weather__get_weather`` → ``get_weather``)."""
    return re.split(r"__|[ .:/]", name)[-1]


def _unwrap_args(args: Any) -> Any:
    args = decode(args)
    if isinstance(args, dict) and len(args) == 1 and isinstance(args.get("input"), dict):
        return args["input"]
    if isinstance(args, dict) and set(args) <= {"args", "kwargs"} and not args.get("args"):
        return args.get("kwargs")
    return args


def _answer(msgs: list[Message], idx: int, call: ToolCall) -> Message | None:
    for m in msgs[idx + 1 :]:
        if m.role == "tool" and (
            (call.id and m.tool_call_id == call.id) or (not call.id and not m.tool_call_id and m.name == call.name)
        ):
            return m
    return None


def _find_call(msgs: list[Message], run: ToolRun) -> tuple[int, ToolCall] | None:
    calls = [(i, c) for i, m in enumerate(msgs) if m.role == "assistant" for c in m.tool_calls]
    if run.call_id:
        hit = next(((i, c) for i, c in calls if c.id == run.call_id), None)
        if hit is not None:
            return hit
    name = _bare(_tool_name(run.name))
    named = [(i, c) for i, c in calls if name and _bare(c.name) == name]
    args = norm_value(_unwrap_args(run.arguments))
    open_ = [(i, c) for i, c in named if _answer(msgs, i, c) is None]
    for pool in (open_, named):
        hit = next(((i, c) for i, c in pool if norm_value(c.arguments) == args), None)
        if hit is not None:
            return hit
    # a call of that name exists but the run matches none still open: its result is already in the chat
    return open_[0] if open_ else (named[0] if named else None)


def link_tool_results(msgs: list[Message]) -> None:
    """Give each tool result the id and name of the call it answers (by id, else by name, else by position)."""
    pending: list[ToolCall] = []
    by_id: dict[str, ToolCall] = {}
    for m in msgs:
        if m.role == "assistant" and m.tool_calls:
            pending = list(m.tool_calls)
            by_id.update({c.id: c for c in m.tool_calls if c.id})
        elif m.role == "tool":
            call = by_id.get(m.tool_call_id) if m.tool_call_id else None
            if call is None and not m.tool_call_id:
                call = next((c for c in pending if m.name and c.name == m.name), None) or (
                    pending[0] if pending else None
                )
                if call is not None:
                    m.tool_call_id = call.id
            if call is not None:
                if call in pending:
                    pending.remove(call)
                m.name = m.name or call.name
        else:
            pending = []


def assemble_conversation(turns: Iterable[Turn], tool_runs: Iterable[ToolRun] = ()) -> list[Message]:
    """One message list from model calls in order (history not repeated) plus tool results seen only as runs."""
    conv = _Conversation()
    for turn in turns:
        conv.merge_input(turn.inputs, turn.start)
        conv.add(turn.outputs, turn.end or turn.start)
    link_tool_results(conv.msgs)
    for run in sorted(tool_runs, key=lambda r: r.start or _FAR):
        conv.add_tool_run(run)
    link_tool_results(conv.msgs)
    return conv.msgs


def prepend_system(msgs: list[Message], candidates: list[Message]) -> list[Message]:
    """``msgs`` with the leading system messages of ``candidates`` in front, when it has none of its own."""
    if any(m.role == "system" for m in msgs):
        return msgs
    lead = []
    for m in candidates:
        if m.role != "system":
            break
        lead.append(m)
    return lead + msgs


def trace_conversation(
    turns: list[Turn], tool_runs: Iterable[ToolRun], trace_input: Any, trace_output: Any
) -> list[Message]:
    """A trace's conversation: its model calls' (:func:`assemble_conversation`); without any call, the trace's own
    input and output; where the calls logged only their inputs, the trace's output as the answer (once). The
    system prompt of the trace's input leads where the conversation has none."""
    messages = assemble_conversation(turns, tool_runs)
    if not turns:
        messages = messages_from(trace_input, "user") + messages_from(trace_output, "assistant")
    elif not any(t.outputs for t in turns):
        final = messages_from(trace_output, "assistant")  # e.g. BeeAI logs the calls' inputs only
        if final and not (messages and same_message(messages[-1], final[-1])):
            messages += final
    return prepend_system(messages, messages_from(trace_input, "user"))


def leaf_ids(ids: Iterable[str], parent_of: Mapping[str, str | None]) -> tuple[list[str], dict[str, list[str]]]:
    """The ids in ``ids`` with no descendant in ``ids``, and for each id its ancestors that are in ``ids``
    (nearest first): the innermost model calls when instrumentations nest one call inside another."""
    members = list(ids)
    wanted = set(members)
    ancestors: dict[str, list[str]] = {}
    for node in members:
        chain, seen, cur = [], {node}, parent_of.get(node)
        while cur is not None and cur not in seen:
            seen.add(cur)
            if cur in wanted:
                chain.append(cur)
            cur = parent_of.get(cur)
        ancestors[node] = chain
    inner = {a for chain in ancestors.values() for a in chain}
    return [n for n in members if n not in inner], ancestors
