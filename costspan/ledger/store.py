"""Write rows and keep the rollup in step, inside the caller's transaction.

Rows and rollup change in one transaction, so the rollup always equals the sum of the rows it
covers: a report reading the rollup is exact to the nano-dollar, and a crash leaves neither half.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from costspan.ledger.rows import Row, as_int
from costspan.ledger.schema import BUCKET_US, COLUMNS, INSERT_SQL

_I = {name: i for i, name in enumerate(COLUMNS)}
_TS, _PROVIDER, _MODEL, _PROJECT, _FEATURE, _OPERATION = (
    _I[c] for c in ("ts_us", "provider", "model", "project", "feature", "operation")
)
_SUMMED = tuple(_I[c] for c in (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "images",
    "cost_nanos", "input_nanos", "output_nanos", "cache_read_nanos", "cache_write_nanos",
))
_OUTCOME, _STATUS, _DURATION = _I["outcome"], _I["cost_status"], _I["duration_us"]
MEASURES = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "images",
    "cost_nanos", "input_nanos", "output_nanos", "cache_read_nanos", "cache_write_nanos",
    "successes", "errors", "blocked", "unpriced", "duration_us_sum", "duration_count",
)
_UPSERT = (
    "INSERT INTO rollup (bucket, provider, model, project, feature, operation, "
    + ", ".join(MEASURES)
    + ") VALUES ("
    + ", ".join("?" * (6 + len(MEASURES)))
    + ") ON CONFLICT (bucket, provider, model, project, feature, operation) DO UPDATE SET "
    + ", ".join(f"{m} = {m} + excluded.{m}" for m in MEASURES)
)


def rollup_deltas(rows: Sequence[Row]) -> list[tuple[object, ...]]:
    """The batch summed per (15-minute slot, provider, model, project, feature, operation)."""
    sums: dict[tuple[object, ...], list[int]] = {}
    for row in rows:
        key = (as_int(row[_TS]) // BUCKET_US, row[_PROVIDER], row[_MODEL], row[_PROJECT] or "",
               row[_FEATURE] or "", row[_OPERATION])
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0] * len(MEASURES)
        acc[0] += 1
        for j, i in enumerate(_SUMMED, start=1):
            acc[j] += as_int(row[i])
        outcome = row[_OUTCOME]
        acc[12] += outcome == "success"
        acc[13] += outcome == "error"
        acc[14] += outcome == "blocked"
        acc[15] += row[_STATUS] == "unpriced"
        duration = row[_DURATION]
        if duration is not None:
            acc[16] += as_int(duration)
            acc[17] += 1
    return [(*key, *values) for key, values in sums.items()]


def insert_rows(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """Insert the rows and add them to the rollup; the caller owns the transaction."""
    conn.executemany(INSERT_SQL, rows)
    conn.executemany(_UPSERT, rollup_deltas(rows))
