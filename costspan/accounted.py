"""What accounting one call produces, and the sinks it goes to.

:class:`costspan.accounting.Accounting` makes an :class:`Accounted` for every call, whoever saw
it (costspan's instrumentors, ``track``, the processor for other instrumentations' spans, the
gateway); the metrics, the ledger and the span's cost attributes are all written from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from costspan.facts import CallFacts
from costspan.pricing import Quote


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


NO_CHARGE = ChargeResult()
"""The result of a call no budget counted: one shared value, since every call without budgets has it."""


@dataclass(frozen=True, slots=True)
class CallLabels:
    """One call's metric label values after folding, computed once and shared by every sink."""

    provider: str
    model: str
    """The model the call is priced and counted as (the responding model, else the requested one)."""
    operation: str
    project: str
    feature: str
    error_type: str
    """``""`` for a call without an error."""
    request_model: str
    response_model: str | None


@dataclass(frozen=True, slots=True)
class Accounted:
    facts: CallFacts
    quote: Quote
    charge: ChargeResult = NO_CHARGE
    labels: CallLabels | None = None
    """Set by the accounting service; a sink given an ``Accounted`` built elsewhere folds its own."""


class Sink(Protocol):
    """Where an accounted call goes next: metrics, the ledger. Must not block for long."""

    def record(self, accounted: Accounted) -> None: ...
