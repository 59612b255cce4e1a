"""The budget gauges' collector: one per registry, swapped to the newest engine, and the store
error counter."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from costspan.exporters import budget_metrics
from costspan.pricing import PRICED, Quote
from tests.test_budget_stores import facts, free_port, make_engine


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for m in registry.collect() for s in m.samples if s.name == name]


def test_registering_again_swaps_the_engine_without_a_second_collector(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    first = make_engine(tmp_path, "budgets:\n  - {name: old, limit_usd: 1, window: day}\n", "memory://")
    second = make_engine(
        tmp_path,
        "budgets:\n  - {name: new, limit_usd: 2, window: week}\n"
        "quotas:\n  - {name: q, requests_per_minute: 10, tokens_per_day: 500}\n",
        "memory://",
    )
    budget_metrics.register(first, registry)
    budget_metrics.register(second, registry)
    second.charge(facts(), Quote(PRICED, input_nanos=500_000_000))
    assert samples(registry, "costspan_budget_spend_usd") == [({"budget": "new", "window": "week"}, 0.5)]
    assert samples(registry, "costspan_budget_limit_usd") == [({"budget": "new", "window": "week"}, 2.0)]
    assert samples(registry, "costspan_budget_utilization_ratio") == [({"budget": "new", "window": "week"}, 0.25)]
    assert len(samples(registry, "costspan_budget_projected_spend_usd")) == 1
    assert sorted(samples(registry, "costspan_quota_used"), key=str) == [
        ({"quota": "q", "unit": "requests", "window": "minute"}, 1.0),
        ({"quota": "q", "unit": "tokens", "window": "day"}, 15.0),
    ]
    assert generate_latest(registry).decode().count("# TYPE costspan_budget_spend_usd gauge") == 1
    first.close()
    second.close()


def test_a_budget_not_spending_has_no_exhaustion_sample(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    engine = make_engine(tmp_path, "budgets:\n  - {name: idle, limit_usd: 1, window: day}\n", "memory://")
    budget_metrics.register(engine, registry)
    assert samples(registry, "costspan_budget_spend_usd") == [({"budget": "idle", "window": "day"}, 0.0)]
    assert samples(registry, "costspan_budget_exhaustion_seconds") == []
    engine.close()


def test_store_failures_are_counted(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    engine = make_engine(
        tmp_path, "budgets:\n  - {name: b, limit_usd: 1, window: day}\n", f"redis://127.0.0.1:{free_port()}/0"
    )
    budget_metrics.register(engine, registry)
    engine.charge(facts(), Quote(PRICED, input_nanos=1))
    assert samples(registry, "costspan_store_errors_total") == [({"store": "redis"}, 1.0)]
    engine.close()
