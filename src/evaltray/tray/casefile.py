"""The golden tray file, ``sets/<name>/cases.jsonl``: the one module that reads or writes it.

One active case per line, sorted by id, each line written by :func:`case_line` (schema field order,
compact JSON, ``version`` last). That byte form is canonical, so the hash of what a signer approved can
be taken straight from a stored line, and a release's snapshot shares the tray's bytes.

Every writer of a tray file or of the case registry holds :func:`tray_lock`, which first finishes or
rolls back a release that a crash left half-written (the protocol is in :mod:`.release`'s docstring;
the journal it reads is written there and finished here, by :func:`finish_release`).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, ReleaseError
from evaltray.core.records import CaseStatus, RegistryState, ReleaseStatus
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, file_sha256, sha256_hex

#: ``version.added`` / ``version.last_changed`` of a row no release has stamped yet.
PENDING_VERSION = "pending"
_VERSION_KEY = b',"version":'
_ACTIVE = CaseStatus.ACTIVE.value
#: How long a tray writer waits for another one (a release of a big tray takes a while) before giving up.
TRAY_LOCK_WAIT = 120.0
#: The journal of the release being written, under ``.evaltray/``; present only while one is in flight.
JOURNAL = "release-journal.json"
#: Called with the name of each write step of a release once it is done (tests crash the process there).
WRITE_STEP_HOOKS: list[Callable[[str], None]] = []


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


# ----------------------------------------------------------------------------- the tray lock and the journal


@dataclass(frozen=True)
class Recovered:
    """What recovery did with a half-written release."""

    version: str
    outcome: str  # finished | rolled back


@contextlib.contextmanager
def tray_lock(ws: Workspace, actor: str, recover: bool = True) -> Iterator[Recovered | None]:
    """The one lock every writer of a tray file, of the case registry or of a release holds; inside it, a
    release a crash left half-written is finished or rolled back first (unless ``recover`` is False)."""
    with ws.lock("tray", wait=TRAY_LOCK_WAIT):
        yield recover_release(ws, actor) if recover else None


def after_step(step: str) -> None:
    for hook in WRITE_STEP_HOOKS:
        hook(step)


def journal_path(ws: Workspace) -> Path:
    return ws.state_dir / JOURNAL


def staged(path: Path) -> Path:
    """Where a release writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.tmp")


def tray_sha256(ws: Workspace, set_name: str) -> str:
    path = ws.cases_path(set_name)
    return file_sha256(path) if path.exists() else sha256_hex(b"")


def finish_release(ws: Workspace, entry: dict[str, Any], bodies: dict[str, bytes] | None = None) -> None:
    """Everything after a release's manifest is in place: restamp each tray (to its snapshot's bytes, or
    ``bodies[set]``), record the release in the release log, remove the journal. Idempotent."""
    version = entry["version"]
    for set_name, sums in entry["trays"].items():
        current = tray_sha256(ws, set_name)
        if current == sums["after"]:
            continue
        path = ws.cases_path(set_name)
        if current != sums["before"]:
            raise ReleaseError(
                f"{path}: changed since release {version} began, so it cannot be restamped; "
                f"restore it or remove {journal_path(ws)} by hand"
            )
        body = (bodies or {}).get(set_name)
        if body is None:
            body = (ws.releases_dir / version / f"{set_name}.jsonl").read_bytes()
        if sha256_hex(body) != sums["after"]:
            raise ReleaseError(f"{version}/{set_name}.jsonl: snapshot differs from the release journal")
        atomic_write(path, body)
        after_step(f"restamp {set_name}")
    releases = ws.t["releases"]
    with ws.tx() as conn:
        if conn.execute(sa.select(releases.c.version).where(releases.c.version == version)).first() is None:
            conn.execute(
                releases.insert().values(
                    version=version,
                    status=ReleaseStatus.ACTIVE.value,
                    content_hash=entry["content_hash"],
                    manifest_sha256=entry["manifest_sha256"],
                    created_by=entry["created_by"],
                    created_at=entry["created_at"],
                )
            )
            ws.audit(conn, entry["created_by"], "release.create", version, content_hash=entry["content_hash"])
    after_step("release log")
    journal_path(ws).unlink()
    after_step("journal removed")


def recover_release(ws: Workspace, actor: str) -> Recovered | None:
    """Finish the release the journal names when its manifest is in place (the commit point), else roll it
    back (remove its snapshots and staged files); audited as ``release.recover``. None: nothing to do."""
    path = journal_path(ws)
    if not path.exists():
        return None
    try:
        entry = orjson.loads(path.read_bytes())
        version = entry["version"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ReleaseError(f"{path}: not a release journal; remove it by hand") from None
    manifest = ws.releases_dir / f"{version}.json"
    if manifest.exists():
        if file_sha256(manifest) != entry["manifest_sha256"]:
            raise ReleaseError(f"{manifest.name}: not the manifest {path.name} was writing; remove {path} by hand")
        finish_release(ws, entry)
        outcome = "finished"
    else:
        staged(manifest).unlink(missing_ok=True)
        shutil.rmtree(ws.releases_dir / version, ignore_errors=True)
        path.unlink()
        outcome = "rolled back"
    with ws.tx() as conn:
        ws.audit(conn, actor, "release.recover", version, outcome=outcome)
    return Recovered(version, outcome)


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
    "JOURNAL",
    "PENDING_VERSION",
    "TRAY_LOCK_WAIT",
    "WRITE_STEP_HOOKS",
    "Recovered",
    "TrayRows",
    "after_step",
    "case_line",
    "finish_release",
    "journal_path",
    "line_signed_hash",
    "load_cases",
    "read_tray",
    "recover_release",
    "restamp",
    "signed_hash",
    "staged",
    "tray_lock",
    "tray_sha256",
    "write_cases",
    "write_restamped",
]
