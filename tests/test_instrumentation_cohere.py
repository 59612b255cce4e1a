"""The Cohere instrumentor, driven through the real ``cohere`` SDK's ``ClientV2`` against the stand-in.

Cohere reports ``billed_units`` (billed) beside ``tokens`` (processed, chat template included): the
span carries and prices the billed units. Rerank is billed per search unit: priced per unit where a
catalog has that price (LiteLLM's map, in the bundled snapshot), otherwise unpriced, never free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import cohere
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.cohere import METHODS, CohereInstrumentor
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import (
    assert_uninstrument_restores,
    attrs_of,
    expected_cost,
    instrumenting,
    llm_spans,
    uninstrumented,
)

MODEL = "command-a-03-2025"
MESSAGES: Any = [{"role": "user", "content": "Name one river in Portugal."}]
ANSWER = Scenario(usage=Usage(input_tokens=60, output_tokens=9), text="The Douro flows through Porto.")


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(CohereInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=cohere")


@pytest.fixture
def client(provider_server: ProviderServer) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="test-key", base_url=provider_server.base_url)


def test_chat_prices_the_billed_units_not_the_processed_tokens(
    harness: Harness, client: cohere.ClientV2, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    answer = client.chat(model=MODEL, messages=MESSAGES, max_tokens=64)

    assert answer.usage is not None and answer.usage.tokens is not None
    assert answer.usage.tokens.input_tokens == 60 + 196  # processed, template included
    attrs = attrs_of(spans)
    assert attrs[A.PROVIDER] == "cohere"
    assert attrs[A.RESPONSE_ID] == answer.id
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    cost = expected_cost(harness, "cohere", MODEL, CostUsage(input_tokens=60, output_tokens=9))
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)


def test_chat_stream_is_lazy_intact_and_counted(
    harness: Harness, client: cohere.ClientV2, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    stream = client.chat_stream(model=MODEL, messages=MESSAGES)
    assert provider_server.request_count == 0 and llm_spans(spans) == []  # a generator: nothing sent yet
    events = [event.model_dump(exclude={"id"}) for event in stream]
    with uninstrumented():
        reference = [e.model_dump(exclude={"id"}) for e in client.chat_stream(model=MODEL, messages=MESSAGES)]

    assert events == reference
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "priced"


def test_async_chat_stream_embed_and_rerank(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)), times=2)
    client = cohere.AsyncClientV2(api_key="test-key", base_url=provider_server.base_url)

    async def run() -> list[Any]:
        await client.chat(model=MODEL, messages=MESSAGES)
        events = [event async for event in client.chat_stream(model=MODEL, messages=MESSAGES)]
        await client.embed(model="embed-v4.0", texts=["hello"], input_type="search_document",
                           embedding_types=["float"])
        await client.embed(model="embed-english-v3.0", texts=["hello"], input_type="search_document",
                           embedding_types=["float"])
        await client.rerank(model="rerank-v3.5", query="river", documents=["Douro", "Tagus"])
        await client.rerank(model="rerank-v3.5", query="river", documents=[f"river {i}" for i in range(150)])
        await client.rerank(model="rerank-v9-unknown", query="river", documents=["Douro"])
        return events

    events = asyncio.run(run())

    assert events[-1].type == "message-end"
    by_model: dict[str, list[Any]] = {}
    for span in llm_spans(spans):
        by_model.setdefault(str((span.attributes or {})[A.REQUEST_MODEL]), []).append(span.attributes or {})
    assert [(a[A.INPUT_TOKENS], a[A.OUTPUT_TOKENS]) for a in by_model[MODEL]] == [(60, 9), (60, 9)]
    (embed,) = by_model["embed-v4.0"]
    assert (embed[A.OPERATION], embed[A.INPUT_TOKENS], embed[A.COST_STATUS]) == ("embeddings", 8, "priced")
    (snapshot_embed,) = by_model["embed-english-v3.0"]  # genai-prices lacks it: the bundled snapshot prices it
    assert str(snapshot_embed[A.PRICING_SOURCE]).startswith("litellm-snapshot")
    # One search unit per query over up to 100 documents, at the per-unit price ($2 per 1,000 searches).
    reranks = [(r[A.OPERATION], r[A.SEARCH_UNITS], r[A.COST_STATUS], r[A.COST_USD]) for r in by_model["rerank-v3.5"]]
    assert reranks == [("rerank", 1, "priced", pytest.approx(0.002, rel=1e-12)),
                       ("rerank", 2, "priced", pytest.approx(0.004, rel=1e-12))]
    assert str(by_model["rerank-v3.5"][0][A.PRICING_SOURCE]).startswith("litellm-snapshot")
    (unknown,) = by_model["rerank-v9-unknown"]
    assert (unknown[A.SEARCH_UNITS], unknown[A.COST_STATUS]) == (1, "unpriced")  # never free
    assert harness.sample("costspan_unpriced_requests_total", provider="cohere") == 1


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
