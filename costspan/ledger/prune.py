"""Retention: delete ledger rows older than a cutoff, in small chunks.

Chunks keep each write transaction short, so writers in other processes (busy-waiting on the
lock) are never held up for long even when a year of rows goes at once.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone

from costspan.ledger.schema import BUCKET_US

CHUNK_ROWS = 20_000


def cutoff_us(older_than: timedelta, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    return int((now - older_than).timestamp() * 1_000_000)


def count_older(conn: sqlite3.Connection, before_us: int) -> int:
    """How many rows ``prune(conn, before_us)`` would delete (for ``--dry-run``)."""
    return int(conn.execute("SELECT COUNT(*) FROM calls WHERE ts_us < ?", (snap(before_us),)).fetchone()[0])


def snap(before_us: int) -> int:
    """The cutoff rounded down to a rollup slot, so rows and rollup are cut at the same instant."""
    return before_us // BUCKET_US * BUCKET_US


def prune(conn: sqlite3.Connection, before_us: int, *, chunk_rows: int = CHUNK_ROWS) -> int:
    """Delete every row that started before ``snap(before_us)``, and its rollup; returns how many rows.

    The rollup slots go in the first transaction: while the chunks run, a report over the pruned
    range may see fewer rollup figures than rows, never double counts.
    """
    before_us = snap(before_us)
    deleted = 0
    first = True
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if first:
                conn.execute("DELETE FROM rollup WHERE bucket < ?", (before_us // BUCKET_US,))
                first = False
            cursor = conn.execute(
                "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE ts_us < ? ORDER BY ts_us LIMIT ?)",
                (before_us, chunk_rows),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        deleted += cursor.rowcount
        if cursor.rowcount < chunk_rows:
            return deleted
        time.sleep(0)  # let other threads of this process take the GIL between chunks
