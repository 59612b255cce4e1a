"""Batching writer: the caller appends to a deque, one background thread writes batches.

Why this shape: ``deque.append`` is atomic under the GIL and takes no lock, so recording a call
costs the caller about a microsecond and can never deadlock with a signal handler that flushes
(the SIGTERM path runs ``close()`` on the main thread, possibly in the middle of a ``record``).

Durability bound: a row is on disk once its batch commits. A batch commits when ``batch_rows``
rows are pending or ``flush_seconds`` after the previous one, and on ``flush()``/``close()``. A
crash (SIGKILL, power loss) therefore loses at most the rows recorded in the last
``flush_seconds`` (or ``batch_rows`` rows, whichever comes first), plus the batch being committed.
A clean exit or SIGTERM loses nothing that was recorded before ``close()``. From SIGTERM on
(``draining``) each ``put`` waits for its row's commit, since the process may then die of the
signal's default action, past ``atexit``, as soon as the application's shutdown is done.

Nothing is dropped silently: a row no SQLite column can hold (which would fail its whole batch on
every retry) is dropped alone, and rows beyond ``MAX_PENDING`` while the disk refuses writes, or
still unwritten when the process exits, are counted (``rows_dropped``, the ``on_drop`` hook that
feeds ``costspan_ledger_rows_dropped_total``) and logged.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from costspan.accounted import Accounted
from costspan.faults import is_outage
from costspan.ledger import prune as prune_module
from costspan.ledger import schema
from costspan.ledger.rows import Row, to_row
from costspan.ledger.store import insert_rows

logger = logging.getLogger("costspan")

MAX_PENDING = 200_000
"""Rows kept while the ledger cannot be written (disk full, file locked); beyond it the oldest go."""
RETENTION_EVERY_S = 3600.0
CLOSE_TIMEOUT_S = 10.0
DRAINING_PUT_TIMEOUT_S = 2.0
"""Once the process is stopping, how long a call waits for its own row to be committed (a few
milliseconds unless another process holds the ledger's write lock)."""

_Item = tuple[Accounted, int] | threading.Event


class LedgerWriter:
    """Owns the ledger file for this process: a queue, a thread, one connection."""

    def __init__(
        self,
        path: Path,
        service: str,
        *,
        batch_rows: int = 500,
        flush_seconds: float = 2.0,
        retention_days: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.service = service
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self.rows_written = 0
        self.rows_dropped = 0
        self.on_drop: Callable[[int], None] | None = None
        """Called with the number of rows given up (the ``costspan_ledger_rows_dropped_total`` counter)."""
        self._logged: set[str] = set()
        self._closed = False
        self.draining = False
        """Set when the process is asked to stop: each row is then written before ``put`` returns."""
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    def _start(self) -> None:
        self._pending: deque[_Item] = deque(maxlen=MAX_PENDING)
        self._retry: list[Row] = []
        self._wake = threading.Event()
        self._stop = False
        self._last_retention = 0.0
        self._thread = threading.Thread(target=self._run, name="costspan-ledger", daemon=True)
        self._thread.start()

    # -- caller's thread -----------------------------------------------------------------------
    def put(self, accounted: Accounted) -> None:
        """Enqueue one call. Lock-free; wakes the writer only when a full batch is waiting. Once
        ``draining``, returns when the row is committed (or after ``DRAINING_PUT_TIMEOUT_S``)."""
        pending = self._pending
        if len(pending) == MAX_PENDING:
            self._dropped(1, "overflow", "costspan: the ledger cannot keep up (disk full or locked?); rows are dropped")
        pending.append((accounted, time.time_ns() // 1000))
        if self.draining:
            # The process may be killed as soon as the call returns (a server that drained its
            # requests re-raises SIGTERM with the default action, past atexit): the row is written
            # before the caller goes on, not merely handed to the thread.
            self.flush(DRAINING_PUT_TIMEOUT_S)
        elif len(pending) == self.batch_rows:
            self._wake.set()

    def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Write everything enqueued so far; True once it is committed (or nothing to do)."""
        if not self._thread.is_alive():
            self._drain_here()
            return True
        done = threading.Event()
        self._pending.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Commit every recorded row and stop the thread. Idempotent; safe from a signal handler."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._log_once("close", "costspan: ledger writer busy after %.0fs; unflushed rows may be lost", timeout)
            return
        self._drain_here()
        lost = len(self._retry) + sum(1 for item in self._pending if not isinstance(item, threading.Event))
        if lost:
            self._retry.clear()
            self._pending.clear()
            self._dropped(lost, "exit", "costspan: the ledger %s could not be written at exit; %d rows lost",
                          self.path, lost)

    # -- writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                stopping = self._stop
                if conn is None:
                    conn = self._open()
                if conn is not None:
                    self._write_pending(conn)
                    self._maybe_apply_retention(conn)
                if stopping:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _open(self) -> sqlite3.Connection | None:
        try:
            return schema.connect(self.path)
        except Exception:
            self._log_once("open", "costspan: cannot open the ledger %s; rows are kept in memory", self.path)
            return None

    def _write_pending(self, conn: sqlite3.Connection) -> None:
        """Drain the deque in batches; markers (flush requests) are set once what precedes them is written."""
        while True:
            rows: list[Row] = self._retry
            self._retry = []
            markers: list[threading.Event] = []
            pending = self._pending
            while pending and len(rows) < self.batch_rows * 4:
                item = pending.popleft()
                if isinstance(item, threading.Event):
                    markers.append(item)
                    break
                row = self._to_row(item)
                if row is not None:
                    rows.append(row)
            if rows and not self._commit(conn, rows):
                if len(rows) > MAX_PENDING:
                    excess = len(rows) - MAX_PENDING
                    self._dropped(excess, "overflow", "costspan: the ledger cannot keep up; rows are dropped")
                self._retry = rows[-MAX_PENDING:]
                for marker in markers:
                    marker.set()  # a flush waiter must not hang on a broken disk
                return
            for marker in markers:
                marker.set()
            if not pending:
                return

    def _to_row(self, item: tuple[Accounted, int]) -> Row | None:
        accounted, recorded_us = item
        try:
            return to_row(accounted, accounted.facts.service or self.service, recorded_us)
        except Exception:
            self._dropped(1, "row", "costspan: a call could not be made into a ledger row; it is dropped")
            return None

    def _commit(self, conn: sqlite3.Connection, rows: list[Row]) -> bool:
        """Write the batch; on a value SQLite refuses, write its rows one by one and drop the bad ones.
        False (keep the rows for a retry) when the file cannot be written at all."""
        try:
            self._insert(conn, rows)
            return True
        except Exception as exc:
            if is_outage(exc):
                self._log_once("write", "costspan: cannot write to the ledger %s; will retry", self.path)
                return False
        for index, row in enumerate(rows):
            try:
                self._insert(conn, [row])
            except Exception as exc:
                if is_outage(exc):
                    self._log_once("write", "costspan: cannot write to the ledger %s; will retry", self.path)
                    del rows[:index]
                    return False
                self._dropped(1, "value", "costspan: a ledger row held a value SQLite cannot store; it is dropped")
        return True

    def _insert(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            insert_rows(conn, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rows_written += len(rows)

    def _dropped(self, count: int, key: str, message: str, *args: object) -> None:
        self.rows_dropped += count
        if self.on_drop is not None:
            try:
                self.on_drop(count)
            except Exception:
                logger.debug("costspan: counting dropped ledger rows failed", exc_info=True)
        if key not in self._logged:
            self._logged.add(key)
            logger.error(message, *args)

    def _maybe_apply_retention(self, conn: sqlite3.Connection) -> None:
        if self.retention_days is None:
            return
        now = time.monotonic()
        if self._last_retention and now - self._last_retention < RETENTION_EVERY_S:
            return
        self._last_retention = now
        try:
            prune_module.prune(conn, prune_module.cutoff_us(timedelta(days=self.retention_days)))
        except Exception:
            self._log_once("retention", "costspan: ledger retention failed on %s", self.path)

    def _drain_here(self) -> None:
        """Write what is left on the calling thread (after the writer thread has stopped)."""
        if not self._pending and not self._retry:
            return
        conn = self._open()
        if conn is None:
            return
        try:
            self._write_pending(conn)
        finally:
            conn.close()

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.exception(message, *args) if key != "close" else logger.error(message, *args)


def _restart_in_child(ref: weakref.ref[LedgerWriter]) -> None:
    """A forked child inherits the queue but not the thread: start afresh with an empty queue,
    so the parent's pending rows are written once, by the parent."""
    writer = ref()
    if writer is not None and not writer._closed:
        writer._start()
