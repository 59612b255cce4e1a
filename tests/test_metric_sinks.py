"""The two metric sinks keep what a call's labels record into between calls (the labelled children,
the OTLP attribute sets). These tests pin what that must not change: a series appears only when a
call records into it, outcomes sharing labels stay apart, and a label set seen again adds up."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from costspan.accounted import Accounted
from costspan.exporters.labels import LabelLimiter
from costspan.exporters.otlp_metrics import OtlpMetrics
from costspan.exporters.prometheus import PrometheusMetrics
from costspan.facts import CallFacts, Usage
from costspan.pricing import PRICED, UNPRICED, Quote


def _call(error_type: str | None = None, **usage: int) -> CallFacts:
    return CallFacts(
        provider="openai",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        usage=Usage(**usage),
        duration_s=0.5,
        error_type=error_type,
        project="shop",
        feature="search",
    )


def _record(sinks: list[Any], limiter: LabelLimiter, facts: CallFacts, quote: Quote) -> None:
    accounted = Accounted(facts, quote, labels=limiter.call_labels(facts))
    for sink in sinks:
        sink.record(accounted)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _otlp_points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        (metric.name, tuple(sorted((point.attributes or {}).items()))): getattr(point, "value", None)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def test_blocked_call_makes_only_its_request_series() -> None:
    registry, limiter = CollectorRegistry(), LabelLimiter()
    prometheus = PrometheusMetrics(registry, limiter=limiter)
    _record([prometheus], limiter, _call("BudgetExceededError"), Quote(PRICED))
    names = {name for name, _ in _samples(registry)}
    assert "costspan_requests_total" in names
    assert not {"costspan_cost_usd_total", "costspan_tokens_total", "costspan_request_duration_seconds_count"} & names


def test_outcomes_with_the_same_labels_count_apart_and_add_up() -> None:
    registry, limiter = CollectorRegistry(), LabelLimiter()
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    sinks: list[Any] = [PrometheusMetrics(registry, limiter=limiter), OtlpMetrics(meter, limiter=limiter)]
    priced = Quote(PRICED, input_nanos=1_500, output_nanos=2_500)
    for _ in range(3):
        _record(sinks, limiter, _call(input_tokens=10, output_tokens=4, reasoning_tokens=2), priced)
    _record(sinks, limiter, _call("APITimeoutError"), Quote(UNPRICED))

    samples = _samples(registry)
    base = (("model", "gpt-4o-mini-2024-07-18"), ("operation", "chat"), ("provider", "openai"))
    success = tuple(sorted((*base, ("outcome", "success"), ("error_type", ""))))
    error = tuple(sorted((*base, ("outcome", "error"), ("error_type", "APITimeoutError"))))
    assert samples[("costspan_requests_total", success)] == 3
    assert samples[("costspan_requests_total", error)] == 1
    by_type = {
        dict(labels)["type"]: value for (name, labels), value in samples.items() if name == "costspan_tokens_total"
    }
    assert by_type == {"input": 30, "output": 12, "reasoning": 6}
    cost = [value for (name, _), value in samples.items() if name == "costspan_cost_usd_total"]
    assert cost == [3 * 4_000 / 1e9]
    unpriced = [value for (name, _), value in samples.items() if name == "costspan_unpriced_requests_total"]
    assert unpriced == [1]

    points = _otlp_points(reader)
    requests = {dict(attrs)["outcome"]: value for (name, attrs), value in points.items() if name == "costspan.requests"}
    assert requests == {"success": 3, "error": 1}
    otlp_types = {dict(attrs)["type"]: value for (name, attrs), value in points.items() if name == "costspan.tokens"}
    assert otlp_types == {"input": 30, "output": 12, "reasoning": 6}


def test_a_label_set_seen_again_after_the_cache_is_emptied_still_adds_up() -> None:
    registry, limiter = CollectorRegistry(), LabelLimiter()
    prometheus = PrometheusMetrics(registry, limiter=limiter)
    facts = _call(input_tokens=7)
    _record([prometheus], limiter, facts, Quote(PRICED, input_nanos=1))
    prometheus._series.clear()
    _record([prometheus], limiter, facts, Quote(PRICED, input_nanos=1))
    tokens = [value for (name, _), value in _samples(registry).items() if name == "costspan_tokens_total"]
    assert tokens == [14]
