"""The error matrix: every instrumented SDK, every way a call fails, sync and async.

For openai, anthropic, google-genai, groq, ollama, mistralai, cohere, LiteLLM and boto3's Bedrock (sync only),
driven against the stand-in: a rate limit (429), a server error (500), and a stream cut in the middle
(the connection drops after a few frames, with chunks already delivered). Whatever the SDK raises
without costspan must reach the application unchanged (same class, same status), and costspan must
record the failure the same way everywhere, because dashboards and alerts group errors by it: ``error.type`` is the
exception's class name, the span is marked ERROR, ``costspan_requests_total{outcome="error"}``
counts the call once, nothing is charged, and the span ends exactly once, even when the
application closes the failed stream afterwards or drops it for the garbage collector.

The anthropic SDK traces itself by default, and then its span is the call's span, with the SDK's
own ``error.type`` values (``rate_limit_error``...). The matrix turns that off to test costspan's
span; a test of its own covers the SDK's span. The last test is the gentler cousin of a cut: the
application stops reading a stream before its usage arrives, and the output it did receive counts.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import groq
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from costspan import attribute_names as A
from costspan.instrumentation.anthropic import AnthropicInstrumentor
from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor
from costspan.instrumentation.groq import GroqInstrumentor
from costspan.instrumentation.ollama import OllamaInstrumentor
from costspan.standin import ProviderServer, Scenario
from tests.harness import Harness
from tests.llm_spans import only_llm_span, uninstrumented

MESSAGES: Any = [{"role": "user", "content": "Name one lighthouse on the coast of Portugal."}]
CUT_AFTER = 3
"""Frames sent before the stand-in drops the connection: past the stream's start, before its end."""


@dataclass(frozen=True)
class Sdk:
    """How to make one plain call and open one stream with an SDK, sync and async, against ``url``."""

    name: str
    provider: str
    billed_as: str | None
    """``COSTSPAN_ENDPOINTS`` entry naming the stand-in as this provider (``{url}`` filled in); None: local."""
    instrumentor: Callable[[], BaseInstrumentor]
    client: Callable[[str], Any]
    async_client: Callable[[str], Any]
    call: Callable[[Any], Any]
    stream: Callable[[Any], Any]
    async_call: Callable[[Any], Awaitable[Any]] | None
    """None for an SDK with no async client (boto3): its async cases are skipped."""
    async_stream: Callable[[Any], Awaitable[Any]] | None


def _openai_instrumentor() -> BaseInstrumentor:
    from costspan.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _bedrock_instrumentor() -> BaseInstrumentor:
    from costspan.instrumentation.bedrock import BedrockInstrumentor

    return BedrockInstrumentor()


def _bedrock(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k",
        aws_secret_access_key="k", config=Config(retries={"total_max_attempts": 1}),
    )


def _bedrock_stream(client: Any) -> Any:
    """The EventStream of a ConverseStream answer: iterated and closed as the SDKs' streams are."""
    return client.converse_stream(modelId=BEDROCK_MODEL, messages=BEDROCK_MESSAGES)["stream"]


def status_of(error: BaseException) -> int | None:
    """The HTTP status an SDK's error carries: ``status_code``/``code``, or botocore's response metadata."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return getattr(error, "status_code", getattr(error, "code", None))


def _mistral_instrumentor() -> BaseInstrumentor:
    from costspan.instrumentation.mistral import MistralInstrumentor

    return MistralInstrumentor()


def _mistral(url: str) -> Any:
    from mistralai.client import Mistral

    return Mistral(api_key="k", server_url=url)


def _cohere_instrumentor() -> BaseInstrumentor:
    from costspan.instrumentation.cohere import CohereInstrumentor

    return CohereInstrumentor()


def _cohere(url: str) -> Any:
    import cohere

    return cohere.ClientV2(api_key="k", base_url=url)


def _async_cohere(url: str) -> Any:
    import cohere

    return cohere.AsyncClientV2(api_key="k", base_url=url)


COHERE: dict[str, Any] = {"model": "command-a-03-2025", "messages": MESSAGES, "request_options": {"max_retries": 0}}


async def _cohere_async_stream(client: Any) -> Any:
    return client.chat_stream(**COHERE)


def _litellm_instrumentor() -> BaseInstrumentor:
    from costspan.instrumentation.litellm import LiteLLMInstrumentor

    return LiteLLMInstrumentor()


def _litellm(url: str) -> dict[str, Any]:
    """LiteLLM has no client object: what stands for one is the route, the arguments every call takes."""
    return {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": url + "/v1", "api_key": "k",
            "max_retries": 0}


def _litellm_call(route: dict[str, Any]) -> Any:
    import litellm

    return litellm.completion(**route)


def _litellm_stream(route: dict[str, Any]) -> Any:
    import litellm

    return litellm.completion(**route, stream=True, stream_options={"include_usage": True})


async def _litellm_async_call(route: dict[str, Any]) -> Any:
    import litellm

    return await litellm.acompletion(**route)


async def _litellm_async_stream(route: dict[str, Any]) -> Any:
    import litellm

    return await litellm.acompletion(**route, stream=True, stream_options={"include_usage": True})


BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
BEDROCK_MESSAGES: Any = [{"role": "user", "content": [{"text": "Name one lighthouse on the coast of Portugal."}]}]


def _gemini(url: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))


SDKS = [
    Sdk(
        "openai",
        "openai",
        "{url}/v1=openai",
        _openai_instrumentor,
        lambda url: openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0),
        lambda url: openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0),
        lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ),
        lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ),
    ),
    Sdk(
        "anthropic",
        "anthropic",
        "{url}=anthropic",
        AnthropicInstrumentor,
        lambda url: anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, open_telemetry=False),
        lambda url: anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, open_telemetry=False),
        lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES),
        lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES, stream=True),
        lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES),
        lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES, stream=True),
    ),
    Sdk(
        "gemini",
        "gcp.gemini",
        "{url}=gcp.gemini",
        GoogleGenAIInstrumentor,
        _gemini,
        _gemini,
        lambda c: c.models.generate_content(model="gemini-2.5-flash", contents="Name one lighthouse."),
        lambda c: c.models.generate_content_stream(model="gemini-2.5-flash", contents="Name one lighthouse."),
        lambda c: c.aio.models.generate_content(model="gemini-2.5-flash", contents="Name one lighthouse."),
        lambda c: c.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="Name one lighthouse."),
    ),
    Sdk(
        "groq",
        "groq",
        "{url}=groq",
        GroqInstrumentor,
        lambda url: groq.Groq(base_url=url, api_key="k", max_retries=0),
        lambda url: groq.AsyncGroq(base_url=url, api_key="k", max_retries=0),
        lambda c: c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES),
        lambda c: c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True),
        lambda c: c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES),
        lambda c: c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True),
    ),
    Sdk(
        "ollama",
        "ollama",
        None,
        OllamaInstrumentor,
        lambda url: ollama.Client(host=url),
        lambda url: ollama.AsyncClient(host=url),
        lambda c: c.chat("llama3.2", MESSAGES),
        lambda c: c.chat("llama3.2", MESSAGES, stream=True),
        lambda c: c.chat("llama3.2", MESSAGES),
        lambda c: c.chat("llama3.2", MESSAGES, stream=True),
    ),
    Sdk(
        "mistral",
        "mistral_ai",
        "{url}=mistral_ai",
        _mistral_instrumentor,
        _mistral,
        _mistral,
        lambda c: c.chat.complete(model="mistral-small-latest", messages=MESSAGES),
        lambda c: c.chat.stream(model="mistral-small-latest", messages=MESSAGES),
        lambda c: c.chat.complete_async(model="mistral-small-latest", messages=MESSAGES),
        lambda c: c.chat.stream_async(model="mistral-small-latest", messages=MESSAGES),
    ),
    Sdk(
        "cohere",
        "cohere",
        "{url}=cohere",
        _cohere_instrumentor,
        _cohere,
        _async_cohere,
        lambda c: c.chat(**COHERE),
        lambda c: c.chat_stream(**COHERE),
        lambda c: c.chat(**COHERE),
        _cohere_async_stream,
    ),
    Sdk(
        "litellm",
        "openai",
        "{url}/v1=openai",
        _litellm_instrumentor,
        _litellm,
        _litellm,
        _litellm_call,
        _litellm_stream,
        _litellm_async_call,
        _litellm_async_stream,
    ),
    Sdk(
        "bedrock",
        "aws.bedrock",
        "{url}=aws.bedrock",
        _bedrock_instrumentor,
        _bedrock,
        _bedrock,
        lambda c: c.converse(modelId=BEDROCK_MODEL, messages=BEDROCK_MESSAGES),
        _bedrock_stream,
        None,
        None,
    ),
]

FAILURES: dict[str, Scenario] = {
    "429": Scenario(status=429, retry_after=2),
    "500": Scenario(status=500),
    "stream-cut": Scenario(cut_after=CUT_AFTER),
}


@dataclass
class Outcome:
    error: BaseException
    chunks: int
    """Stream chunks the application received before the error."""


def provoke(sdk: Sdk, failure: str, mode: str, url: str) -> Outcome:
    """Make the failing call as an application would, closing a failed stream afterwards as a careful one does."""
    streaming = failure == "stream-cut"
    if mode == "async":
        return asyncio.run(_provoke_async(sdk, streaming, url))
    client = sdk.client(url)
    received = 0
    try:
        if not streaming:
            sdk.call(client)
        else:
            stream = sdk.stream(client)
            try:
                for _chunk in stream:
                    received += 1
            finally:
                stream.close()
    except Exception as exc:
        return Outcome(exc, received)
    raise AssertionError(f"{sdk.name}: the {failure} scenario raised nothing")


async def _provoke_async(sdk: Sdk, streaming: bool, url: str) -> Outcome:
    assert sdk.async_call is not None and sdk.async_stream is not None
    client = sdk.async_client(url)
    received = 0
    try:
        if not streaming:
            await sdk.async_call(client)
        else:
            stream = await sdk.async_stream(client)
            try:
                async for _chunk in stream:
                    received += 1
            finally:
                # Async generators (gemini, ollama) close with aclose(), the SDKs' stream classes with close().
                inner = getattr(stream, "__wrapped__", stream)
                await (stream.aclose() if hasattr(inner, "aclose") else stream.close())
    except Exception as exc:
        return Outcome(exc, received)
    raise AssertionError(f"{sdk.name}: the failing scenario raised nothing")


@pytest.fixture(scope="module", autouse=True)
def instrumented(openai_instrumented: Any) -> Iterator[None]:
    """Every instrumentor on for this module; those another fixture already enabled are left to it."""
    mine = [i for i in (sdk.instrumentor() for sdk in SDKS) if not i.is_instrumented_by_opentelemetry]
    for instrumentor in mine:
        instrumentor.instrument()
    # The SDKs' heap (pydantic models by the thousand) is frozen out of the collector, so the
    # gc.collect() each test makes scans only what the test allocated: milliseconds, not 150.
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    for instrumentor in mine:
        instrumentor.uninstrument()


@pytest.fixture
def end_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How many times ``end()`` was called on each span, by span id.

    The SDK ignores a second ``end()`` (with a warning), so the exported spans cannot show it: count
    the calls themselves. costspan's processor wraps each span's ``end`` from ``on_start``, around the
    method it finds on the class, so every call from the instrumentation passes through this one.
    """
    calls: Counter[int] = Counter()
    original = sdk_trace.Span.end

    def counting_end(self: sdk_trace.Span, end_time: int | None = None) -> None:
        calls[self.context.span_id] += 1
        original(self, end_time)

    monkeypatch.setattr(sdk_trace.Span, "end", counting_end)
    return calls


def runtime_for(sdk: Sdk, make_runtime: Callable[..., Harness], server: ProviderServer) -> Harness:
    if sdk.billed_as is None:
        return make_runtime()
    return make_runtime(COSTSPAN_ENDPOINTS=sdk.billed_as.format(url=server.base_url))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_failure_propagates_unchanged_and_is_recorded_once(
    sdk: Sdk,
    failure: str,
    mode: str,
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    end_calls: Counter[int],
) -> None:
    if mode == "async" and sdk.async_call is None:
        pytest.skip(f"{sdk.name} has no async client")
    harness = runtime_for(sdk, make_runtime, provider_server)
    provider_server.enqueue(FAILURES[failure], times=2)
    with uninstrumented():
        reference = provoke(sdk, failure, mode, provider_server.base_url)
    assert spans.get_finished_spans() == ()

    outcome = provoke(sdk, failure, mode, provider_server.base_url)
    gc.collect()  # an abandoned stream proxy would end its span here, a second time if it were buggy

    # The application sees exactly what the SDK raises without costspan.
    error = outcome.error
    assert type(error) is type(reference.error), (error, reference.error)
    assert "costspan" not in type(error).__module__
    assert status_of(error) == status_of(reference.error)
    if failure == "stream-cut":
        assert 0 < outcome.chunks == reference.chunks  # cut mid-way, after the same chunks
    else:
        assert status_of(error) == int(failure)

    span = only_llm_span(spans)
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == sdk.provider
    assert attrs[A.ERROR_TYPE] == type(error).__name__
    assert span.status.status_code is StatusCode.ERROR
    assert dict(end_calls) == {span.context.span_id: 1}
    assert harness.sample(
        "costspan_requests_total", provider=sdk.provider, outcome="error", error_type=type(error).__name__
    ) == 1
    assert harness.sample("costspan_requests_total") == 1  # and no success counted beside it
    if failure == "stream-cut":
        # The provider processed the input and sent some output before the cut: that is billed,
        # so it is counted (reported where the stream carried it, else estimated), never zero.
        assert int(attrs[A.INPUT_TOKENS]) > 0 and A.OUTPUT_TOKENS in attrs
        assert harness.sample("costspan_tokens_total", type="input") == attrs[A.INPUT_TOKENS]
        if sdk.billed_as is not None:
            assert float(attrs[A.COST_USD]) > 0
            assert harness.sample("costspan_cost_usd_total") == pytest.approx(attrs[A.COST_USD], rel=1e-12)
    else:
        assert attrs.get(A.COST_USD, 0.0) == 0.0
        assert harness.sample("costspan_cost_usd_total") == 0
        assert harness.sample("costspan_tokens_total") == 0


@pytest.mark.parametrize("failure", list(FAILURES))
def test_anthropic_sdk_span_records_the_failure_once(
    failure: str,
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    end_calls: Counter[int],
) -> None:
    """With the SDK's tracing on (its default), the SDK's span is the call's only span, and it is counted."""
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=anthropic")
    provider_server.enqueue(FAILURES[failure])
    client = anthropic.Anthropic(base_url=provider_server.base_url, api_key="k", max_retries=0)
    assert client.open_telemetry["traces"]["enabled"]

    expected: type[Exception] = {"429": anthropic.RateLimitError, "500": anthropic.InternalServerError}.get(
        failure, Exception
    )
    with pytest.raises(expected) as raised:
        if failure == "stream-cut":
            with client.messages.create(
                model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES, stream=True
            ) as stream:
                list(stream)
        else:
            client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)
    gc.collect()

    assert "costspan" not in type(raised.value).__module__
    span = only_llm_span(spans)
    assert span.name == "anthropic.messages.create"  # the SDK's, and none of ours beside it
    assert (span.attributes or {}).get(A.ERROR_TYPE)  # in the SDK's own words
    assert span.status.status_code is StatusCode.ERROR
    assert dict(end_calls) == {span.context.span_id: 1}
    assert harness.sample("costspan_requests_total", provider="anthropic", outcome="error") == 1
    assert harness.sample("costspan_requests_total") == 1
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert attrs[A.COST_OUTPUT_USD] == 0.0
    if failure == "stream-cut":
        # The SDK's span keeps the input it read from ``message_start`` before the cut, and the
        # processor prices what a span reports (as costspan's own span does, above).
        assert attrs[A.INPUT_TOKENS] > 0
        assert harness.sample("costspan_cost_usd_total") == pytest.approx(attrs[A.COST_USD], rel=1e-12)
    else:
        assert attrs[A.COST_USD] == 0.0
        assert harness.sample("costspan_cost_usd_total") == 0


@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_stream_left_before_its_usage_counts_the_text_received(
    sdk: Sdk, make_runtime: Callable[..., Harness], provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    """An application that stops reading (a user cancels a chat) never gets the final usage; the model
    still generated what arrived, so the output is counted from that text, not taken as zero."""
    runtime_for(sdk, make_runtime, provider_server)
    provider_server.enqueue(Scenario(text="one two three four five six seven eight nine ten eleven twelve"))

    client = sdk.client(provider_server.base_url)  # kept: a dropped genai.Client closes its transport
    stream = sdk.stream(client)
    for received, _chunk in enumerate(stream, start=1):
        if received == CUT_AFTER + 1:
            break
    stream.close()

    attrs: dict[str, Any] = dict(only_llm_span(spans).attributes or {})
    assert attrs[A.USAGE_SOURCE] == "estimated"
    assert attrs[A.INPUT_TOKENS] > 0
    assert attrs[A.OUTPUT_TOKENS] > 0, attrs
    assert A.ERROR_TYPE not in attrs
