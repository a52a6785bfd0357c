"""Reading input that may be hostile within limits: gzip data that would expand without end, YAML whose
aliases would (a "billion laughs"). Each reader refuses past its limit before the expansion happens."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from .errors import EvaltrayError

_GZIP_MAGIC = b"\x1f\x8b"


class InputTooLarge(EvaltrayError):
    """Input that expands past a limit (decompressed bytes, YAML aliases); the caller names the file."""


def size_text(n: int) -> str:
    """A byte count for a message: ``1 GiB``, ``64 MiB``, ``512 KiB`` or ``100 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} bytes"


class ByteBudget:
    """What one file may decompress to in all, shared by the bodies it holds."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def refuse(self) -> InputTooLarge:
        return InputTooLarge(
            f"gzip data decompresses to more than {size_text(self.limit)}; refused as a decompression bomb"
        )


def gunzip(data: bytes, budget: ByteBudget) -> bytes:
    """gzip data (every member) decompressed, at most ``budget.left`` bytes of it (taken from the budget).

    Raises :class:`InputTooLarge` past the budget, OSError for corrupt data and EOFError for truncated data,
    as :func:`gzip.decompress` does."""
    out = bytearray()
    while data:
        stream = zlib.decompressobj(wbits=31)
        pending = data
        while pending:
            try:  # never more than one byte past the budget: the expansion stops there
                out += stream.decompress(pending, budget.left - len(out) + 1)
            except zlib.error as exc:
                raise OSError(f"corrupt gzip data ({exc})") from None
            if len(out) > budget.left:
                raise budget.refuse()
            pending = stream.unconsumed_tail
        if not stream.eof:
            raise EOFError("gzip data ends before its end-of-stream marker")
        data = stream.unused_data
        if data and not data.startswith(_GZIP_MAGIC):
            if data.strip(b"\0"):
                raise OSError("trailing garbage after gzip data")
            break
    budget.left -= len(out)
    return bytes(out)


def load_yaml(text: str, max_aliases: int, max_expanded: int) -> tuple[yaml.Node | None, Any]:
    """One YAML document's node graph and its Python value (safe types only), refused before it is built
    where it uses more than ``max_aliases`` alias references or expands to more than ``max_expanded``
    (nodes plus scalar characters, each alias counted as all it stands for). YAML errors propagate."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_expansion(node, max_aliases, max_expanded)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node, max_aliases: int, max_expanded: int) -> None:
    """Refuse a composed YAML graph with too many aliases, one that refers to itself, or one that expands
    past ``max_expanded``; linear in the size of the graph (each node's expansion is counted once)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            total = 1 + own + sum(sizes[id(c)] for c in _children(node))
            if total > max_expanded:
                raise InputTooLarge(
                    f"YAML expands to more than {size_text(max_expanded)} through its aliases; refused as an alias bomb"
                )
            open_nodes.discard(key)
            sizes[key] = total
            continue
        if key in open_nodes:
            raise InputTooLarge("a YAML alias refers to the node that holds it; refused")
        if key in sizes:
            aliases += 1
            if aliases > max_aliases:
                raise InputTooLarge(f"YAML uses more than {max_aliases:,} aliases; refused")
            continue
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def read_yaml_file(path: Path, max_aliases: int, max_bytes: int, what: str) -> Any:
    """The YAML data of the file at ``path``: :class:`InputTooLarge` (naming ``what``, e.g. "a plan") when the
    file holds more than ``max_bytes`` or expands past them. OSError, UnicodeDecodeError and YAML errors
    propagate; the caller names the file."""
    size = path.stat().st_size
    if size > max_bytes:
        raise InputTooLarge(f"{size:,} bytes, past the {size_text(max_bytes)} {what} may hold")
    return load_yaml(path.read_text(encoding="utf-8"), max_aliases, max_bytes)[1]


def read_yaml_or_fail(path: Path, max_aliases: int, max_bytes: int, what: str, error: type[EvaltrayError]) -> Any:
    """:func:`read_yaml_file`, every failure raised as ``error`` naming the file: one it cannot read, one too
    large, one that is not readable YAML."""
    try:
        return read_yaml_file(path, max_aliases, max_bytes, what)
    except OSError as exc:
        raise error(f"{path}: {exc.strerror}") from None
    except InputTooLarge as exc:
        raise error(f"{path}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not a readable YAML file ({type(exc).__name__})") from None


def json_lines(path: Path, error: type[EvaltrayError]) -> Iterator[tuple[str, Any]]:
    """The JSON value of each non-blank line of ``path`` with its place (``name:lineno``); a file that cannot
    be read, or a line that is not JSON, raises ``error`` naming the place (never the line's text)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: {exc.strerror}") from None
    for lineno, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield f"{path.name}:{lineno}", orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise error(f"{path.name}:{lineno}: not valid JSON") from None
