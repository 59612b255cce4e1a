"""Spans made by other instrumentations are priced by costspan's processor, and a call seen by two
instrumentations is counted once.

The attribute sets are those each peer emits for one OpenAI chat call (1,200 input tokens of
which 1,024 cached, 300 output): the official GenAI semantic conventions (also with the deprecated
``gen_ai.system``), OpenLLMetry (``gen_ai.usage.prompt_tokens`` and ``llm.usage.*``), OpenLIT
(which puts its own cost on the span) and OpenInference (``llm.token_count.*``). Counted once: the
innermost span with a model is charged, every LLM span around it gets ``costspan.cost.counted_in``.
When OpenLLMetry's Groq instrumentation is installed, the last test runs it beside ours for real.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import groq
import pytest
import wrapt
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.groq import GroqInstrumentor
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import expected_cost, instrumenting, llm_spans

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_USAGE = CostUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024)
GROQ_MODEL = "llama-3.1-8b-instant"
MESSAGES: Any = [{"role": "user", "content": "Name one tram line in Lisbon."}]

PEERS: dict[str, tuple[str, dict[str, Any]]] = {
    "official semconv": (
        f"chat {OPENAI_MODEL}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": OPENAI_MODEL,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "server.address": "api.openai.com",
        },
    ),
    "official semconv, deprecated gen_ai.system": (
        f"chat {OPENAI_MODEL}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": OPENAI_MODEL,
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1024,
        },
    ),
    "OpenLLMetry": (
        "openai.chat",
        {
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": OPENAI_MODEL,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 300,
            "gen_ai.usage.cache_read_input_tokens": 1024,
            "llm.usage.total_tokens": 1500,
        },
    ),
    "OpenLLMetry, llm.usage names": (
        "openai.chat",
        {
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": OPENAI_MODEL,
            "llm.usage.prompt_tokens": 1200,
            "llm.usage.completion_tokens": 300,
            "llm.usage.cache_read_input_tokens": 1024,
        },
    ),
    "OpenLIT": (
        f"chat {OPENAI_MODEL}",
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": OPENAI_MODEL,
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read_input_tokens": 1024,
            "gen_ai.usage.cost": 0.0,  # OpenLIT's own figure (0 offline): ours replaces nothing, adds ours
        },
    ),
    "OpenInference": (
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": OPENAI_MODEL,
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.token_count.prompt": 1200,
            "llm.token_count.completion": 300,
            "llm.token_count.total": 1500,
            "llm.token_count.prompt_details.cache_read": 1024,
        },
    ),
}


@pytest.fixture
def harness(
    make_runtime: Callable[..., Harness], tracer_provider: TracerProvider, provider_server: ProviderServer
) -> Harness:
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=groq")
    harness.runtime.attach(tracer_provider)  # what costspan.configure() and the launcher hook do
    return harness


@pytest.fixture
def groq_instrumented() -> Iterator[Any]:
    yield from instrumenting(GroqInstrumentor())


def peer_span(name: str, attributes: dict[str, Any]) -> None:
    """One span as the peer makes it: a CLIENT span whose usage arrives before it ends, from a tracer
    named as LLM instrumentations name theirs."""
    span = trace.get_tracer("peer.instrumentation.openai").start_span(name, kind=SpanKind.CLIENT)
    span.set_attributes(attributes)
    span.end()


@pytest.mark.parametrize("peer", list(PEERS))
def test_peer_span_is_priced(harness: Harness, spans: InMemorySpanExporter, peer: str) -> None:
    name, attributes = PEERS[peer]

    peer_span(name, attributes)

    (span,) = spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[A.COST_STATUS] == "priced"
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "openai", OPENAI_MODEL, OPENAI_USAGE), rel=1e-12)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert harness.sample("costspan_requests_total", provider="openai", outcome="success") == 1
    assert harness.sample("costspan_tokens_total", provider="openai", type="cache_read") == 1024


def test_openllmetry_anthropic_input_gets_its_cache_traffic_back(harness: Harness, spans: InMemorySpanExporter) -> None:
    """OpenLLMetry reports Anthropic's own ``input_tokens``, which leave cache reads and writes out."""
    model = "claude-sonnet-4-6"

    peer_span(
        "anthropic.chat",
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.usage.cache_read_input_tokens": 30,
            "gen_ai.usage.cache_creation_input_tokens": 15,
        },
    )

    usage = CostUsage(input_tokens=145, output_tokens=20, cache_read_tokens=30, cache_write_tokens=15)
    attrs = dict(spans.get_finished_spans()[0].attributes or {})
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "anthropic", model, usage), rel=1e-12)


def test_framework_span_over_our_client_span_counts_once(
    harness: Harness, groq_instrumented: Any, groq_client: groq.Groq, provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    """A framework's LLM span (LangChain through OpenLLMetry) around the client call: the client span is
    charged, even though the framework names its model and usage only when its span ends."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=60, output_tokens=9)))

    with trace.get_tracer("langchain").start_as_current_span("ChatGroq.chat") as outer:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)
        outer.set_attributes(
            {
                "llm.request.type": "chat",
                "gen_ai.request.model": GROQ_MODEL,
                "gen_ai.usage.prompt_tokens": 60,
                "gen_ai.usage.completion_tokens": 9,
            }
        )

    ours, framework = llm_spans(spans) + [s for s in spans.get_finished_spans() if s.name == "ChatGroq.chat"]
    assert ours.name == f"chat {GROQ_MODEL}"
    assert (ours.attributes or {})[A.COST_STATUS] == "priced"
    assert (framework.attributes or {})[A.COUNTED_IN] == format(ours.context.span_id, "016x")
    assert A.COST_USD not in (framework.attributes or {})
    assert harness.sample("costspan_requests_total", outcome="success") == 1
    assert harness.sample("costspan_tokens_total", type="input") == 60


@pytest.mark.parametrize("peer_outside", [True, False])
def test_peer_on_the_same_method_makes_the_only_span(
    harness: Harness, groq_instrumented: Any, groq_client: groq.Groq, provider_server: ProviderServer,
    spans: InMemorySpanExporter, peer_outside: bool,
) -> None:
    """A peer wrapping the same ``create`` (instrumented after ours or before), whose span is not a parent or
    child of ours, as OpenLLMetry's is not: ours steps aside and the peer's span is priced, once."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=60, output_tokens=9)))

    def peer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        span = trace.get_tracer("peer").start_span(
            "groq.chat",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.system": "groq", "llm.request.type": "chat", "gen_ai.request.model": GROQ_MODEL},
        )
        result = wrapped(*args, **kwargs)
        span.set_attributes({"gen_ai.usage.prompt_tokens": 60, "gen_ai.usage.completion_tokens": 9})
        span.end()
        return result

    owner = groq.resources.chat.completions.Completions
    instrumentor = GroqInstrumentor()
    if not peer_outside:
        instrumentor.uninstrument()
    wrapt.wrap_function_wrapper(owner, "create", peer)
    if not peer_outside:
        instrumentor.instrument()
    try:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
        owner.create = owner.create.__wrapped__  # take the peer off
        instrumentor.instrument()

    (span,) = spans.get_finished_spans()  # the peer's, and none of ours
    assert span.name == "groq.chat"
    assert (span.attributes or {})[A.COST_STATUS] == "priced"
    assert harness.sample("costspan_requests_total", outcome="success") == 1
    assert harness.sample("costspan_tokens_total", type="input") == 60


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.instrumentation.groq") is None,
    reason="OpenLLMetry's opentelemetry-instrumentation-groq is not installed",
)
def test_with_openllmetry_installed_one_call_counts_once(
    harness: Harness, groq_instrumented: Any, groq_client: groq.Groq, provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    from opentelemetry.instrumentation.groq import GroqInstrumentor as OpenLLMetryGroq

    provider_server.enqueue(Scenario(usage=Usage(input_tokens=60, output_tokens=9)))
    peer = OpenLLMetryGroq()
    peer.instrument()
    try:
        groq_client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)
    finally:
        peer.uninstrument()


    assert len([s for s in spans.get_finished_spans() if (s.attributes or {}).get(A.COST_STATUS)]) == 1
    assert harness.sample("costspan_requests_total", outcome="success") == 1
    assert harness.sample("costspan_tokens_total", type="input") == 60


@pytest.mark.parametrize(("model", "status"), [(OPENAI_MODEL, "priced"), ("llama3.2", "free")])
def test_peer_span_to_a_loopback_endpoint_follows_the_local_rule(
    harness: Harness, spans: InMemorySpanExporter, model: str, status: str
) -> None:
    # A proxy on this machine forwards a vendor's model (billed); a local server's own model is free.
    peer_span(f"chat {model}", {
        A.OPERATION: "chat", A.PROVIDER: "openai", A.REQUEST_MODEL: model, A.SERVER_ADDRESS: "localhost",
        A.SERVER_PORT: 4000, A.INPUT_TOKENS: 1000, A.OUTPUT_TOKENS: 100,
    })

    attrs = dict(spans.get_finished_spans()[0].attributes or {})
    assert attrs[A.ENDPOINT_LOCAL] is True
    assert attrs[A.COST_STATUS] == status


def test_a_scope_that_turns_out_to_make_llm_spans_is_accounted_then_hooked(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    """A tracer whose name says nothing of LLMs, whose span says it is an LLM call only after it
    started: that first span is charged and counted when it ends (too late for attributes), and the
    scope's later spans are priced on the span like any other."""
    name, attributes = PEERS["official semconv"]
    tracer = trace.get_tracer("acme.internal.tracing")
    for _ in range(2):
        span = tracer.start_span(name, kind=SpanKind.CLIENT)
        span.set_attributes(attributes)
        span.end()
    first, second = spans.get_finished_spans()
    assert A.COST_STATUS not in (first.attributes or {})
    assert (second.attributes or {})[A.COST_STATUS] == "priced"
    assert harness.sample("costspan_requests_total", provider="openai", outcome="success") == 2


def test_plain_spans_of_a_watched_scope_stop_being_checked(harness: Harness, spans: InMemorySpanExporter) -> None:
    from costspan import wiring
    from costspan.processors.cost_span_processor import PLAIN, WATCH_SPANS

    tracer = trace.get_tracer("acme.http.client")
    for _ in range(WATCH_SPANS + 1):
        tracer.start_span("GET /health").end()
    assert wiring.processor()._scopes["acme.http.client"] == PLAIN
    assert harness.sample("costspan_requests_total") == 0


def test_two_calls_in_a_row_with_the_same_response_id_are_two_calls(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    """A server that repeats its response ids: calls one after the other are not one call seen twice."""
    name, attributes = PEERS["official semconv"]
    tracer = trace.get_tracer("peer.instrumentation.openai")
    with tracer.start_as_current_span("request handler"):
        for _ in range(2):
            span = tracer.start_span(name, kind=SpanKind.CLIENT)
            span.set_attributes({**attributes, A.RESPONSE_ID: "chatcmpl-123"})
            span.end()
    assert harness.sample("costspan_requests_total", provider="openai", outcome="success") == 2


def test_two_overlapping_spans_of_one_answer_count_once(harness: Harness, spans: InMemorySpanExporter) -> None:
    """Two instrumentations of one call, neither inside the other, report the same answer."""
    name, attributes = PEERS["official semconv"]
    tracer = trace.get_tracer("peer.instrumentation.openai")
    with tracer.start_as_current_span("request handler"):
        first = tracer.start_span(name, kind=SpanKind.CLIENT)
        second = tracer.start_span(name, kind=SpanKind.CLIENT)
        for span in (first, second):
            span.set_attributes({**attributes, A.RESPONSE_ID: "chatcmpl-abc"})
        first.end()
        second.end()
    assert harness.sample("costspan_requests_total", provider="openai", outcome="success") == 1
    assert (second.attributes or {})[A.COUNTED_IN] == format(first.get_span_context().span_id, "016x")
