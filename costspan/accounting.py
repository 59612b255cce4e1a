"""The one path every call's money takes: price it, charge its budgets, tell the sinks.

The processor (for spans) and ``costspan.track`` (for everything else) both end here, so an
instrumented call and a manually tracked item are accounted identically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from costspan.pricing import Quote
from costspan.usage import CallFacts

logger = logging.getLogger("costspan")


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """One budget's state after a charge, as put on the span."""

    name: str
    utilization: float
    remaining_nanos: int
    status: str


@dataclass(frozen=True, slots=True)
class ThresholdCrossing:
    budget: str
    threshold: float


@dataclass(frozen=True, slots=True)
class ChargeResult:
    most_used: BudgetSnapshot | None = None
    crossings: tuple[ThresholdCrossing, ...] = ()


@dataclass(frozen=True, slots=True)
class Accounted:
    facts: CallFacts
    quote: Quote
    charge: ChargeResult = field(default_factory=ChargeResult)


class Sink(Protocol):
    """Where an accounted call goes next: metrics, the ledger. Must not block for long."""

    def record(self, accounted: Accounted) -> None: ...
