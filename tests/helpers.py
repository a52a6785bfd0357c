"""Builders the tray, gate and release tests share."""

from __future__ import annotations

from typing import Any

from evaltray.core import keys
from evaltray.core.store import Workspace
from evaltray.tray import candidates as pool
from evaltray.tray import gate
from evaltray.tray import review as rev


def register(ws: Workspace, name: str, role: str, actor: str = "alice") -> str:
    """Register ``name`` with ``role`` and a fresh key pair made in this test's config dir; its public key."""
    _, _, public_key = keys.keygen(name)
    ws.add_user(name, role, actor=actor, public_key=public_key)
    return public_key


def labeled_candidate(
    ws: Workspace,
    text: str,
    *,
    slice: str = "refunds",
    source: str = "sme",
    user: str = "alice",
    sign: bool = True,
    set_name: str | None = None,
    reference: str | None = None,
    difficulty: str = "medium",
    case_type: str = "typical",
    origin: str = "human",
    recorded_output: str | None = None,
) -> str:
    """A hand-written candidate with a review (signed when ``sign`` and the user may sign)."""
    cid = pool.add_manual(
        ws,
        user,
        source,
        [{"role": "user", "content": text}],
        set_name=set_name,
        labels={"feature": slice.split("/")[0], "scenario": None, "persona": None, "tags": []},
        slice=slice,
        difficulty=difficulty,
        case_type=case_type,
        recorded_output=recorded_output,
    )
    exp = rev.normalize_expected(ws, user, reference=reference or f"Answer to: {text}", origin=origin)
    rev.record_review(ws, cid, user, exp, verdict="pass", sign=sign)
    return cid


def tray_of(ws: Workspace, sizes: dict[str, int], source: str = "sme", prefix: str = "q") -> dict[str, Any]:
    """Promote ``sizes[slice]`` signed cases per slice; return the promote report."""
    for slice_, n in sizes.items():
        for i in range(n):
            labeled_candidate(ws, f"{prefix} {slice_} #{i}", slice=slice_, source=source)
    return gate.promote(ws, "alice")
