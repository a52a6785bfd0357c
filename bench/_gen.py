"""Synthetic but realistic OpenAI chat-completions JSONL for the ingest benchmark."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

FEATURES = ["refunds", "shipping", "returns", "account", "billing", "warranty"]
TOOLS = [{"type": "function", "function": {"name": n, "description": f"{n} tool",
                                            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}
         for n in ("get_order", "refund_order", "track_shipment")]
SYSTEM = "You are a helpful customer-support assistant for an online shop. Follow the refund policy strictly."


def write_chats(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` chat lines; a third of them call a tool. Returns the file size in bytes."""
    rng = random.Random(seed)
    with path.open("wb") as fh:
        for i in range(n):
            feature = FEATURES[i % len(FEATURES)]
            user = f"Hi, my order {rng.randint(10**6, 10**7)} about {feature} has a problem, what can you do? ({i})"
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            if i % 3 == 0:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_{i}", "type": "function",
                     "function": {"name": "get_order", "arguments": orjson.dumps({"order_id": str(i)}).decode()}}]})
                msgs.append({"role": "tool", "tool_call_id": f"call_{i}", "content": '{"status": "shipped"}'})
            msgs.append({"role": "assistant", "content": f"I'm sorry about that. Your {feature} request {i} is being handled."})
            row = {"id": f"chat-{i}", "model": "gpt-4o-mini", "messages": msgs, "tools": TOOLS if i % 3 == 0 else [],
                   "usage": {"prompt_tokens": rng.randint(50, 900), "completion_tokens": rng.randint(5, 300)},
                   "metadata": {"feature": feature, "session_id": f"s{i // 4}", "latency_ms": rng.lognormvariate(6, 0.6)}}
            fh.write(orjson.dumps(row) + b"\n")
    return path.stat().st_size
