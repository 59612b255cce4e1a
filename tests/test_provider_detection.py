"""The provider behind a base URL, for every OpenAI-compatible endpoint users point the SDK at."""

from __future__ import annotations

import pytest

from costspan.providers import Endpoint, detect, is_local_endpoint, named_provider, parse_overrides


@pytest.mark.parametrize(
    ("url", "provider", "local"),
    [
        (None, "openai", False),
        ("https://api.openai.com/v1", "openai", False),
        ("https://my-res.openai.azure.com/openai/deployments/gpt4o", "azure.ai.openai", False),
        ("https://my-res.cognitiveservices.azure.com/openai/v1", "azure.ai.openai", False),
        ("https://openrouter.ai/api/v1", "openrouter", False),
        ("https://api.groq.com/openai/v1", "groq", False),
        ("https://models.github.ai/inference", "github", False),
        ("https://models.inference.ai.azure.com", "github", False),
        ("https://api.deepseek.com/v1", "deepseek", False),
        ("https://api.together.xyz/v1", "together", False),
        ("https://api.fireworks.ai/inference/v1", "fireworks", False),
        ("https://api.mistral.ai/v1", "mistral_ai", False),
        ("https://api.x.ai/v1", "x_ai", False),
        ("https://api.perplexity.ai", "perplexity", False),
        ("http://localhost:11434/v1", "ollama", True),
        ("http://127.0.0.1:8000/v1", "vllm", True),
        ("http://localhost:1234/v1", "lmstudio", True),
        ("http://[::1]:9999/v1", "local", True),
        ("https://llm-gateway.example.internal/v1", "openai", False),
    ],
)
def test_base_url_names_the_provider(url: str | None, provider: str, local: bool) -> None:
    endpoint = detect(url)
    assert (endpoint.provider, endpoint.local) == (provider, local)


def test_the_sdk_default_is_kept_for_unknown_hosts_and_local_servers_of_that_sdk() -> None:
    assert detect("https://proxy.corp/anthropic", "anthropic").provider == "anthropic"
    assert detect("http://localhost:11434", "ollama") == Endpoint("ollama", "localhost", 11434, True)
    assert detect("http://localhost:8000/v1", "anthropic") == Endpoint("anthropic", "localhost", 8000, True)


def test_configured_endpoints_win_and_are_never_free() -> None:
    overrides = parse_overrides("http://127.0.0.1:9000/v1=openai, https://gw.corp/llm=anthropic")
    endpoint = detect("http://127.0.0.1:9000/v1", "openai", overrides)
    assert endpoint.provider == "openai" and not endpoint.local
    assert detect("https://gw.corp/llm/v1", "openai", overrides).provider == "anthropic"


def test_bad_endpoint_spec_is_an_error() -> None:
    with pytest.raises(ValueError, match="URL=provider"):
        parse_overrides("http://127.0.0.1:9000")


def test_a_loopback_endpoint_named_local_stays_local_and_one_named_as_a_biller_does_not() -> None:
    overrides = parse_overrides("http://localhost:8000=local, http://localhost:4000=openai")
    assert named_provider("localhost", 8000, overrides) == "local"
    assert named_provider("localhost", 9999, overrides) is None
    assert detect("http://localhost:8000/v1", "openai", overrides).local
    assert is_local_endpoint("localhost", 8000, "openai", overrides)
    assert not is_local_endpoint("localhost", 4000, "openai", overrides)
    assert is_local_endpoint("127.0.0.1", 4000, "openai")  # unnamed loopback: local (priced by model name)
