"""Real provider traffic shapes (issue 11): Azure streams, tool-call streams, raw-response streams,
vendors' models behind a proxy on this machine, response models no catalog knows.

Each test drives the real ``openai`` SDK over loopback HTTP against the stand-in, which answers in
the shapes the providers' API references give (Azure's empty first chunk and content-filter
results, tool-call deltas split across chunks, a final usage chunk with empty ``choices``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.standin import ProviderServer, Scenario, ToolCall, Usage
from tests.harness import Harness
from tests.llm_spans import attrs_of, expected_cost

MESSAGES: Any = [{"role": "user", "content": "What is the weather in Lisbon today?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit."},
            },
            "required": ["city"],
        },
    },
}
WEATHER_CALL = ToolCall("get_weather", '{"city":"Lisbon","unit":"celsius"}')


@pytest.fixture
def azure_client(provider_server: ProviderServer) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=provider_server.base_url, api_key="k", api_version="2024-10-21", max_retries=0
    )


@pytest.fixture
def as_openai(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, openai_instrumented: Any
) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")


# --- 1. Azure streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False])
def test_azure_stream_is_priced_by_the_model_that_answered(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    azure_client: openai.AzureOpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    include_usage: bool,
) -> None:
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/openai=azure.ai.openai")
    provider_server.enqueue(Scenario(response_model="gpt-4o-mini-2024-07-18", usage=Usage(40, 12)))
    extra: Any = {"stream_options": {"include_usage": True}} if include_usage else {}

    chunks = list(azure_client.chat.completions.create(model="prod-chat", messages=MESSAGES, stream=True, **extra))

    assert chunks[0].choices == [] and chunks[0].id == ""  # Azure's prompt-filter chunk, unchanged
    attrs = attrs_of(spans)
    assert attrs[A.PROVIDER] == "azure.ai.openai"
    assert attrs[A.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert attrs[A.RESPONSE_ID].startswith("chatcmpl-")
    assert attrs[A.COST_STATUS] == "priced"
    assert attrs[A.USAGE_SOURCE] == ("reported" if include_usage else "estimated")
    if include_usage:
        cost = expected_cost(harness, "azure.ai.openai", "gpt-4o-mini-2024-07-18", CostUsage(40, 12))
        assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)


# --- 5. response models no catalog knows; dall-e-2 ------------------------------------------------


def test_unknown_response_model_is_priced_as_the_request_model_and_says_so(
    as_openai: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(response_model="davinci:2023-07-21-v2", usage=Usage(9, 4)))

    openai_client.completions.create(model="davinci-002", prompt="Hello")

    attrs = attrs_of(spans)
    assert attrs[A.RESPONSE_MODEL] == "davinci:2023-07-21-v2"
    assert attrs[A.COST_STATUS] == "priced"
    assert attrs[A.PRICING_KEY] == "openai/davinci-002 (request model; davinci:2023-07-21-v2 unknown)"
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(as_openai, "openai", "davinci-002", CostUsage(9, 4)))


def test_a_response_model_unknown_for_an_unknown_request_model_stays_unpriced(
    as_openai: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(response_model="mystery:v2", usage=Usage(9, 4)))

    openai_client.completions.create(model="mystery", prompt="Hello")

    assert attrs_of(spans)[A.COST_STATUS] == "unpriced"


@pytest.mark.parametrize(("model", "per_image"), [("dall-e-2", 0.02), ("dall-e-3", 0.04)])
def test_dall_e_images_are_priced_per_image(
    as_openai: Harness,
    openai_client: openai.OpenAI,
    spans: InMemorySpanExporter,
    model: str,
    per_image: float,
) -> None:
    openai_client.images.generate(model=model, prompt="a tram in Lisbon", n=2, size="1024x1024")

    attrs = attrs_of(spans)
    assert attrs[A.IMAGE_COUNT] == 2
    assert attrs[A.COST_STATUS] == "priced"
    assert attrs[A.COST_USD] == pytest.approx(2 * per_image, rel=1e-12)


# --- 3. raw-response streams ----------------------------------------------------------------------


def test_raw_response_stream_is_observed_through_parse(
    as_openai: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(40, 12)))

    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert spans.get_finished_spans() == ()  # lazy: nothing is read before the application reads
    stream = raw.parse()
    assert raw.parse() is stream
    chunks = list(stream)

    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # the final usage chunk, unchanged
    attrs = attrs_of(spans)
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (40, 12)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_MODEL] == "gpt-4o-mini"
    assert attrs[A.COST_STATUS] == "priced"


def test_raw_response_stream_without_usage_is_estimated(
    as_openai: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)

    attrs = attrs_of(spans)
    assert text and attrs[A.USAGE_SOURCE] == "estimated"
    assert attrs[A.OUTPUT_TOKENS] > 0 and attrs[A.INPUT_TOKENS] > 0
    assert attrs[A.COST_STATUS] == "priced"


def test_async_streaming_response_is_observed(
    as_openai: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    client = openai.AsyncOpenAI(base_url=provider_server.base_url + "/v1", api_key="k", max_retries=0)
    provider_server.enqueue(Scenario(usage=Usage(40, 12)))

    async def main() -> int:
        async with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as response:
            return len([chunk async for chunk in await response.parse()])

    assert asyncio.run(main()) > 2
    attrs = attrs_of(spans)
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (40, 12)
    assert attrs[A.COST_STATUS] == "priced"


def test_raw_stream_never_parsed_still_ends_its_span(
    as_openai: Harness, openai_client: openai.OpenAI, spans: InMemorySpanExporter
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    raw.http_response.close()
    del raw
    gc.collect()

    deadline = time.monotonic() + 5
    while not spans.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert attrs_of(spans)[A.REQUEST_STREAM] is True


# --- 4. a vendor's model behind a proxy on this machine -------------------------------------------


@pytest.mark.parametrize(("model", "key"), [("gpt-4o-mini", "openai/gpt-4o-mini"), ("claude-sonnet-4-5", "anthropic/")])
def test_vendor_model_through_a_local_proxy_is_priced_at_list_price(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    model: str,
    key: str,
) -> None:
    make_runtime()  # the stand-in's loopback address is not named: a LiteLLM-style proxy on this machine
    provider_server.enqueue(Scenario(usage=Usage(1000, 100)))

    openai_client.chat.completions.create(model=model, messages=MESSAGES)

    attrs = attrs_of(spans)
    assert attrs[A.PROVIDER] == "local" and attrs[A.ENDPOINT_LOCAL] is True
    assert attrs[A.COST_STATUS] == "priced"
    assert str(attrs[A.PRICING_KEY]).startswith(key)
    assert str(attrs[A.PRICING_SOURCE]).endswith("by model name on a local endpoint")
    assert attrs[A.COST_USD] > 0


@pytest.mark.parametrize("model", ["llama3.2", "deepseek-r1:8b", "qwen2.5-coder"])
def test_local_models_on_loopback_stay_free(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    model: str,
) -> None:
    harness = make_runtime()
    provider_server.enqueue(Scenario(usage=Usage(10, 10)))

    openai_client.chat.completions.create(model=model, messages=MESSAGES)

    assert attrs_of(spans)[A.COST_STATUS] == "free"
    assert harness.sample("costspan_unpriced_requests_total") == 0


def test_endpoints_naming_a_loopback_server_local_forces_free(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: openai.OpenAI,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=local")
    provider_server.enqueue(Scenario(usage=Usage(1000, 100)))

    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    attrs = attrs_of(spans)
    assert attrs[A.ENDPOINT_LOCAL] is True and attrs[A.COST_STATUS] == "free"


# --- 2. tool-call streams without usage ---------------------------------------------------------------


def test_tool_call_stream_without_usage_counts_tools_and_arguments(
    as_openai: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(tool_calls=(WEATHER_CALL,)))

    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    ))

    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) > 2  # the arguments arrive split across chunks
    attrs = attrs_of(spans)
    assert attrs[A.USAGE_SOURCE] == "estimated"
    counter = as_openai.runtime.counter
    plain = counter.count_messages("gpt-4o-mini", MESSAGES)
    assert attrs[A.INPUT_TOKENS] > plain + 30  # the tool definition is billed input
    assert attrs[A.OUTPUT_TOKENS] >= counter.count_text("gpt-4o-mini", [WEATHER_CALL.name, WEATHER_CALL.arguments])
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("tool_calls",)
