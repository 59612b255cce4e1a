"""Pricing: turns a normalised :class:`~costspan.facts.Usage` into an exact cost.

The rest of costspan sees only :class:`Quote` and :class:`Pricer`; catalogs, overrides and name
matching live behind them so they can grow without touching the processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from costspan.facts import Usage

PRICED = "priced"
FREE = "free"
UNPRICED = "unpriced"


@dataclass(frozen=True, slots=True)
class Quote:
    """The cost of one call in nano-dollars, split so the parts always add up to ``total_nanos``."""

    status: str
    input_nanos: int = 0
    """Uncached input tokens, plus per-request fees."""
    cache_read_nanos: int = 0
    cache_write_nanos: int = 0
    output_nanos: int = 0
    """All output, reasoning and generated images included."""
    key: str | None = None
    source: str | None = None
    reason: str | None = None
    """Why a call is unpriced (or free), for the log and ``costspan prices quote``."""

    @property
    def total_nanos(self) -> int:
        return self.input_nanos + self.cache_read_nanos + self.cache_write_nanos + self.output_nanos


class Pricer(Protocol):
    def quote(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        at: datetime | None = None,
        service_tier: str | None = None,
        server_address: str | None = None,
    ) -> Quote:
        """Price one call. Never raises: anything it cannot price is an ``unpriced`` quote."""
        ...
