"""Bounded labels: past a cap, new values fold into ``other`` on Prometheus AND on OTLP, the folds
are counted once per call, and user ids never become a label or attribute anywhere.

Why both sinks: an OTLP backend bills and indexes per series just as Prometheus does, and a
collector's Prometheus translation of the OTLP metrics lands in the same TSDB. A cap enforced
on one path only bounds nothing. Calls go through the real openai SDK against the local
stand-in, so the labels are the ones an instrumented application really produces (requested vs.
responded model, error types from real HTTP errors).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import costspan
from costspan.accounted import Accounted
from costspan.errors import ConfigError
from costspan.exporters.labels import DEFAULT_CAPS, MAX_VALUE_LENGTH, OTHER, LabelLimiter, cut
from costspan.exporters.otlp_metrics import OtlpMetrics
from costspan.exporters.prometheus import PrometheusMetrics
from costspan.facts import CallFacts, Usage
from costspan.pricing import PRICED, Quote
from costspan.settings import load_settings
from costspan.standin import ProviderServer, Scenario
from tests.harness import Harness

MESSAGES: Any = [{"role": "user", "content": "Classify this ticket."}]
SECRET_USER = "user-7f3a9c-alice@example.com"
CAPS_YAML = """
metrics:
  label_caps: {{model: 2, project: 2, feature: 1, error_type: 1}}
budgets:
  - {{name: per-user-daily, per: user, limit_usd: 100, window: day}}
endpoints:
  {base}/v1: openai
"""


def prometheus_values(harness: Harness, family: str, label: str) -> set[str]:
    """Every value of ``label`` on the samples of ``family`` (all sample suffixes)."""
    return {
        s.labels[label]
        for metric in harness.registry.collect()
        if metric.name == family
        for s in metric.samples
        if label in s.labels
    }


def otlp_points(harness: Harness) -> list[tuple[str, dict[str, Any], Any]]:
    return reader_points(harness.metric_reader)


def reader_points(reader: InMemoryMetricReader) -> list[tuple[str, dict[str, Any], Any]]:
    """(metric name, attributes, point) for every OTLP point the reader holds."""
    data = reader.get_metrics_data()
    out: list[tuple[str, dict[str, Any], Any]] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    out.append((metric.name, dict(point.attributes or {}), point))
    return out


def otlp_values(points: list[tuple[str, dict[str, Any], Any]], attribute: str, metric: str | None = None) -> set[str]:
    return {attrs[attribute] for name, attrs, _ in points if attribute in attrs and metric in (None, name)}


def otlp_sum(points: list[tuple[str, dict[str, Any], Any]], metric: str, **attrs: str) -> float:
    return sum(p.value for name, a, p in points if name == metric and all(a.get(k) == v for k, v in attrs.items()))


@pytest.fixture
def capped(make_runtime: Callable[..., Harness], provider_server: ProviderServer, openai_instrumented: Any) -> Harness:
    return make_runtime(CAPS_YAML.format(base=provider_server.base_url.rstrip("/")))


def chat(client: openai.OpenAI, model: str, project: str, feature: str, user: str = SECRET_USER) -> None:
    with costspan.attribute(project=project, feature=feature, user=user):
        client.chat.completions.create(model=model, messages=MESSAGES)


def test_past_the_cap_values_fold_into_other_on_prometheus_and_otlp(
    capped: Harness, openai_client: openai.OpenAI, provider_server: ProviderServer
) -> None:
    # Two models fit the cap of 2; the third and fourth fold. The stand-in answers "gpt-4o" with a
    # dated name, so the responded model competes for the same slots as the requested ones.
    provider_server.set_model_alias("gpt-4o", "gpt-4o-2024-08-06")
    chat(openai_client, "gpt-4o-mini", "research", "search")
    chat(openai_client, "gpt-4.1-nano", "support", "chatbot")  # feature cap 1: "chatbot" folds
    chat(openai_client, "gpt-4o", "billing", "search")  # project cap 2: "billing" folds; both models fold
    chat(openai_client, "gpt-4.1-mini", "research", "search")  # model folds
    for status in (500, 429):  # error_type cap 1: the second error type folds
        provider_server.enqueue(Scenario(status=status))
        with pytest.raises(openai.APIStatusError):
            chat(openai_client, "gpt-4o-mini", "research", "search")

    # Prometheus: every family with a model label shows exactly the admitted values and "other".
    for family in ("costspan_cost_usd", "costspan_requests", "costspan_tokens", "costspan_request_duration_seconds"):
        assert prometheus_values(capped, family, "model") == {"gpt-4o-mini", "gpt-4.1-nano", OTHER}, family
    assert prometheus_values(capped, "costspan_cost_usd", "project") == {"research", "support", OTHER}
    assert prometheus_values(capped, "costspan_cost_usd", "feature") == {"search", OTHER}
    assert prometheus_values(capped, "costspan_requests", "error_type") == {"", "InternalServerError", OTHER}

    # OTLP: the same folding on costspan's counters and on the semconv attributes.
    points = otlp_points(capped)
    for metric in ("costspan.cost.usd", "costspan.requests", "costspan.tokens"):
        assert otlp_values(points, "model", metric) == {"gpt-4o-mini", "gpt-4.1-nano", OTHER}, metric
    assert otlp_values(points, "project") == {"research", "support", OTHER}
    assert otlp_values(points, "feature") == {"search", OTHER}
    assert otlp_values(points, "error_type") == {"", "InternalServerError", OTHER}
    assert otlp_values(points, "gen_ai.request.model") == {"gpt-4o-mini", "gpt-4.1-nano", OTHER}
    assert otlp_values(points, "gen_ai.response.model") <= {"gpt-4o-mini", "gpt-4.1-nano", OTHER}
    assert OTHER in otlp_values(points, "gen_ai.response.model")  # gpt-4o-2024-08-06 was folded
    assert otlp_values(points, "error.type") == {"InternalServerError", OTHER}
    # No attribute of any OTLP point carries a value past its cap (the costspan ones and semconv's).
    for attribute in ("gen_ai.request.model", "gen_ai.response.model", "model", "project"):  # caps of 2
        assert len(otlp_values(points, attribute) - {OTHER}) <= 2, attribute

    # Folds are counted once per call and label, however many sinks record the call.
    folded_model_calls = 2  # gpt-4o (requested and responded), gpt-4.1-mini
    assert capped.sample("costspan_folded_label_values_total", label="model") == folded_model_calls
    assert capped.sample("costspan_folded_label_values_total", label="project") == 1
    assert capped.sample("costspan_folded_label_values_total", label="feature") == 1
    assert capped.sample("costspan_folded_label_values_total", label="error_type") == 1
    assert otlp_sum(points, "costspan.folded_label_values", label="model") == folded_model_calls
    assert otlp_sum(points, "costspan.folded_label_values", label="project") == 1


def test_user_ids_never_become_labels_anywhere(
    capped: Harness, openai_client: openai.OpenAI, spans: Any
) -> None:
    """A per-user budget and attributed calls: the user is on the span (that is what it is for) and
    charged per user, but on no Prometheus label and no OTLP attribute, not even folded."""
    for index in range(3):
        chat(openai_client, "gpt-4o-mini", "research", "search", user=f"{SECRET_USER}-{index}")
    costspan.track(provider="openai", model="gpt-4o-mini", input_tokens=10, user=SECRET_USER, project="research")

    assert any((s.attributes or {}).get("user.id") == f"{SECRET_USER}-0" for s in spans.get_finished_spans())
    assert costspan.status()[0]["members"] == 4  # the budget did see four users

    exposition = generate_latest(capped.registry).decode()
    assert "costspan_budget_spend_usd" in exposition and "costspan_cost_usd_total" in exposition
    assert "alice" not in exposition and "7f3a9c" not in exposition
    label_names = {name for f in text_string_to_metric_families(exposition) for s in f.samples for name in s.labels}
    assert not [name for name in label_names if "user" in name], label_names
    points = otlp_points(capped)
    assert points
    for name, attrs, _ in points:
        assert not [k for k in attrs if "user" in k], (name, attrs)
        assert not [v for v in attrs.values() if "alice" in str(v)], (name, attrs)


def test_one_shared_limiter_folds_alike_in_both_sinks_and_counts_each_call_once() -> None:
    """The sinks on their own (no runtime), given each call's labels as the accounting service gives
    them (resolved once): one limiter, one decision per value, one count per call."""
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    limiter = LabelLimiter({"model": 1})
    sinks = (
        PrometheusMetrics(registry, limiter=limiter),
        OtlpMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), limiter=limiter),
    )
    for model in ("a", "b", "c", "b"):
        facts = CallFacts("openai", model, usage=Usage(input_tokens=5), project="p", duration_s=0.1)
        accounted = Accounted(facts, Quote(PRICED, input_nanos=1000), labels=limiter.call_labels(facts))
        for sink in sinks:
            sink.record(accounted)
    prom = {
        (s.labels["model"], s.value)
        for m in registry.collect()
        if m.name == "costspan_requests"
        for s in m.samples
        if s.name == "costspan_requests_total"
    }
    assert prom == {("a", 1.0), (OTHER, 3.0)}
    folded = [s.value for m in registry.collect() for s in m.samples if s.name == "costspan_folded_label_values_total"]
    assert folded == [3.0]
    points = reader_points(reader)
    otlp = {(attrs["model"], point.value) for name, attrs, point in points if name == "costspan.requests"}
    assert otlp == prom
    assert otlp_sum(points, "costspan.folded_label_values", label="model") == 3


def test_the_cap_holds_exactly_under_concurrent_first_sightings() -> None:
    limiter = LabelLimiter({"model": 50})
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for index in range(200):
            value = limiter("model", f"m{(index * 7 + offset) % 400}")
            with lock:
                results[value] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results) - {OTHER}) == 50
    assert results[OTHER] > 0


def test_empty_values_never_take_a_slot() -> None:
    limiter = LabelLimiter({"feature": 1})
    assert limiter("feature", None) == ""
    assert limiter("feature", "") == ""
    assert limiter("feature", "search") == "search"
    assert limiter("feature", "chat") == OTHER
    assert limiter("feature", None) == ""


def test_caps_come_from_the_yaml_and_default_otherwise(tmp_path: Path) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text("metrics:\n  label_caps: {model: 500, feature: 10}\n")
    settings = load_settings({"COSTSPAN_CONFIG": str(config)})
    assert settings.label_caps == {"model": 500, "feature": 10}
    assert LabelLimiter.from_settings(settings).caps == {**DEFAULT_CAPS, "model": 500, "feature": 10}
    assert LabelLimiter.from_settings(load_settings({})).caps == dict(DEFAULT_CAPS)


def test_the_runtime_applies_the_configured_caps(make_runtime: Callable[..., Harness]) -> None:
    harness = make_runtime("metrics:\n  label_caps: {model: 1}\n")
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1"):
        costspan.track(provider="openai", model=model, input_tokens=10)
    assert prometheus_values(harness, "costspan_requests", "model") == {"gpt-4o-mini", OTHER}
    assert otlp_values(otlp_points(harness), "model", "costspan.requests") == {"gpt-4o-mini", OTHER}
    assert harness.sample("costspan_folded_label_values_total", label="model") == 2


@pytest.mark.parametrize(
    ("yaml_text", "key", "problem"),
    [
        ("metrics: [1]\n", "metrics", "expected a mapping"),
        ("metrics: {caps: {}}\n", "metrics.caps", "unknown key"),
        ("metrics: {label_caps: [model]}\n", "metrics.label_caps", "expected a mapping"),
        ("metrics: {label_caps: {model: 0}}\n", "metrics.label_caps.model", "at least 1, got 0"),
        ("metrics: {label_caps: {model: many}}\n", "metrics.label_caps.model", "got 'many'"),
        ("metrics: {label_caps: {model: true}}\n", "metrics.label_caps.model", "got True"),
        ("metrics: {label_caps: {models: 5}}\n", "metrics.label_caps.models", "did you mean 'model'"),
        ("metrics: {label_caps: {user: 5}}\n", "metrics.label_caps.user", "never metric labels"),
    ],
)
def test_bad_caps_are_config_errors_naming_file_and_key(tmp_path: Path, yaml_text: str, key: str, problem: str) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as raised:
        load_settings({"COSTSPAN_CONFIG": str(config)})
    assert raised.value.source == str(config)
    assert raised.value.key == key
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"{config}: {key}: ")


def test_long_label_values_are_cut_alike_on_prometheus_and_otlp() -> None:
    """A 100 kB project name (and a long model name) cannot bloat /metrics: each is cut to
    MAX_VALUE_LENGTH the documented way, the same on both sinks, and two long names stay distinct."""
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    limiter = LabelLimiter()
    sinks = (
        PrometheusMetrics(registry, limiter=limiter),
        OtlpMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), limiter=limiter),
    )
    huge = "p" * 100_000
    model = "m" * 300
    for project in (huge, huge + "2"):
        accounted = Accounted(
            CallFacts("openai", model, usage=Usage(input_tokens=5, output_tokens=1), project=project, duration_s=0.1),
            Quote(PRICED, input_nanos=1000),
        )
        for sink in sinks:
            sink.record(accounted)
    exposition = generate_latest(registry)
    assert len(exposition) < 20_000
    projects = {s.labels["project"] for m in registry.collect() for s in m.samples if "project" in s.labels}
    assert len(projects) == 2 and all(len(p) == MAX_VALUE_LENGTH for p in projects)
    assert projects == {cut(huge), cut(huge + "2")}
    assert cut(huge) == "p" * 119 + "~" + hashlib.sha256(huge.encode()).hexdigest()[:8]
    models = {s.labels["model"] for m in registry.collect() for s in m.samples if "model" in s.labels}
    assert models == {cut(model)}
    points = reader_points(reader)
    assert otlp_values(points, "project", "costspan.cost.usd") == projects
    assert cut("short") == "short" and cut("x" * MAX_VALUE_LENGTH) == "x" * MAX_VALUE_LENGTH


def test_labels_of_a_call_are_kept_for_the_next_only_when_no_name_was_cut_or_folded() -> None:
    """The labels of repeated names are reused (same object), but a name that had to be cut is not
    kept by the limiter: it must not hold on to whatever large strings a sender makes up."""
    limiter = LabelLimiter()
    short = CallFacts("openai", "gpt-4o", project="research")
    assert limiter.call_labels(short) is limiter.call_labels(CallFacts("openai", "gpt-4o", project="research"))
    long_facts = CallFacts("openai", "gpt-4o", project="p" * 100_000)
    first, again = limiter.call_labels(long_facts), limiter.call_labels(long_facts)
    assert first == again and first is not again and first.project == cut("p" * 100_000)
    capped = LabelLimiter({"project": 1})
    capped.call_labels(short)
    folded = CallFacts("openai", "gpt-4o", project="other-team")
    assert capped.call_labels(folded).project == OTHER
    assert capped.call_labels(folded) is not capped.call_labels(folded)  # a fold is reported on each call
