"""The Google Gen AI instrumentor, driven through the real ``google-genai`` SDK against the local stand-in,
for both backends: the Gemini API (``gcp.gemini``) and Vertex AI (``gcp.vertex_ai``).

Gemini's ``promptTokenCount`` includes the cached content and its thoughts are reported apart from
the candidates: the span counts thoughts in the output and cached content as cache reads.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.google_genai import METHODS, GoogleGenAIInstrumentor
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

MODEL = "gemini-2.5-flash"
PROMPT = "Name one bridge in Lisbon."
THINKING = Scenario(
    usage=Usage(input_tokens=120, output_tokens=15, cached_tokens=100, reasoning_tokens=40),
    text="The 25 de Abril Bridge spans the Tagus.",
)
# In semconv terms: output = candidates + thoughts; reasoning and cache reads are subsets.
THINKING_USAGE = CostUsage(input_tokens=120, output_tokens=55, cache_read_tokens=100, reasoning_tokens=40)


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(GoogleGenAIInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=gcp.gemini")


def assert_thinking_usage(attrs: dict[str, Any]) -> None:
    assert attrs[A.INPUT_TOKENS] == 120
    assert attrs[A.OUTPUT_TOKENS] == 55
    assert attrs[A.REASONING_TOKENS] == 40
    assert attrs[A.CACHE_READ_TOKENS] == 100


def test_generate_content_span_counts_thoughts_as_output(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(THINKING)

    response = gemini_client.models.generate_content(model=MODEL, contents=PROMPT)

    assert type(response) is types.GenerateContentResponse
    assert response.text == "The 25 de Abril Bridge spans the Tagus."
    span = only_llm_span(spans)
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "gcp.gemini"
    assert attrs[A.OPERATION] == "generate_content"
    assert attrs[A.RESPONSE_MODEL] == MODEL
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("STOP",)
    assert_thinking_usage(attrs)
    assert attrs[A.COST_STATUS] == "priced"
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "gcp.gemini", MODEL, THINKING_USAGE), rel=1e-12)


def test_vertex_client_is_named_vertex_ai(
    make_runtime: Callable[..., Harness], vertex_client: genai.Client, provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=gcp.vertex_ai")
    provider_server.enqueue(THINKING)

    vertex_client.models.generate_content(
        model="publishers/google/models/" + MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(max_output_tokens=256),
    )

    assert "/projects/test-project/locations/us-central1/" in provider_server.last_request.path
    attrs = attrs_of(spans)
    assert attrs[A.PROVIDER] == "gcp.vertex_ai"
    assert attrs[A.REQUEST_MODEL] == MODEL
    assert attrs[A.REQUEST_MAX_TOKENS] == 256
    assert_thinking_usage(attrs)
    assert attrs[A.COST_STATUS] == "priced"


def test_stream_is_passed_through_unchanged_and_ends_once(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(THINKING, times=2)

    stream = gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
    chunks = [chunk.model_dump(exclude={"response_id", "sdk_http_response"}) for chunk in stream]
    with uninstrumented():
        reference = [
            c.model_dump(exclude={"response_id", "sdk_http_response"})
            for c in gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
        ]

    assert chunks == reference
    assert provider_server.requests[0].query["alt"] == "sse"
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert_thinking_usage(attrs)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_TTFC] > 0


def test_leaving_a_stream_early_ends_the_span_with_the_reported_prompt(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(THINKING)

    stream = gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
    next(stream)
    stream.close()
    gc.collect()

    attrs = attrs_of(spans)
    assert attrs[A.INPUT_TOKENS] == 120  # on every chunk
    assert attrs[A.USAGE_SOURCE] == "estimated"  # the output, from the text that arrived
    assert attrs[A.OUTPUT_TOKENS] >= 1


def test_rate_limit_propagates_as_the_sdks_error(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.set_next(status=429)

    with pytest.raises(errors.ClientError) as raised:
        gemini_client.models.generate_content(model=MODEL, contents=PROMPT)

    assert raised.value.code == 429
    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == "ClientError"
    assert span.status.status_code is StatusCode.ERROR


def test_embed_content(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=11)))

    result = gemini_client.models.embed_content(model="gemini-embedding-001", contents=["one", "two three"])

    assert type(result) is types.EmbedContentResponse
    assert len(result.embeddings or []) == 2
    span = only_llm_span(spans)
    assert span.name == "embeddings gemini-embedding-001"
    attrs = dict(span.attributes or {})
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (11, 0)
    assert attrs[A.COST_STATUS] == "priced"


def test_async_generate_stream_and_embed(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(THINKING, times=2)

    async def run() -> tuple[Any, list[Any], Any]:
        response = await gemini_client.aio.models.generate_content(model=MODEL, contents=PROMPT)
        stream = await gemini_client.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
        chunks = [chunk async for chunk in stream]
        embedded = await gemini_client.aio.models.embed_content(model="gemini-embedding-001", contents="one")
        return response, chunks, embedded

    response, chunks, embedded = asyncio.run(run())

    assert type(response) is types.GenerateContentResponse
    assert "".join(c.text or "" for c in chunks) == response.text
    assert type(embedded) is types.EmbedContentResponse
    found = llm_spans(spans)
    assert [s.name for s in found] == [f"generate_content {MODEL}"] * 2 + ["embeddings gemini-embedding-001"]
    for span in found[:2]:
        assert_thinking_usage(dict(span.attributes or {}))


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)


def test_a_stream_read_after_its_attribute_block_is_charged_to_who_made_the_call(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    """The SDK sends the request lazily, on the first iteration; the call was made inside the block."""
    import costspan

    with costspan.attribute(project="research", user="u-7", feature="search"):
        stream = gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
    chunks = list(stream)
    assert chunks
    attrs = attrs_of(spans)
    assert (attrs[A.PROJECT], attrs[A.USER_ID], attrs[A.FEATURE]) == ("research", "u-7", "search")
    assert harness.sample("costspan_cost_usd_total", project="research", feature="search") > 0


def test_an_async_stream_read_after_its_attribute_block_is_charged_to_who_made_the_call(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    import costspan

    async def run() -> int:
        with costspan.attribute(project="research", user="u-8"):
            stream = await gemini_client.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
        return len([chunk async for chunk in stream])

    assert asyncio.run(run()) > 0
    attrs = attrs_of(spans)
    assert (attrs[A.PROJECT], attrs[A.USER_ID]) == ("research", "u-8")


def test_attribution_in_force_while_iterating_does_not_override_the_calls(
    harness: Harness, gemini_client: genai.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    import costspan

    with costspan.attribute(project="research"):
        stream = gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
    with costspan.attribute(project="marketing"):
        list(stream)
    assert attrs_of(spans)[A.PROJECT] == "research"
