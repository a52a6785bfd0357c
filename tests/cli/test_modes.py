"""File modes through the real CLI: data files (the tray's ``sets/*/cases.jsonl``, meant for git and teammates,
the plan, exports) follow the umask; secrets (the vault key, the vault, the pseudonym key) are 0600 whatever
the umask; release snapshots are 0444."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson

from .runner import ADD_PAYPAL_CASE, run


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_follow_the_umask_and_secrets_are_0600(tmp_path: Path, monkeypatch) -> None:
    key = tmp_path / "keys" / "vault.key"
    with umask(0o022):
        run("--user", "alice", "init", "ws")
        ws = tmp_path / "ws"
        monkeypatch.chdir(ws)
        run(*ADD_PAYPAL_CASE)
        run("promote")
        run("plan", "init", "--feature", "payments")
        run("release", "create", "1.0.0")
        run("export", "1.0.0", "--to", "jsonl", "-o", str(tmp_path / "out.jsonl"))
        data = [ws / "sets" / "main" / "cases.jsonl", ws / "plan.yaml", tmp_path / "out.jsonl"]
        assert {str(p.relative_to(tmp_path)): _mode(p) for p in data} == dict.fromkeys(
            ["ws/sets/main/cases.jsonl", "ws/plan.yaml", "out.jsonl"], 0o644
        )
        assert _mode(ws / "releases" / "1.0.0.json") == 0o444
    with umask(0o002):  # a group-writable umask: the tray file is rewritten group-writable, as git would
        run("cases", "add", *ADD_PAYPAL_CASE[2:4], "--input", "Can I pay by card?", *ADD_PAYPAL_CASE[6:])
        run("promote")
        assert _mode(ws / "sets" / "main" / "cases.jsonl") == 0o664
    with umask(0):  # the loosest umask: secrets are still created 0600
        run("vault", "keygen", str(key))
        settings = ws / "evaltray.toml"
        settings.write_text(settings.read_text().replace("# vault_key = ", f'vault_key = "{key}" #'))
        chats = tmp_path / "chats.jsonl"
        row = {"id": "t1", "messages": [{"role": "user", "content": "Mail me at ana.lima@example.com"}]}
        chats.write_bytes(orjson.dumps(row) + b"\n")
        run("ingest", str(chats))
        secrets = [key, ws / ".evaltray" / "vault.jsonl", ws / ".evaltray" / "pseudonym.key"]
        assert [_mode(p) for p in secrets] == [0o600, 0o600, 0o600]
