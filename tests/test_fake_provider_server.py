"""The fake provider server speaks each provider's wire format well enough for the real SDKs.

Each provider: a non-stream call parses into the SDK's typed object with the usage the scenario
set, a stream iterates to completion with usage, an error scenario raises the SDK's own exception,
and a cut stream raises inside the SDK. All over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import anthropic
import google.genai.errors
import groq
import httpx
import httpx2
import ollama
import openai
import pytest

from costspan.standin.server import ProviderServer, Scenario, Usage
from tests.fakes.fixtures import *  # noqa: F403  (the fixtures: provider_server, openai_client, ...)

MESSAGES = [{"role": "user", "content": "Say hello to the fake provider"}]
CLAUDE = "claude-haiku-4-5"


# --- core: recording, scenarios, lifecycle ---------------------------------------------------------


def test_records_requests_and_reset(provider_server: ProviderServer, openai_client: Any) -> None:
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    request = provider_server.last_request
    assert (request.method, request.path, request.route) == ("POST", "/v1/chat/completions", "openai.chat.completions")
    assert request.body["messages"] == MESSAGES
    assert request.headers["authorization"] == "Bearer test-key"
    assert provider_server.request_count == 1
    provider_server.set_next(status=500)
    provider_server.reset()
    assert provider_server.request_count == 0
    assert provider_server.pending == 0


def test_queue_order_times_path_filter_and_default(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.enqueue(Scenario(status=400, path_contains="/embeddings"))
    provider_server.enqueue(Scenario(text="first"), times=2)
    provider_server.set_default(text="default")
    # The embeddings-only scenario is skipped by chat requests and keeps waiting.
    texts = [openai_client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
             for _ in range(3)]
    assert texts == ["first", "first", "default"]
    with pytest.raises(openai.BadRequestError):
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert provider_server.pending == 0


def test_unknown_route_is_404_and_recorded(provider_server: ProviderServer) -> None:
    request = urllib.request.Request(provider_server.base_url + "/nope", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 404
    assert provider_server.last_request.route is None


@pytest.mark.slow
def test_standalone_module_runs_without_pytest(tmp_path: Any) -> None:
    code = (
        "import sys, costspan.standin.server as m; "
        "assert 'pytest' not in sys.modules, 'the server must not need pytest'; "
        "sys.exit(m.main(sys.argv[1:]))"
    )
    process = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--alias", "a=b"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            assert json.load(response) == {"status": "ok"}
        body = json.dumps({"model": "a", "messages": MESSAGES, "stream": False}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/api/chat", data=body), timeout=5) as response:
            assert json.load(response)["model"] == "b"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_context_manager_start_stop() -> None:
    with ProviderServer() as server:
        url = server.base_url
        assert url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.stop()  # idempotent


# --- OpenAI -----------------------------------------------------------------------------------------


def test_openai_chat_non_stream_usage_model_alias_and_tier(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.set_model_alias("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    provider_server.set_next(usage=Usage(input_tokens=1200, output_tokens=300, cached_tokens=1024, reasoning_tokens=64),
                             service_tier="flex")
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.service_tier == "flex"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1200, 300, 1500)
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens_details.reasoning_tokens == 64


def test_openai_chat_stream_usage_chunk_only_when_asked(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.set_next(usage=Usage(input_tokens=10, output_tokens=20))
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 30
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
    plain = list(openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"
    provider_server.set_next(omit_usage=True)
    omitted = list(openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert all(c.usage is None for c in omitted)


def test_openai_errors_raise_sdk_types(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.enqueue(Scenario(status=429, retry_after=7), Scenario(status=500), Scenario(status=400))
    with pytest.raises(openai.RateLimitError) as rate:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert rate.value.response.headers["retry-after"] == "7"
    assert rate.value.code == "rate_limit_exceeded" and rate.value.type == "requests"
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert bad.value.body["type"] == "invalid_request_error"


def test_openai_cut_and_broken_streams_raise(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.set_next(cut_after=3)
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    provider_server.set_next(error_after=2, error_message="boom")
    with pytest.raises(openai.APIError, match="boom"):
        list(openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))


def test_openai_delay_before_first_chunk(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.set_next(delay=0.3)
    start = time.monotonic()
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    assert time.monotonic() - start >= 0.3
    stream.close()


def test_openai_legacy_completions(provider_server: ProviderServer, openai_client: Any) -> None:
    provider_server.set_next(usage=Usage(input_tokens=5, output_tokens=7))
    completion = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert completion.usage.total_tokens == 12 and completion.choices[0].text
    chunks = list(openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True,
                                                   stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_openai_embeddings_float_and_base64(provider_server: ProviderServer, openai_client: Any) -> None:
    as_float = openai_client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"],
                                               encoding_format="float")
    default = openai_client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert provider_server.last_request.body["encoding_format"] == "base64"  # the SDK's own default
    assert len(default.data) == 2
    assert default.data[0].embedding == pytest.approx(as_float.data[0].embedding, abs=1e-6)
    assert as_float.usage.prompt_tokens == 3


def test_openai_responses_non_stream_and_stream(provider_server: ProviderServer, openai_client: Any) -> None:
    usage = Usage(input_tokens=2000, output_tokens=500, cached_tokens=1500, reasoning_tokens=400)
    provider_server.enqueue(Scenario(usage=usage), times=2)
    response = openai_client.responses.create(model="o4-mini", input="think")
    assert response.output_text.startswith("Hello")
    assert response.usage.input_tokens_details.cached_tokens == 1500
    assert response.usage.output_tokens_details.reasoning_tokens == 400
    events = list(openai_client.responses.create(model="o4-mini", input="think", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert events[-1].response.usage.total_tokens == 2500
    with openai_client.responses.stream(model="o4-mini", input="think") as stream:
        final = stream.get_final_response()
    assert final.output_text.startswith("Hello")


def test_openai_images(provider_server: ProviderServer, openai_client: Any) -> None:
    image = openai_client.images.generate(model="gpt-image-1", prompt="a cat", quality="low", n=2)
    assert len(image.data) == 2 and image.data[0].b64_json
    assert image.usage.output_tokens == 2 * 272
    dalle = openai_client.images.generate(model="dall-e-3", prompt="a cat")
    assert dalle.data[0].url and dalle.usage is None


def test_azure_openai_deployment_path(provider_server: ProviderServer) -> None:
    client = openai.AzureOpenAI(azure_endpoint=provider_server.base_url, api_key="k", api_version="2024-10-21",
                                max_retries=0)
    completion = client.chat.completions.create(model="my-gpt4o", messages=MESSAGES)
    request = provider_server.last_request
    assert request.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert request.query == {"api-version": "2024-10-21"} and request.headers["api-key"] == "k"
    assert completion.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model="my-gpt4o", messages=MESSAGES, stream=True))
    assert chunks[0].choices == []  # Azure's content-filter chunk comes first


# --- Groq -------------------------------------------------------------------------------------------


def test_groq_non_stream_and_x_groq_stream_usage(provider_server: ProviderServer, groq_client: Any) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=40, output_tokens=60)), times=2)
    completion = groq_client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    assert provider_server.last_request.path == "/openai/v1/chat/completions"
    assert completion.usage.total_tokens == 100 and completion.usage.queue_time is not None
    chunks = list(groq_client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True))
    assert chunks[0].x_groq.id
    assert chunks[-1].x_groq.usage.prompt_tokens == 40 and chunks[-1].x_groq.usage.completion_tokens == 60


def test_groq_errors_and_cut_stream(provider_server: ProviderServer, groq_client: Any) -> None:
    provider_server.enqueue(Scenario(status=429, retry_after=1), Scenario(cut_after=2))
    with pytest.raises(groq.RateLimitError):
        groq_client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    with pytest.raises((groq.APIConnectionError, httpx.RemoteProtocolError)):
        list(groq_client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True))


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_non_stream_usage_with_cache_split(provider_server: ProviderServer, anthropic_client: Any) -> None:
    provider_server.set_next(usage=Usage(input_tokens=12, output_tokens=34, cached_tokens=1000,
                                         cache_creation_5m=200, cache_creation_1h=300), service_tier="priority")
    message = anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (12, 34, 1000)
    assert usage.cache_creation_input_tokens == 500
    cache_creation = usage.cache_creation
    assert (cache_creation.ephemeral_5m_input_tokens, cache_creation.ephemeral_1h_input_tokens) == (200, 300)
    assert usage.service_tier == "priority"


def test_anthropic_stream_and_beta(provider_server: ProviderServer, anthropic_client: Any) -> None:
    provider_server.set_next(usage=Usage(input_tokens=21, output_tokens=43))
    with anthropic_client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello") and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 43)
    events = [e.type for e in anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES,
                                                               stream=True)]
    # The server also sends a ``ping`` after content_block_start; the SDK drops pings.
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-2:] == ["message_delta", "message_stop"]
    beta = anthropic_client.beta.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert beta.usage.output_tokens > 0 and provider_server.last_request.path == "/v1/messages"


def test_anthropic_errors_raise_sdk_types(provider_server: ProviderServer, anthropic_client: Any) -> None:
    provider_server.enqueue(Scenario(status=529), Scenario(status=429, retry_after=3), Scenario(error_after=3),
                            Scenario(cut_after=3))
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as rate:
        anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert rate.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True))
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        list(anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True))


# --- Gemini -----------------------------------------------------------------------------------------


def test_gemini_generate_and_stream_usage(provider_server: ProviderServer, gemini_client: Any) -> None:
    usage = Usage(input_tokens=100, output_tokens=50, reasoning_tokens=200, cached_tokens=64)
    provider_server.enqueue(Scenario(usage=usage, response_model="gemini-2.5-flash-001"), times=2)
    response = gemini_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert provider_server.last_request.path == "/v1/models/gemini-2.5-flash:generateContent"
    meta = response.usage_metadata
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count) == (100, 50, 200)
    assert meta.cached_content_token_count == 64 and meta.total_token_count == 350
    assert response.model_version == "gemini-2.5-flash-001" and response.response_id
    chunks = list(gemini_client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert provider_server.last_request.query == {"alt": "sse"}
    assert "".join(c.text for c in chunks).startswith("Hello")
    assert chunks[-1].usage_metadata.candidates_token_count == 50


def test_gemini_embed_errors_and_cut(provider_server: ProviderServer, gemini_client: Any) -> None:
    embedded = gemini_client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert len(embedded.embeddings) == 2 and provider_server.last_request.path.endswith(":batchEmbedContents")
    provider_server.enqueue(Scenario(status=429, retry_after=5), Scenario(cut_after=2))
    with pytest.raises(google.genai.errors.ClientError) as error:
        gemini_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert error.value.code == 429 and error.value.status == "RESOURCE_EXHAUSTED"
    assert provider_server.request_count == 2  # no SDK retries
    with pytest.raises((httpx2.RemoteProtocolError, httpx.RemoteProtocolError, google.genai.errors.APIError)):
        list(gemini_client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))


def test_vertex_paths_offline(provider_server: ProviderServer, vertex_client: Any) -> None:
    response = vertex_client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    request = provider_server.last_request
    assert request.path == ("/v1beta1/projects/test-project/locations/us-central1/publishers/google/models/"
                            "gemini-2.5-pro:generateContent")
    assert request.headers["authorization"] == "Bearer test-token"
    assert response.usage_metadata.prompt_token_count > 0
    embedded = vertex_client.models.embed_content(model="text-embedding-005", contents=["a"])
    assert provider_server.last_request.path.endswith("text-embedding-005:predict")
    assert embedded.embeddings[0].statistics.token_count == 1
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=provider_server.base_url)
    express = genai.Client(vertexai=True, api_key="k", http_options=options)  # Vertex express mode
    list(express.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    path = provider_server.last_request.path
    assert path == "/v1beta1/publishers/google/models/gemini-2.5-flash:streamGenerateContent"


# --- Ollama -----------------------------------------------------------------------------------------


def test_ollama_chat_generate_embed(provider_server: ProviderServer, ollama_client: Any) -> None:
    provider_server.enqueue(Scenario(usage=Usage(input_tokens=26, output_tokens=298)), times=2)
    response = ollama_client.chat(model="llama3.2", messages=MESSAGES)
    assert isinstance(response, ollama.ChatResponse)
    assert (response.prompt_eval_count, response.eval_count, response.done) == (26, 298, True)
    chunks = list(ollama_client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert not chunks[0].done and chunks[-1].done and chunks[-1].eval_count == 298
    assert "".join(c.message.content for c in chunks).startswith("Hello")
    assert ollama_client.generate(model="llama3.2", prompt="hi").eval_count > 0
    assert ollama_client.embed(model="nomic-embed-text", input=["a", "b"]).prompt_eval_count == 2
    assert len(ollama_client.embeddings(model="nomic-embed-text", prompt="a").embedding) == 8


def test_ollama_errors_and_cut(provider_server: ProviderServer, ollama_client: Any) -> None:
    provider_server.enqueue(Scenario(status=404), Scenario(error_after=2), Scenario(cut_after=2))
    with pytest.raises(ollama.ResponseError) as missing:
        ollama_client.chat(model="nope", messages=MESSAGES)
    assert missing.value.status_code == 404 and "nope" in missing.value.error
    with pytest.raises(ollama.ResponseError):
        list(ollama_client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    with pytest.raises(httpx.RemoteProtocolError):
        list(ollama_client.chat(model="llama3.2", messages=MESSAGES, stream=True))


def test_ollama_openai_compatible_endpoint(provider_server: ProviderServer) -> None:
    client = openai.OpenAI(base_url=provider_server.base_url + "/v1", api_key="ollama", max_retries=0)
    completion = client.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert completion.model == "llama3.2" and completion.usage.completion_tokens > 0
