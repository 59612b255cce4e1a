"""genai-prices as a catalog: resolve a model once, then price every call from its own entry.

``genai_prices.calc_price`` matches the model on every call (hundreds of microseconds). Here the
match happens once per (provider, model); the entry's prices for a given price period and service
tier are converted to a :class:`~costspan.pricing.rates.PriceCard` once and compiled, so a call
only picks the period in effect at its own time and the variants of its service tier.

Price keys costspan's usage record cannot measure separately (audio or image tokens, searches)
are not charged apart: those tokens are in the input or output counts and cost the text rate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import types as gp
from genai_prices.data_snapshot import get_snapshot

from costspan.pricing.model import BATCH, service_tier_name
from costspan.pricing.names import genai_prices_id
from costspan.pricing.rates import PriceCard, PriceSet, RateCard, Rates

# genai-prices price key -> (PriceSet field, divisor to a price per million tokens or per unit).
_KEYS: dict[str, tuple[str, int]] = {
    "input_mtok": ("input", 1),
    "cache_read_mtok": ("cached_input", 1),
    "cache_write_mtok": ("cache_write", 1),
    "cache_write_5m_mtok": ("cache_write", 1),
    "cache_write_1h_mtok": ("cache_write_1h", 1),
    "output_mtok": ("output", 1),
    "output_reasoning_mtok": ("reasoning", 1),
    "requests_kcount": ("per_request", 1000),
    "rerank_searches_kcount": ("per_search_unit", 1000),
}


def price_context(service_tier: str | None) -> dict[str, str]:
    """genai-prices' request context for a service tier: batch is ``processing``, others a tier."""
    tier = service_tier_name(service_tier)
    if tier is None:
        return {}
    return {"processing": BATCH} if tier == BATCH else {"service_tier": tier}


def _card(prices: Mapping[str, object]) -> PriceCard:
    """genai-prices' per-key tiers as whole-request tiers: above each threshold any key has,
    every key takes the price of its own highest tier at or below that threshold."""
    base: dict[str, Decimal] = {}
    tiered: dict[str, tuple[gp.TieredPrices, int]] = {}
    for price_key, value in prices.items():
        field_divisor = _KEYS.get(price_key)
        if value is None or field_divisor is None:
            continue
        name, divisor = field_divisor
        if name in base and price_key == "cache_write_5m_mtok":
            continue
        if isinstance(value, gp.TieredPrices):
            base[name] = value.base / divisor
            tiered[name] = (value, divisor)
        else:
            base[name] = Decimal(str(value)) / divisor
    thresholds = sorted({tier.start for value, _ in tiered.values() for tier in value.tiers})
    tiers = []
    for threshold in thresholds:
        partial = {}
        for name, (value, divisor) in tiered.items():
            crossed = [tier.price for tier in value.tiers if tier.start <= threshold]
            if crossed:
                partial[name] = crossed[-1] / divisor
        tiers.append((threshold, PriceSet(**partial)))
    return PriceCard(PriceSet(**base), tuple(tiers))


class GenaiModel:
    """One genai-prices model entry; cards compiled per (price period, active variants)."""

    __slots__ = ("_by_tier", "_cards", "_periods", "_timed", "_variants", "date_limited", "info", "key", "source")

    def __init__(self, info: gp.ModelInfo, owner: str, source: str, *, variants_apply: bool) -> None:
        self.info = info
        self.key = f"{owner}/{info.id}"
        self.source = source
        self.date_limited = False
        self._periods: list[gp.ConditionalPrice] = (
            [gp.ConditionalPrice(prices=info.prices)] if isinstance(info.prices, gp.ModelPrice) else list(info.prices)
        )
        # genai-prices applies no variant to a model borrowed from another provider (Azure's gpt-4o is
        # OpenAI's entry); costspan keeps the batch one, since every reseller halves batch prices too.
        self._variants: list[gp.PriceVariant] = [
            v for v in info.price_variants or () if variants_apply or v.when == {"processing": BATCH}
        ]
        self._timed = any(v.constraint is not None for v in self._variants)
        self._by_tier: dict[str | None, tuple[int, ...]] = {}
        self._cards: dict[tuple[int, tuple[int, ...]], tuple[PriceCard, RateCard | None]] = {}

    def priceable(self) -> bool:
        """False for entries with no price costspan can charge (priced per second, per page...)."""
        return all(_card(period.prices.__dict__).base.prices_anything() for period in self._periods)

    def _period(self, at: datetime) -> int:
        for index in range(len(self._periods) - 1, -1, -1):
            constraint = self._periods[index].constraint
            if constraint is None or constraint.active(at):
                return index
        return 0

    def _variant_ids(self, service_tier: str | None, at: datetime | None) -> tuple[int, ...]:
        ids = self._by_tier.get(service_tier)
        if ids is None:
            context = price_context(service_tier)
            ids = tuple(
                i
                for i, v in enumerate(self._variants)
                if context and all(context.get(k) == w for k, w in v.when.items())
            )
            self._by_tier[service_tier] = ids
        if ids and self._timed:
            moment = at or datetime.now(timezone.utc)
            ids = tuple(i for i in ids if (c := self._variants[i].constraint) is None or c.active(moment))
        return ids

    def _entry(self, at: datetime | None, service_tier: str | None) -> tuple[PriceCard, RateCard | None]:
        period = 0 if len(self._periods) == 1 else self._period(at or datetime.now(timezone.utc))
        variants = self._variant_ids(service_tier, at) if self._variants else ()
        slot = (period, variants)
        entry = self._cards.get(slot)
        if entry is None:
            values = dict(self._periods[period].prices.__dict__)
            for index in reversed(variants):  # whole keys are replaced; the first matching variant wins
                values.update((k, v) for k, v in self._variants[index].prices.__dict__.items() if v is not None)
            card = _card(values)
            entry = self._cards[slot] = (card, card.compile())
        return entry

    def rates(self, at: datetime | None, service_tier: str | None, input_tokens: int) -> Rates | None:
        compiled = self._entry(at, service_tier)[1]
        return compiled.for_input(input_tokens) if compiled is not None else None

    def card(self, at: datetime | None, service_tier: str | None) -> PriceCard | None:
        return self._entry(at, service_tier)[0]

    def service_tiers(self) -> tuple[str, ...]:
        names = {v.when.get("service_tier") or v.when.get("processing") for v in self._variants}
        return tuple(sorted(n for n in names if n and n != "default"))


@dataclass(frozen=True)
class GenaiCatalog:
    """The genai-prices snapshot in use (the bundled one, or one the application updated itself)."""

    snapshot: Any
    source: str

    @classmethod
    def load(cls) -> GenaiCatalog:
        snapshot = get_snapshot()
        source = f"genai-prices {genai_prices.__version__}"
        if snapshot.from_auto_update:
            source += f" (updated {snapshot.timestamp:%Y-%m-%d})"
        return cls(snapshot, source)

    def _provider(self, provider: str) -> gp.Provider | None:
        wanted = genai_prices_id(provider)
        return next((p for p in self.snapshot.providers if p.id == wanted), None)

    def knows(self, provider: str) -> bool:
        return self._provider(provider) is not None

    def find(self, provider: str, model: str) -> GenaiModel | None:
        home = self._provider(provider)
        if home is None:
            return None
        info = home.find_model(model, all_providers=self.snapshot.providers)
        if info is None:
            return None
        own = any(m is info for m in home.models)
        owner = home.id if own else next(p.id for p in self.snapshot.providers if any(m is info for m in p.models))
        found = GenaiModel(info, owner, self.source, variants_apply=own)
        return found if found.priceable() else None

    def models(self, provider: str | None = None) -> Iterator[GenaiModel]:
        """Every priceable entry (of one provider), for ``costspan prices list``."""
        for home in self.snapshot.providers:
            if provider is not None and home.id != genai_prices_id(provider):
                continue
            for info in home.models:
                found = GenaiModel(info, home.id, self.source, variants_apply=True)
                if found.priceable():
                    yield found
