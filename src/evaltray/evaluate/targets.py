"""Systems under test: an OpenAI-compatible endpoint, a Python callable, a shell command, or replay.

A target turns a case's ``input`` (messages, tools, context) into a :class:`Reply`. Targets register in
:data:`TARGETS` by the prefix of their spec (``openai:gpt-4o-mini``, ``python:myapp.bot:answer``,
``cmd:./bot --json``, ``replay``); :func:`make_target` parses a spec. A target's :attr:`Target.config`
is everything that changes its answers: its hash names a run's cache, so a changed prompt or model is
never served stale outputs.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry
from evaltray.core.util import content_hash

__all__ = [
    "TARGETS",
    "CommandTarget",
    "OpenAITarget",
    "PythonTarget",
    "ReplayTarget",
    "Reply",
    "RunCase",
    "Target",
    "TargetError",
    "TransientError",
    "config_hash",
    "make_target",
    "openai_call",
]


class TargetError(EvaltrayError):
    """A target is misconfigured, or answered something that is not an answer (recorded per case)."""


class TransientError(TargetError):
    """A failure worth retrying (429, 5xx, a dropped connection); ``retry_after`` is the server's wish, in s."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RunCase:
    """One case as a run sends it: its id, input (messages, tools, context), the input's hash, its slice,
    the output recorded when it was reviewed (what ``replay`` answers), and the trace it came from."""

    id: str
    input: dict[str, Any]
    hash: str
    slice: str | None = None
    recorded_output: str | None = None
    trace_id: str | None = None


@dataclass(slots=True)
class Reply:
    """What the system answered: text, tool calls, and what it cost."""

    output: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None


class Target(Protocol):
    """A system under test."""

    spec: str

    @property
    def config(self) -> dict[str, Any]: ...

    async def answer(self, case: RunCase, session: aiohttp.ClientSession | None) -> Reply: ...


def config_hash(target: Target) -> str:
    return content_hash(target.config)


def _messages(case_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's messages in chat-completions form (retrieved context, when the case keeps it apart, as a
    system message before the conversation)."""
    out: list[dict[str, Any]] = []
    context = case_input.get("context") or []
    if context:
        docs = "\n\n".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in context)
        out.append({"role": "system", "content": f"Context:\n{docs}"})
    for m in case_input.get("messages") or []:
        msg = {k: v for k, v in m.items() if k in ("role", "content", "name", "tool_calls", "tool_call_id")}
        if msg.get("tool_calls"):
            msg["tool_calls"] = [openai_call(c, i) for i, c in enumerate(msg["tool_calls"])]
        out.append(msg)
    return out


def openai_call(call: dict[str, Any], i: int) -> dict[str, Any]:
    """A stored tool call (``name``/``arguments``) as the chat-completions API spells it."""
    if "function" in call:
        return call
    args = call.get("arguments")
    return {
        "id": call.get("id") or f"call_{i}",
        "type": "function",
        "function": {
            "name": call.get("name"),
            "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
        },
    }


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


@dataclass
class OpenAITarget:
    """Chat completions at ``base_url`` (``$OPENAI_BASE_URL``, default OpenAI's) with the case's tools and
    multi-turn history; the key comes from ``api_key_env`` and is never part of the config or a result."""

    spec: str
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.model, "base_url": self.base_url.rstrip("/"), "params": self.params}

    async def answer(self, case: RunCase, session: aiohttp.ClientSession | None) -> Reply:
        assert session is not None
        body: dict[str, Any] = {"model": self.model, "messages": _messages(case.input), **self.params}
        tools = case.input.get("tools") or []
        if tools:
            body["tools"] = tools
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                raw = await resp.read()
                if resp.status == 429 or resp.status >= 500:
                    raise TransientError(f"HTTP {resp.status}", _retry_after(resp.headers.get("Retry-After")))
                if resp.status >= 400:
                    raise TargetError(f"HTTP {resp.status}: {raw[:200].decode('utf-8', 'replace')}")
        except aiohttp.ClientError as exc:
            raise TransientError(f"connection failed ({type(exc).__name__})") from None
        return _chat_reply(raw)


def _chat_reply(raw: bytes) -> Reply:
    try:
        data = orjson.loads(raw)
        message = data["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise TargetError("the endpoint's answer is not a chat completion (no choices[0].message)") from None
    calls = [
        {"name": (c.get("function") or {}).get("name"), "arguments": (c.get("function") or {}).get("arguments")}
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    usage = data.get("usage") or {}
    return Reply(message.get("content"), calls, usage.get("prompt_tokens"), usage.get("completion_tokens"))


def _reply_of(value: Any) -> Reply:
    """A callable's or command's answer: a string, or an object with ``output`` and maybe ``tool_calls``."""
    if isinstance(value, Reply):
        return value
    if value is None or isinstance(value, str):
        return Reply(value)
    if isinstance(value, dict) and ("output" in value or "tool_calls" in value):
        calls = value.get("tool_calls") or []
        if not isinstance(calls, list):
            raise TargetError("tool_calls must be a list")
        out = value.get("output")
        return Reply(out if out is None or isinstance(out, str) else orjson.dumps(out).decode(), calls)
    raise TargetError(f"a target must answer a string or {{output, tool_calls}}, not {type(value).__name__}")


@dataclass
class PythonTarget:
    """``python:package.module:function``, sync (run in a thread) or async; it gets the case input dict."""

    spec: str
    function: Callable[[dict[str, Any]], Any]
    name: str

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "python", "function": self.name}

    async def answer(self, case: RunCase, session: aiohttp.ClientSession | None) -> Reply:
        if inspect.iscoroutinefunction(self.function):
            value = await self.function(case.input)
        else:
            value = await asyncio.to_thread(self.function, case.input)
        return _reply_of(value)


@dataclass
class CommandTarget:
    """``cmd:./bot --json``: the case input as JSON on stdin, the answer as JSON (or plain text) on stdout."""

    spec: str
    argv: list[str]

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "cmd", "argv": self.argv}

    async def answer(self, case: RunCase, session: aiohttp.ClientSession | None) -> Reply:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {self.argv[0]!r}: {exc.strerror}") from None
        try:
            out, _ = await proc.communicate(orjson.dumps(case.input))
        except asyncio.CancelledError:  # a timeout: the process must not outlive its case
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise TargetError(f"{self.argv[0]} exited with status {proc.returncode}")
        text = out.decode("utf-8", "replace").strip()
        if text[:1] in ("{", '"'):
            try:
                return _reply_of(orjson.loads(text))
            except orjson.JSONDecodeError:
                raise TargetError(f"{self.argv[0]} printed invalid JSON") from None
        return Reply(text)


@dataclass
class ReplayTarget:
    """The output recorded when the case was reviewed: scores the recorded traffic without calling anything."""

    spec: str = "replay"

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "replay"}

    async def answer(self, case: RunCase, session: aiohttp.ClientSession | None) -> Reply:
        if case.recorded_output is None:
            raise TargetError("the case has no recorded output to replay")
        return Reply(case.recorded_output)


def _openai(rest: str, options: dict[str, Any]) -> Target:
    if not rest:
        raise TargetError("name the model: openai:<model>, e.g. openai:gpt-4o-mini")
    base = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return OpenAITarget(
        f"openai:{rest}", rest, base, options.get("api_key_env") or "OPENAI_API_KEY", options.get("params") or {}
    )


def _python(rest: str, options: dict[str, Any]) -> Target:
    module_name, _, func_name = rest.rpartition(":")
    if not module_name or not func_name:
        raise TargetError(f"python targets look like python:package.module:function, not python:{rest}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the user's own module, next to their workspace
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from None
    function = getattr(module, func_name, None)
    if not callable(function):
        raise TargetError(f"{module_name} has no function {func_name!r}")
    return PythonTarget(f"python:{rest}", function, rest)


def _cmd(rest: str, options: dict[str, Any]) -> Target:
    try:
        argv = shlex.split(rest)
    except ValueError as exc:
        raise TargetError(f"cmd target {rest!r}: {exc}") from None
    if not argv:
        raise TargetError("cmd targets name a command: cmd:./bot --json")
    return CommandTarget(f"cmd:{rest}", argv)


def _replay(rest: str, options: dict[str, Any]) -> Target:
    return ReplayTarget()


#: Target kinds by the prefix of their spec; each builds a target from the rest of the spec and options.
TARGETS: Registry[Callable[[str, dict[str, Any]], Target]] = Registry("target kind", error=TargetError)
TARGETS.add("openai", _openai)
TARGETS.add("python", _python)
TARGETS.add("cmd", _cmd)
TARGETS.add("replay", _replay)


def make_target(spec: str, **options: Any) -> Target:
    """The target a spec names: ``openai:<model>`` (``base_url=``, ``api_key_env=``, ``params=``),
    ``python:module:function``, ``cmd:<command line>`` or ``replay``."""
    kind, _, rest = spec.partition(":")
    return TARGETS.get(kind)(rest, options)
