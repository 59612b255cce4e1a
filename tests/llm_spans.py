"""What the provider instrumentation tests share: enabling an instrumentor for a module, finding the
LLM spans a call made, pricing the expected usage, and reading a reference answer with our
instrumentation out of the way."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import attribute_names as A
from costspan.facts import Usage
from costspan.money import nanos_to_float
from tests.harness import Harness


def instrumenting(instrumentor: BaseInstrumentor) -> Iterator[BaseInstrumentor]:
    """Body of a module-scoped fixture: the instrumentor on for the module's tests, off after them."""
    instrumentor.instrument()
    yield instrumentor
    instrumentor.uninstrument()


def llm_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.attributes and A.PROVIDER in s.attributes]


def only_llm_span(spans: InMemorySpanExporter) -> ReadableSpan:
    """The one LLM span of the test (a second one would be a call counted twice)."""
    found = llm_spans(spans)
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def attrs_of(spans: InMemorySpanExporter) -> dict[str, Any]:
    return dict(only_llm_span(spans).attributes or {})


def expected_cost(harness: Harness, provider: str, model: str, usage: Usage) -> float:
    quote = harness.runtime.pricer.quote(provider, model, usage)
    assert quote.status == "priced", quote
    return nanos_to_float(quote.total_nanos)


@contextmanager
def uninstrumented() -> Iterator[None]:
    """Calls made inside go to the SDK untouched: the reference a stream proxy must reproduce."""
    with suppress_instrumentation():
        yield


def is_wrapped(owner: type, method: str) -> bool:
    return isinstance(owner.__dict__.get(method), wrapt.FunctionWrapper)


def _owner(module: str, owner: str) -> Any:
    """The patched class, or the module itself for a module-level function (``MethodSpec.owner`` empty)."""
    found = importlib.import_module(module)
    return getattr(found, owner) if owner else found


def assert_uninstrument_restores(instrumentor: BaseInstrumentor, methods: Any) -> None:
    """``uninstrument()`` puts every patched method back; instrumenting again wraps them again."""
    owners = [(_owner(m.module, m.owner), m.method) for m in methods]
    assert owners and all(is_wrapped(owner, name) for owner, name in owners)
    instrumentor.uninstrument()
    try:
        assert not any(is_wrapped(owner, name) for owner, name in owners)
    finally:
        instrumentor.instrument()
    assert all(is_wrapped(owner, name) for owner, name in owners)
