"""The labeling guide's text, one immutable entry per version, published by the adjudicator.

The version labels record stays the workspace's ``[labeling] guide_version`` (``evaltray.toml``), which the
CLI and the web read alike (:func:`evaltray.tray.review.record_review` stamps it on every review); a
version published here becomes the one labels record once ``evaltray.toml`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import SIGN_ROLES
from evaltray.core.store import Workspace
from evaltray.core.util import now_iso

from .accounts import Actor, require_role

#: Who owns the guide: the adjudicator (and an admin).
GUIDE_ROLES = SIGN_ROLES
MAX_GUIDE_CHARS = 200_000


@dataclass(frozen=True)
class GuideVersion:
    version: str
    body: str
    published_by: str
    created_at: str


def versions(ws: Workspace) -> list[GuideVersion]:
    """Every published version, newest first."""
    g = ws.t["guide_versions"]
    with ws.tx() as conn:
        rows = conn.execute(sa.select(g).order_by(g.c.created_at.desc(), g.c.version.desc())).all()
    return [GuideVersion(r.version, r.body, r.published_by, r.created_at) for r in rows]


def publish(ws: Workspace, actor: Actor, version: str, body: str) -> GuideVersion:
    """Publish ``body`` as ``version``; a version once published is never changed (labels cite it)."""
    require_role(actor, GUIDE_ROLES, "publishing the labeling guide")
    version, body = version.strip(), body.strip()
    if not version or len(version) > 40 or not version.isprintable():
        raise EvaltrayError("a guide version is 1 to 40 printable characters, e.g. 2 or 2024-06")
    if not body:
        raise EvaltrayError("the guide is empty; write what labelers should do")
    if len(body) > MAX_GUIDE_CHARS:
        raise EvaltrayError(f"the guide is longer than {MAX_GUIDE_CHARS:,} characters")
    g = ws.t["guide_versions"]
    with ws.tx() as conn:
        if conn.execute(sa.select(g.c.version).where(g.c.version == version)).first() is not None:
            raise EvaltrayError(f"guide version {version} is already published; publish the change as a new version")
        made = GuideVersion(version, body, actor.name, now_iso())
        conn.execute(g.insert().values(version=version, body=body, published_by=actor.name, created_at=made.created_at))
        ws.audit(conn, actor.name, "guide.publish", version, via="web")
    return made
