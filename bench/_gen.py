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


# --------------------------------------------------------------------------- templated support traffic

_OPENINGS = ("", "Hi, ", "Hello, ", "Hey there, ", "Good morning, ", "Hi team, ")
_CLOSINGS = ("", " Thanks.", " Thank you!", " Please help.", " Regards, {name}.", " Cheers, {name}")
_BODIES = (
    "my order {order} has not arrived yet, it was due on {date}.",
    "I was charged {amount} twice for order {order}.",
    "can I get a refund of {amount} for the {product} in order {order}?",
    "the {product} I bought on {date} stopped working after {days} days.",
    "please cancel order {order}, I ordered the {product} by mistake.",
    "I want to return the {product} from order {order}, it is the wrong size.",
    "where is my package? Tracking says order {order} left the warehouse on {date}.",
    "my name is {name} and I cannot log in to my account since {date}.",
    "the {product} costs {amount} on your site but I paid more in order {order}.",
    "I need an invoice for order {order} placed by {name} on {date}.",
    "can you change the delivery address for order {order}? It should go to {name}.",
    "the discount code did not work, I paid {amount} for the {product}.",
    "how long does a refund take? I returned the {product} {days} days ago.",
    "order {order} arrived damaged, the {product} box was crushed.",
    "I received {days} items but ordered only one {product} in order {order}.",
    "is the {product} back in stock? I have been waiting {days} days.",
    "{name} here, my payment of {amount} failed but the money left my account.",
    "please update the phone number on my account, order {order} is under {name}.",
    "why was my order {order} split into {days} deliveries?",
    "I would like to upgrade my {product} order {order} to express shipping.",
    "the warranty for my {product} bought on {date} should cover this.",
    "I was promised a callback on {date} about order {order} and nobody called.",
    "can I pay the {amount} for order {order} in instalments?",
    "my {product} from order {order} is missing the charger.",
    "I got an email about order {order} but I never ordered a {product}.",
)
_NAMES = tuple(
    f"{first} {last}"
    for first in ("Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kofi", "Lena")
    for last in ("Smith", "Garcia", "Nguyen", "Okafor", "Rossi", "Schmidt", "Tanaka", "Dubois", "Kowalski", "Silva")
)
_PRODUCTS = (
    "headphones", "blender", "phone case", "laptop stand", "coffee maker", "desk lamp", "backpack", "smart watch",
    "vacuum cleaner", "keyboard", "monitor", "office chair", "air fryer", "kettle", "router", "printer",
)  # fmt: skip
_PRICES = ("$19.99", "$24.50", "$49.00", "$89.99", "$129.00", "$249.99")


def templated_texts(n: int, seed: int = 0, placeholders: float = 0.5) -> list[str]:
    """``n`` support messages from 25 x 6 x 6 = 900 templates with slot fills (deterministic per seed).

    Slots: a 7-digit order number, a name (a share of them already scrubbed to ``<PERSON_1>``), a date,
    a product, a price from a short catalogue and a small count of days. Real support traffic looks like
    this: a few hundred templates asked thousands of times each, so naive LSH buckets grow huge.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name = "<PERSON_1>" if rng.random() < placeholders else rng.choice(_NAMES)
        text = rng.choice(_OPENINGS) + rng.choice(_BODIES) + rng.choice(_CLOSINGS)
        out.append(
            text.format(
                name=name,
                order=rng.randint(10**6, 10**7 - 1),
                date=f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                product=rng.choice(_PRODUCTS),
                amount=rng.choice(_PRICES),
                days=rng.randint(2, 9),
            )
        )
    return out
