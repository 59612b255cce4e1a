"""Keeps LLM spans recorded when the configured sampler would drop them.

A dropped span never reaches a processor, so with ``always_off`` (or a 1% ratio) calls would go
unpriced and budgets unenforced. The guard turns a DROP of an LLM span into RECORD_ONLY: the span
is recorded and seen by the CostSpanProcessor, but not sampled, so exporters still skip it.
Trace sampling and accounting stay independent (docs/architecture.md, rule 7).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from costspan.processors.codec import is_genai

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


def guard(provider: object) -> None:
    """Wrap an SDK TracerProvider's sampler in place, once. Tracers made afterwards use the guard."""
    sampler = getattr(provider, "sampler", None)
    if sampler is None or isinstance(sampler, AccountingSampler):
        return
    provider.sampler = AccountingSampler(sampler)  # type: ignore[attr-defined]
