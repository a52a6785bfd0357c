"""Small helpers every stage shares: canonical JSON, hashing, atomic writes, time."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

_CANON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(obj: Any) -> bytes:
    """Key-sorted compact JSON: the byte form every hash in evaltray is taken over."""
    return orjson.dumps(obj, option=_CANON)


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def content_hash(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().isoformat().replace("+00:00", "Z")


_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``24h``, ``7d``, ``2w`` as a duration; None for anything else (the caller names the option)."""
    found = _DURATION.match(text)
    if found is None or int(found.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def atomic_write(path: Path, data: bytes | Iterable[bytes], mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then rename: never a half-written file.

    The file gets ``mode`` exactly where one is given (0o600 for a key, 0o444 for a release), created
    private until then; otherwise 0o666 less the umask, as any new file would.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # mkstemp would always give 0o600; open() with 0o666 lets the kernel apply the umask.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o600 if mode is not None else 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                for chunk in data:
                    fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def loads(data: str | bytes) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode("utf-8")


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects (a 100k-row tray):
    its repeated passes over them cost more than the work itself. Plain refcounting still frees."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def listed(items: list[str], most: int = 10) -> str:
    """The first ``most`` items, comma-separated, and how many more there are."""
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more
