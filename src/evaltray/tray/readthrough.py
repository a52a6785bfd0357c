"""The product owner's read-through of the tray (seed 002: the file has been read end to end by the product
owner): who has read which rows of a release, and how many are left.

A row read is an audit entry (``tray.read``, the case id, the release in its detail), so the read-through needs
no table of its own and every mark says who and when; a row counts once per reader and release.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import Role
from evaltray.core.store import Workspace
from evaltray.core.util import loads

from .release import list_versions, load_release_cases

__all__ = ["READ_ACTION", "ReadThrough", "mark_read", "read_through"]

READ_ACTION = "tray.read"
#: Anybody registered may read the tray (a product owner is often a viewer).
READERS = frozenset(Role)


@dataclass
class ReadThrough:
    """One reader's progress through one release: the rows read, and those left, in the release's order."""

    release: str
    reader: str
    total: int
    read: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return len(self.read) / self.total if self.total else 1.0


def _release(ws: Workspace, release: str | None) -> tuple[str, list[str]]:
    """The release (default: the newest) and its row ids, in order."""
    versions = list_versions(ws)
    if not versions:
        raise EvaltrayError("no release yet: the read-through follows a release (`evaltray release create`)")
    version = release or versions[-1]
    if version not in versions:
        raise EvaltrayError(f"no release {version!r}: one of {', '.join(versions[-5:])}")
    ids = [str(c["id"]) for cases in load_release_cases(ws, version).values() for c in cases]
    return version, ids


def mark_read(ws: Workspace, actor: str, case_ids: Iterable[str], release: str | None = None) -> list[str]:
    """Record that ``actor`` read ``case_ids`` of ``release`` (default: the newest); the ids newly marked."""
    ws.require(actor, READERS, "reading the tray")
    version, ids = _release(ws, release)
    wanted = list(dict.fromkeys(case_ids))
    unknown = [c for c in wanted if c not in set(ids)]
    if unknown:
        raise EvaltrayError(f"release {version} has no row {', '.join(unknown[:5])}")
    done = set(_read(ws, version).get(actor, []))
    new = [c for c in wanted if c not in done]
    with ws.tx() as conn:
        for cid in new:
            ws.audit(conn, actor, READ_ACTION, cid, release=version)
    return new


def _read(ws: Workspace, version: str) -> dict[str, list[str]]:
    audit = ws.t["audit"]
    q = sa.select(audit.c.actor, audit.c.object_id, audit.c.detail).where(audit.c.action == READ_ACTION)
    out: dict[str, list[str]] = defaultdict(list)
    with ws.tx() as conn:
        for actor, cid, detail in conn.execute(q.order_by(audit.c.id)):
            if loads(detail).get("release") == version and cid not in out[actor]:
                out[actor].append(cid)
    return out


def read_through(ws: Workspace, release: str | None = None, reader: str | None = None) -> list[ReadThrough]:
    """Each reader's progress through ``release`` (default: the newest): everyone who read a row of it, or the
    one ``reader`` named (with nothing read, all left)."""
    version, ids = _release(ws, release)
    read = _read(ws, version)
    names = [reader] if reader is not None else sorted(read)
    out = []
    for name in names:
        mine = set(read.get(name, []))
        out.append(
            ReadThrough(version, name, len(ids), [c for c in ids if c in mine], [c for c in ids if c not in mine])
        )
    return out
