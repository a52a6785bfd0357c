"""Messages and tool definitions from a model call's input or output, whatever framework logged it: OpenAI,
LangChain, Gemini, Anthropic, OTel-GenAI and Responses API shapes, JSON-encoded strings, Python literal
reprs, ``role: text`` transcripts and ``{"args", "kwargs"}`` decorator captures (:func:`messages_from`).

Langfuse observations and LangSmith runs both record such payloads.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from evaltray.core.messages import maybe_json, text_of, tool_call
from evaltray.core.records import Message, ToolCall

from ._common import as_dict

_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
_BASE_ROLES = frozenset(("user", "assistant", "system", "tool"))
_TEXT_PARTS = frozenset(("text", "output_text", "input_text"))
_CALL_PARTS = frozenset(("tool_use", "tool_call", "tool-call", "function_call"))
_RESULT_PARTS = frozenset(("tool_result", "tool_call_response", "tool-result", "function_call_output"))
_MEDIA_PARTS = frozenset(("image_url", "image", "input_image", "input_audio", "audio", "file", "blob", "document"))
#: "role: text" transcripts (autogen, the OpenAI instrumentation of agno) start each message on a new line.
_TRANSCRIPT = re.compile(r"^(system|developer|user|human|assistant|ai|tool|function):[ \t]?", re.M)
#: A Python object repr in a message list (agno's ``role='user' content='…' name=None …``): not a message text.
_PY_REPR = re.compile(r"^[A-Za-z_]\w*=('[^']*'|None|-?\d+) [A-Za-z_]\w*=")
_MAX_LITERAL = 2_000_000


def _role(name: Any) -> str | None:
    """The base role for a role, LangChain type or LangChain class name (``AIMessageChunk``)."""
    if not isinstance(name, str) or not name:
        return None
    return _ROLES.get(re.sub(r"Message(Chunk)?$", "", name).lower())


def decode(value: Any, literal: bool = True) -> Any:
    """A JSON-encoded string (even twice) or, with ``literal``, a Python literal repr decoded; else unchanged."""
    value = maybe_json(value)
    if literal and isinstance(value, str):
        text = value.strip()
        if text[:2] in ("{'", "['", "[{", "[(", "('") and len(text) < _MAX_LITERAL:
            try:
                return ast.literal_eval(text)
            # literal_eval raises several types on text that merely looks like a literal
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return value
    return value


@dataclass(slots=True)
class _Content:
    texts: list[str]
    calls: list[ToolCall]
    results: list[Message]


def _call(raw: Mapping[str, Any]) -> ToolCall | None:
    """A tool call from a Gemini part, a Vercel AI SDK call, a Responses item or an OpenAI/Anthropic call."""
    fc = raw.get("functionCall") or raw.get("function_call")
    if isinstance(fc, dict):
        return (
            ToolCall(id=fc.get("id"), name=str(fc["name"]), arguments=maybe_json(fc.get("args")))
            if fc.get("name")
            else None
        )
    if raw.get("toolName"):
        return ToolCall(
            id=raw.get("toolCallId"), name=str(raw["toolName"]), arguments=maybe_json(raw.get("input", raw.get("args")))
        )
    call = tool_call(dict(raw))
    if call is not None and raw.get("call_id"):
        call.id = str(raw["call_id"])  # Responses API: "id" names the item, "call_id" links the output
    return call


def _is_call(raw: Any) -> bool:
    if not isinstance(raw, dict) or "role" in raw:
        return False
    return (
        (isinstance(raw.get("function"), dict) and bool(raw["function"].get("name")))
        or bool(raw.get("toolName"))
        or (raw.get("type") in _CALL_PARTS and bool(raw.get("name")))
    )


def _result(part: Mapping[str, Any]) -> Message:
    fr = part.get("functionResponse") or part.get("function_response")
    if isinstance(fr, dict):
        return Message(
            role="tool", content=text_of(maybe_json(fr.get("response"))), tool_call_id=fr.get("id"), name=fr.get("name")
        )
    value = next((part[k] for k in ("content", "response", "result", "output") if k in part), None)
    cid = (
        part.get("tool_use_id")
        or part.get("toolCallId")
        or part.get("call_id")
        or part.get("tool_call_id")
        or part.get("id")
    )
    return Message(
        role="tool",
        content=text_of(value),
        tool_call_id=cid,
        name=part.get("name") or part.get("toolName"),
        is_error=bool(part.get("is_error") or part.get("isError")),
    )


def _is_part(raw: Any) -> bool:
    if not isinstance(raw, dict) or "role" in raw:
        return False
    ptype = raw.get("type")
    if isinstance(ptype, str):
        return ptype in _TEXT_PARTS or ptype in _CALL_PARTS or ptype in _RESULT_PARTS or ptype in _MEDIA_PARTS
    return any(k in raw for k in ("functionCall", "function_call", "functionResponse", "function_response"))


def _parse_content(content: Any, out: _Content) -> None:
    if content is None:
        return
    if isinstance(content, str):
        decoded = decode(content)
        # only structured *message content* is unpacked; a tool result that happens to be JSON stays text
        if isinstance(decoded, list) and decoded and all(_is_part(p) or _is_call(p) for p in decoded):
            _parse_content(decoded, out)
        elif content:
            out.texts.append(content)
        return
    for part in content if isinstance(content, list) else [content]:
        _parse_part(part, out)


def _parse_part(part: Any, out: _Content) -> None:
    if isinstance(part, str):
        if part:
            out.texts.append(part)
        return
    if not isinstance(part, dict):
        if part is not None:
            out.texts.append(str(part))
        return
    ptype = str(part.get("type") or "")
    if "reasoning" in ptype.lower() or "thinking" in ptype.lower():
        return  # hidden reasoning is not part of the conversation a reviewer labels
    if ptype in _TEXT_PARTS or (not ptype and isinstance(part.get("text"), str)):
        text = text_of(part.get("text", part.get("content")))
        if text:
            out.texts.append(text)
    elif ptype in _RESULT_PARTS or "functionResponse" in part or "function_response" in part:
        out.results.append(_result(part))
    elif ptype in _CALL_PARTS or _is_call(part) or "functionCall" in part or "function_call" in part:
        call = _call(part)
        if call is not None:
            out.calls.append(call)
    else:
        text = text_of(part)
        if text:
            out.texts.append(text)


def _calls_of(d: Mapping[str, Any]) -> list[ToolCall]:
    """Calls listed beside the content: ``tool_calls``, LangChain ``additional_kwargs``, legacy ``function_call``."""
    raws: list[Any] = []
    for src in (d, as_dict(d.get("additional_kwargs"))):
        raws += src.get("tool_calls") or []
        if isinstance(src.get("function_call"), dict):
            raws.append(src["function_call"])
    calls: list[ToolCall] = []
    for raw in raws:
        call = _call(raw) if isinstance(raw, dict) else None
        if call is not None and not any(_same_call(call, c) for c in calls):
            calls.append(call)
    return calls


def _same_call(a: ToolCall, b: ToolCall) -> bool:
    if a.id and b.id:
        return a.id == b.id
    return a.name == b.name and norm_value(a.arguments) == norm_value(b.arguments)


def _tool_def_content(content: Any) -> dict[str, Any] | None:
    """Langfuse's LangChain handler lists the request's tools as ``{"role": "tool", "content": <definition>}``."""
    content = decode(content)
    if (
        isinstance(content, dict)
        and content.get("type") == "function"
        and isinstance(content.get("function"), dict)
        and ("parameters" in content["function"] or "description" in content["function"])
    ):
        return tool_definition(content)
    return None


def _message(d: Mapping[str, Any], tools: list[dict[str, Any]] | None) -> list[Message] | None:
    """Messages from one message-shaped dict (usually one, several for bundled tool results); None if not a message."""
    if d.get("lc") == 1 and isinstance(d.get("id"), list) and d["id"] and isinstance(d.get("kwargs"), dict):
        kw = d["kwargs"]
        role = _role(str(d["id"][-1])) or _role(kw.get("role"))
        return None if role is None else _build(role, kw, tools)
    kind = d.get("type")
    if kind == "function_call":
        call = _call(d)
        return [Message(role="assistant", tool_calls=[call])] if call else []
    if kind == "function_call_output":
        return [Message(role="tool", content=text_of(d.get("output")), tool_call_id=d.get("call_id"))]
    if kind == "reasoning":
        return []
    raw_role = d.get("role")
    if isinstance(raw_role, str) and raw_role:
        role = _role(raw_role) or raw_role.lower()
    elif isinstance(kind, str) and _role(kind) and ("content" in d or "tool_calls" in d):
        role = _role(kind) or ""  # a LangChain message dict: its class is in "type"
    elif isinstance(d.get("parts"), list):
        role = "user"  # Gemini content without a role is the user's
    else:
        return None
    return _build(role, d, tools)


def _build(role: str, d: Mapping[str, Any], tools: list[dict[str, Any]] | None) -> list[Message]:
    content = next((d[k] for k in ("content", "parts", "text") if k in d), None)
    if role == "tool":
        tdef = _tool_def_content(content)
        if tdef is not None:
            if tools is not None:
                tools.append(tdef)
            return []
    parsed = _Content([], [], [])
    _parse_content(content, parsed)
    calls = list(parsed.calls)
    for call in _calls_of(d):
        if not any(_same_call(call, c) for c in calls):
            calls.append(call)
    text = "\n".join(parsed.texts) if parsed.texts else None
    is_error = bool(d.get("is_error") or d.get("error") or d.get("status") == "error")
    if role == "tool":
        if calls and not parsed.results:
            return [Message(role="assistant", content=text, tool_calls=calls)]  # koog logs its calls as tool messages
        if parsed.results and text is None:
            return parsed.results
        cid = d.get("tool_call_id") or d.get("tool_use_id") or d.get("call_id")
        return [Message(role="tool", content=text, tool_call_id=cid, name=d.get("name"), is_error=is_error)]
    msgs = list(parsed.results)
    if text is not None or calls or not msgs:
        msgs.append(Message(role=role, content=text, tool_calls=calls))
    return msgs


def _transcript(text: str) -> list[Message] | None:
    """``system: …\\nuser: …`` text split into messages; None when the text does not start with a role."""
    if not _TRANSCRIPT.match(text):
        return None
    marks = list(_TRANSCRIPT.finditer(text))
    out = []
    for i, m in enumerate(marks):
        body = text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)].rstrip("\n")
        out.append(Message(role=_ROLES[m.group(1)], content=None if body.strip() in ("", "None") else body))
    return out


_PAYLOAD_KEYS = (
    "messages",
    "contents",
    "prompt",
    "prompts",
    "input",
    "inputs",
    "new_message",
    "message",
    "query",
    "question",
    "args",
)
_ANSWER_KEYS = ("content", "output", "answer", "response", "result", "text")


def messages_from(payload: Any, default_role: str = "user", tools: list[dict[str, Any]] | None = None) -> list[Message]:
    """Messages from a model call's input or output in any common shape; text without a role gets ``default_role``.

    Tool definitions met on the way (request ``tools``, LangChain's tool messages) are appended to ``tools``.
    """
    out = _payload(payload, default_role, tools, 0)
    _name_tool_roles(out)
    return out


def _payload(value: Any, role: str, tools: list[dict[str, Any]] | None, depth: int) -> list[Message]:
    if value is None or depth > 8:
        return []
    if isinstance(value, str):
        decoded = decode(value, literal=False)
        if isinstance(decoded, str):
            # a Python repr counts only as a structure (BeeAI's "{'role': 'assistant', 'text': …}"), never
            # as a list of strings, which a question like "['a', 'b'] — which is longer?" would become
            literal = decode(decoded)
            if isinstance(literal, dict) or (
                isinstance(literal, list) and literal and all(isinstance(i, dict) for i in literal)
            ):
                decoded = literal
        if not isinstance(decoded, str):
            return _payload(decoded, role, tools, depth + 1)
        transcript = _transcript(decoded)
        if transcript is not None:
            return transcript
        return [Message(role=role, content=decoded)] if decoded.strip() else []
    if isinstance(value, list):
        return _payload_list(value, role, tools, depth)
    if isinstance(value, dict):
        return _payload_dict(value, role, tools, depth)
    return [Message(role=role, content=str(value))]


def _payload_list(items: list[Any], role: str, tools: list[dict[str, Any]] | None, depth: int) -> list[Message]:
    if not items:
        return []
    if all(isinstance(i, list) for i in items):
        return _payload(items[0], role, tools, depth + 1)  # LangChain batches: [[messages of prompt 1], …]
    if all(_is_call(i) for i in items):
        calls = [c for c in (_call(i) for i in items) if c is not None]
        return [Message(role="assistant", tool_calls=calls)] if calls else []
    if all(_is_part(i) for i in items):
        return _build(role, {"content": items}, tools)
    out: list[Message] = []
    for item in items:
        if isinstance(item, dict):
            msgs = _message(item, tools)
            if msgs is None:
                continue  # a record that is not a message (a search hit, a document) says nothing about the chat
            if item.get("type") == "function_call" and out and out[-1].role == "assistant" and msgs:
                out[-1].tool_calls.extend(msgs[0].tool_calls)  # parallel Responses calls form one assistant turn
                continue
            out += msgs
        elif not (isinstance(item, str) and _PY_REPR.match(item)):
            out += _payload(item, role, tools, depth + 1)
    return out


def _payload_dict(d: dict[str, Any], role: str, tools: list[dict[str, Any]] | None, depth: int) -> list[Message]:
    msgs = _message(d, tools)
    if msgs is not None:
        return msgs
    if isinstance(d.get("choices"), list):  # chat completion (or a chunk put back together)
        choice = d["choices"][0] if d["choices"] else None
        if isinstance(choice, dict):
            inner = choice.get("message") or choice.get("delta")
            if isinstance(inner, dict):
                return _payload(inner, "assistant", tools, depth + 1)
            if isinstance(choice.get("text"), str):
                return [Message(role="assistant", content=choice["text"])]
        return []
    if d.get("object") == "response" and isinstance(d.get("output"), list):  # OpenAI Responses API
        collect_tools(d.get("tools"), tools)
        return _payload(d["output"], "assistant", tools, depth + 1)
    if isinstance(d.get("candidates"), list):  # Gemini GenerateContentResponse
        cand = d["candidates"][0] if d["candidates"] else None
        return _payload(cand.get("content"), "assistant", tools, depth + 1) if isinstance(cand, dict) else []
    if isinstance(d.get("generations"), list):  # LangChain LLMResult
        gen = d["generations"][0] if d["generations"] else None
        gen = gen[0] if isinstance(gen, list) and gen else gen
        if isinstance(gen, dict):
            if isinstance(gen.get("message"), dict):
                return _payload(gen["message"], "assistant", tools, depth + 1)
            return [Message(role="assistant", content=text_of(gen.get("text")))] if gen.get("text") else []
        return []
    out: list[Message] = []
    config = as_dict(d.get("config"))
    system = next(
        (
            s
            for s in (
                d.get("system"),
                d.get("system_instruction"),
                d.get("systemInstruction"),
                d.get("instructions"),
                config.get("system_instruction"),
                config.get("systemInstruction"),
            )
            if s
        ),
        None,
    )
    if system:
        out.append(Message(role="system", content=plain_text(system)))
    collect_tools(d.get("tools"), tools)
    collect_tools(config.get("tools"), tools)
    # a role-less {"content": …} is an answer on the output side, but ambiguous as an input
    keys = _PAYLOAD_KEYS + (_ANSWER_KEYS if role == "assistant" else ())
    if isinstance(d.get("chat_history"), list):  # LangChain agents: {"input": …, "chat_history": [...]}
        out += _payload(d["chat_history"], role, tools, depth + 1)
    for key in keys:
        if d.get(key) is not None:
            found = _payload(d[key], role, tools, depth + 1)
            if found:
                return out + found
    if isinstance(d.get("kwargs"), dict):
        return out + _payload(d["kwargs"], role, tools, depth + 1)
    return out


def plain_text(value: Any) -> str | None:
    """The text parts of a content (structured or encoded), joined by newlines; None without any."""
    parsed = _Content([], [], [])
    _parse_content(decode(value), parsed)
    return "\n".join(parsed.texts) if parsed.texts else None


def _name_tool_roles(msgs: list[Message]) -> None:
    """A message whose role is a tool's name (LangChain.js via Langfuse) is that tool's result."""
    called: set[str] = set()
    for m in msgs:
        called.update(c.name for c in m.tool_calls)
        if m.role not in _BASE_ROLES and m.role in called:
            m.role, m.name = "tool", m.role


def norm_text(text: str) -> str:
    """Text compared for identity: JSON/Python structures canonically, prose with whitespace collapsed."""
    # each message is compared many times while merging; cache the short ones only, to bound memory
    return _norm_short(text) if len(text) <= 4096 else _normalize(text)


@functools.lru_cache(maxsize=2048)
def _norm_short(text: str) -> str:
    return _normalize(text)


def _normalize(text: str) -> str:
    value = decode(text)
    if isinstance(value, (dict, list)):
        return norm_value(value)
    return " ".join(str(value).split())


def norm_value(value: Any) -> str:
    """A value compared for identity: text as :func:`norm_text`, anything else as canonical JSON."""
    if isinstance(value, str):
        return norm_text(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode("utf-8")
    except TypeError:
        return str(value)


# --------------------------------------------------------------------------- tool definitions


def tool_definition(raw: Any, name: str | None = None) -> dict[str, Any] | None:
    """One tool definition in the OpenAI function-tool shape, from OpenAI, flat, Anthropic, OpenInference or
    pydantic-ai spellings; None when ``raw`` names no tool."""
    raw = decode(raw)
    if not isinstance(raw, dict):
        return None
    fn: dict[str, Any] = raw["function"] if isinstance(raw.get("function"), dict) else raw
    fname = fn.get("name") or fn.get("tool.name") or name
    if not fname:
        return None
    out: dict[str, Any] = {"name": str(fname)}
    desc = fn.get("description") or fn.get("tool.description")
    if desc:
        out["description"] = desc
    params = next(
        (
            decode(fn[k])
            for k in (
                "parameters",
                "input_schema",
                "inputSchema",
                "parameters_json_schema",
                "tool.json_schema",
                "json_schema",
                "args_schema",
            )
            if fn.get(k)
        ),
        None,
    )
    if isinstance(params, dict):
        out["parameters"] = params
    return {"type": "function", "function": out}


def collect_tools(raw: Any, sink: list[dict[str, Any]] | None) -> None:
    """Append to ``sink`` every tool definition in ``raw`` (a list, a Gemini ``function_declarations`` block,
    a name → definition map or one definition)."""
    if sink is None or raw is None:
        return
    raw = decode(raw)
    if isinstance(raw, dict):
        decls = raw.get("function_declarations") or raw.get("functionDeclarations")
        if isinstance(decls, list):
            collect_tools(decls, sink)
            return
        tdef = tool_definition(raw)
        if tdef is not None:
            sink.append(tdef)
        else:  # a name → definition map (Langfuse's toolDefinitions column)
            sink.extend(t for t in (tool_definition(v, str(k)) for k, v in raw.items()) if t is not None)
        return
    if isinstance(raw, list):
        for item in raw:
            collect_tools(item, sink)


def unique_tools(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions once per name, in first-seen order; a later, fuller definition replaces a bare name."""
    out: dict[str, dict[str, Any]] = {}
    for t in tools:
        name = t["function"]["name"]
        if name not in out or len(t["function"]) > len(out[name]["function"]):
            out[name] = t
    return list(out.values())
