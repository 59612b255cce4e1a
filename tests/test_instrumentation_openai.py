"""The OpenAI instrumentor, driven through the real ``openai`` SDK against the local stand-in.

Every test makes real HTTP requests on loopback; the stand-in answers in OpenAI's wire format,
streams included. The stand-in's address is named as ``openai`` in the settings, so calls are
priced as OpenAI's would be (otherwise a loopback server is a free local model).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import assert_uninstrument_restores, expected_cost, only_llm_span

MESSAGES: Any = [{"role": "user", "content": "Say hello to the people of Lisbon in one short line."}]


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer, openai_instrumented: Any) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")


@pytest.fixture
def async_client(provider_server: ProviderServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=provider_server.base_url + "/v1", api_key="test-key", max_retries=0)


def wait_for_spans(spans: InMemorySpanExporter, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(spans.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def without_ids(chunk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in chunk.items() if k not in ("id", "created")}


def test_chat_span_carries_usage_and_cost(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=1200, output_tokens=300, cached_tokens=1024)))

    result = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert type(result) is openai.types.chat.ChatCompletion
    assert result.usage is not None and result.usage.prompt_tokens == 1200
    span = only_llm_span(spans)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes or {}
    assert attrs[A.PROVIDER] == "openai"
    assert attrs[A.OPERATION] == "chat"
    assert attrs[A.INPUT_TOKENS] == 1200
    assert attrs[A.OUTPUT_TOKENS] == 300
    assert attrs[A.CACHE_READ_TOKENS] == 1024
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "priced"
    cached = CostUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024)
    cost = expected_cost(harness, "openai", str(attrs[A.RESPONSE_MODEL]), cached)
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)
    # Cached input is cheaper: the cost must be below the same call with no cache hit.
    uncached = expected_cost(harness, "openai", "gpt-4o-mini", CostUsage(input_tokens=1200, output_tokens=300))
    assert cost < uncached
    assert harness.sample("costspan_cost_usd_total", provider="openai") == pytest.approx(cost, rel=1e-9)
    assert harness.sample("costspan_requests_total", provider="openai", outcome="success") == 1
    assert harness.sample("costspan_tokens_total", provider="openai", type="input") == 1200


def test_reasoning_tokens_are_part_of_output_not_added(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=100, output_tokens=900, reasoning_tokens=700)))

    openai_client.chat.completions.create(model="o3-mini", messages=MESSAGES)

    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.OUTPUT_TOKENS] == 900
    assert attrs[A.REASONING_TOKENS] == 700
    reasoning = CostUsage(input_tokens=100, output_tokens=900, reasoning_tokens=700)
    cost = expected_cost(harness, "openai", "o3-mini", reasoning)
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)
    plain = CostUsage(input_tokens=100, output_tokens=900)
    assert cost == pytest.approx(expected_cost(harness, "openai", "o3-mini", plain))


def test_stream_is_passed_through_unchanged_and_ends_once(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    scenario = Scenario(usage=Usage(input_tokens=40, output_tokens=12), text="Olá, Lisboa! Bom dia a todos.")
    provider_server.enqueue(scenario, times=2)
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}

    stream = openai_client.chat.completions.create(**body)
    assert spans.get_finished_spans() == ()  # lazy: nothing has ended before the stream is read
    chunks = [without_ids(chunk.to_dict()) for chunk in stream]
    # The same answer read off the wire with no SDK and no instrumentation.
    wire = httpx.post(f"{provider_server.base_url}/v1/chat/completions", json=body, timeout=10).text
    reference = [
        without_ids(json.loads(line[len("data: ") :]))
        for line in wire.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]

    assert chunks == reference
    stream.close()  # closing again after exhaustion must not end the span a second time
    span = only_llm_span(spans)
    attrs = span.attributes or {}
    assert attrs[A.REQUEST_STREAM] is True
    assert attrs[A.INPUT_TOKENS] == 40 and attrs[A.OUTPUT_TOKENS] == 12
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert 0 < float(attrs[A.RESPONSE_TTFC]) * 1e9 <= (span.end_time or 0) - (span.start_time or 0)
    assert harness.sample("costspan_requests_total", outcome="success") == 1


def test_stream_without_usage_is_estimated_and_request_untouched(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(text="Hello Lisbon, have a lovely day by the river."))

    text = "".join(
        c.choices[0].delta.content or ""
        for c in openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        if c.choices
    )

    assert text == "Hello Lisbon, have a lovely day by the river."
    assert "stream_options" not in provider_server.requests[-1].body
    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.USAGE_SOURCE] == "estimated"
    assert 5 <= int(attrs[A.INPUT_TOKENS]) <= 40
    assert 5 <= int(attrs[A.OUTPUT_TOKENS]) <= 20
    assert attrs[A.COST_STATUS] == "priced"
    assert float(attrs[A.COST_USD]) > 0


def test_abandoned_stream_ends_its_span_with_what_was_seen(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(text="one two three four five six seven eight nine ten"))

    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices
    del stream
    gc.collect()
    wait_for_spans(spans, 1)  # ended on a thread of its own (see _streams._finish_abandoned)

    span = only_llm_span(spans)
    assert (span.attributes or {})[A.USAGE_SOURCE] == "estimated"
    assert harness.sample("costspan_requests_total", provider="openai") == 1


def test_dropped_stream_raises_the_sdks_error_and_records_it(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(cut_after=2, text="a b c d e f g h"))

    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(Exception) as raised:
        for _ in stream:
            pass

    assert "costspan" not in type(raised.value).__module__
    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.ERROR_TYPE] == type(raised.value).__name__
    assert harness.sample("costspan_requests_total", outcome="error") == 1


def test_http_error_propagates_unchanged(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(status=429, retry_after=3))

    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert raised.value.response.headers["retry-after"] == "3"
    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == "RateLimitError"
    assert harness.sample("costspan_requests_total", outcome="error", error_type="RateLimitError") == 1
    assert harness.sample("costspan_cost_usd_total") == 0


def test_async_chat_and_stream(
    harness: Harness, async_client: openai.AsyncOpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=10, output_tokens=5)))
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=20, output_tokens=7)))

    async def run() -> list[Any]:
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())

    assert chunks and chunks[-1].usage is not None
    llm_spans = [s.attributes or {} for s in spans.get_finished_spans()]
    found = sorted(attrs[A.INPUT_TOKENS] for attrs in llm_spans if A.INPUT_TOKENS in attrs)
    assert found == [10, 20]
    assert harness.sample("costspan_tokens_total", type="output") == 12


def test_embeddings_completions_responses_and_images(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)))
    openai_client.embeddings.create(model="text-embedding-3-small", input="the river Tagus")
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=9, output_tokens=4)))
    openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hello")
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=30, output_tokens=6, cached_tokens=0)))
    openai_client.responses.create(model="gpt-4o-mini", input="Hello")
    openai_client.images.generate(model="dall-e-3", prompt="a tram in Lisbon", n=1, size="1024x1024")

    by_name = {s.name: s.attributes or {} for s in spans.get_finished_spans()}
    assert by_name["embeddings text-embedding-3-small"][A.INPUT_TOKENS] == 8
    assert by_name["text_completion gpt-3.5-turbo-instruct"][A.OUTPUT_TOKENS] == 4
    assert by_name["chat gpt-4o-mini"][A.INPUT_TOKENS] == 30
    images = by_name["generate_content dall-e-3"]
    assert images[A.IMAGE_COUNT] == 1
    assert {name: attrs[A.COST_STATUS] for name, attrs in by_name.items()} == {
        "embeddings text-embedding-3-small": "priced",
        "text_completion gpt-3.5-turbo-instruct": "priced",
        "chat gpt-4o-mini": "priced",
        "generate_content dall-e-3": "priced",
    }
    assert harness.sample("costspan_requests_total", provider="openai") == 4


def test_with_raw_response_is_counted_and_still_parses(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=15, output_tokens=3)))

    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)

    assert raw.headers.get("content-type", "").startswith("application/json")
    assert raw.parse().usage is not None
    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.INPUT_TOKENS] == 15 and attrs[A.OUTPUT_TOKENS] == 3


def test_unknown_model_is_unpriced_never_free(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=10, output_tokens=10)))

    openai_client.chat.completions.create(model="no-such-model-xyz", messages=MESSAGES)

    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.COST_STATUS] == "unpriced"
    # An unknown price is no price: no cost attribute at all (a 0 would read as free), no price key.
    cost_keys = (A.COST_USD, A.COST_INPUT_USD, A.COST_OUTPUT_USD, A.COST_CACHE_READ_USD, A.COST_CACHE_WRITE_USD)
    assert [k for k in (*cost_keys, A.PRICING_KEY) if k in attrs] == []
    assert harness.sample("costspan_unpriced_requests_total", model="no-such-model-xyz") == 1


def test_loopback_model_server_is_free(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    harness = make_runtime()  # the stand-in's address is not named: a local OpenAI-compatible server
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=10, output_tokens=10)))

    openai_client.chat.completions.create(model="llama3.2", messages=MESSAGES)

    attrs = only_llm_span(spans).attributes or {}
    assert attrs[A.ENDPOINT_LOCAL] is True
    assert attrs[A.COST_STATUS] == "free"
    assert harness.sample("costspan_unpriced_requests_total") == 0


def test_a_fault_of_ours_never_reaches_the_application(
    harness: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    class BrokenPricer:
        def quote(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug in costspan")

    harness.runtime.accounting.pricer = BrokenPricer()
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=10, output_tokens=10)))

    result = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert result.choices[0].message.content
    assert len(spans.get_finished_spans()) >= 1


def test_uninstrument_restores_the_sdk(openai_instrumented: Any) -> None:
    from costspan.instrumentation.openai import METHODS

    assert_uninstrument_restores(openai_instrumented, METHODS)


def test_content_is_captured_only_when_turned_on(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    endpoint = f"{provider_server.base_url}/v1=openai"
    provider_server.enqueue(Scenario(text="Olá, Lisboa!"), times=2)

    make_runtime(COSTSPAN_ENDPOINTS=endpoint)
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    default = only_llm_span(spans).attributes or {}
    assert A.INPUT_MESSAGES not in default and A.OUTPUT_MESSAGES not in default
    assert not any("Lisbon" in str(value) or "Lisboa" in str(value) for value in default.values())

    spans.clear()
    make_runtime(COSTSPAN_ENDPOINTS=endpoint, COSTSPAN_CAPTURE_CONTENT="true")
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    captured = only_llm_span(spans).attributes or {}
    assert json.loads(str(captured[A.INPUT_MESSAGES])) == MESSAGES
    assert json.loads(str(captured[A.OUTPUT_MESSAGES]))[0]["parts"][0]["content"] == "Olá, Lisboa!"


@pytest.mark.parametrize(("asked", "answered"), [("auto", "default"), ("flex", "flex"), (None, "default")])
def test_span_carries_the_tier_the_answer_names(
    harness: Harness,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    asked: str | None,
    answered: str,
) -> None:
    """The span starts with the tier asked for and ends with the one that served the call, whether the
    answer changes it (``auto``), confirms it, or names one the request did not."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=100, output_tokens=10)))
    extra: dict[str, Any] = {} if asked is None else {"service_tier": asked}

    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **extra)

    attrs = dict(only_llm_span(spans).attributes or {})
    assert attrs[A.OPENAI_SERVICE_TIER] == answered
    assert attrs.get(A.OPENAI_REQUEST_SERVICE_TIER) == asked
