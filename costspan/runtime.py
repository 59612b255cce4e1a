"""The composition root: one costspan runtime per process, built from the settings.

Built lazily on first use and once per process, because instrumentors, the launcher's hooks,
``costspan.configure`` and ``costspan.track`` may each be the first to need it. A configuration
error disables costspan with one clear log record instead of breaking the host application;
only explicit calls (``configure``, the CLI) raise it. How costspan joins OpenTelemetry lives in
:mod:`costspan.wiring`, the process lifecycle in :mod:`costspan.lifecycle`, and the accounting
itself in :mod:`costspan.accounting`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from costspan import lifecycle
from costspan.accounted import Sink
from costspan.accounting import Accounting
from costspan.errors import ConfigError, check_keys
from costspan.estimation import EstimationMonitor, TokenCounter
from costspan.logs import log_once
from costspan.settings import Settings, load_settings

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from costspan.budgets.engine import BudgetEngine
    from costspan.exporters.prometheus import PrometheusMetrics
    from costspan.pricing import Pricer

logger = logging.getLogger("costspan")


@dataclass
class Runtime:
    settings: Settings
    accounting: Accounting
    counter: TokenCounter = field(default_factory=TokenCounter)
    monitor: EstimationMonitor | None = None
    prompt_salt: bytes | None = None
    """Set when ``ledger.prompt_hashes`` is on: instrumentors then hash each request's messages."""
    meter_provider: MeterProvider | None = None
    """Flushed first on close, while the budget store can still answer the gauges' callbacks."""
    lifecycle: lifecycle.Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.lifecycle = lifecycle.Lifecycle(self._flush_metrics)

    @property
    def budgets(self) -> BudgetEngine | None:
        return self.accounting.budgets

    @property
    def pricer(self) -> Pricer:
        return self.accounting.pricer

    @property
    def service_name(self) -> str:
        return self.accounting.service_name

    @property
    def sinks(self) -> list[Sink]:
        return list(self.accounting.sinks)

    def attach(self, provider: object) -> bool:
        from costspan import wiring

        return wiring.attach(provider)

    def drain(self) -> None:
        self.lifecycle.drain()

    def close(self) -> None:
        self.lifecycle.close()

    def _flush_metrics(self) -> None:
        """Export the last OTLP figures now: the SDK's own exit hook runs after ours (atexit is
        last-in, first-out), when the budget store behind the observable gauges is closed."""
        from opentelemetry import metrics

        provider = self.meter_provider or metrics.get_meter_provider()
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            try:
                flush(timeout_millis=5000)
            except Exception:
                log_once("metrics flush")


_runtime: Runtime | None = None
_disabled = False
_build_lock = threading.Lock()


def service_name() -> str:
    """The service's name as OpenTelemetry's variables give it: the project of calls that name none."""
    name = os.environ.get("OTEL_SERVICE_NAME")
    if name:
        return name
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return "unknown_service"


def build(
    settings: Settings,
    *,
    start_endpoint: bool = True,
    meter_provider: MeterProvider | None = None,
    registry: CollectorRegistry | None = None,
) -> Runtime:
    """Assemble a runtime from settings; tests pass their own Prometheus ``registry`` and meter provider."""
    from costspan.budgets import BudgetEngine
    from costspan.exporters.budget_metrics import register, register_otlp
    from costspan.exporters.labels import LabelLimiter
    from costspan.exporters.ledger import LedgerSink
    from costspan.exporters.otlp_metrics import OtlpMetrics
    from costspan.pricing.pricer import build_pricer

    limiter = LabelLimiter.from_settings(settings)  # one per runtime: both sinks fold alike
    prometheus = _prometheus_metrics(registry, limiter)
    meter = meter_provider.get_meter("costspan") if meter_provider is not None else None
    budgets = BudgetEngine.from_settings(settings)
    sinks: list[Sink] = [prometheus, OtlpMetrics(meter, limiter=limiter)]
    accounting = Accounting(
        pricer=build_pricer(settings),
        limiter=limiter,
        budgets=budgets,
        sinks=sinks,
        endpoints=settings.endpoints,
        service_name=service_name(),
    )
    runtime = Runtime(settings=settings, accounting=accounting, meter_provider=meter_provider)
    runtime.monitor = EstimationMonitor(runtime.counter, prometheus.record_estimation_error, sample_rate(settings))
    runtime.lifecycle.add_drainer(accounting.drain)
    runtime.lifecycle.add_closer(budgets.close)
    runtime.lifecycle.add_drainer(budgets.flush)
    register(budgets, registry)  # budget gauges read the store at scrape time
    register_otlp(meter)

    ledger = LedgerSink.from_settings(settings, service=accounting.service_name)
    if ledger is not None:
        ledger.set_drop_hook(prometheus.ledger_rows_dropped.inc)
        sinks.append(ledger)
        runtime.lifecycle.add_closer(ledger.close)
        runtime.lifecycle.add_drainer(ledger.drain)
        if ledger.prompt_hashes:
            runtime.prompt_salt = ledger.prompt_salt()

    if start_endpoint and (settings.prometheus_port is not None or settings.endpoint_error is not None):
        _start_endpoint(runtime, registry)
    runtime.lifecycle.add_closer(accounting.close)  # closers run last-added first: charges still queued go first
    return runtime


def _start_endpoint(runtime: Runtime, registry: CollectorRegistry | None) -> None:
    """Serve /metrics; a bad endpoint setting costs the endpoint alone, like a busy port."""
    from costspan.exporters.budget_metrics import collector
    from costspan.exporters.prometheus_endpoint import exposition_registry, serve

    served = registry if registry is not None else exposition_registry([collector()])
    try:
        server = serve(runtime.settings, served)
    except ConfigError as exc:
        logger.error("costspan: no /metrics endpoint: %s; calls are still priced, charged and recorded", exc)
        return
    if server is not None:
        runtime.lifecycle.add_closer(server.shutdown)


_prometheus: PrometheusMetrics | None = None


def _prometheus_metrics(registry: CollectorRegistry | None, limiter: object) -> PrometheusMetrics:
    """The sink on ``registry``; on the default registry, one set of series per process (it refuses
    a second registration), which a new runtime takes over with its own limiter."""
    from costspan.exporters.labels import LabelLimiter
    from costspan.exporters.prometheus import PrometheusMetrics

    assert isinstance(limiter, LabelLimiter)
    if registry is not None:
        return PrometheusMetrics(registry, limiter=limiter)
    global _prometheus
    if _prometheus is None:
        _prometheus = PrometheusMetrics()
    _prometheus.use_limiter(limiter)
    return _prometheus


def sample_rate(settings: Settings) -> float:
    """``estimation.sample_rate``: the share of calls re-counted locally to measure the estimator."""
    section = settings.section("estimation") or {}
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "estimation", "expected a mapping like {sample_rate: 0.1}")
    check_keys(settings.source, "estimation", section, ("sample_rate",))
    rate = section.get("sample_rate", 0.1)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ConfigError(settings.source, "estimation.sample_rate", f"expected a share from 0 to 1, got {rate!r}")
    return float(rate)


def get() -> Runtime | None:
    """The runtime, built on first use; None when costspan is disabled by a bad configuration."""
    global _runtime, _disabled
    if _runtime is not None or _disabled:
        return _runtime
    with _build_lock:
        if _runtime is None and not _disabled:
            try:
                _runtime = build(load_settings())
            except Exception as exc:
                _disabled = True
                logger.error("costspan is disabled: %s", exc)
                return None
            _install_lifecycle(_runtime)
    return _runtime


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the process's runtime (``costspan.configure`` and tests)."""
    global _runtime, _disabled
    with _build_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime, _disabled = runtime, False
    _install_lifecycle(runtime)
    return runtime


def reset() -> None:
    """Close and forget the runtime (tests)."""
    global _runtime, _disabled
    with _build_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime, _disabled = None, False


def drain() -> None:
    """Write out everything the current runtime holds (SIGTERM, or ``costspan.flush()``)."""
    current = _runtime
    if current is not None:
        current.drain()


def _install_lifecycle(runtime: Runtime) -> None:
    lifecycle.install(runtime.close, drain, sigterm=runtime.settings.sigterm)
