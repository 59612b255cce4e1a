"""Budget and quota gauges, read from the budget store when they are scraped or exported.

Why a custom collector instead of ``Gauge`` objects: the figures live in the shared store, not
in this process. Setting gauges from every worker of a pre-fork server would publish the same
spend once per worker (and summed, multiplied); reading the store at scrape time publishes it
once, from whichever process serves ``/metrics``. For the same reason the collector is added to
the multiprocess exposition registry (:func:`collector`), where ordinary gauges would be
aggregated across workers. Store failures, which happen per process, are an ordinary counter.

Tests and ``costspan.configure`` build many runtimes in one process: :func:`register` swaps the
engine the one collector reads instead of registering a second one.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from costspan.budgets import BudgetEngine, BudgetStatus
from costspan.money import nanos_to_float

_Observer = Callable[[CallbackOptions], Iterable[Observation]]
_OTLP_MAX_AGE_S = 1.0
"""One store read serves all the OTLP gauges of one collection (each has its own callback)."""


class _Current:
    """The engine the gauges read, and its last status."""

    def __init__(self) -> None:
        self.engine: BudgetEngine | None = None
        self._lock = threading.Lock()
        self._cached: list[BudgetStatus] = []
        self._cached_at = float("-inf")

    def swap(self, engine: BudgetEngine | None) -> None:
        with self._lock:
            self.engine, self._cached, self._cached_at = engine, [], float("-inf")

    def statuses(self, max_age: float = 0.0) -> list[BudgetStatus]:
        """The status read at most ``max_age`` seconds ago (a scrape always reads afresh)."""
        with self._lock:
            now = time.monotonic()
            if now - self._cached_at > max_age:
                self._cached = self.engine.status() if self.engine is not None else []
                self._cached_at = now
            return self._cached


_current = _Current()


class BudgetCollector(Collector):
    def describe(self) -> list[Any]:
        """Nothing: describing would read the store at registration time."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        budget = ["budget", "window"]
        spend = GaugeMetricFamily(
            "costspan_budget_spend_usd", "Spend in the budget's current window, USD.", labels=budget
        )
        limit = GaugeMetricFamily("costspan_budget_limit_usd", "The budget's limit, USD.", labels=budget)
        utilization = GaugeMetricFamily(
            "costspan_budget_utilization_ratio", "Spend divided by limit (1 = exceeded).", labels=budget
        )
        projected = GaugeMetricFamily(
            "costspan_budget_projected_spend_usd",
            "Spend at the end of the window if the window's pace so far holds, USD.",
            labels=budget,
        )
        exhaustion = GaugeMetricFamily(
            "costspan_budget_exhaustion_seconds",
            "Seconds until the limit at the window's pace so far (0: reached; absent: not spending).",
            labels=budget,
        )
        quota = ["quota", "unit", "window"]
        used = GaugeMetricFamily("costspan_quota_used", "Requests or tokens used in the quota's window.", labels=quota)
        quota_limit = GaugeMetricFamily("costspan_quota_limit", "The quota's limit in its window.", labels=quota)
        for entry in _current.statuses():
            if entry.kind == "budget":
                labels = [entry.name, entry.window]
                spend.add_metric(labels, nanos_to_float(entry.used))
                limit.add_metric(labels, nanos_to_float(entry.limit))
                utilization.add_metric(labels, entry.utilization)
                projected.add_metric(labels, nanos_to_float(entry.projection.projected))
                if entry.projection.exhaustion_seconds is not None:
                    exhaustion.add_metric(labels, entry.projection.exhaustion_seconds)
            else:
                labels = [entry.name, entry.unit, entry.window]
                used.add_metric(labels, entry.used)
                quota_limit.add_metric(labels, entry.limit)
        yield from (spend, limit, utilization, projected, exhaustion, used, quota_limit)


_COLLECTOR = BudgetCollector()
_registries: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_meters: weakref.WeakSet[Any] = weakref.WeakSet()
_register_lock = threading.Lock()
_global_meter: Meter | None = None


def collector() -> BudgetCollector:
    """The one collector, for registries built elsewhere (the multiprocess exposition registry)."""
    return _COLLECTOR


def register(engine: BudgetEngine | None, registry: CollectorRegistry | None = None) -> None:
    """Serve ``engine``'s budgets from ``registry`` (the default one unless given); idempotent."""
    registry = REGISTRY if registry is None else registry
    with _register_lock:
        errors = _registries.get(registry)
        if errors is None:
            registry.register(_COLLECTOR)
            errors = Counter(
                "costspan_store_errors",
                "Budget store operations that failed; calls went on (fail-open) and their spend was kept.",
                ["store"],
                registry=registry,
            )
            _registries[registry] = errors
    _current.swap(engine)
    if engine is not None:
        engine.set_error_hook(lambda backend: errors.labels(backend).inc())


def register_otlp(meter: Meter | None = None) -> None:
    """The same gauges as OpenTelemetry observable gauges on ``meter`` (once per meter).

    None means the global MeterProvider's, through one meter kept here: ``get_meter`` returns a
    new proxy each time, and each would register the gauges again."""
    global _global_meter
    with _register_lock:
        if meter is None:
            if _global_meter is None:
                _global_meter = metrics.get_meter("costspan.budgets")
            meter = _global_meter
        if meter in _meters:
            return
        _meters.add(meter)
    budget_gauges = (
        ("costspan.budget.spend_usd", "{USD}", lambda s: nanos_to_float(s.used)),
        ("costspan.budget.limit_usd", "{USD}", lambda s: nanos_to_float(s.limit)),
        ("costspan.budget.utilization", "1", lambda s: s.utilization),
        ("costspan.budget.projected_spend_usd", "{USD}", lambda s: nanos_to_float(s.projection.projected)),
        ("costspan.budget.exhaustion", "s", lambda s: s.projection.exhaustion_seconds),
    )
    for name, unit, value in budget_gauges:
        meter.create_observable_gauge(name, [_observer("budget", value)], unit=unit)
    meter.create_observable_gauge("costspan.quota.used", [_observer("quota", lambda s: s.used)], unit="{count}")
    meter.create_observable_gauge("costspan.quota.limit", [_observer("quota", lambda s: s.limit)], unit="{count}")


def _observer(kind: str, value: Callable[[BudgetStatus], float | None]) -> _Observer:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for entry in _current.statuses(_OTLP_MAX_AGE_S):
            if entry.kind != kind:
                continue
            number = value(entry)
            if number is None:
                continue
            if kind == "budget":
                yield Observation(number, {"budget": entry.name, "window": entry.window})
            else:
                yield Observation(number, {"quota": entry.name, "unit": entry.unit, "window": entry.window})

    return observe
