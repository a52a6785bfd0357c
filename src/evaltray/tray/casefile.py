"""The golden tray file, ``sets/<name>/cases.jsonl``: the one module that reads or writes it.

One active case per line, sorted by id, each line written by :func:`case_line` (schema field order,
compact JSON, ``version`` last). That byte form is canonical, so the hash of what a signer approved can
be taken straight from a stored line, and a release's snapshot shares the tray's bytes.

Every writer of a tray file or of the case registry holds :func:`tray_lock`, which first finishes or
rolls back a change that a crash left half-written: a release (the protocol is in :mod:`.release`'s
docstring; the journal it reads is written there and finished here, by :func:`finish_release`), or a
promote or retire, which changes the tray file and the registry together through :func:`commit_tray`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
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
#: The journal of a promote or retire (tray file and registry), under ``.evaltray/``; present only while
#: one is in flight.
TRAY_JOURNAL = "tray-journal.json"
#: Called with the name of each write step of a release, a promote or a retire once it is done (tests crash
#: the process there).
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


def tray_body(cases: Iterable[dict[str, Any]]) -> bytes:
    """A tray file holding ``cases`` (rows in the normal JSON form of a case), sorted by id."""
    return b"".join(case_line(c) for c in sorted(cases, key=lambda c: c["id"]))


def write_cases(ws: Workspace, set_name: str, cases: Iterable[dict[str, Any]]) -> None:
    """Replace the set's tray with ``cases``, sorted by id (for a tray the registry knows nothing of yet;
    a change the registry must follow goes through :func:`commit_tray`)."""
    atomic_write(ws.cases_path(set_name), tray_body(cases))


def commit_tray(
    ws: Workspace,
    actor: str,
    set_name: str,
    action: str,
    cases: Iterable[dict[str, Any]],
    record: Callable[[sa.Connection], None],
) -> None:
    """Replace the set's tray with ``cases`` and run ``record`` (the registry's side of ``action``) as one
    change: a crash leaves both old or both new. Call it holding :func:`tray_lock`.

    1. the journal ``.evaltray/tray-journal.json`` names the set, the new tray's sha256 and a token;
    2. the new tray is staged next to the tray file (``.cases.jsonl.tmp``);
    3. one database transaction runs ``record`` and audits ``tray.write`` with the token: the commit point;
    4. the staged file is renamed over the tray file, and the journal is removed.
    The next tray writer (or ``evaltray tray repair``) finishes a change whose transaction committed and
    drops one whose transaction did not (:func:`recover_tray_write`).
    """
    body = tray_body(cases)
    token = secrets.token_hex(16)
    entry = {"set": set_name, "action": action, "token": token, "sha256": sha256_hex(body)}
    atomic_write(tray_journal_path(ws), orjson.dumps(entry))
    after_step(f"{action}: journal")
    atomic_write(staged(ws.cases_path(set_name)), body)
    after_step(f"{action}: stage")
    with ws.tx() as conn:
        record(conn)
        ws.audit(conn, actor, "tray.write", set_name, change=action, journal=token, sha256=entry["sha256"])
    after_step(f"{action}: registry")
    _place_staged(ws, entry)


def write_restamped(ws: Workspace, set_name: str, body: bytes) -> None:
    """Replace the set's tray with ``body``: the lines :func:`read_tray` gave, in order, each passed
    through :func:`restamp` and newline-terminated (a release's snapshot body is exactly that)."""
    atomic_write(ws.cases_path(set_name), body)


# ----------------------------------------------------------------------------- the tray lock and the journal


@dataclass(frozen=True)
class Recovered:
    """What recovery did with a half-written change: ``what`` is ``release 1.1.0``, ``promote in set main``…"""

    what: str
    outcome: str  # finished | rolled back


@contextlib.contextmanager
def tray_lock(ws: Workspace, actor: str, recover: bool = True) -> Iterator[Recovered | None]:
    """The one lock every writer of a tray file, of the case registry or of a release holds; inside it, a
    release a crash left half-written is finished or rolled back first (unless ``recover`` is False)."""
    with ws.lock("tray", wait=TRAY_LOCK_WAIT):
        yield (recover_release(ws, actor) or recover_tray_write(ws, actor)) if recover else None


def after_step(step: str) -> None:
    for hook in WRITE_STEP_HOOKS:
        hook(step)


def journal_path(ws: Workspace) -> Path:
    return ws.state_dir / JOURNAL


def tray_journal_path(ws: Workspace) -> Path:
    return ws.state_dir / TRAY_JOURNAL


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
    return Recovered(f"release {version}", outcome)


def recover_tray_write(ws: Workspace, actor: str) -> Recovered | None:
    """Finish the promote or retire the tray journal names when its transaction committed (rename the staged
    tray into place), else drop it (the tray file was never touched); audited as ``tray.recover``."""
    path = tray_journal_path(ws)
    if not path.exists():
        return None
    try:
        entry = orjson.loads(path.read_bytes())
        set_name, action, token = entry["set"], entry["action"], entry["token"]
        tray = ws.cases_path(set_name)
    except (orjson.JSONDecodeError, KeyError, TypeError, EvaltrayError):
        raise ReleaseError(f"{path}: not a tray journal; remove it by hand") from None
    audit = ws.t["audit"]
    with ws.tx() as conn:
        committed = conn.execute(
            sa.select(audit.c.id).where(
                audit.c.action == "tray.write", audit.c.object_id == set_name, audit.c.detail.contains(token)
            )
        ).first()
    if committed:
        _place_staged(ws, entry)
        outcome = "finished"
    else:
        staged(tray).unlink(missing_ok=True)
        path.unlink()
        outcome = "rolled back"
    ws.record(actor, "tray.recover", set_name, change=action, outcome=outcome)
    return Recovered(f"{action} in set {set_name}", outcome)


def _place_staged(ws: Workspace, entry: dict[str, Any]) -> None:
    """Step 4 of :func:`commit_tray`: the staged tray renamed into place (unless it already is), journal removed."""
    tray = ws.cases_path(entry["set"])
    stage = staged(tray)
    if stage.exists():
        if file_sha256(stage) != entry["sha256"]:
            raise ReleaseError(f"{stage}: not the tray {tray_journal_path(ws)} was writing; remove both by hand")
        os.replace(stage, tray)
        after_step(f"{entry['action']}: place")
    elif tray_sha256(ws, entry["set"]) != entry["sha256"]:
        raise ReleaseError(f"{tray}: neither the old nor the new tray of {entry['action']}; restore it by hand")
    tray_journal_path(ws).unlink()
    after_step(f"{entry['action']}: journal removed")


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
    "TRAY_JOURNAL",
    "TRAY_LOCK_WAIT",
    "WRITE_STEP_HOOKS",
    "Recovered",
    "TrayRows",
    "after_step",
    "case_line",
    "commit_tray",
    "finish_release",
    "journal_path",
    "line_signed_hash",
    "load_cases",
    "read_tray",
    "recover_release",
    "recover_tray_write",
    "restamp",
    "signed_hash",
    "staged",
    "tray_body",
    "tray_journal_path",
    "tray_lock",
    "tray_sha256",
    "write_cases",
    "write_restamped",
]
