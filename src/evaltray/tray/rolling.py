"""The rolling drift set (issue 14 part 6; seed 001): next to the frozen golden set, a set refreshed from recent
traffic that shows how the system does on what users ask *now*. It has its own releases, ``rolling-<time>``,
kept apart from the golden ones under ``rolling/``; each is a snapshot of a seeded sample of the last window's
conversations, hashed as golden releases are (:func:`evaltray.tray.release.snapshot`). Its cases carry no
reviewed label, so a run on one can be scored by a judge but is **never** a gate: ``evaltray gate`` refuses it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.traces import conjunction, read_messages
from evaltray.core.util import atomic_write, now

from .candidates import render_output, split_conversation
from .release import content_hash_of, snapshot

__all__ = [
    "ROLLING_DIR",
    "RollingError",
    "RollingRelease",
    "is_rolling",
    "list_rolling",
    "load_rolling",
    "rolling_cases_path",
    "rolling_release",
]

ROLLING_DIR = "rolling"
SET_NAME = "rolling"
_VERSION = re.compile(r"^rolling-\d{8}T\d{6}$")
_COLUMNS = ("trace_id", "start_time", "messages", "tools", "retrieved_doc_ids", "model", "scrubbed")


class RollingError(EvaltrayError):
    """A rolling drift-set release that cannot be made or used as asked."""


@dataclass
class RollingRelease:
    version: str
    parent: str | None
    created_at: str
    created_by: str
    window: dict[str, str]
    content_hash: str
    n: int
    added: int
    dropped: int
    hashes: dict[str, str] = field(default_factory=dict)


def is_rolling(version: str) -> bool:
    """Whether ``version`` names a rolling drift-set release (whether or not it exists)."""
    return bool(_VERSION.match(version))


def _manifest_path(ws: Workspace, version: str) -> Path:
    return ws.root / ROLLING_DIR / f"{version}.json"


def rolling_cases_path(ws: Workspace, version: str) -> Path:
    """The cases file of rolling release ``version`` (JSONL, one ``{id, trace_id, input, recorded_output}``)."""
    return ws.root / ROLLING_DIR / version / "cases.jsonl"


def list_rolling(ws: Workspace) -> list[str]:
    """The rolling releases, oldest first."""
    folder = ws.root / ROLLING_DIR
    return sorted(p.stem for p in folder.glob("rolling-*.json")) if folder.exists() else []


def load_rolling(ws: Workspace, version: str) -> RollingRelease:
    path = _manifest_path(ws, version)
    if not is_rolling(version) or not path.exists():
        raise NotFound(f"no rolling drift-set release {version!r} (have: {', '.join(list_rolling(ws)) or 'none'})")
    return RollingRelease(**orjson.loads(path.read_bytes()))


def _recent_cases(ws: Workspace, start: datetime, end: datetime, n: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``n`` conversations started in [start, end), each cut after its last user turn."""
    where = (
        f"start_time >= TIMESTAMPTZ '{start.isoformat()}' AND start_time < TIMESTAMPTZ '{end.isoformat()}'"
        + (" AND scrubbed" if ws.settings.scrub else "")  # unscrubbed text stays out, as it does of the pool
    )
    order = f"md5(trace_id || ':{int(seed)}'), trace_id"
    table = ws.trace_store().query(conjunction("payload_kept", where), columns=_COLUMNS, order_by=order, limit=n)
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in table.to_pylist():
        before, after = split_conversation(read_messages(row["messages"]))
        if not any(m.get("role") == "user" for m in before):
            continue
        tools = orjson.loads(row["tools"]) if row["tools"] else []
        inp = {"messages": before, "tools": tools, "retrieved_doc_ids": list(row["retrieved_doc_ids"] or [])}
        case_id = "t-" + re.sub(r"[^a-z0-9_-]", "-", str(row["trace_id"]).lower())
        if case_id in seen:  # two trace ids that differ only in case or punctuation
            case_id += "-" + hashlib.sha256(str(row["trace_id"]).encode()).hexdigest()[:8]
        seen.add(case_id)
        cases.append(
            {"id": case_id, "trace_id": row["trace_id"], "input": inp, "recorded_output": render_output(after)}
        )
    return cases


def rolling_release(
    ws: Workspace,
    actor: str,
    window: timedelta = timedelta(days=7),
    n: int = 200,
    end: datetime | None = None,
    seed: int = 0,
    dry_run: bool = False,
) -> RollingRelease:
    """Snapshot a seeded sample of ``n`` conversations of the last ``window`` (ending at ``end``, default now)
    as a new rolling release; with ``dry_run`` nothing is written."""
    ws.require(actor, CURATE_ROLES, "refreshing the rolling drift set")
    if n < 1:
        raise RollingError(f"--n must be at least 1, got {n}")
    stamp = now()
    end = end or stamp
    cases = _recent_cases(ws, end - window, end, n, seed)
    if not cases:
        raise RollingError(f"no conversations between {end - window:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC")
    snap = snapshot(cases, SET_NAME)
    versions = list_rolling(ws)
    parent = versions[-1] if versions else None
    old = set(load_rolling(ws, parent).hashes) if parent else set()
    rel = RollingRelease(
        version=f"rolling-{stamp:%Y%m%dT%H%M%S}",
        parent=parent,
        created_at=stamp.isoformat(),
        created_by=actor,
        window={"start": (end - window).isoformat(), "end": end.isoformat()},
        content_hash=content_hash_of({SET_NAME: snap.hashes}),
        n=len(cases),
        added=len(set(snap.hashes) - old),
        dropped=len(old - set(snap.hashes)),
        hashes=snap.hashes,
    )
    if not dry_run:
        if rel.version == parent:
            raise RollingError(f"rolling release {rel.version} was made this second; wait a second and refresh again")
        atomic_write(rolling_cases_path(ws, rel.version), b"".join(line + b"\n" for line in snap.lines))
        atomic_write(_manifest_path(ws, rel.version), orjson.dumps(rel.__dict__, option=orjson.OPT_INDENT_2))
        ws.record(actor, "rolling.release", rel.version, n=rel.n, content_hash=rel.content_hash)
    return rel
