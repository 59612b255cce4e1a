"""Numbers for people and for machines in the ledger's outputs (currency: :mod:`costspan.currency`)."""

from __future__ import annotations

from costspan.money import NANOS_PER_USD


def tokens(n: int) -> str:
    """``1.2M``, ``35.4k``, ``812``: counts people read at a glance."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def usd_string(nanos: int) -> str:
    """Exact decimal USD for machine output (``0.000012345``), no float rounding."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}"
