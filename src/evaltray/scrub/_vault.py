"""The optional reversible vault: original values sealed per (trace, placeholder) with the owner's key."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.settings import VAULT_KEY_ENV, env_vault_key
from evaltray.core.util import atomic_write, dumps, loads

#: Environment variable that may hold the vault key (urlsafe base64 of 32 bytes).
KEY_ENV = VAULT_KEY_ENV
_NONCE = 12


class VaultError(EvaltrayError):
    """The vault key is missing or malformed, or a sealed value does not open with it."""


def _aad(trace_id: str, placeholder: str) -> bytes:
    # Binding the ciphertext to its slot stops a sealed value being replayed under another placeholder.
    return f"evaltray-vault-v1\x00{trace_id}\x00{placeholder}".encode()


class Vault:
    """AES-256-GCM sealed originals; only a holder of the key can ``reveal`` a placeholder's value.

    Entries live in memory; ``save``/``load`` keep them in a JSON-lines file that is safe to share
    without the key (it holds trace ids, placeholders and ciphertext only).
    """

    def __init__(self, key: bytes | str) -> None:
        raw = key if isinstance(key, bytes) and len(key) == 32 else self._decode_key(key)
        self._key = raw
        self._aead = AESGCM(raw)
        self._sealed: dict[tuple[str, str], bytes] = {}

    def __getstate__(self) -> tuple[bytes, dict[tuple[str, str], bytes]]:
        # the cipher object does not pickle; a copy (a spawned worker's) rebuilds it from the key
        return self._key, self._sealed

    def __setstate__(self, state: tuple[bytes, dict[tuple[str, str], bytes]]) -> None:
        self._key, self._sealed = state
        self._aead = AESGCM(self._key)

    @staticmethod
    def _decode_key(key: bytes | str) -> bytes:
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        try:
            raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise VaultError("vault key must be 32 bytes in urlsafe base64 (make one with `Vault.generate_key()`)")
        return raw

    # ------------------------------------------------------------------ keys

    @staticmethod
    def generate_key() -> str:
        """A fresh random key, urlsafe base64 text: keep it outside the workspace."""
        return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")

    @classmethod
    def create_key_file(cls, path: Path) -> str:
        """Write a new key to ``path`` readable by its owner only; refuses to overwrite one."""
        if path.exists():
            raise VaultError(f"{path}: a key file already exists; refusing to overwrite it")
        key = cls.generate_key()
        atomic_write(path, (key + "\n").encode("ascii"), mode=0o600)
        return key

    @classmethod
    def from_key_file(cls, path: Path) -> Vault:
        try:
            text = path.read_text(encoding="ascii")
        except OSError as exc:
            raise VaultError(f"{path}: cannot read the vault key ({exc.strerror})") from None
        return cls(text)

    @classmethod
    def from_env(cls) -> Vault:
        """A vault with the key in ``$EVALTRAY_VAULT_KEY``."""
        value = env_vault_key()
        if value is None:
            raise VaultError(f"no vault key: set {KEY_ENV} or pass a key file")
        return cls(value)

    @property
    def key(self) -> str:
        """The key as text, for handing to worker processes."""
        return base64.urlsafe_b64encode(self._key).decode("ascii")

    # ------------------------------------------------------------------ entries

    def seal(self, trace_id: str, placeholder: str, value: str) -> bytes:
        """Encrypt ``value`` for this slot, store it, and return the token (nonce + ciphertext)."""
        nonce = os.urandom(_NONCE)
        token = nonce + self._aead.encrypt(nonce, value.encode("utf-8"), _aad(trace_id, placeholder))
        self._sealed[(trace_id, placeholder)] = token
        return token

    def add_sealed(self, trace_id: str, placeholder: str, token: bytes) -> None:
        """Store a token sealed elsewhere (a worker process) under the same key."""
        self._sealed[(trace_id, placeholder)] = token

    def reseal(self, token: bytes, trace_id: str, new_trace_id: str, placeholder: str) -> bytes:
        """A token sealed for ``trace_id`` opened and sealed again for ``new_trace_id`` (a trace renamed)."""
        try:
            plain = self._aead.decrypt(token[:_NONCE], token[_NONCE:], _aad(trace_id, placeholder))
        except InvalidTag:
            raise VaultError(f"vault entry {placeholder} in trace {trace_id} does not open with this key") from None
        return self.seal(new_trace_id, placeholder, plain.decode("utf-8"))

    def reveal(self, trace_id: str, placeholder: str) -> str:
        """The original value behind ``placeholder`` in ``trace_id``."""
        token = self._sealed.get((trace_id, placeholder))
        if token is None:
            raise NotFound(f"no vault entry for {placeholder} in trace {trace_id}")
        try:
            plain = self._aead.decrypt(token[:_NONCE], token[_NONCE:], _aad(trace_id, placeholder))
        except InvalidTag:
            raise VaultError(f"vault entry {placeholder} in trace {trace_id} does not open with this key") from None
        return plain.decode("utf-8")

    def reveal_text(self, trace_id: str, text: str) -> str:
        """``text`` with every placeholder this vault holds for ``trace_id`` put back."""
        from ._placeholders import PLACEHOLDER_RE

        def put_back(m: object) -> str:
            ph = m.group(0)  # type: ignore[attr-defined]
            return self.reveal(trace_id, ph) if (trace_id, ph) in self._sealed else ph

        return PLACEHOLDER_RE.sub(put_back, text)

    def pop_trace(self, trace_id: str) -> dict[str, bytes]:
        """Remove and return one trace's sealed entries (how a worker hands them back)."""
        keys = [k for k in self._sealed if k[0] == trace_id]
        return {k[1]: self._sealed.pop(k) for k in keys}

    def entries(self) -> Iterator[tuple[str, str, bytes]]:
        for (trace_id, placeholder), token in self._sealed.items():
            yield trace_id, placeholder, token

    def __len__(self) -> int:
        return len(self._sealed)

    def __contains__(self, slot: object) -> bool:
        return slot in self._sealed

    # ------------------------------------------------------------------ files

    def save(self, path: Path) -> None:
        """Write all sealed entries as JSON lines (no plaintext, no key)."""
        lines = (
            dumps({"trace_id": t, "placeholder": p, "token": base64.urlsafe_b64encode(tok).decode("ascii")}) + "\n"
            for t, p, tok in self.entries()
        )
        atomic_write(path, "".join(lines).encode("utf-8"), mode=0o600)

    def append(self, path: Path) -> int:
        """Append the entries held in memory to a ``save`` file (made 0600 if new), then forget them.

        How ingest adds a batch's originals without rewriting the whole file; a later entry for the
        same slot wins on ``load``.
        """
        if not self._sealed:
            return 0
        data = "".join(
            dumps({"trace_id": t, "placeholder": p, "token": base64.urlsafe_b64encode(tok).decode("ascii")}) + "\n"
            for t, p, tok in self.entries()
        ).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        n = len(self._sealed)
        self._sealed.clear()
        return n

    def load(self, path: Path) -> int:
        """Add the entries of a file written by ``save``/``append``; returns how many were read.

        A last line cut short (a process killed while appending) is skipped; any other bad line is an error.
        """
        n = 0
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = loads(line)
                    self._sealed[(row["trace_id"], row["placeholder"])] = base64.urlsafe_b64decode(row["token"])
                except (ValueError, KeyError, TypeError):
                    if not line.endswith(b"\n") and not fh.read(1):
                        break
                    raise VaultError(f"{path}:{lineno}: not a vault entry") from None
                n += 1
        return n
