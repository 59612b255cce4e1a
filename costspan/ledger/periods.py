"""Report periods: ``--since 7d`` or ``--from DATE --to DATE``, on the configured zone's calendar.

A period is half-open, ``[start, end)``, in UTC microseconds, so adjacent periods never count a
call twice. ``--to DATE`` includes that whole local day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from costspan.ledger.rows import to_us

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Period:
    start_us: int
    end_us: int

    @property
    def length_us(self) -> int:
        return self.end_us - self.start_us

    def previous(self) -> Period:
        """The period of the same length just before this one (for "change vs previous")."""
        return Period(self.start_us - self.length_us, self.start_us)

    def start(self, tz: ZoneInfo) -> datetime:
        return datetime.fromtimestamp(self.start_us / 1_000_000, timezone.utc).astimezone(tz)

    def end(self, tz: ZoneInfo) -> datetime:
        return datetime.fromtimestamp(self.end_us / 1_000_000, timezone.utc).astimezone(tz)


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration like 30m, 24h, 7d or 2w, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """A date (local midnight; the next midnight with ``end_of_day``) or an ISO date-time."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected a date (2025-01-31) or date-time, got {text!r}") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=tz)
    if end_of_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=tz)


def resolve(
    tz: ZoneInfo,
    now: datetime,
    *,
    since: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    default: str = "30d",
) -> Period:
    """The period the flags ask for; ``--from`` without ``--to`` runs to now."""
    if from_ is not None or to is not None:
        if since is not None:
            raise ValueError("use either --since or --from/--to, not both")
        start = parse_moment(from_, tz) if from_ else datetime(1970, 1, 1, tzinfo=timezone.utc)
        end = parse_moment(to, tz, end_of_day=True) if to else now
    else:
        end = now
        start = now - parse_duration(since or default)
    if end <= start:
        raise ValueError("the period ends before it starts")
    return Period(to_us(start), to_us(end))


def month_of(now: datetime, tz: ZoneInfo) -> Period:
    """The local calendar month containing ``now``."""
    local = now.astimezone(tz)
    first = datetime(local.year, local.month, 1, tzinfo=tz)
    nxt = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=tz)
    return Period(to_us(first), to_us(nxt))
