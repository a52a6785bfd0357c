"""The workspace: settings, workflow state in SQL, traces in Parquet, the tray and releases on disk."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .audit import AuditCheck, chain_last, chain_statements, first_break
from .errors import NotFound, PermissionDenied, WorkspaceError
from .keys import Signer, ensure_key, fingerprint, load_signer, normalize_public
from .migrations import migrate
from .records import Role
from .settings import SETTINGS_FILE, Settings, render_settings, state_url
from .util import dumps, now_iso

if TYPE_CHECKING:
    from .traces import TraceStore

_S = TypeVar("_S")

STATE_DIR = ".evaltray"

#: Roles that may add to or reshape the workspace's data: ingest, scrub, dedup, cluster, plan, sample,
#: candidates (those who label; a viewer only reads, a composition owner composes releases).
CURATE_ROLES = frozenset({Role.LABELER, Role.ADJUDICATOR, Role.ADMIN})
#: Roles that may manage users and keys.
ADMIN_ROLES = frozenset({Role.ADMIN})
#: Roles registered only with a public key: they sign off, promote and manage, and a signature proves who did.
KEYED_ROLES = frozenset({Role.ADJUDICATOR, Role.ADMIN})


def current_user(explicit: str | None, settings: Settings | None = None) -> str:
    """The acting user: ``explicit`` (the CLI's ``--user`` or ``$EVALTRAY_USER``), then the workspace
    default, then the login."""
    if explicit:
        return explicit
    if settings is not None and settings.default_user:
        return settings.default_user
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


#: Connections an engine keeps open, and how many more it may open at a peak: a web server answers up to 40
#: requests at once (AnyIO's worker threads), some of which hold a second connection for a moment; with
#: SQLAlchemy's default 5 + 10, twenty reviewers queued for a connection and the extra ones were opened
#: (PRAGMAs and all) and closed again on every request.
POOL_SIZE, POOL_OVERFLOW = 20, 30


#: How long SQLite waits for another connection's write lock before it says "database is locked" (ms), and how long
#: a writer of this process waits for its turn (:class:`_WriteTurns`) before it tries SQLite's lock all the same.
BUSY_TIMEOUT_MS = 10_000


class _WriteTurns:
    """The writers of one process take turns on a lock of their own before they reach SQLite's.

    SQLite lets one connection write at a time, and a writer that finds its lock taken waits in SQLite's busy
    handler, which sleeps 1, 2, 5 … up to 100 ms between looks: under twenty reviewers a save waited many times
    longer than the lock was held. Here a writer waits on a lock that wakes the next one as soon as the last
    commits. It is taken at a connection's first write statement (or ``BEGIN IMMEDIATE``) and given back when the
    connection goes back to the pool, after its commit or rollback. Other processes still meet SQLite's lock and
    its busy timeout; a thread that already holds the turn and writes on a second connection goes straight to
    SQLite, as before (which refuses it after the busy timeout rather than waiting forever).
    """

    WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN\s+IMMEDIATE)\b", re.IGNORECASE)
    KEY = "evaltray_write_turn"

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        for name in ("checkin", "invalidate", "soft_invalidate"):
            sa.event.listen(engine.pool, name, self._given_back)

    def _statement(self, conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.KEY in conn.info or not self.WRITES.match(statement) or self._holder == threading.get_ident():
            return
        if self._lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            self._holder = threading.get_ident()
            conn.info[self.KEY] = True

    def taken(self) -> bool:
        """Whether a writer of this process holds the turn now."""
        return self._lock.locked()

    def _given_back(self, _dbapi_conn: Any, record: Any, *_args: Any) -> None:
        if record is not None and record.info.pop(self.KEY, False):
            self._holder = None
            self._lock.release()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and, for a database file, writers of
    this process that take turns without polling (:class:`_WriteTurns`)."""
    try:
        engine = sa.create_engine(url, future=True, **_pool_options(url))
    except (sa.exc.NoSuchModuleError, ImportError) as exc:  # no such dialect, or its driver is not installed
        raise WorkspaceError(
            f"state database {_safe_url(url)}: {exc}; install its driver "
            "(`pip install 'evaltray[postgres]'` for PostgreSQL)"
        ) from None
    except sa.exc.ArgumentError:
        raise WorkspaceError(
            "the state database URL ([state] url or $EVALTRAY_DB_URL) is not one SQLAlchemy reads, "
            "e.g. postgresql+psycopg://user@host/evaltray"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if _pool_options(url):  # a database file: an in-memory one is one shared connection already
            _TURNS[engine] = _WriteTurns(engine)
    return engine


#: Each SQLite file engine's :class:`_WriteTurns`.
_TURNS: weakref.WeakKeyDictionary[Engine, _WriteTurns] = weakref.WeakKeyDictionary()


def write_turns(engine: Engine) -> _WriteTurns | None:
    """The turns the writers of ``engine`` take in this process (None but for a SQLite database file)."""
    return _TURNS.get(engine)


def _pool_options(url: str) -> dict[str, Any]:
    """A pool sized for a web server's threads (see :data:`POOL_SIZE`); an in-memory SQLite database keeps
    SQLAlchemy's single shared connection, which is what makes it one database."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return {}
    return {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}


class Workspace:
    """One evaltray workspace directory, opened for reading and writing."""

    def __init__(self, root: Path, settings: Settings, engine: Engine) -> None:
        self.root = root
        self.settings = settings
        self.engine = engine
        self.meta = sa.MetaData()
        self.meta.reflect(bind=engine)
        self.t = self.meta.tables
        #: the admin's key file and whether :meth:`init` made it (None unless this workspace was just made)
        self.admin_key: tuple[Path, bool] | None = None
        self._statements: dict[str, Any] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def init(cls, root: Path, name: str | None = None, user: str | None = None, db_url: str | None = None) -> Workspace:
        """Create a workspace in ``root`` (which may exist but must hold no workspace yet); ``user``
        (default: the login) is its admin, ``db_url`` as for :meth:`open`."""
        root = root.resolve()
        if (root / SETTINGS_FILE).exists():
            raise WorkspaceError(f"{root}: already an evaltray workspace")
        root.mkdir(parents=True, exist_ok=True)
        actor = current_user(user)
        (root / SETTINGS_FILE).write_text(render_settings(name or root.name, actor), encoding="utf-8")
        ws = cls.open(root, db_url)
        for set_name in ws.settings.sets:
            ws.set_dir(set_name).mkdir(parents=True, exist_ok=True)
            ws.cases_path(set_name).touch()
        (root / "releases").mkdir(exist_ok=True)
        (root / "traces").mkdir(exist_ok=True)
        (root / ".gitignore").write_text(f"{STATE_DIR}/\ntraces/\n", encoding="utf-8")
        key_path, public_key, made = ensure_key(actor)
        ws.add_user(actor, Role.ADMIN, actor=actor, public_key=public_key)
        ws.admin_key = (key_path, made)
        return ws

    @classmethod
    def open(cls, root: Path | None = None, db_url: str | None = None) -> Workspace:
        """Open the workspace at ``root``, or the nearest one above the current directory. Its state
        lives at ``db_url``, else as :func:`~evaltray.core.settings.state_url` says, else in SQLite
        under ``.evaltray/``."""
        root = find_root(root)
        settings = Settings.load(root)
        url = db_url or state_url(settings)
        if not url:
            (root / STATE_DIR).mkdir(exist_ok=True)
            url = f"sqlite:///{root / STATE_DIR / 'state.db'}"
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                migrate(conn)
        except sa.exc.OperationalError as exc:  # unreachable server, unknown database, unwritable file
            engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise WorkspaceError(f"cannot open the state database {_safe_url(url)}: {reason}") from None
        return cls(root, settings, engine)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- paths

    @property
    def traces_dir(self) -> Path:
        return self.root / "traces"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def state_dir(self) -> Path:
        path = self.root / STATE_DIR
        path.mkdir(exist_ok=True)
        return path

    def trace_store(self) -> TraceStore:
        """The trace store, its ``traces`` view joined with what dedup and clustering concluded."""
        from .traces import TraceStore

        return TraceStore(self.traces_dir, derived=self.state_dir / "derived")

    def release_versions(self) -> set[str]:
        """Versions that have a manifest under ``releases/``."""
        return {p.stem for p in self.releases_dir.glob("*.json")}

    def set_dir(self, set_name: str) -> Path:
        return self.root / "sets" / set_name

    def cases_path(self, set_name: str) -> Path:
        return self.set_dir(set_name) / "cases.jsonl"

    def check_set(self, set_name: str | None) -> str:
        """The named set, or the default one; an unknown name is an error."""
        name = set_name or self.settings.default_set
        if name not in self.settings.sets:
            raise NotFound(f"set {name!r} is not in this workspace (sets: {', '.join(self.settings.sets)})")
        return name

    # ----------------------------------------------------------------- state

    def statement(self, name: str, build: Callable[[], _S]) -> _S:
        """The statement (or statements) ``build`` makes, their values as bind parameters given when they run,
        built once for this workspace and kept as ``name``. Building a SQLAlchemy statement (coercions, operators,
        the parts of its cache key) costs 2-5 times what running it does on the web app's hot paths
        (``bench/bench_statements.py``); built once, it goes straight to SQLAlchemy's compiled cache."""
        found = self._statements.get(name)
        if found is None:
            found = self._statements[name] = build()
        return found  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction, committed at the end of the block; inside :meth:`atomic` (in this context), that one."""
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Connection]:
        """One write transaction for the whole block: every :meth:`tx` inside it (in this context: one request, one
        thread) joins it, so its writes commit together or not at all. On SQLite it takes the write lock at its
        start (``BEGIN IMMEDIATE``), so what it reads is what its writes build on; keep reads that need no such
        guarantee before it. Inside another ``atomic`` block it joins that one."""
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self.engine.connect() as conn, conn.begin():
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            token = _ATOMIC.set((self.engine, conn))
            try:
                yield conn
            finally:
                _ATOMIC.reset(token)

    def _joined(self) -> Connection | None:
        """The connection of the :meth:`atomic` block this context is in, when it is this workspace's."""
        joined = _ATOMIC.get()
        return joined[1] if joined is not None and joined[0] is self.engine else None

    @contextlib.contextmanager
    def lock(self, name: str, wait: float = 0.0) -> Iterator[None]:
        """An exclusive lock so two writers of the same store take turns, waiting up to ``wait`` seconds.

        An ``flock`` on ``.evaltray/<name>.lock`` excludes other processes on this machine (the kernel drops
        it when its holder dies, even by kill -9); on PostgreSQL a session advisory lock of the same name
        also excludes writers on other machines that share the state database.
        """
        path = self.state_dir / f"{name}.lock"
        deadline = time.monotonic() + wait
        with path.open("w") as fh, contextlib.ExitStack() as held:
            _poll(lambda: _try_flock(fh), deadline, name, path)
            held.callback(fcntl.flock, fh, fcntl.LOCK_UN)
            if self.engine.dialect.name == "postgresql":
                conn = held.enter_context(self.engine.connect())
                key = int.from_bytes(hashlib.sha256(f"evaltray:{name}".encode()).digest()[:8], "big", signed=True)
                try_pg = sa.text("SELECT pg_try_advisory_lock(:k)").bindparams(k=key)
                _poll(lambda: bool(conn.execute(try_pg).scalar()), deadline, name, path)
                held.callback(conn.execute, sa.text("SELECT pg_advisory_unlock(:k)").bindparams(k=key))
            yield

    def audit(self, conn: Connection, actor: str, action: str, object_id: str | None, **detail: Any) -> None:
        """Append a row to the audit log, chained to the one before it (see :mod:`.audit`). A second row in the
        same transaction right after one it wrote chains to the hash it knows (no read back, no second lock)."""
        txn = conn.get_transaction()  # None before the connection's first statement: then nothing is known
        last = conn.info.get(_AUDIT_LAST)
        mine = txn is not None and last is not None and last[0] is txn
        if self.engine.dialect.name == "postgresql" and not mine:  # appends take turns: each chains to the last
            conn.execute(sa.text("LOCK TABLE audit IN SHARE ROW EXCLUSIVE MODE"))
        row = dict(at=now_iso(), actor=actor, action=action, object_id=object_id, detail=dumps(detail))
        audit = self.t["audit"]
        new_id = inserted_id(conn, self.statement("audit.insert", audit.insert), row)
        known = last[2] if mine and last is not None and last[1] == new_id - 1 else None  # the row just before
        digest = chain_last(
            conn, audit, {**row, "id": new_id}, known, self.statement("audit.chain", lambda: chain_statements(audit))
        )
        conn.info[_AUDIT_LAST] = (conn.get_transaction(), new_id, digest)

    def verify_audit(self) -> AuditCheck:
        """Check the audit log's hash chain; the first row deleted or edited since it was written."""
        with self.tx() as conn:
            return first_break(conn)

    def add_user(self, name: str, role: Role | str, actor: str, public_key: str | None = None) -> None:
        """Register ``name`` with ``role`` (and ``public_key``, their ``.pub`` line), or change their role or key
        (admins only, but for the workspace's first user); audited as ``user.set``. Adjudicators and admins
        need a key; a replaced key stays on record, so what it signed still verifies."""
        if self.users():
            self.require(actor, ADMIN_ROLES, "managing users")
        try:
            role = Role(role)
        except ValueError:
            raise NotFound(f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}") from None
        key = normalize_public(public_key) if public_key is not None else None
        users = self.t["users"]
        with self.tx() as conn:
            old = conn.execute(sa.select(users.c.public_key).where(users.c.name == name)).first()
            key = key or (old.public_key if old is not None else None)
            if key is None and role in KEYED_ROLES:
                raise PermissionDenied(
                    f"the {role.value} role signs, so {name!r} needs a public key: they run `evaltray user keygen {name}`, "
                    f"then `evaltray user add {name} --role {role.value} --key {name}.pub`"
                )
            values = dict(role=role.value, public_key=key)
            if old is not None:
                conn.execute(users.update().where(users.c.name == name).values(**values))
            else:
                conn.execute(users.insert().values(name=name, created_at=now_iso(), **values))
            if key is not None and key not in self._keys(conn, name):
                conn.execute(
                    self.t["user_keys"].insert().values(name=name, public_key=key, added_by=actor, created_at=now_iso())
                )
            detail = {"key": fingerprint(key)} if key is not None else {}
            self.audit(conn, actor, "user.set", name, role=role.value, **detail)

    def remove_user(self, name: str, actor: str) -> None:
        """Take ``name`` off the workspace's users (admins only, never themselves): their role, password, sign-in
        sessions and API tokens go; their keys stay on record, so what they signed still verifies; audited as
        ``user.remove``. :func:`evaltray.tray.oversight.deactivate_user` hands their work over first."""
        self.require(actor, ADMIN_ROLES, "managing users")
        if name == actor:
            raise PermissionDenied(f"user {name!r} cannot deactivate themselves; another admin does")
        self.role_of(name)
        users, sessions, tokens = self.t["users"], self.t["web_sessions"], self.t["api_tokens"]
        with self.tx() as conn:
            conn.execute(sessions.delete().where(sessions.c.name == name))
            live = (tokens.c.name == name) & tokens.c.revoked_at.is_(None)
            conn.execute(tokens.update().where(live).values(revoked_at=now_iso()))
            conn.execute(users.delete().where(users.c.name == name))
            self.audit(conn, actor, "user.remove", name)

    def _keys(self, conn: Connection, name: str) -> list[str]:
        keys = self.t["user_keys"]
        return [r[0] for r in conn.execute(sa.select(keys.c.public_key).where(keys.c.name == name))]

    def users(self) -> list[dict[str, Any]]:
        """Every user with their role, public key and its fingerprint (None without a key)."""
        with self.tx() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(self.t["users"]).order_by("name"))]
        for r in rows:
            r["fingerprint"] = fingerprint(r["public_key"]) if r.get("public_key") else None
        return rows

    def registered_keys(self) -> dict[str, list[str]]:
        """Every public key each user ever had registered (the current one and those it replaced)."""
        keys = self.t["user_keys"]
        out: dict[str, list[str]] = {}
        with self.tx() as conn:
            for name, key in conn.execute(sa.select(keys.c.name, keys.c.public_key).order_by(keys.c.id)):
                out.setdefault(name, []).append(key)
        return out

    def signer(self, name: str) -> Signer:
        """``name``'s private key from the config dir, once it is the key registered for them; else
        :class:`PermissionDenied` naming the user (never the key)."""
        users = self.t["users"]
        with self.tx() as conn:
            registered = conn.execute(sa.select(users.c.public_key).where(users.c.name == name)).scalar()
        if registered is None:
            raise PermissionDenied(
                f"user {name!r} has no registered public key; an admin registers it with "
                f"`evaltray user add {name} --role ROLE --key {name}.pub`"
            )
        signer = load_signer(name)
        if signer.public_key != registered:
            raise PermissionDenied(
                f"the private key for user {name!r} in this config dir ({fingerprint(signer.public_key)}) is not "
                f"the one registered for them ({fingerprint(registered)})"
            )
        return signer

    def role_of(self, name: str) -> Role:
        users = self.t["users"]
        q = self.statement("users.role", lambda: sa.select(users.c.role).where(users.c.name == sa.bindparam("n")))
        with self.tx() as conn:
            row = conn.execute(q, {"n": name}).first()
        if row is None:
            raise self._unregistered(name)
        return Role(row[0])

    @staticmethod
    def _unregistered(name: str) -> PermissionDenied:
        return PermissionDenied(
            f"user {name!r} is not registered; an admin adds them with `evaltray user add {name} --role labeler`"
        )

    def authorize(self, actor: str | None, roles: frozenset[Role], what: str) -> str:
        """The acting user (``actor``, else the workspace's default user), once they hold one of ``roles``."""
        name = current_user(actor, self.settings)
        self.require(name, roles, what)
        return name

    def record(self, actor: str, action: str, object_id: str | None, **detail: Any) -> None:
        """Audit one action in a transaction of its own (for writers whose data lives outside the database)."""
        with self.tx() as conn:
            self.audit(conn, actor, action, object_id, **detail)

    def require(self, name: str, roles: frozenset[Role], what: str) -> Role:
        """Raise unless ``name`` holds one of ``roles`` and, when a key is registered for them, their private
        key is at hand (a name alone is a claim; the key proves it)."""
        users = self.t["users"]
        q = self.statement(
            "users.role_key",
            lambda: sa.select(users.c.role, users.c.public_key).where(users.c.name == sa.bindparam("n")),
        )
        with self.tx() as conn:
            row = conn.execute(q, {"n": name}).first()
        if row is None:
            raise self._unregistered(name)
        role = Role(row.role)
        if role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise PermissionDenied(f"user {name!r} is a {role.value}; {what} needs one of: {allowed}")
        if row.public_key is not None and _PROVED.get() != name:
            self.signer(name)
        return role


#: Where :meth:`Workspace.audit` keeps, per connection, the transaction, id and hash of the last row it wrote.
_AUDIT_LAST = "evaltray_audit_last"

#: The transaction :meth:`Workspace.atomic` holds open in this context, with the engine it belongs to.
_ATOMIC: ContextVar[tuple[Engine, Connection] | None] = ContextVar("evaltray_atomic", default=None)

#: The user a front end has already proved is acting in this context (a web session's or API token's owner):
#: :meth:`Workspace.require` takes that proof instead of loading their private key, which a server never holds.
_PROVED: ContextVar[str | None] = ContextVar("evaltray_proved_user", default=None)


def proved_by_front_end(name: str) -> None:
    """Mark ``name`` as proved for the rest of the current context (one web request: each runs in its own
    context, so the mark never reaches another request). Only a front end that checked a session or token
    calls this; a name alone is still a claim."""
    _PROVED.set(name)


@contextlib.contextmanager
def proved(name: str) -> Iterator[None]:
    """:func:`proved_by_front_end` for the ``with`` block only."""
    token = _PROVED.set(name)
    try:
        yield
    finally:
        _PROVED.reset(token)


def _try_flock(fh: Any) -> bool:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _poll(take: Callable[[], bool], deadline: float, name: str, path: Path) -> None:
    """Call ``take`` until it returns True; past ``deadline``, a one-line error naming the lock."""
    while not take():
        if time.monotonic() >= deadline:
            raise WorkspaceError(f"another evaltray process holds the {name} lock ({path}); wait for it")
        time.sleep(0.02)


def _safe_url(url: str) -> str:
    """``url`` (one SQLAlchemy parsed) with its password masked, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def inserted_id(conn: Connection, insert: sa.Insert, values: dict[str, Any] | None = None) -> int:
    """Run an INSERT of one row (``values``: its values, when ``insert`` does not hold them) and return its new
    primary key."""
    key = (conn.execute(insert) if values is None else conn.execute(insert, values)).inserted_primary_key
    assert key is not None  # one row inserted into a table with a primary key
    return int(key[0])


def find_root(start: Path | None) -> Path:
    """The directory holding ``evaltray.toml``: ``start`` itself (the CLI's ``-w`` or ``$EVALTRAY_WORKSPACE``),
    else the current directory or its nearest parent that holds one."""
    if start is not None:
        path = Path(start).resolve()
        if (path / SETTINGS_FILE).exists():
            return path
        raise WorkspaceError(f"{path}: no {SETTINGS_FILE} here; run `evaltray init` first")
    here = Path.cwd().resolve()
    for path in (here, *here.parents):
        if (path / SETTINGS_FILE).exists():
            return path
    raise WorkspaceError(f"no {SETTINGS_FILE} in {here} or its parents; run `evaltray init NAME` first")
