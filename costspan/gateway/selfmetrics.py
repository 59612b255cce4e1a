"""The gateway's own health figures, in a registry of their own.

Kept apart from the runtime's cost metrics (whose names the dashboards and the README's Metrics
table fix) and served beside them on the same ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

DROP_REASONS = ("invalid", "rejected_by_next_hop", "retries_exhausted", "shutdown")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "costspan_gateway_spans_received", "Spans in requests the gateway accepted.", ["transport"], registry=r
        )
        self.forwarded = Counter("costspan_gateway_spans_forwarded", "Spans the next hop accepted.", registry=r)
        self.dropped = Counter(
            "costspan_gateway_spans_dropped",
            "Spans given up: malformed ids (invalid), refused by the next hop, retries exhausted, left at shutdown.",
            ["reason"],
            registry=r,
        )
        self.queue = Gauge("costspan_gateway_queue_spans", "Spans waiting for the next hop.", registry=r)
        self.accounting_queue = Gauge(
            "costspan_gateway_accounting_queue_spans",
            "Spans accepted (answered) and not yet accounted.",
            registry=r,
        )
        self.accounting_delay = Histogram(
            "costspan_gateway_accounting_delay_seconds",
            "Time from a request's acceptance to the end of its accounting (how far spend lags the answer).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.export_duration = Histogram(
            "costspan_gateway_export_duration_seconds",
            "Time of one export attempt to the next hop.",
            ["outcome"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.genai = Counter(
            "costspan_gateway_genai_spans",
            "LLM spans seen, by what became of them: the cost status (priced, free, unpriced), "
            "counted_in (another span of the call carries the charge), duplicate, no_model, error.",
            ["status"],
            registry=r,
        )
        self.requests = Counter(
            "costspan_gateway_requests",
            "Export requests by transport and outcome (accepted, invalid, too_large, unsupported, "
            "unauthorized, throttled, unavailable).",
            ["transport", "outcome"],
            registry=r,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)

    def collector(self) -> _Served:
        """A collector to register in the registry ``/metrics`` serves, so both sets share one endpoint."""
        return _Served(self.registry)


class _Served:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
