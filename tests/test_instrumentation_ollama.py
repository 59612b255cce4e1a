"""The Ollama instrumentor, driven through the real ``ollama`` SDK against the local stand-in.

The stand-in listens on loopback, as a local Ollama does: its models are free. Cloud models
(``-cloud``) run on Ollama's servers even through the local one, so they are never judged free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import ollama
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costspan import attribute_names as A
from costspan.instrumentation.ollama import METHODS, OllamaInstrumentor
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import (
    assert_uninstrument_restores,
    attrs_of,
    instrumenting,
    llm_spans,
    only_llm_span,
    uninstrumented,
)

MODEL = "llama3.2"
MESSAGES: Any = [{"role": "user", "content": "Name one castle near Lisbon."}]
ANSWER = Scenario(usage=Usage(input_tokens=30, output_tokens=8), text="Pena Palace sits above Sintra.")


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(OllamaInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness]) -> Harness:
    return make_runtime()


def test_local_chat_is_free_with_its_counts(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    response = ollama_client.chat(MODEL, MESSAGES)  # model and messages by position, as the client allows

    assert type(response) is ollama.ChatResponse
    span = only_llm_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "ollama"
    assert attrs[A.ENDPOINT_LOCAL] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (30, 8)
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "free"
    assert attrs[A.COST_USD] == 0


def test_cloud_model_is_not_free(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    ollama_client.generate(model="gpt-oss:120b-cloud", prompt="Name one castle near Lisbon.")

    attrs = attrs_of(spans)
    assert attrs[A.OPERATION] == "text_completion"
    assert attrs[A.ENDPOINT_LOCAL] is False
    assert attrs[A.COST_STATUS] != "free"  # priced when the catalog knows it, else unpriced: never zero


def test_stream_is_passed_through_unchanged_and_ends_once(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    stream = ollama_client.chat(model=MODEL, messages=MESSAGES, stream=True)
    assert provider_server.request_count == 0  # lazy: the request leaves on the first read
    parts = [part.model_dump(exclude={"created_at"}) for part in stream]
    with uninstrumented():
        reference = [p.model_dump(exclude={"created_at"}) for p in ollama_client.chat(MODEL, MESSAGES, stream=True)]

    assert parts == reference
    stream.close()
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (30, 8)
    assert attrs[A.USAGE_SOURCE] == "reported"


def test_in_stream_error_propagates(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER.with_changes(error_after=2))

    with pytest.raises(ollama.ResponseError):
        list(ollama_client.generate(MODEL, "Name one castle near Lisbon.", stream=True))

    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == "ResponseError"
    assert span.status.status_code is StatusCode.ERROR


def test_http_error_propagates(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.set_next(status=404)

    with pytest.raises(ollama.ResponseError) as raised:
        ollama_client.chat(MODEL, MESSAGES)

    assert raised.value.status_code == 404
    assert attrs_of(spans)[A.ERROR_TYPE] == "ResponseError"


def test_embed_and_legacy_embeddings(
    harness: Harness, ollama_client: ollama.Client, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=5)))

    ollama_client.embed("nomic-embed-text", ["castle", "palace"])
    ollama_client.embeddings(model="nomic-embed-text", prompt="castle")

    embed, legacy = llm_spans(spans)
    assert embed.name == legacy.name == "embeddings nomic-embed-text"
    assert (embed.attributes or {})[A.INPUT_TOKENS] == 5
    assert (embed.attributes or {})[A.USAGE_SOURCE] == "reported"
    assert (legacy.attributes or {})[A.USAGE_SOURCE] == "estimated"  # the legacy endpoint reports no counts


def test_async_chat_stream_and_close(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=3)
    client = ollama.AsyncClient(host=provider_server.base_url)

    async def run() -> tuple[Any, list[Any]]:
        response = await client.chat(MODEL, MESSAGES)
        stream = await client.generate(MODEL, "Name one castle near Lisbon.", stream=True)
        parts = [part async for part in stream]
        left = await client.chat(MODEL, MESSAGES, stream=True)
        await anext(left)
        await left.aclose()
        return response, parts

    response, parts = asyncio.run(run())

    assert type(response) is ollama.ChatResponse
    assert parts[-1].done is True
    found = llm_spans(spans)
    assert [s.name for s in found] == [f"chat {MODEL}", f"text_completion {MODEL}", f"chat {MODEL}"]
    assert [(s.attributes or {})[A.USAGE_SOURCE] for s in found] == ["reported", "reported", "estimated"]


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
