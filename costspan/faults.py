"""Which store failures are outages (worth retrying) and which are the data's own fault.

The budget guard and the ledger writer both keep what they could not write and try again later.
That is right when the store was unreachable, locked, full or damaged: it will take the same
write once it is back. It is wrong for a value the store refuses (an integer too large for a
SQLite column): that write fails the same way on every retry and would hold up everything queued
behind it, so it is dropped alone, counted and logged.
"""

from __future__ import annotations

import sqlite3
import sys


def is_outage(exc: BaseException) -> bool:
    """Whether the store could not take the write now (unreachable, busy, read-only, full, damaged)."""
    if isinstance(exc, sqlite3.DatabaseError):
        return not isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError))
    if isinstance(exc, OSError):
        return True
    if type(exc).__name__ == "StoreFileReplaced":
        return True
    redis = sys.modules.get("redis.exceptions")
    return redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
