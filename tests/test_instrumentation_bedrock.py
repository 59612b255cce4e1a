"""The Bedrock instrumentor, driven through the real boto3 ``bedrock-runtime`` client against the stand-in.

botocore signs with fake credentials, sends to ``endpoint_url`` (the stand-in, named ``aws.bedrock``
in the settings) and parses the stand-in's answers itself: JSON, the model families' InvokeModel
bodies, and the AWS event-stream binary framing of the streaming APIs.
"""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.response
import pytest
from botocore.config import Config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costspan import attribute_names as A
from costspan.facts import Usage as CostUsage
from costspan.instrumentation.bedrock import METHODS, BedrockInstrumentor
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

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
MESSAGES: Any = [{"role": "user", "content": [{"text": "Name one river in Portugal."}]}]
ANSWER = Scenario(usage=Usage(input_tokens=60, output_tokens=9), text="The Douro flows through Porto.")


@pytest.fixture(scope="module", autouse=True)
def instrumented() -> Iterator[Any]:
    yield from instrumenting(BedrockInstrumentor())


@pytest.fixture
def harness(make_runtime: Callable[..., Harness], provider_server: ProviderServer) -> Harness:
    return make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=aws.bedrock")


def bedrock(url: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name=region, aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def client(provider_server: ProviderServer) -> Any:
    return bedrock(provider_server.base_url)


def test_converse_span_carries_usage_cost_and_region(
    harness: Harness, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=60, output_tokens=9, cached_tokens=1000,
                                                 cache_creation_tokens=200)))
    client = bedrock(provider_server.base_url, region="eu-central-1")

    answer = client.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 64})

    assert answer["usage"]["inputTokens"] == 60
    span = only_llm_span(spans)
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[A.PROVIDER] == "aws.bedrock"
    assert attrs["cloud.region"] == "eu-central-1"
    assert attrs["rpc.method"] == "Converse"
    assert attrs[A.REQUEST_MAX_TOKENS] == 64
    # Converse's inputTokens excludes the cache: semconv input counts it in.
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (1260, 9)
    assert (attrs[A.CACHE_READ_TOKENS], attrs[A.CACHE_CREATION_TOKENS]) == (1000, 200)
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("end_turn",)
    usage = CostUsage(input_tokens=1260, output_tokens=9, cache_read_tokens=1000, cache_write_tokens=200)
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "aws.bedrock", CLAUDE, usage), rel=1e-12)
    assert harness.sample("costspan_tokens_total", provider="aws.bedrock", type="cache_read") == 1000


@pytest.mark.parametrize(
    ("model_id", "key"),
    [
        (CLAUDE, "regional"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "regional"),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "regional"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global"),
        ("apac.anthropic.claude-3-5-sonnet-20240620-v1:0", None),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0", None),
    ],
)
def test_bedrock_model_ids_are_priced_as_bedrock_bills_them(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter,
    model_id: str, key: str | None,
) -> None:
    """Claude 4.5 and later cost 10% more on regional endpoints and geographic profiles than on
    ``global.``; the profile prefix and an inference profile's ARN keep the model priceable."""
    provider_server.enqueue(ANSWER)

    client.converse(modelId=model_id, messages=MESSAGES)

    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_MODEL] == model_id
    assert A.RESPONSE_MODEL not in attrs
    assert attrs[A.COST_STATUS] == "priced"
    if key is not None:
        assert str(attrs[A.PRICING_KEY]).startswith(f"aws/{key}.")
    usage = CostUsage(input_tokens=60, output_tokens=9)
    assert attrs[A.COST_USD] == pytest.approx(expected_cost(harness, "aws.bedrock", model_id, usage), rel=1e-12)


def test_regional_claude_costs_ten_percent_more_than_global(harness: Harness) -> None:
    usage = CostUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    regional = expected_cost(harness, "aws.bedrock", "us." + CLAUDE, usage)
    world = expected_cost(harness, "aws.bedrock", "global." + CLAUDE, usage)
    assert regional == pytest.approx(world * 1.1, rel=1e-12)


def test_provisioned_throughput_arn_is_unpriced_unless_aliased(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, client: Any, spans: InMemorySpanExporter,
    tmp_path: Any,
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/a1b2c3d4e5f6"
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=aws.bedrock")
    provider_server.enqueue(ANSWER)
    client.converse(modelId=arn, messages=MESSAGES)
    assert attrs_of(spans)[A.COST_STATUS] == "unpriced"
    assert harness.sample("costspan_unpriced_requests_total", provider="aws.bedrock") == 1

    spans.clear()
    make_runtime(f"pricing:\n  aliases:\n    '{arn}': {CLAUDE}\n",
                 COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=aws.bedrock")
    provider_server.enqueue(ANSWER)
    client.converse(modelId=arn, messages=MESSAGES)
    assert attrs_of(spans)[A.COST_STATUS] == "priced"


def test_converse_stream_is_lazy_intact_and_counted(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(ANSWER, times=2)

    answer = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
    assert llm_spans(spans) == []
    events = list(answer["stream"])
    with uninstrumented():
        reference = list(client.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"])

    assert events == reference
    attrs = attrs_of(spans)
    assert attrs[A.REQUEST_STREAM] is True
    assert attrs["rpc.method"] == "ConverseStream"
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (60, 9)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.RESPONSE_TTFC] > 0
    assert attrs[A.COST_STATUS] == "priced"


def invoke_body(family: str) -> dict[str, Any]:
    prompt = "Name one river in Portugal."
    return {
        "anthropic": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                      "messages": [{"role": "user", "content": prompt}]},
        "nova": {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": prompt}]}],
                 "inferenceConfig": {"max_new_tokens": 64}},
        "titan": {"inputText": prompt, "textGenerationConfig": {"maxTokenCount": 64}},
        "llama": {"prompt": prompt, "max_gen_len": 64},
        "mistral": {"prompt": f"<s>[INST] {prompt} [/INST]", "max_tokens": 64},
        "cohere": {"message": prompt, "max_tokens": 64},
    }[family]


FAMILIES = {
    "anthropic": "anthropic.claude-3-haiku-20240307-v1:0",
    "nova": "us.amazon.nova-lite-v1:0",
    "titan": "amazon.titan-text-express-v1",
    "llama": "meta.llama3-1-8b-instruct-v1:0",
    "mistral": "mistral.mistral-large-2402-v1:0",
    "cohere": "cohere.command-r-v1:0",
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_invoke_model_reads_each_familys_body_and_leaves_it_to_the_app(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter, family: str
) -> None:
    """Usage from the family's body where it has one (Anthropic, Nova, Titan, Llama), from the token
    count headers where it has none (Mistral, Cohere); the app reads the body as the SDK gave it."""
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=41, output_tokens=7)))
    body = json.dumps(invoke_body(family))

    answer = client.invoke_model(modelId=FAMILIES[family], body=body)

    assert type(answer["body"]) is botocore.response.StreamingBody
    assert llm_spans(spans) == []  # the body is not read behind the application's back
    payload = json.loads(answer["body"].read())
    assert payload
    attrs = attrs_of(spans)
    assert attrs["rpc.method"] == "InvokeModel"
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (41, 7)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.REQUEST_MAX_TOKENS] == 64
    assert attrs[A.RESPONSE_FINISH_REASONS]
    expected_status = "unpriced" if family == "cohere" else "priced"  # no catalog prices Command R on Bedrock
    assert attrs[A.COST_STATUS] == expected_status


def test_invoke_model_body_read_in_chunks_and_anthropic_cache_counts(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=10, output_tokens=5, cached_tokens=300,
                                                 cache_creation_tokens=40)))

    answer = client.invoke_model(modelId="us." + FAMILIES["anthropic"], body=json.dumps(invoke_body("anthropic")))
    data = b"".join(answer["body"].iter_chunks(chunk_size=16))

    assert json.loads(data)["usage"]["cache_read_input_tokens"] == 300
    attrs = attrs_of(spans)
    assert (attrs[A.INPUT_TOKENS], attrs[A.CACHE_READ_TOKENS], attrs[A.CACHE_CREATION_TOKENS]) == (350, 300, 40)
    assert A.RESPONSE_MODEL not in attrs  # the body's "model" names the family, not what Bedrock bills


def test_invoke_model_body_never_read_is_counted_from_the_headers_when_dropped(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=33, output_tokens=4)))

    answer = client.invoke_model(modelId=FAMILIES["llama"], body=json.dumps(invoke_body("llama")))
    del answer
    gc.collect()

    for _ in range(100):  # the abandoned body's call ends on a thread of its own
        if llm_spans(spans):
            break
        time.sleep(0.02)
    attrs = attrs_of(spans)
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (33, 4)


def test_embeddings_through_invoke_model(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=12)))

    answer = client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "hello"}))
    assert len(json.loads(answer["body"].read())["embedding"]) == 8

    attrs = attrs_of(spans)
    assert attrs[A.OPERATION] == "embeddings"
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (12, 0)
    assert attrs[A.COST_STATUS] == "priced"


def without_ids(event: dict[str, Any]) -> bytes:
    """A stream chunk with the message id (one per request) blanked."""
    return re.sub(rb'"msg_bdrk_01\w+"', b'"id"', event["chunk"]["bytes"])


@pytest.mark.parametrize("family", ["anthropic", "nova", "titan", "llama", "mistral"])
def test_invoke_model_stream_reads_each_familys_events(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter, family: str
) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=41, output_tokens=7)), times=2)
    body = json.dumps(invoke_body(family))

    answer = client.invoke_model_with_response_stream(modelId=FAMILIES[family], body=body)
    assert llm_spans(spans) == []
    events = list(answer["body"])
    with uninstrumented():
        reference = list(client.invoke_model_with_response_stream(modelId=FAMILIES[family], body=body)["body"])

    assert [without_ids(e) for e in events] == [without_ids(e) for e in reference]
    attrs = attrs_of(spans)
    assert attrs["rpc.method"] == "InvokeModelWithResponseStream"
    assert (attrs[A.INPUT_TOKENS], attrs[A.OUTPUT_TOKENS]) == (41, 7)
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.COST_STATUS] == "priced"


def test_stream_without_usage_is_estimated_from_its_text(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(omit_usage=True, text="one two three four five six"))

    for _event in client.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]:
        pass

    attrs = attrs_of(spans)
    assert attrs[A.USAGE_SOURCE] == "estimated"
    assert attrs[A.INPUT_TOKENS] > 0 and attrs[A.OUTPUT_TOKENS] > 0


def test_in_stream_exception_propagates_and_marks_the_span(
    harness: Harness, client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    provider_server.enqueue(Scenario(error_after=3))

    stream = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError):
        for _event in stream:
            pass

    span = only_llm_span(spans)
    assert (span.attributes or {})[A.ERROR_TYPE] == "EventStreamError"
    assert span.status.status_code is StatusCode.ERROR


def test_budget_refuses_before_the_request_leaves(
    make_runtime: Callable[..., Harness], client: Any, provider_server: ProviderServer, spans: InMemorySpanExporter
) -> None:
    from costspan.errors import BudgetExceededError

    make_runtime(
        "budgets:\n  - name: tiny\n    limit_usd: 0.000001\n    window: day\n    enforce: true\n",
        COSTSPAN_ENDPOINTS=f"{provider_server.base_url}=aws.bedrock",
    )
    provider_server.enqueue(ANSWER)
    client.converse(modelId=CLAUDE, messages=MESSAGES)  # spends the budget
    with pytest.raises(BudgetExceededError):
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    assert provider_server.request_count == 1


def test_other_aws_calls_are_left_alone(harness: Harness, provider_server: ProviderServer,
                                        spans: InMemorySpanExporter) -> None:
    other = boto3.client("bedrock", endpoint_url=provider_server.base_url, region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="test",
                         config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError):
        other.list_foundation_models()  # the stand-in has no such route: 404
    assert llm_spans(spans) == []


def test_uninstrument_restores_the_sdk(instrumented: Any) -> None:
    assert_uninstrument_restores(instrumented, METHODS)
