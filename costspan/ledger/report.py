"""The report's figures, as data: built by a few GROUP BY queries, rendered by text/HTML/JSON.

Query plan (why it is fast on a million rows): one pass over the 15-minute rollup grouped by
(local day, provider, model, project, feature, operation) gives the totals, the daily trend, the
stacked chart and every table made of those dimensions; ``--by user``/``hour`` add a pass; top
users walk a covering index; p95 walks the duration index from the slow end; the previous period
is one more rollup pass. Month-end projection reuses the daily figures when the period covers
the month so far.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from costspan.ledger import localtime
from costspan.ledger.periods import Period, month_of
from costspan.ledger.query import Agg, Filters, grouped, label, latency_percentile, top_users, totals
from costspan.ledger.rows import as_int, to_us

CUBE = ("day", "provider", "model", "project", "feature", "operation")
"""One rollup pass grouped by all of these feeds the totals, trend and every table made of them."""
DEFAULT_BY: tuple[tuple[str, ...], ...] = (("provider",), ("model",), ("project",))


@dataclass
class Table:
    """A breakdown: ``dimensions`` labels each row; rows are largest cost first."""

    dimensions: tuple[str, ...]
    rows: list[tuple[tuple[str, ...], Agg]]
    other: Agg | None = None
    """Everything beyond the shown rows, folded, so the table still adds up to the total."""


@dataclass
class Projection:
    month: str
    month_to_date_nanos: int
    projected_nanos: int | None
    elapsed_days: float
    days_in_month: float
    basis: str


@dataclass
class Report:
    tz: ZoneInfo
    period: Period
    filters: Filters
    totals: Agg
    p95_latency_s: float | None
    previous: Agg
    tables: list[Table]
    days: list[tuple[str, Agg]]
    """Every local day of the period, zero days included, oldest first."""
    day_provider: dict[str, dict[str, int]]
    """Cost nanos by day label, then provider (the stacked chart)."""
    top_users: list[tuple[str, Agg]]
    models: list[tuple[str, Agg]]
    """Cost by model, most expensive first, whatever ``--by`` asked (the HTML chart)."""
    projection: Projection | None
    generated_at: datetime
    budgets: list[dict[str, object]] = field(default_factory=list)

    def change(self, attr: str = "cost_nanos") -> float | None:
        """Relative change against the previous period of the same length (None from zero)."""
        before = getattr(self.previous, attr)
        if not before:
            return None
        return (getattr(self.totals, attr) - before) / before


def build(
    conn: sqlite3.Connection,
    filters: Filters,
    tz: ZoneInfo,
    *,
    by: tuple[tuple[str, ...], ...] = DEFAULT_BY,
    top: int = 10,
    now: datetime | None = None,
) -> Report:
    now = now or datetime.now(timezone.utc)
    period = filters.period
    cube = grouped(conn, filters, CUBE, tz)

    total = Agg()
    by_day: dict[int, Agg] = {}
    day_provider: dict[str, dict[str, int]] = {}
    for key, agg in cube:
        day, provider = key[0], str(key[1])
        total.add(agg)
        by_day.setdefault(as_int(day), Agg()).add(agg)
        per_day = day_provider.setdefault(label("day", day), {})
        per_day[provider] = per_day.get(provider, 0) + agg.cost_nanos

    first_day = _local_day(period.start_us, tz)
    last_day = _local_day(period.end_us - 1, tz)
    days = [(localtime.day_label(d), by_day.get(d, Agg())) for d in range(first_day, last_day + 1)]

    tables: list[Table] = []
    for dims in by:
        rows: list[tuple[tuple[str, ...], Agg]]
        if dims == ("day",):
            rows = [((d,), a) for d, a in days]
        elif set(dims) <= set(CUBE):
            rows = _fold(cube, dims)
        else:
            raw = grouped(conn, filters, dims, tz, order_by_cost=True)
            rows = [(tuple(label(d, v) for d, v in zip(dims, key, strict=True)), a) for key, a in raw]
        tables.append(_cut(dims, rows, top if "day" not in dims and "hour" not in dims else None))

    users = top_users(conn, filters, top)
    models = [(key[0], agg) for key, agg in _fold(cube, ("model",))]

    previous = totals(conn, filters.with_period(period.previous()))
    p95 = latency_percentile(conn, filters, 0.95, total.duration_count)
    projection = _projection(conn, filters, tz, now, by_day)
    return Report(
        tz, period, filters, total, p95, previous, tables, days, day_provider, users, models, projection, now
    )


def _fold(cube: list[tuple[tuple[object, ...], Agg]], dims: tuple[str, ...]) -> list[tuple[tuple[str, ...], Agg]]:
    """Re-group the cube's rows by some of its dimensions, largest cost first."""
    positions = [CUBE.index(d) for d in dims]
    out: dict[tuple[str, ...], Agg] = {}
    for key, agg in cube:
        folded = tuple(label(d, key[p]) for d, p in zip(dims, positions, strict=True))
        out.setdefault(folded, Agg()).add(agg)
    return sorted(out.items(), key=lambda item: (-item[1].cost_nanos, item[0]))


def _local_day(ts_us: int, tz: ZoneInfo) -> int:
    moment = datetime.fromtimestamp(ts_us / 1e6, timezone.utc).astimezone(tz)
    return (moment.date() - datetime(1970, 1, 1).date()).days


def _cut(dims: tuple[str, ...], rows: list[tuple[tuple[str, ...], Agg]], top: int | None) -> Table:
    if top is None or len(rows) <= top:
        return Table(dims, rows)
    other = Agg()
    for _, agg in rows[top:]:
        other.add(agg)
    return Table(dims, rows[:top], other)


def _projection(
    conn: sqlite3.Connection, filters: Filters, tz: ZoneInfo, now: datetime, by_day: dict[int, Agg]
) -> Projection | None:
    """Linear month-end projection: month-to-date spend / elapsed days x days in the month."""
    month = month_of(now, tz)
    now_us = to_us(now)
    elapsed_us = now_us - month.start_us
    if elapsed_us <= 0:
        return None
    if filters.period.start_us <= month.start_us and filters.period.end_us >= now_us:
        first = _local_day(month.start_us, tz)
        mtd = sum(a.cost_nanos for d, a in by_day.items() if d >= first)
    else:
        mtd = totals(conn, filters.with_period(Period(month.start_us, now_us))).cost_nanos
    elapsed_days = elapsed_us / 86_400e6
    days_in_month = month.length_us / 86_400e6
    projected = round(mtd * month.length_us / elapsed_us) if elapsed_days >= 1 else None
    start = month.start(tz)
    basis = (
        f"linear: spend from {start:%Y-%m-%d} to now ({elapsed_days:.1f} of {days_in_month:.0f} days) "
        f"scaled to the whole month; same filters as the report"
    )
    if projected is None:
        basis = "less than one day of the month has passed: too little to project"
    return Projection(f"{start:%Y-%m}", mtd, projected, elapsed_days, days_in_month, basis)


def tokens(n: int) -> str:
    """``1.2M``, ``35.4k``, ``812``: counts people read at a glance."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def since_label(period: Period, tz: ZoneInfo) -> str:
    start, end = period.start(tz), period.end(tz)
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} {tz.key}"


