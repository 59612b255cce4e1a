"""Price files: the user's overrides, imported LiteLLM maps, the bundled snapshot, and their errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from costspan.errors import ConfigError
from costspan.facts import Usage
from costspan.pricing import FREE, PRICED, UNPRICED
from costspan.pricing.config import pricing_config
from costspan.pricing.fileformat import load_table, parse_table
from costspan.pricing.genai import GenaiCatalog
from costspan.pricing.importer import import_file
from costspan.pricing.pricer import SNAPSHOT_PATH, LayeredPricer, build, build_pricer
from costspan.settings import Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

USER_PRICES = """\
source: acme contract
models:
  - match: {provider: openai, model: gpt-4o-mini}
    input: 0.10
    output: 0.40
  - key: acme/long-model
    match: {model_regex: 'acme-long(-\\d+)?'}
    input: 1
    cached_input: 0.1
    output: 2
    tiers:
      - {above: 100000, input: 2, output: 4}
    service_tiers:
      batch: {input: 0.5, output: 1}
  - key: openai/o3
    match: {provider: openai, model: o3}
    effective: 2027-01-01
    input: 1
    output: 4
  - match: {provider: ollama, model: [llama3.2, gpt-oss:120b-cloud]}
    input: 0.05
    output: 0.05
    per_request: 0.001
  - match: {provider: openai, model: acme-image}
    per_image: 0.04
"""


def settings_with(tmp_path: Path, pricing: dict[str, object]) -> Settings:
    return Settings(source=str(tmp_path / "costspan.yaml"), raw={"pricing": pricing})


@pytest.fixture
def user_pricer(tmp_path: Path) -> LayeredPricer:
    (tmp_path / "prices.yaml").write_text(USER_PRICES)
    settings = settings_with(tmp_path, {"files": ["prices.yaml"], "import_dir": str(tmp_path / "imports")})
    return build(pricing_config(settings))


def test_user_file_beats_the_catalog(user_pricer: LayeredPricer, tmp_path: Path) -> None:
    quote = user_pricer.quote("openai", "gpt-4o-mini-2024-07-18", MILLION, at=NOW)
    # 1M x 0.10 + 1M x 0.40 = 500,000,000n (genai-prices says 750,000,000n)
    assert (quote.status, quote.total_nanos, quote.key) == (PRICED, 500_000_000, "openai/gpt-4o-mini")
    assert quote.source == f"user:{tmp_path / 'prices.yaml'} (acme contract)"


def test_user_regex_tiers_and_service_tiers(user_pricer: LayeredPricer) -> None:
    small = user_pricer.quote("openai", "acme-long-2", Usage(100_000, 10_000, cache_read_tokens=10_000), at=NOW)
    # 90,000 x 1 = 90,000,000n; 10,000 x .1 = 1,000,000n; 10,000 x 2 = 20,000,000n
    assert (small.input_nanos, small.cache_read_nanos, small.output_nanos) == (90_000_000, 1_000_000, 20_000_000)
    big = user_pricer.quote("anthropic", "acme-long", Usage(100_001, 10_000), at=NOW)
    # above 100,000 the whole request: 100,001 x 2 = 200,002,000n; cached at the base .1 (no tier price); 10,000 x 4
    assert (big.key, big.input_nanos, big.output_nanos) == ("acme/long-model", 200_002_000, 40_000_000)
    batch = user_pricer.quote("openai", "acme-long", Usage(1_000, 1_000), at=NOW, service_tier="batch")
    assert batch.total_nanos == 500_000 + 1_000_000


def test_user_price_with_an_effective_date_falls_through_before_it(user_pricer: LayeredPricer, tmp_path: Path) -> None:
    before = user_pricer.quote("openai", "o3", Usage(1_000_000, 0), at=NOW)
    after = user_pricer.quote("openai", "o3", Usage(1_000_000, 0), at=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert before.source is not None and before.source.startswith("genai-prices ")
    assert before.total_nanos == 2_000_000_000
    assert (after.source, after.total_nanos) == (f"user:{tmp_path / 'prices.yaml'} (acme contract)", 1_000_000_000)


def test_local_model_priced_only_by_the_user(user_pricer: LayeredPricer) -> None:
    priced = user_pricer.quote("ollama", "llama3.2", Usage(1_000_000, 0), server_address="127.0.0.1")
    assert (priced.status, priced.total_nanos) == (PRICED, 50_000_000 + 1_000_000)  # tokens + one request
    assert user_pricer.quote("ollama", "qwen3", Usage(1_000_000, 0)).status == FREE
    cloud = user_pricer.quote("ollama", "gpt-oss:120b-cloud", Usage(1_000_000, 0), server_address="localhost")
    assert cloud.status == PRICED


def test_per_image_price(user_pricer: LayeredPricer) -> None:
    quote = user_pricer.quote("openai", "acme-image", Usage(images=2), at=NOW)
    assert (quote.output_nanos, quote.total_nanos) == (80_000_000, 80_000_000)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("models: {}", "models", "expected a list"),
        ("models:\n  - match: {model: x}\n    input: -1", "models[0].input", "non-negative"),
        ("models:\n  - match: {model: x}\n    input: cheap", "models[0].input", "non-negative"),
        ("models:\n  - key: k\n    match: {model: x}\n    inptu: 1", "models[0] (k).inptu", "unknown key"),
        ("models:\n  - match: {model: x}", "models[0]", "no price"),
        ("models:\n  - input: 1", "models[0].match", "expected a mapping"),
        ("models:\n  - match: {model_regex: '('}\n    input: 1", "models[0].match.model_regex", "invalid regular"),
        ("models:\n  - match: {model: x, model_regex: x}\n    input: 1", "models[0].match", "exactly one"),
        ("models:\n  - match: {model: x}\n    input: 1\n    effective: soon", "models[0].effective", "a date"),
        (
            "models:\n  - match: {model: x}\n    input: 1\n    tiers: [{above: 10, input: 2}, {above: 5, input: 3}]",
            "models[0].tiers[1].above",
            "increasing",
        ),
        ("models:\n  - match: {model: x}\n    input: 1\n    service_tiers: {batch: {inptu: 1}}",
         "models[0].service_tiers.batch.inptu", "unknown key"),
        ("models: [\n", "line 2", "malformed YAML"),
    ],
)
def test_bad_file_names_file_entry_and_problem(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_table(path, "user")
    assert caught.value.source == str(path)
    assert caught.value.key.startswith(where)
    assert problem in caught.value.problem


def test_bad_user_file_fails_the_build_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text("models:\n  - match: {model: x}\n    output: -2\n")
    with pytest.raises(ConfigError, match=r"prices\.yaml: models\[0\]\.output"):
        build_pricer(settings_with(tmp_path, {"files": ["prices.yaml"]}))
    with pytest.raises(ConfigError, match="cannot read"):
        build_pricer(settings_with(tmp_path, {"files": ["missing.yaml"]}))


@pytest.mark.parametrize(
    ("pricing", "key"),
    [
        ({"files": 3}, "pricing.files"),
        ({"aliases": ["a"]}, "pricing.aliases"),
        ({"snapshot": "yes"}, "pricing.snapshot"),
        ({"colour": "blue"}, "pricing.colour"),
    ],
)
def test_bad_pricing_settings(tmp_path: Path, pricing: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pricing_config(settings_with(tmp_path, pricing))
    assert caught.value.key == key


LITELLM_MAP = {
    "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "one of ..."},
    "gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 9.9e-05,
                    "output_cost_per_token": 9.9e-05},
    "acme-chat-latest": {
        "litellm_provider": "openai",
        "mode": "chat",
        "input_cost_per_token": 1e-06,
        "cache_read_input_token_cost": 1e-07,
        "cache_creation_input_token_cost": 1.25e-06,
        "cache_creation_input_token_cost_above_1hr": 2e-06,
        "output_cost_per_token": 4e-06,
        "input_cost_per_token_above_200k_tokens": 2e-06,
        "output_cost_per_token_above_200k_tokens": 6e-06,
        "input_cost_per_token_batches": 5e-07,
        "output_cost_per_token_batches": 2e-06,
    },
    "groq/acme-oss": {"litellm_provider": "groq", "mode": "chat", "input_cost_per_token": 1e-07,
                      "output_cost_per_token": 2e-07},
    "whisper-acme": {"litellm_provider": "openai", "mode": "audio_transcription", "input_cost_per_second": 1e-04},
    "ollama/acme:7b-cloud": {"litellm_provider": "ollama", "mode": "chat", "input_cost_per_token": 0.0,
                             "output_cost_per_token": 0.0},
}


def test_litellm_import_adds_only_what_genai_prices_lacks(tmp_path: Path) -> None:
    source = tmp_path / "model_prices_and_context_window.json"
    source.write_text(json.dumps(LITELLM_MAP))
    imports = tmp_path / "imports"
    result = import_file(source, imports)
    assert (result.kind, result.models) == ("litellm", 3)
    assert result.skipped == {"mode audio_transcription": 1, "zero price for a local model server": 1}
    assert result.stored == imports / "model_prices_and_context_window.yaml"

    pricer = build(pricing_config(settings_with(tmp_path, {"import_dir": str(imports)})))
    # genai-prices knows gpt-4o-mini: the imported $99 price is not used
    assert pricer.quote("openai", "gpt-4o-mini", MILLION, at=NOW).total_nanos == 750_000_000
    usage = Usage(300_000, 1_000, cache_read_tokens=10_000, cache_write_tokens=20_000, cache_write_1h_tokens=5_000)
    quote = pricer.quote("openai", "acme-chat-latest", usage, at=NOW)
    assert quote.source is not None and quote.source.startswith("litellm-import model_prices_and_context_window.json")
    # above 200k: 270,000 x 2 = 540,000,000n; 10,000 x .1 = 1,000,000n (no tier price for reads);
    # 15,000 x 1.25 + 5,000 x 2 = 28,750,000n; 1,000 x 6 = 6,000,000n
    assert (quote.input_nanos, quote.cache_read_nanos, quote.cache_write_nanos, quote.output_nanos) == (
        540_000_000, 1_000_000, 28_750_000, 6_000_000
    )
    batch = pricer.quote("openai", "acme-chat-latest", Usage(1_000, 1_000), at=NOW, service_tier="batch")
    assert batch.total_nanos == 500_000 + 2_000_000
    assert pricer.quote("groq", "acme-oss", MILLION, at=NOW).total_nanos == 300_000_000
    # LiteLLM's $0 for an Ollama cloud model is not taken as free
    assert pricer.quote("ollama", "acme:7b-cloud", MILLION, server_address="127.0.0.1").status == UNPRICED


def test_rerank_is_priced_per_search_unit_and_never_per_token() -> None:
    """LiteLLM's ``input_cost_per_query`` is a price per rerank search unit; a rerank entry priced only per
    token is left out, since a rerank call reports no tokens and would come out free."""
    from costspan.pricing.litellm import convert

    converted = convert({
        "rerank-v3.5": {"litellm_provider": "cohere", "mode": "rerank", "input_cost_per_query": 0.002,
                        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "rerank-v5.0-pro": {"litellm_provider": "cohere", "mode": "rerank", "input_cost_per_token": 5e-08},
    }, "map.json")
    assert converted.skipped == {"rerank priced per token": 1}
    pricer = LayeredPricer(user=[parse_table({"models": converted.entries}, "map.json", "litellm-import")])

    quote = pricer.quote("cohere", "rerank-v3.5", Usage(search_units=3))
    assert (quote.status, quote.total_nanos, quote.input_nanos) == (PRICED, 6_000_000, 6_000_000)
    assert pricer.quote("cohere", "rerank-v5.0-pro", Usage(search_units=3)).status == UNPRICED
    bundled = load_table(SNAPSHOT_PATH, "litellm-snapshot")
    assert LayeredPricer(snapshot=bundled).quote("cohere", "rerank-v3.5", Usage(search_units=1)).total_nanos == (
        2_000_000
    )


def test_import_errors_name_file_and_entry(tmp_path: Path) -> None:
    source = tmp_path / "map.json"
    source.write_text(json.dumps({"acme": {"litellm_provider": "openai", "input_cost_per_token": "lots"}}))
    with pytest.raises(ConfigError) as caught:
        import_file(source, tmp_path / "imports")
    assert (caught.value.source, caught.value.key) == (str(source), "acme.input_cost_per_token")
    source.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="neither a LiteLLM price map nor a costspan price file"):
        import_file(source, tmp_path / "imports")
    source.write_text("{bad json")
    with pytest.raises(ConfigError, match=r"map\.json: line 1"):
        import_file(source, tmp_path / "imports")
    assert not (tmp_path / "imports").exists()


def test_import_costspan_file(tmp_path: Path) -> None:
    source = tmp_path / "team.yaml"
    source.write_text("models:\n  - match: {provider: openai, model: team-model}\n    input: 1\n    output: 2\n")
    result = import_file(source, tmp_path / "imports", name="team")
    assert (result.kind, result.models, result.stored.name) == ("costspan", 1, "team.yaml")
    pricer = build(pricing_config(settings_with(tmp_path, {"import_dir": str(tmp_path / "imports")})))
    assert pricer.quote("openai", "team-model", MILLION, at=NOW).total_nanos == 3_000_000_000


def test_snapshot_holds_only_models_genai_prices_lacks() -> None:
    catalog = GenaiCatalog.load()
    snapshot = load_table(SNAPSHOT_PATH, "litellm-snapshot")
    assert snapshot.source.startswith("litellm-snapshot 20")
    assert len(snapshot.entries) > 50
    for entry in snapshot.entries:
        (provider,) = entry.providers
        for model in entry.models:
            assert catalog.find(provider, model) is None, (provider, model)


def test_snapshot_never_overrides_genai_prices() -> None:
    """Even a snapshot entry for a model genai-prices knows is only a fallback."""
    stale = parse_table(
        {"models": [{"match": {"provider": "openai", "model": "gpt-4o-mini"}, "input": 99, "output": 99}]},
        "stale.json",
        "litellm-snapshot 2020-01-01",
    )
    pricer = LayeredPricer(genai=GenaiCatalog.load(), snapshot=stale)
    assert pricer.quote("openai", "gpt-4o-mini", MILLION, at=NOW).source == GenaiCatalog.load().source
    assert LayeredPricer(snapshot=stale).quote("openai", "gpt-4o-mini", MILLION).total_nanos == 198_000_000_000


def test_snapshot_can_be_turned_off(tmp_path: Path) -> None:
    pricer = build(pricing_config(settings_with(tmp_path, {"snapshot": False, "import_dir": str(tmp_path)})))
    assert pricer.snapshot is None
    assert pricer.quote("x_ai", "grok-4.20-reasoning-latest", MILLION, at=NOW).status == UNPRICED
