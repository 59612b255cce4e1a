"""What ``costspan.status()``, ``costspan status`` and the budget gauges show for each limit.

The projection extrapolates the window's average pace so far to its end: it needs no history
beyond the counter itself, so every store can answer it. (The Prometheus recording rule uses
the last hour's pace instead; both are shown, they answer slightly different questions.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costspan.budgets.config import Levels
from costspan.budgets.rules import UNIT_NAMES, Rule
from costspan.budgets.windows import Window
from costspan.money import nanos_to_float

# Before this share of the window has passed, the pace is extrapolated from this much time
# anyway: one call in the first second of a day must not project a thousand-fold spend.
_MIN_ELAPSED_SHARE = 1 / 1440


@dataclass(frozen=True, slots=True)
class Projection:
    projected: int
    """The counter's value at the window's end if the pace so far holds."""
    exhaustion_seconds: float | None
    """Seconds until the limit at that pace; 0 when reached, None when nothing is being used."""


def project(used: int, limit: int, window: Window, now: float) -> Projection:
    elapsed = max(now - window.start, window.seconds * _MIN_ELAPSED_SHARE)
    rate = used / elapsed
    projected = used + round(rate * max(window.end - now, 0.0))
    if used >= limit:
        return Projection(projected, 0.0)
    return Projection(projected, (limit - used) / rate if rate > 0 else None)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget, or one limit of a quota (a quota with per-minute and per-day limits has two)."""

    name: str
    kind: str
    """``budget`` or ``quota``."""
    unit: str
    """``USD``, ``requests`` or ``tokens``."""
    window: str
    limit: int
    """Nano-dollars for budgets, a count for quotas."""
    used: int
    utilization: float
    status: str
    resets_at: datetime
    projection: Projection
    enforce: bool
    member: str | None = None
    """For a ``per`` budget: the most used member, whose figures these are."""
    members: int = 0
    error: str | None = None
    """Set when the store could not be read: the figures are then only what this process knows."""

    @classmethod
    def of(
        cls, rule: Rule, window: Window, members: dict[str, int], now: float, levels: Levels, error: str | None
    ) -> BudgetStatus:
        """A rule's status from its counters in ``window`` (one per member; a ``per`` rule shows
        its most used member, since listing every user would not fit a status line)."""
        member, used = max(members.items(), key=lambda item: item[1], default=("", 0))
        utilization = used / rule.limit
        return cls(
            name=rule.name,
            kind=rule.kind,
            unit=UNIT_NAMES[rule.unit],
            window=rule.window.kind,
            limit=rule.limit,
            used=used,
            utilization=utilization,
            status=levels.status(utilization),
            resets_at=window.resets_at(),
            projection=project(used, rule.limit, window, now),
            enforce=rule.enforce,
            member=member if rule.per is not None and members else None,
            members=len(members) if rule.per is not None else 0,
            error=error,
        )

    @property
    def is_money(self) -> bool:
        return self.unit == "USD"

    def amount(self, value: int) -> float | int:
        """A counter value in the unit shown to people: dollars for budgets, counts for quotas."""
        return nanos_to_float(value) if self.is_money else value

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "window": self.window,
            "unit": self.unit,
            "limit": self.amount(self.limit),
            "used": self.amount(self.used),
            "utilization": self.utilization,
            "status": self.status,
            "resets_at": self.resets_at.isoformat(),
            "projected": self.amount(self.projection.projected),
            "exhaustion_seconds": self.projection.exhaustion_seconds,
            "enforce": self.enforce,
        }
        if self.is_money:
            data["limit_nanos"] = self.limit
            data["used_nanos"] = self.used
        if self.member is not None:
            data["member"] = self.member
            data["members"] = self.members
        if self.error is not None:
            data["error"] = self.error
        return data
