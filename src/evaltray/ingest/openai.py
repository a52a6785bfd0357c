"""OpenAI chat-completions JSONL: one conversation per line (``messages``, ``tools``, ``tool_calls``).

Covers the fine-tuning format and logged requests that carry the model's reply as the last
assistant message. Lines without an id get one from the hash of their content, so re-ingest is
idempotent. The driver parses big files in byte-range chunks on several processes through
:func:`chat_record`, the same function :func:`parse` uses line by line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..records import Trace
from ._common import as_float, as_int, chat_messages, content_id, head_text, maybe_json, parse_time, read_jsonl
from ._driver import line_format
from ._registry import Issue, register

_ID_KEYS = ("trace_id", "id", "custom_id", "conversation_id")


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return text.startswith("{") and '"messages"' in text.split("\n", 1)[0]


def _feedback(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else -1.0
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("up", "thumbs_up", "👍", "positive", "good", "1", "+1"):
            return 1.0
        if v in ("down", "thumbs_down", "👎", "negative", "bad", "-1", "0"):
            return -1.0
        return None
    if isinstance(value, dict):
        return _feedback(value.get("score", value.get("value", value.get("rating"))))
    return as_float(value)


def trace_from_chat(obj: dict[str, Any], fallback_id: str, fmt: str = "openai") -> Trace:
    """A trace from one chat-completions record (request messages, optional reply and metadata)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    messages = chat_messages(obj.get("messages"))
    reply = obj.get("choices") or (obj.get("response") or {}).get("choices")
    if isinstance(reply, list) and reply and isinstance(reply[0], dict):
        messages += chat_messages([reply[0].get("message")])
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
    tid = _explicit_id(obj) or fallback_id
    tags = obj.get("tags") or meta.get("tags") or []
    start = parse_time(obj.get("created_at") or obj.get("timestamp") or obj.get("created"))
    tools = maybe_json(obj.get("tools")) or []
    return Trace(
        trace_id=tid,
        source_format=fmt,
        messages=messages,
        tools=tools if isinstance(tools, list) else [],
        start_time=start,
        latency_ms=as_float(obj.get("latency_ms") or meta.get("latency_ms")),
        input_tokens=as_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=as_int(usage.get("completion_tokens", usage.get("output_tokens"))),
        total_tokens=as_int(usage.get("total_tokens")),
        cost_usd=as_float(obj.get("cost") or meta.get("cost_usd")),
        model=obj.get("model") or meta.get("model"),
        model_version=obj.get("system_fingerprint") or meta.get("model_version"),
        session_id=meta.get("session_id") or obj.get("session_id"),
        user_id=meta.get("user_id") or obj.get("user"),
        feature=meta.get("feature") or obj.get("feature"),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [str(tags)],
        feedback_score=_feedback(obj.get("feedback", meta.get("feedback"))),
        prompt_template_id=meta.get("prompt_template_id") or meta.get("prompt_id"),
        retrieved_doc_ids=[str(d) for d in meta.get("retrieved_doc_ids") or []],
        status="error" if obj.get("error") else "ok",
        error=str(obj["error"])[:500] if obj.get("error") else None,
        metadata={k: v for k, v in meta.items() if k not in ("tags",)},
    )


def _explicit_id(obj: dict[str, Any]) -> str | None:
    return next((str(obj[k]) for k in _ID_KEYS if obj.get(k)), None)


@line_format("openai")
def chat_record(obj: Any, seen: dict[str, int]) -> Trace | tuple[str, str | None]:
    """The trace of one decoded line, or ``(reason, record id)`` when it is not a chat record.

    ``seen`` counts content-derived ids, so identical id-less lines stay distinct traces.
    """
    if not isinstance(obj, dict):
        return "expected a JSON object with 'messages'", None
    tid = _explicit_id(obj)
    if not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return "no 'messages' list", tid
    return trace_from_chat(obj, tid or content_id(obj, seen, "oai"))


@register("openai", sniff=_sniff, priority=40)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """OpenAI chat-completions / fine-tuning JSONL, one conversation per line."""
    seen: dict[str, int] = {}
    for item in read_jsonl(path):
        if isinstance(item, Issue):
            yield item
            continue
        lineno, obj = item
        out = chat_record(obj, seen)
        yield Issue(str(path), lineno, *out) if isinstance(out, tuple) else out
