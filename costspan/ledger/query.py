"""Aggregation queries over the ledger: every figure a report shows is one SQL GROUP BY.

Sums are done by SQLite on integer columns (exact nano-dollars); Python only folds the grouped
rows, which are few (a group per model, per day, ...), so a million-row ledger is one or two
scans per table in the report, not a million Python objects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo

from costspan.ledger import localtime
from costspan.ledger.periods import Period
from costspan.ledger.rows import as_int
from costspan.ledger.schema import BUCKET_US
from costspan.ledger.store import MEASURES

DIMENSIONS = ("provider", "model", "project", "user", "feature", "operation", "day", "hour")
_COLUMN = {"provider": "provider", "model": "model", "project": "project", "user": "user_id",
           "feature": "feature", "operation": "operation"}


@dataclass(frozen=True)
class Filters:
    """Which rows: a period and optional exact-match filters (each may list several values)."""

    period: Period
    project: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    provider: tuple[str, ...] = ()
    model: tuple[str, ...] = ()

    def with_period(self, period: Period) -> Filters:
        return Filters(period, self.project, self.user, self.provider, self.model)

    def where(self) -> tuple[str, list[object]]:
        clauses = ["ts_us >= ?", "ts_us < ?"]
        params: list[object] = [self.period.start_us, self.period.end_us]
        for name, values in (("project", self.project), ("user_id", self.user),
                             ("provider", self.provider), ("model", self.model)):
            if values:
                clauses.append(f"{name} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        return " AND ".join(clauses), params


@dataclass
class Agg:
    """Sums over a group of calls. Token counts follow the ledger: cache and reasoning are subsets."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    cost_nanos: int = 0
    input_nanos: int = 0
    output_nanos: int = 0
    cache_read_nanos: int = 0
    cache_write_nanos: int = 0
    successes: int = 0
    errors: int = 0
    blocked: int = 0
    unpriced: int = 0
    duration_us_sum: int = 0
    duration_count: int = 0

    def add(self, other: Agg) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.calls if self.calls else None

    @property
    def avg_latency_s(self) -> float | None:
        return self.duration_us_sum / self.duration_count / 1e6 if self.duration_count else None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["success_rate"] = self.success_rate
        out["avg_latency_s"] = self.avg_latency_s
        return out


_AGG_SQL = ", ".join((
    "COUNT(*)",
    "TOTAL(input_tokens)", "TOTAL(output_tokens)", "TOTAL(cache_read_tokens)", "TOTAL(cache_write_tokens)",
    "TOTAL(reasoning_tokens)", "TOTAL(images)",
    "SUM(cost_nanos)", "SUM(input_nanos)", "SUM(output_nanos)", "SUM(cache_read_nanos)", "SUM(cache_write_nanos)",
    "SUM(outcome = 'success')", "SUM(outcome = 'error')", "SUM(outcome = 'blocked')",
    "SUM(cost_status = 'unpriced')",
    "SUM(duration_us)", "COUNT(duration_us)",
))
_NAGG = 18


def _agg(values: Sequence[object]) -> Agg:
    return Agg(*(as_int(v) for v in values))


def key_sql(dimension: str, tz: ZoneInfo, period: Period, time_column: str = "ts_us") -> str:
    if dimension == "day":
        return localtime.day_sql(tz, period.start_us, period.end_us, time_column)
    if dimension == "hour":
        return localtime.hour_sql(tz, period.start_us, period.end_us, time_column)
    return _COLUMN[dimension]


def label(dimension: str, value: object) -> str:
    """People's form of a group key: dates for day/hour numbers, ``(none)`` for missing values."""
    if value is None or value == "":
        return "(none)"
    if dimension == "day":
        return localtime.day_label(as_int(value))
    if dimension == "hour":
        return localtime.hour_label(as_int(value))
    return str(value)


Groups = dict[tuple[object, ...], Agg]


def grouped(
    conn: sqlite3.Connection,
    filters: Filters,
    dimensions: Iterable[str],
    tz: ZoneInfo,
    *,
    order_by_cost: bool = False,
    limit: int | None = None,
) -> list[tuple[tuple[object, ...], Agg]]:
    """Sums per group over the filtered calls; keys are raw (day numbers, None for missing).

    Whole 15-minute slots inside the period come from the rollup, the partial slots at its edges
    from the rows, so the answer is exact and costs a scan of the rollup, not of the calls. Per-user
    questions have no rollup (too many users to pre-aggregate) and read the rows.
    """
    dims = tuple(dimensions)
    span = _data_span(conn, filters.period) if ("day" in dims or "hour" in dims) else filters.period
    source = _raw if "user" in dims or filters.user else _rolled
    groups = source(conn, filters, dims, tz, span)
    items = [(k, a) for k, a in groups.items() if a.calls]
    if order_by_cost:
        items.sort(key=lambda item: (-item[1].cost_nanos, [str(v) for v in item[0]]))
    else:
        items.sort(key=lambda item: [(v is None, v if v is not None else 0) for v in item[0]])
    return items[:limit] if limit is not None else items


def _data_span(conn: sqlite3.Connection, period: Period) -> Period:
    """The period narrowed to the rows that exist, so the local-time SQL covers only real offsets
    (an open-ended ``--from`` would otherwise look for DST changes until the year 9999)."""
    lo, hi = conn.execute("SELECT MIN(ts_us), MAX(ts_us) FROM calls").fetchone()
    if lo is None:
        return period
    start = max(period.start_us, lo // BUCKET_US * BUCKET_US)
    end = min(period.end_us, hi + 1)
    return Period(start, max(end, start + 1))


def _merge(into: Groups, rows: Iterable[Sequence[object]], n: int) -> None:
    for row in rows:
        key = tuple(None if v == "" else v for v in row[:n])
        agg = _agg(row[n:n + _NAGG])
        if key in into:
            into[key].add(agg)
        else:
            into[key] = agg


def _raw(conn: sqlite3.Connection, filters: Filters, dims: tuple[str, ...], tz: ZoneInfo, span: Period) -> Groups:
    keys = [key_sql(d, tz, span) for d in dims]
    where, params = filters.where()
    sql = f"SELECT {', '.join([*keys, _AGG_SQL])} FROM calls WHERE {where}"
    if keys:
        sql += f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    out: Groups = {}
    _merge(out, (r for r in conn.execute(sql, params) if r[len(keys)]), len(keys))
    return out


_ROLLUP_SUMS = ", ".join(f"SUM({m})" for m in MEASURES)


def _rolled(conn: sqlite3.Connection, filters: Filters, dims: tuple[str, ...], tz: ZoneInfo, span: Period) -> Groups:
    period = filters.period
    first = -(-period.start_us // BUCKET_US)
    last = period.end_us // BUCKET_US
    if first >= last:
        return _raw(conn, filters, dims, tz, span)
    out: Groups = {}
    keys = [key_sql(d, tz, span, f"(bucket * {BUCKET_US})") for d in dims]
    clauses = ["bucket >= ?", "bucket < ?"]
    params: list[object] = [first, last]
    for name, values in (("project", filters.project), ("provider", filters.provider), ("model", filters.model)):
        if values:
            clauses.append(f"{name} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    sql = f"SELECT {', '.join([*keys, _ROLLUP_SUMS])} FROM rollup WHERE {' AND '.join(clauses)}"
    if keys:
        sql += f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    _merge(out, (r for r in conn.execute(sql, params) if r[len(keys)]), len(keys))
    for edge in (Period(period.start_us, first * BUCKET_US), Period(last * BUCKET_US, period.end_us)):
        if edge.end_us > edge.start_us:
            for key, agg in _raw(conn, filters.with_period(edge), dims, tz, span).items():
                if key in out:
                    out[key].add(agg)
                else:
                    out[key] = agg
    return out


def totals(conn: sqlite3.Connection, filters: Filters) -> Agg:
    rows = grouped(conn, filters, (), ZoneInfo("UTC"))
    return rows[0][1] if rows else Agg()


def top_users(conn: sqlite3.Connection, filters: Filters, limit: int) -> list[tuple[str, Agg]]:
    """Largest-cost users. Without other filters this walks the covering user index (no table
    reads, no sort of the calls); the Agg then carries calls, cost, tokens and successes only."""
    if filters.project or filters.provider or filters.model:
        return [(str(k[0]), a) for k, a in grouped(conn, filters, ("user",), ZoneInfo("UTC"), order_by_cost=True)
                if k[0] is not None][:limit]
    where, params = filters.where()
    sql = (
        "SELECT user_id, COUNT(*), SUM(cost_nanos), SUM(input_tokens), SUM(output_tokens), "
        f"SUM(outcome = 'success') FROM calls INDEXED BY calls_user_cover WHERE user_id IS NOT NULL AND {where} "
        "GROUP BY user_id ORDER BY 3 DESC, 1 LIMIT ?"
    )
    out = []
    for user, calls, cost, inp, outp, ok in conn.execute(sql, [*params, limit]):
        out.append((str(user), Agg(calls=calls, cost_nanos=cost or 0, input_tokens=inp or 0,
                                   output_tokens=outp or 0, successes=ok or 0)))
    return out


def latency_percentile(conn: sqlite3.Connection, filters: Filters, fraction: float,
                       count: int | None = None) -> float | None:
    """Exact nearest-rank percentile of call duration, seconds (None without durations).

    ``count`` (calls with a duration in the filtered set) saves a pass when the caller has it.
    Unfiltered, the rank is found walking the (duration, time) index from the slow end: only the
    slowest few percent are visited. Filtered, the matching durations are sorted.
    """
    where, params = filters.where()
    if count is None:
        count = int(conn.execute(f"SELECT COUNT(duration_us) FROM calls WHERE {where}", params).fetchone()[0])
    if not count:
        return None
    rank = min(count, max(1, -(-round(count * fraction * 1_000_000) // 1_000_000)))  # ceil, float-safe
    if filters.project or filters.provider or filters.model or filters.user:
        sql = (f"SELECT duration_us FROM calls WHERE {where} AND duration_us IS NOT NULL "
               "ORDER BY duration_us LIMIT 1 OFFSET ?")
        row = conn.execute(sql, [*params, rank - 1]).fetchone()
    else:
        sql = (f"SELECT duration_us FROM calls INDEXED BY calls_duration WHERE {where} "
               "AND duration_us IS NOT NULL ORDER BY duration_us DESC LIMIT 1 OFFSET ?")
        row = conn.execute(sql, [*params, count - rank]).fetchone()
    return row[0] / 1e6 if row else None
