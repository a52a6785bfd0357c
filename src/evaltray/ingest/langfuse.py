"""Langfuse trace downloads: one ``{trace, observations}`` object per file, one Trace per Langfuse trace.

Observations nest by ``parentObservationId``; their ``input``/``output`` hold whatever the framework's
instrumentation sent (JSON-encoded strings, plain text, OpenAI/LangChain/Gemini/Anthropic/OTel-GenAI
messages, Responses API items, ``{"args", "kwargs"}`` decorator captures). Rules:

* The conversation comes from the GENERATION observations in start order. A generation that only wraps
  one other generation (agno's ``OpenAIChat.invoke`` around ``chat gpt-4o-mini``, Vercel's
  ``ai.generateText`` around ``doGenerate``) is the same model call seen twice: the pair counts once,
  taking the input and the output from whichever member renders them more completely.
* History each call resends is not repeated: a call whose input replays the conversation so far
  (as a subsequence) replaces it; otherwise only its new messages are appended. Tool results from TOOL
  observations are added after their call when no generation shows them.
* Tokens and cost are summed over the innermost generations only (wrappers repeat or re-estimate them).
* A score is user feedback when its source is not ``EVAL`` and its name says feedback/thumbs/rating;
  its value maps to [-1, 1] (see :func:`feedback_value`). All scores stay in ``metadata["scores"]``.

The message helpers here (:func:`messages_from`, :func:`assemble_conversation`, :func:`tool_definition`,
:func:`feedback_value`, :func:`leaf_ids`) are format-neutral and also used by the LangSmith parser.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.records import Message, Span, ToolCall, Trace

from ._common import (
    as_float,
    as_int,
    guarded,
    head_text,
    maybe_json,
    parse_time,
    read_json,
    read_jsonl,
    text_of,
    tool_call,
)
from ._registry import Issue, register

# --------------------------------------------------------------------------- messages, any framework

_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant", "model": "assistant",
          "bot": "assistant", "system": "system", "developer": "system", "tool": "tool", "function": "tool"}
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


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one: optional nested objects read without checks."""
    return value if isinstance(value, dict) else {}


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
        return ToolCall(id=fc.get("id"), name=str(fc["name"]), arguments=maybe_json(fc.get("args"))) if fc.get("name") else None
    if raw.get("toolName"):
        return ToolCall(id=raw.get("toolCallId"), name=str(raw["toolName"]),
                        arguments=maybe_json(raw.get("input", raw.get("args"))))
    call = tool_call(dict(raw))
    if call is not None and raw.get("call_id"):
        call.id = str(raw["call_id"])  # Responses API: "id" names the item, "call_id" links the output
    return call


def _is_call(raw: Any) -> bool:
    if not isinstance(raw, dict) or "role" in raw:
        return False
    return (isinstance(raw.get("function"), dict) and bool(raw["function"].get("name"))) or bool(raw.get("toolName")) \
        or (raw.get("type") in _CALL_PARTS and bool(raw.get("name")))


def _result(part: Mapping[str, Any]) -> Message:
    fr = part.get("functionResponse") or part.get("function_response")
    if isinstance(fr, dict):
        return Message(role="tool", content=text_of(maybe_json(fr.get("response"))), tool_call_id=fr.get("id"),
                       name=fr.get("name"))
    value = next((part[k] for k in ("content", "response", "result", "output") if k in part), None)
    cid = part.get("tool_use_id") or part.get("toolCallId") or part.get("call_id") or part.get("tool_call_id") or part.get("id")
    return Message(role="tool", content=text_of(value), tool_call_id=cid, name=part.get("name") or part.get("toolName"),
                   is_error=bool(part.get("is_error") or part.get("isError")))


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
    return a.name == b.name and _norm_value(a.arguments) == _norm_value(b.arguments)


def _tool_def_content(content: Any) -> dict[str, Any] | None:
    """Langfuse's LangChain handler lists the request's tools as ``{"role": "tool", "content": <definition>}``."""
    content = decode(content)
    if isinstance(content, dict) and content.get("type") == "function" and isinstance(content.get("function"), dict) \
            and ("parameters" in content["function"] or "description" in content["function"]):
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
        body = text[m.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)].rstrip("\n")
        out.append(Message(role=_ROLES[m.group(1)], content=None if body.strip() in ("", "None") else body))
    return out


_PAYLOAD_KEYS = ("messages", "contents", "prompt", "prompts", "input", "inputs", "new_message", "message",
                 "query", "question", "args")
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
            if isinstance(literal, dict) or (isinstance(literal, list) and literal and all(isinstance(i, dict) for i in literal)):
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
    system = next((s for s in (d.get("system"), d.get("system_instruction"), d.get("systemInstruction"), d.get("instructions"),
                               config.get("system_instruction"), config.get("systemInstruction")) if s), None)
    if system:
        out.append(Message(role="system", content=_plain_text(system)))
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


def _plain_text(value: Any) -> str | None:
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
    params = next((decode(fn[k]) for k in ("parameters", "input_schema", "inputSchema", "parameters_json_schema",
                                           "tool.json_schema", "json_schema", "args_schema") if fn.get(k)), None)
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


# --------------------------------------------------------------------------- conversation assembly


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


def _norm_text(text: str) -> str:
    """Text compared for identity: JSON/Python structures canonically, prose with whitespace collapsed."""
    # each message is compared many times while merging; cache the short ones only, to bound memory
    return _norm_short(text) if len(text) <= 4096 else _normalize(text)


@functools.lru_cache(maxsize=2048)
def _norm_short(text: str) -> str:
    return _normalize(text)


def _normalize(text: str) -> str:
    value = decode(text)
    if isinstance(value, (dict, list)):
        return _norm_value(value)
    return " ".join(str(value).split())


def _norm_value(value: Any) -> str:
    if isinstance(value, str):
        return _norm_text(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode("utf-8")
    except TypeError:
        return str(value)


def _same(a: Message, b: Message) -> bool:
    """Whether two renderings are the same message (one instrumentation may drop a call or the text)."""
    if a.role != b.role:
        return False
    if a.tool_call_id and b.tool_call_id and a.tool_call_id != b.tool_call_id:
        return False
    na, nb = [c.name for c in a.tool_calls], [c.name for c in b.tool_calls]
    if na and nb and na != nb:
        return False
    ta, tb = _norm_text(a.content or ""), _norm_text(b.content or "")
    if ta == tb:
        return True
    return (not ta or not tb) and bool(na or nb)


def _weight(m: Message) -> tuple[int, int, bool, int]:
    return len(m.tool_calls), sum(1 for c in m.tool_calls if c.id), m.tool_call_id is not None, len(m.content or "")


def _richer(a: Message, b: Message) -> Message:
    base, other = (b, a) if _weight(b) > _weight(a) else (a, b)
    return Message(role=base.role, content=base.content or other.content,
                   tool_calls=base.tool_calls or other.tool_calls, tool_call_id=base.tool_call_id or other.tool_call_id,
                   name=base.name or other.name, is_error=base.is_error or other.is_error)


def _cover(seg: list[Message], inp: list[Message]) -> list[tuple[int, int]] | None:
    """Pairs (i, j) placing every message of ``seg`` in order inside ``inp``; None if ``inp`` does not replay it."""
    pairs, j = [], 0
    for i, m in enumerate(seg):
        while j < len(inp) and not _same(m, inp[j]):
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
        while k < len(inp) and any(_same(m, inp[k]) for m in self.msgs[last:]):
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
            self.msgs.insert(end, Message(role="tool", content=run.output, tool_call_id=call.id, name=call.name,
                                          is_error=run.is_error))
            self.times.insert(end, run.start)
            return
        if run.output is None and not run.is_error:
            return
        pos = len(self.msgs)
        if run.start is not None:
            pos = next((i for i, t in enumerate(self.times) if t is not None and t > run.start), len(self.msgs))
        name = _tool_name(run.name)
        call = ToolCall(id=run.call_id, name=name, arguments=_unwrap_args(run.arguments))
        self.msgs[pos:pos] = [Message(role="assistant", tool_calls=[call]),
                              Message(role="tool", content=run.output, tool_call_id=run.call_id, name=name,
                                      is_error=run.is_error)]
        self.times[pos:pos] = [run.start, run.start]


def _tool_name(name: str) -> str:
    for prefix in ("execute_tool ", "running tool: ", "tool."):
        if name.startswith(prefix):
            return name[len(prefix):]
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
    for m in msgs[idx + 1:]:
        if m.role == "tool" and ((call.id and m.tool_call_id == call.id) or (not call.id and not m.tool_call_id and m.name == call.name)):
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
    args = _norm_value(_unwrap_args(run.arguments))
    open_ = [(i, c) for i, c in named if _answer(msgs, i, c) is None]
    for pool in (open_, named):
        hit = next(((i, c) for i, c in pool if _norm_value(c.arguments) == args), None)
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
                call = next((c for c in pending if m.name and c.name == m.name), None) or (pending[0] if pending else None)
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


# --------------------------------------------------------------------------- feedback

_FEEDBACK_NAME = re.compile(r"feedback|thumb|rating|user[-_ ]?score|satisfaction|csat", re.I)
_POSITIVE = frozenset(("up", "thumbs_up", "thumbsup", "thumbs-up", "👍", "positive", "good", "yes", "true", "helpful", "like"))
_NEGATIVE = frozenset(("down", "thumbs_down", "thumbsdown", "thumbs-down", "👎", "negative", "bad", "no", "false",
                       "unhelpful", "dislike"))


def is_feedback_name(name: Any) -> bool:
    """Whether a score/feedback key names a user's judgement (``user-feedback``, ``thumbs``, ``rating``, …)."""
    return isinstance(name, str) and bool(_FEEDBACK_NAME.search(name))


def feedback_value(value: Any) -> float | None:
    """User feedback on [-1, 1]: booleans and thumbs words to ±1, 0..1 (thumbs 1/0) linearly, 1..5 stars
    linearly, -1..0 kept; anything else None."""
    if isinstance(value, bool):
        return 1.0 if value else -1.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _POSITIVE:
            return 1.0
        if word in _NEGATIVE:
            return -1.0
    num = as_float(value)
    if num is None:
        return None
    if -1 <= num < 0:
        return num
    if 0 <= num <= 1:
        return 2 * num - 1
    if 1 < num <= 5:
        return (num - 3) / 2
    return None


# --------------------------------------------------------------------------- Langfuse

_HEAD = re.compile(r'^\[?\s*\{\s*"(trace|observations)"\s*:')


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return bool(_HEAD.match(text)) and ('"observations"' in text or '"projectId"' in text or '"traceId"' in text)


def record_line(path: Path, record_id: str, last: bool, _cache: dict[tuple, bytes] = {}) -> int | None:  # noqa: B006
    """Line of the record whose ``"id"`` is ``record_id``: the first or the last occurrence (a Langfuse export
    repeats each observation, without its payload, inside the trace before the full list)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    data = _cache.get(key)
    if data is None:
        _cache.clear()  # one file at a time: a file with many bad records is read once
        data = _cache[key] = path.read_bytes()
    hits = [m.start() for m in re.finditer(rb'"id"\s*:\s*"' + re.escape(record_id.encode("utf-8")) + rb'"', data)]
    if not hits:
        return None
    return data.count(b"\n", 0, hits[-1] if last else hits[0]) + 1


def _dict(value: Any) -> dict[str, Any]:
    value = decode(value)
    return value if isinstance(value, dict) else {}


def _attrs(obs: Mapping[str, Any]) -> dict[str, Any]:
    """An observation's metadata flattened: OTel span attributes and the user's own keys in one dict."""
    md = _dict(obs.get("metadata"))
    flat = {k: v for k, v in md.items() if k not in ("attributes", "resourceAttributes", "scope")}
    flat.update(_dict(md.get("attributes")))
    return flat


def _first(mapping: Mapping[str, Any], keys: Iterable[str]) -> Any:
    return next((mapping[k] for k in keys if mapping.get(k) not in (None, "")), None)


_PROVIDER_KEYS = ("gen_ai.provider.name", "llm.provider", "gen_ai.system", "ls_provider", "langsmith.metadata.ls_provider",
                  "ai.model.provider", "llm.system")
_RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "ai.response.model")
_CALL_ID_KEYS = ("gen_ai.tool.call.id", "ai.toolCall.id", "tool_call.id", "tool.call_id")


def _usage(obs: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    details = obs.get("usageDetails")
    if isinstance(details, dict) and details:
        return as_int(details.get("input")), as_int(details.get("output")), as_int(details.get("total"))
    usage = as_dict(obs.get("usage"))  # Langfuse v2 public API
    return (as_int(_first(obs, ("inputUsage", "promptTokens")) or usage.get("input")),
            as_int(_first(obs, ("outputUsage", "completionTokens")) or usage.get("output")),
            as_int(_first(obs, ("totalUsage", "totalTokens")) or usage.get("total")))


def _cost(obs: Mapping[str, Any]) -> float | None:
    cost = as_float(obs.get("totalCost"))
    if cost is None and isinstance(obs.get("costDetails"), dict):
        cost = as_float(obs["costDetails"].get("total"))
    return cost if cost is not None else as_float(obs.get("calculatedTotalCost"))


def sum_present(values: Iterable[float | int | None]) -> Any:
    """The sum of the values that are known; None when none is."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def round_cost(cost: float | None) -> float | None:
    """A summed USD cost without float noise (``0.000270899999000003`` → ``0.000270899999``)."""
    return None if cost is None else round(cost, 12)


def _model_version(obs: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    version = _first(attrs, _RESPONSE_MODEL_KEYS)
    if version is None:
        out = _dict(obs.get("output"))
        version = out.get("model") or out.get("model_version") or out.get("modelVersion")
    return str(version) if version else None


def _system_hint(members: list[dict[str, Any]]) -> list[Message]:
    """System instructions a call carried beside its messages (OTel ``gen_ai.system_instructions``, Responses
    ``instructions``)."""
    for obs in members:
        text = _plain_text(_attrs(obs).get("gen_ai.system_instructions"))
        if not text:
            instructions = _dict(obs.get("output")).get("instructions")
            text = instructions if isinstance(instructions, str) else None
        if text:
            return [Message(role="system", content=text)]
    return []


def observation_messages(obs: Mapping[str, Any], tools: list[dict[str, Any]] | None = None) -> tuple[list[Message], list[Message]]:
    """The messages of one observation's input and output, as they stand (no conversation context)."""
    return messages_from(obs.get("input"), "user", tools), messages_from(obs.get("output"), "assistant", tools)


def _best_input(cands: list[list[Message]]) -> list[Message]:
    return max(cands, key=len)  # max keeps the first (innermost) on ties


def _best_output(cands: list[list[Message]]) -> list[Message]:
    def weight(msgs: list[Message]) -> tuple[int, int, int]:
        return (sum(len(m.tool_calls) for m in msgs), sum(1 for m in msgs if m.content), len(msgs))
    return max(cands, key=weight)


def _tool_text(value: Any) -> str | None:
    value = maybe_json(value)
    if value is None or (isinstance(value, str) and value.strip() == "null"):
        return None  # the SDKs log a tool that returned nothing as JSON null
    return text_of(value)


_DOC_ATTR = re.compile(r"retrieval\.documents\.(\d+)\.document\.id")


def _doc_ids(obs: Mapping[str, Any], attrs: Mapping[str, Any]) -> list[str]:
    """Ids of retrieved documents: OpenInference attributes, or a RETRIEVER observation's list of documents."""
    indexed = ((int(m.group(1)), v) for k, v in attrs.items() if (m := _DOC_ATTR.fullmatch(k)) and v)
    ids = [str(v) for _, v in sorted(indexed, key=lambda kv: kv[0])]
    if obs.get("type") == "RETRIEVER":
        out = decode(obs.get("output"))
        docs = out.get("documents") if isinstance(out, dict) else out
        for doc in docs if isinstance(docs, list) else []:
            if isinstance(doc, dict):
                meta = as_dict(doc.get("metadata"))
                did = _first(doc, ("id", "doc_id", "document_id")) or _first(meta, ("id", "doc_id", "document_id", "source"))
                if did is not None:
                    ids.append(str(did))
    return ids


def _feedback(scores: Any) -> tuple[float | None, str | None]:
    """The latest user-feedback score (not an EVAL judge) mapped to [-1, 1], with its comment."""
    best: tuple[str, float, str | None] | None = None
    for s in scores if isinstance(scores, list) else []:
        if not isinstance(s, dict) or s.get("source") == "EVAL" or not is_feedback_name(s.get("name")):
            continue
        value = feedback_value(s.get("stringValue") if s.get("dataType") == "CATEGORICAL" else s.get("value"))
        stamp = str(s.get("timestamp") or s.get("createdAt") or "")
        if value is not None and (best is None or stamp >= best[0]):
            best = (stamp, value, s.get("comment") or None)
    return (best[1], best[2]) if best else (None, None)


def _score_summary(scores: Any) -> list[dict[str, Any]]:
    out = []
    for s in scores if isinstance(scores, list) else []:
        if isinstance(s, dict) and s.get("name"):
            value = s.get("stringValue") if s.get("dataType") == "CATEGORICAL" else s.get("value")
            out.append({"name": s["name"], "value": value, "source": s.get("source"), "data_type": s.get("dataType")})
    return out


def _valid_observations(raw: Any, path: Path, line: int | None) -> tuple[list[dict[str, Any]], list[Issue]]:
    good: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for n, obs in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(obs, dict):
            issues.append(Issue(str(path), line, f"observation #{n + 1} is not an object"))
        elif not obs.get("id"):
            issues.append(Issue(str(path), line, f"observation #{n + 1} has no 'id'"))
        elif parse_time(obs.get("startTime")) is None:
            where = line if line is not None else record_line(path, str(obs["id"]), last=True)
            issues.append(Issue(str(path), where, "observation has no readable startTime", str(obs["id"])))
        else:
            good.append(obs)
    return good, issues


def trace_from_export(doc: Mapping[str, Any], path: Path, line: int | None = None) -> Iterator[Trace | Issue]:
    """The Trace of one Langfuse ``{trace, observations}`` export (and an Issue per unreadable observation)."""
    tr = doc.get("trace")
    if tr is None and isinstance(doc.get("observations"), list) and doc.get("id"):
        tr = doc  # the public API's GET /api/public/traces/{id}: the trace itself, observations inside
    if not isinstance(tr, dict) or not tr.get("id"):
        yield Issue(str(path), line, "expected an object with 'trace' (having an 'id') and 'observations'")
        return
    raw_obs = doc.get("observations") if isinstance(doc.get("observations"), list) else tr.get("observations")
    observations, issues = _valid_observations(raw_obs, path, line)
    yield from issues
    yield _assemble(tr, observations)


def _export_id(doc: Mapping[str, Any]) -> str | None:
    """The trace id of an export, for naming it in an issue."""
    tr = doc.get("trace")
    tid = tr.get("id") if isinstance(tr, dict) else doc.get("id")
    return tid if isinstance(tid, str) else None


def _assemble(tr: Mapping[str, Any], observations: list[dict[str, Any]]) -> Trace:
    obs = sorted(observations, key=lambda o: (parse_time(o["startTime"]), parse_time(o.get("endTime")) or _FAR))
    by_id = {str(o["id"]): o for o in obs}
    attrs = {oid: _attrs(o) for oid, o in by_id.items()}
    parent_of = {oid: (str(o["parentObservationId"]) if o.get("parentObservationId") else None) for oid, o in by_id.items()}
    gens = [oid for oid, o in by_id.items() if o.get("type") == "GENERATION"]
    leaves, ancestors = leaf_ids(gens, parent_of)
    leaf_count: dict[str, int] = {}
    for leaf in leaves:
        for a in ancestors[leaf]:
            leaf_count[a] = leaf_count.get(a, 0) + 1

    tools: list[dict[str, Any]] = []
    turns: list[Turn] = []
    call_attrs: dict[str, dict[str, Any]] = {}
    for leaf in leaves:
        # a wrapper generation around exactly this one call renders the same call: pick the better rendering
        members = [by_id[leaf]] + [by_id[a] for a in _single_chain(ancestors[leaf], leaf_count)]
        call_attrs[leaf] = {k: v for m in reversed(members) for k, v in attrs[str(m["id"])].items() if v not in (None, "")}
        rendered = [observation_messages(m, tools) for m in members]
        inputs = prepend_system(_best_input([r[0] for r in rendered]), _system_hint(members))
        turns.append(Turn(inputs, _best_output([r[1] for r in rendered]),
                          parse_time(by_id[leaf]["startTime"]), parse_time(by_id[leaf].get("endTime"))))
    for oid, o in by_id.items():
        oattrs = attrs[oid]
        for key in ("gen_ai.tool.definitions", "llm.tools", "ai.prompt.tools", "tools"):
            collect_tools(oattrs.get(key), tools)
        collect_tools([v for k, v in sorted(oattrs.items()) if re.fullmatch(r"llm\.tools\.\d+\.tool\.json_schema", k)], tools)
        mrp = _dict(oattrs.get("model_request_parameters"))
        collect_tools((mrp.get("function_tools") or []) + (mrp.get("output_tools") or []), tools)
        collect_tools(o.get("toolDefinitions"), tools)

    tool_runs = []
    for oid, o in by_id.items():
        if o.get("type") == "TOOL":
            failed = o.get("level") == "ERROR"
            output = _tool_text(o.get("output"))
            tool_runs.append(ToolRun(name=str(o.get("name") or ""), arguments=decode(o.get("input")),
                                     output=output if output is not None or not failed else o.get("statusMessage"),
                                     is_error=failed, call_id=_first(attrs[oid], _CALL_ID_KEYS),
                                     start=parse_time(o["startTime"])))
    messages = assemble_conversation(turns, tool_runs)
    if not turns:
        messages = messages_from(tr.get("input"), "user") + messages_from(tr.get("output"), "assistant")
    elif not any(t.outputs for t in turns):
        final = messages_from(tr.get("output"), "assistant")  # e.g. BeeAI logs the calls' inputs only
        if final and not (messages and _same(messages[-1], final[-1])):
            messages += final
    messages = prepend_system(messages, messages_from(tr.get("input"), "user"))

    leaf_obs = [by_id[x] for x in leaves]
    usage = [_usage(o) for o in leaf_obs]
    modelled = [o for o in leaf_obs if o.get("model")]
    last = modelled[-1] if modelled else None
    last_attrs = call_attrs[str(last["id"])] if last else {}
    failed = [o for o in obs if o.get("level") == "ERROR"]
    starts = [t for t in (parse_time(o["startTime"]) for o in obs) if t is not None]
    ends = [t for t in (parse_time(o.get("endTime")) for o in obs) if t is not None]
    start = parse_time(tr.get("timestamp")) or (min(starts) if starts else None)
    end = max(ends) if ends else None
    latency = as_float(tr.get("latency"))
    if latency is None and starts and end is not None:
        latency = (end - min(starts)).total_seconds()  # Langfuse's own definition: first start to last end
    feedback, comment = _feedback(tr.get("scores"))
    prompt = next((o for o in obs if o.get("promptName")), None)
    doc_ids = list(dict.fromkeys(d for oid, o in by_id.items() for d in _doc_ids(o, attrs[oid])))
    trace_attrs = _attrs(tr)
    return Trace(
        trace_id=str(tr["id"]),
        source_format="langfuse",
        messages=messages,
        tools=unique_tools(tools),
        start_time=start,
        end_time=end,
        latency_ms=round(latency * 1000, 3) if latency is not None else None,
        input_tokens=sum_present(u[0] for u in usage),
        output_tokens=sum_present(u[1] for u in usage),
        total_tokens=sum_present(u[2] for u in usage),
        cost_usd=round_cost(sum_present(_cost(o) for o in leaf_obs)),
        model=str(last["model"]) if last else None,
        model_version=_model_version(last, last_attrs) if last else None,
        provider=str(p).lower() if (p := _first(last_attrs, _PROVIDER_KEYS)) else None,
        session_id=tr.get("sessionId") or _first(trace_attrs, ("session.id", "session_id")),
        user_id=tr.get("userId") or _first(trace_attrs, ("user.id", "user_id")),
        name=tr.get("name"),
        tags=[str(t) for t in tr.get("tags") or []],
        feedback_score=feedback,
        feedback_comment=comment,
        prompt_template_id=(f"{prompt['promptName']}:{prompt['promptVersion']}" if prompt and prompt.get("promptVersion")
                            else prompt["promptName"] if prompt else None),
        retrieved_doc_ids=doc_ids,
        status="error" if failed else "ok",
        error=(f"{failed[0].get('name')}: {failed[0].get('statusMessage') or 'failed'}"[:500]) if failed else None,
        spans=[_span(o) for o in obs],
        metadata=_metadata(tr, obs, modelled),
    )


def _single_chain(ancestors: list[str], leaf_count: Mapping[str, int]) -> list[str]:
    chain = []
    for a in ancestors:
        if leaf_count.get(a, 0) != 1:
            break
        chain.append(a)
    return chain


def _span(o: Mapping[str, Any]) -> Span:
    level = o.get("level")
    return Span(id=str(o["id"]), parent_id=str(o["parentObservationId"]) if o.get("parentObservationId") else None,
                name=o.get("name"), kind=o.get("type"), start_time=parse_time(o.get("startTime")),
                end_time=parse_time(o.get("endTime")),
                status="error" if level == "ERROR" else "warning" if level == "WARNING" else "ok", model=o.get("model"))


def _metadata(tr: Mapping[str, Any], obs: list[dict[str, Any]], modelled: list[dict[str, Any]]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: tr[k] for k in ("environment", "release", "version") if tr.get(k)}
    user_meta = {k: v for k, v in _dict(tr.get("metadata")).items() if k not in ("attributes", "resourceAttributes", "scope")}
    if user_meta:
        meta["trace_metadata"] = user_meta
    scores = _score_summary(tr.get("scores"))
    if scores:
        meta["scores"] = scores
    models = list(dict.fromkeys(str(o["model"]) for o in modelled))
    if len(models) > 1:
        meta["models"] = models
    scopes = list(dict.fromkeys(str(s) for o in obs if (s := _dict(_dict(o.get("metadata")).get("scope")).get("name"))))
    if scopes:
        meta["instrumentation"] = scopes
    meta["observations"] = len(obs)
    return meta


@register("langfuse", sniff=_sniff, priority=15)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """Langfuse trace downloads ({trace, observations}); a JSON array of them or JSONL also works."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for item in read_jsonl(path):
            if isinstance(item, Issue):
                yield item
            elif isinstance(item[1], dict):
                yield from guarded(path, item[0], _export_id(item[1]), trace_from_export, item[1], path, item[0])
            else:
                yield Issue(str(path), item[0], "expected an object with 'trace' and 'observations'")
        return
    doc = read_json(path)
    if isinstance(doc, Issue):
        yield doc
        return
    for item in doc if isinstance(doc, list) else [doc]:
        if isinstance(item, dict):
            yield from guarded(path, None, _export_id(item), trace_from_export, item, path)
        else:
            yield Issue(str(path), None, "expected an object with 'trace' and 'observations'")
