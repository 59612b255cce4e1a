"""Usage no provider would send, through every SDK: never priced, charged or refunded.

The stand-in answers with negative, 2**63 and 10**30 token counts, in each provider's own wire
format, plain and streamed. What the application receives must be exactly what the bare SDK
returns; the books must hold: the call is recorded with ``costspan.facts.source=invalid`` and
counted in ``costspan_invalid_usage_total``, its tokens are counted locally where the request and
the answer allow, no cost is ever negative, and an enforced budget admits what it should.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import attribute_names as A
from costspan.facts import MAX_TOKENS
from costspan.standin import ProviderServer, Scenario, Usage
from tests.harness import Harness
from tests.llm_spans import only_llm_span, uninstrumented
from tests.test_instrumentation_errors import SDKS, Sdk, instrumented, runtime_for

__all__ = ["instrumented"]  # the module fixture that turns every instrumentor on

HOSTILE = {
    "negative": Usage(input_tokens=-5000, output_tokens=-5000),
    "2**63": Usage(input_tokens=2**63, output_tokens=12),
    "10**30": Usage(input_tokens=10**30, output_tokens=10**30),
}


def _dump(result: Any) -> Any:
    """A comparable picture of what an SDK returned (pydantic models, dicts, ollama's objects)."""
    for method in ("model_dump", "dict"):
        dump = getattr(result, method, None)
        if callable(dump):
            try:
                return dump(exclude={"sdk_http_response", "response_id", "id", "created_at", "created"})
            except TypeError:
                return dump()
    return result


def consume(sdk: Sdk, client: Any, stream: bool) -> Any:
    if not stream:
        return _dump(sdk.call(client))
    chunks = sdk.stream(client)
    try:
        return [_dump(chunk) for chunk in chunks]
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


VOLATILE = frozenset({"id", "created", "created_at", "response_id", "ResponseMetadata"})


def strip_volatile(picture: Any) -> Any:
    """Ids and timestamps differ between two answers of the stand-in."""
    if isinstance(picture, dict):
        return {k: strip_volatile(v) for k, v in picture.items() if k not in VOLATILE}
    if isinstance(picture, list):
        return [strip_volatile(v) for v in picture]
    return picture


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_usage_no_provider_would_send_is_never_priced(
    sdk: Sdk,
    hostile: str,
    stream: bool,
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    harness = runtime_for(sdk, make_runtime, provider_server)
    provider_server.enqueue(Scenario(usage=HOSTILE[hostile], text="Farol da Guia."), times=2)
    with uninstrumented():
        reference = consume(sdk, sdk.client(provider_server.base_url), stream)
    got = consume(sdk, sdk.client(provider_server.base_url), stream)
    assert strip_volatile(got) == strip_volatile(reference)  # the application sees no difference

    attrs: dict[str, Any] = dict(only_llm_span(spans).attributes or {})
    assert attrs[A.USAGE_SOURCE] == "invalid"
    for name in (A.INPUT_TOKENS, A.OUTPUT_TOKENS):
        assert 0 <= int(attrs.get(name, 0)) <= MAX_TOKENS, (name, attrs.get(name))
    assert float(attrs.get(A.COST_USD, 0.0)) >= 0
    assert attrs[A.OUTPUT_TOKENS] > 0 or hostile == "2**63"  # counted from the answer's text
    assert harness.sample("costspan_invalid_usage_total", provider=sdk.provider) == 1
    assert harness.sample("costspan_cost_usd_total") >= 0
    assert harness.sample("costspan_tokens_total") <= 2 * MAX_TOKENS


@pytest.fixture
def tiny_budget(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Iterator[Harness]:
    yield make_runtime(
        "budgets:\n  - {name: tiny, limit_usd: 0.002, window: day, enforce: true}\n",
        COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai",
    )


def test_negative_usage_does_not_credit_an_enforced_budget(
    tiny_budget: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    """Before the fix, one -5000/-5000 answer credited the budget, which then admitted 11 calls, not 2."""
    import openai

    import costspan

    client = openai.OpenAI(base_url=provider_server.base_url + "/v1", api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "hello"}]
    provider_server.enqueue(Scenario(usage=HOSTILE["negative"]))
    client.chat.completions.create(model="gpt-4o", messages=messages)
    provider_server.set_default(Scenario(usage=Usage(input_tokens=100_000, output_tokens=100)))
    admitted = 0
    try:
        for _ in range(20):
            client.chat.completions.create(model="gpt-4o", messages=messages)
            admitted += 1
    except costspan.BudgetExceededError:
        pass
    finally:
        provider_server.set_default(Scenario())
    assert admitted == 1  # $0.251 spends the $0.002 budget at once: the next call is refused
    (budget,) = tiny_budget.runtime.budgets.status()
    assert budget.used > 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"input_tokens": True}, "input_tokens must be an integer"),
        ({"input_tokens": 10**30}, "input_tokens must be an integer from 0 to 20,000,000"),
        ({"output_tokens": -1}, "output_tokens must be an integer"),
        ({"input_tokens": 1.5}, "input_tokens must be an integer"),
        ({"model": None}, "model must be a non-empty string"),
        ({"model": ""}, "model must be a non-empty string"),
        ({"provider": None}, "provider must be a non-empty string"),
        ({"cost_usd": "1e30"}, "cost_usd must be a number of dollars"),
        ({"cost_usd": "1000000000"}, "cost_usd must be from 0 to 9007199 dollars"),
        ({"cost_usd": True}, "cost_usd must be a number of dollars"),
        ({"cost_usd": "NaN"}, "cost_usd must be a number of dollars"),
        ({"cost_usd": "-0.5"}, "a refund is not a call"),
    ],
)
def test_track_rejects_what_no_call_could_carry(
    make_runtime: Callable[..., Harness], spans: InMemorySpanExporter, kwargs: dict[str, Any], problem: str
) -> None:
    import costspan

    harness = make_runtime()
    arguments: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, **kwargs}
    with pytest.raises(ValueError, match=problem):
        costspan.track(**arguments)
    assert spans.get_finished_spans() == ()
    assert harness.sample("costspan_requests_total") == 0
