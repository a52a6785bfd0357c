"""What the monitors check every promote and release against: the workspace's registered corpora, and the prompt
examples tagged do-not-use-in-eval (which the dataset loaders enforce, :func:`evaltray.tray.gate.do_not_use`)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.records import COMPOSE_ROLES
from evaltray.core.store import Workspace
from evaltray.core.util import now_iso
from evaltray.tray.gate import example_key

from .contamination import Corpus
from .corpus import BadLine, read_corpus

__all__ = ["KINDS", "list_corpora", "register_corpus", "tag_examples", "unregister_corpus"]

KINDS = ("corpus", "prompt", "judge")
#: Lines shorter than this many words are not tagged: "Hello!" is in every prompt file and every tray.
MIN_TAG_WORDS = 4
_LABEL = re.compile(r"^\s*(?:user|human|customer|q|question|input|example|assistant|a|answer|bot)\s*:\s*", re.I)


def _stored(ws: Workspace, path: Path) -> str:
    """A corpus path as stored: relative to the workspace when under it, so a moved workspace keeps it."""
    full = path.resolve()
    try:
        return str(full.relative_to(ws.root.resolve()))
    except ValueError:
        return str(full)


def register_corpus(ws: Workspace, actor: str, path: Path, kind: str = "corpus") -> str:
    """Check every promote and release against ``path`` (a file or a folder) from now on; the path as stored."""
    ws.require(actor, COMPOSE_ROLES, "registering a corpus")
    if kind not in KINDS:
        raise EvaltrayError(f"unknown corpus kind {kind!r}: one of {', '.join(KINDS)}")
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    stored = _stored(ws, path)
    table = ws.t["corpora"]
    with ws.tx() as conn:
        conn.execute(table.delete().where(table.c.path == stored))
        conn.execute(table.insert().values(path=stored, kind=kind, registered_by=actor, created_at=now_iso()))
        ws.audit(conn, actor, "corpus.register", stored, kind=kind)
    return stored


def unregister_corpus(ws: Workspace, actor: str, path: Path) -> None:
    ws.require(actor, COMPOSE_ROLES, "unregistering a corpus")
    stored = _stored(ws, path)
    table = ws.t["corpora"]
    with ws.tx() as conn:
        if not conn.execute(table.delete().where(table.c.path == stored)).rowcount:
            raise NotFound(f"no registered corpus {stored!r}")
        ws.audit(conn, actor, "corpus.unregister", stored)


def list_corpora(ws: Workspace) -> list[Corpus]:
    """The registered corpora, by path (relative ones resolved against the workspace)."""
    table = ws.t["corpora"]
    with ws.tx() as conn:
        rows = conn.execute(sa.select(table.c.path, table.c.kind).order_by(table.c.path)).all()
    return [Corpus(ws.root / path if not Path(path).is_absolute() else Path(path), kind) for path, kind in rows]


def _example_texts(text: str) -> list[str]:
    """The texts of one prompt-file document a case could be a copy of: the whole, and each line with its
    speaker label (``User:``, ``Q:``) taken off."""
    out = [text.strip()]
    out += [_LABEL.sub("", line).strip() for line in text.splitlines()]
    return [t for t in dict.fromkeys(out) if len(t.split()) >= MIN_TAG_WORDS]


def tag_examples(ws: Workspace, actor: str, path: Path) -> tuple[int, list[BadLine]]:
    """Tag every example in the prompt file(s) at ``path`` do-not-use-in-eval; the number of texts tagged,
    and the lines that could not be read."""
    ws.require(actor, COMPOSE_ROLES, "tagging prompt examples")
    keys: dict[str, str] = {}
    bad: list[BadLine] = []
    for item in read_corpus(path):
        if isinstance(item, BadLine):
            bad.append(item)
            continue
        for text in _example_texts(item.text):
            keys.setdefault(example_key(text), f"{item.source}:{item.line}")
    table = ws.t["do_not_use"]
    with ws.tx() as conn:
        have = {k for (k,) in conn.execute(sa.select(table.c.text_key))}
        new = [
            {"text_key": k, "source": src[:1100], "tagged_by": actor, "created_at": now_iso()}
            for k, src in keys.items()
            if k not in have
        ]
        if new:
            conn.execute(table.insert(), new)
        ws.audit(conn, actor, "examples.tag", _stored(ws, path), tagged=len(new))
    return len(new), bad
