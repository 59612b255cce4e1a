"""The ``costspan.*`` attributes and events an accounted call puts on its span.

One function for the in-process processor (an SDK span still open) and the gateway (an OTLP span
on the wire), so a span priced in either place carries exactly the same attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costspan import attribute_names as A
from costspan.accounted import Accounted
from costspan.money import nanos_to_float


def cost_attributes(accounted: Accounted, existing: Mapping[str, Any]) -> dict[str, Any]:
    """What to set on a span that already carries ``existing`` (its own values are never overwritten
    where they state a fact: project, endpoint locality, the cache-write count)."""
    quote, charge = accounted.quote, accounted.charge
    values: dict[str, Any] = {
        A.COST_STATUS: quote.status,
        A.USAGE_SOURCE: accounted.facts.usage_source,
    }
    if accounted.facts.project and A.PROJECT not in existing:
        values[A.PROJECT] = accounted.facts.project
    if accounted.facts.local and A.ENDPOINT_LOCAL not in existing:
        values[A.ENDPOINT_LOCAL] = True  # another instrumentation's span of a call to this machine
    if A.CACHE_CREATION_TOKENS not in existing and (written := existing.get(A.CACHE_WRITE_TOKENS)) is not None:
        # The anthropic SDK's own span says ``cache_write``; every priced span carries the semconv name.
        values[A.CACHE_CREATION_TOKENS] = written
    if quote.status != "unpriced":
        values.update(
            {
                A.COST_USD: nanos_to_float(quote.total_nanos),
                A.COST_INPUT_USD: nanos_to_float(quote.input_nanos),
                A.COST_OUTPUT_USD: nanos_to_float(quote.output_nanos),
                A.COST_CACHE_READ_USD: nanos_to_float(quote.cache_read_nanos),
                A.COST_CACHE_WRITE_USD: nanos_to_float(quote.cache_write_nanos),
            }
        )
    if quote.key:
        values[A.PRICING_KEY] = quote.key
    if quote.source:
        values[A.PRICING_SOURCE] = quote.source
    if charge.most_used is not None:
        budget = charge.most_used
        values[A.BUDGET_NAME] = budget.name
        values[A.BUDGET_UTILIZATION] = budget.utilization
        values[A.BUDGET_REMAINING_USD] = nanos_to_float(budget.remaining_nanos)
        values[A.BUDGET_STATUS] = budget.status
    return values


def threshold_events(accounted: Accounted) -> list[tuple[str, dict[str, Any]]]:
    """(name, attributes) of the span events for the budget thresholds this charge crossed."""
    return [
        (A.BUDGET_THRESHOLD_EVENT, {A.BUDGET_NAME: crossing.budget, A.BUDGET_THRESHOLD: crossing.threshold})
        for crossing in accounted.charge.crossings
    ]
