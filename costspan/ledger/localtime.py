"""Local calendar buckets (day, hour) computed inside SQLite for any IANA time zone.

SQLite knows only UTC and the machine's zone. Over a bounded period a zone has a handful of
UTC offsets separated by known transition instants, so the local time of ``ts_us`` is
``ts_us + CASE WHEN ts_us < t1 THEN off0 WHEN ts_us < t2 THEN off1 ... END``: exact at DST
changes and half-hour zones, and still a single aggregation pass over the rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

US = 1_000_000
DAY_US = 86_400 * US
HOUR_US = 3_600 * US


def _offset_us(tz: ZoneInfo, at_s: int) -> int:
    moment = datetime.fromtimestamp(at_s, timezone.utc).astimezone(tz)
    offset = moment.utcoffset() or timedelta(0)
    return int(offset.total_seconds()) * US


def segments(tz: ZoneInfo, start_us: int, end_us: int) -> list[tuple[int, int]]:
    """``[(from_us, offset_us), ...]``: the zone's offset from each transition inside the range on."""
    step = 6 * 3600
    t = start_us // US
    end = end_us // US + 1
    result = [(start_us, _offset_us(tz, t))]
    while t < end:
        nxt = min(t + step, end)
        if _offset_us(tz, nxt) != result[-1][1]:
            lo, hi = t, nxt  # offset(lo) == previous, offset(hi) == new: bisect to the second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_us(tz, mid) == result[-1][1]:
                    lo = mid
                else:
                    hi = mid
            result.append((hi * US, _offset_us(tz, hi)))
        t = nxt
    return result


def local_us_sql(tz: ZoneInfo, start_us: int, end_us: int, column: str = "ts_us") -> str:
    """SQL for local wall-clock microseconds of ``column`` (valid for rows within the range)."""
    parts = segments(tz, start_us, end_us)
    if len(parts) == 1:
        return f"({column} + {parts[0][1]})"
    whens = " ".join(f"WHEN {column} < {boundary} THEN {offset}" for (boundary, _), (_, offset) in
                     zip(parts[1:], parts[:-1], strict=True))
    return f"({column} + CASE {whens} ELSE {parts[-1][1]} END)"


def day_sql(tz: ZoneInfo, start_us: int, end_us: int, column: str = "ts_us") -> str:
    """Local day number (days since 1970-01-01 on the local calendar)."""
    return f"({local_us_sql(tz, start_us, end_us, column)} / {DAY_US})"


def hour_sql(tz: ZoneInfo, start_us: int, end_us: int, column: str = "ts_us") -> str:
    """Local hour number (hours since 1970-01-01T00:00 local)."""
    return f"({local_us_sql(tz, start_us, end_us, column)} / {HOUR_US})"


def day_label(day_number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()


def hour_label(hour_number: int) -> str:
    day, hour = divmod(hour_number, 24)
    return f"{day_label(day)} {hour:02d}:00"
