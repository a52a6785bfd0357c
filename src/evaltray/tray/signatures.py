"""What a sign-off, a promotion and a release sign, and the checks that a tray row or manifest carries them.

A sign-off signs the label of one candidate (:func:`label_of`: its id, set, input hash, the expected
behaviour, rubric, guide version, verdict, critique and failure tags) with the review's id and the
signer's name; a promotion signs the case's id, set and the hash of its whole row (:func:`promoted_hash`)
with the promoter's name; a release signs its manifest. Each message names its action, so one kind of
signature never passes for another. A tray row carries both of its signatures (``validation``), so the
file and the registered public keys alone prove the row; an edit to anything signed, or a signature copied
from another case, no longer verifies.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa

from evaltray.core.errors import ReleaseError
from evaltray.core.keys import Signer, verify
from evaltray.core.records import Release
from evaltray.core.store import Workspace
from evaltray.core.util import canonical_json, content_hash
from evaltray.core.workers import process_pool, worker_count

#: The user-keys map a check reads: every public key each user ever had registered.
Keys = dict[str, list[str]]


def input_hash(inp: dict[str, Any]) -> str:
    return content_hash(inp)[:16]


def label_of(row: dict[str, Any]) -> dict[str, Any]:
    """The part of a tray row a sign-off signs (see the module docstring)."""
    review = row.get("review") or {}
    return {
        "candidate_id": (row.get("provenance") or {}).get("candidate_id"),
        "set": row.get("set"),
        "input_hash": row.get("input_hash"),
        "expected": row.get("expected"),
        "rubric": row.get("rubric"),
        "guide_version": row.get("guide_version"),
        "verdict": review.get("verdict"),
        "critique": review.get("critique"),
        "failure_tags": review.get("failure_tags"),
    }


def signoff_message(signer: str, review_id: Any, label: dict[str, Any]) -> bytes:
    return canonical_json({"action": "signoff", "signer": signer, "review_id": review_id, "label": label})


def promoted_hash(row: dict[str, Any]) -> str:
    """sha256 of the row as promoted: compact JSON in its own field order, without ``version`` (stamped by
    releases) and with ``validation.promotion_signature`` empty (it is the signature of this)."""
    body = {k: v for k, v in row.items() if k != "version"}
    body["validation"] = {**(row.get("validation") or {}), "promotion_signature": None}
    return hashlib.sha256(orjson.dumps(body)).hexdigest()


def promotion_message(signer: str, row: dict[str, Any]) -> bytes:
    return canonical_json(
        {"action": "promote", "signer": signer, "case_id": row["id"], "set": row["set"], "content": promoted_hash(row)}
    )


def sign_promotion(signer: Signer, row: dict[str, Any]) -> None:
    """Stamp ``row`` (a checked tray row) as promoted by ``signer``, signed."""
    row["validation"] = {**row["validation"], "promoted_by": signer.name, "promotion_signature": None}
    row["validation"]["promotion_signature"] = signer.sign(promotion_message(signer.name, row))


def verified(keys: Keys, name: Any, signature: Any, message: bytes) -> bool:
    """Whether one of ``name``'s registered keys made ``signature`` of ``message``."""
    return isinstance(name, str) and any(verify(k, signature, message) for k in keys.get(name, ()))


def signoff_problem(keys: Keys, signer: Any, signature: Any, review_id: Any, label: dict[str, Any]) -> str | None:
    """Why a sign-off's signature does not prove it, or None."""
    if not signature:
        return f"sign-off by {signer!r} has no signature (validation.signoff_signature): not proved, refused"
    if not verified(keys, signer, signature, signoff_message(str(signer), review_id, label)):
        return (
            f"sign-off signature by {signer!r} is invalid: it does not verify against their registered keys "
            "for this case's label (label edited after sign-off, or a signature copied from elsewhere)"
        )
    return None


def row_signature_problems(row: dict[str, Any], keys: Keys) -> list[str]:
    """Every signature a tray row lacks or that does not verify: its sign-off's and its promotion's."""
    v: dict[str, Any] = row["validation"] if isinstance(row.get("validation"), dict) else {}
    problems = []
    found = signoff_problem(keys, v.get("signed_by"), v.get("signoff_signature"), v.get("review_id"), label_of(row))
    if found:
        problems.append(found)
    promoter, signature = v.get("promoted_by"), v.get("promotion_signature")
    if not promoter or not signature:
        problems.append("promotion has no signature (validation.promotion_signature): not proved, refused")
    elif not verified(keys, promoter, signature, promotion_message(str(promoter), row)):
        problems.append(
            f"promotion signature by {promoter!r} is invalid: the row differs from what was promoted, "
            "or the signature is not theirs"
        )
    return problems


#: Rows a process proves per task, and the least rows worth starting processes for.
_PROVE_CHUNK = 4096
_PROVE_IN_PROCESSES = 16_384


def _prove_lines(lines: list[tuple[Any, str, bytes]], keys: Keys) -> list[tuple[Any, str, str]]:
    """``(where, case id, problem)`` for each row (given as its JSON line) whose signatures do not hold."""
    return [(where, cid, p) for where, cid, raw in lines for p in row_signature_problems(orjson.loads(raw), keys)]


def prove_rows(lines: list[tuple[Any, str, bytes]], keys: Keys) -> list[tuple[Any, str, str]]:
    """:func:`row_signature_problems` of every ``(where, case id, JSON line)``, in order; a big tray is proved
    by every core (Ed25519 verification holds the GIL, so threads would not help)."""
    workers = worker_count()
    if workers < 2 or len(lines) < _PROVE_IN_PROCESSES:
        return _prove_lines(lines, keys)
    chunks = [lines[i : i + _PROVE_CHUNK] for i in range(0, len(lines), _PROVE_CHUNK)]
    with process_pool(workers) as pool:
        parts = pool.map(_prove_lines, chunks, [keys] * len(chunks))
        return [found for part in parts for found in part]


# ----------------------------------------------------------------------------- releases


def manifest_message(manifest: Release) -> bytes:
    """What a release's creator signs: the manifest's bytes with its signature left out."""
    body = manifest.to_dict()
    body["signature"] = None
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return canonical_json({"action": "release", "signer": manifest.created_by, "manifest": digest})


def manifest_problem(manifest: Release, keys: Keys) -> str | None:
    """Why a manifest's signature does not prove it, or None."""
    if not manifest.signature:
        return f"release {manifest.version}: manifest has no signature"
    if not verified(keys, manifest.created_by, manifest.signature, manifest_message(manifest)):
        return (
            f"release {manifest.version}: manifest signature by {manifest.created_by!r} is invalid "
            "(edited after release, or not signed with their registered key)"
        )
    return None


def latest_signed_release(ws: Workspace, keys: Keys) -> dict[str, str]:
    """Case id → line sha256 of the newest release whose manifest is what the release log recorded and whose
    signature verifies: lines byte for byte as released were proved when it was made. Empty when none."""
    rel = ws.t["releases"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(rel.c.version, rel.c.manifest_sha256).order_by(rel.c.created_at.desc())).first()
    if row is None:
        return {}
    path = ws.releases_dir / f"{row.version}.json"
    try:
        body = path.read_bytes()
        if hashlib.sha256(body).hexdigest() != row.manifest_sha256:
            return {}
        manifest = Release.from_json(body, path.name)
    except (OSError, ReleaseError):  # an unreadable manifest proves nothing
        return {}
    if manifest_problem(manifest, keys):
        return {}
    return {cid: h for info in manifest.sets.values() for cid, h in info.cases.items()}


__all__ = [
    "Keys",
    "input_hash",
    "label_of",
    "latest_signed_release",
    "prove_rows",
    "manifest_message",
    "manifest_problem",
    "promoted_hash",
    "promotion_message",
    "row_signature_problems",
    "sign_promotion",
    "signoff_message",
    "signoff_problem",
    "verified",
]
