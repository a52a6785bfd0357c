"""Releases: immutability, hashing, the stable stratified holdout, subsets and diffs."""

from __future__ import annotations

import hashlib
import os
import re
import stat

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaltray.core.errors import EvaltrayError, ReleaseError
from evaltray.core.records import Release
from evaltray.tray import gate, release, tasks
from evaltray.tray import review as rev
from evaltray.tray.casefile import load_cases
from evaltray.tray.export import export_release
from evaltray.tray.release import content_hash_of
from tests.helpers import labeled_candidate, tray_of


def test_release_create_verify_and_tamper(ws):
    tray_of(ws, {"refunds": 6, "shipping": 4})
    r = release.create_release(ws, "1.0.0", "alice")
    info = r.manifest.sets["main"]
    assert info.n_cases == 10 and info.counts.split == {"dev": 8, "holdout": 2}
    assert info.counts.holdout_by_slice == {"refunds": 1, "shipping": 1}
    assert r.manifest.changelog["main"]["summary"]["added"] == 10
    assert release.verify_release(ws, "1.0.0") == []
    # pending versions were stamped in the tray and the snapshot
    assert {c["version"]["added"] for c in load_cases(ws, "main").values()} == {"1.0.0"}
    assert gate.validate(ws) == []
    snap = ws.releases_dir / "1.0.0" / "main.jsonl"
    assert stat.S_IMODE(os.stat(snap).st_mode) == 0o444
    # change one byte of one case
    os.chmod(snap, 0o644)
    lines = snap.read_bytes().splitlines()
    case = orjson.loads(lines[3])
    lines[3] = lines[3].replace(b'"medium"', b'"hard"', 1)
    snap.write_bytes(b"\n".join(lines) + b"\n")
    changed = [
        "1.0.0/main.jsonl: file sha256 differs from the manifest",
        f"1.0.0/main.jsonl:4: case {case['id']} changed since release",
    ]
    assert release.verify_release(ws, "1.0.0") == changed
    assert release.verify_release(ws, "1.0.0", deep=True) == [
        *changed,
        f"1.0.0/main: case {case['id']}: promotion signature by 'alice' is invalid: the row differs from what "
        "was promoted, or the signature is not theirs",
    ]


#: A manifest as evaltray writes it (sorted keys, two-space indent, a final newline), written out by hand.
MANIFEST = b"""{
  "audit_anchor": {
    "hash": "ab12",
    "id": 7,
    "rows": 7
  },
  "changelog": {
    "main": {
      "added": [
        "c-1"
      ],
      "by_slice": {
        "added": {
          "refunds": 1
        },
        "relabeled": {},
        "retired": {}
      },
      "by_source": {
        "added": {
          "sme": 1
        },
        "relabeled": {},
        "retired": {}
      },
      "edited": [],
      "relabeled": [],
      "retired": [],
      "summary": {
        "added": 1,
        "edited": 0,
        "relabeled": 0,
        "retired": 0,
        "superseded": 0
      },
      "superseded": []
    }
  },
  "content_hash": "abc",
  "created_at": "2026-01-01T00:00:00+00:00",
  "created_by": "alice",
  "guide_version": "1",
  "holdout_fraction": 0.2,
  "notes": null,
  "parent": null,
  "sets": {
    "main": {
      "cases": {
        "c-1": "h1"
      },
      "content_hash": "def",
      "counts": {
        "case_type": {
          "typical": 1
        },
        "difficulty": {
          "medium": 1
        },
        "holdout_by_slice": {},
        "slice": {
          "refunds": 1
        },
        "source": {
          "sme": 1
        },
        "split": {
          "dev": 1,
          "holdout": 0
        }
      },
      "file": "1.0.0/main.jsonl",
      "file_sha256": "f00",
      "holdout": [],
      "n_cases": 1,
      "source_mix": {
        "actual": {
          "sme": 1.0
        },
        "by_slice": {
          "refunds": {
            "sme": 1
          }
        },
        "target": {
          "production": 0.5
        }
      },
      "subsets": {
        "pr": [
          "c-1"
        ]
      }
    }
  },
  "signature": "c2lnbmF0dXJl",
  "version": "1.0.0",
  "warnings": [
    "main: slice 'refunds' comes from a single source (sme, 1 cases)"
  ],
  "workspace": "shop"
}
"""


def test_manifest_round_trips_byte_for_byte():
    m = Release.from_json(MANIFEST)
    info = m.sets["main"]
    assert (m.version, m.parent, m.holdout_fraction, m.notes) == ("1.0.0", None, 0.2, None)
    assert info.counts.split == {"dev": 1, "holdout": 0} and info.subsets == {"pr": ["c-1"]}
    assert info.source_mix.actual == {"sme": 1.0} and m.changelog["main"]["summary"]["added"] == 1
    assert m.audit_anchor == {"hash": "ab12", "id": 7, "rows": 7} and m.signature == "c2lnbmF0dXJl"
    assert m.to_json() == MANIFEST


def test_written_manifest_is_the_typed_record(ws):
    tray_of(ws, {"refunds": 3, "shipping": 2})
    r = release.create_release(ws, "1.0.0", "alice")
    body = (ws.releases_dir / "1.0.0.json").read_bytes()
    assert r.manifest.to_json() == body
    assert release.load_manifest(ws, "1.0.0") == r.manifest
    assert Release.from_json(body).to_json() == body


def test_misshapen_manifest_is_reported_not_raised(ws):
    tray_of(ws, {"refunds": 2})
    release.create_release(ws, "1.0.0", "alice")
    path = ws.releases_dir / "1.0.0.json"
    os.chmod(path, 0o644)
    path.write_bytes(b'{"version": "1.0.0"}')
    changed = "1.0.0.json: manifest changed since release (sha256 differs from the release log)"
    # a manifest that is not the one released is refused whole: nothing in it is worth checking
    assert release.verify_release(ws, "1.0.0") == [changed]
    with pytest.raises(ReleaseError, match=rf"^{re.escape(changed)}; run `evaltray release verify 1.0.0`$"):
        release.load_manifest(ws, "1.0.0")
    with pytest.raises(ReleaseError, match=r"^1.0.0.json: not a release manifest \(KeyError: 'sets'\)$"):
        Release.from_json(path.read_bytes(), path.name)
    path.write_bytes(b"{oops")
    assert release.verify_release(ws, "1.0.0") == [changed]
    with pytest.raises(ReleaseError, match=r"^1.0.0.json: manifest is not valid JSON$"):
        Release.from_json(path.read_bytes(), path.name)


def test_manifest_tamper_is_detected(ws):
    tray_of(ws, {"refunds": 3})
    release.create_release(ws, "1.0.0", "alice")
    path = ws.releases_dir / "1.0.0.json"
    os.chmod(path, 0o644)
    m = orjson.loads(path.read_bytes())
    m["notes"] = "edited later"
    path.write_bytes(orjson.dumps(m))
    assert release.verify_release(ws, "1.0.0") == [
        "1.0.0.json: manifest changed since release (sha256 differs from the release log)"
    ]


def test_versions_are_semantic_increasing_and_never_rewritten(ws):
    tray_of(ws, {"refunds": 2})
    release.create_release(ws, "1.0.0", "alice")
    with pytest.raises(ReleaseError, match="release 1.0.0 exists; releases are never rewritten"):
        release.create_release(ws, "1.0.0", "alice")
    with pytest.raises(ReleaseError, match="release 0.9.0 must be newer than the latest release 1.0.0"):
        release.create_release(ws, "0.9.0", "alice")
    with pytest.raises(ReleaseError, match="'v2' is not a semantic version"):
        release.create_release(ws, "v2", "alice")


def test_release_refuses_an_invalid_tray(ws):
    tray_of(ws, {"refunds": 2})
    path = ws.cases_path("main")
    path.write_bytes(path.read_bytes() + b"{broken\n")
    with pytest.raises(ReleaseError, match=r"set 'main' fails validation \(1 problem\(s\): line 3: not valid JSON\)"):
        release.create_release(ws, "1.0.0", "alice")


def test_dry_run_writes_nothing(ws):
    tray_of(ws, {"refunds": 2})
    before = ws.cases_path("main").read_bytes()
    r = release.create_release(ws, "1.0.0", "alice", dry_run=True)
    assert r.path is None and not (ws.releases_dir / "1.0.0.json").exists()
    assert ws.cases_path("main").read_bytes() == before


def test_diff_and_changelog_separate_relabels_from_new_coverage(ws):
    tray_of(ws, {"refunds": 5, "shipping": 5})
    release.create_release(ws, "1.0.0", "alice")
    cases = load_cases(ws, "main")
    ids = sorted(cases)
    reg = {r["id"]: r for r in gate.case_registry(ws)}
    rev.record_review(
        ws,
        reg[ids[0]]["candidate_id"],
        "alice",
        rev.normalize_expected(ws, "alice", reference="A corrected answer."),
        sign=True,
    )
    gate.promote(ws, "alice")
    gate.retire(ws, ids[1], "feature removed", "alice")
    labeled_candidate(ws, "a new returns question", slice="returns", source="production")
    gate.promote(ws, "alice")
    r2 = release.create_release(ws, "1.1.0", "alice")
    d = release.diff_releases(ws, "1.0.0", "1.1.0")["sets"]["main"]
    assert d["summary"] == {"added": 1, "retired": 1, "superseded": 0, "relabeled": 1, "edited": 0}
    assert d["relabeled"] == [ids[0]] and d["retired"] == [ids[1]]
    assert d["by_slice"]["added"] == {"returns": 1}
    assert d["by_source"]["added"] == {"production": 1}
    assert r2.manifest.changelog["main"]["summary"] == d["summary"]
    new = load_cases(ws, "main")
    assert new[ids[0]]["version"] == {"added": "1.0.0", "last_changed": "1.1.0"}
    # the 1.0.0 snapshot is untouched and still verifies
    assert release.verify_release(ws, "1.0.0") == [] and release.verify_release(ws, "1.1.0") == []
    old_held = set(orjson.loads((ws.releases_dir / "1.0.0.json").read_bytes())["sets"]["main"]["holdout"])
    assert old_held - {ids[1]} <= set(r2.manifest.sets["main"].holdout)


def test_dev_split_never_contains_holdout(ws):
    tray_of(ws, {"a": 7, "b": 8, "c": 9})
    r = release.create_release(ws, "1.0.0", "alice")
    held = set(r.manifest.sets["main"].holdout)
    dev = {c["id"] for c in release.select_cases(ws, "1.0.0", split="dev")}
    hold = {c["id"] for c in release.select_cases(ws, "1.0.0", split="holdout")}
    pr = {c["id"] for c in release.select_cases(ws, "1.0.0", subset="pr")}
    assert hold == held and not dev & held and pr <= dev
    assert len(dev) + len(hold) == 24
    assert {c["id"] for c in release.select_cases(ws, "1.0.0", split="all")} == dev | hold
    assert {c["id"] for c in release.select_cases(ws, "1.0.0", subset="release")} == dev
    # the whole tray is `--split all`; the drift monitor defines its own baseline
    with pytest.raises(EvaltrayError, match=r"unknown subset 'drift-baseline' \(one of: pr, release\)"):
        release.select_cases(ws, "1.0.0", subset="drift-baseline")


def test_single_source_slice_and_mix_warnings(ws):
    tray_of(ws, {"refunds": 3})
    r = release.create_release(ws, "1.0.0", "alice")
    assert "main: slice 'refunds' comes from a single source (sme, 3 cases)" in r.warnings
    assert "main: source sme: 100% of the tray against a target of 15%" in r.warnings
    mix = r.manifest.sets["main"].source_mix
    assert mix.actual == {"sme": 1.0} and mix.target["production"] == 0.5


def test_an_empty_release_is_created_with_a_warning(ws):
    r = release.create_release(ws, "0.1.0", "alice")
    assert r.warnings == [
        "the release holds no case: every set's tray is empty (`evaltray promote` moves signed cases in)"
    ]
    assert release.load_manifest(ws, "0.1.0").warnings == r.warnings
    tray_of(ws, {"refunds": 3})  # one set with cases is enough: the empty edge set is no warning
    assert not any("holds no case" in w for w in release.create_release(ws, "0.2.0", "alice").warnings)


_case = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"c-[0-9a-f]{4}", fullmatch=True),
        "expected": st.text(max_size=8),
        "slice": st.sampled_from(["a", "b"]),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(_case, min_size=1, max_size=8, unique_by=lambda c: c["id"]), data=st.data())
def test_release_hash_changes_iff_content_changes(cases, data):
    snap = release.snapshot(cases, "main")
    h = content_hash_of({"main": snap.hashes})
    # same content in another order: same hash
    shuffled = data.draw(st.permutations(cases))
    assert content_hash_of({"main": release.snapshot(list(shuffled), "main").hashes}) == h
    # any field change: a different hash
    i = data.draw(st.integers(0, len(cases) - 1))
    new_value = data.draw(st.text(max_size=8).filter(lambda v: v != cases[i]["expected"]))
    changed = [dict(c) for c in cases]
    changed[i]["expected"] = new_value
    assert content_hash_of({"main": release.snapshot(changed, "main").hashes}) != h
    # dropping a case: a different hash
    if len(cases) > 1:
        assert content_hash_of({"main": release.snapshot(cases[1:], "main").hashes}) != h


def test_diff_names_superseded_cases(ws):
    from evaltray.tray import candidates as pool

    tray_of(ws, {"refunds": 3})
    release.create_release(ws, "1.0.0", "alice")
    old_id = sorted(load_cases(ws, "main"))[0]
    new = pool.add_manual(
        ws,
        "alice",
        "sme",
        [{"role": "user", "content": "a reworded refund question"}],
        labels={"feature": "refunds", "tags": []},
        slice="refunds",
        difficulty="easy",
        case_type="typical",
        supersedes=old_id,
    )
    rev.record_review(ws, new, "alice", rev.normalize_expected(ws, "alice", reference="Yes."), sign=True)
    (p,) = gate.promote(ws, "alice").promoted
    r2 = release.create_release(ws, "1.1.0", "alice")
    d = r2.manifest.changelog["main"]
    assert d["superseded"] == [{"old": old_id, "new": p.case_id}]
    assert d["summary"] == {"added": 0, "retired": 0, "superseded": 1, "relabeled": 0, "edited": 0}
    assert release.diff_releases(ws, "1.0.0", "1.1.0")["sets"]["main"]["summary"] == d["summary"]


def test_a_tampered_and_rehashed_release_is_refused(ws):
    tray_of(ws, {"refunds": 3})
    release.create_release(ws, "1.0.0", "alice")
    snap, path = ws.releases_dir / "1.0.0" / "main.jsonl", ws.releases_dir / "1.0.0.json"
    os.chmod(snap, 0o644)
    os.chmod(path, 0o644)
    # an attacker edits one case, then recomputes every hash the manifest holds
    lines = snap.read_bytes().splitlines()
    lines[0] = lines[0].replace(b'"medium"', b'"hard"', 1)
    body = b"".join(line + b"\n" for line in lines)
    snap.write_bytes(body)
    m = orjson.loads(path.read_bytes())
    info = m["sets"]["main"]
    info["cases"] = {orjson.loads(line)["id"]: hashlib.sha256(line).hexdigest() for line in lines}
    info["file_sha256"] = hashlib.sha256(body).hexdigest()
    info["content_hash"] = content_hash_of({"main": info["cases"]})
    m["content_hash"] = content_hash_of({s: m["sets"][s]["cases"] for s in sorted(m["sets"])})
    path.write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    changed = "1.0.0.json: manifest changed since release (sha256 differs from the release log)"
    assert release.verify_release(ws, "1.0.0") == [changed]
    refused = rf"^{re.escape(changed)}; run `evaltray release verify 1.0.0`$"
    with pytest.raises(ReleaseError, match=refused):
        export_release(ws, "1.0.0", to="jsonl", split="all")
    with pytest.raises(ReleaseError, match=refused):
        release.select_cases(ws, "1.0.0")
    assert not (ws.root / "exports").exists()


def test_an_export_refuses_a_snapshot_that_differs_from_its_manifest(ws):
    tray_of(ws, {"refunds": 3})
    release.create_release(ws, "1.0.0", "alice")
    snap = ws.releases_dir / "1.0.0" / "main.jsonl"
    os.chmod(snap, 0o644)
    snap.write_bytes(snap.read_bytes().replace(b'"medium"', b'"hard"', 1))
    with pytest.raises(
        ReleaseError,
        match=r"^1\.0\.0/main\.jsonl: file sha256 differs from the manifest; run `evaltray release verify 1\.0\.0`$",
    ):
        export_release(ws, "1.0.0", to="jsonl", split="all")
    snap.unlink()
    with pytest.raises(ReleaseError, match=r"^1\.0\.0/main\.jsonl: snapshot missing; run `evaltray release verify"):
        export_release(ws, "1.0.0", to="jsonl", split="all")


def test_a_version_with_a_trailing_newline_is_refused_by_the_api(ws):
    # the CLI checked it; the API's pattern ended in `$`, which matches before a trailing newline
    with pytest.raises(ReleaseError, match="is not a semantic version"):
        release.create_release(ws, "2.0.0\n", "alice")


def test_rows_under_revalidation_are_named_in_a_release_warning(ws):
    promoted = tray_of(ws, {"refunds": 3}).promoted
    ids = sorted(p.case_id for p in promoted)
    for cid in ids[:2]:
        tasks.open_task(ws, "revalidate", cid, reason="policy changed", actor="alice")
    tasks.open_task(ws, "revalidate", "c-not-in-any-set", reason="gone", actor="alice")
    assert tasks.awaiting_revalidation(ws, "main") == ids[:2]
    assert tasks.awaiting_revalidation(ws, "edge") == []
    r = release.create_release(ws, "1.0.0", "alice")
    warned = [w for w in r.warnings if "re-validation" in w]
    assert warned == [
        f"main: 2 row(s) under re-validation, not re-signed yet, go out as last signed: {ids[0]}, {ids[1]} "
        "(`evaltray tasks list --kind revalidate --status open`)"
    ]
    assert r.manifest.sets["main"].n_cases == 3  # named, not dropped
