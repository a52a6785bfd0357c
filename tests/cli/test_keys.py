"""``evaltray user keygen / add --key / list``: keys are made, registered and shown; `-u` only picks a key."""

from __future__ import annotations

import json
import os
import stat

from evaltray.core import keys

from .runner import ADD_PAYPAL_CASE, run


def test_keygen_add_and_list(shop, tmp_path):
    r = run("--user", "carol", "user", "keygen", "--json")  # NAME defaults to the acting user
    made = json.loads(r.stdout)
    key_dir = tmp_path / "config" / "keys"
    assert (made["name"], made["key"], made["public_key_file"]) == (
        "carol",
        str(key_dir / "carol.key"),
        str(key_dir / "carol.pub"),
    )
    assert stat.S_IMODE(os.stat(key_dir / "carol.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_dir / "carol.pub").st_mode) == 0o644
    assert (key_dir / "carol.pub").read_text() == made["public_key"] + "\n"
    assert made["fingerprint"] == keys.fingerprint(made["public_key"])
    r = run("user", "keygen", "carol", ok=False)  # a key is never overwritten
    assert r.stderr == f"Error: {key_dir / 'carol.key'}: exists; a key is never overwritten (move it away first)\n"
    r = run("user", "add", "carol", "--role", "adjudicator", ok=False)
    assert r.stderr.startswith("Error: the adjudicator role signs, so 'carol' needs a public key")
    r = run("users", "add", "carol", "--role", "adjudicator", "--key", str(key_dir / "carol.pub"))  # the old name
    assert r.stdout == f"carol: adjudicator (key {made['fingerprint']})\n"
    run("user", "add", "bob", "--role", "labeler")  # a labeler's labels are claims until signed off: no key needed
    listed = {u["name"]: u["fingerprint"] for u in json.loads(run("user", "list", "--json").stdout)}
    assert listed == {
        "alice": keys.fingerprint(keys.load_signer("alice").public_key),
        "bob": None,
        "carol": made["fingerprint"],
    }
    (key_dir / "bad.pub").write_text("ssh-rsa AAAA\n")
    r = run("user", "add", "dave", "--role", "admin", "--key", str(key_dir / "bad.pub"), ok=False)
    assert r.stderr == f"Error: {key_dir / 'bad.pub'}: not an evaltray public key (want one line `ed25519 BASE64`)\n"


def test_init_makes_the_admins_key_and_says_where(tmp_path):
    r = run("--user", "zoe", "init", "ws2", "--json")
    key = tmp_path / "config" / "keys" / "zoe.key"
    assert json.loads(r.stdout)["key"] == str(key) and key.exists()
    assert f"Made the admin's signing key {key}" in r.stderr


def test_a_user_named_without_their_key_is_refused(shop, tmp_path):
    run("--user", "carol", "user", "keygen")
    run("user", "add", "carol", "--role", "adjudicator", "--key", str(tmp_path / "config" / "keys" / "carol.pub"))
    cid = json.loads(run("candidates", "add", "--json").stdout)["added"][0]
    (tmp_path / "config" / "keys" / "carol.key").rename(tmp_path / "carol.key")  # carol's key stays with carol
    r = run("--user", "carol", "signoff", cid, ok=False)
    assert r.exit_code == 1
    assert r.stderr == (
        f"Error: no private key for user 'carol' in {tmp_path / 'config' / 'keys'}; run `evaltray user keygen "
        "carol` (and have an admin register its .pub), or pick your own user with -u\n"
    )


def test_validate_names_a_forged_row_and_its_signature(shop):
    run(*ADD_PAYPAL_CASE)
    run("promote")
    path = shop / "sets" / "main" / "cases.jsonl"
    row = json.loads(path.read_text())
    row["validation"]["promotion_signature"] = None
    path.write_text(json.dumps(row, separators=(",", ":")) + "\n")
    r = run("tray", "validate", "--set", "main", ok=False)
    assert (
        f"line 1 {row['id']}: promotion has no signature (validation.promotion_signature): not proved, refused"
        in r.stdout
    )
