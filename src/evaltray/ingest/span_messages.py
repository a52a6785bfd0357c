"""The messages and tool definitions a span carries, in every convention in use: GenAI ``parts`` (and the
older indexed and event forms), OpenInference's indexed ``llm.input_messages``, the Vercel AI SDK's
``ai.prompt``/``ai.response``, OpenAI chat dicts, request bodies and bare text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from evaltray.core.messages import chat_message, maybe_json, text_of
from evaltray.core.records import Message, ToolCall

from ._common import as_dict, first_value
from .spans import SpanEvent

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "function": "tool",
    "ipython": "tool",
}
_CALL_PARTS = ("tool_call", "tool-call", "tool_use", "function_call")
_RESULT_PARTS = ("tool_call_response", "tool-result", "tool_result", "function_call_output")
_MEDIA_PARTS = ("blob", "file", "uri", "image", "image_url", "input_image", "input_audio", "audio")
_TEXT_PARTS = ("text", "input_text", "output_text")
_HIDDEN_PARTS = ("reasoning", "thinking", "redacted_thinking")  # the model's scratchpad, not what the user saw


def _role(value: Any, default: str) -> str:
    role = str(value or default).lower()
    return _ROLES.get(role, role)


def result_text(value: Any) -> str | None:
    """A tool result as text: strings as they are (a JSON-encoded string decoded once), else JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        decoded = maybe_json(value)
        return decoded if isinstance(decoded, str) else value
    if isinstance(value, dict) and set(value) <= {"type", "value"} and "value" in value:
        return result_text(value["value"])  # Vercel v5 tool output: {type: "text" | "json", value}
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return text_of(value)
    return orjson.dumps(value).decode("utf-8")


def _call_from_part(part: dict[str, Any]) -> ToolCall | None:
    name = part.get("name") or part.get("toolName")
    if not name:
        return None
    args = next((part[k] for k in ("arguments", "input", "args") if k in part), None)
    cid = part.get("id") or part.get("toolCallId") or part.get("call_id")
    return ToolCall(id=cid, name=str(name), arguments=maybe_json(args))


def _parts_message(role: str, parts: list[Any], raw: dict[str, Any]) -> list[Message]:
    """Messages from a GenAI ``parts`` list (also Vercel/Anthropic content parts with tool calls)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                texts.append(text)
        elif kind in _CALL_PARTS:
            call = _call_from_part(part)
            if call is not None:
                calls.append(call)
        elif kind in _RESULT_PARTS:
            value = next((part[k] for k in ("response", "output", "result", "content") if k in part), None)
            results.append(
                Message(
                    role="tool",
                    content=result_text(value),
                    tool_call_id=part.get("id")
                    or part.get("toolCallId")
                    or part.get("tool_use_id")
                    or part.get("call_id"),
                    name=part.get("toolName") or part.get("name"),
                    is_error=bool(part.get("is_error") or part.get("isError")),
                )
            )
        elif kind in _MEDIA_PARTS:
            texts.append(f"[{part.get('modality') or kind}]")
        # reasoning and server-side tool parts are left out: the user never saw them
    content = "\n".join(texts) if texts else None
    if role == "tool":
        return results or [
            Message(
                role="tool",
                content=content,
                name=raw.get("name"),
                tool_call_id=raw.get("tool_call_id") or raw.get("id"),
            )
        ]
    if content is None and not calls:
        return results or [Message(role=role)]
    msg = Message(role=role, content=content, tool_calls=calls)
    # a user turn that carries tool results (Anthropic style) answers them first, then speaks
    return [msg, *results] if role == "assistant" else [*results, msg]


def message_list(raw: dict[str, Any], default_role: str = "user") -> list[Message]:
    """Messages from one chat-message dict of any convention (one dict may hold several tool results)."""
    role = _role(raw.get("role"), default_role)
    parts = raw.get("parts")
    content = raw.get("content")
    if (
        not isinstance(parts, list)
        and isinstance(content, list)
        and any(isinstance(p, dict) and p.get("type") in _CALL_PARTS + _RESULT_PARTS for p in content)
    ):
        parts = content
    if isinstance(parts, list):
        return _parts_message(role, parts, raw)
    fixed = dict(raw, role=role)
    if isinstance(content, list):
        fixed["content"] = [p for p in content if not (isinstance(p, dict) and p.get("type") in _HIDDEN_PARTS)]
    if isinstance(fixed.get("tool_calls"), str):
        fixed["tool_calls"] = maybe_json(fixed["tool_calls"])
    if role == "tool":
        fixed["tool_call_id"] = raw.get("tool_call_id") or raw.get("id")
        fixed["content"] = result_text(fixed.get("content"))
    msg = chat_message(fixed)
    return [msg] if msg is not None else []


def messages_from(raw: Any, default_role: str = "user") -> list[Message]:
    """Messages from any chat payload: GenAI ``parts`` lists, OpenAI or Vercel chat dicts, a request
    body with ``messages``, ``{"prompt"}``, ``@observe``'s ``{"args", "kwargs"}``, or bare text."""
    raw = maybe_json(raw)
    if raw is None or raw == "" or raw == [] or raw == {}:
        return []
    if isinstance(raw, str):
        return [Message(role=default_role, content=raw)]
    if isinstance(raw, list):
        out: list[Message] = []
        for item in raw:
            if isinstance(item, dict) and ("role" in item or "parts" in item):
                out += message_list(item, default_role)
            elif isinstance(item, str):
                out.append(Message(role=default_role, content=item))
        return out
    if not isinstance(raw, dict):
        return [Message(role=default_role, content=str(raw))]
    if "role" in raw or "parts" in raw:
        return message_list(raw, default_role)
    if isinstance(raw.get("messages"), list | str):
        system = messages_from(raw.get("system"), "system") if isinstance(raw.get("system"), str) else []
        return system + messages_from(raw["messages"], default_role)
    if "prompt" in raw:  # Vercel ai.prompt {"system"?, "prompt"}
        system = messages_from(raw.get("system"), "system") if isinstance(raw.get("system"), str) else []
        return system + messages_from(raw["prompt"], default_role)
    choices = raw.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return messages_from(choices[0].get("message") or choices[0].get("text"), "assistant")
    if set(raw) <= {"args", "kwargs"}:  # Langfuse @observe records a call's arguments
        args, kwargs = raw.get("args") or [], raw.get("kwargs") or {}
        if len(args) == 1 and not kwargs and isinstance(args[0], str):
            return [Message(role=default_role, content=args[0])]
    for key in ("text", "content", "output", "answer", "completion", "response", "input", "query", "question"):
        if isinstance(raw.get(key), str):
            return [Message(role=default_role, content=raw[key])]
    return [Message(role=default_role, content=orjson.dumps(raw).decode("utf-8"))]


def system_messages(raw: Any) -> list[Message]:
    """``gen_ai.system_instructions``: a bare list of parts (or text), not a list of messages."""
    raw = maybe_json(raw)
    if isinstance(raw, list) and all(isinstance(p, dict) and "role" not in p for p in raw):
        return [m for m in _parts_message("system", raw, {}) if m.content]
    return messages_from(raw, "system")


def io_messages(a: Mapping[str, Any], key: str, default_role: str) -> list[Message]:
    """OpenInference ``input.value``/``output.value`` (or a bare ``input``): text stays text."""
    value = first_value(a, f"{key}.value", key)
    if isinstance(value, str) and a.get(f"{key}.mime_type") == "text/plain":
        return [Message(role=default_role, content=value)]
    return messages_from(value, default_role)


#: A span's attribute keys by their first two dotted segments, in order (see :func:`dotted_groups`).
Groups = dict[str, list[str]]


def dotted_groups(attrs: Mapping[str, Any]) -> Groups:
    """``attrs``' keys by their first two dotted segments (``"gen_ai.prompt."``: its keys), in their order: one
    pass over a span's attributes, after which :func:`unflatten` of a prefix of two segments or more reads only
    the keys that can start with it (most of a span's prefixes have none)."""
    groups: Groups = {}
    for key in attrs:
        second = key.find(".", key.find(".") + 1)
        if second > 0:
            head = key[: second + 1]
            keys = groups.get(head)
            if keys is None:
                groups[head] = [key]
            else:
                keys.append(key)
    return groups


@lru_cache(maxsize=256)
def _head(prefix: str) -> str | None:
    """``prefix`` up to its second ".": every key that starts with ``prefix`` has that head (None with fewer)."""
    second = prefix.find(".", prefix.find(".") + 1)
    return prefix[: second + 1] if second > 0 else None


def unflatten(attrs: Mapping[str, Any], prefix: str, groups: Groups | None = None) -> Any:
    """The nested value of dotted keys under ``prefix``; numeric segments become list positions
    (``llm.input_messages.0.message.role`` → ``[{"message": {"role": …}}]``). ``groups``: ``attrs``'
    :func:`dotted_groups`, so only the keys of the prefix's group are read."""
    head = _head(prefix) if groups is not None else None
    keys: Iterable[str] = attrs if head is None or groups is None else groups.get(head, ())
    root: dict[str, Any] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        value = attrs[key]
        segments = key[len(prefix) :].split(".")
        node = root
        for seg in segments[:-1]:
            nxt = node.get(seg)
            if not isinstance(nxt, dict):
                nxt = node[seg] = {}
            node = nxt
        node.setdefault(segments[-1], value)
    return _listify(root) if root else None


def _listify(node: dict[str, Any]) -> Any:
    conv = {k: _listify(v) if isinstance(v, dict) else v for k, v in node.items()}
    if conv and all(map(str.isdigit, conv)):
        return [conv[k] for k in sorted(conv, key=int)]
    return conv


def _oi_message(item: dict[str, Any], default_role: str) -> list[Message]:
    """An OpenInference ``message`` (role, content or contents, tool_calls, tool_call_id, name)."""
    m = as_dict(item.get("message")) or item
    role = _role(m.get("role"), default_role)
    content = m.get("content")
    if content is None and isinstance(m.get("contents"), list):
        texts = []
        for c in m["contents"]:
            mc = as_dict(as_dict(c).get("message_content", c))
            if mc.get("type", "text") == "text" and isinstance(mc.get("text"), str):
                texts.append(mc["text"])
            elif mc.get("type"):
                texts.append(f"[{mc['type']}]")
        content = "\n".join(texts) if texts else None
    calls = []
    for raw in m.get("tool_calls") or []:
        tc = as_dict(as_dict(raw).get("tool_call", raw))
        fn = as_dict(tc.get("function"))
        name = fn.get("name") or tc.get("name")
        if name:
            calls.append(ToolCall(id=tc.get("id"), name=str(name), arguments=maybe_json(fn.get("arguments"))))
    if role == "tool":
        content = result_text(content)
    return [
        Message(
            role=role,
            content=text_of(content),
            tool_calls=calls,
            tool_call_id=m.get("tool_call_id"),
            name=m.get("name") if role == "tool" else None,
        )
    ]


def indexed_messages(
    attrs: Mapping[str, Any], prefix: str, default_role: str = "user", groups: Groups | None = None
) -> list[Message]:
    """Messages flattened into indexed attributes: OpenInference ``llm.input_messages.N.message.*``
    or the older GenAI/OpenLLMetry ``gen_ai.prompt.N.role`` form (``groups``: as :func:`unflatten` takes)."""
    items = unflatten(attrs, prefix, groups)
    out: list[Message] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("message"), dict):
            out += _oi_message(item, default_role)
        elif "role" in item or "content" in item or "tool_calls" in item:
            out += message_list({"role": default_role, **item}, default_role)
    return out


def event_messages(events: Iterable[SpanEvent]) -> tuple[list[Message], list[Message]]:
    """Input and output messages carried by GenAI events (span events or log records)."""
    inputs: list[Message] = []
    outputs: list[Message] = []
    for ev in events:
        if ev.name == "gen_ai.content.prompt":
            inputs += messages_from(ev.attrs.get("gen_ai.prompt"))
            continue
        if ev.name == "gen_ai.content.completion":
            outputs += messages_from(ev.attrs.get("gen_ai.completion"), "assistant")
            continue
        if not (ev.name.startswith("gen_ai.") and (ev.name.endswith(".message") or ev.name == "gen_ai.choice")):
            continue
        payload = ev.body
        if payload is None:
            payload = maybe_json(ev.attrs.get("gen_ai.event.content"))
        if payload is None:
            payload = {k: v for k, v in ev.attrs.items() if not k.startswith("gen_ai.")}
        if isinstance(payload, str):
            payload = {"content": payload}
        if not isinstance(payload, dict):
            continue
        if ev.name == "gen_ai.choice":
            msg = as_dict(payload.get("message")) or payload
            outputs += message_list({k: v for k, v in msg.items() if k not in ("index", "finish_reason")}, "assistant")
        else:
            role = ev.name.removeprefix("gen_ai.").removesuffix(".message")
            inputs += message_list({**payload, "role": payload.get("role") or role}, role)
    return inputs, outputs


def vercel_output(a: Mapping[str, Any]) -> list[Message]:
    """The Vercel AI SDK's answer: ``ai.response.text`` and its tool calls, or a generated object."""
    calls = []
    for c in maybe_json(a.get("ai.response.toolCalls")) or []:
        if isinstance(c, dict) and (c.get("toolName") or c.get("name")):
            calls.append(_call_from_part(c))
    text = a.get("ai.response.text")
    if text or calls:
        return [Message(role="assistant", content=text or None, tool_calls=[c for c in calls if c])]
    obj = a.get("ai.response.object")
    if obj is not None:
        return [Message(role="assistant", content=obj if isinstance(obj, str) else orjson.dumps(obj).decode())]
    return []


# --------------------------------------------------------------------------- tools


def openai_tool(raw: Any) -> dict[str, Any] | None:
    """A tool definition in OpenAI's function-tool shape when it is a function; other tools as given."""
    raw = maybe_json(raw)
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("function"), dict):
        return raw
    if "name" not in raw or raw.get("type", "function") != "function":
        return raw
    params = next(
        (
            maybe_json(raw[k])
            for k in ("parameters", "inputSchema", "input_schema", "json_schema")
            if raw.get(k) is not None
        ),
        None,
    )
    fn = {"name": raw["name"], "description": raw.get("description"), "parameters": params}
    return {"type": "function", "function": {k: v for k, v in fn.items() if v is not None}}


def tool_name(tool: dict[str, Any]) -> str:
    """The name a tool definition gives its tool (its JSON where it names none)."""
    fn = tool.get("function")
    return str(fn.get("name") if isinstance(fn, dict) else tool.get("name") or orjson.dumps(tool).decode())


def span_tools(a: Mapping[str, Any], groups: Groups | None = None) -> list[dict[str, Any]]:
    """The tool definitions a span's attributes list, in OpenAI's function-tool shape (``groups``: as
    :func:`unflatten` takes)."""
    raw: list[Any] = []
    defs = maybe_json(a.get("gen_ai.tool.definitions"))
    if isinstance(defs, list):
        raw += defs
    for item in unflatten(a, "llm.tools.", groups) or []:  # OpenInference: llm.tools.N.tool.json_schema
        if isinstance(item, dict):
            raw.append(as_dict(item.get("tool")).get("json_schema") if "tool" in item else item)
    functions = unflatten(a, "llm.request.functions.", groups) or []  # OpenLLMetry < 0.40
    raw += [f for f in functions if isinstance(f, dict)]
    vercel = maybe_json(a.get("ai.prompt.tools"))
    if isinstance(vercel, list):
        raw += vercel
    for key in ("langfuse.observation.input", "input.value", "input"):
        body = maybe_json(a.get(key))
        if isinstance(body, dict) and isinstance(body.get("tools"), list):
            raw += body["tools"]
            break
    return [t for t in (openai_tool(r) for r in raw) if t is not None]
