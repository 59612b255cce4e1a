"""The gateway's lifecycle: build the parts, start the receivers, and stop cleanly.

Stopping (SIGTERM) goes in the order that loses nothing accepted: refuse new requests (HTTP
503, gRPC UNAVAILABLE: senders retry another replica), let the requests being handled finish,
account every request already answered (they were acknowledged before they were accounted, see
:mod:`.intake`; at most ``limits.queue_spans`` spans), drain the forwarding queue to the next hop
within ``limits.drain_seconds`` (what is left is counted and logged), then close the runtime,
which flushes the ledger, the OTLP metrics and the budget store.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from costspan import runtime as runtime_module
from costspan.budgets.guard import GuardedStore
from costspan.budgets.store import open_store
from costspan.gateway.accountant import Accountant
from costspan.gateway.claims import SpanClaims
from costspan.gateway.config import GatewayConfig
from costspan.gateway.forwarder import Forwarder
from costspan.gateway.intake import Intake
from costspan.gateway.receiver_grpc import GrpcReceiver
from costspan.gateway.receiver_http import HttpReceiver
from costspan.gateway.selfmetrics import GatewayMetrics
from costspan.gateway.senders import make_sender
from costspan.gateway.window import TraceWindow
from costspan.settings import Settings

logger = logging.getLogger("costspan")
REQUEST_GRACE_S = 10.0
"""How long requests already being handled at shutdown may take to finish."""


class Gateway:
    def __init__(self, settings: Settings, config: GatewayConfig, *, registry: CollectorRegistry | None = None) -> None:
        """``registry``: where the cost metrics and the self-metrics go (tests); default the process's."""
        self.config = config
        self.metrics = GatewayMetrics()
        self.registry = registry if registry is not None else REGISTRY
        """Where ``/metrics`` reads from: the cost metrics and, through a collector, the self-metrics."""
        self.registry.register(self.metrics.collector())
        self.meter_provider = _meter_provider()
        self.runtime = runtime_module.build(settings, meter_provider=self.meter_provider, registry=registry)
        self.claims = SpanClaims(
            GuardedStore(open_store(settings.store_url, settings.source)), config.dedup_ttl_seconds
        )
        self.window = TraceWindow(config.limits.window_spans)
        accountant = Accountant(self.runtime, self.claims, self.window, config.attribution)
        forward = config.forward
        self.forwarder = (
            Forwarder(make_sender(forward), forward, self.metrics) if forward.endpoint is not None else None
        )
        self.intake = Intake(accountant, self.forwarder, config.limits.queue_spans, self.metrics)
        self.http = HttpReceiver(config, self.intake) if config.http is not None else None
        self.grpc = GrpcReceiver(config, self.intake) if config.grpc is not None else None
        self._stopped = False

    def start(self) -> None:
        self.intake.start()
        if self.forwarder is not None:
            self.forwarder.start()
        if self.http is not None:
            self.http.start()
        if self.grpc is not None:
            self.grpc.start()

    def describe(self) -> str:
        parts = []
        if self.http is not None and self.config.http is not None:
            parts.append(f"http={self.config.http[0]}:{self.http.port}")
        if self.grpc is not None and self.config.grpc is not None:
            parts.append(f"grpc={self.config.grpc[0]}:{self.grpc.port}")
        forward = self.config.forward
        parts.append(f"forward={forward.endpoint} ({forward.protocol})" if forward.endpoint else "forward=none")
        return " ".join(parts)

    def stop(self) -> int:
        """Stop as the module says; returns the spans that could not be forwarded (0: nothing lost)."""
        if self._stopped:
            return 0
        self._stopped = True
        self.intake.accepting = False
        if self.http is not None:
            self.http.stop()
        if self.grpc is not None:
            self.grpc.stop(grace=REQUEST_GRACE_S)
        if not self.intake.close(REQUEST_GRACE_S):
            logger.error("costspan gateway: requests still being handled at the shutdown deadline were refused")
        lost = self.forwarder.drain(self.config.limits.drain_seconds) if self.forwarder is not None else 0
        self.claims.close()
        self.runtime.close()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        return lost


def _meter_provider() -> Any:
    """An SDK MeterProvider exporting over OTLP when ``OTEL_METRICS_EXPORTER`` names ``otlp`` (as the
    launcher would for an application); None otherwise (Prometheus alone)."""
    if "otlp" not in os.environ.get("OTEL_METRICS_EXPORTER", "").split(","):
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        exporter = HttpExporter()
    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter)], resource=Resource.create())
