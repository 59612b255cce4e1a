"""Lookup normalisation: the names spans carry, resolved to the right catalog entry."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from costspan.facts import Usage
from costspan.pricing import PRICED
from costspan.pricing.fileformat import load_table
from costspan.pricing.genai import GenaiCatalog
from costspan.pricing.names import candidates, canonical_provider, vendor
from costspan.pricing.pricer import SNAPSHOT_PATH, LayeredPricer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture(scope="module")
def pricer() -> LayeredPricer:
    return LayeredPricer(
        genai=GenaiCatalog.load(),
        snapshot=load_table(SNAPSHOT_PATH, "litellm-snapshot"),
        aliases={"prod-chat-eastus": "gpt-4o-mini"},
    )


@pytest.mark.parametrize(
    ("provider", "model", "key", "total_usd"),
    [
        # dated suffixes
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", 0.75),
        # (a million input tokens is above Sonnet 4.5's 200k tier: $6 in, $22.50 out)
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5", 28.5),
        # a dated version with its own (older, higher) price keeps it
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13", 20),
        # vendor prefixes: OpenRouter's own entry, or the vendor's list price when it has none
        ("openrouter", "anthropic/claude-sonnet-4.5", "openrouter/anthropic/claude-sonnet-4.5", 28.5),
        ("openrouter", "anthropic/claude-opus-4-1-20250805", "anthropic/claude-opus-4-1", 90),
        # Groq serves OpenAI's open-weight model at Groq's own price
        ("groq", "openai/gpt-oss-20b", "groq/openai/gpt-oss-20b", 0.375),
        # Bedrock inference profiles: region prefix, ARN
        ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", None, 18),
        ("aws.bedrock", "arn:aws:bedrock:us-east-1:1234:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
         None, 4.8),
        # resource paths
        ("gcp.gemini", "models/gemini-2.5-flash", "google/gemini-2.5-flash", 2.8),
        ("gcp.vertex_ai", "publishers/google/models/gemini-2.5-flash", "google/gemini-2.5-flash", 2.8),
        # Azure: borrowed OpenAI entry; a deployment name mapped through pricing.aliases
        ("azure.ai.openai", "gpt-4o", "openai/gpt-4o", 12.5),
        ("azure.ai.openai", "prod-chat-eastus", "openai/gpt-4o-mini", 0.75),
        # provider spellings
        ("xai", "grok-4", "x-ai/grok-4-0709", 18),
        ("mistral", "mistral-large-latest", "mistral/mistral-large", 8),
        # a gateway costspan does not know: the model family's vendor price
        ("my-gateway", "gpt-4o-mini", "openai/gpt-4o-mini", 0.75),
        ("", "claude-opus-4-1", "anthropic/claude-opus-4-1", 90),
        # -latest aliases genai-prices lacks come from the snapshot
        ("x_ai", "grok-4.20-reasoning-latest", "x_ai/grok-4.20-reasoning-latest", None),
    ],
)
def test_resolves(pricer: LayeredPricer, provider: str, model: str, key: str | None, total_usd: float | None) -> None:
    quote = pricer.quote(provider, model, MILLION, at=NOW)
    assert quote.status == PRICED, quote.reason
    if key is not None:
        assert quote.key == key
    if total_usd is not None:
        assert quote.total_nanos == round(total_usd * 1_000_000_000)


def test_candidates_most_specific_first() -> None:
    assert candidates("ft:gpt-4o-mini-2024-07-18:org::id") == (
        "ft:gpt-4o-mini-2024-07-18:org::id",
        "ft:gpt-4o-mini-2024-07-18",
        "ft:gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini",
    )
    assert candidates("us.anthropic.claude-3-5-sonnet-20241022-v2:0")[:3] == (
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "claude-3-5-sonnet-20241022-v2:0",
    )
    assert "claude-3-5-sonnet" in candidates("us.anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert candidates("Mistral-Large-Latest") == ("mistral-large-latest", "mistral-large")
    assert candidates("gemini-2.0-flash-001") == ("gemini-2.0-flash-001", "gemini-2.0-flash")
    assert candidates("gpt-3.5-turbo-0125") == ("gpt-3.5-turbo-0125", "gpt-3.5-turbo")


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("azure", "azure.ai.openai"), ("Google", "gcp.gemini"), ("bedrock", "aws.bedrock"), ("x-ai", "x_ai"),
     ("mistralai", "mistral_ai"), ("together_ai", "together"), ("openai", "openai"), (None, "")],
)
def test_provider_spellings(spelling: str | None, canonical: str) -> None:
    assert canonical_provider(spelling) == canonical


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4o", "openai"), ("o3-mini", "openai"), ("gpt-oss-20b", None), ("anthropic/claude-3.5-sonnet", "anthropic"),
     ("us.anthropic.claude-3-haiku-20240307-v1:0", "anthropic"), ("gemini-2.5-pro", "gcp.gemini"),
     ("grok-4", "x_ai"), ("codestral-latest", "mistral_ai"), ("meta-llama/llama-3.3-70b", None),
     ("ft:gpt-4o-mini:org::x", "openai")],
)
def test_vendor(model: str, expected: str | None) -> None:
    assert vendor(model) == expected


def test_hosts_never_borrow_a_vendor_price(pricer: LayeredPricer) -> None:
    """Groq sets its own prices: a model it does not list is unpriced, not priced as OpenAI's."""
    assert pricer.quote("groq", "gpt-4o-mini", MILLION, at=NOW).status == "unpriced"
