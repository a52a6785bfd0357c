"""Pull connectors: ``evaltray pull langfuse|langsmith|phoenix --since 7d`` through each platform's public REST API.

Each connector lists the platform's *traces* newer than a start time (Langfuse ``GET /api/public/traces``,
LangSmith root runs from ``POST /api/v1/runs/query``, Phoenix root spans from ``GET /v1/projects/{id}/spans``),
then fetches each new trace's members (observations, runs, spans) so a trace is stored whole. The records are
written, in the shape the platform's file format reader takes, to a staging file in the workspace, and that file
goes through :func:`.ingest_files` (scrubbed before it is stored; a trace already stored is skipped by id).

The cursor (``pull/<source>.json``): the latest trace time seen and the ids at that time. The next pull asks
from that time and skips those ids, so it fetches only what is new. The cursor moves only after every page
was fetched and stored; a pull that fails part-way is rerun from the old cursor and duplicates nothing.

HTTP: 429 and 502-504 are retried after ``Retry-After`` (seconds or a date; at most :data:`MAX_WAIT`), a
dropped connection or a cut-off body after a short back-off, :data:`ATTEMPTS` tries a request in all.
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import IngestError
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.util import atomic_write, parse_duration

from ._common import parse_time
from ._driver import IngestReport, ingest_files

SOURCES = ("langfuse", "langsmith", "phoenix")
#: Tries of one request (the first and the retries) before the pull stops with an error.
ATTEMPTS = 6
#: The longest wait a ``Retry-After`` is obeyed for; a longer one is cut to this.
MAX_WAIT = 60.0
_RETRY_STATUS = {429, 502, 503, 504}
#: Traces written to one staging file and ingested together.
CHUNK = 1000
PAGE = 100
PULL_DIR = "pull"


class PullError(IngestError):
    """A pull that cannot go on: a missing key, a refused request, a server that keeps failing."""


def listed(doc: Any, key: str, where: str) -> list[Any]:
    """The list under ``key`` of a platform's answer; an answer without one stops the pull, naming ``where``."""
    data = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise PullError(f"{where} answered without a {key!r} list")
    return data


# --------------------------------------------------------------------------- HTTP


@dataclass
class Http:
    """JSON requests to one API with its auth headers, retried as the module says."""

    source: str
    base: str
    headers: dict[str, str]
    sleep: Callable[[float], None] = time.sleep
    timeout: float = 60.0
    requests: int = 0
    retries: int = 0

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        return self._call("GET", path, params, None)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("POST", path, {}, orjson.dumps(body))

    def _call(self, method: str, path: str, params: Mapping[str, Any], body: bytes | None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        url = self.base.rstrip("/") + path + (f"?{query}" if query else "")
        headers = {"accept": "application/json", **self.headers}
        if body is not None:
            headers["content-type"] = "application/json"
        for attempt in range(1, ATTEMPTS + 1):
            self.requests += 1
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (the user's API URL)
                    return orjson.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS or attempt == ATTEMPTS:
                    raise PullError(self._refused(method, path, exc.code)) from None
                wait = _retry_after(exc.headers.get("Retry-After"), attempt)
            except (urllib.error.URLError, http.client.HTTPException, OSError, orjson.JSONDecodeError) as exc:
                if attempt == ATTEMPTS:
                    why = type(exc).__name__
                    raise PullError(f"{self.source}: {method} {path} failed {ATTEMPTS} times ({why})") from None
                wait = _backoff(attempt)
            self.retries += 1
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _refused(self, method: str, path: str, status: int) -> str:
        if status in (401, 403):
            return f"{self.source}: the API key was refused ({status}); check the {self.source.upper()}_* variables"
        if status in _RETRY_STATUS:
            return f"{self.source}: {method} {path} still answered {status} after {ATTEMPTS} tries; pull again later"
        return f"{self.source}: {method} {path} answered {status}"


def _backoff(attempt: int) -> float:
    return float(min(0.5 * 2 ** (attempt - 1), MAX_WAIT))


def _retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), else a back-off."""
    if value:
        value = value.strip()
        if value.isdigit():
            return min(float(value), MAX_WAIT)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return _backoff(attempt)
        return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_WAIT)
    return _backoff(attempt)


# --------------------------------------------------------------------------- the connectors


@dataclass(frozen=True, slots=True)
class Root:
    """A trace listed by the platform: its id, its time (the cursor's key) and what lists it."""

    id: str
    at: datetime
    raw: dict[str, Any]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _root(raw: Any, id_key: str, time_key: str) -> Root | None:
    if not isinstance(raw, dict):
        return None
    rid, at = raw.get(id_key), parse_time(raw.get(time_key))
    return Root(str(rid), at, raw) if rid and at is not None else None


class Connector:
    """One platform: how its keys are read, how traces are listed and how one trace's records are fetched."""

    fmt = ""

    @staticmethod
    def client(env: Mapping[str, str]) -> Http:
        """The HTTP client with the platform's base URL and auth from ``env``; PullError for a missing key."""
        raise NotImplementedError

    def __init__(self, http: Http, env: Mapping[str, str]) -> None:
        self.http, self.env = http, env

    def roots(self, start: datetime) -> Iterator[Root]:
        raise NotImplementedError

    def records(self, root: Root) -> list[Any]:
        """The JSON lines the format reader takes for one trace."""
        raise NotImplementedError


def _require(env: Mapping[str, str], source: str, *names: str) -> list[str]:
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise PullError(f"{source}: set {', '.join(missing)} in the environment")
    return [env[n] for n in names]


class Langfuse(Connector):
    """``GET /api/public/traces`` (page numbers, oldest first) and ``GET /api/public/observations?traceId=``."""

    fmt = "langfuse"

    @staticmethod
    def client(env: Mapping[str, str]) -> Http:
        public, secret = _require(env, "langfuse", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")
        basic = base64.b64encode(f"{public}:{secret}".encode()).decode("ascii")
        host = env.get("LANGFUSE_HOST") or env.get("LANGFUSE_BASE_URL") or "https://cloud.langfuse.com"
        return Http("langfuse", host, {"authorization": f"Basic {basic}"})

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[Any]:
        page = 1
        while True:
            doc = self.http.get(path, {**params, "page": page, "limit": PAGE})
            data = listed(doc, "data", f"langfuse: {path}")
            yield from data
            total = (doc.get("meta") or {}).get("totalPages")
            if not data or not isinstance(total, int) or page >= total:
                return
            page += 1

    def roots(self, start: datetime) -> Iterator[Root]:
        params = {"fromTimestamp": _iso(start), "orderBy": "timestamp.asc"}
        for raw in self._pages("/api/public/traces", params):
            root = _root(raw, "id", "timestamp")
            if root is not None:
                yield root

    def records(self, root: Root) -> list[Any]:
        observations = list(self._pages("/api/public/observations", {"traceId": root.id}))
        return [{"trace": root.raw, "observations": list(_unique(observations, "id"))}]


class LangSmith(Connector):
    """``POST /api/v1/runs/query``: root runs of the project (cursor pages), then each trace's runs."""

    fmt = "langsmith"

    @staticmethod
    def client(env: Mapping[str, str]) -> Http:
        key = env.get("LANGSMITH_API_KEY") or env.get("LANGCHAIN_API_KEY")
        if not key:
            raise PullError("langsmith: set LANGSMITH_API_KEY in the environment")
        base = env.get("LANGSMITH_ENDPOINT") or env.get("LANGCHAIN_ENDPOINT") or "https://api.smith.langchain.com"
        return Http("langsmith", base, {"x-api-key": key})

    def __init__(self, http: Http, env: Mapping[str, str]) -> None:
        super().__init__(http, env)
        self._project: str | None = env.get("LANGSMITH_PROJECT_ID") or None

    def project(self) -> str:
        """The project (a "session" in the API) by id, or by name through ``GET /api/v1/sessions?name=``."""
        if self._project is None:
            name = self.env.get("LANGSMITH_PROJECT") or self.env.get("LANGCHAIN_PROJECT") or "default"
            found = self.http.get("/api/v1/sessions", {"name": name})
            ids = [s.get("id") for s in found if isinstance(s, dict)] if isinstance(found, list) else []
            if not ids or not ids[0]:
                raise PullError(f"langsmith: no project named {name!r}; set LANGSMITH_PROJECT or LANGSMITH_PROJECT_ID")
            self._project = str(ids[0])
        return self._project

    def _runs(self, query: dict[str, Any]) -> Iterator[Any]:
        cursor = None
        while True:
            doc = self.http.post(
                "/api/v1/runs/query", {**query, "session": [self.project()], "limit": PAGE, "cursor": cursor}
            )
            runs = listed(doc, "runs", "langsmith: /api/v1/runs/query")
            yield from runs
            cursor = (doc.get("cursors") or {}).get("next")
            if not runs or not cursor:
                return

    def roots(self, start: datetime) -> Iterator[Root]:
        for raw in self._runs({"is_root": True, "start_time": _iso(start), "order": "asc"}):
            root = _root(raw, "id", "start_time")
            if root is not None:
                yield root

    def records(self, root: Root) -> list[Any]:
        runs = list(_unique(self._runs({"trace": root.id}), "id"))
        return runs if any(r.get("id") == root.id for r in runs) else [root.raw, *runs]


class Phoenix(Connector):
    """``GET /v1/projects/{project}/spans``: root spans (``parent_id=null``), then each trace's spans."""

    fmt = "openinference"

    @staticmethod
    def client(env: Mapping[str, str]) -> Http:
        base = env.get("PHOENIX_HOST") or env.get("PHOENIX_COLLECTOR_ENDPOINT") or "http://localhost:6006"
        key = env.get("PHOENIX_API_KEY")
        return Http("phoenix", base, {"authorization": f"Bearer {key}"} if key else {})

    def _spans(self, params: dict[str, Any]) -> Iterator[Any]:
        project = urllib.parse.quote(
            self.env.get("PHOENIX_PROJECT") or self.env.get("PHOENIX_PROJECT_NAME") or "default", safe=""
        )
        path, cursor = f"/v1/projects/{project}/spans", None
        while True:
            doc = self.http.get(path, {**params, "limit": PAGE, "cursor": cursor})
            data = listed(doc, "data", f"phoenix: {path}")
            yield from data
            cursor = doc.get("next_cursor")
            if not data or not cursor:
                return

    def roots(self, start: datetime) -> Iterator[Root]:
        for raw in self._spans({"start_time": _iso(start), "parent_id": "null"}):
            ctx = raw.get("context") if isinstance(raw, dict) else None
            at = parse_time(raw.get("start_time")) if isinstance(raw, dict) else None
            if isinstance(ctx, dict) and ctx.get("trace_id") and at is not None:
                yield Root(str(ctx["trace_id"]), at, raw)

    def records(self, root: Root) -> list[Any]:
        spans = _unique(self._spans({"trace_id": root.id}), "id", lambda s: (s.get("context") or {}).get("span_id"))
        return [[_phoenix_span(s) for s in spans]]


def _phoenix_span(raw: dict[str, Any]) -> dict[str, Any]:
    """A Phoenix span as the ``openinference`` reader takes it: status as an object, attributes flat."""
    out = dict(raw)
    out["status"] = {"code": raw.get("status_code"), "message": raw.get("status_message")}
    out["attributes"] = _flat(raw.get("attributes") or {})
    return out


def _flat(value: Any, prefix: str = "") -> Any:
    """Nested attributes as OpenInference's dotted keys (``llm.input_messages.0.message.role``)."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(_flat(item, f"{name}."))
        elif isinstance(item, list) and item and all(isinstance(x, dict) for x in item):
            for n, x in enumerate(item):
                out.update(_flat(x, f"{name}.{n}."))
        else:
            out[name] = item
    return out


def _unique(
    items: Iterator[Any] | list[Any], key: str, get: Callable[[dict[str, Any]], Any] | None = None
) -> list[dict[str, Any]]:
    """Items in order, each id once (a page fetched again after a dropped connection repeats some)."""
    seen: set[Any] = set()
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ident = get(item) if get is not None else item.get(key)
        if ident is None or ident not in seen:
            seen.add(ident)
            out.append(item)
    return out


CONNECTORS: dict[str, type[Connector]] = {
    "langfuse": Langfuse,
    "langsmith": LangSmith,
    "phoenix": Phoenix,
}

# --------------------------------------------------------------------------- the pull


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the last complete pull of a source ended: the latest trace time and the trace ids at it."""

    at: datetime | None = None
    ids: tuple[str, ...] = ()


@dataclass
class PullReport:
    source: str
    start: datetime
    listed: int = 0  # traces the platform listed from the start time
    fetched: int = 0  # new ones whose records were fetched
    requests: int = 0
    retries: int = 0
    cursor: Cursor = field(default_factory=Cursor)
    ingest: list[IngestReport] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for r in self.ingest for f in r.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for r in self.ingest for f in r.files)

    @property
    def issues(self) -> list[str]:
        return [str(i) for r in self.ingest for i in r.issues]


def cursor_path(ws: Workspace, source: str) -> Path:
    return ws.root / PULL_DIR / f"{source}.json"


def read_cursor(ws: Workspace, source: str) -> Cursor:
    path = cursor_path(ws, source)
    if not path.is_file():
        return Cursor()
    try:
        doc = orjson.loads(path.read_bytes())
        return Cursor(parse_time(doc["at"]), tuple(str(i) for i in doc.get("ids") or ()))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PullError(f"{path}: not a pull cursor ({type(exc).__name__}); delete it to pull from --since") from None


def _save_cursor(ws: Workspace, source: str, cursor: Cursor) -> None:
    doc = {"at": _iso(cursor.at) if cursor.at else None, "ids": list(cursor.ids)}
    atomic_write(cursor_path(ws, source), orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def since_start(since: str, now: datetime | None = None) -> datetime:
    """The start time of ``--since`` (``7d``, ``24h``)."""
    span = parse_duration(since)
    if span is None:
        raise PullError(f"--since {since!r}: a positive number and a unit, m, h, d or w (e.g. 7d)")
    return (now or datetime.now(UTC)) - span


def pull(
    ws: Workspace,
    source: str,
    since: str = "7d",
    env: Mapping[str, str] | None = None,
    actor: str | None = None,
    http: Http | None = None,
    now: datetime | None = None,
) -> PullReport:
    """Fetch ``source``'s traces newer than its cursor (and than ``since`` ago) into the trace store.

    ``env`` holds the keys (default: ``os.environ``); ``http`` replaces the client built from them and ``now``
    the clock ``since`` counts back from (tests)."""
    import os

    if source not in CONNECTORS:
        raise PullError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
    actor = ws.authorize(actor, CURATE_ROLES, "pulling traces")  # before anything is fetched
    env = os.environ if env is None else env
    kind = CONNECTORS[source]
    conn = kind(http or kind.client(env), env)
    old = read_cursor(ws, source)
    start = since_start(since, now)
    if old.at is not None and old.at > start:
        start = old.at
    report = PullReport(source, start, cursor=old)
    latest, at_latest = old.at, set(old.ids)
    chunk: list[Any] = []
    for root in conn.roots(start):
        report.listed += 1
        if old.at is not None and root.at == old.at and root.id in old.ids:
            continue  # stored by the last pull
        chunk += conn.records(root)
        report.fetched += 1
        if latest is None or root.at > latest:
            latest, at_latest = root.at, {root.id}
        elif root.at == latest:
            at_latest.add(root.id)
        if report.fetched % CHUNK == 0:
            _ingest_chunk(ws, conn, chunk, actor, report)
            chunk = []
    _ingest_chunk(ws, conn, chunk, actor, report)
    report.cursor = Cursor(latest, tuple(sorted(at_latest)))
    _save_cursor(ws, source, report.cursor)
    report.requests, report.retries = conn.http.requests, conn.http.retries
    return report


def _ingest_chunk(ws: Workspace, conn: Connector, records: list[Any], actor: str | None, report: PullReport) -> None:
    if not records:
        return
    staging = ws.root / PULL_DIR / f"{conn.http.source}.staging.jsonl"
    atomic_write(staging, b"".join(orjson.dumps(r) + b"\n" for r in records))
    try:
        report.ingest.append(ingest_files(ws, [staging], fmt=conn.fmt, actor=actor))
    finally:
        staging.unlink(missing_ok=True)
