"""The Groq instrumentor, driven through the real ``groq`` SDK against the local stand-in.

Groq streams carry their usage in the last chunk's ``x_groq.usage`` (no ``stream_options``). The
stand-in's address is named ``groq`` in the settings, so calls are priced as Groq's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import groq
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.groq import METHODS, GroqInstrumentor
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

MODEL = "llama-3.1-8b-instant"
MESSAGES: Any = [{"role": "user", "content": "Name one river in Portugal."}]
ANSWER = Scenario(usage=Usage(input_tokens=60, output_tokens=9), text="The Douro flows through Porto.")


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(GroqInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=groq")


def test_chat_span_carries_usage_and_cost(
    harness: Harness, groq_client: groq.Groq, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    completion = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert type(completion) is groq.types.chat.ChatCompletion
    span = only_llm_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "groq"
    assert attrs[A.OPERATION] == "chat"
    assert attrs[A.RESPONSE_ID] == completion.id
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "priced"
    cost = expected_cost(harness, "groq", MODEL, CostUsage(input_tokens=60, output_tokens=9))
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)
    assert harness.sample("costspan_tokens_total", provider="groq", type="output") == 9


def test_stream_usage_comes_from_x_groq_and_chunks_pass_unchanged(
    harness: Harness, groq_client: groq.Groq, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    stream = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert llm_spans(spans) == []
    chunks = [chunk.model_dump(exclude={"id", "created", "x_groq"}) for chunk in stream]
    with uninstrumented():
        reference = [c.model_dump(exclude={"id", "created", "x_groq"}) for c in groq_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        )]

    assert chunks == reference
    assert "stream_options" not in provider_server.requests[0].body
    stream.close()
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("stop",)


def test_breaking_out_of_a_stream_ends_the_span_once(
    harness: Harness, groq_client: groq.Groq, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    stream = groq_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for _chunk in stream:
        break
    stream.close()
    stream.close()

    attrs = attrs_of(spans)
    assert attrs[A.USAGE_SOURCE] == "estimated"  # the usage chunk never came: counted locally
    assert attrs[A.COST_STATUS] == "priced"


def test_server_error_propagates_and_marks_the_span(
    harness: Harness, groq_client: groq.Groq, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.set_next(status=500)

    with pytest.raises(groq.InternalServerError):
        groq_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == "InternalServerError"
    assert span.status.status_code is StatusCode.ERROR


def test_with_raw_response_and_async(
    harness: Harness, groq_client: groq.Groq, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=3)
    async_client = groq.AsyncGroq(base_url=provider_server.base_url, api_key="k", max_retries=0)

    raw = groq_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    async def run() -> tuple[Any, Any]:
        raw_async = await async_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        return await raw_async.parse(), [chunk async for chunk in stream]

    parsed, chunks = asyncio.run(run())

    assert type(raw.parse()) is type(parsed) is groq.types.chat.ChatCompletion
    assert chunks[-1].x_groq.usage.completion_tokens == 9
    found = llm_spans(spans)
    assert len(found) == 3
    for span in found:
        attrs = span.attributes or {}
        assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
