"""The Anthropic instrumentor, driven through the real ``anthropic`` SDK against the local stand-in.

Two modes, both tested: the SDK's own tracing on (its default: the SDK makes the span, ours
steps aside, the processor prices the SDK's span) and off (``open_telemetry=False``, as
``ANTHROPIC_OPEN_TELEMETRY=false`` does: our instrumentor makes the span). The stand-in's address
is named ``anthropic`` in the settings, so calls are priced as Anthropic's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import costspan
from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.anthropic import METHODS, AnthropicInstrumentor
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

MODEL = "claude-sonnet-4-6"
MESSAGES: Any = [{"role": "user", "content": "Say hello to the people of Porto in one short line."}]
CACHED = Scenario(
    usage=Usage(input_tokens=100, output_tokens=20, cached_tokens=30, cache_creation_5m=10, cache_creation_1h=5),
    text="Olá, Porto! Bom dia.",
)
# What CACHED means in semconv terms: input counts cache reads and both cache writes.
CACHED_USAGE = CostUsage(
    input_tokens=145, output_tokens=20, cache_read_tokens=30, cache_write_tokens=15, cache_write_1h_tokens=5
)


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(AnthropicInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=anthropic")


@pytest.fixture
def client(provider_server: ProviderServer) -> anthropic.Anthropic:
    """The SDK's tracing off: our instrumentor makes the span."""
    return anthropic.Anthropic(base_url=provider_server.base_url, api_key="k", max_retries=0, open_telemetry=False)


@pytest.fixture
def async_client(provider_server: ProviderServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=provider_server.base_url, api_key="k", max_retries=0, open_telemetry=False
    )


def assert_cached_usage(attrs: dict[str, Any]) -> None:
    assert attrs[A.INPUT_TOKENS] == 145
    assert attrs[A.OUTPUT_TOKENS] == 20
    assert attrs[A.CACHE_READ_TOKENS] == 30
    assert attrs[A.CACHE_CREATION_TOKENS] == 15
    assert attrs[A.CACHE_WRITE_1H_TOKENS] == 5


def test_create_span_with_cache_reads_and_writes_split(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED)

    message = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert type(message) is anthropic.types.Message
    assert message.usage.input_tokens == 100  # the SDK's object, untouched
    span = only_llm_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "anthropic"
    assert attrs[A.OPERATION] == "chat"
    assert attrs[A.REQUEST_MODEL] == MODEL
    assert attrs[A.RESPONSE_MODEL] == MODEL
    assert attrs[A.RESPONSE_ID] == message.id
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[A.REQUEST_MAX_TOKENS] == 64
    assert attrs[A.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[A.ENDPOINT_LOCAL] is False
    assert_cached_usage(attrs)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "priced"
    cost = expected_cost(harness, "anthropic", MODEL, CACHED_USAGE)
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)
    # The 1-hour writes are dearer than 5-minute ones: the split must reach the price.
    all_5m = CostUsage(input_tokens=145, output_tokens=20, cache_read_tokens=30, cache_write_tokens=15)
    assert cost > expected_cost(harness, "anthropic", MODEL, all_5m)


def test_sdk_span_is_priced_and_ours_steps_aside(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    traced = anthropic.Anthropic(base_url=provider_server.base_url, api_key="k", max_retries=0)
    assert traced.open_telemetry["traces"]["enabled"]
    provider_server.enqueue(CACHED, times=2)

    with costspan.attribute(project="atlas", feature="greeting"):
        traced.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        with traced.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
            stream.until_done()

    found = llm_spans(spans)
    assert [s.name for s in found] == ["anthropic.messages.create"] * 2  # the SDK's spans, and none of ours
    cost = expected_cost(harness, "anthropic", MODEL, CACHED_USAGE)
    for span in found:
        attrs = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert attrs[A.INPUT_TOKENS] == 145  # the SDK normalised it already
        # The SDK says cache_write; the README promises the semconv name too (theirs is kept).
        assert attrs[A.CACHE_WRITE_TOKENS] == attrs[A.CACHE_CREATION_TOKENS] == 15
        assert attrs[A.COST_STATUS] == "priced"
        assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)
        assert attrs[A.PROJECT] == "atlas"
        assert attrs[A.FEATURE] == "greeting"
    assert harness.sample("costspan_requests_total", provider="anthropic", outcome="success") == 2


def test_stream_is_passed_through_unchanged_and_ends_once(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED, times=2)

    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    assert llm_spans(spans) == []  # lazy: nothing read, nothing ended
    events = [event.model_dump(exclude={"message": {"id"}}) for event in stream]
    with uninstrumented():
        reference = [e.model_dump(exclude={"message": {"id"}}) for e in client.messages.create(
            model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
        )]

    assert events == reference
    stream.close()  # after exhaustion: must not end the span again
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert_cached_usage(attrs)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_TTFC] > 0
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "anthropic", MODEL, CACHED_USAGE), rel=1e-12)


def test_stream_helper_keeps_its_interface(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED)

    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert type(stream) is MessageStream  # the SDK's own helper
        assert llm_spans(spans) == []
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        stream.until_done()
        assert stream.request_id is not None
        assert stream.current_message_snapshot is final

    assert text == "Olá, Porto! Bom dia." == stream.get_final_text()
    assert final.usage.output_tokens == 20
    attrs = attrs_of(spans)
    assert_cached_usage(attrs)
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("end_turn",)


def test_leaving_a_stream_early_ends_the_span_with_the_reported_input(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED)

    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "text":
                break

    span = only_llm_span(spans)
    attrs = dict(span.attributes or {})
    assert attrs[A.INPUT_TOKENS] == 145  # from message_start: reported, exact
    assert 1 <= attrs[A.OUTPUT_TOKENS] <= 5  # counted from the text that arrived
    assert attrs[A.USAGE_SOURCE] == "estimated"
    assert span.status.status_code is not StatusCode.ERROR


def test_stream_cut_mid_way_raises_the_sdks_error(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED.with_changes(cut_after=5))

    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    with pytest.raises(httpx2.RemoteProtocolError) as raised:  # what anthropic 2.x lets through for a cut body
        list(stream)

    stream.close()
    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == type(raised.value).__name__
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("sdk_traces", [False, True])
def test_rate_limit_propagates_as_the_sdks_error(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter, sdk_traces: bool
) -> None:
    options: Any = None if sdk_traces else False
    client = anthropic.Anthropic(base_url=provider_server.base_url, api_key="k", max_retries=0, open_telemetry=options)
    provider_server.set_next(status=429, retry_after=3)

    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert raised.value.response.headers["retry-after"] == "3"
    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == ("rate_limit_error" if sdk_traces else "RateLimitError")
    assert harness.sample("costspan_requests_total", provider="anthropic", outcome="error") == 1


def test_with_raw_response_returns_the_raw_wrapper(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED)

    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert raw.headers["request-id"]
    assert type(raw.parse()) is anthropic.types.Message
    assert_cached_usage(attrs_of(spans))


def test_async_create_stream_and_helper(
    harness: Harness, async_client: anthropic.AsyncAnthropic, provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    provider_server.enqueue(CACHED, times=3)

    async def run() -> tuple[Any, list[Any], Any]:
        message = await async_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        stream = await async_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        events = [event async for event in stream]
        async with async_client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
            assert type(helper) is AsyncMessageStream
            final = await helper.get_final_message()
        return message, events, final

    message, events, final = asyncio.run(run())

    assert type(message) is anthropic.types.Message
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert final.content[0].text == "Olá, Porto! Bom dia."
    found = llm_spans(spans)
    assert len(found) == 3
    for span in found:
        assert_cached_usage(dict(span.attributes or {}))
    assert [(s.attributes or {}).get(A.REQUEST_STREAM, False) for s in found] == [False, True, True]


def test_beta_messages_create_and_stream(
    harness: Harness, client: anthropic.Anthropic, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(CACHED, times=2)

    message = client.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        final = stream.get_final_message()

    assert type(message) is anthropic.types.beta.BetaMessage
    assert final.usage.output_tokens == 20
    found = llm_spans(spans)
    assert len(found) == 2
    for span in found:
        assert_cached_usage(dict(span.attributes or {}))


QUOTA = """
quotas:
  - name: anthropic-daily
    match: {provider: anthropic}
    requests_per_day: 2
    enforce: true
"""


@pytest.mark.parametrize("sdk_traces", [False, True])
def test_quota_refuses_before_the_request_leaves(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, spans: InMemorySpanExporter,
    sdk_traces: bool,
) -> None:
    """Two calls fit the quota (with the SDK tracing, its reservation is released once the SDK's span is
    charged, not counted twice); the third is refused and never reaches the provider."""
    harness = make_runtime(QUOTA, COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=anthropic")
    options: Any = None if sdk_traces else False
    client = anthropic.Anthropic(base_url=provider_server.base_url, api_key="k", max_retries=0, open_telemetry=options)

    client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        stream.until_done()
    with pytest.raises(costspan.BudgetExceededError):
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert provider_server.request_count == 2
    found = llm_spans(spans)
    assert len(found) == 3
    assert (found[-1].attributes or {})[A.ERROR_TYPE] == "BudgetExceededError"
    assert harness.sample("costspan_requests_total", provider="anthropic", outcome="blocked") == 1


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
