"""Sign-offs and promotions are proved by signatures: every forgery route of issue 16 ends in a refusal
that names the case and the missing or invalid signature."""

from __future__ import annotations

import hashlib
import os
import shutil

import orjson
import pytest
import sqlalchemy as sa

from evaltray.core import keys
from evaltray.core.errors import EvaltrayError, PermissionDenied, ReleaseError
from evaltray.core.records import Release
from evaltray.tray import gate, release
from evaltray.tray import review as rev
from evaltray.tray.casefile import signed_hash
from evaltray.tray.export import export_release
from evaltray.tray.release import content_hash_of
from tests.helpers import labeled_candidate, register

SIGNOFF_INVALID = (
    "sign-off signature by 'carol' is invalid: it does not verify against their registered keys for this "
    "case's label (label edited after sign-off, or a signature copied from elsewhere)"
)


def _unsigned(ws, text: str) -> str:
    return labeled_candidate(ws, text, sign=False)


def _move_key_away(name: str) -> None:
    key_path, _ = keys.key_paths(name)
    key_path.rename(key_path.with_suffix(".away"))


def _problems(ws) -> list[str]:
    return [str(p) for p in gate.validate(ws)]


def test_a_sign_off_made_without_the_signers_private_key_is_refused(ws):
    register(ws, "carol", "adjudicator")
    cid = _unsigned(ws, "Can I return shoes?")
    _move_key_away("carol")  # anyone can type `-u carol`; only carol holds her key
    with pytest.raises(PermissionDenied) as err:
        rev.sign_off(ws, [cid], "carol")
    key_dir = keys.config_dir() / "keys"
    assert str(err.value) == (
        f"no private key for user 'carol' in {key_dir}; run `evaltray user keygen carol` "
        "(and have an admin register its .pub), or pick your own user with -u"
    )
    assert rev.latest_review(ws, cid).signed_by is None


def test_a_key_that_is_not_the_registered_one_is_refused(ws):
    registered = register(ws, "carol", "adjudicator")
    cid = _unsigned(ws, "Can I return shoes?")
    _move_key_away("carol")
    keys.key_paths("carol")[1].unlink()
    _, _, other = keys.keygen("carol")  # a key of the same name, not the one the admin registered
    with pytest.raises(PermissionDenied) as err:
        rev.sign_off(ws, [cid], "carol")
    assert str(err.value) == (
        f"the private key for user 'carol' in this config dir ({keys.fingerprint(other)}) is not the one "
        f"registered for them ({keys.fingerprint(registered)})"
    )
    with pytest.raises(PermissionDenied):  # every writing call needs the key, not only signing
        gate.promote(ws, "carol")


def test_a_sign_off_replayed_from_another_case_does_not_promote(ws):
    register(ws, "carol", "adjudicator")
    signed, forged = _unsigned(ws, "Can I return shoes?"), _unsigned(ws, "Can I return a sofa?")
    rev.sign_off(ws, [signed], "carol")
    reviews = ws.t["reviews"]
    with ws.tx() as conn:  # copy what the legitimate sign-off wrote onto the other case's review
        done = conn.execute(sa.select(reviews).where(reviews.c.candidate_id == signed)).one()
        conn.execute(
            reviews.update()
            .where(reviews.c.candidate_id == forged)
            .values(signed_by=done.signed_by, signed_at=done.signed_at, signoff_signature=done.signoff_signature)
        )
    report = gate.promote(ws, "alice")
    assert [p.candidate_id for p in report.promoted] == [signed]
    assert report.blocked == [(forged, [SIGNOFF_INVALID])]


def test_a_sign_off_row_without_a_signature_does_not_promote(ws):
    register(ws, "carol", "adjudicator")
    cid = _unsigned(ws, "Can I return shoes?")
    reviews = ws.t["reviews"]
    with ws.tx() as conn:  # the state database edited by hand: a sign-off claimed, never signed
        conn.execute(
            reviews.update()
            .where(reviews.c.candidate_id == cid)
            .values(signed_by="carol", signed_at="2026-12-01T00:00:00Z")
        )
    assert gate.promote(ws, "alice").blocked == [
        (cid, ["sign-off by 'carol' has no signature (validation.signoff_signature): not proved, refused"])
    ]


def test_imported_labels_never_sign_and_never_promote(ws, tmp_path):
    register(ws, "carol", "adjudicator")
    ws.add_user("bob", "labeler", actor="alice")
    cid = _unsigned(ws, "Can I return shoes?")
    for actor in ("bob", "alice"):  # a labeler, and an admin who could sign: the file asks, and is refused
        path = tmp_path / f"{actor}.csv"
        path.write_text(f"candidate_id,expected,labeled_by,signoff\n{cid},Yes within 30 days,carol,yes\n")
        with pytest.raises(EvaltrayError, match="asks for a sign-off; imported labels are never signed off"):
            rev.import_labels(ws, path, actor)
    path.write_text(f"candidate_id,expected,labeled_by\n{cid},Yes within 30 days,carol\n")
    assert len(rev.import_labels(ws, path, "bob").imported) == 1
    assert gate.promote(ws, "alice").blocked == [
        (cid, ["not signed off: an adjudicator must sign the label (`evaltray signoff`)"])
    ]


def _edit_row_and_registry(ws, edit) -> dict:
    """Edit the tray's only row with ``edit`` and recompute its registry hash, as a forger with write access
    to the files and the state database would."""
    (line,) = ws.cases_path("main").read_bytes().splitlines()
    row = orjson.loads(line)
    edit(row)
    ws.cases_path("main").write_bytes(orjson.dumps(row) + b"\n")
    cases = ws.t["cases"]
    with ws.tx() as conn:
        conn.execute(cases.update().where(cases.c.id == row["id"]).values(content_hash=signed_hash(row)))
    return row


def test_an_expected_answer_edited_with_its_registry_hash_recomputed_is_caught(ws):
    register(ws, "carol", "adjudicator")
    cid = _unsigned(ws, "Can I return shoes?")
    rev.sign_off(ws, [cid], "carol")
    gate.promote(ws, "alice")
    assert _problems(ws) == []
    row = _edit_row_and_registry(ws, lambda r: r["expected"].update(reference="Sure, always, no receipt."))
    assert _problems(ws) == [
        f"line 1 {row['id']}: {SIGNOFF_INVALID}",
        f"line 1 {row['id']}: promotion signature by 'alice' is invalid: the row differs from what was "
        "promoted, or the signature is not theirs",
    ]
    with pytest.raises(ReleaseError) as err:
        release.create_release(ws, "1.0.0", "alice")
    assert f"line 1 {row['id']}: sign-off signature by 'carol' is invalid" in str(err.value)


def test_a_row_whose_signatures_were_stripped_is_caught(ws):
    cid = labeled_candidate(ws, "Can I return shoes?")
    gate.promote(ws, "alice")
    row = _edit_row_and_registry(
        ws, lambda r: r["validation"].update(signoff_signature=None, promoted_by=None, promotion_signature=None)
    )
    assert rev.latest_review(ws, cid).signoff_signature  # the database still has it; the row must carry it
    assert _problems(ws) == [
        f"line 1 {row['id']}: sign-off by 'alice' has no signature (validation.signoff_signature): not proved, refused",
        f"line 1 {row['id']}: promotion has no signature (validation.promotion_signature): not proved, refused",
    ]


def _rehash_release(ws, version: str, edit) -> str:
    """Edit the release's only case with ``edit`` and recompute every hash: the line's, the file's, the
    manifest's content hash, and the manifest's sha256 and content hash in the release log."""
    manifest = release.load_manifest(ws, version)
    info = manifest.sets["main"]
    snap = ws.releases_dir / info.file
    os.chmod(snap, 0o644)
    (line,) = snap.read_bytes().splitlines()
    row = orjson.loads(line)
    edit(row)
    line = orjson.dumps(row)
    snap.write_bytes(line + b"\n")
    info.cases[row["id"]] = hashlib.sha256(line).hexdigest()
    info.file_sha256 = hashlib.sha256(line + b"\n").hexdigest()
    info.content_hash = content_hash_of({"main": info.cases})
    manifest.content_hash = content_hash_of({s: manifest.sets[s].cases for s in sorted(manifest.sets)})
    body = manifest.to_json()
    path = release.manifest_path(ws, version)
    os.chmod(path, 0o644)
    path.write_bytes(body)
    releases = ws.t["releases"]
    with ws.tx() as conn:
        conn.execute(
            releases.update()
            .where(releases.c.version == version)
            .values(manifest_sha256=hashlib.sha256(body).hexdigest(), content_hash=manifest.content_hash)
        )
    return row["id"]


def test_a_released_row_edited_with_every_hash_recomputed_fails_verify_and_export(ws):
    register(ws, "carol", "adjudicator")
    rev.sign_off(ws, [_unsigned(ws, "Can I return shoes?")], "carol")
    gate.promote(ws, "alice")
    release.create_release(ws, "1.0.0", "alice", holdout=0.5)
    assert release.verify_release(ws, "1.0.0") == []
    case_id = _rehash_release(ws, "1.0.0", lambda r: r["expected"].update(reference="Sure, always."))
    manifest_invalid = (
        "1.0.0.json: release 1.0.0: manifest signature by 'alice' is invalid (edited after release, or not "
        "signed with their registered key)"
    )
    assert release.verify_release(ws, "1.0.0") == [manifest_invalid]  # the signed manifest covers every row
    assert release.verify_release(ws, "1.0.0", deep=True) == [
        manifest_invalid,
        f"1.0.0/main: case {case_id}: {SIGNOFF_INVALID}",
        f"1.0.0/main: case {case_id}: promotion signature by 'alice' is invalid: the row differs from what was "
        "promoted, or the signature is not theirs",
    ]
    with pytest.raises(ReleaseError) as err:
        export_release(ws, "1.0.0", to="jsonl", split="all", actor="alice")
    assert str(err.value) == (
        "release 1.0.0 fails its signature check (1 problem(s): release 1.0.0: manifest signature by 'alice' is "
        "invalid (edited after release, or not signed with their registered key)); "
        "run `evaltray release verify 1.0.0`"
    )


def test_a_replaced_key_still_verifies_what_it_signed(ws):
    register(ws, "carol", "adjudicator")
    first = _unsigned(ws, "Can I return shoes?")
    rev.sign_off(ws, [first], "carol")
    gate.promote(ws, "alice")
    _move_key_away("carol")
    keys.key_paths("carol")[1].unlink()
    _, _, new_key = keys.keygen("carol")
    ws.add_user("carol", "adjudicator", actor="alice", public_key=new_key)
    second = _unsigned(ws, "Can I return a sofa?")
    rev.sign_off(ws, [second], "carol")  # with the new key
    assert [p.candidate_id for p in gate.promote(ws, "alice").promoted] == [second]
    assert _problems(ws) == []  # the first row, signed with the old key, still verifies
    assert len(ws.registered_keys()["carol"]) == 2


def test_rows_released_and_signed_are_not_checked_again_but_a_later_edit_is(ws, monkeypatch):
    labeled_candidate(ws, "Can I return shoes?")
    gate.promote(ws, "alice")
    release.create_release(ws, "1.0.0", "alice")
    calls = []
    monkeypatch.setattr(gate, "prove_rows", lambda lines, k: calls.extend(cid for _, cid, _ in lines) or [])
    assert _problems(ws) == [] and calls == []  # the line is as 1.0.0 holds it, which alice signed
    monkeypatch.undo()
    row = _edit_row_and_registry(ws, lambda r: r["notes"] is None and r.update(notes="edited"))
    assert _problems(ws) == [
        f"line 1 {row['id']}: promotion signature by 'alice' is invalid: the row differs from what was "
        "promoted, or the signature is not theirs"
    ]


def test_the_audit_log_cut_at_its_end_is_caught_by_the_release_anchor(ws):
    labeled_candidate(ws, "Can I return shoes?")
    gate.promote(ws, "alice")
    made = release.create_release(ws, "1.0.0", "alice")
    anchor = made.manifest.audit_anchor
    audit = ws.t["audit"]
    with ws.tx() as conn:
        last = conn.execute(sa.select(sa.func.max(audit.c.id))).scalar()
    assert anchor["id"] == last - 1 and anchor["rows"] == last - 1  # release.create is written after it
    assert release.audit_anchor_problems(ws) == []
    with ws.tx() as conn:  # the release.create row cut off the end: the chain alone cannot tell
        conn.execute(audit.delete().where(audit.c.id == last))
    assert ws.verify_audit().problem is None
    assert release.audit_anchor_problems(ws) == [
        f"release 1.0.0: the audit log lacks the release.create row after row {anchor['id']} "
        "(rows cut from the end of the log)"
    ]
    with ws.tx() as conn:  # and the anchored row itself
        conn.execute(audit.delete().where(audit.c.id >= anchor["id"]))
    assert ws.verify_audit().problem is None
    assert release.audit_anchor_problems(ws) == [
        f"release 1.0.0: the audit log no longer holds row {anchor['id']} as the release anchored it "
        "(rows cut from the end of the log, or rewritten)"
    ]


def test_a_manifest_keeps_its_signature_and_anchor(ws):
    labeled_candidate(ws, "Can I return shoes?")
    gate.promote(ws, "alice")
    release.create_release(ws, "1.0.0", "alice")
    body = release.manifest_path(ws, "1.0.0").read_bytes()
    manifest = Release.from_json(body)
    assert manifest.signature and set(manifest.audit_anchor) == {"id", "hash", "rows"}
    shutil.copy(release.manifest_path(ws, "1.0.0"), ws.root / "copy.json")
    assert Release.from_json((ws.root / "copy.json").read_bytes()).to_json() == body
