"""A costspan runtime for one test: real pricer, budgets and metrics, isolated registries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from costspan import runtime as runtime_module
from costspan.runtime import Runtime
from costspan.settings import load_settings


@dataclass
class Harness:
    runtime: Runtime
    registry: CollectorRegistry
    metric_reader: InMemoryMetricReader

    def sample(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus series over the labels not given (0 when absent)."""
        total = 0.0
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def otlp_points(self, name: str) -> list[Any]:
        data = self.metric_reader.get_metrics_data()
        points: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def make_harness(tmp_path: Path, yaml_text: str | None = None, **env: str) -> Harness:
    settings_env = {"COSTSPAN_STORE": "memory://", "COSTSPAN_LEDGER": "off", **env}
    if yaml_text is not None:
        path = tmp_path / "costspan.yaml"
        path.write_text(yaml_text)
        settings_env["COSTSPAN_CONFIG"] = str(path)
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    runtime = runtime_module.build(
        load_settings(settings_env),
        start_endpoint=False,
        registry=registry,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    runtime_module.install(runtime)
    return Harness(runtime, registry, reader)
