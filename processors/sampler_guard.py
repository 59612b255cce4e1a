"""Keeps LLM spans recorded when the configured sampler would drop them.

A dropped span never reaches a processor, so with ``always_off`` (or a 1% ratio) calls would go
unpriced and budgets unenforced. The guard turns a DROP of an LLM span into RECORD_ONLY: the span
is recorded and seen by the CostSpanProcessor, but not sampled, so exporters still skip it.
Trace sampling and accounting stay independent (docs/architecture.md, rule 7).

Only tracers of LLM instrumentation scopes get the guard (each tracer keeps the sampler it was
made with): the application's other spans are sampled exactly as before, at no extra cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from costspan.processors.codec import is_genai
from costspan.processors.scopes import is_llm_scope

_GENAI_NAME_PREFIXES = ("anthropic.messages", "openai.", "chat ", "text_completion ", "embeddings ")


def looks_like_llm_call(name: str, attributes: Attributes) -> bool:
    return is_genai(attributes) or name.startswith(_GENAI_NAME_PREFIXES)


class AccountingSampler(Sampler):
    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP and looks_like_llm_call(name, attributes):
            # The SDK builds the span's attributes from the result: keep the caller's.
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"CostspanAccounting{{{self.delegate.get_description()}}}"


def guard(provider: TracerProvider) -> None:
    """Make the tracers the provider gives LLM instrumentation scopes from now on use the guard, once."""
    if getattr(provider.get_tracer, "_costspan_guard", False):
        return
    original = provider.get_tracer

    def get_tracer(instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        tracer = original(instrumenting_module_name, *args, **kwargs)
        guarded = isinstance(tracer, Tracer) and isinstance(tracer.sampler, AccountingSampler)
        if isinstance(tracer, Tracer) and not guarded and is_llm_scope(instrumenting_module_name):
            tracer.sampler = AccountingSampler(tracer.sampler)
        return tracer

    setattr(get_tracer, "_costspan_guard", True)  # noqa: B010  # recognised if attached again
    provider.get_tracer = get_tracer  # type: ignore[method-assign]  # per provider: the class stays untouched
