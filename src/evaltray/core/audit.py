"""The audit log's hash chain: each row stores the SHA-256 of the previous row's hash and its own content.

A row edited after it was written no longer matches its hash; a row deleted leaves the next one pointing
at a hash that is not the one before it. :func:`first_break` finds the first row where either shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .util import canonical_json, sha256_hex

#: The columns a row's hash covers, beside the previous row's hash.
CHAINED = ("id", "at", "actor", "action", "object_id", "detail")


@dataclass
class AuditCheck:
    """What :func:`first_break` found: how many rows it read, and the first that breaks the chain."""

    rows: int
    broken_at: int | None = None
    problem: str | None = None


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 of ``prev_hash`` and the canonical JSON of the row's chained columns."""
    return sha256_hex(prev_hash.encode("ascii") + canonical_json({k: row[k] for k in CHAINED}))


def _audit_table(conn: Connection) -> sa.Table:
    return sa.Table("audit", sa.MetaData(), autoload_with=conn)


def chain_statements(audit: sa.Table) -> tuple[sa.Select[Any], sa.Update]:
    """What :func:`chain_last` runs: the read of the hash before row ``id``, and the update of row ``row_id``'s chain
    columns (``prev_hash``, ``hash``); a caller may build them once."""
    before = sa.select(audit.c.hash).where(audit.c.id < sa.bindparam("id")).order_by(audit.c.id.desc()).limit(1)
    return before, audit.update().where(audit.c.id == sa.bindparam("row_id"))


def chain_last(
    conn: Connection,
    audit: sa.Table,
    row: dict[str, Any],
    prev_hash: str | None = None,
    built: tuple[sa.Select[Any], sa.Update] | None = None,
) -> str:
    """Chain ``row`` (just inserted, the newest; with its ``id``) to the row before it, whose hash is read unless
    the caller knows it (``prev_hash``: the row just before, written by the same transaction); its hash.
    ``built``: :func:`chain_statements` of ``audit``, built once by the caller."""
    before, chain = built or chain_statements(audit)
    if prev_hash is None:
        prev_hash = conn.execute(before, {"id": row["id"]}).scalar() or ""
    digest = row_hash(prev_hash, row)
    conn.execute(chain, {"row_id": row["id"], "prev_hash": prev_hash, "hash": digest})
    return digest


def chain_all(conn: Connection) -> int:
    """Chain every row in id order (rows written before the chain existed); return how many."""
    audit = _audit_table(conn)
    prev_hash = ""
    rows = conn.execute(sa.select(audit).order_by(audit.c.id)).all()
    for row in rows:
        h = row_hash(prev_hash, dict(row._mapping))
        conn.execute(audit.update().where(audit.c.id == row.id).values(prev_hash=prev_hash, hash=h))
        prev_hash = h
    return len(rows)


def first_break(conn: Connection) -> AuditCheck:
    """Walk the log in id order; the first row that is not where the chain says, or not what it hashed."""
    audit = _audit_table(conn)
    prev_id: int | None = None
    prev_hash = ""
    n = 0
    for row in conn.execute(sa.select(audit).order_by(audit.c.id)):
        n += 1
        if row.hash is None:
            return AuditCheck(n, row.id, f"audit row {row.id}: no hash (written outside evaltray)")
        if row.prev_hash != prev_hash:
            after = f"row {prev_id}" if prev_id is not None else "the start of the log"
            return AuditCheck(
                n, row.id, f"audit row {row.id}: does not follow {after} (a row between them was deleted)"
            )
        if row.hash != row_hash(prev_hash, dict(row._mapping)):
            return AuditCheck(n, row.id, f"audit row {row.id}: its content does not match its hash (edited)")
        prev_id, prev_hash = row.id, row.hash
    return AuditCheck(n)
