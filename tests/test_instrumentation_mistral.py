"""The Mistral instrumentor, driven through the real ``mistralai`` SDK against the stand-in.

The stand-in answers in Mistral's shapes (usage always in the last stream chunk); its address is
named ``mistral_ai`` in the settings, so calls are priced as Mistral's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mistralai.client import Mistral, models
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.mistral import METHODS, MistralInstrumentor
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import (
    assert_uninstrument_restores,
    attrs_of,
    expected_cost,
    instrumenting,
    llm_spans,
    only_llm_span,
    uninstrumented,
)

MODEL = "mistral-small-latest"
MESSAGES: Any = [{"role": "user", "content": "Name one river in Portugal."}]
ANSWER = Scenario(usage=Usage(input_tokens=60, output_tokens=9), text="The Douro flows through Porto.")


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(MistralInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=mistral_ai")


@pytest.fixture
def client(provider_server: ProviderServer) -> Mistral:
    return Mistral(api_key="test-key", server_url=provider_server.base_url)


def test_chat_complete_span_carries_usage_and_cost(
    harness: Harness, client: Mistral, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    answer = client.chat.complete(model=MODEL, messages=MESSAGES, max_tokens=64)

    assert type(answer) is models.ChatCompletionResponse
    assert provider_server.last_request.route == "mistral.chat"
    span = only_llm_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "mistral_ai"
    assert attrs[A.REQUEST_MAX_TOKENS] == 64
    assert attrs[A.RESPONSE_ID] == answer.id
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    cost = expected_cost(harness, "mistral_ai", MODEL, CostUsage(input_tokens=60, output_tokens=9))
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)


def test_chat_stream_is_lazy_intact_and_counted(
    harness: Harness, client: Mistral, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    stream = client.chat.stream(model=MODEL, messages=MESSAGES)
    assert llm_spans(spans) == []
    events = [event.data.model_dump(exclude={"id", "created"}) for event in stream]
    with uninstrumented():
        reference = [e.data.model_dump(exclude={"id", "created"}) for e in client.chat.stream(
            model=MODEL, messages=MESSAGES)]

    assert events == reference
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("stop",)


def test_async_complete_and_stream(
    harness: Harness, client: Mistral, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    async def run() -> list[Any]:
        await client.chat.complete_async(model=MODEL, messages=MESSAGES)
        stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
        return [event async for event in stream]

    events = asyncio.run(run())

    assert events[-1].data.usage.completion_tokens == 9
    found = llm_spans(spans)
    assert len(found) == 2
    for span in found:
        attrs = span.attributes or {}
        assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
        assert attrs[A.COST_STATUS] == "priced"


def test_fim_and_embeddings(
    harness: Harness, client: Mistral, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=30, output_tokens=12)))
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)))

    client.fim.complete(model="codestral-latest", prompt="def add(a, b):", suffix="return total")
    vectors = client.embeddings.create(model="mistral-embed", inputs=["hello", "world"])

    assert len(vectors.data) == 2
    fim, embed = sorted(llm_spans(spans), key=lambda s: s.start_time or 0)
    assert fim.name == "text_completion codestral-latest"
    assert ((fim.attributes or {})[A.INPUT_TOKENS], (fim.attributes or {})[A.OUTPUT_TOKENS]) == (30, 12)
    assert (embed.attributes or {})[A.OPERATION] == "embeddings"
    assert (embed.attributes or {})[A.INPUT_TOKENS] == 8
    for span in (fim, embed):
        assert (span.attributes or {})[A.COST_STATUS] == "priced"


def test_the_sdks_own_spans_count_the_call_once(
    harness: Harness, client: Mistral, provider_server: ProviderServer, spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``MISTRAL_SDK_TELEMETRY=global`` the SDK makes its own GenAI span: ours steps aside."""
    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    traced = Mistral(api_key="test-key", server_url=provider_server.base_url)
    provider_server.enqueue(ANSWER)

    traced.chat.complete(model=MODEL, messages=MESSAGES)

    attrs = attrs_of(spans)
    assert A.ENDPOINT_LOCAL not in attrs  # the SDK's span, not one of ours
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.COST_STATUS] == "priced"
    assert harness.sample("costspan_requests_total", provider="mistral_ai") == 1


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, [m for m in METHODS if m.module.startswith("mistralai.client")])
