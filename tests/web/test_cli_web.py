"""``evaltray user passwd``, ``user token``/``tokens``/``revoke-token`` and ``serve``, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaltray.core.store import Workspace
from evaltray.web import accounts
from tests.cli.runner import run


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run("--user", "alice", "init", "shop")
    monkeypatch.chdir(tmp_path / "shop")
    run("--user", "alice", "user", "add", "lab", "--role", "labeler")
    return tmp_path / "shop"


def test_an_admin_sets_a_password_that_signs_in(shop):
    r = run("-u", "alice", "user", "passwd", "lab", "--password-stdin", input="a long enough secret\n")
    assert r.stdout == "password set for lab\n"
    ws = Workspace.open(shop)
    try:
        _, actor = accounts.sign_in(ws, "lab", "a long enough secret")
        assert (actor.name, actor.role.value) == ("lab", "labeler")
        with pytest.raises(accounts.SignInError):
            accounts.sign_in(ws, "lab", "a long enough secret\n")
    finally:
        ws.close()


def test_the_password_prompt_asks_twice_and_a_mismatch_sets_nothing(shop):
    r = run("-u", "alice", "user", "passwd", "lab", input="first password x\nsecond password\n", ok=False)
    assert r.exit_code == 1 and "Error: The two entered values do not match." in r.stderr
    run("-u", "alice", "user", "passwd", "lab", input="the same password\nthe same password\n")
    ws = Workspace.open(shop)
    try:
        assert accounts.sign_in(ws, "lab", "the same password")[1].name == "lab"
    finally:
        ws.close()


def test_a_labeler_cannot_set_passwords_and_is_refused_before_the_prompt(shop):
    r = run("-u", "lab", "user", "passwd", "lab", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: user 'lab' is a labeler; setting passwords needs one of: admin\n")


def test_tokens_are_made_listed_and_revoked_by_an_admin(shop):
    made = json.loads(run("-u", "alice", "user", "token", "lab", "--label", "CI", "--json").stdout)
    assert made["name"] == "lab" and made["token"].startswith("evt_")
    listed = json.loads(run("-u", "alice", "user", "tokens", "--json").stdout)
    assert [(t["id"], t["name"], t["label"], t["revoked_at"]) for t in listed] == [(made["id"], "lab", "CI", None)]
    assert made["token"] not in run("-u", "alice", "user", "tokens").stdout
    r = run("-u", "lab", "user", "token", "lab", ok=False)
    assert r.stderr == "Error: user 'lab' is a labeler; making API tokens needs one of: admin\n"
    assert run("-u", "alice", "user", "revoke-token", str(made["id"])).stdout == f"token {made['id']} revoked\n"
    r = run("-u", "alice", "user", "revoke-token", str(made["id"]), ok=False)
    assert r.stderr == f"Error: no live API token {made['id']}\n"


def test_serve_refuses_a_port_out_of_range(shop):
    r = run("serve", "--port", "70000", ok=False)
    assert r.exit_code == 1 and "70000 is not in the range 1<=x<=65535" in r.stderr


def test_serve_serves_the_workspace_until_stopped(shop, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "from evaltray.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-w", str(shop), "serve", "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        assert r.status_code == 200 and "<h1>Sign in</h1>" in r.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert json.loads(out) == {"url": f"http://127.0.0.1:{port}/"}
    assert "No user has a web password yet: an admin runs `evaltray user passwd NAME`" in err.decode()
