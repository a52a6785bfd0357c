"""Ed25519 key pairs: who signs a sign-off, a promotion or a release is proved by a key, not claimed by a name.

Each person's keys live in their own config directory (``$EVALTRAY_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/evaltray``, else ``~/.config/evaltray``), under ``keys/``: ``<name>.key`` (PKCS8 PEM,
unencrypted, 0600, never overwritten) and ``<name>.pub`` (one line, ``ed25519 <base64 raw public key>``),
which an admin registers in the workspace (``evaltray user add NAME --role R --key NAME.pub``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import EvaltrayError, PermissionDenied

CONFIG_ENV = "EVALTRAY_CONFIG_DIR"
#: The only key type: ``ed25519 <base64 of the 32-byte raw public key>``.
KEY_TYPE = "ed25519"
#: A key file's name is the user's name; anything that could leave ``keys/`` is refused.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


class KeyFileError(EvaltrayError):
    """A key file is missing, unreadable, or not an Ed25519 key."""


def config_dir() -> Path:
    """The user's evaltray config directory (not created)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "evaltray"


def key_paths(name: str) -> tuple[Path, Path]:
    """Where ``name``'s private and public key live."""
    if not _SAFE_NAME.match(name):
        raise KeyFileError(f"{name!r} cannot name a key file (letters, digits, '.', '_', '@', '-')")
    keys = config_dir() / "keys"
    return keys / f"{name}.key", keys / f"{name}.pub"


def public_text(key: Ed25519PublicKey) -> str:
    """The one-line text form of a public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{KEY_TYPE} {base64.b64encode(raw).decode('ascii')}"


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key from its one-line text form; :class:`KeyFileError` when it is not one."""
    parts = text.strip().split()
    if len(parts) != 2 or parts[0] != KEY_TYPE:
        raise KeyFileError(f"not an evaltray public key (want one line `{KEY_TYPE} BASE64`)")
    try:
        raw = base64.b64decode(parts[1], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise KeyFileError("not an evaltray public key (its base64 is not 32 bytes of an Ed25519 key)") from None


def normalize_public(text: str) -> str:
    """``text`` checked and rewritten in its canonical one-line form."""
    return public_text(parse_public(text))


def fingerprint(text: str) -> str:
    """A short name for a public key: ``SHA256:`` and the first 16 hex digits of the raw key's sha256."""
    raw = parse_public(text).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """A user's private key, loaded: signs messages as ``name``."""

    name: str
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return public_text(self.key.public_key())

    def sign(self, message: bytes) -> str:
        """The base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self.key.sign(message)).decode("ascii")


def verify(public_key: str, signature: str | None, message: bytes) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s signature of ``message``; False for any malformed input."""
    if not signature or not isinstance(signature, str):
        return False
    try:
        parse_public(public_key).verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, KeyFileError, binascii.Error, ValueError):
        return False
    return True


def _create_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically with ``mode``; refuse when it exists (a key is never overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.link(tmp, path)  # fails if ``path`` exists: never replaces a key
    except FileExistsError:
        raise KeyFileError(f"{path}: exists; a key is never overwritten (move it away first)") from None
    finally:
        tmp.unlink(missing_ok=True)


def keygen(name: str) -> tuple[Path, Path, str]:
    """Make ``name``'s key pair in the config dir; returns the two paths and the public key's text."""
    key_path, pub_path = key_paths(name)
    if key_path.exists():
        raise KeyFileError(f"{key_path}: exists; a key is never overwritten (move it away first)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _create_new(key_path, pem, 0o600)
    text = public_text(key.public_key())
    pub_path.unlink(missing_ok=True)  # a stale public key of an earlier pair
    _create_new(pub_path, (text + "\n").encode("ascii"), 0o644)
    return key_path, pub_path, text


def ensure_key(name: str) -> tuple[Path, str, bool]:
    """``name``'s key (made when there is none): its path, public key, and whether it was made now."""
    key_path, _ = key_paths(name)
    if key_path.exists():
        return key_path, load_signer(name).public_key, False
    key_path, _, text = keygen(name)
    return key_path, text, True


def load_signer(name: str) -> Signer:
    """``name``'s private key from the config dir; a one-line :class:`PermissionDenied` when it is missing."""
    key_path, _ = key_paths(name)
    try:
        pem = key_path.read_bytes()
    except FileNotFoundError:
        raise PermissionDenied(
            f"no private key for user {name!r} in {key_path.parent}; run `evaltray user keygen {name}` "
            "(and have an admin register its .pub), or pick your own user with -u"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{key_path}: cannot read the key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{key_path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{key_path}: not an Ed25519 key")
    return Signer(name, key)


def read_public_file(path: Path) -> str:
    """A ``.pub`` file's key, checked and in canonical form."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read a public key ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return normalize_public(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


__all__ = [
    "CONFIG_ENV",
    "KEY_TYPE",
    "KeyFileError",
    "Signer",
    "config_dir",
    "ensure_key",
    "fingerprint",
    "key_paths",
    "keygen",
    "load_signer",
    "normalize_public",
    "parse_public",
    "public_text",
    "read_public_file",
    "verify",
]
