"""Local token counting: exact with the bundled BPE tables, calibrated ratio otherwise."""

from __future__ import annotations

import pytest

from costspan.estimation import EstimationMonitor, Sample, TokenCounter, message_text


def test_bpe_counts_openai_models_exactly() -> None:
    pytest.importorskip("bpe_openai")
    counter = TokenCounter()
    assert counter.exact_for("gpt-4o-mini-2024-07-18")
    assert counter.exact_for("ft:gpt-4o-mini:acme::abc")
    # "Hello, world!" is 4 tokens in both o200k_base and cl100k_base.
    assert counter.count_text("gpt-4o", ["Hello, world!"]) == 4
    assert counter.count_text("gpt-4", ["Hello, world!"]) == 4
    # Chat format: 3 per message, its role (1 token: "user") + 3 priming.
    assert counter.count_messages("gpt-4o", [{"role": "user", "content": "Hello, world!"}]) == 4 + 3 + 1 + 3


def test_tool_definitions_are_counted_as_the_chat_format_renders_them() -> None:
    pytest.importorskip("bpe_openai")
    counter = TokenCounter()
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City."},
            "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit."},
        }},
    }}
    texts = ["get_weather:Get the weather", "city:string:City", "unit:string:Unit", "c", "f"]
    # 7 per function, 3 for its properties, 3 per property, -3 + 3 per enum item, 12 at the end.
    assert counter.count_tools("gpt-4o", [tool]) == counter.count_text("gpt-4o", texts) + 7 + 3 + 3 + 3 - 3 + 6 + 12
    assert counter.count_tools("gpt-4o", None) == 0


def test_heuristic_is_calibrated_from_reported_usage() -> None:
    counter = TokenCounter(use_bpe=False)
    text = "x" * 400
    assert counter.count_text("llama-3.1-8b", [text]) == 100  # 4 characters per token by default
    counter.calibrate("llama-3.1-8b", chars=3000, reported_tokens=1000)
    assert counter.count_text("llama-3.1-8b", [text]) == 133  # learned: 3 characters per token


def test_message_text_reads_every_sdk_shape() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]},
        {"role": "user", "parts": [{"text": "gemini"}]},
    ]
    assert message_text(messages) == ["be brief", "hi", "gemini"]


def test_monitor_measures_the_error_in_the_background() -> None:
    errors: list[tuple[str, str, float]] = []
    counter = TokenCounter(use_bpe=False)
    monitor = EstimationMonitor(counter, lambda p, m, e: errors.append((p, m, e)), sample_rate=1.0)
    monitor.submit(Sample("groq", "llama", ["x" * 40], ["y" * 40], reported_input=10, reported_output=20,
                          message_count=0))
    monitor.drain()
    assert errors == [("groq", "llama", pytest.approx(abs((10 + 10) - 30) / 30))]
    assert counter.chars_per_token("llama") == 4.0  # fewer than 50 tokens seen: not trusted yet
