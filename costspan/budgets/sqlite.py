"""``sqlite:///path``: the embedded default, exact across the threads and processes of one host.

Every write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before reading,
so a check-and-add cannot interleave with another process's (no lost increments, no quota
over-admission). WAL with ``synchronous=NORMAL`` keeps a charge at a few tens of microseconds;
a crash can lose at most the last transactions before it, never corrupt the file. A new file
gets pages of :data:`PAGE_SIZE` bytes: every commit writes and checksums each page it changed
into the log, and a charge changes a row or two: with SQLite's default of 4 KiB that copying was
about a third of a charge's time in the store.

No caller waits on the file lock for more than :data:`BUSY_TIMEOUT_S`: past it the operation
fails, and the guard keeps the charge and applies it later, exactly as during an outage.

A write's outcome is never in doubt (:attr:`SqliteStore.outcome_known`): it is one local
transaction, and every error ends it without effect. A statement that fails inside it changes
nothing once rolled back; a ``COMMIT`` that fails leaves the transaction either open (it is rolled
back here) or already rolled back by SQLite, never committed. So the guard's replay of an apply
that raised is its first application, and an apply without an operation id records none. The
ids still sent are recorded as before: a take's (its giveback depends on it), a span's (other
callers share it) and that of a charge the guard kept (a fork may copy it into a child).

A store file deleted (or replaced) under a running process would otherwise swallow every later
charge into an unlinked inode. So the file's identity is checked at most once a second; when it
changed, its counters, claims and operation ids are copied from the still-open old file into the
new one (once, whichever process notices first: the new file records which file it was restored
from), the failure is logged and the operation fails, to be replayed against the new file.

A connection must not cross ``fork()`` (pre-fork servers fork after import): each process opens
its own on first use, and a fork hook makes the child forget the parent's connection and lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from costspan.budgets.store import OP_TTL_S, Claim, Giveback, Increment, Take, TakeResult
from costspan.files import create_private

logger = logging.getLogger("costspan")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS budget_counters "
    "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS budget_claims (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS budget_ops (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS budget_restored (source TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
)
_ADD = (
    "INSERT INTO budget_counters (key, value, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value, "
    "expires_at = max(expires_at, excluded.expires_at)"
)
"""Without ``RETURNING``: an upsert that returns its row costs twice one that does not, so the new
values are read back with one ``SELECT`` for all the keys of the transaction."""
_CLAIM = "INSERT OR IGNORE INTO budget_claims (key, expires_at) VALUES (?, ?)"
_RECORD_OP = "INSERT OR IGNORE INTO budget_ops (id, expires_at) VALUES (?, ?)"
_FORGET_OP = "DELETE FROM budget_ops WHERE id = ?"
BUSY_TIMEOUT_S = 0.1
"""The longest a caller waits for another process's write lock."""
PAGE_SIZE = 1024
"""Of a file created from now on (an existing file keeps its own: SQLite fixes it at creation)."""
_PRUNE_EVERY_S = 600.0
_CHECK_FILE_EVERY_S = 1.0

_open_stores: weakref.WeakSet[SqliteStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_open_stores):
        store._forget()


os.register_at_fork(after_in_child=_after_fork)


class StoreFileReplaced(RuntimeError):
    """The store file changed under the process; the operation is retried against the new one."""


class SqliteStore:
    backend = "sqlite"
    outcome_known = True
    """Every write is one transaction that commits or raises having changed nothing (see above)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._next_prune = 0.0
        self._next_check = 0.0
        _open_stores.add(self)

    def take(self, takes: Sequence[Take], op: str | None = None) -> TakeResult:
        with self._transaction() as conn:
            values = _values(conn, [take.key for take in takes])
            for index, (take, value) in enumerate(zip(takes, values, strict=True)):
                if take.refuses(value):
                    return TakeResult(index, values)
            conn.executemany(_ADD, [(take.key, take.delta, take.expires_at) for take in takes if take.delta])
            if op is not None:
                conn.execute(_RECORD_OP, (op, int(time.time()) + OP_TTL_S))
            return TakeResult(-1, values)

    def apply(
        self, increments: Sequence[Increment], op: str | None = None, giveback: Giveback | None = None
    ) -> tuple[int, ...]:
        keys = [increment.key for increment in increments]
        with self._transaction() as conn:
            if op is not None and conn.execute(_RECORD_OP, (op, int(time.time()) + OP_TTL_S)).rowcount == 0:
                return _values(conn, keys)
            rows = list(increments)
            if giveback is not None and conn.execute(_FORGET_OP, (giveback.take_op,)).rowcount == 1:
                rows.extend(Increment(taken.key, -taken.delta, taken.expires_at) for taken in giveback.taken)
            conn.executemany(_ADD, rows)
            self._maybe_prune(conn)
            return _values(conn, keys)

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...]:
        with self._transaction() as conn:
            return tuple(index for index, claim in enumerate(claims) if conn.execute(_CLAIM, claim).rowcount == 1)

    def read(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            return list(_values(self._connection(), keys))

    def scan(self, prefix: str) -> dict[str, int]:
        # Keys sort by prefix, so a range on the primary key finds the members without a scan.
        with self._lock:
            rows = self._connection().execute(
                "SELECT key, value FROM budget_counters WHERE key >= ? AND key < ?",
                (prefix, prefix + "\U0010ffff"),
            )
            return {str(key): int(value) for key, value in rows}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals -------------------------------------------------------------------------
    def _forget(self) -> None:
        """In a forked child: the parent's connection and lock state are not ours to use."""
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + _CHECK_FILE_EVERY_S
                if _identity(self.path) != self._identity:
                    self._replace_file()
            return self._conn
        conn = _open(self.path)
        self._conn, self._identity = conn, _identity(self.path)
        self._next_check = time.monotonic() + _CHECK_FILE_EVERY_S
        return conn

    def _replace_file(self) -> None:
        """Carry the old file's state into the file now at the path, then fail this operation."""
        old, old_identity = self._conn, self._identity
        assert old is not None
        self._conn = None
        try:
            state = _State.read(old)
        finally:
            old.close()
        if _identity(self.path) is None:
            # The side files left at the path belonged to the deleted file: a new file must not
            # adopt its old write-ahead log.
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        conn = _open(self.path)
        restored = state.write(conn, old_identity)
        self._conn, self._identity = conn, _identity(self.path)
        logger.error(
            "costspan: the budget store %s was deleted or replaced while in use; %s",
            self.path,
            "its counters were restored into the new file" if restored else "another process restored its counters",
        )
        raise StoreFileReplaced(f"the budget store {self.path} was deleted or replaced")

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        for table in ("budget_counters", "budget_claims", "budget_ops"):
            conn.execute(f"DELETE FROM {table} WHERE expires_at < ?", (int(now),))


class _Transaction:
    """``with store._transaction() as conn``: one ``BEGIN IMMEDIATE`` transaction under the store's
    lock, committed when the block ends, rolled back when it raises or its COMMIT fails. A class, not
    a ``@contextmanager`` generator: it is on every charge's path, where a generator costs 4x."""

    __slots__ = ("_conn", "_lock", "_store")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._lock = store._lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            conn = self._conn = self._store._connection()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        conn = self._conn
        try:
            if exc_type is None:
                conn.execute("COMMIT")
        finally:
            try:
                if conn.in_transaction:  # the block raised, or a failed COMMIT (a full disk) left it open
                    conn.execute("ROLLBACK")
            finally:
                self._lock.release()


_SELECT_ONE = "SELECT value FROM budget_counters WHERE key = ?"
_SELECTS: dict[int, str] = {}


def _values(conn: sqlite3.Connection, keys: Sequence[str]) -> tuple[int, ...]:
    """Each key's counter (0 when absent), in one statement whatever the number of keys."""
    if len(keys) == 1:  # the common case (one budget), where an IN list and its dict cost half again
        row = conn.execute(_SELECT_ONE, keys).fetchone()
        return (int(row[0]) if row is not None else 0,)
    if not keys:
        return ()
    sql = _SELECTS.get(len(keys))
    if sql is None:
        sql = _SELECTS[len(keys)] = (
            f"SELECT key, value FROM budget_counters WHERE key IN ({', '.join('?' * len(keys))})"
        )
    found = dict(conn.execute(sql, keys).fetchall())
    return tuple(int(found.get(key, 0)) for key in keys)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _open(path: Path) -> sqlite3.Connection:
    create_private(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        _prepare(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class _State(NamedTuple):
    """Everything a store file holds: what a replaced file hands on to its successor."""

    counters: list[tuple[str, int, int]]
    claims: list[tuple[str, int]]
    ops: list[tuple[str, int]]

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> _State:
        return cls(
            conn.execute("SELECT key, value, expires_at FROM budget_counters").fetchall(),
            conn.execute("SELECT key, expires_at FROM budget_claims").fetchall(),
            conn.execute("SELECT id, expires_at FROM budget_ops").fetchall(),
        )

    def write(self, conn: sqlite3.Connection, identity: tuple[int, int] | None) -> bool:
        """Add this state to the file unless a process did it already; True if this call did."""
        source = f"{identity[0]}:{identity[1]}" if identity else "unknown"
        conn.execute("BEGIN IMMEDIATE")
        try:
            copied = conn.execute("INSERT OR IGNORE INTO budget_restored VALUES (?, ?)", (source, int(time.time())))
            if copied.rowcount:
                conn.executemany(_ADD, self.counters)
                conn.executemany(_CLAIM, self.claims)
                conn.executemany(_RECORD_OP, self.ops)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return bool(copied.rowcount)


def _prepare(conn: sqlite3.Connection) -> None:
    """WAL and the tables, retried while another process does the same.

    Switching a new file to WAL and creating its tables race when several processes start at
    once, and SQLite reports some of those conflicts as "locked" at once, without waiting in its
    busy handler; so wait here, within the same time budget.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
            return
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
