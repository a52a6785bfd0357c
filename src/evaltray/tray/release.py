"""Releases: immutable, hashed snapshots of every set, with a stable stratified holdout.

``releases/<version>.json`` is the manifest; ``releases/<version>/<set>.jsonl`` the snapshot, one
canonical case per line. Both are written once, read-only, and never rewritten.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound, ReleaseError
from evaltray.core.records import COMPOSE_ROLES, ReleaseStatus
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, bulk, canonical_json, now_iso, sha256_hex

from .gate import read_signed, registry_state, restamp

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$")
SPLITS = ("dev", "holdout", "all")
SUBSETS = ("pr", "release", "drift-baseline")


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    m = SEMVER.match(version)
    if not m:
        raise ReleaseError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch, pre = m.groups()
    # a pre-release sorts before its release
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


@lru_cache(maxsize=1 << 18)  # a release ranks each id twice (holdout, then the pr subset)
def rank(key: str) -> str:
    """A deterministic pseudo-random order over ids, independent of input order."""
    return hashlib.sha256(f"evaltray-holdout:{key}".encode()).hexdigest()


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` across strata in proportion to ``sizes`` (largest remainder, ties by name)."""
    n = sum(sizes.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in sizes}
    exact = {k: total * v / n for k, v in sizes.items()}
    out = {k: int(x) for k, x in exact.items()}
    left = total - sum(out.values())
    order = sorted(sizes, key=lambda k: (-(exact[k] - out[k]), rank(k)))
    for k in order[:left]:
        out[k] += 1
    return out


def assign_holdout(cases: list[dict[str, Any]], fraction: float, previous: set[str]) -> set[str]:
    """Stratified holdout by slice; every case already held out stays held out."""
    by_slice: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        by_slice[c["slice"]].append(c["id"])
    target = allocate({s: len(ids) for s, ids in by_slice.items()}, round(fraction * len(cases)))
    held: set[str] = set()
    for s, ids in by_slice.items():
        kept = [i for i in ids if i in previous]
        held.update(kept)
        need = target[s] - len(kept)
        if need > 0:
            fresh = sorted((i for i in ids if i not in previous), key=rank)
            held.update(fresh[:need])
    return held


def pr_subset(cases: list[dict[str, Any]], size: int) -> list[str]:
    """A ~``size``-case subset of the dev split, stratified by slice, for pull-request checks."""
    by_slice: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        by_slice[c["slice"]].append(c["id"])
    if len(cases) <= size:
        return sorted(c["id"] for c in cases)
    quota = allocate({s: len(v) for s, v in by_slice.items()}, size)
    # every slice gets at least one row while the budget allows: a PR check should touch each slice
    for s in sorted(by_slice, key=lambda s: (-len(by_slice[s]), s)):
        if quota[s] == 0 and sum(quota.values()) < size + len(by_slice):
            quota[s] = 1
    picked: list[str] = []
    for s, ids in by_slice.items():
        picked += heapq.nsmallest(quota[s], ids, key=rank)
    return sorted(picked)


def axis_counts(cases: list[dict[str, Any]], held: set[str]) -> dict[str, dict[str, int]]:
    """Cases per slice, source, difficulty and case type, and held-out cases per slice, in one pass."""
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
    return {name: dict(sorted(counter.items())) for name, counter in (
        ("slice", slices), ("source", sources), ("difficulty", difficulty), ("case_type", case_type),
        ("holdout_by_slice", held_slices))}


def _counts(cases: list[dict[str, Any]], key: Any) -> dict[str, int]:
    return dict(sorted(Counter(key(c) for c in cases).items()))


def source_mix(cases: list[dict[str, Any]], target: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
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
    return {"target": target, "actual": actual,
            "by_slice": {s: dict(sorted(m.items())) for s, m in sorted(by_slice.items())}}, warnings


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
    return sorted((v for v in ws.release_versions() if SEMVER.match(v)), key=semver_key)


def load_manifest(ws: Workspace, version: str) -> dict[str, Any]:
    path = manifest_path(ws, version)
    if not path.exists():
        raise NotFound(f"no release {version!r} (releases: {', '.join(list_versions(ws)) or 'none yet'})")
    return orjson.loads(path.read_bytes())


def load_release_cases(ws: Workspace, version: str, set_name: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The snapshot's cases per set (all sets, or one)."""
    manifest = load_manifest(ws, version)
    out = {}
    for name, info in manifest["sets"].items():
        if set_name and name != set_name:
            continue
        path = ws.releases_dir / info["file"]
        out[name] = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    if set_name and set_name not in out:
        raise NotFound(f"release {version} has no set {set_name!r}")
    return out


# ----------------------------------------------------------------------------- create


@dataclass
class ReleaseResult:
    version: str
    content_hash: str
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


def diff_sets(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]],
              old_ids: set[str] | None = None) -> dict[str, Any]:
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
        "added": added, "retired": retired, "superseded": superseded, "relabeled": relabeled, "edited": edited,
        "summary": {"added": len(added), "retired": len(retired), "superseded": len(superseded),
                    "relabeled": len(relabeled), "edited": len(edited)},
        "by_slice": {"added": by("slice", added + sup_new, new), "retired": by("slice", retired + sup_old, old),
                     "relabeled": by("slice", relabeled, new)},
        "by_source": {"added": by("source", added + sup_new, new), "retired": by("source", retired + sup_old, old),
                      "relabeled": by("source", relabeled, new)},
    }


def _parent_hashes(manifest: dict[str, Any] | None, set_name: str) -> dict[str, str]:
    return (manifest or {}).get("sets", {}).get(set_name, {}).get("cases", {})


def _changed_parent_cases(ws: Workspace, manifest: dict[str, Any] | None, set_name: str,
                          new_hashes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The parent's cases whose bytes differ now (changed or gone): the only ones a diff must read."""
    hashes = _parent_hashes(manifest, set_name)
    if not hashes:
        return {}
    wanted = {cid for cid, h in hashes.items() if new_hashes.get(cid) != h}
    if not wanted:
        return {}
    assert manifest is not None  # it has hashes
    lines = [x for x in (ws.releases_dir / manifest["sets"][set_name]["file"]).read_bytes().splitlines() if x]
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


def create_release(ws: Workspace, version: str, actor: str, holdout: float | None = None, notes: str | None = None,
                   dry_run: bool = False) -> ReleaseResult:
    """Validate every set, stamp pending versions, snapshot, hold out, hash, and write the manifest."""
    ws.require(actor, COMPOSE_ROLES, "creating a release")
    fraction = ws.settings.holdout if holdout is None else holdout
    if not 0 < fraction < 1:
        raise ReleaseError(f"--holdout must be between 0 and 1, got {fraction}")
    versions = list_versions(ws)
    if version in versions:
        raise ReleaseError(f"release {version} exists; releases are never rewritten — pick a new version")
    parent = versions[-1] if versions else None
    if parent and semver_key(version) <= semver_key(parent):
        raise ReleaseError(f"release {version} must be newer than the latest release {parent}")
    with ws.lock("release"), bulk():
        trays: dict[str, tuple[list[dict[str, Any]], list[bytes]]] = {}
        state = registry_state(ws)  # every set's cases are in it: fetched once
        for set_name in ws.settings.sets:
            # read once: validate, stamp and snapshot share the rows and their stored bytes
            cases, raws, problems = read_signed(ws, set_name, set(versions), state)
            trays[set_name] = (cases, raws)
            if problems:
                head = "; ".join(str(p) for p in problems[:3])
                raise ReleaseError(f"set {set_name!r} fails validation ({len(problems)} problem(s): {head}); "
                                   f"run `evaltray tray validate --set {set_name}`")
        parent_manifest = load_manifest(ws, parent) if parent else None
        manifest: dict[str, Any] = {
            "version": version, "parent": parent, "created_at": now_iso(), "created_by": actor,
            "workspace": ws.settings.name, "guide_version": ws.settings.guide_version, "holdout_fraction": fraction,
            "notes": notes, "sets": {}, "changelog": {},
        }
        warnings: list[str] = []
        snaps: dict[str, SetSnapshot] = {}
        stamped: dict[str, int] = {}
        for set_name in ws.settings.sets:
            cases, raws = trays[set_name]
            lines = [restamp(raw, case, version) for raw, case in zip(raws, cases, strict=True)]
            stamped[set_name] = sum(a is not b for a, b in zip(lines, raws, strict=True))
            snap = snapshot(cases, set_name, lines)
            snaps[set_name] = snap
            prev_held = set(parent_manifest["sets"].get(set_name, {}).get("holdout", [])) if parent_manifest else set()
            held = assign_holdout(snap.cases, fraction, prev_held)
            dev = [c for c in snap.cases if c["id"] not in held]
            mix, mix_warnings = source_mix(snap.cases, ws.settings.source_mix)
            warnings += [f"{set_name}: {w}" for w in mix_warnings]
            manifest["sets"][set_name] = {
                "file": f"{version}/{set_name}.jsonl",
                "file_sha256": hashlib.sha256(snap.body).hexdigest(),
                "n_cases": len(snap.cases),
                "content_hash": content_hash_of({set_name: snap.hashes}),
                "cases": snap.hashes,
                "holdout": sorted(held),
                "subsets": {"pr": pr_subset(dev, ws.settings.pr_subset_size)},
                "counts": {
                    "split": {"dev": len(dev), "holdout": len(held)},
                    **axis_counts(snap.cases, held),
                },
                "source_mix": mix,
            }
            old = _changed_parent_cases(ws, parent_manifest, set_name, snap.hashes)
            _parse_changed(snap, set(old))
            manifest["changelog"][set_name] = diff_sets(old, {c["id"]: c for c in snap.cases},
                                                        old_ids=set(_parent_hashes(parent_manifest, set_name)))
        manifest["content_hash"] = content_hash_of({s: snaps[s].hashes for s in sorted(snaps)})
        manifest["warnings"] = warnings
        result = ReleaseResult(version, manifest["content_hash"], manifest, warnings)
        if dry_run:
            return result
        for set_name, snap in snaps.items():
            if stamped[set_name]:
                atomic_write(ws.cases_path(set_name), snap.body)
            atomic_write(ws.releases_dir / version / f"{set_name}.jsonl",
                         snap.body, mode=0o444)
        body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        path = manifest_path(ws, version)
        atomic_write(path, body, mode=0o444)
        with ws.tx() as conn:
            conn.execute(ws.t["releases"].insert().values(
                version=version, status=ReleaseStatus.ACTIVE.value, content_hash=manifest["content_hash"],
                manifest_sha256=hashlib.sha256(body).hexdigest(), created_by=actor, created_at=manifest["created_at"]))
            ws.audit(conn, actor, "release.create", version, content_hash=manifest["content_hash"])
        result.path = path
        return result


# ----------------------------------------------------------------------------- verify, diff, status


def verify_release(ws: Workspace, version: str) -> list[str]:
    """Everything that changed on disk since ``version`` was released; an empty list means intact."""
    path = manifest_path(ws, version)
    if not path.exists():
        raise NotFound(f"no release {version!r}")
    body = path.read_bytes()
    problems = []
    with ws.tx() as conn:
        row = conn.execute(sa.select(ws.t["releases"]).where(ws.t["releases"].c.version == version)).first()
    if row is None:
        problems.append(f"release {version} is not in the workspace's release log")
    elif hashlib.sha256(body).hexdigest() != row.manifest_sha256:
        problems.append(f"{path.name}: manifest changed since release (sha256 differs from the release log)")
    try:
        manifest = orjson.loads(body)
    except orjson.JSONDecodeError:
        return problems + [f"{path.name}: manifest is not valid JSON"]
    all_hashes: dict[str, dict[str, str]] = {}
    for set_name, info in manifest["sets"].items():
        snap_path = ws.releases_dir / info["file"]
        if not snap_path.exists():
            problems.append(f"{info['file']}: snapshot missing")
            continue
        data = snap_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["file_sha256"]:
            problems.append(f"{info['file']}: file sha256 differs from the manifest")
        lines = [line for line in data.splitlines() if line]
        expected = list(info["cases"].items())  # sorted by id, like the snapshot's lines
        if len(lines) == len(expected) and all(
                hashlib.sha256(line).hexdigest() == h for line, (_, h) in zip(lines, expected, strict=True)):
            all_hashes[set_name] = info["cases"]
            continue
        hashes: dict[str, str] = {}
        for lineno, line in enumerate(lines, 1):
            try:
                cid = orjson.loads(line)["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                problems.append(f"{info['file']}:{lineno}: not a case")
                continue
            hashes[cid] = hashlib.sha256(line).hexdigest()
            if info["cases"].get(cid) != hashes[cid]:
                problems.append(f"{info['file']}:{lineno}: case {cid} changed since release")
        for cid in sorted(info["cases"].keys() - hashes.keys()):
            problems.append(f"{info['file']}: case {cid} missing")
        all_hashes[set_name] = info["cases"]
    if content_hash_of({s: all_hashes[s] for s in sorted(all_hashes)}) != manifest.get("content_hash"):
        problems.append(f"{path.name}: content hash does not match the per-case hashes")
    if row is not None and row.content_hash != manifest.get("content_hash"):
        problems.append(f"{path.name}: content hash differs from the release log")
    return problems


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


def select_cases(ws: Workspace, version: str, set_name: str | None = None, split: str = "all",
                 subset: str | None = None) -> list[dict[str, Any]]:
    """Cases of one set of a release: a split (dev/holdout/all) or a named subset."""
    manifest = load_manifest(ws, version)
    set_name = set_name or ws.settings.default_set
    if set_name not in manifest["sets"]:
        raise NotFound(f"release {version} has no set {set_name!r}")
    info = manifest["sets"][set_name]
    cases = load_release_cases(ws, version, set_name)[set_name]
    held = set(info["holdout"])
    if subset is not None:
        if subset not in SUBSETS:
            raise EvaltrayError(f"unknown subset {subset!r} (one of: {', '.join(SUBSETS)})")
        if subset == "pr":
            keep = set(info["subsets"]["pr"])
            return [c for c in cases if c["id"] in keep]
        if subset == "release":
            return [c for c in cases if c["id"] not in held]
        return cases
    if split not in SPLITS:
        raise EvaltrayError(f"unknown split {split!r} (one of: {', '.join(SPLITS)})")
    if split == "dev":
        return [c for c in cases if c["id"] not in held]
    if split == "holdout":
        return [c for c in cases if c["id"] in held]
    return cases


