"""Exact arithmetic: Decimal prices compiled once into integers, then one call priced in integers.

Catalogs state prices in USD per million tokens as Decimals (``0.075``). Multiplying Decimals on
every call is slow and invites rounding at each step, so a price set is compiled once into
:class:`Rates`: every rate as an integer count of ``1/scale`` nano-dollars per token (or per image,
per request), with ``scale`` a power of ten large enough that nothing is lost. A call is then
priced with integer multiplications only and rounded once, half-even, to whole nano-dollars.

Token semantics are semconv's: input includes cache reads and writes, output includes reasoning.
The subsets are priced at their own rate and taken out of their parent, never added on top.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal

from costspan.facts import Usage

MILLION = Decimal(1_000_000)
_NANOS_PER_USD = Decimal(1_000_000_000)
_NANOS_PER_MTOK_USD = _NANOS_PER_USD / MILLION


@dataclass(frozen=True, slots=True)
class PriceSet:
    """One set of prices in USD: per million tokens, except ``per_image``, ``per_request`` and ``per_search_unit``.

    ``None`` means "not priced separately": cached input and cache writes then cost the input
    rate, 1-hour cache writes the cache-write rate and reasoning the output rate, which is how
    providers bill tokens that have no rate of their own.
    """

    input: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None
    per_image: Decimal | None = None
    per_request: Decimal | None = None
    per_search_unit: Decimal | None = None

    def over(self, base: PriceSet) -> PriceSet:
        """These prices where set, ``base``'s elsewhere (tiers and service tiers are partial)."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def prices_anything(self) -> bool:
        """False for entries priced only in units costspan does not measure (seconds, pixels...)."""
        return any(
            v is not None for v in (self.input, self.output, self.per_image, self.per_request, self.per_search_unit)
        )


@dataclass(frozen=True, slots=True)
class PriceCard:
    """A price set with its long-context tiers: above ``threshold`` input tokens (cache included),
    the WHOLE request is billed at the tier's prices, as Anthropic, Google and OpenAI bill it."""

    base: PriceSet
    tiers: tuple[tuple[int, PriceSet], ...] = ()
    """(threshold, partial prices) in ascending threshold order."""

    def over(self, base: PriceCard) -> PriceCard:
        """A service tier's card over the standard one: each part overrides where it is set."""
        thresholds = sorted({t for t, _ in base.tiers} | {t for t, _ in self.tiers})
        mine, theirs = dict(self.tiers), dict(base.tiers)
        tiers = tuple(
            (t, mine.get(t, PriceSet()).over(theirs.get(t, PriceSet()))) for t in thresholds
        )
        return PriceCard(self.base.over(base.base), tiers)

    def compile(self) -> RateCard | None:
        """Integer rates for the hot path; None when nothing costspan measures is priced."""
        if not self.base.prices_anything():
            return None
        base = compile_rates(self.base)
        tiers = []
        merged = self.base
        for threshold, partial in self.tiers:
            merged = partial.over(merged)
            tiers.append((threshold, compile_rates(merged)))
        return RateCard(base, tuple(tiers))


@dataclass(frozen=True, slots=True)
class Rates:
    """Integer rates, each in ``1/scale`` nano-dollars per unit, fallbacks already applied."""

    scale: int
    input: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int
    image: int
    request: int
    search_unit: int


@dataclass(frozen=True, slots=True)
class RateCard:
    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()

    def for_input(self, input_tokens: int) -> Rates:
        """The rates that apply to a request of this many input tokens (highest tier crossed)."""
        for threshold, rates in reversed(self.tiers):
            if input_tokens > threshold:
                return rates
        return self.base


def compile_rates(prices: PriceSet) -> Rates:
    input_ = prices.input or Decimal(0)
    cache_read = input_ if prices.cached_input is None else prices.cached_input
    cache_write = input_ if prices.cache_write is None else prices.cache_write
    cache_write_1h = cache_write if prices.cache_write_1h is None else prices.cache_write_1h
    output = prices.output or Decimal(0)
    reasoning = output if prices.reasoning is None else prices.reasoning
    nanos = [
        *(rate * _NANOS_PER_MTOK_USD for rate in (input_, cache_read, cache_write, cache_write_1h, output, reasoning)),
        (prices.per_image or Decimal(0)) * _NANOS_PER_USD,
        (prices.per_request or Decimal(0)) * _NANOS_PER_USD,
        (prices.per_search_unit or Decimal(0)) * _NANOS_PER_USD,
    ]
    digits = max(0, *(-int(n.normalize().as_tuple().exponent) for n in nanos))
    scale = 10**digits
    ints = [int(n * scale) for n in nanos]
    return Rates(scale, *ints)


def charge(rates: Rates, usage: Usage) -> tuple[int, int, int, int]:
    """(input, cache read, cache write, output) nano-dollars of one call.

    The parts are cumulative roundings of the exact amount, so they are each within one nano of
    exact, never negative, and always add up to the exactly rounded total.
    """
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    cache_write_1h = min(usage.cache_write_1h_tokens, cache_write)
    uncached = max(usage.input_tokens - cache_read - cache_write, 0)
    output = usage.output_tokens
    reasoning = min(usage.reasoning_tokens, output)
    a_input = uncached * rates.input + rates.request + usage.search_units * rates.search_unit
    a_read = cache_read * rates.cache_read
    a_write = (cache_write - cache_write_1h) * rates.cache_write + cache_write_1h * rates.cache_write_1h
    a_output = (output - reasoning) * rates.output + reasoning * rates.reasoning + usage.images * rates.image
    scale = rates.scale
    if scale == 1:
        return a_input, a_read, a_write, a_output
    n1 = _round(a_input, scale)
    n2 = _round(a_input + a_read, scale)
    n3 = _round(a_input + a_read + a_write, scale)
    n4 = _round(a_input + a_read + a_write + a_output, scale)
    return n1, n2 - n1, n3 - n2, n4 - n3


def _round(amount: int, scale: int) -> int:
    """``amount / scale`` rounded half-even, in integers (the same rule as ``usd_to_nanos``)."""
    quotient, remainder = divmod(amount, scale)
    twice = 2 * remainder
    if twice > scale or (twice == scale and quotient % 2):
        quotient += 1
    return quotient
