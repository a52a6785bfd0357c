"""The golden tray file, ``sets/<name>/cases.jsonl``: the one module that reads or writes it.

One active case per line, sorted by id, each line written by :func:`case_line` (schema field order,
compact JSON, ``version`` last). That byte form is canonical, so the hash of what a signer approved can
be taken straight from a stored line, and a release's snapshot shares the tray's bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import CaseStatus, RegistryState
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, sha256_hex

#: ``version.added`` / ``version.last_changed`` of a row no release has stamped yet.
PENDING_VERSION = "pending"
_VERSION_KEY = b',"version":'
_ACTIVE = CaseStatus.ACTIVE.value


@dataclass(slots=True)
class TrayRows:
    """A tray file as read: its rows with their line numbers, each row's line exactly as stored (without
    its newline), and the lines that are not rows."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    #: indexes (into ``rows``) of the lines found byte for byte as signed, whose rows are registry stubs
    trusted: set[int] = field(default_factory=set)

    @property
    def cases(self) -> list[dict[str, Any]]:
        return [row for _, row in self.rows]


def read_tray(ws: Workspace, set_name: str, signed: RegistryState | None = None) -> TrayRows:
    """Every line of the set's tray file; a missing file is an empty tray.

    With ``signed`` (the case registry), a line that is byte for byte what was signed (its ``version``
    aside) is not parsed: its row is a stub made from the registry (id, slice, source, difficulty,
    case type, predecessor, version) — all a release needs from a case it does not diff.
    """
    path = ws.cases_path(set_name)
    data = path.read_bytes() if path.exists() else b""
    out = TrayRows()
    rows, raws, bad, trusted = out.rows, out.raws, out.bad, out.trusted  # locals: 100k lines in a release
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        obj = _signed_stub(raw, signed, set_name) if signed is not None else None
        if obj is not None:
            trusted.add(len(rows))
        else:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad.append((lineno, "not valid JSON"))
                continue
            if not isinstance(obj, dict):
                bad.append((lineno, "not a JSON object"))
                continue
        rows.append((lineno, obj))
        raws.append(raw)
    return out


def load_cases(ws: Workspace, set_name: str) -> dict[str, dict[str, Any]]:
    """The tray's cases by id (for writing; the gate's ``validate`` is the strict reader)."""
    tray = read_tray(ws, set_name)
    if tray.bad:
        line, why = tray.bad[0]
        raise EvaltrayError(f"{ws.cases_path(set_name)}:{line}: {why}; run `evaltray tray validate`")
    return {row["id"]: row for row in tray.cases}


def case_line(case: dict[str, Any]) -> bytes:
    """One tray line: schema field order (readable diffs), compact JSON."""
    return orjson.dumps(case) + b"\n"


def write_cases(ws: Workspace, set_name: str, cases: Iterable[dict[str, Any]]) -> None:
    """Replace the set's tray with ``cases`` (rows in the normal JSON form of a case), sorted by id."""
    ordered = sorted(cases, key=lambda c: c["id"])
    atomic_write(ws.cases_path(set_name), b"".join(case_line(c) for c in ordered))


def write_restamped(ws: Workspace, set_name: str, body: bytes) -> None:
    """Replace the set's tray with ``body``: the lines :func:`read_tray` gave, in order, each passed
    through :func:`restamp` and newline-terminated (a release's snapshot body is exactly that)."""
    atomic_write(ws.cases_path(set_name), body)


def signed_hash(case: dict[str, Any]) -> str:
    """Hash of what the signer approved: the row as written (schema field order, compact JSON) minus
    ``version``, which releases stamp later."""
    return sha256_hex(orjson.dumps({k: v for k, v in case.items() if k != "version"}))


def line_signed_hash(raw: bytes, case: dict[str, Any]) -> str | None:
    """:func:`signed_hash` straight from a stored line whose last field is ``version`` (as evaltray
    writes every line), without serialising the row again; None when the line is shaped otherwise."""
    at = raw.rfind(_VERSION_KEY)
    if at < 0 or raw[at + len(_VERSION_KEY) :] != orjson.dumps(case.get("version")) + b"}":
        return None
    return sha256_hex(raw[:at] + b"}")


def restamp(raw: bytes, case: dict[str, Any], version: str) -> bytes:
    """The stored line with ``pending`` version fields set to ``version`` (``case`` is updated too);
    the very same object when nothing was pending."""
    v = case["version"]
    if PENDING_VERSION not in (v["added"], v["last_changed"]):
        return raw
    new = {"added": version if v["added"] == PENDING_VERSION else v["added"], "last_changed": version}
    old_tail = _VERSION_KEY + orjson.dumps(v) + b"}"
    case["version"] = new
    if raw.endswith(old_tail):
        return raw[: -len(old_tail)] + _VERSION_KEY + orjson.dumps(new) + b"}"
    return orjson.dumps(case)


def _signed_stub(raw: bytes, signed: RegistryState, set_name: str) -> dict[str, Any] | None:
    """The registry's stub of the row on ``raw`` when the line is exactly what was signed, else None."""
    if not raw.startswith(b'{"id":"'):
        return None
    end = raw.find(b'"', 7)
    cid = raw[7:end].decode("utf-8", "replace")
    reg = signed.cases.get(cid)
    if reg is None:
        return None
    # unpacked once: a tuple unpack is cheaper than eleven attribute reads, 100k times over
    _, reg_set, status, review_id, content_hash, _, slice_, source, difficulty, case_type, supersedes = reg
    if reg_set != set_name or status != _ACTIVE or review_id not in signed.signed_reviews or slice_ is None:
        return None
    at = raw.rfind(_VERSION_KEY)
    if at < 0 or not raw.endswith(b"}"):
        return None
    try:
        version = orjson.loads(raw[at + len(_VERSION_KEY) : -1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(version, dict) or raw[at + len(_VERSION_KEY) : -1] != orjson.dumps(version):
        return None
    digest = hashlib.sha256(memoryview(raw)[:at])  # the line minus its version, without copying it
    digest.update(b"}")
    if digest.hexdigest() != content_hash:
        return None
    return {
        "id": cid,
        "slice": slice_,
        "provenance": {"source": source, "supersedes": supersedes},
        "difficulty": difficulty,
        "case_type": case_type,
        "version": version,
    }


__all__ = [
    "PENDING_VERSION",
    "TrayRows",
    "case_line",
    "line_signed_hash",
    "load_cases",
    "read_tray",
    "restamp",
    "signed_hash",
    "write_cases",
    "write_restamped",
]
