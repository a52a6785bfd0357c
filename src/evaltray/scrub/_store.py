"""Scrubbing the trace store's rows: a batch before ingest writes it, and stored parts afterwards.

One function, :func:`scrub_table`, does both, so a file ingested with scrubbing on and the same file
ingested with it off and then ``evaltray scrub``-bed hold the same rows.

What is scrubbed, with one placeholder map per trace: the messages (content, tool-call arguments, tool
results), ``input_text``/``output_text`` (re-derived from the scrubbed messages), every string in
``metadata``, ``error`` and ``feedback_comment``. ``user_id`` and ``session_id`` are ids: one in which
the scrubber finds PII (an e-mail address, a phone number) becomes a keyed pseudonym such as
``email-3f1c0e9a27b4d6c8``, the same for the same value in every trace, so grouping by user still works.
Tool definitions, span summaries, trace names, tags and features are the application's own words and
stay; ``system_hash`` and ``output_chars`` describe the trace as recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evaltray.core.records import Role
from evaltray.core.store import ADMIN_ROLES, CURATE_ROLES, Workspace
from evaltray.core.traces import PAYLOAD_COLUMNS, SCHEMA, MessageRecord, TraceStore, json_bytes, message_summary
from evaltray.core.util import atomic_write
from evaltray.core.workers import process_pool, worker_count

from ._engine import Scrubber, ScrubError, resolve_entities
from ._placeholders import LABELS, PLACEHOLDER_RE
from ._vault import Vault, VaultError

#: Where sealed originals live (ciphertext only; the key stays with its owner).
VAULT_FILE = "vault.jsonl"
#: The workspace's key for id pseudonyms (in the state folder, never in an export).
ID_KEY_FILE = "pseudonym.key"
#: ``keep_reason`` of a trace that could not be scrubbed: it is stored without any text.
QUARANTINED = "quarantined"
#: Text columns besides the messages, scrubbed with the trace's placeholder map.
TEXT_COLUMNS = ("error", "feedback_comment")
ID_COLUMNS = ("user_id", "session_id")
#: What a quarantined trace loses: every column that could hold its text.
_NO_TEXT = (*PAYLOAD_COLUMNS, "metadata", *TEXT_COLUMNS, *ID_COLUMNS)
_PSEUDONYM_RE = re.compile(r"(?:" + "|".join(label.lower() for label in LABELS.values()) + r")-[0-9a-f]{16}")
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    """What builds a process's scrubber; picklable, so ingest workers get the same one."""

    entities: tuple[str, ...] | None
    id_key: bytes
    vault_key: str | None = None

    @classmethod
    def for_workspace(cls, ws: Workspace) -> ScrubConfig:
        """The workspace's ``[ingest]`` scrub settings; reads (or first makes) the pseudonym key."""
        entities = None
        if ws.settings.scrub_entities is not None:
            try:
                entities = resolve_entities(ws.settings.scrub_entities)
            except ScrubError as exc:
                raise ScrubError(f"ingest.scrub_entities: {exc}") from None
        key_file = vault_key_path(ws)
        return cls(entities, _id_key(ws), Vault.from_key_file(key_file).key if key_file is not None else None)

    def scrubber(self) -> Scrubber:
        """This process's scrubber for this config, built on first use."""
        found = _SCRUBBERS.get(self)
        if found is None:
            found = _SCRUBBERS[self] = Scrubber(self.entities, vault=Vault(self.vault_key) if self.vault_key else None)
        return found

    def install(self, scrubber: Scrubber) -> None:
        """Make ``scrubber`` (this config's, from :meth:`scrubber`) this process's one: the initializer
        of a worker pool, ``process_pool(n, config.install, (config.scrubber(),))``."""
        _SCRUBBERS[self] = scrubber


#: Each process's scrubbers by config (a config holds its keys, so an entry never goes stale).
_SCRUBBERS: dict[ScrubConfig, Scrubber] = {}


def _id_key(ws: Workspace) -> bytes:
    path = ws.state_dir / ID_KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        atomic_write(path, key.hex().encode("ascii") + b"\n", mode=0o600)
        return key
    except ValueError:  # not hex (UnicodeDecodeError is a ValueError too)
        raise ScrubError(
            f"{path}: not a pseudonym key (hex); restore it from a backup. A new key would give "
            "every id a new pseudonym, so evaltray does not make one over it"
        ) from None


def vault_key_path(ws: Workspace) -> Path | None:
    """``[ingest] vault_key`` as a path (relative to the workspace); it must lie outside the workspace."""
    if not ws.settings.vault_key:
        return None
    try:
        path = Path(ws.settings.vault_key).expanduser()
    except RuntimeError:  # "~someone/…" for a user this machine does not know
        raise VaultError(f"ingest.vault_key {ws.settings.vault_key!r}: no such home directory") from None
    path = (ws.root / path if not path.is_absolute() else path).resolve()
    if path.is_relative_to(ws.root.resolve()):
        raise VaultError(
            f"ingest.vault_key {ws.settings.vault_key!r} is inside the workspace; keep the key "
            "where only its owner can read it (the workspace is shared)"
        )
    return path


def open_vault(ws: Workspace, key_file: Path | None = None) -> Vault:
    """A vault with ``key_file`` (default ``[ingest] vault_key``) holding the workspace's sealed originals."""
    path = key_file or vault_key_path(ws)
    if path is None:
        raise VaultError("no vault key: set [ingest] vault_key in evaltray.toml or pass --key")
    vault = Vault.from_key_file(path)
    sealed = vault_file(ws)
    if sealed.exists():
        vault.load(sealed)
    return vault


def create_vault_key(
    path: Path,
    workspace_root: Path | None = None,
    dry_run: bool = False,
    ws: Workspace | None = None,
    actor: str | None = None,
) -> Path:
    """Write a new vault key to ``path`` (owner-only); refused inside the workspace or over an existing key.

    With a workspace ``ws`` (its root is then ``workspace_root``), ``actor`` must be an admin and the
    key's creation is audited; without one (no workspace yet) a key can be made first."""
    if ws is not None:
        actor = ws.authorize(actor, ADMIN_ROLES, "making a vault key")
        workspace_root = ws.root
    path = path.expanduser().resolve()
    if workspace_root is not None and path.is_relative_to(workspace_root.resolve()):
        raise VaultError(f"{path} is inside the workspace; keep the vault key where only you can read it")
    if path.exists():
        raise VaultError(f"{path}: a key file already exists; refusing to overwrite it")
    if not dry_run:
        Vault.create_key_file(path)
        if ws is not None and actor is not None:
            ws.record(actor, "vault.keygen", None)  # not the path: it says where the key lives
    return path


def reveal(ws: Workspace, actor: str, trace_id: str, placeholder: str, key_file: Path | None = None) -> str:
    """The original behind ``placeholder`` in ``trace_id``: admins only, and every reveal is audited."""
    ws.require(actor, frozenset({Role.ADMIN}), "revealing a scrubbed value")
    value = open_vault(ws, key_file.expanduser() if key_file else None).reveal(trace_id, placeholder)
    with ws.tx() as conn:
        ws.audit(conn, actor, "vault.reveal", trace_id, placeholder=placeholder)
    return value


def vault_file(ws: Workspace) -> Path:
    return ws.state_dir / VAULT_FILE


def pseudonym(id_key: bytes, label: str, value: str) -> str:
    """A stable stand-in for an id that holds PII: the same value gives the same pseudonym in every trace."""
    return f"{label.lower()}-{hmac.new(id_key, value.encode('utf-8'), hashlib.sha256).hexdigest()[:16]}"


@dataclass
class TableScrub:
    """What :func:`scrub_table` did, by row index of the table."""

    rows: int = 0
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # rows with any replacement
    quarantined: dict[int, str] = field(default_factory=dict)  # row -> why (names the trace id, never text)
    vault: list[tuple[int, str, bytes]] = field(default_factory=list)  # (row, placeholder, token)

    def total(self, rows: list[bool] | None = None) -> Counter[str]:
        """Replacements per entity label, over ``rows`` (a mask) or all."""
        out: Counter[str] = Counter()
        for i, c in self.counts.items():
            if rows is None or rows[i]:
                out.update(c)
        return out


#: The columns :func:`scrub_table` reads and may rewrite, each once.
_ROW_COLUMNS = tuple(
    dict.fromkeys(
        (
            "trace_id",
            "messages",
            "input_text",
            "output_text",
            "metadata",
            "payload_kept",
            "keep_reason",
            *TEXT_COLUMNS,
            *ID_COLUMNS,
            *PAYLOAD_COLUMNS,
        )
    )
)


@dataclass(slots=True)
class _RowScrub:
    """One table's columns as lists, scrubbed row by row in place; ``changed`` names the columns to write back."""

    cols: dict[str, list[Any]]
    scrubber: Scrubber
    id_key: bytes
    report: TableScrub
    changed: set[str] = field(default_factory=set)

    def scrub(self, i: int) -> None:
        """Scrub row ``i``, or quarantine it when the scrubber cannot, and note it in the report."""
        cols, vault = self.cols, self.scrubber.vault
        tid = cols["trace_id"][i]
        raw = cols["messages"][i]
        messages = orjson.loads(raw) if raw is not None else []
        fields = self.fields(i)
        result = self.scrubber.scrub_trace(tid, messages, fields)
        self.report.rows += 1
        if result.messages is None or result.fields is None:
            self.report.quarantined[i] = result.error or f"trace {tid}: could not be scrubbed"
            self.quarantine(i)
            if vault is not None:
                vault.pop_trace(tid)  # nothing of a quarantined trace is kept, its originals neither
            return
        if result.counts:
            self.report.counts[i] = result.counts
        if raw is not None and result.messages != messages:
            self.set_messages(i, result.messages)
        self.set_fields(i, tid, fields, result.fields)
        if vault is not None:
            self.report.vault.extend((i, ph, token) for ph, token in vault.pop_trace(tid).items())

    def fields(self, i: int) -> dict[str, Any]:
        """Row ``i``'s metadata, texts and ids to scrub (an id already a pseudonym is not scrubbed again)."""
        cols = self.cols
        fields: dict[str, Any] = {}
        if cols["metadata"][i] is not None:
            fields["metadata"] = orjson.loads(cols["metadata"][i])
        for c in (*TEXT_COLUMNS, *ID_COLUMNS):
            value = cols[c][i]
            if value and not (c in ID_COLUMNS and _PSEUDONYM_RE.fullmatch(value)):
                fields[c] = value
        return fields

    def quarantine(self, i: int) -> None:
        """Drop every text of row ``i`` and mark it quarantined."""
        for c in _NO_TEXT:
            self.cols[c][i] = None
        self.cols["payload_kept"][i], self.cols["keep_reason"][i] = False, QUARANTINED
        self.changed.update((*_NO_TEXT, "payload_kept", "keep_reason"))

    def set_messages(self, i: int, messages: list[dict[str, Any]]) -> None:
        """Store row ``i``'s scrubbed messages and the input and output text derived from them."""
        cols = self.cols
        cols["messages"][i] = json_bytes(messages).decode("utf-8")
        _, _, _, cols["input_text"][i], cols["output_text"][i], _ = message_summary(
            [MessageRecord(**m) for m in messages]
        )
        self.changed.update(("messages", "input_text", "output_text"))

    def set_fields(self, i: int, tid: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Store row ``i``'s scrubbed metadata and texts; an id with PII becomes its pseudonym, sealed if a vault."""
        cols, vault = self.cols, self.scrubber.vault
        if "metadata" in after and after["metadata"] != before["metadata"]:
            cols["metadata"][i] = json_bytes(after["metadata"]).decode("utf-8")
            self.changed.add("metadata")
        for c in TEXT_COLUMNS:
            if c in after and after[c] != before[c]:
                cols[c][i] = after[c]
                self.changed.add(c)
        for c in ID_COLUMNS:
            if c in after and after[c] != before[c]:
                found = PLACEHOLDER_RE.search(after[c])
                cols[c][i] = alias = pseudonym(self.id_key, found.group(1) if found else "pii", before[c])
                self.changed.add(c)
                if vault is not None:
                    vault.seal(tid, alias, before[c])


def scrub_table(table: pa.Table, config: ScrubConfig, skip: Collection[int] = ()) -> tuple[pa.Table, TableScrub]:
    """Scrub every row of a :data:`~evaltray.core.traces.SCHEMA` table whose ``scrubbed`` is not true.

    A row that cannot be scrubbed is quarantined: no text columns, ``payload_kept`` false,
    ``keep_reason='quarantined'``. Every row comes back with ``scrubbed`` true, except the rows in
    ``skip``, which are left as they are.
    """
    report = TableScrub()
    done = table.column("scrubbed").to_pylist()
    todo = [i for i, d in enumerate(done) if d is not True and i not in skip]
    if not todo:
        return table, report
    rows = _RowScrub({c: table.column(c).to_pylist() for c in _ROW_COLUMNS}, config.scrubber(), config.id_key, report)
    for i in todo:
        rows.scrub(i)
    for i in todo:
        done[i] = True
    rows.cols["scrubbed"] = done
    for c in (*rows.changed, "scrubbed"):
        table = table.set_column(
            SCHEMA.get_field_index(c), SCHEMA.field(c), pa.array(rows.cols[c], SCHEMA.field(c).type)
        )
    return table, report


def save_sealed(ws: Workspace, vault_key: str, entries: list[tuple[str, str, bytes]]) -> None:
    """Append sealed originals ``(trace_id, placeholder, token)`` to the workspace's vault file."""
    if not entries:
        return
    vault = Vault(vault_key)
    for tid, ph, token in entries:
        vault.add_sealed(tid, ph, token)
    vault.append(vault_file(ws))


# ---------------------------------------------------------------------------------------- evaltray scrub


@dataclass
class StoreScrub:
    """What ``evaltray scrub`` did (or, with ``dry_run``, would do)."""

    parts: int = 0
    rewritten: int = 0  # with dry_run: parts that would be rewritten
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    quarantined: list[str] = field(default_factory=list)
    dry_run: bool = False


def unscrubbed_rows(part: Path) -> int:
    """Rows of a part whose ``scrubbed`` is not true (all of them in a part older than the column)."""
    pf = pq.ParquetFile(part)
    if "scrubbed" not in pf.schema_arrow.names:
        return pf.metadata.num_rows
    col = pf.read(columns=["scrubbed"]).column("scrubbed")
    return len(col) - (pc.sum(pc.fill_null(col, False)).as_py() or 0)


#: Rows per piece a worker scrubs: small enough that the workers share one part.
SLICE_ROWS = 2000


def scrub_store(
    ws: Workspace, actor: str, workers: int | None = None, dry_run: bool = False, progress: Progress | None = None
) -> StoreScrub:
    """Scrub the stored rows that are not yet, part by part; each part is replaced in one rename.

    Idempotent: scrubbed rows are never touched and a part with none left is not rewritten. A crash
    leaves every part old or new, and running again finishes the job. ``workers`` as for
    :func:`~evaltray.core.workers.worker_count`.
    """
    ws.require(actor, CURATE_ROLES, "scrubbing")
    n_workers = worker_count(workers, ScrubError)
    config = ScrubConfig.for_workspace(ws)
    store = TraceStore(ws.traces_dir)
    report = StoreScrub(dry_run=dry_run)
    with ws.lock("ingest"):  # ingest writes the same parts
        store.clean_tmp()
        parts = store.parts()
        report.parts = len(parts)
        pending = [(p, n) for p in parts if (n := unscrubbed_rows(p))]
        total = sum(n for _, n in pending)
        if progress is not None:
            progress(0, total)
        if not pending:
            return report
        scrubber = config.scrubber()  # built once here and handed to each worker: Presidio starts once
        parallel = n_workers > 1 and total > SLICE_ROWS
        with process_pool(n_workers, config.install, (scrubber,)) if parallel else contextlib.nullcontext() as pool:
            done = 0
            for part, n in pending:
                _scrub_part(ws, store, part, config, pool, n_workers, report)
                done += n
                if progress is not None:
                    progress(done, total)
        if not dry_run:
            with ws.tx() as conn:
                ws.audit(
                    conn,
                    actor,
                    "scrub",
                    None,
                    rows=report.rows,
                    parts=report.rewritten,
                    quarantined=len(report.quarantined),
                )
    return report


def _scrub_part(
    ws: Workspace,
    store: TraceStore,
    part: Path,
    config: ScrubConfig,
    pool: Executor | None,
    n_workers: int,
    report: StoreScrub,
) -> None:
    """Scrub one part in pieces (over ``pool`` where given) and replace it, unless ``report.dry_run``."""
    table = store.read_part(part)
    size = max(1, min(SLICE_ROWS, -(-table.num_rows // (4 * n_workers))))
    pieces = [table.slice(s, size) for s in range(0, table.num_rows, size)]
    if pool is None:
        results = [scrub_table(piece, config) for piece in pieces]
    else:
        try:
            results = list(pool.map(scrub_table, pieces, [config] * len(pieces)))
        except BrokenProcessPool:
            raise ScrubError(
                f"{part.name}: a scrub worker process died (out of memory?); every part is whole, "
                "old or new; run again, or with --workers 1 to scrub in one process"
            ) from None
    sealed: list[tuple[str, str, bytes]] = []
    for piece, (_, info) in zip(pieces, results, strict=True):
        ids = piece.column("trace_id").to_pylist()
        report.counts.update(info.total())
        report.quarantined.extend(ids[i] for i in sorted(info.quarantined))
        sealed.extend((ids[i], ph, token) for i, ph, token in info.vault)
    report.rows += sum(info.rows for _, info in results)
    if not report.dry_run:
        if config.vault_key:  # originals first: a scrubbed row is never without its sealed values
            save_sealed(ws, config.vault_key, sealed)
        store.replace_part(part, pa.concat_tables([t for t, _ in results]).combine_chunks())
    report.rewritten += 1
