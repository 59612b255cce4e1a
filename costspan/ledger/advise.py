"""``costspan advise``: savings the ledger can show, each with the evidence it rests on.

Three kinds, all computed from recorded facts and stated with their basis:
(a) cheaper models: the same calls (this model's observed average call, times the number of calls)
    priced at the list prices of the same provider's other models (genai-prices). It compares
    prices only, not quality, and assumes the same token counts (tokenizers and verbosity differ);
(b) repeated prompts: identical request messages (salted hashes, ``ledger.prompt_hashes``); every
    repeat after the first could have been served from an application cache;
(c) prompt-cache use: the share of input tokens the provider reported as read from its cache.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from costspan.ledger.query import Agg, Filters, grouped
from costspan.money import usd_to_nanos

GENAI_PRICES_PROVIDER = {
    "gcp.gemini": "google", "gcp.vertex_ai": "google", "azure.ai.openai": "azure", "aws.bedrock": "aws",
    "mistral_ai": "mistral", "x_ai": "x-ai",
}
MIN_SHARE = 0.05
"""Models below this share of the period's cost are not worth a recommendation."""
_UTC = ZoneInfo("UTC")  # these groupings have no day dimension: any zone gives the same answer


@dataclass
class Alternative:
    model: str
    cost_nanos: int
    saving_nanos: int


@dataclass
class ModelAdvice:
    provider: str
    model: str
    calls: int
    ledger_cost_nanos: int
    list_cost_nanos: int | None
    """This model at today's list price on the same basis as the alternatives (for comparison)."""
    avg_input_tokens: float
    avg_output_tokens: float
    avg_cache_read_tokens: float
    alternatives: list[Alternative] = field(default_factory=list)
    basis: str = ""


@dataclass
class RepeatAdvice:
    hashed_calls: int
    repeated_calls: int
    distinct_repeated_prompts: int
    repeat_cost_nanos: int
    top: list[dict[str, Any]]
    basis: str


@dataclass
class CacheAdvice:
    provider: str
    model: str
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    share: float
    cache_read_cost_nanos: int
    basis: str


@dataclass
class Advice:
    models: list[ModelAdvice]
    repeats: RepeatAdvice | None
    """None when the ledger holds no prompt hashes (``ledger.prompt_hashes`` is off)."""
    cache: list[CacheAdvice]


def _price(model: str, provider_id: str, usage: Any) -> Decimal | None:
    from genai_prices import calc_price

    try:
        return Decimal(str(calc_price(usage, model, provider_id=provider_id).total_price))
    except Exception:
        return None


def _candidates(provider_id: str) -> list[str]:
    """Models of the provider with per-token input and output prices, not deprecated."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    provider = next((p for p in snapshot.providers if p.id == provider_id), None)
    if provider is None:
        return []
    out = []
    for model in provider.models:
        prices = model.prices
        if model.deprecated or not hasattr(prices, "input_mtok"):
            continue
        if getattr(prices, "input_mtok", None) and getattr(prices, "output_mtok", None):
            out.append(model.id)
    return out


def cheaper_models(conn: sqlite3.Connection, filters: Filters, *, alternatives: int = 3) -> list[ModelAdvice]:
    from genai_prices import Usage as PriceUsage
    from genai_prices import __version__ as prices_version

    rows = grouped(conn, filters, ("provider", "model"), _UTC, order_by_cost=True)
    total = sum(a.cost_nanos for _, a in rows)
    advice: list[ModelAdvice] = []
    for (provider, model), agg in rows:
        if not total or agg.cost_nanos < total * MIN_SHARE or not agg.calls:
            continue
        successes = agg.calls - agg.blocked
        if successes <= 0:
            continue
        avg = _average_call(agg, successes)
        usage = PriceUsage(input_tokens=round(avg[0]), output_tokens=round(avg[1]),
                           cache_read_tokens=round(avg[2]), cache_write_tokens=round(avg[3]))
        provider_id = GENAI_PRICES_PROVIDER.get(str(provider), str(provider))
        current = _price(str(model), provider_id, usage)
        item = ModelAdvice(
            str(provider), str(model), agg.calls, agg.cost_nanos,
            usd_to_nanos(current * successes) if current is not None else None,
            avg[0], avg[1], avg[2],
            basis=(f"{successes:,} calls that reached the provider; their average call "
                   f"({avg[0]:,.0f} input incl. {avg[2]:,.0f} cached, {avg[1]:,.0f} output tokens) priced at "
                   f"genai-prices {prices_version} list prices for {provider_id} models, times the number of "
                   "calls. Same token counts assumed; prices compared, not quality."),
        )
        if current is not None:
            options = []
            for candidate in _candidates(provider_id):
                if candidate == item.model:
                    continue
                price = _price(candidate, provider_id, usage)
                if price is not None and price < current:
                    cost = usd_to_nanos(price * successes)
                    # Saving against this model on the same basis (list price), not against the
                    # recorded cost, which may carry discounts, tiers or a different price date.
                    options.append(Alternative(candidate, cost, usd_to_nanos(current * successes) - cost))
            options.sort(key=lambda a: a.cost_nanos, reverse=True)  # closest to the current price first
            item.alternatives = options[:alternatives]
        advice.append(item)
    return advice


def _average_call(agg: Agg, calls: int) -> tuple[float, float, float, float]:
    return (agg.input_tokens / calls, agg.output_tokens / calls, agg.cache_read_tokens / calls,
            agg.cache_write_tokens / calls)


def repeated_prompts(conn: sqlite3.Connection, filters: Filters, *, top: int = 5) -> RepeatAdvice | None:
    where, params = filters.where()
    hashed = int(conn.execute(f"SELECT COUNT(*) FROM calls WHERE {where} AND prompt_hash IS NOT NULL",
                              params).fetchone()[0])
    if not hashed:
        return None
    ranked = (f"SELECT prompt_hash, model, cost_nanos, ROW_NUMBER() OVER (PARTITION BY prompt_hash ORDER BY ts_us, id)"
              f" AS n FROM calls WHERE {where} AND prompt_hash IS NOT NULL AND outcome = 'success'")
    repeats, hashes, cost = conn.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT prompt_hash), COALESCE(SUM(cost_nanos), 0) FROM ({ranked}) WHERE n > 1",
        params).fetchone()
    top_rows = conn.execute(
        f"SELECT prompt_hash, MIN(model), COUNT(*), SUM(cost_nanos) FROM ({ranked}) WHERE n > 1 "
        "GROUP BY prompt_hash ORDER BY 4 DESC LIMIT ?", [*params, top]).fetchall()
    return RepeatAdvice(
        hashed, int(repeats), int(hashes), int(cost),
        [{"prompt_hash": h[:12], "model": m, "repeats": int(c), "repeat_cost_nanos": int(s)}
         for h, m, c, s in top_rows],
        basis=(f"{hashed:,} calls carried a salted hash of their request messages; a repeat is a successful call "
               "whose messages were identical to an earlier one in the period. Its cost is what an application "
               "cache would have saved, if returning the earlier answer is acceptable."),
    )


def cache_use(conn: sqlite3.Connection, filters: Filters) -> list[CacheAdvice]:
    out = []
    for (provider, model), agg in grouped(conn, filters, ("provider", "model"), _UTC, order_by_cost=True):
        if not agg.input_tokens:
            continue
        out.append(CacheAdvice(
            str(provider), str(model), agg.input_tokens, agg.cache_read_tokens, agg.cache_write_tokens,
            agg.cache_read_tokens / agg.input_tokens, agg.cache_read_nanos,
            basis="cache reads as reported by the provider, as a share of all input tokens",
        ))
    return out


def advise(conn: sqlite3.Connection, filters: Filters) -> Advice:
    return Advice(cheaper_models(conn, filters), repeated_prompts(conn, filters), cache_use(conn, filters))

