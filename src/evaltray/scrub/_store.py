"""Scrubbing the trace store's rows: a batch before ingest writes it, and stored parts afterwards.

One function, :func:`scrub_table`, does both, so a file ingested with scrubbing on and the same file
ingested with it off and then ``evaltray scrub``-bed hold the same rows.

What is scrubbed, column by column of :data:`~evaltray.core.traces.SCHEMA`, with one placeholder map per trace:

- ``messages`` (content, names, tool-call arguments, tool results; JSON text in them stays valid JSON),
  ``tools`` and ``spans`` (their schema keys keep structure-looking values: see ``_engine._STRUCTURAL``)
  and every key and value in ``metadata``; ``input_text``/``output_text`` are re-derived from the messages.
- :data:`TEXT_COLUMNS` (``error``, ``feedback_comment``, ``name``, ``feature``, ``source_file``,
  ``corpus_version``, and ``model``/``model_version``/``provider`` unless one plain token such as
  ``gpt-4.1``) and every tag in ``tags``: text, placeholders in it.
- Ids (``trace_id``, :data:`ID_COLUMNS`, each of ``retrieved_doc_ids``): one in which the scrubber finds PII
  (an e-mail address, a phone number) becomes a keyed pseudonym such as ``email-3f1c0e9a27b4d6c8``, the
  same for the same value in every trace, so grouping by user and re-ingest's duplicate check still work.
  A ``trace_id`` is judged on its own (not with the trace's other text), so ingest can tell the stored id
  of a trace before scrubbing it; its original is sealed in the vault under the pseudonym.

Kept as recorded: ``source_format``, ``status`` and ``keep_reason`` (evaltray's own words), times and numbers,
``system_hash``/``tools_hash`` (digests) and ``output_chars``, which describe the trace as recorded.

A string field longer than ``[ingest] scrub_max_field_chars`` is stored cut, ending in
``_engine.TRUNCATED_MARKER`` (cut JSON text is no longer JSON, and the marker says so); the trace's
``metadata`` gets :data:`TRUNCATED_KEY` (how many fields were cut) and the reports count such traces.
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
from evaltray.core.settings import scrub_max_field_chars
from evaltray.core.store import ADMIN_ROLES, CURATE_ROLES, Workspace
from evaltray.core.traces import PAYLOAD_COLUMNS, SCHEMA, MessageRecord, TraceStore, json_bytes, message_summary
from evaltray.core.util import atomic_write
from evaltray.core.workers import Rows, process_pool, worker_count

from ._engine import MAX_FIELD_CHARS, Scrubber, ScrubError, is_structure, resolve_entities
from ._placeholders import LABELS, PLACEHOLDER_RE
from ._vault import Vault, VaultError

#: Where sealed originals live (ciphertext only; the key stays with its owner).
VAULT_FILE = "vault.jsonl"
#: The workspace's key for id pseudonyms (in the state folder, never in an export).
ID_KEY_FILE = "pseudonym.key"
#: ``keep_reason`` of a trace that could not be scrubbed: it is stored without any text.
QUARANTINED = "quarantined"
#: Text columns besides the messages, scrubbed with the trace's placeholder map.
TEXT_COLUMNS = (
    "error",
    "feedback_comment",
    "name",
    "feature",
    "source_file",
    "model",
    "model_version",
    "provider",
    "corpus_version",
)
#: Id columns: one holding PII becomes a pseudonym (``trace_id`` too, judged on its own).
ID_COLUMNS = ("user_id", "session_id", "prompt_template_id")
#: List columns: ``tags`` are text, ``retrieved_doc_ids`` ids.
LIST_COLUMNS = ("tags", "retrieved_doc_ids")
#: JSON columns besides the messages (``tools`` and ``spans`` are payload: None where it was not kept).
JSON_COLUMNS = ("metadata", "tools", "spans")
#: The metadata key that counts a trace's fields stored cut to ``[ingest] scrub_max_field_chars``.
TRUNCATED_KEY = "evaltray_truncated_fields"
#: What a quarantined trace loses: every column that could hold its text.
_NO_TEXT = tuple(dict.fromkeys((*PAYLOAD_COLUMNS, *JSON_COLUMNS, *TEXT_COLUMNS, *ID_COLUMNS, *LIST_COLUMNS)))
_PSEUDONYM_RE = re.compile(r"(?:" + "|".join(label.lower() for label in LABELS.values()) + r")-[0-9a-f]{16}")
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    """What builds a process's scrubber; picklable, so ingest workers get the same one."""

    entities: tuple[str, ...] | None
    id_key: bytes
    vault_key: str | None = None
    max_field_chars: int = MAX_FIELD_CHARS

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
        return cls(
            entities,
            _id_key(ws),
            Vault.from_key_file(key_file).key if key_file is not None else None,
            scrub_max_field_chars(ws.settings),
        )

    def scrubber(self) -> Scrubber:
        """This process's scrubber for this config, built on first use."""
        found = _SCRUBBERS.get(self)
        if found is None:
            vault = Vault(self.vault_key) if self.vault_key else None
            found = _SCRUBBERS[self] = Scrubber(self.entities, vault=vault, max_field_chars=self.max_field_chars)
        return found

    def stored_id(self, trace_id: str) -> str:
        """The id a trace is stored under: its pseudonym where the scrubber finds PII in it (ingest's
        duplicate check compares these), else ``trace_id`` itself."""
        return stored_id(self.scrubber(), self.id_key, trace_id)

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


def stored_id(scrubber: Scrubber, id_key: bytes, value: str) -> str:
    """``value`` judged alone: its pseudonym (labelled by the first finding) where PII is found, else itself."""
    if not value or _PSEUDONYM_RE.fullmatch(value):
        return value
    found = scrubber.findings(value)
    return pseudonym(id_key, found[0][2], value) if found else value


@dataclass
class TableScrub:
    """What :func:`scrub_table` did, by row index of the table."""

    rows: int = 0
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # rows with any replacement
    quarantined: dict[int, str] = field(default_factory=dict)  # row -> why (names the trace id, never text)
    vault: list[tuple[int, str, bytes]] = field(default_factory=list)  # (row, placeholder, token)
    truncated: dict[int, int] = field(default_factory=dict)  # row -> fields stored cut to the size limit

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
            "payload_kept",
            "keep_reason",
            *JSON_COLUMNS,
            *TEXT_COLUMNS,
            *ID_COLUMNS,
            *LIST_COLUMNS,
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
        raw_id = cols["trace_id"][i]
        tid = stored_id(self.scrubber, self.id_key, raw_id)  # vault entries go under the id that is stored
        if tid != raw_id:
            cols["trace_id"][i] = tid
            self.changed.add("trace_id")
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
        if result.truncated:
            self.report.truncated[i] = result.truncated
            meta = result.fields.get("metadata")
            result.fields["metadata"] = {**(meta if isinstance(meta, dict) else {}), TRUNCATED_KEY: result.truncated}
        if raw is not None and result.messages != messages:
            self.set_messages(i, result.messages)
        self.set_fields(i, tid, fields, result.fields)
        if vault is not None:
            if tid != raw_id:
                vault.seal(tid, tid, raw_id)
            self.report.vault.extend((i, ph, token) for ph, token in vault.pop_trace(tid).items())

    def fields(self, i: int) -> dict[str, Any]:
        """Row ``i``'s other text to scrub: JSON columns decoded, texts, ids (an id already a pseudonym is
        not scrubbed again) and lists."""
        cols = self.cols
        fields: dict[str, Any] = {}
        for c in JSON_COLUMNS:
            if cols[c][i] is not None:
                fields[c] = orjson.loads(cols[c][i])
        for c in (*TEXT_COLUMNS, *ID_COLUMNS, *LIST_COLUMNS):
            value = cols[c][i]
            if not value or (c in ID_COLUMNS and _PSEUDONYM_RE.fullmatch(value)):
                continue
            if not (isinstance(value, str) and is_structure(c, value)):  # a model name such as gpt-4.1 stays
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
        """Store row ``i``'s scrubbed fields; an id with PII becomes its pseudonym, sealed if a vault."""
        cols = self.cols
        for c in JSON_COLUMNS:
            if c in after and after[c] != before.get(c):
                cols[c][i] = json_bytes(after[c]).decode("utf-8")
                self.changed.add(c)
        for c in (*TEXT_COLUMNS, "tags"):
            if c in after and after[c] != before[c]:
                cols[c][i] = after[c]
                self.changed.add(c)
        for c in ID_COLUMNS:
            if c in after and after[c] != before[c]:
                cols[c][i] = self.alias(tid, before[c], after[c])
                self.changed.add(c)
        if "retrieved_doc_ids" in after and after["retrieved_doc_ids"] != before["retrieved_doc_ids"]:
            cols["retrieved_doc_ids"][i] = [
                b if a == b or _PSEUDONYM_RE.fullmatch(b) else self.alias(tid, b, a)
                for b, a in zip(before["retrieved_doc_ids"], after["retrieved_doc_ids"], strict=True)
            ]
            self.changed.add("retrieved_doc_ids")

    def alias(self, tid: str, before: str, after: str) -> str:
        """The pseudonym of an id whose scrubbed form ``after`` differs; sealed under trace ``tid`` if a vault."""
        found = PLACEHOLDER_RE.search(after)
        alias = pseudonym(self.id_key, found.group(1) if found else "pii", before)
        if self.scrubber.vault is not None:
            self.scrubber.vault.seal(tid, alias, before)
        return alias


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


def scrub_rows(rows: Rows, config: ScrubConfig) -> tuple[Rows, TableScrub]:
    """:func:`scrub_table` of rows sent to a worker process, the scrubbed rows sent back the same way."""
    out, report = scrub_table(rows.table(), config)
    return Rows(out), report


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
    #: ids of traces stored with a field cut to ``[ingest] scrub_max_field_chars``
    truncated: list[str] = field(default_factory=list)
    #: parts scrubbed again because another writer changed them while they were scrubbed
    redone: int = 0
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
#: Seconds ``evaltray scrub`` waits for the ingest lock to swap in one scrubbed part (an ingest holds it
#: while it runs); the scrubbing itself never holds it.
SWAP_LOCK_WAIT = 3600.0
#: Times a part is scrubbed again when another writer keeps changing it meanwhile, before giving up.
_MAX_REDO = 5


def scrub_store(
    ws: Workspace, actor: str, workers: int | None = None, dry_run: bool = False, progress: Progress | None = None
) -> StoreScrub:
    """Scrub the stored rows that are not yet, part by part; each part is replaced in one rename.

    The ingest lock is held only to swap a scrubbed part in, never while scrubbing: a part changed
    meanwhile (its file is not the one read) is scrubbed again. Idempotent: scrubbed rows are never
    touched and a part with none left is not rewritten. A crash leaves every part old or new, and running
    again finishes the job. ``workers`` as for :func:`~evaltray.core.workers.worker_count`.
    """
    ws.require(actor, CURATE_ROLES, "scrubbing")
    n_workers = worker_count(workers, ScrubError)
    config = ScrubConfig.for_workspace(ws)
    store = TraceStore(ws.traces_dir)
    report = StoreScrub(dry_run=dry_run)
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
                truncated=len(report.truncated),
            )
    return report


def _stamp(part: Path) -> tuple[int, int, int] | None:
    """What tells one file from its replacement (a rename gives a new inode); None: the part is gone."""
    try:
        st = part.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _scrub_part(
    ws: Workspace,
    store: TraceStore,
    part: Path,
    config: ScrubConfig,
    pool: Executor | None,
    n_workers: int,
    report: StoreScrub,
) -> None:
    """Scrub one part without the lock, then swap it in under the ingest lock unless ``report.dry_run``;
    if the part changed in between, scrub it again."""
    for _ in range(_MAX_REDO):
        stamp = _stamp(part)
        if stamp is None:
            return  # removed by another writer meanwhile: nothing left to scrub
        results = _scrub_pieces(store.read_part(part), config, pool, n_workers, part.name)
        if report.dry_run:
            _count(report, results)
            report.rewritten += 1
            return
        with ws.lock("ingest", wait=SWAP_LOCK_WAIT):  # ingest writes parts, and cleans .tmp, under it
            if _stamp(part) != stamp:
                report.redone += 1
                continue
            sealed = _count(report, results)
            if config.vault_key:  # originals first: a scrubbed row is never without its sealed values
                save_sealed(ws, config.vault_key, sealed)
            store.replace_part(part, pa.concat_tables([t for t, _ in results]).combine_chunks())
        report.rewritten += 1
        return
    raise ScrubError(f"{part.name}: changed by another writer {_MAX_REDO} times while it was scrubbed; run again")


def _scrub_pieces(
    table: pa.Table, config: ScrubConfig, pool: Executor | None, n_workers: int, name: str
) -> list[tuple[pa.Table, TableScrub]]:
    """One part's table scrubbed in pieces (over ``pool`` where given)."""
    size = max(1, min(SLICE_ROWS, -(-table.num_rows // (4 * n_workers))))
    pieces = [table.slice(s, size) for s in range(0, table.num_rows, size)]
    if pool is None:
        return [scrub_table(piece, config) for piece in pieces]
    try:
        done = pool.map(scrub_rows, [Rows(piece) for piece in pieces], [config] * len(pieces))
        return [(rows.table(), report) for rows, report in done]
    except BrokenProcessPool:
        raise ScrubError(
            f"{name}: a scrub worker process died (out of memory?); every part is whole, "
            "old or new; run again, or with --workers 1 to scrub in one process"
        ) from None


def _count(report: StoreScrub, results: list[tuple[pa.Table, TableScrub]]) -> list[tuple[str, str, bytes]]:
    """Add scrubbed pieces to ``report`` (ids as stored); their sealed originals (trace id, placeholder, token)."""
    sealed: list[tuple[str, str, bytes]] = []
    for table, info in results:
        ids = table.column("trace_id").to_pylist()
        report.counts.update(info.total())
        report.quarantined.extend(ids[i] for i in sorted(info.quarantined))
        report.truncated.extend(ids[i] for i in sorted(info.truncated))
        sealed.extend((ids[i], ph, token) for i, ph, token in info.vault)
        report.rows += info.rows
    return sealed
