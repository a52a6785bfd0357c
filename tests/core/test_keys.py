"""Ed25519 key files: where they live, how they are written, and what verifies."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from evaltray.core import keys
from evaltray.core.errors import PermissionDenied


def test_the_config_dir_is_the_env_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert keys.config_dir() == tmp_path / "config"  # the test's own (tests/conftest.py)
    monkeypatch.delenv("EVALTRAY_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert keys.config_dir() == tmp_path / "xdg" / "evaltray"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert keys.config_dir() == tmp_path / "home" / ".config" / "evaltray"


def test_keygen_writes_a_private_pem_and_a_one_line_public_key(tmp_path: Path) -> None:
    key_path, pub_path, public = keys.keygen("carol")
    assert (key_path, pub_path) == (
        tmp_path / "config" / "keys" / "carol.key",
        tmp_path / "config" / "keys" / "carol.pub",
    )
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600 and stat.S_IMODE(os.stat(pub_path).st_mode) == 0o644
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    kind, b64 = public.split()
    assert kind == "ed25519" and len(base64.b64decode(b64)) == 32 and pub_path.read_text() == public + "\n"
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["carol.key", "carol.pub"]  # no temp file left
    signer = keys.load_signer("carol")
    assert signer.public_key == public
    sig = signer.sign(b"hello")
    assert len(base64.b64decode(sig)) == 64
    assert keys.verify(public, sig, b"hello") and not keys.verify(public, sig, b"hullo")
    fp = keys.fingerprint(public)
    assert fp.startswith("SHA256:") and len(fp) == len("SHA256:") + 16


def test_a_key_is_never_overwritten(tmp_path: Path) -> None:
    key_path, _, public = keys.keygen("carol")
    before = key_path.read_bytes()
    with pytest.raises(keys.KeyFileError) as err:
        keys.keygen("carol")
    assert str(err.value) == f"{key_path}: exists; a key is never overwritten (move it away first)"
    assert key_path.read_bytes() == before
    assert keys.ensure_key("carol") == (key_path, public, False)


def test_a_missing_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied) as err:
        keys.load_signer("dave")
    assert str(err.value) == (
        f"no private key for user 'dave' in {tmp_path / 'config' / 'keys'}; run `evaltray user keygen dave` "
        "(and have an admin register its .pub), or pick your own user with -u"
    )


@pytest.mark.parametrize("name", ["../alice", "a/b", "", ".hidden"])
def test_a_name_that_could_leave_the_keys_folder_is_refused(name: str) -> None:
    with pytest.raises(keys.KeyFileError, match="cannot name a key file"):
        keys.key_paths(name)


@pytest.mark.parametrize(
    "signature", [None, "", "not base64!", base64.b64encode(b"x" * 64).decode(), base64.b64encode(b"x").decode()]
)
def test_verify_is_false_for_anything_that_is_not_the_signature(signature: str | None) -> None:
    _, _, public = keys.keygen("carol")
    assert keys.verify(public, signature, b"hello") is False
    assert keys.verify("ed25519 AAAA", keys.load_signer("carol").sign(b"hello"), b"hello") is False


@pytest.mark.parametrize("text", ["ssh-ed25519 AAAA", "ed25519", "ed25519 AAAA", "ed25519 !!!"])
def test_a_public_key_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(keys.KeyFileError, match="not an evaltray public key"):
        keys.normalize_public(text)
