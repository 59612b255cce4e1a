"""Calendar windows in real time zones, DST included, and the engine resetting on them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from costspan.budgets.windows import WindowSpec
from costspan.pricing import PRICED, Quote
from tests.test_budget_stores import facts, make_engine

SUNDAY = 6


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.parametrize(
    ("kind", "zone", "week_start", "instant", "start", "hours"),
    [
        # Mexico City: UTC-6 all year since 2022; midnight there is 06:00 UTC.
        ("day", "America/Mexico_City", 0, "2024-05-01T05:59:59+00:00", "2024-04-30T00:00:00-06:00", 24),
        ("day", "America/Mexico_City", 0, "2024-05-01T06:00:00+00:00", "2024-05-01T00:00:00-06:00", 24),
        # ... and in 2021, when it still had DST, the first day of summer time was 23 hours long.
        ("day", "America/Mexico_City", 0, "2021-04-04T12:00:00+00:00", "2021-04-04T00:00:00-06:00", 23),
        # Berlin: spring forward (23 h) and fall back (25 h).
        ("day", "Europe/Berlin", 0, "2024-03-31T12:00:00+00:00", "2024-03-31T00:00:00+01:00", 23),
        ("day", "Europe/Berlin", 0, "2024-10-27T12:00:00+00:00", "2024-10-27T00:00:00+02:00", 25),
        ("day", "Europe/Berlin", 0, "2024-10-26T22:30:00+00:00", "2024-10-27T00:00:00+02:00", 25),
        # Weeks start on Monday unless week_start says otherwise; both span the spring change here.
        ("week", "Europe/Berlin", 0, "2024-03-31T12:00:00+00:00", "2024-03-25T00:00:00+01:00", 167),
        ("week", "Europe/Berlin", SUNDAY, "2024-03-31T12:00:00+00:00", "2024-03-31T00:00:00+01:00", 167),
        ("week", "Europe/Berlin", SUNDAY, "2024-03-30T22:59:59+00:00", "2024-03-24T00:00:00+01:00", 168),
        ("month", "Europe/Berlin", 0, "2024-10-15T12:00:00+00:00", "2024-10-01T00:00:00+02:00", 745),
        ("month", "UTC", 0, "2024-02-29T23:59:59+00:00", "2024-02-01T00:00:00+00:00", 29 * 24),
        # Santiago skips midnight when DST starts: that day begins at 01:00.
        ("day", "America/Santiago", 0, "2024-09-08T12:00:00+00:00", "2024-09-08T01:00:00-03:00", 23),
    ],
)
def test_calendar_windows(kind: str, zone: str, week_start: int, instant: str, start: str, hours: int) -> None:
    window = WindowSpec(kind, ZoneInfo(zone), week_start).at(ts(instant))
    assert window.start == ts(start)
    assert window.seconds == hours * 3600
    assert window.id == f"{kind}:{datetime.fromtimestamp(window.start, ZoneInfo(zone)).isoformat()}"
    assert window.start <= ts(instant) < window.end


def test_berlin_week_with_sunday_start_has_the_local_start() -> None:
    window = WindowSpec("week", ZoneInfo("Europe/Berlin"), SUNDAY).at(ts("2024-03-31T12:00:00+00:00"))
    assert window.id == "week:2024-03-31T00:00:00+01:00"  # the change happens at 02:00 that day
    assert window.resets_at().isoformat() == "2024-04-06T22:00:00+00:00"


def test_minute_windows_are_utc_minutes() -> None:
    spec = WindowSpec("minute")
    window = spec.at(ts("2024-09-08T12:00:59.5+00:00"))
    assert (window.start, window.end) == (ts("2024-09-08T12:00:00+00:00"), ts("2024-09-08T12:01:00+00:00"))
    assert spec.at(ts("2024-09-08T12:01:00+00:00")).start == window.end


def test_budget_day_follows_the_configured_zone_and_quota_day_follows_utc(tmp_path: Path) -> None:
    now = [ts("2024-05-01T05:00:00+00:00")]  # 23:00 on 30 April in Mexico City
    yaml = (
        "timezone: America/Mexico_City\n"
        "budgets:\n  - {name: mx, limit_usd: 1, window: day}\n"
        "quotas:\n"
        "  - {name: utc-day, requests_per_day: 100}\n"
        "  - {name: la-day, requests_per_day: 100, timezone: America/Los_Angeles}\n"
    )
    engine = make_engine(tmp_path, yaml, "memory://", clock=lambda: now[0])

    def used() -> dict[str, int]:
        return {entry.name: entry.used for entry in engine.status()}

    engine.charge(facts(), Quote(PRICED, input_nanos=5))
    assert used() == {"mx": 5, "utc-day": 1, "la-day": 1}
    now[0] = ts("2024-05-01T06:00:00+00:00")  # Mexico City midnight: the budget resets
    assert used() == {"mx": 0, "utc-day": 1, "la-day": 1}
    now[0] = ts("2024-05-01T07:00:00+00:00")  # Los Angeles midnight (PDT): that quota resets
    assert used() == {"mx": 0, "utc-day": 1, "la-day": 0}
    now[0] = ts("2024-05-02T00:00:00+00:00")  # UTC midnight: the default quota day resets
    assert used() == {"mx": 0, "utc-day": 0, "la-day": 0}
    engine.close()


def test_week_start_moves_the_reset(tmp_path: Path) -> None:
    now = [ts("2024-03-30T12:00:00+00:00")]  # a Saturday in Berlin
    yaml = (
        "timezone: Europe/Berlin\n"
        "budgets:\n"
        "  - {name: monday, limit_usd: 1, window: week}\n"
        "  - {name: sunday, limit_usd: 1, window: week, week_start: sunday}\n"
    )
    engine = make_engine(tmp_path, yaml, "memory://", clock=lambda: now[0])
    engine.charge(facts(), Quote(PRICED, input_nanos=7))
    now[0] = ts("2024-03-30T23:30:00+00:00")  # Sunday 00:30 in Berlin (still winter time)
    assert {entry.name: entry.used for entry in engine.status()} == {"monday": 7, "sunday": 0}
    engine.close()
