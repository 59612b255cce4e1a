"""``sqlite:///path``: the embedded default, exact across the threads and processes of one host.

Every write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before reading,
so a check-and-add cannot interleave with another process's (no lost increments, no quota
over-admission). WAL with ``synchronous=NORMAL`` keeps a charge at a few tens of microseconds;
a crash can lose at most the last transactions before it, never corrupt the file.

A connection must not cross ``fork()`` (pre-fork servers fork after import): each process opens
its own on first use, and a fork hook makes the child forget the parent's connection and lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from costspan.budgets.store import Claim, Increment, Take, TakeResult
from costspan.files import create_private

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS budget_counters "
    "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS budget_claims (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
)
_ADD = (
    "INSERT INTO budget_counters (key, value, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value, "
    "expires_at = max(expires_at, excluded.expires_at) RETURNING value"
)
_GET = "SELECT value FROM budget_counters WHERE key = ?"
_CLAIM = "INSERT OR IGNORE INTO budget_claims (key, expires_at) VALUES (?, ?)"
_BUSY_TIMEOUT_S = 5.0
_PRUNE_EVERY_S = 600.0

_open_stores: weakref.WeakSet[SqliteStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_open_stores):
        store._forget()


os.register_at_fork(after_in_child=_after_fork)


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._next_prune = 0.0
        _open_stores.add(self)

    def take(self, takes: Sequence[Take]) -> TakeResult:
        with self._transaction() as conn:
            values = tuple(self._get(conn, take.key) for take in takes)
            for index, (take, value) in enumerate(zip(takes, values, strict=True)):
                if take.refuses(value):
                    return TakeResult(index, values)
            for take in takes:
                if take.delta:
                    conn.execute(_ADD, (take.key, take.delta, take.expires_at)).fetchone()
            return TakeResult(-1, values)

    def apply(self, increments: Sequence[Increment]) -> tuple[int, ...]:
        with self._transaction() as conn:
            values = tuple(int(conn.execute(_ADD, increment).fetchone()[0]) for increment in increments)
            self._maybe_prune(conn)
            return values

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...]:
        with self._transaction() as conn:
            return tuple(index for index, claim in enumerate(claims) if conn.execute(_CLAIM, claim).rowcount == 1)

    def read(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            conn = self._connection()
            return [self._get(conn, key) for key in keys]

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
        if self._conn is None:
            create_private(self.path)
            conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            try:
                _prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _get(conn: sqlite3.Connection, key: str) -> int:
        row = conn.execute(_GET, (key,)).fetchone()
        return int(row[0]) if row else 0

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        conn.execute("DELETE FROM budget_counters WHERE expires_at < ?", (int(now),))
        conn.execute("DELETE FROM budget_claims WHERE expires_at < ?", (int(now),))


def _prepare(conn: sqlite3.Connection) -> None:
    """WAL and the tables, retried while another process does the same.

    Switching a new file to WAL and creating its tables race when several processes start at
    once, and SQLite reports some of those conflicts as "locked" at once, without waiting in its
    busy handler; so wait here, within the same time budget.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
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
