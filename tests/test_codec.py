"""Reading the facts of a call off any instrumentation's span attributes."""

from __future__ import annotations

from costspan.facts import Usage
from costspan.processors.codec import decode, is_genai


def test_semconv_attributes() -> None:
    facts = decode(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 60,
            "gen_ai.usage.reasoning.output_tokens": 10,
        }
    )
    assert facts is not None
    assert facts.model == "gpt-4o-mini-2024-07-18"
    assert facts.usage == Usage(input_tokens=100, output_tokens=40, cache_read_tokens=60, reasoning_tokens=10)
    assert facts.usage_source == "reported"


def test_cache_write_is_read_under_both_names() -> None:
    for name in ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens"):
        facts = decode(
            {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 500, name: 300}
        )
        assert facts is not None and facts.usage.cache_write_tokens == 300 and facts.usage.input_tokens == 500


def test_openllmetry_names() -> None:
    facts = decode(
        {
            "gen_ai.system": "OpenAI",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.completion_tokens": 7,
            "gen_ai.usage.cache_read_input_tokens": 4,
        }
    )
    assert facts is not None
    assert (facts.provider, facts.operation) == ("openai", "chat")
    assert facts.usage == Usage(input_tokens=12, output_tokens=7, cache_read_tokens=4)


def test_openllmetry_anthropic_input_gets_cache_traffic_added_back() -> None:
    facts = decode(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.usage.cache_read_input_tokens": 100,
            "gen_ai.usage.cache_creation_input_tokens": 50,
        }
    )
    assert facts is not None and facts.usage.input_tokens == 160


def test_openinference_names() -> None:
    attrs = {
        "llm.provider": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": 30,
        "llm.token_count.completion": 9,
        "llm.token_count.prompt_details.cache_read": 10,
        "llm.token_count.completion_details.reasoning": 3,
    }
    assert is_genai(attrs)
    facts = decode(attrs)
    assert facts is not None
    assert facts.usage == Usage(input_tokens=30, output_tokens=9, cache_read_tokens=10, reasoning_tokens=3)


def test_span_without_model_or_marker_is_not_an_llm_call() -> None:
    assert not is_genai({"http.method": "GET"})
    assert decode({"gen_ai.operation.name": "chat"}) is None


def test_span_without_usage_says_so() -> None:
    facts = decode({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
    assert facts is not None and not facts.has_usage and facts.usage_source == "none"
