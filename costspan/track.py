"""``costspan.track``: account for what no instrumentor sees, exactly like an instrumented call.

It hands the item's facts to the accounting service, exactly as an instrumented call does (price,
budgets, metrics, ledger), and makes a span that carries them and the result, as an instrumented
call's span does. ``source`` lands in ``costspan.facts.source`` to say what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from costspan import attribution, wiring
from costspan import runtime as runtime_module
from costspan.facts import MAX_TOKENS, CallFacts, Usage
from costspan.money import MAX_CALL_NANOS, nanos_to_usd, usd_to_nanos
from costspan.pricing import UNPRICED
from costspan.processors.codec import encode
from costspan.processors.cost_attributes import cost_attributes, threshold_events

TRACER_NAME = "costspan.track"


@dataclass(frozen=True)
class Tracked:
    cost_usd: Decimal | None
    """Exact, from the accounting itself (not read back off the span as a float)."""
    status: str | None
    pricing_key: str | None
    budget_status: str | None


def track(
    *,
    provider: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    images: int = 0,
    operation: str = "chat",
    source: str = "manual",
    cost_usd: Decimal | str | int | None = None,
    service_tier: str | None = None,
    project: str | None = None,
    user: str | None = None,
    feature: str | None = None,
) -> Tracked:
    """Record one priced item. Token counts follow semconv: input includes cached, output includes reasoning.

    Raises ``ValueError`` for what no call could carry, before anything is recorded."""
    for name, text in (("provider", provider), ("model", model), ("operation", operation), ("source", source)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"costspan.track: {name} must be a non-empty string, got {text!r}")
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens),
        ("cache_write_tokens", cache_write_tokens),
        ("reasoning_tokens", reasoning_tokens),
        ("images", images),
    ):
        if type(value) is not int or not 0 <= value <= MAX_TOKENS:
            raise ValueError(
                f"costspan.track: {name} must be an integer from 0 to {MAX_TOKENS:,} (one call), got {value!r}"
            )
    if cache_read_tokens + cache_write_tokens > input_tokens:
        raise ValueError("costspan.track: cache_read_tokens + cache_write_tokens cannot exceed input_tokens")
    if reasoning_tokens > output_tokens:
        raise ValueError("costspan.track: reasoning_tokens cannot exceed output_tokens")
    declared: int | None = None
    if cost_usd is not None:
        try:
            if isinstance(cost_usd, bool):
                raise TypeError("True is not an amount")
            declared = usd_to_nanos(cost_usd)  # validates before anything is recorded
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ValueError(
                f"costspan.track: cost_usd must be a number of dollars, got {cost_usd!r}"
            ) from exc
        if not 0 <= declared <= MAX_CALL_NANOS:
            raise ValueError(
                f"costspan.track: cost_usd must be from 0 to {nanos_to_usd(MAX_CALL_NANOS):.0f} dollars "
                f"(a refund is not a call), got {cost_usd!r}"
            )
    runtime = runtime_module.get()
    if runtime is None:
        return Tracked(None, None, None, None)
    who = attribution.current()
    facts = CallFacts(
        provider=provider,
        request_model=model,
        operation=operation,
        usage=Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            images=images,
        ),
        usage_source=source,
        service_tier=service_tier,
        started_at=datetime.now(timezone.utc),
        project=project or who.project,
        feature=feature or who.feature,
        user=user or who.user,
        declared_cost_nanos=declared,
    )
    tracer = wiring.tracer_provider(runtime.service_name).get_tracer(TRACER_NAME)
    values = encode(facts)
    span = tracer.start_span(f"{operation} {model}", kind=SpanKind.INTERNAL, attributes=values)
    try:
        ids = span.get_span_context()
        facts.trace_id, facts.span_id = format_trace_id(ids.trace_id), format_span_id(ids.span_id)
        accounted = runtime.accounting.account(facts)
        span.set_attributes(cost_attributes(accounted, values))
        for name, attributes in threshold_events(accounted):
            span.add_event(name, attributes)
    finally:
        span.end()
    quote, most_used = accounted.quote, accounted.charge.most_used
    return Tracked(
        cost_usd=nanos_to_usd(quote.total_nanos) if quote.status != UNPRICED else None,
        status=quote.status,
        pricing_key=quote.key,
        budget_status=most_used.status if most_used is not None else None,
    )
