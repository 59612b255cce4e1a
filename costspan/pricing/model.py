"""What a lookup resolves to: one catalog entry that can price calls at any time and service tier.

Every catalog (genai-prices, costspan's price files) hands the pricer objects of this shape, so the
pricer's hot path is the same whoever supplied the price.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Protocol

from costspan.pricing.rates import PriceCard, Rates

BATCH = "batch"
_TIER_ALIASES = {"batches": BATCH, "batch_api": BATCH}


def service_tier_name(tier: str | None) -> str | None:
    """Lowercased, with LiteLLM's ``batches`` spelled ``batch``; None stays None."""
    if not tier:
        return None
    lowered = tier.strip().lower()
    return _TIER_ALIASES.get(lowered, lowered)


def utc_day(at: datetime | None) -> date:
    """The UTC date of a call (None: now; naive times are UTC), the date price changes take effect."""
    if at is None:
        return datetime.now(timezone.utc).date()
    return at.astimezone(timezone.utc).date() if at.tzinfo is not None else at.date()


class PricedModel(Protocol):
    key: str
    """The catalog entry, e.g. ``openai/gpt-4o-mini``: ``costspan.pricing.key``."""
    source: str
    """Where the price comes from, e.g. ``genai-prices 0.2.3``: ``costspan.pricing.source``."""
    date_limited: bool
    """True when some dates have no price here (a user price with an effective date): the pricer
    then keeps the next catalog's entry to fall back to."""

    def rates(self, at: datetime | None, service_tier: str | None, input_tokens: int) -> Rates | None:
        """Compiled rates for a call at ``at`` (None: now); None when no price is in effect then."""
        ...

    def card(self, at: datetime | None, service_tier: str | None) -> PriceCard | None:
        """The same prices as Decimals, for people (``costspan prices show``)."""
        ...

    def service_tiers(self) -> tuple[str, ...]:
        """Service tiers with prices of their own (``batch``, ``flex``, ``priority``...)."""
        ...
