"""Budget and quota windows: calendar day, week and month in a time zone; minute.

Budgets follow the calendar of the people who own them (a day in America/Mexico_City starts at
that city's midnight, whatever DST does), while provider quotas reset on the provider's clock
(UTC unless configured). A window is identified by its local start in ISO form, so store keys
are readable (``day:2024-03-10T00:00:00-06:00``) and a new window is simply a new key.

Computing calendar bounds costs a few microseconds of zoneinfo arithmetic, so each spec caches
the window it last computed and reuses it while the clock stays inside it: the hot path pays
two float comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Window:
    """One concrete window: ``start <= t < end`` in epoch seconds."""

    kind: str
    start: float
    end: float
    id: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def resets_at(self) -> datetime:
        return datetime.fromtimestamp(self.end, timezone.utc)


@dataclass(slots=True)
class WindowSpec:
    """How a budget's windows are cut: the kind, the zone, and the first day of a week."""

    kind: str
    tz: ZoneInfo = UTC
    week_start: int = 0
    """0 = Monday ... 6 = Sunday."""
    _last: Window | None = field(default=None, compare=False, repr=False)

    def at(self, now: float) -> Window:
        """The window containing ``now`` (epoch seconds)."""
        last = self._last
        if last is not None and last.start <= now < last.end:
            return last
        window = self._compute(now)
        self._last = window
        return window

    def _compute(self, now: float) -> Window:
        if self.kind == "minute":
            # Zone offsets are whole minutes, so a minute starts at the same instant everywhere.
            start = now - now % 60
            iso = datetime.fromtimestamp(start, timezone.utc).isoformat()
            return Window("minute", start, start + 60, f"minute:{iso}")
        today = datetime.fromtimestamp(now, self.tz).date()
        if self.kind == "day":
            first, following = today, today + timedelta(days=1)
        elif self.kind == "week":
            first = today - timedelta(days=(today.weekday() - self.week_start) % 7)
            following = first + timedelta(days=7)
        else:
            first = today.replace(day=1)
            following = (first + timedelta(days=32)).replace(day=1)
        midnight = self._midnight(first)
        return Window(
            self.kind,
            midnight.timestamp(),
            self._midnight(following).timestamp(),
            f"{self.kind}:{midnight.isoformat()}",
        )

    def _midnight(self, day: date) -> datetime:
        """The first instant of ``day`` in the zone.

        Where DST skips midnight (clocks jump 00:00 -> 01:00), the naive midnight does not exist;
        zoneinfo resolves it with the offset in force before the jump, which lands exactly on the
        transition, the day's real first instant. Where midnight repeats, ``fold=0`` picks the
        earlier one. Either way the result is normalised to the zone's actual wall time.
        """
        naive = datetime.combine(day, time(0), tzinfo=self.tz)
        return naive.astimezone(timezone.utc).astimezone(self.tz)
