"""``costspan advise``: savings the ledger can show, each with the evidence it rests on.

Three kinds, all computed from recorded facts and stated with their basis:
(a) cheaper models: the same calls (this model's observed average call, times the number of calls)
    priced at the prices of the same provider's other models. They are priced by the runtime's own
    pricer, so the user's price files and aliases count here as they count on every span; the
    candidates are the provider's models in the user's price files and genai-prices' current ones.
    It compares prices only, not quality, and assumes the same token counts (tokenizers and
    verbosity differ);
(b) repeated prompts: identical request messages (salted hashes, ``ledger.prompt_hashes``); every
    repeat after the first could have been served from an application cache;
(c) prompt-cache use: the share of input tokens the provider reported as read from its cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from costspan.facts import Usage
from costspan.ledger.query import Agg, Filters, grouped
from costspan.pricing import PRICED, Quote
from costspan.pricing.names import canonical_provider
from costspan.pricing.pricer import LayeredPricer
from costspan.pricing.rates import PriceCard

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
    """This model at today's price on the same basis as the alternatives (for comparison); None when unpriced."""
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


def _per_token(card: PriceCard | None) -> bool:
    """A model billed per input and output token: one a chat workload could move to."""
    return card is not None and card.base.input is not None and card.base.output is not None


def _candidates(pricer: LayeredPricer, provider: str) -> Iterator[str]:
    """Model names of ``provider`` worth pricing instead: exact names from the user's price files
    that name the provider, then genai-prices' models of it that are not deprecated."""
    for table in pricer.user:
        for entry in table.entries:
            if provider in entry.providers and _per_token(entry.card):
                yield from sorted(entry.models)
    if pricer.genai is not None:
        for found in pricer.genai.models(provider):
            if not found.info.deprecated and _per_token(found.card(None, None)):
                yield found.info.id


def _basis(successes: int, avg: tuple[float, float, float, float], current: Quote) -> str:
    priced = (f"priced by costspan's pricer (your price files and aliases first, as on every span); this model's "
              f"price is {current.key} from {current.source}" if current.status == PRICED
              else f"this model is {current.status} ({current.reason}), so nothing is compared")
    return (f"{successes:,} calls that reached the provider; their average call ({avg[0]:,.0f} input incl. "
            f"{avg[2]:,.0f} cached, {avg[1]:,.0f} output tokens) at today's prices of the provider's models, "
            f"times the number of calls; {priced}. Same token counts assumed; prices compared, not quality.")


def cheaper_models(
    conn: sqlite3.Connection, filters: Filters, pricer: LayeredPricer, *, alternatives: int = 3
) -> list[ModelAdvice]:
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
        usage = Usage(input_tokens=round(avg[0]), output_tokens=round(avg[1]),
                      cache_read_tokens=round(avg[2]), cache_write_tokens=round(avg[3]))
        name = canonical_provider(str(provider))
        current = pricer.quote(name, str(model), usage)
        priced = current.status == PRICED
        list_cost = current.total_nanos * successes
        item = ModelAdvice(str(provider), str(model), agg.calls, agg.cost_nanos, list_cost if priced else None,
                           avg[0], avg[1], avg[2], basis=_basis(successes, avg, current))
        if priced:
            options: dict[str, Alternative] = {}
            for candidate in dict.fromkeys(_candidates(pricer, name)):
                quote = pricer.quote(name, candidate, usage)
                if quote.status != PRICED or quote.key == current.key:
                    continue
                cost = quote.total_nanos * successes
                if cost < list_cost:
                    # Saving against this model on the same basis (today's price), not against the
                    # recorded cost, which may carry discounts, tiers or a different price date.
                    options[candidate] = Alternative(candidate, cost, list_cost - cost)
            ranked = sorted(options.values(), key=lambda a: a.cost_nanos, reverse=True)  # closest to the current first
            item.alternatives = ranked[:alternatives]
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


def advise(conn: sqlite3.Connection, filters: Filters, pricer: LayeredPricer) -> Advice:
    """``pricer``: the one the runtime builds from the same settings (:func:`costspan.pricing.pricer.build_pricer`)."""
    return Advice(cheaper_models(conn, filters, pricer), repeated_prompts(conn, filters), cache_use(conn, filters))

