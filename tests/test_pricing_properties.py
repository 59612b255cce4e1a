"""Properties of every quote: never negative, parts add up, monotone in every token count, and
equal to the nano-dollar of genai-prices' own exact Decimal calculation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import types as gp
from hypothesis import given, settings
from hypothesis import strategies as st

from costspan.facts import Usage
from costspan.money import usd_to_nanos
from costspan.pricing import PRICED
from costspan.pricing.genai import GenaiCatalog, GenaiModel, price_context
from costspan.pricing.pricer import LayeredPricer
from costspan.pricing.rates import PriceCard, PriceSet, charge

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
CATALOG = GenaiCatalog.load()
PRICER = LayeredPricer(genai=CATALOG)
# Real models covering caches, 1h writes, tiers, reasoning prices and time-of-day prices.
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("x_ai", "grok-4.20"),
    ("deepseek", "deepseek-chat"),
    ("groq", "openai/gpt-oss-20b"),
    ("openai", "gpt-5.6-luna"),
]
TIERS = [None, "batch", "flex", "priority"]


@st.composite
def usages(draw: st.DrawFn) -> tuple[int, ...]:
    """Independent counts: uncached, cache read, 5m write, 1h write, plain output, reasoning, images."""
    small = st.integers(0, 400_000)
    return (draw(small), draw(small), draw(small), draw(small), draw(small), draw(small), draw(st.integers(0, 5)))


def usage_of(counts: Sequence[int]) -> Usage:
    uncached, read, write_5m, write_1h, plain, reasoning, images = counts
    return Usage(
        input_tokens=uncached + read + write_5m + write_1h,
        output_tokens=plain + reasoning,
        cache_read_tokens=read,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=reasoning,
        images=images,
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(TIERS), usages(), st.integers(0, 6), st.integers(1, 300_000))
def test_monotone_non_negative_and_parts_add_up(
    model: tuple[str, str], tier: str | None, counts: tuple[int, ...], which: int, more: int
) -> None:
    usage = usage_of(counts)
    quote = PRICER.quote(*model, usage, at=NOW, service_tier=tier)
    assert quote.status == PRICED
    values = (quote.input_nanos, quote.cache_read_nanos, quote.cache_write_nanos, quote.output_nanos)
    assert all(v >= 0 for v in values)
    assert sum(values) == quote.total_nanos
    bigger = list(counts)
    bigger[which] += more
    assert PRICER.quote(*model, usage_of(bigger), at=NOW, service_tier=tier).total_nanos >= quote.total_nanos


prices = st.one_of(st.none(), st.decimals(min_value=0, max_value=1000, places=6))


@settings(max_examples=300, deadline=None)
@given(st.builds(PriceSet, prices, prices, prices, prices, prices, prices, prices, prices), usages())
def test_rounding_once_from_the_exact_amount(price_set: PriceSet, counts: tuple[int, ...]) -> None:
    """Any prices at all: the total is the exact Decimal amount rounded half-even, once."""
    compiled = PriceCard(price_set).compile()
    if compiled is None:
        return
    usage = usage_of(counts)
    uncached, read, write_5m, write_1h, plain, reasoning, images = counts
    inp = price_set.input or Decimal(0)
    out = price_set.output or Decimal(0)
    cached = inp if price_set.cached_input is None else price_set.cached_input
    write = inp if price_set.cache_write is None else price_set.cache_write
    write_hour = write if price_set.cache_write_1h is None else price_set.cache_write_1h
    think = out if price_set.reasoning is None else price_set.reasoning
    exact = (
        (uncached * inp + read * cached + write_5m * write + write_1h * write_hour + plain * out + reasoning * think)
        / 1_000_000
        + images * (price_set.per_image or 0)
        + (price_set.per_request or 0)
    )
    result = charge(compiled.for_input(usage.input_tokens), usage)
    assert all(v >= 0 for v in result)
    assert sum(result) == usd_to_nanos(exact)


def _genai_usage(usage: Usage, model: GenaiModel) -> genai_prices.Usage:
    values = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
    }
    card = model.card(NOW, None)
    if (card is not None and card.base.reasoning is not None) or any(
        getattr(v.prices, "output_reasoning_mtok", None) is not None for v in model.info.price_variants or ()
    ):
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    return genai_prices.Usage(**values)


def every_model() -> list[tuple[str, GenaiModel]]:
    return [(model.key.split("/", 1)[0], model) for model in CATALOG.models()]


@pytest.mark.parametrize("tier", [None, "batch", "priority"])
def test_every_genai_prices_model_matches_calc_price(tier: str | None) -> None:
    """All ~2,300 priceable entries: our integer result is genai-prices' Decimal total, to the nano."""
    usage = Usage(
        input_tokens=250_123, output_tokens=40_321, cache_read_tokens=30_007, cache_write_tokens=20_011,
        cache_write_1h_tokens=5_003, reasoning_tokens=10_009,
    )
    checked = 0
    for provider_id, model in every_model():
        provider = next(p for p in CATALOG.snapshot.providers if p.id == provider_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = model.info.calc_price(
                    _genai_usage(usage, model), provider, genai_request_timestamp=NOW, price_context=price_context(tier)
                )
            except ValueError:  # entries genai-prices itself refuses for this usage
                continue
        rates = model.rates(NOW, tier, usage.input_tokens)
        assert rates is not None
        assert sum(charge(rates, usage)) == usd_to_nanos(expected.total_price), model.key
        checked += 1
    assert checked > 2_000


def test_reasoning_rate_when_the_catalog_has_one() -> None:
    """Reasoning tokens priced at their own rate are taken out of output, not added to it."""
    found = [m for _, m in every_model() if (c := m.card(NOW, None)) is not None and c.base.reasoning is not None]
    assert found, "genai-prices has models with a separate reasoning price"
    model = found[0]
    card = model.card(NOW, None)
    assert card is not None and card.base.output is not None and card.base.reasoning is not None
    rates = model.rates(NOW, None, 0)
    assert rates is not None
    result = charge(rates, Usage(output_tokens=1_000, reasoning_tokens=400))
    expected = (600 * card.base.output + 400 * card.base.reasoning) / 1_000_000 + (card.base.per_request or 0)
    assert sum(result) == usd_to_nanos(expected)


def test_types_module_is_the_one_we_adapt() -> None:
    """The adapter reads genai-prices' dataclasses directly; fail clearly if their shape changes."""
    assert {f for f in gp.ModelInfo.__dataclass_fields__} >= {"id", "prices", "price_variants"}
