"""``evaltray user passwd``, ``user token``/``tokens``/``revoke-token`` and ``serve``, through click's runner."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evaltray.core.store import Workspace
from evaltray.tray import candidates as pool
from evaltray.web import accounts
from evaltray.web.otlp import OFF
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


@contextlib.contextmanager
def _serving(shop: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``evaltray serve`` on ``shop`` in a process of its own, once it answers: its address and the process
    (stopped on leaving, its output left to read)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "from evaltray.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-w", str(shop), "serve", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a worker process imports the whole app before it answers
        while True:
            try:
                httpx.get(f"{base}/login", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_serves_the_workspace_until_stopped(shop):
    with _serving(shop, "--json") as (base, proc):
        r = httpx.get(f"{base}/login", timeout=10)
        assert r.status_code == 200 and "<h1>Sign in</h1>" in r.text
    out, err = proc.communicate(timeout=20)
    assert json.loads(out) == {"url": f"{base}/"}
    assert "No user has a web password yet: an admin runs `evaltray user passwd NAME`" in err.decode()


def test_serve_with_several_workers_keeps_sessions_and_leaves_otlp_to_receive(shop):
    """Every request on a new connection, so the workers share them out: a session made by one is honoured by
    all, its CSRF token too, and a draft saved by one is what the others read."""
    run("-u", "alice", "user", "passwd", "lab", "--password-stdin", input="a long enough secret\n")
    ws = Workspace.open(shop)
    try:
        cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Where is my parcel?"}])
    finally:
        ws.close()
    with _serving(shop, "--workers", "2") as (base, proc):
        token = httpx.get(f"{base}/login").cookies["evaltray_login_csrf"]
        form = {"name": "lab", "password": "a long enough secret", "csrf": token}
        signed_in = httpx.post(f"{base}/login", data=form, cookies={"evaltray_login_csrf": token})
        cookies = {"evaltray_session": signed_in.cookies["evaltray_session"]}
        pages = [httpx.get(f"{base}/queue/{cid}", cookies=cookies) for _ in range(6)]
        assert {p.status_code for p in pages} == {200}
        csrf = pages[0].text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        for i in range(6):
            saved = httpx.post(
                f"{base}/queue/{cid}/draft", data={"csrf": csrf, "critique": f"note {i}"}, cookies=cookies
            )
            assert saved.status_code == 204
            assert f"note {i}" in httpx.get(f"{base}/queue/{cid}", cookies=cookies).text
        refused = httpx.post(f"{base}/queue/{cid}/draft", data={"csrf": "wrong", "critique": "x"}, cookies=cookies)
        assert refused.status_code == 403
        otlp = httpx.post(f"{base}/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"})
        assert otlp.status_code == 404 and otlp.json()["message"] == OFF
