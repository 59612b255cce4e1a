"""Exact costs of real models, computed by hand from the providers' published prices.

Every expected figure below is worked out in the comment next to it (USD per million tokens x
tokens, in nano-dollars: 1 USD = 1e9). The pricer uses the real genai-prices catalog and the
bundled snapshot: no mocks, so a catalog update that changes a price fails here loudly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from costspan.facts import Usage
from costspan.pricing import FREE, PRICED, UNPRICED, Quote
from costspan.pricing.fileformat import load_table
from costspan.pricing.genai import GenaiCatalog
from costspan.pricing.pricer import SNAPSHOT_PATH, LayeredPricer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def pricer() -> LayeredPricer:
    return LayeredPricer(genai=GenaiCatalog.load(), snapshot=load_table(SNAPSHOT_PATH, "litellm-snapshot"))


def parts(quote: Quote) -> tuple[int, int, int, int]:
    return quote.input_nanos, quote.cache_read_nanos, quote.cache_write_nanos, quote.output_nanos


# -- provider families: the usage each API reports, normalised the semconv way, then priced -------

# OpenAI: prompt_tokens INCLUDE cached_tokens; completion_tokens INCLUDE reasoning_tokens.
# raw {"prompt_tokens": 10000, "prompt_tokens_details": {"cached_tokens": 4000}, "completion_tokens": 2000}
OPENAI_CACHED = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000)
# Anthropic: input_tokens EXCLUDES cache reads and writes (semconv adds them back); cache_creation
# splits writes into 5-minute and 1-hour. raw {"input_tokens": 3000, "cache_read_input_tokens": 3000,
# "cache_creation_input_tokens": 4000, "cache_creation": {"ephemeral_5m_input_tokens": 3000,
# "ephemeral_1h_input_tokens": 1000}, "output_tokens": 500}
ANTHROPIC_CACHED = Usage(
    input_tokens=10_000,
    output_tokens=500,
    cache_read_tokens=3_000,
    cache_write_tokens=4_000,
    cache_write_1h_tokens=1_000,
)
# Gemini: promptTokenCount INCLUDES cachedContentTokenCount; thoughtsTokenCount is reported apart
# from candidatesTokenCount and billed as output (semconv output = candidates + thoughts).
# raw {"promptTokenCount": 250000, "cachedContentTokenCount": 50000, "candidatesTokenCount": 600,
# "thoughtsTokenCount": 400}
GEMINI_LONG = Usage(input_tokens=250_000, output_tokens=1_000, cache_read_tokens=50_000, reasoning_tokens=400)


@pytest.mark.parametrize(
    ("provider", "model", "usage", "tier", "expected", "key"),
    [
        # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out.
        # 6,000 uncached x 0.15 = 900,000n; 4,000 cached x 0.075 = 300,000n; 2,000 out x 0.60 = 1,200,000n
        ("openai", "gpt-4o-mini", OPENAI_CACHED, None, (900_000, 300_000, 0, 1_200_000), "openai/gpt-4o-mini"),
        # dated name, same entry
        ("openai", "gpt-4o-mini-2024-07-18", OPENAI_CACHED, None, (900_000, 300_000, 0, 1_200_000), None),
        # batch: $0.075 in, $0.30 out; no batch cache price, so cached stays $0.075
        # 6,000 x 0.075 = 450,000n; 4,000 x 0.075 = 300,000n; 2,000 x 0.30 = 600,000n
        ("openai", "gpt-4o-mini", OPENAI_CACHED, "batch", (450_000, 300_000, 0, 600_000), "openai/gpt-4o-mini"),
        # priority: $0.25 in, $0.125 cached, $1.00 out
        ("openai", "gpt-4o-mini", OPENAI_CACHED, "priority", (1_500_000, 500_000, 0, 2_000_000), "openai/gpt-4o-mini"),
        # claude-opus-4-1: $15 in, $1.50 read, $18.75 5m write, $30 1h write, $75 out.
        # 3,000 uncached x 15 = 45,000,000n; 3,000 read x 1.5 = 4,500,000n;
        # 3,000 x 18.75 + 1,000 x 30 = 56,250,000 + 30,000,000 = 86,250,000n; 500 x 75 = 37,500,000n
        (
            "anthropic",
            "claude-opus-4-1-20250805",
            ANTHROPIC_CACHED,
            None,
            (45_000_000, 4_500_000, 86_250_000, 37_500_000),
            "anthropic/claude-opus-4-1",
        ),
        # gemini-2.5-pro above 200k input: the WHOLE request at $2.50 in, $0.25 cached, $15 out.
        # 200,000 x 2.5 = 500,000,000n; 50,000 x 0.25 = 12,500,000n; 1,000 x 15 (thoughts included) = 15,000,000n
        (
            "gcp.gemini",
            "gemini-2.5-pro",
            GEMINI_LONG,
            None,
            (500_000_000, 12_500_000, 0, 15_000_000),
            "google/gemini-2.5-pro",
        ),
        # exactly 200k is not above the threshold: $1.25 in, $0.125 cached, $10 out.
        # 150,000 x 1.25 = 187,500,000n; 50,000 x 0.125 = 6,250,000n; 1,000 x 10 = 10,000,000n
        (
            "gcp.gemini",
            "models/gemini-2.5-pro",
            Usage(input_tokens=200_000, output_tokens=1_000, cache_read_tokens=50_000),
            None,
            (187_500_000, 6_250_000, 0, 10_000_000),
            "google/gemini-2.5-pro",
        ),
        # gpt-5 flex: $0.625 in, $0.0625 cached, $5 out (standard is twice that).
        # 80,000 x 0.625 = 50,000,000n; 20,000 x 0.0625 = 1,250,000n; 10,000 x 5 = 50,000,000n
        (
            "openai",
            "gpt-5",
            Usage(input_tokens=100_000, output_tokens=10_000, cache_read_tokens=20_000),
            "flex",
            (50_000_000, 1_250_000, 0, 50_000_000),
            "openai/gpt-5",
        ),
        # text-embedding-3-small $0.02: 1,234 x 0.02 = 24,680n; -3-large $0.13: 160,420n
        ("openai", "text-embedding-3-small", Usage(input_tokens=1_234), None, (24_680, 0, 0, 0), None),
        ("openai", "text-embedding-3-large", Usage(input_tokens=1_234), None, (160_420, 0, 0, 0), None),
        # three tokens of an embedding still cost something: 3 x 0.02 = 60n
        ("openai", "text-embedding-3-small", Usage(input_tokens=3), None, (60, 0, 0, 0), None),
        # Groq's gpt-oss-20b: $0.075 in, $0.0375 cached (37.5n a token).
        # 1 uncached = 75n; 3 cached = 112.5n; exact total 187.5n rounds half-even to 188n
        (
            "groq",
            "openai/gpt-oss-20b",
            Usage(input_tokens=4, cache_read_tokens=3),
            None,
            (75, 113, 0, 0),
            "groq/openai/gpt-oss-20b",
        ),
    ],
)
def test_exact_cost(
    pricer: LayeredPricer,
    provider: str,
    model: str,
    usage: Usage,
    tier: str | None,
    expected: tuple[int, int, int, int],
    key: str | None,
) -> None:
    quote = pricer.quote(provider, model, usage, at=NOW, service_tier=tier)
    assert quote.status == PRICED
    assert parts(quote) == expected
    assert quote.total_nanos == sum(expected)
    assert quote.source is not None and quote.source.startswith("genai-prices ")
    if key is not None:
        assert quote.key == key


def test_reasoning_is_part_of_output_never_added(pricer: LayeredPricer) -> None:
    # o3 since 2025-06-10: $2 in, $8 out. 5,000 x 2 = 10,000,000n; 12,000 out x 8 = 96,000,000n,
    # the 10,000 reasoning tokens included, whether or not they are reported.
    with_reasoning = pricer.quote("openai", "o3", Usage(5_000, 12_000, reasoning_tokens=10_000), at=NOW)
    without = pricer.quote("openai", "o3", Usage(5_000, 12_000), at=NOW)
    assert parts(with_reasoning) == parts(without) == (10_000_000, 0, 0, 96_000_000)


def test_price_history_prices_a_call_at_its_own_date(pricer: LayeredPricer) -> None:
    # o3 cost $10 in / $40 out until 2025-06-09: 5,000 x 10 = 50,000,000n; 12,000 x 40 = 480,000,000n
    before = pricer.quote("openai", "o3", Usage(5_000, 12_000), at=datetime(2025, 6, 9, 23, tzinfo=timezone.utc))
    after = pricer.quote("openai", "o3", Usage(5_000, 12_000), at=datetime(2025, 6, 10, 1, tzinfo=timezone.utc))
    assert parts(before) == (50_000_000, 0, 0, 480_000_000)
    assert parts(after) == (10_000_000, 0, 0, 96_000_000)


def test_time_of_day_prices(pricer: LayeredPricer) -> None:
    # deepseek-chat: $0.27 in, $0.07 cached, $1.10 out from 00:30 to 16:30 UTC; half that otherwise.
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=200_000)
    peak = pricer.quote("deepseek", "deepseek-chat", usage, at=datetime(2026, 11, 20, 2, tzinfo=timezone.utc))
    off = pricer.quote("deepseek", "deepseek-chat", usage, at=datetime(2026, 11, 20, 20, tzinfo=timezone.utc))
    assert parts(peak) == (216_000_000, 14_000_000, 0, 110_000_000)  # 800k x .27, 200k x .07, 100k x 1.1
    assert parts(off) == (108_000_000, 7_000_000, 0, 55_000_000)


def test_batch_applies_to_long_context_tiers(pricer: LayeredPricer) -> None:
    # claude-sonnet-4-5 batch above 200k: $3 in, $0.30 read, $3.75 write, $6 1h write, $11.25 out.
    usage = Usage(300_000, 1_000, cache_read_tokens=1_000, cache_write_tokens=2_000, cache_write_1h_tokens=500)
    quote = pricer.quote("anthropic", "claude-sonnet-4-5", usage, at=NOW, service_tier="batch")
    # 297,000 x 3 = 891,000,000n; 1,000 x .3 = 300,000n; 1,500 x 3.75 + 500 x 6 = 8,625,000n; 1,000 x 11.25
    assert parts(quote) == (891_000_000, 300_000, 8_625_000, 11_250_000)


def test_azure_batch_discount_kept_for_borrowed_entries(pricer: LayeredPricer) -> None:
    # Azure's gpt-4o is OpenAI's entry; batch halves it ($1.25 in, $5 out) on Azure too.
    quote = pricer.quote("azure.ai.openai", "gpt-4o", Usage(1_000, 1_000), at=NOW, service_tier="batch")
    assert quote.key == "openai/gpt-4o"
    assert parts(quote) == (1_250_000, 0, 0, 5_000_000)


def test_images_priced_per_image_from_the_snapshot(pricer: LayeredPricer) -> None:
    # imagen-3.0-generate-001 (genai-prices lacks it): $0.04 an image; 3 images = 120,000,000n of output
    quote = pricer.quote("gcp.gemini", "imagen-3.0-generate-001", Usage(images=3), at=NOW)
    assert quote.status == PRICED
    assert parts(quote) == (0, 0, 0, 120_000_000)
    assert quote.source is not None and quote.source.startswith("litellm-snapshot ")


def test_fine_tune_priced_as_its_fine_tuned_base(pricer: LayeredPricer) -> None:
    # genai-prices' ft:gpt-4o-mini: $0.30 in, $1.20 out (twice the base model's).
    quote = pricer.quote("openai", "ft:gpt-4o-mini-2024-07-18:acme::9abc", Usage(1_000_000, 1_000_000), at=NOW)
    assert (quote.key, quote.total_nanos) == ("openai/ft:gpt-4o-mini", 1_500_000_000)
    # ft:gpt-4.1 only in the snapshot: $3 in, $12 out
    quote = pricer.quote("openai", "ft:gpt-4.1-2025-04-14:acme:x:1a2b", Usage(1_000_000, 1_000_000), at=NOW)
    assert (quote.key, quote.total_nanos) == ("openai/ft:gpt-4.1-2025-04-14", 15_000_000_000)
    # no fine-tune price anywhere: the base model's ($0.25 in, $2 out for gpt-5-mini)
    quote = pricer.quote("openai", "ft:gpt-5-mini-2025-08-07:acme::z", Usage(1_000_000, 1_000_000), at=NOW)
    assert (quote.key, quote.total_nanos) == ("openai/gpt-5-mini", 2_250_000_000)


def test_unknown_model_is_unpriced_never_free_and_logged_once(
    pricer: LayeredPricer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="costspan"):
        first = pricer.quote("openai", "gpt-nonexistent-9", Usage(100, 100), at=NOW)
        second = pricer.quote("openai", "gpt-nonexistent-9", Usage(100, 100), at=NOW)
    assert first.status == second.status == UNPRICED
    assert first.total_nanos == 0 and first.key is None
    assert first.reason is not None and "gpt-nonexistent-9" in first.reason
    logged = [r for r in caplog.records if "gpt-nonexistent-9" in r.getMessage()]
    assert len(logged) == 1


def test_entries_priced_only_per_page_are_unpriced(pricer: LayeredPricer) -> None:
    # mistral-ocr-latest is priced per page: no token price to charge, so unpriced, not $0.
    assert pricer.quote("mistral_ai", "mistral-ocr-latest", Usage(1_000, 100), at=NOW).status == UNPRICED


@pytest.mark.parametrize(
    ("provider", "model", "address"),
    [
        ("ollama", "llama3.2:3b", None),
        ("ollama", "llama3.2:3b", "127.0.0.1"),
        ("vllm", "gpt-4o-mini", "localhost"),  # a local server is free whatever the model is called
        ("openai", "qwen2.5-coder", "localhost"),  # an OpenAI-compatible local server
        ("ollama", "llama3.2:3b", "192.168.1.20"),  # a self-hosted Ollama elsewhere on the network
    ],
)
def test_local_models_are_free(pricer: LayeredPricer, provider: str, model: str, address: str | None) -> None:
    quote = pricer.quote(provider, model, Usage(1_000, 1_000), server_address=address)
    assert quote.status == FREE
    assert quote.total_nanos == 0
    assert quote.source == "local"


def test_ollama_cloud_models_are_billed_so_unpriced_without_a_price(pricer: LayeredPricer) -> None:
    for model, address in (("gpt-oss:120b-cloud", "127.0.0.1"), ("gpt-oss:120b", "ollama.com")):
        quote = pricer.quote("ollama", model, Usage(1_000, 1_000), server_address=address)
        assert quote.status == UNPRICED, model
        assert quote.reason is not None and "Ollama cloud" in quote.reason


def test_parts_follow_the_catalog_not_the_order_of_calls(pricer: LayeredPricer) -> None:
    """Memoisation must not leak one call's tier or time into the next."""
    usage = Usage(5_000, 12_000)
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert pricer.quote("openai", "o3", usage, at=old).total_nanos == 530_000_000
    assert pricer.quote("openai", "o3", usage, at=NOW).total_nanos == 106_000_000
    assert pricer.quote("openai", "o3", usage, at=old).total_nanos == 530_000_000
    assert pricer.quote("openai", "o3", usage, at=NOW, service_tier="batch").total_nanos == 53_000_000
    assert pricer.quote("openai", "o3", usage, at=NOW).total_nanos == 106_000_000


def test_family_usage_is_what_the_instrumentors_produce() -> None:
    """The raw usages in the comments above, through the instrumentors' own normalisation."""
    openai_format = pytest.importorskip("costspan.instrumentation._openai_format")
    anthropic_format = pytest.importorskip("costspan.instrumentation.anthropic")
    raw_openai = {
        "prompt_tokens": 10_000,
        "prompt_tokens_details": {"cached_tokens": 4_000},
        "completion_tokens": 2_000,
    }
    raw_anthropic = {
        "input_tokens": 3_000,
        "cache_read_input_tokens": 3_000,
        "cache_creation_input_tokens": 4_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 3_000, "ephemeral_1h_input_tokens": 1_000},
        "output_tokens": 500,
    }
    assert openai_format.usage_from(raw_openai) == OPENAI_CACHED
    assert anthropic_format.usage_from(raw_anthropic) == ANTHROPIC_CACHED
