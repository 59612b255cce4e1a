"""The LiteLLM instrumentor, driven through the real ``litellm`` SDK against the stand-in.

LiteLLM reaches the stand-in through its own provider code: the openai SDK for ``openai/`` models (which
costspan instruments too: the call must be counted once), its own HTTP client for ``anthropic/`` and
``gemini/``. Each stand-in address is named as the provider it stands for, so calls are priced as that
provider's. LiteLLM reads its bundled price map (``LITELLM_LOCAL_MODEL_COST_MAP``, set in conftest):
nothing here touches the network.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from costspan import attribute_names as A
from costspan.errors import BudgetExceededError
from costspan.exporters.ledger import LedgerSink
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.litellm import _CHAT, METHODS, LiteLLMInstrumentor
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

MESSAGES: Any = [{"role": "user", "content": "Name one river in Portugal."}]
ANSWER = Scenario(usage=Usage(input_tokens=60, output_tokens=9, cached_tokens=20, reasoning_tokens=3),
                  text="The Douro flows through Porto.")
OPENAI_USAGE = CostUsage(input_tokens=60, output_tokens=9, cache_read_tokens=20, reasoning_tokens=3)


@pytest.fixture(scope="module", autouse=True)
def instrumented(openai_instrumented: Any) -> Iterator[Any]:
    """LiteLLM's instrumentor, beside the openai SDK's (on for the session), as an application has both."""
    yield from instrumenting(LiteLLMInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    url = provider_server.base_url
    return make_runtime(
        # First match wins: /v1beta before /v1.
        COSTSPAN_ENDPOINTS=f"{url}/v1beta=gcp.gemini,{url}/v1=openai,{url}/x-anthropic=anthropic"
    )


def openai_route(server: ProviderServer, **kwargs: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": server.base_url + "/v1",
            "api_key": "k", "max_retries": 0, **kwargs}


def test_openai_route_span_carries_usage_and_cost(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER)

    answer = litellm.completion(**openai_route(provider_server, max_tokens=64))

    assert provider_server.requests[-1].route == "openai.chat.completions"
    span = only_llm_span(spans)
    assert (span.name, span.kind) == ("chat gpt-4o-mini", SpanKind.CLIENT)
    attrs = dict(span.attributes or {})
    assert (attrs[A.PROVIDER], attrs[A.REQUEST_MODEL], attrs[A.RESPONSE_MODEL]) == ("openai", "gpt-4o-mini",
                                                                                    answer.model)
    assert attrs[A.REQUEST_MAX_TOKENS] == 64
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert (attrs[A.CACHE_READ_TOKENS], attrs[A.REASONING_TOKENS]) == (20, 3)
    cost = expected_cost(harness, "openai", "gpt-4o-mini", OPENAI_USAGE)
    assert attrs[A.COST_USD] == pytest.approx(cost, rel=1e-12)


AZURE: dict[str, Any] = {"model": "azure/gpt-4o-mini", "messages": MESSAGES, "api_key": "k",
                         "api_version": "2024-10-21", "max_retries": 0}


def test_calls_litellm_sends_through_the_instrumented_openai_sdk_are_counted_once(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, spans: InMemorySpanExporter,
    tmp_path: Path, instrumented: Any,
) -> None:
    """LiteLLM sends Azure chat (plain and streamed, sync and async) and OpenAI embeddings with an
    ``encoding_format`` through the openai SDK's ``create``, which costspan instruments: one span each
    (LiteLLM's), one count on the metrics, one ledger row."""
    url = provider_server.base_url
    harness = make_runtime(
        COSTSPAN_ENDPOINTS=f"{url}/x-azure=azure.ai.openai,{url}/v1=openai",
        COSTSPAN_STORE=f"sqlite:///{tmp_path / 'costspan.db'}", COSTSPAN_LEDGER="on",
    )
    provider_server.enqueue(ANSWER, times=4)
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)))
    azure = {**AZURE, "api_base": url + "/x-azure"}
    embedding = {"model": "openai/text-embedding-3-small", "input": ["hello"], "encoding_format": "float",
                 "api_base": url + "/v1", "api_key": "k"}

    async def run_async() -> None:
        await litellm.acompletion(**azure)
        async for _chunk in await litellm.acompletion(**azure, stream=True, stream_options={"include_usage": True}):
            pass

    litellm.completion(**azure)
    for _chunk in litellm.completion(**azure, stream=True, stream_options={"include_usage": True}):
        pass
    asyncio.run(run_async())
    litellm.embedding(**embedding)

    assert {r.route for r in provider_server.requests} == {"openai.chat.completions", "openai.embeddings"}
    assert provider_server.request_count == 5
    found = llm_spans(spans)
    assert len(found) == 5, [s.name for s in found]  # one per call: the openai SDK's wrapper stepped aside
    chats = [dict(s.attributes or {}) for s in found if s.name == "chat gpt-4o-mini"]
    assert [(a[A.PROVIDER], a[A.INPUT_TOKENS], a[A.OUTPUT_TOKENS]) for a in chats] == [
        ("azure.ai.openai", 60, 9)] * 4
    assert all(A.COUNTED_IN not in (s.attributes or {}) for s in found)
    cost = expected_cost(harness, "azure.ai.openai", "gpt-4o-mini", OPENAI_USAGE)
    assert [a[A.COST_USD] for a in chats] == [pytest.approx(cost, rel=1e-12)] * 4
    assert harness.sample("costspan_requests_total") == 5
    assert harness.sample("costspan_tokens_total", type="input") == 4 * 60 + 8
    assert harness.sample("costspan_cost_usd_total", provider="azure.ai.openai") == pytest.approx(4 * cost, rel=1e-9)
    (ledger,) = [sink for sink in harness.runtime.sinks if isinstance(sink, LedgerSink)]
    assert ledger.flush()
    conn = sqlite3.connect(tmp_path / "costspan-ledger.db")
    try:
        rows = conn.execute("SELECT span_id FROM calls").fetchall()
    finally:
        conn.close()
    assert sorted(row[0] for row in rows) == sorted(f"{s.context.span_id:016x}" for s in found)

    # The control: with LiteLLM's instrumentor off, the openai SDK's wrapper does see these calls.
    spans.clear()
    provider_server.enqueue(ANSWER)
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)))
    instrumented.uninstrument()
    try:
        litellm.completion(**azure)
        litellm.embedding(**embedding)
    finally:
        instrumented.instrument()
    assert [(s.attributes or {})[A.INPUT_TOKENS] for s in llm_spans(spans)] == [60, 8]
    assert harness.sample("costspan_requests_total") == 7


def test_async_completion_and_stream_are_counted_once(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    async def run() -> list[Any]:
        await litellm.acompletion(**openai_route(provider_server))
        stream = await litellm.acompletion(**openai_route(provider_server, stream=True,
                                                          stream_options={"include_usage": True}))
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())

    assert chunks[-1].usage.prompt_tokens == 60
    found = llm_spans(spans)
    assert len(found) == 2
    for span in found:
        attrs = span.attributes or {}
        assert (attrs[A.PROVIDER], attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == ("openai", 60, 9)
        assert attrs[A.COST_STATUS] == "priced"
    assert harness.sample("costspan_requests_total", outcome="success") == 2


def test_stream_is_lazy_intact_and_counted(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)
    route = openai_route(provider_server, stream=True, stream_options={"include_usage": True})

    stream = litellm.completion(**route)
    assert isinstance(stream, CustomStreamWrapper)
    assert llm_spans(spans) == []  # nothing read ahead: the span ends with the stream
    chunks = [chunk.model_dump(exclude={"id", "created"}) for chunk in stream]
    with uninstrumented():
        reference = [c.model_dump(exclude={"id", "created"}) for c in litellm.completion(**route)]

    assert chunks == reference
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS], attrs[A.CACHE_READ_TOKENS]) == (60, 9, 20)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("stop",)


def test_anthropic_route_counts_cache_reads_and_writes(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    """LiteLLM adds Anthropic's cache reads and writes into ``prompt_tokens`` and keeps the writes apart."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=50, output_tokens=7, cached_tokens=10,
                                                 cache_creation_5m=20, cache_creation_1h=5)))

    litellm.completion(model="anthropic/claude-sonnet-4-5", messages=MESSAGES, max_tokens=64,
                       api_base=provider_server.base_url + "/x-anthropic", api_key="k")

    assert provider_server.requests[-1].route == "anthropic.messages"
    attrs = attrs_of(spans)
    assert attrs[A.PROVIDER] == "anthropic"
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (85, 7)
    assert (attrs[A.CACHE_READ_TOKENS], attrs[A.CACHE_CREATION_TOKENS], attrs[A.CACHE_WRITE_1H_TOKENS]) == (10, 25, 5)
    usage = CostUsage(input_tokens=85, output_tokens=7, cache_read_tokens=10, cache_write_tokens=25,
                      cache_write_1h_tokens=5)
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "anthropic", "claude-sonnet-4-5", usage),
                                              rel=1e-12)


def test_stream_without_include_usage_takes_what_the_provider_reported(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    """Anthropic reports usage in its stream: LiteLLM keeps it out of sight, and it is read. OpenAI reports
    none without ``include_usage``: the count LiteLLM then makes up is not taken as reported."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=50, output_tokens=7, cached_tokens=10)))
    provider_server.enqueue(ANSWER)

    for _chunk in litellm.completion(model="anthropic/claude-sonnet-4-5", messages=MESSAGES, stream=True,
                                     api_base=provider_server.base_url + "/x-anthropic", api_key="k"):
        pass
    for _chunk in litellm.completion(**openai_route(provider_server, stream=True)):
        pass

    anthropic_span, openai_span = (dict(s.attributes or {}) for s in llm_spans(spans))
    assert (anthropic_span[A.INPUT_TOKENS], anthropic_span[A.OUTPUT_TOKENS]) == (60, 7)
    assert (anthropic_span[A.CACHE_READ_TOKENS], anthropic_span[A.USAGE_SOURCE]) == (10, "reported")
    assert openai_span[A.USAGE_SOURCE] == "estimated"
    assert openai_span[A.INPUT_TOKENS] > 0 and openai_span[A.OUTPUT_TOKENS] > 0


def test_gemini_route(harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=40, output_tokens=12)))

    litellm.completion(model="gemini/gemini-2.5-flash", messages=MESSAGES,
                       api_base=provider_server.base_url + "/v1beta", api_key="k")

    assert provider_server.requests[-1].route == "gemini.generate_content"
    attrs = attrs_of(spans)
    assert (attrs[A.PROVIDER], attrs[A.REQUEST_MODEL]) == ("gcp.gemini", "gemini-2.5-flash")
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS], attrs[A.COST_STATUS]) == (40, 12, "priced")


def test_embedding_and_aembedding(harness: Harness, provider_server: ProviderServer,
                                  spans: InMemorySpanExporter) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=8)), times=2)
    route = {"model": "openai/text-embedding-3-small", "input": ["hello"], "api_base": provider_server.base_url + "/v1",
             "api_key": "k"}

    litellm.embedding(**route)
    asyncio.run(litellm.aembedding(**route))

    found = llm_spans(spans)
    assert len(found) == 2
    for span in found:
        attrs = span.attributes or {}
        assert (attrs[A.OPERATION], attrs[A.PROVIDER], attrs[A.INPUT_TOKENS]) == ("embeddings", "openai", 8)
        assert attrs[A.COST_STATUS] == "priced"


@pytest.mark.parametrize(
    ("model", "extra", "provider", "routed"),
    [
        ("gpt-4o-mini", {}, "openai", "gpt-4o-mini"),
        ("groq/llama-3.1-8b-instant", {}, "groq", "llama-3.1-8b-instant"),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", {}, "aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("vertex_ai/gemini-2.5-flash", {}, "gcp.vertex_ai", "gemini-2.5-flash"),
        ("mistral/mistral-small-latest", {}, "mistral_ai", "mistral-small-latest"),
        ("xai/grok-4", {}, "x_ai", "grok-4"),
        ("cohere_chat/command-a-03-2025", {}, "cohere", "command-a-03-2025"),
        ("azure/prod-chat", {"api_base": "https://acme.openai.azure.com"}, "azure.ai.openai", "prod-chat"),
        ("hosted_vllm/llama-3.1-8b", {"api_base": "http://127.0.0.1:8000/v1"}, "vllm", "llama-3.1-8b"),
        ("my-model", {"custom_llm_provider": "together_ai"}, "together", "my-model"),
    ],
)
def test_the_provider_is_the_one_litellm_routes_to(model: str, extra: dict[str, Any], provider: str,
                                                   routed: str) -> None:
    request = _CHAT.read_request(None, (model, MESSAGES), extra)

    assert request is not None
    assert (request.provider, request.model, request.messages) == (provider, routed, MESSAGES)


def test_calls_litellm_answers_itself_or_cannot_route_are_left_alone(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="mocked")
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model="no-such-provider-model", messages=MESSAGES)

    assert llm_spans(spans) == []


def test_budget_refuses_before_the_request_leaves(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    make_runtime(
        "budgets:\n  - name: tiny\n    limit_usd: 0.000001\n    window: day\n    enforce: true\n",
        COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai",
    )
    provider_server.enqueue(ANSWER)
    litellm.completion(**openai_route(provider_server))  # spends the budget

    with pytest.raises(BudgetExceededError):
        litellm.completion(**openai_route(provider_server))
    with pytest.raises(BudgetExceededError):
        asyncio.run(litellm.acompletion(**openai_route(provider_server, stream=True)))

    assert provider_server.request_count == 1
    assert [(s.attributes or {}).get(A.ERROR_TYPE) for s in llm_spans(spans)][1:] == ["BudgetExceededError"] * 2


def test_a_disagreement_with_litellm_cost_is_logged_once_per_model_at_debug(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - match: {provider: openai, model: gpt-4o-mini}\n    input: 30\n    output: 60\n")
    make_runtime(f"pricing:\n  files: [{prices}]\n", COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")
    provider_server.enqueue(ANSWER, times=3)

    with caplog.at_level(logging.DEBUG, logger="costspan"):
        for _ in range(2):
            litellm.completion(**openai_route(provider_server))
        litellm.embedding(model="openai/text-embedding-3-small", input=["x"], api_key="k",
                          api_base=provider_server.base_url + "/v1")

    logged = [r.getMessage() for r in caplog.records if "LiteLLM prices" in r.getMessage()]
    assert len(logged) == 1, logged  # once for gpt-4o-mini; the embedding's prices agree
    assert "openai/gpt-4o-mini" in logged[0]


def test_registered_for_the_launcher() -> None:
    from opentelemetry.util._importlib_metadata import entry_points

    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "costspan_litellm"]
    assert entry.load() is LiteLLMInstrumentor


SKIPPED_WITHOUT_LITELLM = """
import sys
sys.modules["litellm"] = None  # as if it were not installed: importing it raises ModuleNotFoundError
from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
from opentelemetry.instrumentation.distro import DefaultDistro
from openai.resources.chat.completions import Completions
import wrapt
_load_instrumentors(DefaultDistro())
print(isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper))
"""


@pytest.mark.slow
def test_the_launcher_skips_it_cleanly_without_litellm(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COSTSPAN_STORE": "memory://", "COSTSPAN_LEDGER": "off"}
    done = subprocess.run([sys.executable, "-c", SKIPPED_WITHOUT_LITELLM], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # the other instrumentors were loaded
    assert "Traceback" not in done.stderr


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
