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
from costspan.money import usd_to_nanos
from costspan.processors.span_facts import DECLARED_COST


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
    """Record one priced item. Token counts follow semconv: input includes cached, output includes reasoning."""
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens),
        ("cache_write_tokens", cache_write_tokens),
        ("reasoning_tokens", reasoning_tokens),
        ("images", images),
    ):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"costspan.track: {name} must be a non-negative integer, got {value!r}")
    if cache_read_tokens + cache_write_tokens > input_tokens:
        raise ValueError("costspan.track: cache_read_tokens + cache_write_tokens cannot exceed input_tokens")
    if reasoning_tokens > output_tokens:
        raise ValueError("costspan.track: reasoning_tokens cannot exceed output_tokens")
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
    if cost_usd is not None:
        try:
            declared = usd_to_nanos(cost_usd)  # validates before anything is recorded
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ValueError(f"costspan.track: cost_usd must be a number of dollars, got {cost_usd!r}") from exc
        if declared < 0:
            raise ValueError(f"costspan.track: cost_usd cannot be negative (a refund is not a call), got {cost_usd!r}")
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
