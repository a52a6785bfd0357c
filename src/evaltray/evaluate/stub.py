"""A local OpenAI-compatible stub server: what the demo, the tests and the benchmarks run against.

It is a stub, not a model: it answers ``/v1/chat/completions`` with a rule of the caller's (by default
``stub answer: <the last user message>``), after an optional delay, on 127.0.0.1. A message may ask it to
misbehave, so the runner's failure handling is tested against real HTTP: ``[stub:hang]`` never answers,
``[stub:500xN]`` fails N times with 500 then answers, ``[stub:429xN]`` rate-limits N times (``Retry-After:
0``), ``[stub:garbage]`` answers invalid JSON.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

__all__ = ["StubServer"]

_FAIL = re.compile(r"\[stub:(500|429)x(\d+)\]")
Answer = Callable[[dict[str, Any]], str | dict[str, Any]]


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else orjson.dumps(content).decode()
    return ""


def echo(body: dict[str, Any]) -> str:
    return f"stub answer: {_last_user(body)}"


class StubServer:
    """``with StubServer(delay=0.1) as stub: stub.base_url`` — a chat-completions endpoint in a thread."""

    def __init__(self, answer: Answer = echo, delay: float = 0.0, model: str = "stub-model") -> None:
        self.answer, self.delay, self.model = answer, delay, model
        self.requests: Counter[str] = Counter()  # per last user message
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        text = _last_user(body)
        self.requests[text] += 1
        fail = _FAIL.search(text)
        if fail and self.requests[text] <= int(fail.group(2)):
            status = int(fail.group(1))
            return web.Response(status=status, headers={"Retry-After": "0"} if status == 429 else None)
        if "[stub:hang]" in text:
            await asyncio.sleep(3600)
        if "[stub:garbage]" in text:
            return web.Response(body=b"{not json", content_type="application/json")
        if self.delay:
            await asyncio.sleep(self.delay)
        given = self.answer(body)
        message = {"role": "assistant", "content": given} if isinstance(given, str) else given
        reply = {
            "id": f"stub-{self.requests.total()}",
            "object": "chat.completion",
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(orjson.dumps(body)) // 4, "completion_tokens": len(str(given)) // 4},
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> StubServer:
        def main() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            pending = asyncio.all_tasks(loop)  # handlers still asleep (a [stub:hang] request)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name="evaltray-stub", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stub server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
