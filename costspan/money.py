"""Exact money: integer nano-dollars.

Stores, ledger and counters add integers so that a sum over a million calls equals the sum of the
calls to the last unit. Micro-dollars would round a five-token embedding ($0.0000001) to zero, so
the unit is the nano-dollar; an int64 still holds $9.2 billion.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_USD = 1_000_000_000
MAX_NANOS = 2**63 - 1
"""The largest count a store or the ledger holds (SQLite and Redis integers are 64-bit)."""
_NANO = Decimal(1)
MAX_CALL_NANOS = 2**53 - 1
"""The most one call may cost: about nine million dollars, far beyond any real call. Redis's Lua
compares counters as doubles, exact below 2**53; a larger amount can only come from a bad value."""


def usd_to_nanos(usd: Decimal | int | str) -> int:
    """Round an exact USD amount to whole nano-dollars (banker's rounding: no drift in sums)."""
    return int((Decimal(usd) * NANOS_PER_USD).quantize(_NANO, rounding=ROUND_HALF_EVEN))


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def nanos_to_float(nanos: int) -> float:
    """For span attributes and metric samples, which are floats by protocol; never summed by us."""
    return nanos / NANOS_PER_USD
