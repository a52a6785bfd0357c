"""τ²-bench results (``{info, tasks, simulations}``): one trace per simulated conversation.

The agent's conversation is kept whole — the domain policy as the system message, then every
assistant, user and tool message in order. Tokens and cost are the agent's only: the user side
is an LLM simulator, billed separately in ``user_cost``. The task's evaluation criteria (the
actions the benchmark's authors expect) travel in ``metadata`` as the expected behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from evaltray.core.messages import maybe_json, text_of
from evaltray.core.records import Message, ToolCall, Trace

from ._common import LineFinder, as_float, as_int, guarded, head_text, parse_time, read_json
from ._registry import Issue, register
from .openai_exchange import name_tool_results


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    if not text.startswith("{"):
        return False
    # "simulations" comes after the policy and every task, usually past the sniffed head
    return ('"simulations"' in text or '"tasks"' in text) and '"agent_info"' in text and '"environment_info"' in text


def _tool_calls(raw: Any) -> list[ToolCall]:
    calls = []
    for c in raw or []:
        if isinstance(c, dict) and c.get("name"):
            calls.append(ToolCall(id=c.get("id"), name=str(c["name"]), arguments=maybe_json(c.get("arguments"))))
    return calls


def _messages(raw: list[Any]) -> list[Message]:
    """Messages in order; a tool result's ``id`` is the id of the call it answers."""
    out: list[Message] = []
    for m in raw:
        if not isinstance(m, dict) or "role" not in m:
            continue
        role = str(m["role"])
        if role == "tool":
            out.append(
                Message(
                    role="tool",
                    content=text_of(m.get("content")),
                    tool_call_id=m.get("id"),
                    is_error=bool(m.get("error")),
                )
            )
        else:
            out.append(
                Message(role=role, content=text_of(m.get("content")), tool_calls=_tool_calls(m.get("tool_calls")))
            )
    name_tool_results(out)
    return out


def _usage(raw: list[Any]) -> tuple[int | None, int | None]:
    """Prompt and completion tokens summed over the agent's (assistant) messages."""
    inp = out = 0
    found = False
    for m in raw:
        usage = m.get("usage") if isinstance(m, dict) and m.get("role") == "assistant" else None
        if isinstance(usage, dict):
            found = True
            inp += as_int(usage.get("prompt_tokens")) or 0
            out += as_int(usage.get("completion_tokens")) or 0
    return (inp, out) if found else (None, None)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _task_meta(task: Mapping[str, Any] | None) -> dict[str, Any]:
    if not task:
        return {}
    instructions = _obj(_obj(task.get("user_scenario")).get("instructions"))
    meta: dict[str, Any] = {"evaluation_criteria": task.get("evaluation_criteria")}
    if instructions.get("reason_for_call"):
        meta["reason_for_call"] = instructions["reason_for_call"]
    description = task.get("description")
    if description and not (isinstance(description, dict) and not any(description.values())):
        meta["task_description"] = description
    return meta


def trace_from_simulation(sim: Mapping[str, Any], info: Mapping[str, Any], task: Mapping[str, Any] | None) -> Trace:
    """One trace from a τ²-bench simulation, its run's ``info`` and its task."""
    env = _obj(info.get("environment_info"))
    agent = _obj(info.get("agent_info"))
    raw = [m for m in sim.get("messages") or [] if isinstance(m, dict)]
    messages = _messages(raw)
    policy = env.get("policy")
    if policy:
        messages.insert(0, Message(role="system", content=str(policy)))
    inp, out = _usage(raw)
    cost = as_float(sim.get("agent_cost"))
    if cost == 0 and (out or 0) > 0:
        cost = None  # the harness could not price the agent's model (fine-tunes): unknown, not free
    reward_info = _obj(sim.get("reward_info"))
    duration = as_float(sim.get("duration"))
    tools = env.get("tool_defs")
    domain = env.get("domain_name")
    meta: dict[str, Any] = {
        "task_id": sim.get("task_id"),
        "reward": reward_info.get("reward"),
        "termination_reason": sim.get("termination_reason"),
        "trial": sim.get("trial"),
        "agent_cost": sim.get("agent_cost"),
        "user_cost": sim.get("user_cost"),
        "user_llm": _obj(info.get("user_info")).get("llm"),
        "reward_info": reward_info,
        **_task_meta(task),
    }
    errors = [e for m in raw for e in (m.get("errors") or [])]
    if errors:
        meta["message_errors"] = len(errors)  # the harness's own format complaints, not agent failures
    return Trace(
        trace_id=str(sim["id"]),
        source_format="tau2",
        messages=messages,
        tools=[t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else [],
        start_time=parse_time(sim.get("start_time")),
        end_time=parse_time(sim.get("end_time")),
        latency_ms=duration * 1000.0 if duration is not None else None,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out if inp is not None and out is not None else None,
        cost_usd=cost,
        model=agent.get("llm"),
        name=f"{domain} task {sim.get('task_id')}" if domain else None,
        feature=domain,
        tags=[f"reward:{reward_info['reward']:g}"] if isinstance(reward_info.get("reward"), (int, float)) else [],
        metadata=meta,
    )


@register("tau2", sniff=_sniff, priority=20)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """τ²-bench results JSON: each simulation becomes one multi-turn tool-calling trace."""
    doc = read_json(path)
    if isinstance(doc, Issue):
        yield doc
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("simulations"), list):
        yield Issue(str(path), 1, "expected a τ²-bench results object with a 'simulations' list")
        return
    info = _obj(doc.get("info"))
    tasks = {str(t.get("id")): t for t in doc.get("tasks") or [] if isinstance(t, dict)}
    finder = LineFinder(path)
    for i, sim in enumerate(doc["simulations"]):
        sid = sim.get("id") if isinstance(sim, dict) else None
        if not sid:
            yield Issue(str(path), None, f"simulation #{i + 1} has no 'id'")
            continue
        if not isinstance(sim.get("messages"), list):
            yield Issue(str(path), finder.line_of(f'"{sid}"'), "simulation has no 'messages' list", str(sid))
            continue
        yield from guarded(path, None, sid, trace_from_simulation, sim, info, tasks.get(str(sim.get("task_id"))))
