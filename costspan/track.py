"""``costspan.track``: account for what no instrumentor sees, exactly like an instrumented call.

It makes a span with the same usage attributes an instrumentor would and ends it, so the
processor prices it, charges the budgets, counts it in the metrics and writes the ledger row
through the one accounting path. ``source`` lands in ``costspan.usage.source`` to say what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry.trace import SpanKind

from costspan import attributes as A
from costspan import attribution
from costspan import runtime as runtime_module
from costspan.money import MAX_CALL_NANOS, nanos_to_usd, usd_to_nanos
from costspan.processors.span_facts import DECLARED_COST
from costspan.usage import MAX_TOKENS


@dataclass(frozen=True)
class Tracked:
    cost_usd: float | None
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
    attrs: dict[str, Any] = {
        A.OPERATION: operation,
        A.PROVIDER: provider,
        A.REQUEST_MODEL: model,
        A.INPUT_TOKENS: input_tokens,
        A.OUTPUT_TOKENS: output_tokens,
        A.USAGE_SOURCE: source,
    }
    for key, value in (
        (A.CACHE_READ_TOKENS, cache_read_tokens),
        (A.CACHE_CREATION_TOKENS, cache_write_tokens),
        (A.REASONING_TOKENS, reasoning_tokens),
        (A.IMAGE_COUNT, images),
    ):
        if value:
            attrs[key] = value
    if service_tier:
        attrs[A.OPENAI_REQUEST_SERVICE_TIER] = service_tier
    if declared is not None:
        attrs[DECLARED_COST] = str(cost_usd)
    who = attribution.current()
    for key, given, inherited in (
        (A.PROJECT, project, who.project),
        (A.USER_ID, user, who.user),
        (A.FEATURE, feature, who.feature),
    ):
        if given or inherited:
            attrs[key] = given or inherited
    tracer = runtime.tracer_provider().get_tracer("costspan.track")
    span = tracer.start_span(f"{operation} {model}", kind=SpanKind.INTERNAL, attributes=attrs)
    span.end()
    written = getattr(span, "attributes", None) or {}
    return Tracked(
        cost_usd=written.get(A.COST_USD),
        status=written.get(A.COST_STATUS),
        pricing_key=written.get(A.PRICING_KEY),
        budget_status=written.get(A.BUDGET_STATUS),
    )
