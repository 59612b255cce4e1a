"""The ledger's SQLite schema, created and upgraded by numbered migrations.

``PRAGMA user_version`` holds the schema version. Each migration runs in its own ``BEGIN
IMMEDIATE`` transaction and re-reads the version after taking the write lock, so several
processes opening a new ledger at once apply each migration exactly once. A ledger written by a
newer costspan (higher version than we know) is refused rather than misread.

Money is integer nano-dollars; times are integer microseconds since the epoch, UTC, so sums are
exact and range scans use plain integer comparisons.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from costspan.files import create_private

BUSY_TIMEOUT_MS = 30_000
BUCKET_US = 900_000_000
"""Rollup slot: 15 minutes, a divisor of every UTC offset in use, so a slot never straddles a local day."""

COLUMNS = (
    "ts_us",
    "service",
    "provider",
    "request_model",
    "response_model",
    "model",
    "operation",
    "project",
    "feature",
    "user_id",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
    "cost_nanos",
    "input_nanos",
    "output_nanos",
    "cache_read_nanos",
    "cache_write_nanos",
    "cost_status",
    "pricing_key",
    "pricing_source",
    "usage_source",
    "duration_us",
    "ttfc_us",
    "outcome",
    "error_type",
    "trace_id",
    "span_id",
    "prompt_hash",
)
"""Insert order of a ledger row (everything but the ``id`` primary key)."""

_V1 = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,              -- call start, microseconds since the epoch, UTC
    service TEXT NOT NULL,
    provider TEXT NOT NULL,
    request_model TEXT NOT NULL,
    response_model TEXT,
    model TEXT NOT NULL,                 -- the model priced: response model, else request model
    operation TEXT NOT NULL,
    project TEXT,
    feature TEXT,
    user_id TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,      -- includes cache reads and writes
    output_tokens INTEGER NOT NULL DEFAULT 0,     -- includes reasoning
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0,
    cost_nanos INTEGER NOT NULL DEFAULT 0,        -- = input + output + cache_read + cache_write nanos
    input_nanos INTEGER NOT NULL DEFAULT 0,
    output_nanos INTEGER NOT NULL DEFAULT 0,
    cache_read_nanos INTEGER NOT NULL DEFAULT 0,
    cache_write_nanos INTEGER NOT NULL DEFAULT 0,
    cost_status TEXT NOT NULL,                    -- priced | free | unpriced
    pricing_key TEXT,
    pricing_source TEXT,
    usage_source TEXT,
    duration_us INTEGER,
    ttfc_us INTEGER,
    outcome TEXT NOT NULL,                        -- success | error | blocked
    error_type TEXT,
    trace_id TEXT,
    span_id TEXT,
    prompt_hash TEXT
);
CREATE INDEX calls_ts ON calls (ts_us);
CREATE INDEX calls_project_ts ON calls (project, ts_us);
CREATE INDEX calls_user_ts ON calls (user_id, ts_us);
CREATE INDEX calls_provider_model_ts ON calls (provider, model, ts_us);
CREATE INDEX calls_prompt_hash ON calls (prompt_hash) WHERE prompt_hash IS NOT NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_V2 = """
CREATE TABLE rollup (
    bucket INTEGER NOT NULL,             -- ts_us // BUCKET_US: 15-minute slots, UTC
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    project TEXT NOT NULL,               -- '' for none (NULLs never conflict in a UNIQUE key)
    feature TEXT NOT NULL,
    operation TEXT NOT NULL,
    calls INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL, images INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL, input_nanos INTEGER NOT NULL, output_nanos INTEGER NOT NULL,
    cache_read_nanos INTEGER NOT NULL, cache_write_nanos INTEGER NOT NULL,
    successes INTEGER NOT NULL, errors INTEGER NOT NULL, blocked INTEGER NOT NULL, unpriced INTEGER NOT NULL,
    duration_us_sum INTEGER NOT NULL, duration_count INTEGER NOT NULL,
    PRIMARY KEY (bucket, provider, model, project, feature, operation)
) WITHOUT ROWID;
INSERT INTO rollup SELECT ts_us / 900000000, provider, model, COALESCE(project, ''), COALESCE(feature, ''),
    operation, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
    SUM(reasoning_tokens), SUM(images), SUM(cost_nanos), SUM(input_nanos), SUM(output_nanos),
    SUM(cache_read_nanos), SUM(cache_write_nanos), SUM(outcome = 'success'), SUM(outcome = 'error'),
    SUM(outcome = 'blocked'), SUM(cost_status = 'unpriced'), COALESCE(SUM(duration_us), 0), COUNT(duration_us)
    FROM calls GROUP BY 1, 2, 3, 4, 5, 6;
DROP INDEX calls_user_ts;
CREATE INDEX calls_user_cover ON calls (user_id, ts_us, cost_nanos, input_tokens, output_tokens, outcome);
CREATE INDEX calls_duration ON calls (duration_us, ts_us);
"""
"""v2: a 15-minute rollup kept by the writer in the same transaction as the rows, so reports sum a few
thousand rollup rows instead of sorting millions of calls (15 minutes divides every zone's UTC offset,
so local days stay exact); covering indexes for top users and the latency percentile."""

MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    lambda conn: _run_script(conn, _V1),  # v0 -> v1: the first schema
    lambda conn: _run_script(conn, _V2),  # v1 -> v2: rollup and covering indexes
)
"""``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``. Append only; never edit a released one."""

SCHEMA_VERSION = len(MIGRATIONS)


class LedgerVersionError(RuntimeError):
    """The ledger file was written by a newer costspan."""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our BEGIN IMMEDIATE; run statement by statement instead.
    for statement in script.split(";"):
        lines = [line.split("--", 1)[0] for line in statement.splitlines()]
        sql = "\n".join(lines).strip()
        if sql:
            conn.execute(sql)


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the ledger, creating and migrating it when writable.

    WAL lets reports read while writers append; ``synchronous=NORMAL`` in WAL mode still never
    corrupts the file and loses at most the last commits on power loss (not on a process crash).
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_version(conn)
        return conn
    create_private(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _set_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def _set_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment with no other connection mid-transaction; retry briefly.
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.05)


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_version(conn: sqlite3.Connection) -> None:
    version = user_version(conn)
    if version > SCHEMA_VERSION:
        raise LedgerVersionError(
            f"ledger schema version {version} is newer than this costspan understands "
            f"({SCHEMA_VERSION}); upgrade costspan"
        )


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations; returns the resulting version."""
    _check_version(conn)
    while user_version(conn) < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = user_version(conn)  # another process may have migrated while we waited
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return user_version(conn)


INSERT_SQL = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
