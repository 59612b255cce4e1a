"""Fault drills: fuzzed provider answers through all five SDKs, compared with the bare SDK.

A seeded generator builds, for every SDK (openai, anthropic, google-genai, groq, ollama) and every
mode (sync, async, stream-sync, stream-async), ``CASES`` faulty answers from the stand-in's fault
options: malformed JSON, bodies truncated or connections dropped at a byte offset, wrong types,
negative and huge numbers where token counts go, missing usage, odd stream events, wrong content
types, HTML error pages with status 200, in-stream errors. Each answer is served twice: once to
the bare SDK (``uninstrumented()``), once through costspan, over real HTTP.

The host application must never notice costspan: the return value, the stream's chunks, or the
exception's class and status (and the chunks before it) are the bare SDK's. The books must hold:
one span per call, ended once; no negative, absurd or non-finite cost or token count on the span,
in Prometheus (``costspan_cost_usd_total``, ``costspan_tokens_total``) or in the budget; a known
``costspan.facts.source``; the request counted once.

Every case is named ``{sdk}/{mode}/{n}`` with its fault kinds, so a failure reproduces with
``fuzzed(sdk, mode, n)``. Bugs the drills found have named regression tests at the end.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import attribute_names as A
from costspan.facts import MAX_TOKENS
from costspan.money import nanos_to_float
from costspan.standin import ProviderServer, Scenario, Usage
from costspan.standin._core import DROP, HTML_ERROR_PAGE, MALFORMED, ODD_EVENTS
from tests.harness import Harness
from tests.llm_spans import llm_spans, uninstrumented
from tests.test_hostile_usage import VOLATILE, _dump
from tests.test_instrumentation_errors import MESSAGES, SDKS, Sdk, _openai_instrumentor, end_calls, instrumented

__all__ = ["end_calls", "instrumented"]  # fixtures: every instrumentor on; end() calls counted

SEED = 20_251_010
CASES = int(os.environ.get("COSTSPAN_DRILL_CASES", "20"))
"""Fuzzed answers per SDK and mode: 5 x 5 x 20 = 500 calls through costspan (and as many bare)."""

MODES = ("sync", "async", "stream-sync", "stream-async", "stream-abandoned")
"""``stream-abandoned``: the application reads a few chunks and drops the stream unclosed (the
garbage collector finalises it), as a request handler that returns early does."""
ABANDON_AFTER = 3

BUDGET_YAML = "budgets:\n  - {name: drill, limit_usd: 1000000, window: day}\n"



def _responses(stream: bool) -> Callable[[Any], Any]:
    return lambda c: c.responses.create(model="gpt-4o-mini", input="Name one lighthouse.", stream=stream)


def _helper(c: Any) -> Any:
    return c.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)


_ANTHROPIC = next(sdk for sdk in SDKS if sdk.name == "anthropic")
VARIANTS = [
    # The Responses API: named SSE events (response.created ... response.completed).
    Sdk("openai-responses", "openai", "{url}/v1=openai", _openai_instrumentor,
        lambda url: openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0),
        lambda url: openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0),
        _responses(False), _responses(True), _responses(False), _responses(True)),
    # anthropic's messages.stream() helper: a manager whose MessageStream accumulates the events.
    Sdk("anthropic-helper", "anthropic", "{url}=anthropic", _ANTHROPIC.instrumentor,
        _ANTHROPIC.client, _ANTHROPIC.async_client, _helper, _helper, _helper, _helper),
    # anthropic with its own tracing on (its default): the SDK's span is the call's span.
    Sdk("anthropic-traced", "anthropic", "{url}=anthropic", _ANTHROPIC.instrumentor,
        lambda url: anthropic.Anthropic(base_url=url, api_key="k", max_retries=0),
        lambda url: anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0),
        _ANTHROPIC.call, _ANTHROPIC.stream, _ANTHROPIC.async_call, _ANTHROPIC.async_stream),
]
VARIANT_MODES = {"anthropic-helper": ("stream-sync", "stream-async", "stream-abandoned")}
DRILLED = [sdk for sdk in SDKS if sdk.name in ("openai", "anthropic", "gemini", "groq", "ollama")]
"""The five wire formats the fault options cover (the second wave's SDKs have their own tests)."""
FAMILY = {"openai-responses": "openai-responses", "anthropic-helper": "anthropic", "anthropic-traced": "anthropic"}
VARIANT_CASES = max(1, CASES // 3)

# Where each SDK's answer carries its counts, and the objects that hold them.
COUNT_FIELDS: dict[str, tuple[str, ...]] = {
    "openai": ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"),
    "groq": ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"),
    "anthropic": ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                  "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"),
    "gemini": ("promptTokenCount", "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount",
               "cachedContentTokenCount", "tokenCount"),
    "ollama": ("prompt_eval_count", "eval_count"),
    "openai-responses": ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"),
}
USAGE_OBJECTS: dict[str, tuple[str, ...]] = {
    "openai": ("usage", "prompt_tokens_details", "completion_tokens_details"),
    "groq": ("usage", "x_groq", "prompt_tokens_details"),
    "anthropic": ("usage", "cache_creation"),
    "gemini": ("usageMetadata", "promptTokensDetails"),
    "ollama": ("prompt_eval_count", "eval_count"),
    "openai-responses": ("usage", "input_tokens_details", "output_tokens_details", "response"),
}

# Fields beside the counts that costspan reads (model, ids, finish reasons, tier, content).
OTHER_FIELDS: dict[str, tuple[str, ...]] = {
    "openai": ("model", "id", "finish_reason", "service_tier", "choices", "delta", "content", "message",
               "system_fingerprint"),
    "groq": ("model", "id", "finish_reason", "service_tier", "choices", "delta", "content", "message", "x_groq"),
    "anthropic": ("model", "id", "stop_reason", "content", "text", "delta", "message", "service_tier", "type"),
    "gemini": ("modelVersion", "responseId", "finishReason", "candidates", "content", "parts", "text",
               "trafficType"),
    "ollama": ("model", "done_reason", "message", "content", "done", "response"),
    "openai-responses": ("model", "id", "status", "output", "content", "text", "delta", "type", "sequence_number",
                         "service_tier", "item"),
}
WRONG_VALUES: tuple[Any, ...] = (
    "12", "twelve", "", " 7 ", "1e3", 12.0, 12.5, 1e300, float("inf"), -0.0, None, [], [12], {}, {"total": 12},
    True, False, -1, -5000, 2**31, 2**53 + 1, 2**63, 2**64 + 1, 10**30, MAX_TOKENS + 1, -(2**63),
)
ODD_VALUES: tuple[Any, ...] = (*WRONG_VALUES, DROP, "x" * 5000, "gpt-4o\x00mini", "ünïcødé \u202e", [{}], [None])
HOSTILE_USAGE: tuple[Usage, ...] = (
    Usage(input_tokens=-5000, output_tokens=-5000),
    Usage(input_tokens=2**63, output_tokens=12),
    Usage(input_tokens=10**30, output_tokens=10**30),
    Usage(input_tokens=12, output_tokens=-1),
    Usage(input_tokens=MAX_TOKENS + 1, output_tokens=3),
    Usage(input_tokens=10, output_tokens=5, cached_tokens=10**30),
    Usage(input_tokens=10, output_tokens=5, cached_tokens=50),  # a part above its whole
    Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2**63),
    Usage(input_tokens=10, output_tokens=5, cache_creation_tokens=-7),
    Usage(input_tokens=0, output_tokens=0),
)
CONTENT_TYPES = ("text/plain", "text/html; charset=utf-8", "application/octet-stream", "application/json",
                 "text/event-stream", "application/x-ndjson", "")
FAULT_KINDS = ("wrong-type", "usage-object", "odd-field", "hostile-usage", "missing-usage", "malformed", "cut",
               "truncated", "odd-events", "content-type", "html-200", "html-error", "stream-error", "healthy")


def fuzzed(sdk: str, mode: str, number: int) -> tuple[list[str], Scenario]:
    """The ``number``-th fuzzed answer for an SDK and mode: its fault kinds and the scenario."""
    rng = random.Random(f"{SEED}/{sdk}/{mode}/{number}")
    sdk = FAMILY.get(sdk, sdk)
    streaming = mode.startswith("stream")
    kinds = [k for k in FAULT_KINDS if streaming or k not in ("odd-events", "stream-error")]
    picked = set(rng.choices(kinds, k=rng.choice((1, 1, 2, 3))))
    if streaming and number < len(ODD_EVENTS):  # each odd event and each malformation drilled for sure
        picked.add("odd-events")
    if mode == "sync" and number < len(MALFORMED):
        picked.add("malformed")
    chosen = sorted(picked, key=FAULT_KINDS.index)
    changes: dict[str, Any] = {"text": rng.choice((None, "Farol da Guia.", "", "ok"))}
    counts: dict[str, Any] = {}
    for kind in chosen:
        if kind == "wrong-type":
            names = [*COUNT_FIELDS[sdk], "*"]
            for name in rng.sample(names, rng.randint(1, 3)):
                counts[name] = rng.choice(WRONG_VALUES)
        elif kind == "usage-object":
            counts[rng.choice(USAGE_OBJECTS[sdk])] = rng.choice((*WRONG_VALUES, DROP))
        elif kind == "hostile-usage":
            changes["usage"] = rng.choice(HOSTILE_USAGE)
        elif kind == "missing-usage":
            if rng.random() < 0.5:
                changes["omit_usage"] = True
            else:
                counts[rng.choice(COUNT_FIELDS[sdk])] = DROP
        elif kind == "malformed":
            changes["malformed"] = MALFORMED[number] if number < len(MALFORMED) else rng.choice(MALFORMED)
        elif kind == "cut":
            changes["cut_at_byte"] = rng.choice((rng.randint(0, 1500), -rng.randint(1, 400)))
        elif kind == "truncated":
            changes["end_at_byte"] = rng.choice((rng.randint(0, 1500), -rng.randint(1, 400)))
        elif kind == "odd-events":  # one in turn, so that each is drilled, and a few at random
            turn = ODD_EVENTS[number % len(ODD_EVENTS)]
            changes["stream_events"] = (turn, *rng.sample([e for e in ODD_EVENTS if e != turn], rng.randint(0, 3)))
        elif kind == "odd-field":
            counts[rng.choice(OTHER_FIELDS[sdk])] = rng.choice(ODD_VALUES)
        elif kind == "content-type":
            changes["content_type"] = rng.choice(CONTENT_TYPES)
        elif kind == "html-200":
            changes["raw_body"] = HTML_ERROR_PAGE
        elif kind == "html-error":
            changes.update(raw_body=HTML_ERROR_PAGE, status=rng.choice((502, 503, 504)))
        elif kind == "stream-error":
            changes["error_after"] = rng.randint(0, 6)
    if counts:
        changes["counts"] = counts
    return chosen, Scenario(**changes)


# --- what the application sees ------------------------------------------------------------------


@dataclass
class Outcome:
    """What the application got: a return value or the chunks, and the exception if one was raised."""

    value: Any = None
    chunks: list[Any] = field(default_factory=list)
    error: BaseException | None = None

    def picture(self) -> Any:
        error = None
        if self.error is not None:
            status = getattr(self.error, "status_code", getattr(self.error, "code", None))
            error = (type(self.error).__module__, type(self.error).__qualname__, status)
        return normalised({"value": self.value, "chunks": self.chunks, "error": error})


VOLATILE_KEYS = VOLATILE | {"item_id"}
VOLATILE_TEXT = re.compile(r"[0-9a-f]{16,}|\b1[0-9]{9}\b")
"""Ids and timestamps inside a text (an SDK returns the raw body as a string for an unknown content type)."""


def normalised(picture: Any) -> Any:
    """Volatile ids and timestamps out (those of test_hostile_usage, the Responses API's item ids,
    those inside texts); NaN made comparable (NaN != NaN)."""
    if isinstance(picture, float) and math.isnan(picture):
        return "NaN"
    if isinstance(picture, str):
        return VOLATILE_TEXT.sub("<volatile>", picture)
    if isinstance(picture, dict):
        return {k: normalised(v) for k, v in picture.items() if k not in VOLATILE_KEYS}
    if isinstance(picture, list | tuple):
        return [normalised(v) for v in picture]
    return picture


def run_sync(sdk: Sdk, client: Any, mode: str) -> Outcome:
    outcome = Outcome()
    try:
        if mode == "sync":
            outcome.value = _dump(sdk.call(client))
            return outcome
        if mode == "stream-abandoned":
            try:
                _read_and_drop(sdk, client, outcome)
            except Exception as exc:  # kept without its traceback, whose frames would keep the stream alive
                outcome.error = exc.with_traceback(None)
            gc.collect()  # finalises the dropped stream (and ends its span) here, not in a later case
            return outcome
        stream = sdk.stream(client)
        if not hasattr(getattr(stream, "__wrapped__", stream), "__iter__"):  # a manager: the helper's way
            with stream as events:
                outcome.chunks.extend(_dump(event) for event in events)
                outcome.value = _dump(events.get_final_message())
            return outcome
        try:
            for chunk in stream:
                outcome.chunks.append(_dump(chunk))
        finally:
            stream.close()
    except Exception as exc:
        outcome.error = exc
    return outcome


def _read_and_drop(sdk: Sdk, client: Any, outcome: Outcome) -> None:
    stream = sdk.stream(client)
    if not hasattr(getattr(stream, "__wrapped__", stream), "__iter__"):
        stream = stream.__enter__()  # the helper's manager, entered and never exited
    for chunk in stream:
        outcome.chunks.append(_dump(chunk))
        if len(outcome.chunks) == ABANDON_AFTER:
            break


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _run_async(sdk: Sdk, url: str, mode: str) -> Outcome:
    outcome = Outcome()
    client = sdk.async_client(url)
    try:
        if mode == "async":
            outcome.value = _dump(await sdk.async_call(client))
            return outcome
        stream = await _maybe_await(sdk.async_stream(client))
        if not hasattr(getattr(stream, "__wrapped__", stream), "__aiter__"):  # a manager: the helper's way
            async with stream as events:
                outcome.chunks.extend([_dump(event) async for event in events])
                outcome.value = _dump(await events.get_final_message())
            return outcome
        try:
            async for chunk in stream:
                outcome.chunks.append(_dump(chunk))
        finally:
            inner = getattr(stream, "__wrapped__", stream)
            await (stream.aclose() if hasattr(inner, "aclose") else stream.close())
    except Exception as exc:
        outcome.error = exc
    finally:
        await _aclose(client)
    return outcome


async def _aclose(client: Any) -> None:
    """Close an async client inside its loop (left to the collector, it would close on a dead loop)."""
    aio = getattr(client, "aio", None)  # a genai.Client closes its async side through .aio
    close = aio.aclose if aio is not None else client.close
    await close()


def run(sdk: Sdk, client: Any, url: str, mode: str) -> Outcome:
    if mode in ("sync", "stream-sync", "stream-abandoned"):
        return run_sync(sdk, client, mode)
    return asyncio.run(_run_async(sdk, url, mode))


# --- the books ----------------------------------------------------------------------------------

TOKEN_ATTRIBUTES = (A.INPUT_TOKENS, A.OUTPUT_TOKENS, A.CACHE_READ_TOKENS, A.CACHE_CREATION_TOKENS,
                    A.CACHE_WRITE_1H_TOKENS, A.REASONING_TOKENS)
COST_ATTRIBUTES = ("costspan.cost.usd", "costspan.cost.input_usd", "costspan.cost.output_usd",
                   "costspan.cost.cache_read_usd", "costspan.cost.cache_write_usd")
USAGE_SOURCES = {None, "reported", "estimated", "invalid", "none"}
MAX_COST_USD = 10_000.0
"""Far above what MAX_TOKENS of any model costs: a call's cost beyond it is absurd."""


@dataclass
class Books:
    """The figures a call may move, read before and after it."""

    cost: float
    tokens: float
    requests: float
    budget: float
    samples_ok: bool

    @classmethod
    def read(cls, harness: Harness) -> Books:
        samples_ok = True
        for metric in harness.registry.collect():
            for s in metric.samples:
                if s.name in ("costspan_cost_usd_total", "costspan_tokens_total") and not (
                    math.isfinite(s.value) and s.value >= 0
                ):
                    samples_ok = False
        budgets = harness.runtime.budgets.status() if harness.runtime.budgets else []
        return cls(
            cost=harness.sample("costspan_cost_usd_total"),
            tokens=harness.sample("costspan_tokens_total"),
            requests=harness.sample("costspan_requests_total"),
            budget=sum(nanos_to_float(b.used) for b in budgets if b.kind == "budget"),
            samples_ok=samples_ok,
        )


def book_problems(
    harness: Harness, before: Books, spans: InMemorySpanExporter, end_calls: Counter[int]
) -> list[str]:
    problems: list[str] = []
    found = llm_spans(spans)
    if len(found) != 1:
        return [f"{len(found)} LLM spans, not 1"]
    span = found[0]
    ends = end_calls.get(span.context.span_id, 0)
    if ends != 1:
        problems.append(f"span ended {ends} times")
    attrs: dict[str, Any] = dict(span.attributes or {})
    scope = span.instrumentation_scope.name if span.instrumentation_scope is not None else ""
    sdk_span = not scope.startswith("costspan")  # the anthropic SDK's own (com.anthropic.sdk.python)
    # The anthropic SDK's own span carries the counts as the SDK read them: costspan does not rewrite
    # another instrumentation's attributes, but it must say they are no usage.
    flagged = sdk_span and attrs.get(A.USAGE_SOURCE) == "invalid"
    for name in TOKEN_ATTRIBUTES:
        value = attrs.get(name, 0)
        if (type(value) is not int or not 0 <= value <= MAX_TOKENS) and not flagged:
            problems.append(f"{name}={value!r}")
    for name in COST_ATTRIBUTES:
        value = attrs.get(name, 0.0)
        if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= MAX_COST_USD:
            problems.append(f"{name}={value!r}")
    if attrs.get(A.USAGE_SOURCE) not in USAGE_SOURCES:
        problems.append(f"{A.USAGE_SOURCE}={attrs.get(A.USAGE_SOURCE)!r}")
    after = Books.read(harness)
    if not after.samples_ok:
        problems.append("a negative or non-finite Prometheus sample")
    cost = after.cost - before.cost
    if not (0 <= cost <= MAX_COST_USD) or cost != pytest.approx(float(attrs.get(A.COST_USD, 0.0)), abs=1e-9):
        problems.append(f"costspan_cost_usd_total moved by {cost!r}, span says {attrs.get(A.COST_USD)!r}")
    tokens = after.tokens - before.tokens
    if not 0 <= tokens <= 4 * MAX_TOKENS:
        problems.append(f"costspan_tokens_total moved by {tokens!r}")
    if after.requests - before.requests != 1:
        problems.append(f"costspan_requests_total moved by {after.requests - before.requests!r}")
    charged = after.budget - before.budget
    if not (0 <= charged <= MAX_COST_USD) or charged != pytest.approx(cost, abs=1e-9):
        problems.append(f"budget moved by {charged!r} for a cost of {cost!r}")
    return problems


# --- the drills ---------------------------------------------------------------------------------


@dataclass
class Figures:
    tried: int = 0
    changed: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


FIGURES: dict[str, Figures] = {}


def drill(
    sdk: Sdk,
    mode: str,
    numbers: range,
    harness: Harness,
    server: ProviderServer,
    spans: InMemorySpanExporter,
    end_calls: Counter[int],
) -> Figures:
    figures = Figures()
    url = server.base_url
    client = sdk.client(url)  # kept for the whole drill: a dropped genai.Client closes its transport
    for number in numbers:
        kinds, scenario = fuzzed(sdk.name, mode, number)
        name = f"{sdk.name}/{mode}/{number} {'+'.join(kinds)}"
        server.enqueue(scenario, times=2)
        with uninstrumented():
            reference = run(sdk, client, url, mode)
        spans.clear()
        end_calls.clear()
        before = Books.read(harness)
        got = run(sdk, client, url, mode)
        if mode == "stream-abandoned":  # costspan ends an abandoned stream's span on a thread of its own
            deadline = time.monotonic() + 5
            while not llm_spans(spans) and time.monotonic() < deadline:
                time.sleep(0.002)
        figures.tried += 1
        if got.picture() != reference.picture():
            figures.changed.append(f"{name}: got {got.picture()!r}, bare SDK {reference.picture()!r}")
        problems = book_problems(harness, before, spans, end_calls)
        if problems:
            figures.wrong.append(f"{name}: {'; '.join(problems)}")
        assert server.pending == 0, f"{name}: the SDK made {2 - server.pending} requests, not 2"
    return figures


def drill_runtime(sdk: Sdk, make_runtime: Callable[..., Harness], server: ProviderServer) -> Harness:
    if sdk.billed_as is None:
        return make_runtime(BUDGET_YAML)
    return make_runtime(BUDGET_YAML, COSTSPAN_ENDPOINTS=sdk.billed_as.format(url=server.base_url))


@pytest.fixture(scope="module", autouse=True)
def figures_report() -> Iterator[None]:
    """The drills' figures, printed once at the end of the module (``pytest -s`` shows them)."""
    FIGURES.clear()
    yield
    if not FIGURES:
        return
    lines = ["", "fault drills: fuzzed calls tried / changed for the app / wrong in the books"]
    per_sdk: dict[str, list[int]] = {}
    for key, f in FIGURES.items():
        sums = per_sdk.setdefault(key.split("/")[0], [0, 0, 0])
        for i, v in enumerate((f.tried, len(f.changed), len(f.wrong))):
            sums[i] += v
    for sdk_name, (tried, changed, wrong) in per_sdk.items():
        lines.append(f"  {sdk_name:10} {tried} / {changed} / {wrong}")
    totals = [sum(v[i] for v in per_sdk.values()) for i in range(3)]
    lines.append(f"  {'total':10} {totals[0]} / {totals[1]} / {totals[2]}")
    print("\n".join(lines))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sdk", DRILLED, ids=[sdk.name for sdk in DRILLED])
def test_fuzzed_answers_change_nothing_for_the_app_and_keep_the_books(
    sdk: Sdk,
    mode: str,
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    end_calls: Counter[int],
) -> None:
    harness = drill_runtime(sdk, make_runtime, provider_server)
    figures = drill(sdk, mode, range(CASES), harness, provider_server, spans, end_calls)
    FIGURES[f"{sdk.name}/{mode}"] = figures
    assert figures.tried == CASES
    assert not figures.changed, "\n".join(figures.changed)
    assert not figures.wrong, "\n".join(figures.wrong)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sdk", "mode"),
    [(sdk, mode) for sdk in VARIANTS for mode in VARIANT_MODES.get(sdk.name, MODES)],
    ids=[f"{sdk.name}-{mode}" for sdk in VARIANTS for mode in VARIANT_MODES.get(sdk.name, MODES)],
)
def test_fuzzed_answers_through_other_entry_points(
    sdk: Sdk,
    mode: str,
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    end_calls: Counter[int],
) -> None:
    """The Responses API, anthropic's stream helper, and anthropic with its own tracing on."""
    harness = drill_runtime(sdk, make_runtime, provider_server)
    figures = drill(sdk, mode, range(VARIANT_CASES), harness, provider_server, spans, end_calls)
    FIGURES[f"{sdk.name}/{mode}"] = figures
    assert not figures.changed, "\n".join(figures.changed)
    assert not figures.wrong, "\n".join(figures.wrong)


def test_every_fault_kind_is_drilled() -> None:
    """The generator reaches every fault kind, every odd event and every malformation for every SDK."""
    for sdk in DRILLED:
        kinds: set[str] = set()
        events: set[str] = set()
        malformed: set[str] = set()
        for mode in MODES:
            for number in range(CASES):
                chosen, scenario = fuzzed(sdk.name, mode, number)
                kinds.update(chosen)
                events.update(scenario.stream_events)
                malformed.update([scenario.malformed] if scenario.malformed else [])
        assert kinds == set(FAULT_KINDS), (sdk.name, set(FAULT_KINDS) - kinds)
        assert events == set(ODD_EVENTS), (sdk.name, set(ODD_EVENTS) - events)
        assert malformed == set(MALFORMED), (sdk.name, set(MALFORMED) - malformed)


# --- regressions: what the drills found ---------------------------------------------------------


def _responses_client(server: ProviderServer) -> Any:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_responses_answer_with_null_output_is_still_read_and_its_span_ends(
    stream: bool, make_runtime: Callable[..., Harness], provider_server: ProviderServer,
    spans: InMemorySpanExporter, end_calls: Counter[int],
) -> None:
    """Drill openai-responses/stream-abandoned/3: an answer whose ``response`` has ``output: null``.

    openai's ``Response.output_text`` is a property that iterates ``output`` and raised TypeError
    inside costspan's reader. A stream's span then never ended (the reader ran before ``succeed``),
    and a plain call lost its reported usage (priced as "reported no usage")."""
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")
    provider_server.enqueue(Scenario(counts={"output": None}), times=2)
    client = _responses_client(provider_server)
    with uninstrumented():
        reference = run_sync(VARIANTS[0], client, "stream-sync" if stream else "sync")
    got = run_sync(VARIANTS[0], client, "stream-sync" if stream else "sync")
    assert got.picture() == reference.picture()

    (span,) = llm_spans(spans)
    assert dict(end_calls) == {span.context.span_id: 1}
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert attrs[A.USAGE_SOURCE] == "reported"
    assert attrs[A.INPUT_TOKENS] > 0 and attrs[A.OUTPUT_TOKENS] > 0
    assert attrs[A.COST_USD] > 0
    assert harness.sample("costspan_cost_usd_total") == pytest.approx(attrs[A.COST_USD], rel=1e-12)


def test_stream_whose_answer_cannot_be_read_still_ends_its_span(
    make_runtime: Callable[..., Harness], provider_server: ProviderServer, spans: InMemorySpanExporter,
    end_calls: Counter[int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a stream's reader trips on at the end, the span ends, as a plain call's does (with no
    usage read, so the call is counted and left unpriced, never dropped)."""
    from costspan.instrumentation import openai as instrumentation

    def unreadable(self: Any) -> Any:
        raise TypeError("an answer costspan cannot read")

    monkeypatch.setattr(instrumentation.ResponsesEventObserver, "response", unreadable)
    harness = make_runtime(COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")
    got = run_sync(VARIANTS[0], _responses_client(provider_server), "stream-sync")
    assert got.error is None and got.chunks

    (span,) = llm_spans(spans)
    assert dict(end_calls) == {span.context.span_id: 1}
    assert harness.sample("costspan_requests_total") == 1
    assert harness.sample("costspan_cost_usd_total") == 0
