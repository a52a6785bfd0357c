"""The refresh ritual (seeds 001 and 003) and the scheduled checks around it.

:func:`refresh` pulls the most recent production conversations into the candidate pool, where they walk the
same gate every row walks (review, sign-off, promote), and opens ``revalidate`` tasks for the rows health finds
due. It runs on a cadence (``thresholds.refresh_every_days``, 30 by default; seed 001 asks at least quarterly),
or when something triggers it: a drift alarm, a model or vendor version change, a prompt-template, system-message
or tool-schema hash change in traffic since the last refresh, or an incident declared with ``--incident`` (seed 001: read
50–100 traces right after an incident, so an incident pulls at least :data:`INCIDENT_N`).

:func:`watch` is for cron: it runs the health checks once, when the last watch is older than ``every``, records
when it ran, and returns an exit status (0 green, 1 amber, 2 red).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, dumps, loads
from evaltray.tray import candidates as pool

from .health import HealthReport, as_datetime, latest_drift_level, send_revalidation, tray_health

__all__ = [
    "INCIDENT_N",
    "RefreshResult",
    "WatchResult",
    "last_refresh",
    "parse_every",
    "refresh",
    "refresh_due",
    "watch",
]

DEFAULT_N = 30
INCIDENT_N = 50
REFRESH_ACTION = "tray.refresh"
WATCH_FILE = "monitor/watch.json"
EXIT = {"green": 0, "amber": 1, "red": 2}


class RefreshError(EvaltrayError):
    """A refresh or watch that cannot run as asked."""


@dataclass
class RefreshResult:
    triggers: list[str]
    pulled: list[str]  # candidate ids added to the pool
    revalidate: list[str]  # case ids sent back for re-validation
    dry_run: bool = False


def last_refresh(ws: Workspace) -> datetime | None:
    """When the refresh ritual last ran (from the audit log), None when never."""
    audit = ws.t["audit"]
    q = sa.select(sa.func.max(audit.c.at)).where(audit.c.action == REFRESH_ACTION)
    with ws.tx() as conn:
        at = conn.execute(q).scalar()
    return as_datetime(at) if at else None


def refresh_due(ws: Workspace, today: datetime | None = None) -> list[str]:
    """Why a refresh is due now: the cadence passed, the drift monitor raised an alarm, or traffic since the last
    refresh runs on a new model, model version, vendor, prompt template, system message or tool schema; empty
    when not due."""
    from .drift import version_changes

    today = today or datetime.now(UTC)
    every = ws.settings.refresh_every_days
    last = last_refresh(ws)
    why = []
    if last is None:
        why.append("never refreshed")
    elif (today - last).days >= every:
        why.append(f"cadence: last refresh {(today - last).days} days ago (every {every})")
    if last is not None:  # the audit log keeps whole seconds: traffic in the refresh's own second came before it
        why += version_changes(ws, last + timedelta(seconds=1))
    drift = latest_drift_level(ws)
    if drift in ("amber", "red"):
        why.append(f"drift alarm ({drift})")
    return why


def _recent_traces(ws: Workspace, set_name: str, n: int) -> list[str]:
    """The ``n`` newest traces with a kept payload not yet in the set's pool."""
    table = ws.trace_store().query(
        "payload_kept", columns=["trace_id"], order_by="start_time DESC NULLS LAST, trace_id"
    )
    have = {c.id for c in pool.list_candidates(ws, set_name=set_name)}
    out: list[str] = []
    for tid in table.column("trace_id").to_pylist():
        if pool.candidate_id(set_name, tid) not in have:
            out.append(tid)
            if len(out) >= n:
                break
    return out


def refresh(
    ws: Workspace,
    actor: str,
    *,
    n: int | None = None,
    incident: str | None = None,
    set_name: str | None = None,
    dry_run: bool = False,
    today: datetime | None = None,
) -> RefreshResult:
    """Run the refresh ritual on one set: pull ``n`` recent conversations (30; 50 after an incident) into the
    pool and send the rows due back for re-validation; logged in the audit log with its triggers."""
    set_name = ws.check_set(set_name)
    if incident is not None and not incident.strip():
        raise RefreshError('an incident needs a description: --incident "what happened"')
    size = n if n is not None else INCIDENT_N if incident else DEFAULT_N
    if size < 1:
        raise RefreshError(f"--n must be 1 or more, got {size}")
    triggers = ([f"incident: {incident.strip()}"] if incident else []) + refresh_due(ws, today) or ["asked"]
    ids = _recent_traces(ws, set_name, size)
    pulled = pool.add_from_traces(ws, actor, set_name=set_name, trace_ids=ids, dry_run=dry_run) if ids else []
    report = tray_health(ws, set_name, today)
    sent = send_revalidation(ws, actor, report, dry_run=dry_run)
    if not dry_run:
        with ws.tx() as conn:
            ws.audit(conn, actor, REFRESH_ACTION, set_name, triggers=triggers, pulled=len(pulled), revalidate=len(sent))
    return RefreshResult(triggers, pulled, sent, dry_run)


_EVERY = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_every(text: str) -> timedelta:
    """``30m``, ``12h``, ``1d``, ``1w`` as a duration."""
    m = _EVERY.match(text)
    if not m or int(m.group(1)) < 1:
        raise RefreshError(f"--every {text!r}: a whole number and a unit, m, h, d or w (e.g. 1d)")
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass
class WatchResult:
    ran: bool
    status: int  # the exit status: 0 green (or not due), 1 amber, 2 red
    last: str | None  # when the checks last ran before this call
    report: HealthReport | None = None
    refresh_due: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ran": self.ran,
            "status": self.status,
            "last": self.last,
            "refresh_due": self.refresh_due,
        }
        if self.report is not None:
            out["level"] = self.report.level
            out["signals"] = [asdict(s) for s in self.report.signals]
        return out


def watch(
    ws: Workspace, every: timedelta, set_name: str | None = None, today: datetime | None = None, force: bool = False
) -> WatchResult:
    """Run the health checks when the last watch is ``every`` old or older (or ``force``); record the run."""
    today = today or datetime.now(UTC)
    path = ws.root / WATCH_FILE
    state = loads(path.read_bytes()) if path.exists() else {}
    last = state.get("at")
    if last and not force and today - as_datetime(last) < every:
        return WatchResult(False, 0, last)
    report = tray_health(ws, set_name, today)
    due = refresh_due(ws, today)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dumps({"at": today.isoformat(), "level": report.level}).encode())
    return WatchResult(True, EXIT[report.level], last, report, due)
