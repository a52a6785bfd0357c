"""Synthetic but realistic OpenAI chat-completions JSONL for the ingest benchmark (deterministic per seed).

Each line is one logged request with the model's reply, as a request logger writes it: ``id``,
``created``, ``model``, ``messages``, ``usage`` and ``metadata``. One conversation in three calls a
tool (one in twelve calls two at once) and carries the tool definitions; one in six is a follow-up
turn; one in twenty sends its question as content parts; some have feedback, a failed tool or an
error, as production traffic does.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

FEATURES = ["refunds", "shipping", "returns", "account", "billing", "warranty"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": n,
            "description": f"{n} tool",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    for n in ("get_order", "refund_order", "track_shipment")
]
SYSTEM = "You are a helpful customer-support assistant for an online shop. Follow the refund policy strictly."
OPENERS = ["I'm sorry about that.", "Thanks for reaching out.", "I can help with that.", "Let me check."]
DETAILS = [
    "It usually takes 3-5 business days.",
    "You will get an email confirmation shortly.",
    "The refund goes back to your original payment method.",
    "Your tracking link is in your account page.",
]


def _call(i: int, k: int, name: str) -> dict:
    return {
        "id": f"call_{i}_{k}",
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps({"order_id": str(i)}).decode()},
    }


def write_chats(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` chat lines. Returns the file size in bytes."""
    rng = random.Random(seed)
    with path.open("wb") as fh:
        for i in range(n):
            feature = FEATURES[i % len(FEATURES)]
            user = f"Hi, my order {rng.randint(10**6, 10**7)} about {feature} has a problem, what can you do? ({i})"
            content: object = [{"type": "text", "text": user}] if i % 20 == 7 else user
            msgs: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
            if i % 6 == 5:  # a follow-up turn: the earlier exchange is part of the request
                msgs += [
                    {"role": "assistant", "content": f"{rng.choice(OPENERS)} Could you confirm the order number?"},
                    {"role": "user", "content": f"Yes, it is {rng.randint(10**6, 10**7)}."},
                ]
            if i % 3 == 0:
                calls = [_call(i, 0, "get_order")] + ([_call(i, 1, "track_shipment")] if i % 12 == 0 else [])
                msgs.append({"role": "assistant", "content": None, "tool_calls": calls})
                for c in calls:
                    result = {"role": "tool", "tool_call_id": c["id"], "content": '{"status": "shipped"}'}
                    if i % 50 == 3:  # the tool failed
                        result.update(content='{"error": "order service timed out"}', is_error=True)
                    msgs.append(result)
            reply = f"{rng.choice(OPENERS)} Your {feature} request {i} is being handled. {rng.choice(DETAILS)}"
            meta: dict = {
                "feature": feature,
                "session_id": f"s{i // 4}",
                "user_id": f"u{i % 9973}",
                "latency_ms": rng.lognormvariate(6, 0.6),
            }
            if i % 10 == 4:
                meta["feedback"] = "down" if rng.random() < 0.3 else "up"
            row: dict = {
                "id": f"chat-{i}",
                "created": 1_731_000_000 + i * 3,
                "model": "gpt-4o-mini",
                "messages": msgs,
                "tools": TOOLS if i % 3 == 0 else [],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": rng.randint(50, 900), "completion_tokens": rng.randint(5, 300)},
                "metadata": meta,
            }
            if i % 100 == 42:
                row["error"] = "upstream timeout after 30s"
            fh.write(orjson.dumps(row) + b"\n")
    return path.stat().st_size
