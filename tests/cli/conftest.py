"""The ``shop`` workspace the CLI tests share: ten chats ingested, alice its admin."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from .runner import run


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run("--user", "alice", "init", "shop-bot")
    monkeypatch.chdir(tmp_path / "shop-bot")
    chats = tmp_path / "chats.jsonl"
    rows = [
        {
            "id": f"t{i}",
            "metadata": {"feature": "refunds" if i % 2 else "shipping"},
            "messages": [
                {"role": "user", "content": f"question {i}?"},
                {"role": "assistant", "content": f"answer {i}"},
            ],
        }
        for i in range(10)
    ]
    chats.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    run("ingest", str(chats))
    return tmp_path / "shop-bot"
