"""``costspan.track(...)``: what no instrumentor sees is accounted exactly like an instrumented call.

A batch result, an embedding job or a fee priced by the application must land on the same span
attributes, metrics, budgets and ledger as a call through an SDK, because dashboards, budget
enforcement and reports read only those. ``source`` says what the item was, and a declared
``cost_usd`` replaces the catalog's price (for what the catalog cannot price).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import costspan
from costspan import attribute_names as A
from costspan.exporters.ledger import LedgerSink
from costspan.facts import Usage
from costspan.money import usd_to_nanos
from tests.harness import Harness
from tests.llm_spans import expected_cost, only_llm_span

MODEL = "gpt-4o-mini"
BATCH: dict[str, Any] = {"input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 1024, "reasoning_tokens": 40}
BATCH_USAGE = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=40)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_span_carries_the_usage_the_cost_and_the_attribution(
    make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    harness = make_runtime()

    with costspan.attribute(project="atlas", user="u-7", feature="nightly-summaries"):
        tracked = costspan.track(provider="openai", model=MODEL, source="batch", **BATCH)

    span = only_llm_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.INTERNAL  # no request left this process for it
    got = attrs(span)
    assert (got[A.PROVIDER], got[A.REQUEST_MODEL], got[A.OPERATION]) == ("openai", MODEL, "chat")
    assert (got[A.INPUT_TOKENS], got[A.OUTPUT_TOKENS]) == (1200, 300)
    assert (got[A.CACHE_READ_TOKENS], got[A.REASONING_TOKENS]) == (1024, 40)
    assert got[A.USAGE_SOURCE] == "batch"
    assert (got[A.PROJECT], got[A.USER_ID], got[A.FEATURE]) == ("atlas", "u-7", "nightly-summaries")
    assert got[A.COST_STATUS] == "priced"
    assert got[A.PRICING_KEY] == f"openai/{MODEL}"
    cost = expected_cost(harness, "openai", MODEL, BATCH_USAGE)
    assert got[A.COST_USD] == pytest.approx(cost, rel=1e-12)
    assert got[A.COST_CACHE_READ_USD] > 0  # cache reads priced at their own (lower) rate
    parts = (A.COST_INPUT_USD, A.COST_OUTPUT_USD, A.COST_CACHE_READ_USD, A.COST_CACHE_WRITE_USD)
    assert sum(got[p] for p in parts) == pytest.approx(cost, rel=1e-9)
    # What track() returns is what the span says.
    assert (tracked.status, tracked.pricing_key) == ("priced", f"openai/{MODEL}")
    assert tracked.cost_usd is not None and float(tracked.cost_usd) == got[A.COST_USD]  # exact, not read back


def test_source_defaults_to_manual_and_arguments_override_the_context(
    make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    make_runtime()

    with costspan.attribute(project="atlas", user="u-7"):
        costspan.track(provider="openai", model="text-embedding-3-small", operation="embeddings",
                       input_tokens=5000, project="search-index")

    got = attrs(only_llm_span(spans))
    assert got[A.USAGE_SOURCE] == "manual"
    assert got[A.OPERATION] == "embeddings"
    assert (got[A.PROJECT], got[A.USER_ID]) == ("search-index", "u-7")  # given wins, the rest is inherited
    assert A.FEATURE not in got


def test_metrics_count_the_item_like_a_call(make_runtime: Callable[..., Harness]) -> None:
    harness = make_runtime()

    with costspan.attribute(project="atlas", feature="nightly-summaries"):
        costspan.track(provider="openai", model=MODEL, source="batch", **BATCH)
        costspan.track(provider="openai", model=MODEL, source="batch", **BATCH)

    labels = {"provider": "openai", "model": MODEL}
    cost = expected_cost(harness, "openai", MODEL, BATCH_USAGE)
    assert harness.sample(
        "costspan_cost_usd_total", **labels, operation="chat", project="atlas", feature="nightly-summaries"
    ) == pytest.approx(2 * cost, rel=1e-9)
    for token_type, count in (("input", 1200), ("output", 300), ("cache_read", 1024), ("reasoning", 40)):
        assert harness.sample("costspan_tokens_total", **labels, type=token_type) == 2 * count, token_type
    assert harness.sample("costspan_requests_total", **labels, operation="chat", outcome="success") == 2
    assert harness.sample("costspan_requests_total") == 2
    # OTLP gets the same figures (the semconv token histogram takes provider-reported usage only).
    otlp_input = [p for p in harness.otlp_points("costspan.tokens") if dict(p.attributes).get("type") == "input"]
    assert sum(p.value for p in otlp_input) == 2 * 1200
    assert sum(p.value for p in harness.otlp_points("costspan.cost.usd")) == pytest.approx(2 * cost, rel=1e-9)


BUDGETS = """
budgets:
  - name: openai-daily
    match: {provider: openai}
    limit_usd: 1
    window: day
"""


def test_charges_the_matching_budget(make_runtime: Callable[..., Harness], spans: InMemorySpanExporter) -> None:
    make_runtime(BUDGETS)

    costspan.track(provider="openai", model=MODEL, cost_usd="0.25", source="fine-tuning")
    costspan.track(provider="anthropic", model="claude-sonnet-4-6", cost_usd="0.40")  # another provider's budget
    second = costspan.track(provider="openai", model=MODEL, cost_usd="0.55")

    (budget,) = costspan.status()
    assert budget["name"] == "openai-daily"
    assert budget["used_nanos"] == usd_to_nanos("0.80")  # exact: 0.25 + 0.55, the anthropic item not included
    assert second.budget_status == "warning"  # 80 % of the limit
    openai_spans = [s for s in spans.get_finished_spans() if attrs(s).get(A.PROVIDER) == "openai"]
    last = attrs(openai_spans[-1])
    assert last[A.BUDGET_NAME] == "openai-daily"
    assert last[A.BUDGET_UTILIZATION] == pytest.approx(0.8)
    assert last[A.BUDGET_REMAINING_USD] == pytest.approx(0.2)
    crossings = [dict(e.attributes or {}) for e in openai_spans[-1].events if e.name == A.BUDGET_THRESHOLD_EVENT]
    assert crossings == [{A.BUDGET_NAME: "openai-daily", A.BUDGET_THRESHOLD: 0.75}]
    assert openai_spans[0].events == ()  # 25 % crossed nothing


def test_writes_a_ledger_row(make_runtime: Callable[..., Harness], tmp_path: Path, spans: InMemorySpanExporter) -> None:
    harness = make_runtime(COSTSPAN_STORE=f"sqlite:///{tmp_path / 'costspan.db'}", COSTSPAN_LEDGER="on")

    with costspan.attribute(project="atlas", user="u-7", feature="nightly-summaries"):
        costspan.track(provider="openai", model=MODEL, source="batch", **BATCH)
    (ledger,) = [sink for sink in harness.runtime.sinks if isinstance(sink, LedgerSink)]
    assert ledger.flush()

    conn = sqlite3.connect(tmp_path / "costspan-ledger.db")
    conn.row_factory = sqlite3.Row
    try:
        (row,) = conn.execute("SELECT * FROM calls").fetchall()
    finally:
        conn.close()
    span = only_llm_span(spans)
    quote = harness.runtime.pricer.quote("openai", MODEL, BATCH_USAGE)
    assert (row["provider"], row["model"], row["operation"]) == ("openai", MODEL, "chat")
    assert (row["project"], row["feature"], row["user_id"]) == ("atlas", "nightly-summaries", "u-7")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["reasoning_tokens"]) == (
        1200, 300, 1024, 40
    )
    assert row["cost_nanos"] == quote.total_nanos  # exact, not the span's float
    assert (row["cost_status"], row["usage_source"], row["outcome"]) == ("priced", "batch", "success")
    assert row["pricing_key"] == f"openai/{MODEL}"
    assert row["span_id"] == f"{span.context.span_id:016x}"


@pytest.mark.parametrize("declared", ["0.0421", Decimal("0.0421")])
def test_declared_cost_is_used_instead_of_a_price(
    declared: str | Decimal, make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    harness = make_runtime()

    tracked = costspan.track(provider="openai", model=MODEL, cost_usd=declared, source="invoice", **BATCH)

    got = attrs(only_llm_span(spans))
    assert expected_cost(harness, "openai", MODEL, BATCH_USAGE) != pytest.approx(0.0421)  # a different figure
    assert (got[A.COST_STATUS], got[A.COST_USD], got[A.PRICING_KEY]) == ("priced", 0.0421, "declared")
    assert tracked.cost_usd == Decimal("0.0421")
    assert got[A.INPUT_TOKENS] == 1200  # the usage is still recorded beside the declared cost
    assert harness.sample("costspan_cost_usd_total", provider="openai") == pytest.approx(0.0421, rel=1e-12)


def test_declared_cost_prices_what_no_catalog_knows(
    make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    harness = make_runtime()

    costspan.track(provider="acme-ocr", model="scan-v2", operation="generate_content", images=3, cost_usd="0.03")

    got = attrs(only_llm_span(spans))
    assert (got[A.COST_STATUS], got[A.COST_USD], got[A.IMAGE_COUNT]) == ("priced", 0.03, 3)
    assert harness.sample("costspan_unpriced_requests_total") == 0


def test_an_unknown_model_is_unpriced_never_free(
    make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    harness = make_runtime(BUDGETS)

    tracked = costspan.track(provider="openai", model="gpt-nonexistent-9", input_tokens=1000, output_tokens=100)

    got = attrs(only_llm_span(spans))
    assert got[A.COST_STATUS] == "unpriced"
    assert A.COST_USD not in got
    assert (tracked.status, tracked.cost_usd) == ("unpriced", None)
    assert harness.sample("costspan_unpriced_requests_total", provider="openai", model="gpt-nonexistent-9") == 1
    assert harness.sample("costspan_cost_usd_total") == 0
    assert harness.sample("costspan_tokens_total", model="gpt-nonexistent-9", type="input") == 1000
    (budget,) = costspan.status()
    assert budget["used_nanos"] == 0


def test_a_local_model_is_free(make_runtime: Callable[..., Harness], spans: InMemorySpanExporter) -> None:
    make_runtime()

    costspan.track(provider="ollama", model="llama3.2", input_tokens=800, output_tokens=200)

    got = attrs(only_llm_span(spans))
    assert (got[A.COST_STATUS], got[A.COST_USD]) == ("free", 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"input_tokens": -1},
        {"output_tokens": 2.5},
        {"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 8},
        {"output_tokens": 10, "reasoning_tokens": 11},
        {"cost_usd": "twelve cents"},
        {"cost_usd": "-0.10"},
    ],
)
def test_bad_arguments_raise_and_record_nothing(
    bad: dict[str, Any], make_runtime: Callable[..., Harness], spans: InMemorySpanExporter
) -> None:
    """A mistake in the application's own numbers is its to see at once, not a silent wrong bill."""
    harness = make_runtime()

    with pytest.raises(ValueError, match=r"costspan\.track"):
        costspan.track(provider="openai", model=MODEL, **bad)

    assert spans.get_finished_spans() == ()
    assert harness.sample("costspan_requests_total") == 0
