"""Relative error of the token estimates for usage-less streams, with and without ``bpe-openai``.

The reference is what OpenAI bills, computed independently here with the exact o200k BPE and the
chat format as OpenAI's cookbook describes it (3 tokens per message plus its encoded role, 3 to
prime the reply; tool definitions rendered per function and parameter; a tool call's name and
arguments plus its framing). The estimate is costspan's own counter, as the instrumentation calls
it. Run it on an older checkout to compare (it falls back to the older counter's signature):

    .venv/bin/python tests/benchmarks/estimation.py
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import bpe_openai

from costspan.estimation import TokenCounter

MODEL = "gpt-4o-mini"
ENC = bpe_openai.get_encoding("o200k_base")
TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city name, e.g. Lisbon."},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit."},
    }, "required": ["city"]},
}}
SHORT_Q = [{"role": "user", "content": "Say hello to Lisbon."}]
LONG_Q = [
    {"role": "system", "content": "You are a careful travel assistant. Answer in full sentences and cite sources."},
    {"role": "user", "content": "Plan three days in Lisbon for a family with two children, with museums, "
     "food markets, the tram 28, Belém and Sintra, and say what to book in advance and what it costs. " * 3},
]
SHORT_A = "Olá, Lisboa!"
LONG_A = ("Day one: start at the Oceanário, then lunch at the Time Out Market. " * 30).strip()
CALL = ("get_weather", json.dumps({"city": "Lisbon", "unit": "celsius"}))

CASES: list[tuple[str, Any, Any, list[str], list[tuple[str, str]]]] = [
    ("chat, short answer", SHORT_Q, None, [SHORT_A], []),
    ("chat, long answer", LONG_Q, None, [LONG_A], []),
    ("tools, call", SHORT_Q, [TOOL], [], [CALL]),
    ("tools, long prompt, call", LONG_Q, [TOOL], [], [CALL]),
]


def n(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def reference_input(messages: Any, tools: Any) -> int:
    total = 3 + sum(3 + n(m["role"]) + n(m["content"]) for m in messages)
    if tools:
        total += 12
        for tool in tools:
            f = tool["function"]
            total += 7 + n(f"{f['name']}:{f['description'].removesuffix('.')}")
            props = f["parameters"]["properties"]
            total += 3 if props else 0
            for key, spec in props.items():
                total += 3 + n(f"{key}:{spec['type']}:{spec['description'].removesuffix('.')}")
                if "enum" in spec:
                    total += -3 + sum(3 + n(item) for item in spec["enum"])
    return total


def reference_output(texts: list[str], calls: list[tuple[str, str]]) -> int:
    return sum(n(t) for t in texts) + sum(n(name) + n(args) + 9 for name, args in calls)


def estimate(
    counter: TokenCounter, messages: Any, tools: Any, texts: list[str], calls: list[tuple[str, str]]
) -> tuple[int, int]:
    if "tools" in inspect.signature(counter.count_messages).parameters:
        from costspan.estimation import PER_TOOL_CALL

        tool_texts = [part for call in calls for part in call]
        out = counter.count_text(MODEL, texts + tool_texts) + PER_TOOL_CALL * len(calls)
        return counter.count_messages(MODEL, messages, tools), out
    return counter.count_messages(MODEL, messages), counter.count_text(MODEL, texts)  # before: text only


def main() -> None:
    print(f"{'case':28} {'tokenizer':10} {'in ref':>6} {'in est':>6} {'in err':>7} "
          f"{'out ref':>7} {'out est':>7} {'out err':>7}")
    for bpe in (True, False):
        counter = TokenCounter(use_bpe=bpe)
        for name, messages, tools, texts, calls in CASES:
            ref_in, ref_out = reference_input(messages, tools), reference_output(texts, calls)
            est_in, est_out = estimate(counter, messages, tools, texts, calls)
            print(f"{name:28} {'bpe' if bpe else 'ratio':10} {ref_in:6} {est_in:6} {(est_in - ref_in) / ref_in:+7.1%} "
                  f"{ref_out:7} {est_out:7} {(est_out - ref_out) / ref_out:+7.1%}")


if __name__ == "__main__":
    main()
