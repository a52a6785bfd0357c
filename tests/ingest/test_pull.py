"""``evaltray pull``: each connector against a local server answering in the platform's documented shape, with
pagination, a 429 with Retry-After, a connection dropped mid-page, and a second pull fetching only what is new."""

from __future__ import annotations

import threading
from collections.abc import Callable
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import ingest_files, pull
from evaltray.ingest._common import parse_time
from evaltray.ingest.pull import Cursor, Langfuse, LangSmith, Phoenix, PullError, read_cursor

DATA = Path(__file__).parent.parent / "data"
LANGFUSE = [
    DATA / "langfuse" / f"{n}.trace.json" for n in ("agno-2025-06-11", "autogen-2025-06-06", "beeai-2025-08-01")
]
LANGSMITH = DATA / "langsmith" / "api-runs.synthetic.jsonl"
PHOENIX_ATTRS = DATA / "openinference" / "genai-attribute-fixtures"

Route = Callable[[str, dict[str, list[str]], Any], Any]


class Stub:
    """A local API: ``routes`` answer (method, path) with JSON; ``faults`` script what the next matching
    requests get instead: ``("429", seconds)`` or ``("drop", None)`` (half the body, then the socket closes)."""

    def __init__(self, routes: dict[tuple[str, str], Route], headers: dict[str, str]) -> None:
        self.routes, self.headers = routes, headers
        self.faults: list[tuple[Callable[[str, dict[str, list[str]], Any], bool], str, Any]] = []
        self.seen: list[tuple[str, str, dict[str, list[str]], Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub.answer(self, "GET")

            def do_POST(self) -> None:
                stub.answer(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        size = int(h.headers.get("content-length") or 0)
        body = orjson.loads(h.rfile.read(size)) if size else None
        self.seen.append((method, parts.path, query, body))
        if any(h.headers.get(k) != v for k, v in self.headers.items()):
            return self._send(h, 401, b'{"message": "unauthorized"}')
        for n, (match, kind, arg) in enumerate(self.faults):
            if match(parts.path, query, body):
                del self.faults[n]
                if kind == "429":
                    return self._send(h, 429, b"{}", {"Retry-After": str(arg)})
                data = orjson.dumps(self.routes[method, _route(parts.path)](parts.path, query, body))
                h.send_response(200)
                h.send_header("content-length", str(len(data)))
                h.end_headers()
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                h.close_connection = True
                return None
        route = self.routes.get((method, _route(parts.path)))
        if route is None:
            return self._send(h, 404, b"{}")
        return self._send(h, 200, orjson.dumps(route(parts.path, query, body)))

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _route(path: str) -> str:
    return "/v1/projects/*/spans" if path.startswith("/v1/projects/") else path


def _page(items: list[Any], query: dict[str, list[str]], size: int) -> tuple[list[Any], int]:
    page = int(query.get("page", ["1"])[0])
    return items[(page - 1) * size : page * size], max(1, -(-len(items) // size))


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull, "PAGE", 2)  # every list below spans more than one page


def stored(ws: Workspace) -> dict[str, dict]:
    store = TraceStore(ws.traces_dir)
    return store.get(store.trace_ids())


def same_rows(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert sorted(got) == sorted(want)
    skip = {"ingested_at", "source_file"}
    for tid in want:
        assert {k: v for k, v in got[tid].items() if k not in skip} == {
            k: v for k, v in want[tid].items() if k not in skip
        }


def reference(tmp_path: Path, name: str, lines: list[Any], fmt: str) -> dict[str, dict]:
    """The rows ``evaltray ingest`` stores from the same records as a file (scrubbed, as the pull's are)."""
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    ref = Workspace.init(tmp_path / f"ref-{name}", name="ref", user="alice")
    ingest_files(ref, [path], fmt=fmt, actor="alice")
    rows = stored(ref)
    ref.close()
    return rows


def client(kind: type[Langfuse] | type[LangSmith] | type[Phoenix], env: dict[str, str], sleeps: list[float]):
    http = kind.client(env)
    http.sleep = sleeps.append
    return http


# --------------------------------------------------------------------------- Langfuse


def langfuse_api(exports: list[dict[str, Any]]) -> dict[tuple[str, str], Route]:
    def traces(path: str, q: dict[str, list[str]], body: Any) -> Any:
        start = parse_time(q["fromTimestamp"][0])
        listed = sorted((e["trace"] for e in exports if parse_time(e["trace"]["timestamp"]) >= start), key=_ts)
        rows, pages = _page([{**t, "observations": [o["id"] for o in t["observations"]]} for t in listed], q, 2)
        return {
            "data": rows,
            "meta": {"page": int(q["page"][0]), "limit": 2, "totalItems": len(listed), "totalPages": pages},
        }

    def observations(path: str, q: dict[str, list[str]], body: Any) -> Any:
        (obs,) = [e["observations"] for e in exports if e["trace"]["id"] == q["traceId"][0]]
        rows, pages = _page(obs, q, 2)
        return {
            "data": rows,
            "meta": {"page": int(q["page"][0]), "limit": 2, "totalItems": len(obs), "totalPages": pages},
        }

    return {("GET", "/api/public/traces"): traces, ("GET", "/api/public/observations"): observations}


def _ts(t: dict[str, Any]) -> datetime:
    return parse_time(t["timestamp"]) or datetime.min.replace(tzinfo=UTC)


@pytest.fixture
def langfuse_exports() -> list[dict[str, Any]]:
    return [orjson.loads(p.read_bytes()) for p in LANGFUSE]


def test_langfuse_pull_pages_retries_and_stores_what_ingest_stores(
    ws: Workspace, tmp_path: Path, langfuse_exports: list[dict[str, Any]]
) -> None:
    exports = langfuse_exports[:2]
    env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-1"}
    api = Stub(langfuse_api(exports), {"authorization": "Basic cGstbGYtMTpzay1sZi0x"})  # base64 of pk:sk
    env["LANGFUSE_HOST"] = api.url
    agno = exports[0]["trace"]["id"]
    api.faults = [
        (lambda p, q, b: p == "/api/public/traces", "429", 7),
        (lambda p, q, b: q.get("traceId") == [agno] and q["page"] == ["2"], "drop", None),
    ]
    sleeps: list[float] = []
    now = datetime(2025, 6, 12, tzinfo=UTC)  # the agno trace is a day old; autogen (June 6th) is six
    try:
        report = pull.pull(ws, "langfuse", "7d", env, http=client(Langfuse, env, sleeps), now=now)
    finally:
        api.close()
    assert (report.listed, report.fetched, report.ingested, report.retries) == (2, 2, 2, 2)
    assert sleeps == [7.0, 0.5]  # Retry-After obeyed; the dropped page retried after the first back-off
    want = reference(
        tmp_path, "langfuse", [{"trace": e["trace"], "observations": e["observations"]} for e in exports], "langfuse"
    )
    same_rows(stored(ws), want)  # every observation once, though one page came twice
    assert read_cursor(ws, "langfuse") == Cursor(parse_time(exports[0]["trace"]["timestamp"]), (agno,))
    assert api.seen[0][2]["fromTimestamp"] == ["2025-06-05T00:00:00Z"]


def test_a_second_langfuse_pull_fetches_only_what_is_new(ws: Workspace, langfuse_exports: list[dict[str, Any]]) -> None:
    exports = langfuse_exports[:2]
    env = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}
    api = Stub(langfuse_api(exports), {})
    env["LANGFUSE_HOST"] = api.url
    now = datetime(2025, 6, 12, tzinfo=UTC)
    try:
        pull.pull(ws, "langfuse", "7d", env, now=now)
        newer = deepcopy(langfuse_exports[2])  # a trace that arrived since
        newer["trace"]["timestamp"] = "2025-06-11T15:00:00.000Z"
        exports.append(newer)
        api.seen.clear()
        again = pull.pull(ws, "langfuse", "7d", env, now=now)
        third = pull.pull(ws, "langfuse", "7d", env, now=now)
    finally:
        api.close()
    assert (again.listed, again.fetched, again.ingested, again.skipped) == (2, 1, 1, 0)  # agno listed, not fetched
    assert api.seen[0][2]["fromTimestamp"] == [exports[0]["trace"]["timestamp"].replace(".598Z", ".598000Z")]
    assert {q["traceId"][0] for m, p, q, b in api.seen if p == "/api/public/observations"} == {newer["trace"]["id"]}
    assert (third.listed, third.fetched) == (1, 0)
    assert len(stored(ws)) == 3


# --------------------------------------------------------------------------- LangSmith


def langsmith_api(runs: list[dict[str, Any]], session: str) -> dict[tuple[str, str], Route]:
    def sessions(path: str, q: dict[str, list[str]], body: Any) -> Any:
        return [{"id": session, "name": "support-bot"}] if q.get("name") == ["support-bot"] else []

    def query(path: str, q: dict[str, list[str]], body: Any) -> Any:
        assert body["session"] == [session]
        if body.get("is_root"):
            start = parse_time(body["start_time"])
            found = [r for r in runs if r["parent_run_id"] is None and parse_time(r["start_time"]) >= start]
        else:
            found = [r for r in runs if r["trace_id"] == body["trace"]]
        offset = int(body.get("cursor") or 0)
        nxt = offset + body["limit"]
        return {"runs": found[offset:nxt], "cursors": {"next": str(nxt) if nxt < len(found) else None}}

    return {("GET", "/api/v1/sessions"): sessions, ("POST", "/api/v1/runs/query"): query}


def test_langsmith_pull_finds_the_project_pages_retries_and_stores_what_ingest_stores(
    ws: Workspace, tmp_path: Path
) -> None:
    runs = [orjson.loads(line) for line in LANGSMITH.read_bytes().splitlines()]
    api = Stub(langsmith_api(runs, runs[0]["session_id"]), {"x-api-key": "lsv2-key"})
    env = {"LANGSMITH_API_KEY": "lsv2-key", "LANGSMITH_ENDPOINT": api.url, "LANGSMITH_PROJECT": "support-bot"}
    first = runs[0]["trace_id"]
    api.faults = [
        (lambda p, q, b: p == "/api/v1/runs/query" and b.get("trace") == first and b.get("cursor"), "drop", None),
        (lambda p, q, b: p == "/api/v1/runs/query" and b.get("is_root"), "429", 2),
    ]
    sleeps: list[float] = []
    try:
        report = pull.pull(
            ws, "langsmith", "2d", env, http=client(LangSmith, env, sleeps), now=datetime(2025, 3, 5, tzinfo=UTC)
        )
    finally:
        api.close()
    assert (report.listed, report.fetched, report.ingested) == (2, 2, 2)
    assert sleeps == [2.0, 0.5]
    same_rows(stored(ws), reference(tmp_path, "langsmith", runs, "langsmith"))
    trace_queries = [b for m, p, q, b in api.seen if p == "/api/v1/runs/query" and b.get("trace") == first]
    assert [b["cursor"] for b in trace_queries] == [None, "2", "2"]  # the dropped second page asked again


def test_a_refused_key_and_a_missing_one_are_named(ws: Workspace) -> None:
    api = Stub({}, {"x-api-key": "right"})
    try:
        with pytest.raises(PullError, match=r"langsmith: the API key was refused \(401\)"):
            pull.pull(ws, "langsmith", "7d", {"LANGSMITH_API_KEY": "wrong", "LANGSMITH_ENDPOINT": api.url})
    finally:
        api.close()
    with pytest.raises(PullError, match="langfuse: set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY in the environment"):
        pull.pull(ws, "langfuse", "7d", {})
    with pytest.raises(PullError, match=r"--since '7 days'"):
        pull.pull(ws, "phoenix", "7 days", {})
    assert not (ws.root / "pull" / "langsmith.json").exists()  # no cursor from a failed pull


def test_a_server_that_keeps_answering_429_stops_the_pull_with_the_cursor_unmoved(ws: Workspace) -> None:
    api = Stub(phoenix_api([]), {})
    api.faults = [(lambda p, q, b: True, "429", 1)] * pull.ATTEMPTS
    env = {"PHOENIX_HOST": api.url}
    sleeps: list[float] = []
    try:
        with pytest.raises(PullError, match="still answered 429 after 6 tries; pull again later"):
            pull.pull(ws, "phoenix", "7d", env, http=client(Phoenix, env, sleeps))
    finally:
        api.close()
    assert sleeps == [1.0] * (pull.ATTEMPTS - 1)
    assert not (ws.root / "pull" / "phoenix.json").exists()


# --------------------------------------------------------------------------- Phoenix


def phoenix_spans(t0: datetime = datetime(2026, 3, 1, 9, tzinfo=UTC)) -> list[dict[str, Any]]:
    """Two traces in Phoenix's span shape: an agent root span and an LLM span (attributes from the fixtures)."""
    out = []
    for n, name in enumerate(("openinference_client_span_tool_calls", "openinference_client_span_input_output_only")):
        attrs = orjson.loads((PHOENIX_ATTRS / f"{name}.json").read_bytes())
        tid, start = f"{n + 1:032x}", t0 + timedelta(minutes=n)
        for k, (kind, parent, a) in enumerate(
            (("CHAIN", None, {"openinference.span.kind": "CHAIN"}), ("LLM", f"{2 * n + 1:016x}", attrs))
        ):
            out.append(
                {
                    "id": f"U3BhbjoxMD{n}{k}",
                    "name": "agent" if parent is None else "ChatCompletion",
                    "context": {"trace_id": tid, "span_id": f"{2 * n + 1 + k:016x}"},
                    "span_kind": kind,
                    "parent_id": parent,
                    "start_time": (start + timedelta(seconds=k)).isoformat(),
                    "end_time": (start + timedelta(seconds=3)).isoformat(),
                    "status_code": "OK",
                    "status_message": "",
                    "attributes": a,
                    "events": [],
                }
            )
    return out


def phoenix_api(spans: list[dict[str, Any]]) -> dict[tuple[str, str], Route]:
    def listing(path: str, q: dict[str, list[str]], body: Any) -> Any:
        assert path == "/v1/projects/support%20bot/spans" or not spans
        if q.get("parent_id") == ["null"]:
            start = parse_time(q["start_time"][0])
            found = [s for s in spans if s["parent_id"] is None and parse_time(s["start_time"]) >= start]
        else:
            found = [s for s in spans if s["context"]["trace_id"] in q["trace_id"]]
        offset = int(q.get("cursor", ["0"])[0])
        nxt = offset + int(q["limit"][0])
        return {"data": found[offset:nxt], "next_cursor": str(nxt) if nxt < len(found) else None}

    return {("GET", "/v1/projects/*/spans"): listing}


def test_phoenix_pull_reads_spans_as_the_openinference_reader_does(ws: Workspace, tmp_path: Path) -> None:
    spans = phoenix_spans()
    api = Stub(phoenix_api(spans), {"authorization": "Bearer px-key"})
    env = {"PHOENIX_HOST": api.url, "PHOENIX_API_KEY": "px-key", "PHOENIX_PROJECT": "support bot"}
    api.faults = [(lambda p, q, b: q.get("trace_id") == [f"{1:032x}"], "drop", None)]
    sleeps: list[float] = []
    try:
        report = pull.pull(
            ws, "phoenix", "7d", env, http=client(Phoenix, env, sleeps), now=datetime(2026, 3, 2, tzinfo=UTC)
        )
    finally:
        api.close()
    assert (report.listed, report.fetched, report.ingested, sleeps) == (2, 2, 2, [0.5])
    # the reference: the same spans as the Python exporter's to_json() objects, one JSON array per trace
    as_exported = [
        [
            {
                "name": s["name"],
                "context": {"trace_id": "0x" + s["context"]["trace_id"], "span_id": "0x" + s["context"]["span_id"]},
                "parent_id": "0x" + s["parent_id"] if s["parent_id"] else None,
                "start_time": s["start_time"],
                "end_time": s["end_time"],
                "status": {"status_code": "OK"},
                "attributes": s["attributes"],
            }
            for s in spans
            if s["context"]["trace_id"] == tid
        ]
        for tid in (f"{1:032x}", f"{2:032x}")
    ]
    got, want = stored(ws), reference(tmp_path, "phoenix", as_exported, "openinference")
    same_rows(got, want)
    assert "Weather in Paris?" in orjson.dumps(got[f"{1:032x}"]).decode()


def test_nested_phoenix_attributes_are_flattened_to_openinference_keys() -> None:
    nested = {"llm": {"model_name": "gpt-4o", "input_messages": [{"message": {"role": "user", "content": "hi"}}]}}
    assert pull._flat(nested) == {
        "llm.model_name": "gpt-4o",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "hi",
    }


def test_retry_after_as_an_http_date_and_a_cap() -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 28 <= pull._retry_after(soon, 1) <= 30
    assert pull._retry_after("3600", 1) == pull.MAX_WAIT
    assert pull._retry_after(None, 3) == 2.0


def test_the_cli_pulls_with_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.runner import run

    run("--user", "alice", "init", "shop")
    monkeypatch.chdir(tmp_path / "shop")
    spans = phoenix_spans(datetime.now(UTC) - timedelta(days=1))
    api = Stub(phoenix_api(spans), {"authorization": "Bearer px-key"})
    for key, value in {"PHOENIX_HOST": api.url, "PHOENIX_API_KEY": "px-key", "PHOENIX_PROJECT": "support bot"}.items():
        monkeypatch.setenv(key, value)
    try:
        first = orjson.loads(run("pull", "phoenix", "--since", "2w", "--json").stdout)
        again = orjson.loads(run("pull", "phoenix", "--json").stdout)
    finally:
        api.close()
    assert (first["listed"], first["fetched"], first["ingested"], first["retries"]) == (2, 2, 2, 0)
    assert first["cursor"] == spans[2]["start_time"]  # the later root
    assert (again["listed"], again["fetched"], again["ingested"]) == (1, 0, 0)  # the root at the cursor, known
    ws = Workspace.open(tmp_path / "shop")
    try:
        assert len(stored(ws)) == 2
    finally:
        ws.close()
