"""Prices and quotes as plain data, for ``costspan prices`` (text and ``--json`` share it).

Amounts are exact decimal strings: a float would print 0.15 as 0.15000000000000002 somewhere.
"""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from typing import Any

from costspan.money import nanos_to_usd
from costspan.pricing import Quote
from costspan.pricing.rates import PriceCard, PriceSet


def usd(nanos: int) -> str:
    """Exact USD with nine decimals (``0.000420000``)."""
    return f"{nanos_to_usd(nanos):.9f}"


def number(value: Decimal) -> str:
    """``0.075``, ``10``: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def price_set(prices: PriceSet) -> dict[str, str]:
    """The prices that are set: per million tokens, or per image / per request."""
    return {f.name: number(v) for f in fields(prices) if (v := getattr(prices, f.name)) is not None}


def card(value: PriceCard) -> dict[str, Any]:
    out: dict[str, Any] = price_set(value.base)
    if value.tiers:
        out["tiers"] = [{"above": threshold, **price_set(prices)} for threshold, prices in value.tiers]
    return out


def quote(value: Quote) -> dict[str, Any]:
    return {
        "status": value.status,
        "key": value.key,
        "source": value.source,
        "reason": value.reason,
        "total_usd": usd(value.total_nanos),
        "input_usd": usd(value.input_nanos),
        "cache_read_usd": usd(value.cache_read_nanos),
        "cache_write_usd": usd(value.cache_write_nanos),
        "output_usd": usd(value.output_nanos),
        "total_nanos": value.total_nanos,
    }
