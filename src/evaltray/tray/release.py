"""Releases: immutable, hashed snapshots of every set, with a stable stratified holdout (:mod:`.holdout`).

``releases/<version>.json`` is the manifest (:class:`~evaltray.core.records.Release`);
``releases/<version>/<set>.jsonl`` the snapshot, one canonical case per line. Both are written once,
read-only, and never rewritten. Here too: the diff between releases, verification, and release status.

Writing a release, under the tray lock (:func:`.casefile.tray_lock`, held by every tray writer), so no
promote or retire lands between reading the trays and restamping them:

1. the journal ``.evaltray/release-journal.json``: the version, the manifest's sha256, the release-log
   row, and each restamped tray's sha256 before and after;
2. each snapshot, then the manifest, to a staged name (``.<name>.tmp``, fsynced, read-only);
3. each snapshot renamed into place (invisible: a release exists only through its manifest);
4. the manifest renamed into place: the commit point;
5. each tray restamped (``pending`` versions become this one: the tray's bytes become the snapshot's);
6. the row in the release log (``releases``, with the manifest's sha256), then the journal is removed.

A crash anywhere leaves the journal. The next tray writer (or ``evaltray tray repair``) reads it: with the
manifest in place it redoes 5-6 (a tray still as it was before is replaced by its snapshot); without, it
removes the staged files and snapshots, and the release never happened. Either way ``tray validate`` is
clean (a ``pending`` stamp is valid), and recovery is audited as ``release.recover``.

Readers trust a manifest only when its sha256 is the one the release log recorded at creation
(:func:`load_manifest`), so an edited and re-hashed release is refused rather than exported. The creator
signs the manifest (:func:`.signatures.manifest_message`), which also anchors the audit log (its newest
row's id and hash when the release was made), and every row carries its sign-off's and promotion's
signatures: :func:`verify_release` and export check them against the registered keys, so a release
edited with every hash recomputed (the release log's too) is still refused.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound, ReleaseError
from evaltray.core.records import COMPOSE_ROLES, Release, ReleaseStatus, SetCounts, SetManifest, SourceMix
from evaltray.core.settings import VERSION
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, bulk, canonical_json, listed, now_iso, sha256_hex

from .casefile import (
    TrayRows,
    after_step,
    finish_release,
    journal_path,
    load_cases,
    restamp,
    staged,
    tray_lock,
    tray_sha256,
)
from .gate import RELEASE_CHECKS, read_signed, refuse_do_not_use, registry_state, tagged_examples
from .holdout import assign_holdout, pr_subset
from .signatures import Keys, manifest_message, manifest_problem, prove_rows
from .tasks import awaiting_revalidation

SPLITS = ("dev", "holdout", "all")
SUBSETS = ("pr", "release")


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    m = VERSION.fullmatch(version)
    if not m:
        raise ReleaseError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch, pre = m.groups()
    # a pre-release sorts before its release
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def axis_counts(cases: list[dict[str, Any]], held: set[str]) -> SetCounts:
    """Cases per split, slice, source, difficulty and case type, and held-out cases per slice, in one pass
    (``held``: ids of ``cases``)."""
    slices: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    difficulty: Counter[str] = Counter()
    case_type: Counter[str] = Counter()
    held_slices: Counter[str] = Counter()
    for c in cases:
        slices[c["slice"]] += 1
        sources[c["provenance"]["source"]] += 1
        difficulty[c["difficulty"]] += 1
        case_type[c["case_type"]] += 1
        if c["id"] in held:
            held_slices[c["slice"]] += 1
    return SetCounts(
        split={"dev": len(cases) - len(held), "holdout": len(held)},
        slice=dict(sorted(slices.items())),
        source=dict(sorted(sources.items())),
        difficulty=dict(sorted(difficulty.items())),
        case_type=dict(sorted(case_type.items())),
        holdout_by_slice=dict(sorted(held_slices.items())),
    )


def _counts(cases: list[dict[str, Any]], key: Any) -> dict[str, int]:
    return dict(sorted(Counter(key(c) for c in cases).items()))


def source_mix(cases: list[dict[str, Any]], target: dict[str, float]) -> tuple[SourceMix, list[str]]:
    """The actual provenance mix overall and per slice, against the target, with warnings."""
    n = len(cases)
    actual = {s: round(k / n, 4) for s, k in _counts(cases, lambda c: c["provenance"]["source"]).items()} if n else {}
    by_slice: dict[str, dict[str, int]] = defaultdict(Counter)  # type: ignore[arg-type]
    for c in cases:
        by_slice[c["slice"]][c["provenance"]["source"]] += 1
    warnings = []
    for s, mix in sorted(by_slice.items()):
        if len(mix) == 1 and sum(mix.values()) > 1:
            only = next(iter(mix))
            warnings.append(f"slice {s!r} comes from a single source ({only}, {mix[only]} cases)")
    for src, want in sorted(target.items()):
        got = actual.get(src, 0.0)
        if n and abs(got - want) > 0.15:
            warnings.append(f"source {src}: {got:.0%} of the tray against a target of {want:.0%}")
    return SourceMix(
        target=target, actual=actual, by_slice={s: dict(sorted(m.items())) for s, m in sorted(by_slice.items())}
    ), warnings


@dataclass
class SetSnapshot:
    name: str
    lines: list[bytes]
    cases: list[dict[str, Any]]
    hashes: dict[str, str]

    @property
    def body(self) -> bytes:
        """The file: one line per case, each newline-terminated."""
        if self._body is None:
            self._body = b"".join(line + b"\n" for line in self.lines)
        return self._body

    _body: bytes | None = None


def snapshot(cases: list[dict[str, Any]], name: str, lines: list[bytes] | None = None) -> SetSnapshot:
    """The set's lines exactly as the tray file holds them (schema field order, compact JSON).

    That byte form is canonical: every tray line is written by the same serialiser from the validated
    model, so the same content always gives the same bytes, and the tray and its snapshot share them.
    ``lines`` (aligned with ``cases``) are those bytes when the caller has them already.
    """
    if lines is None:
        lines = [orjson.dumps(c) for c in cases]
    ids = [c["id"] for c in cases]
    if ids != sorted(ids):  # a validated tray is sorted already
        pairs = sorted(zip(cases, lines, strict=True), key=lambda p: p[0]["id"])
        cases, lines = [c for c, _ in pairs], [line for _, line in pairs]
    ordered = list(cases)
    hashes = {c["id"]: hashlib.sha256(line).hexdigest() for c, line in zip(ordered, lines, strict=True)}
    return SetSnapshot(name, lines, ordered, hashes)


def content_hash_of(sets: dict[str, dict[str, str]]) -> str:
    """The release hash: changes if and only if some case's content (or set membership) changes."""
    return sha256_hex(canonical_json(sets))


# ----------------------------------------------------------------------------- reading releases


def manifest_path(ws: Workspace, version: str) -> Path:
    return ws.releases_dir / f"{version}.json"


def list_versions(ws: Workspace) -> list[str]:
    return sorted((v for v in ws.release_versions() if VERSION.fullmatch(v)), key=semver_key)


def load_manifest(ws: Workspace, version: str) -> Release:
    """The manifest of ``version``, refused unless it is byte for byte what the release log recorded."""
    path = manifest_path(ws, version)
    if not path.exists():
        raise NotFound(f"no release {version!r} (releases: {', '.join(list_versions(ws)) or 'none yet'})")
    body = path.read_bytes()
    problem = _manifest_problem(ws, version, body)
    if problem:
        raise ReleaseError(f"{problem}; run `evaltray release verify {version}`")
    return Release.from_json(body, path.name)


def _manifest_problem(ws: Workspace, version: str, body: bytes) -> str | None:
    """Why the manifest ``body`` is not the one ``version`` was released with, or None."""
    rel = ws.t["releases"]
    with ws.tx() as conn:
        recorded = conn.execute(sa.select(rel.c.manifest_sha256).where(rel.c.version == version)).scalar()
    if recorded is None:
        return f"release {version} is not in the workspace's release log"
    if hashlib.sha256(body).hexdigest() != recorded:
        return f"{version}.json: manifest changed since release (sha256 differs from the release log)"
    return None


def load_release_cases(ws: Workspace, version: str, set_name: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The snapshot's cases per set (all sets, or one)."""
    manifest = load_manifest(ws, version)
    out = {}
    for name, info in manifest.sets.items():
        if set_name and name != set_name:
            continue
        path = ws.releases_dir / info.file
        if not path.exists():
            raise ReleaseError(f"{info.file}: snapshot missing; run `evaltray release verify {version}`")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info.file_sha256:
            raise ReleaseError(
                f"{info.file}: file sha256 differs from the manifest; run `evaltray release verify {version}`"
            )
        out[name] = [orjson.loads(line) for line in data.splitlines() if line]
    if set_name and set_name not in out:
        raise NotFound(f"release {version} has no set {set_name!r}")
    return out


# ----------------------------------------------------------------------------- create


@dataclass
class ReleaseResult:
    version: str
    content_hash: str
    manifest: Release
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


def diff_sets(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], old_ids: set[str] | None = None
) -> dict[str, Any]:
    """What changed between two case maps, and why: added, retired, superseded, relabeled, edited.

    ``old`` may hold only the old cases that changed, when ``old_ids`` names them all.
    """
    old_ids = set(old) if old_ids is None else old_ids
    successors = {c["provenance"].get("supersedes"): cid for cid, c in new.items() if c["provenance"].get("supersedes")}
    added, retired, superseded, relabeled, edited = [], [], [], [], []
    for cid in sorted(new.keys() - old_ids):
        if new[cid]["provenance"].get("supersedes") in old_ids:
            continue
        added.append(cid)
    for cid in sorted(old_ids - new.keys()):
        if cid in successors and successors[cid] in new:
            superseded.append({"old": cid, "new": successors[cid]})
        else:
            retired.append(cid)
    for cid in sorted(old.keys() & new.keys()):  # only the ones whose bytes changed are in ``old``
        a, b = old[cid], new[cid]
        if a == b:
            continue
        if a["expected"] != b["expected"] or a.get("rubric") != b.get("rubric"):
            relabeled.append(cid)
        elif _strip_version(a) != _strip_version(b):
            edited.append(cid)

    def by(key: str, ids: list[str], cases: dict[str, dict[str, Any]]) -> dict[str, int]:
        return dict(sorted(Counter(_field(cases[i], key) for i in ids).items()))

    sup_new = [s["new"] for s in superseded]
    sup_old = [s["old"] for s in superseded]
    return {
        "added": added,
        "retired": retired,
        "superseded": superseded,
        "relabeled": relabeled,
        "edited": edited,
        "summary": {
            "added": len(added),
            "retired": len(retired),
            "superseded": len(superseded),
            "relabeled": len(relabeled),
            "edited": len(edited),
        },
        "by_slice": {
            "added": by("slice", added + sup_new, new),
            "retired": by("slice", retired + sup_old, old),
            "relabeled": by("slice", relabeled, new),
        },
        "by_source": {
            "added": by("source", added + sup_new, new),
            "retired": by("source", retired + sup_old, old),
            "relabeled": by("source", relabeled, new),
        },
    }


def _parent_set(manifest: Release | None, set_name: str) -> SetManifest | None:
    return manifest.sets.get(set_name) if manifest is not None else None


def _parent_hashes(manifest: Release | None, set_name: str) -> dict[str, str]:
    info = _parent_set(manifest, set_name)
    return info.cases if info is not None else {}


def _changed_parent_cases(
    ws: Workspace, manifest: Release | None, set_name: str, new_hashes: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The parent's cases whose bytes differ now (changed or gone): the only ones a diff must read."""
    hashes = _parent_hashes(manifest, set_name)
    if not hashes:
        return {}
    wanted = {cid for cid, h in hashes.items() if new_hashes.get(cid) != h}
    if not wanted:
        return {}
    assert manifest is not None  # it has hashes
    lines = [x for x in (ws.releases_dir / manifest.sets[set_name].file).read_bytes().splitlines() if x]
    # snapshot lines are sorted by id, like the manifest's case map
    return {cid: orjson.loads(line) for cid, line in zip(hashes, lines, strict=True) if cid in wanted}


def _parse_changed(snap: SetSnapshot, ids: set[str]) -> None:
    """Replace the registry stubs of cases a diff must compare in full by their parsed lines."""
    if not ids:
        return
    for i, case in enumerate(snap.cases):
        if case["id"] in ids and "expected" not in case:
            snap.cases[i] = orjson.loads(snap.lines[i])


def _strip_version(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != "version"}


def _field(case: dict[str, Any], key: str) -> str:
    return str(case["provenance"]["source"] if key == "source" else case.get(key))


def _parent_of(ws: Workspace, version: str) -> tuple[list[str], str | None]:
    """The versions released so far and the parent of ``version``; refuses one that exists or is not newer,
    or is no semantic version (a version names files: ``../1.0.0`` would write outside ``releases/``)."""
    semver_key(version)
    versions = list_versions(ws)
    if version in versions:
        raise ReleaseError(f"release {version} exists; releases are never rewritten — pick a new version")
    parent = versions[-1] if versions else None
    if parent and semver_key(version) <= semver_key(parent):
        raise ReleaseError(f"release {version} must be newer than the latest release {parent}")
    return versions, parent


def _read_sets(ws: Workspace, versions: list[str]) -> dict[str, TrayRows]:
    """Every set's tray, read once (validate, stamp and snapshot share the rows and their stored bytes);
    refuses the release when a set fails validation."""
    trays: dict[str, TrayRows] = {}
    state = registry_state(ws)  # every set's cases are in it: fetched once
    for set_name in ws.settings.sets:
        tray, problems = read_signed(ws, set_name, set(versions), state)
        if problems:
            head = "; ".join(str(p) for p in problems[:3])
            raise ReleaseError(
                f"set {set_name!r} fails validation ({len(problems)} problem(s): {head}); "
                f"run `evaltray tray validate --set {set_name}`"
            )
        trays[set_name] = tray
    return trays


def _stamp(tray: TrayRows, set_name: str, version: str) -> tuple[SetSnapshot, int]:
    """The set's snapshot with ``pending`` versions stamped as ``version``, and how many lines that changed."""
    cases = tray.cases
    lines = [restamp(raw, case, version) for raw, case in zip(tray.raws, cases, strict=True)]
    stamped = sum(a is not b for a, b in zip(lines, tray.raws, strict=True))
    return snapshot(cases, set_name, lines), stamped


def _set_manifest(
    ws: Workspace, version: str, snap: SetSnapshot, fraction: float, parent: Release | None
) -> tuple[SetManifest, list[str]]:
    """One set's entry in the manifest (the parent's holdout stays held out), and its source-mix warnings."""
    previous = _parent_set(parent, snap.name)
    held = assign_holdout(snap.cases, fraction, set(previous.holdout) if previous is not None else set())
    dev = [c for c in snap.cases if c["id"] not in held]
    mix, warnings = source_mix(snap.cases, ws.settings.source_mix)
    info = SetManifest(
        file=f"{version}/{snap.name}.jsonl",
        file_sha256=hashlib.sha256(snap.body).hexdigest(),
        n_cases=len(snap.cases),
        content_hash=content_hash_of({snap.name: snap.hashes}),
        cases=snap.hashes,
        holdout=sorted(held),
        subsets={"pr": pr_subset(dev, ws.settings.pr_subset_size)},
        counts=axis_counts(snap.cases, held),
        source_mix=mix,
    )
    return info, warnings


def _changelog(ws: Workspace, snap: SetSnapshot, parent: Release | None) -> dict[str, Any]:
    """What changed in the set since the parent release, reading only the cases whose bytes differ."""
    old = _changed_parent_cases(ws, parent, snap.name, snap.hashes)
    _parse_changed(snap, set(old))
    return diff_sets(old, {c["id"]: c for c in snap.cases}, old_ids=set(_parent_hashes(parent, snap.name)))


def _write_release(ws: Workspace, manifest: Release, snaps: dict[str, SetSnapshot], stamped: dict[str, int]) -> Path:
    """Journal, stage, rename and record the release, as the module docstring says; a step at a time."""
    version = manifest.version
    body = manifest.to_json()
    path = manifest_path(ws, version)
    restamped = [s for s in snaps if stamped[s]]
    entry = {
        "version": version,
        "manifest_sha256": hashlib.sha256(body).hexdigest(),
        "content_hash": manifest.content_hash,
        "created_by": manifest.created_by,
        "created_at": manifest.created_at,
        "trays": {s: {"before": tray_sha256(ws, s), "after": sha256_hex(snaps[s].body)} for s in restamped},
    }
    atomic_write(journal_path(ws), orjson.dumps(entry))
    after_step("journal")
    files = {s: ws.releases_dir / version / f"{s}.jsonl" for s in snaps}
    for set_name, snap in snaps.items():
        atomic_write(staged(files[set_name]), snap.body, mode=0o444)
        after_step(f"stage {set_name}")
    atomic_write(staged(path), body, mode=0o444)
    after_step("stage manifest")
    for set_name, file in files.items():
        os.replace(staged(file), file)
        after_step(f"place {set_name}")
    os.replace(staged(path), path)
    _fsync_dir(path.parent)
    after_step("manifest")
    finish_release(ws, entry, {s: snaps[s].body for s in restamped})
    return path


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The warning on a release with no case in any set: allowed (a first release may be a placeholder), never silent.
EMPTY_RELEASE = "the release holds no case: every set's tray is empty (`evaltray promote` moves signed cases in)"


def create_release(
    ws: Workspace,
    version: str,
    actor: str,
    holdout: float | None = None,
    notes: str | None = None,
    dry_run: bool = False,
    strict: bool = False,
) -> ReleaseResult:
    """Validate every set, stamp pending versions, snapshot, hold out, hash, and write the manifest. The
    registered release checks (the monitors) add warnings; with ``strict`` any finding refuses the release."""
    ws.require(actor, COMPOSE_ROLES, "creating a release")
    signer = ws.signer(actor)
    fraction = ws.settings.holdout if holdout is None else holdout
    if not 0 < fraction < 1:
        raise ReleaseError(f"--holdout must be between 0 and 1, got {fraction}")
    semver_key(version)  # a malformed version fails before waiting for the lock
    with tray_lock(ws, actor, recover=not dry_run), bulk():
        versions, parent = _parent_of(ws, version)  # after recovery: a half-written release is settled
        trays = _read_sets(ws, versions)
        parent_manifest = load_manifest(ws, parent) if parent else None
        manifest = Release(
            version=version,
            parent=parent,
            created_at=now_iso(),
            created_by=actor,
            workspace=ws.settings.name,
            guide_version=ws.settings.guide_version,
            holdout_fraction=fraction,
            notes=notes,
        )
        snaps: dict[str, SetSnapshot] = {}
        stamped: dict[str, int] = {}
        revalidating = set(awaiting_revalidation(ws))
        for set_name in ws.settings.sets:
            snap, stamped[set_name] = _stamp(trays[set_name], set_name, version)
            snaps[set_name] = snap
            manifest.warnings += _revalidation_warning(set_name, snap, revalidating)
            manifest.sets[set_name], warnings = _set_manifest(ws, version, snap, fraction, parent_manifest)
            manifest.warnings += [f"{set_name}: {w}" for w in warnings]
            manifest.changelog[set_name] = _changelog(ws, snap, parent_manifest)
            manifest.warnings += _release_checks(ws, set_name, strict)
        if not any(snap.cases for snap in snaps.values()):
            manifest.warnings.append(EMPTY_RELEASE)
        manifest.content_hash = content_hash_of({s: snaps[s].hashes for s in sorted(snaps)})
        manifest.audit_anchor = audit_anchor(ws)
        manifest.signature = signer.sign(manifest_message(manifest))
        result = ReleaseResult(version, manifest.content_hash, manifest, manifest.warnings)
        if not dry_run:
            result.path = _write_release(ws, manifest, snaps, stamped)
        return result


def _revalidation_warning(set_name: str, snap: SetSnapshot, revalidating: set[str]) -> list[str]:
    """The rows of the set sent back for re-validation and not re-signed yet: they go out as last signed."""
    ids = sorted(str(c["id"]) for c in snap.cases if str(c["id"]) in revalidating)
    if not ids:
        return []
    return [
        f"{set_name}: {len(ids)} row(s) under re-validation, not re-signed yet, go out as last signed: {listed(ids)} "
        "(`evaltray tasks list --kind revalidate --status open`)"
    ]


def _release_checks(ws: Workspace, set_name: str, strict: bool) -> list[str]:
    """Tagged prompt examples refuse the release; every registered check's findings are warnings, or with
    ``strict`` refuse it."""
    if tagged_examples(ws):  # the snapshot holds stubs of unchanged rows: their inputs are read only when needed
        refuse_do_not_use(ws, list(load_cases(ws, set_name).values()), f"release refused (set {set_name})")
    found = [(cid, msg) for _, check in RELEASE_CHECKS.items() for cid, msg, _ in check(ws, set_name, strict)]
    if strict and found:
        listed = "; ".join(f"{cid}: {msg}" for cid, msg in found[:10])
        raise ReleaseError(f"release refused by the monitors (--strict), set {set_name}: {listed}")
    return [f"{set_name}: {cid}: {msg}" for cid, msg in found]


# ----------------------------------------------------------------------------- verify, diff, status


def verify_release(ws: Workspace, version: str, deep: bool = False) -> list[str]:
    """Everything that changed on disk since ``version`` was released; an empty list means intact.

    The manifest's signature covers every snapshot's and every case's hash, and its creator proved every
    row's signatures when making it; ``deep`` proves each released row's sign-off and promotion signatures
    again, against the keys registered now."""
    path = manifest_path(ws, version)
    if not path.exists():
        raise NotFound(f"no release {version!r}")
    body = path.read_bytes()
    problem = _manifest_problem(ws, version, body)
    if problem:  # nothing else in an untrusted manifest is worth checking against
        return [problem]
    problems: list[str] = []
    with ws.tx() as conn:
        row = conn.execute(sa.select(ws.t["releases"]).where(ws.t["releases"].c.version == version)).first()
    try:
        manifest = Release.from_json(body, path.name)
    except ReleaseError as exc:
        return problems + [str(exc)]
    all_hashes: dict[str, dict[str, str]] = {}
    for set_name, info in manifest.sets.items():
        found, present = _verify_snapshot(ws, info)
        problems += found
        if present:  # a missing snapshot also leaves the release hash unaccounted for
            all_hashes[set_name] = info.cases
    if content_hash_of({s: all_hashes[s] for s in sorted(all_hashes)}) != manifest.content_hash:
        problems.append(f"{path.name}: content hash does not match the per-case hashes")
    if row is not None and row.content_hash != manifest.content_hash:
        problems.append(f"{path.name}: content hash differs from the release log")
    keys = ws.registered_keys()
    signed = manifest_problem(manifest, keys)
    problems += [f"{path.name}: {signed}"] if signed else []
    if deep:
        for set_name in manifest.sets:
            problems += [f"{version}/{set_name}: {p}" for p in case_signature_problems(ws, manifest, set_name, keys)]
    return problems


def case_signature_problems(ws: Workspace, manifest: Release, set_name: str, keys: Keys | None = None) -> list[str]:
    """Every released row of the set whose sign-off or promotion signature is missing or does not verify
    against the registered keys, each naming the case."""
    path = ws.releases_dir / manifest.sets[set_name].file
    if not path.exists():
        return []  # reported as a missing snapshot
    keys = ws.registered_keys() if keys is None else keys
    lines = []
    for line in path.read_bytes().splitlines():
        try:
            cid = orjson.loads(line)["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # reported as not a case
        lines.append((None, str(cid), line))
    return [f"case {cid}: {p}" for _, cid, p in prove_rows(lines, keys)]


def require_signed(ws: Workspace, version: str, set_name: str, deep: bool = False) -> None:
    """Refuse release ``version`` unless its manifest's signature verifies (it covers every case's hash, which
    reading a snapshot checks) and, with ``deep``, every row of the set's signatures too."""
    manifest = load_manifest(ws, version)
    keys = ws.registered_keys()
    problems = [p for p in [manifest_problem(manifest, keys)] if p]
    if deep and set_name in manifest.sets:
        problems += case_signature_problems(ws, manifest, set_name, keys)
    if problems:
        raise ReleaseError(
            f"release {version} fails its signature check ({len(problems)} problem(s): {problems[0]}); "
            f"run `evaltray release verify {version}`"
        )


def audit_anchor(ws: Workspace) -> dict[str, Any]:
    """The audit log now: its newest row's id and hash, and how many rows it holds."""
    audit = ws.t["audit"]
    with ws.tx() as conn:
        last = conn.execute(sa.select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)).first()
        rows = conn.execute(sa.select(sa.func.count()).select_from(audit)).scalar() or 0
    return {"id": last.id if last else 0, "hash": last.hash if last else "", "rows": rows}


def audit_anchor_problems(ws: Workspace) -> list[str]:
    """Each release whose signed audit anchor the log no longer holds: rows cut from its end (back to the
    newest release at least), or a release whose manifest cannot vouch for its anchor."""
    audit, keys, problems = ws.t["audit"], ws.registered_keys(), []
    for entry in release_log(ws):
        version = entry["version"]
        path = manifest_path(ws, version)
        body = path.read_bytes() if path.exists() else b""
        if _manifest_problem(ws, version, body):
            problems.append(f"release {version}: manifest differs from the release log; its audit anchor is unproved")
            continue
        manifest = Release.from_json(body, path.name)
        anchor = manifest.audit_anchor
        if anchor is None or manifest_problem(manifest, keys):
            continue  # made before anchors (or unsigned): `release verify` says so
        with ws.tx() as conn:
            held = conn.execute(sa.select(audit.c.hash).where(audit.c.id == anchor["id"])).first()
            created = conn.execute(
                sa.select(audit.c.id).where(
                    audit.c.action == "release.create", audit.c.object_id == version, audit.c.id > anchor["id"]
                )
            ).first()
        if anchor["id"] and (held is None or held.hash != anchor["hash"]):
            problems.append(
                f"release {version}: the audit log no longer holds row {anchor['id']} as the release anchored it "
                "(rows cut from the end of the log, or rewritten)"
            )
        elif created is None:
            problems.append(
                f"release {version}: the audit log lacks the release.create row after row {anchor['id']} "
                "(rows cut from the end of the log)"
            )
    return problems


def _verify_snapshot(ws: Workspace, info: SetManifest) -> tuple[list[str], bool]:
    """Every way a set's snapshot file differs from its manifest entry, and whether the file is there."""
    snap_path = ws.releases_dir / info.file
    if not snap_path.exists():
        return [f"{info.file}: snapshot missing"], False
    problems = []
    data = snap_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.file_sha256:
        problems.append(f"{info.file}: file sha256 differs from the manifest")
    lines = [line for line in data.splitlines() if line]
    expected = list(info.cases.items())  # sorted by id, like the snapshot's lines
    if len(lines) == len(expected) and all(
        hashlib.sha256(line).hexdigest() == h for line, (_, h) in zip(lines, expected, strict=True)
    ):
        return problems, True
    hashes: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        try:
            cid = orjson.loads(line)["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            problems.append(f"{info.file}:{lineno}: not a case")
            continue
        hashes[cid] = hashlib.sha256(line).hexdigest()
        if info.cases.get(cid) != hashes[cid]:
            problems.append(f"{info.file}:{lineno}: case {cid} changed since release")
    problems += [f"{info.file}: case {cid} missing" for cid in sorted(info.cases.keys() - hashes.keys())]
    return problems, True


def diff_releases(ws: Workspace, old: str, new: str) -> dict[str, Any]:
    """Per set: what changed from release ``old`` to ``new`` and why, per slice and per source."""
    a, b = load_release_cases(ws, old), load_release_cases(ws, new)
    out = {}
    for set_name in sorted(a.keys() | b.keys()):
        out[set_name] = diff_sets({c["id"]: c for c in a.get(set_name, [])}, {c["id"]: c for c in b.get(set_name, [])})
    return {"from": old, "to": new, "sets": out}


def release_log(ws: Workspace) -> list[dict[str, Any]]:
    with ws.tx() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(ws.t["releases"]))]
    return sorted(rows, key=lambda r: semver_key(r["version"]))


def set_status(ws: Workspace, version: str, status: ReleaseStatus, actor: str) -> None:
    ws.require(actor, COMPOSE_ROLES, "changing a release's status")
    rel = ws.t["releases"]
    with ws.tx() as conn:
        n = conn.execute(rel.update().where(rel.c.version == version).values(status=status.value)).rowcount
        if not n:
            raise NotFound(f"no release {version!r}")
        ws.audit(conn, actor, f"release.{status.value}", version)


def _selection(
    ws: Workspace, version: str, set_name: str | None, split: str, subset: str | None
) -> tuple[str, SetManifest, Callable[[str], bool]]:
    """The set's name and manifest entry, and a test of whether a case id belongs to the split / subset asked for."""
    manifest = load_manifest(ws, version)
    set_name = set_name or ws.settings.default_set
    if set_name not in manifest.sets:
        raise NotFound(f"release {version} has no set {set_name!r}")
    if split not in SPLITS:
        raise EvaltrayError(f"unknown split {split!r} (one of: {', '.join(SPLITS)})")
    if subset is not None and subset not in SUBSETS:
        raise EvaltrayError(f"unknown subset {subset!r} (one of: {', '.join(SUBSETS)})")
    if subset is not None and split == "holdout":
        raise EvaltrayError(f"the {subset} subset is drawn from the dev split: the holdout has none of its cases")
    info = manifest.sets[set_name]
    held = set(info.holdout)
    if subset == "pr":
        keep = set(info.subsets["pr"])
        return set_name, info, keep.__contains__
    if subset == "release" or split == "dev":
        return set_name, info, lambda cid: cid not in held
    if split == "holdout":
        return set_name, info, held.__contains__
    return set_name, info, lambda cid: True


def select_cases(
    ws: Workspace, version: str, set_name: str | None = None, split: str = "all", subset: str | None = None
) -> list[dict[str, Any]]:
    """Cases of one set of a release: a split (dev/holdout/all), narrowed to a named subset (pr/release)
    when one is given. Both subsets are drawn from dev, so the holdout has none of their cases."""
    name, _, wanted = _selection(ws, version, set_name, split, subset)
    cases = load_release_cases(ws, version, name)[name]
    refuse_do_not_use(ws, cases, f"release {version} refused")
    return [c for c in cases if wanted(c["id"])]


def selected_lines(
    ws: Workspace, version: str, set_name: str | None = None, split: str = "all", subset: str | None = None
) -> tuple[Path, str, list[int]]:
    """What :func:`select_cases` selects, as the snapshot file, its sha256 and the line numbers of the cases:
    for a reader that streams the cases one at a time (a run) instead of holding them all."""
    _, info, wanted = _selection(ws, version, set_name, split, subset)
    path = ws.releases_dir / info.file
    if not path.exists():
        raise ReleaseError(f"{info.file}: snapshot missing; run `evaltray release verify {version}`")
    digest, lines = hashlib.sha256(), []

    def walk(f: Any) -> Iterator[dict[str, Any]]:
        for lineno, raw in enumerate(f, 1):
            digest.update(raw)
            if raw.strip():
                row = orjson.loads(raw)
                if wanted(row["id"]):
                    lines.append(lineno)
                yield row

    with path.open("rb") as f:
        rows = walk(f)
        refuse_do_not_use(ws, rows, f"release {version} refused")
        for _ in rows:  # the check stops reading when nothing is tagged
            pass
    if digest.hexdigest() != info.file_sha256:
        raise ReleaseError(
            f"{info.file}: file sha256 differs from the manifest; run `evaltray release verify {version}`"
        )
    return path, info.file_sha256, lines
