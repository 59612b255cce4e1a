"""The process-wide costspan runtime: settings, pricer, budgets, sinks and the OTel hooks.

Built lazily on first use and once per process, because instrumentors, the launcher's hooks,
``costspan.configure`` and ``costspan.track`` may each be the first to need it. A configuration
error disables costspan with one clear log record instead of breaking the host application;
only explicit calls (``configure``, the CLI) raise it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from costspan.accounting import Accounted, ChargeResult, Sink
from costspan.errors import ConfigError, check_keys
from costspan.estimation import EstimationMonitor, TokenCounter
from costspan.pricing import FREE, PRICED, UNPRICED, Pricer, Quote
from costspan.pricing.names import vendor
from costspan.providers import LOCAL_PROVIDERS, is_local_endpoint, named_provider
from costspan.settings import Settings, load_settings
from costspan.usage import USAGE_INVALID, CallFacts, checked

logger = logging.getLogger("costspan")


@dataclass
class Runtime:
    settings: Settings
    pricer: Pricer
    budgets: Any | None = None
    """The BudgetEngine (precheck/charge/release/status), or None when budgets are off."""
    sinks: list[Sink] = field(default_factory=list)
    counter: TokenCounter = field(default_factory=TokenCounter)
    monitor: EstimationMonitor | None = None
    service_name: str = "unknown_service"
    reservations: dict[int, object] = field(default_factory=dict)
    prompt_salt: bytes | None = None
    """Set when ``ledger.prompt_hashes`` is on: instrumentors then hash each request's messages."""
    meter_provider: Any = None
    """Flushed first on close, while the budget store can still answer the gauges' callbacks."""
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _drainers: list[Callable[[], object]] = field(default_factory=list)
    _errors_logged: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    # -- accounting ------------------------------------------------------------------------
    def account(self, facts: CallFacts, reservation: object | None = None) -> Accounted:
        """Price, charge and record one call. Each stage is isolated: one failing never hides another."""
        quote = self.checked_price(facts)
        charge = ChargeResult()
        if self.budgets is not None:
            try:
                charge = self.budgets.charge(facts, quote, reservation)
            except Exception:
                self.log_once("budgets.charge")
        accounted = Accounted(facts, quote, charge)
        for sink in self.sinks:
            try:
                sink.record(accounted)
            except Exception:
                self.log_once(f"sink {type(sink).__name__}")
        return accounted

    def checked_price(self, facts: CallFacts) -> Quote:
        """The price of a call whose usage is checked first: counts no provider would send are
        never priced, charged or refunded, so they are dropped here and the facts say so. Also what
        a copy of an already accounted span is priced with (the gateway), charging nothing."""
        usage, invalid = checked(facts.usage)
        if invalid:
            facts.usage, facts.usage_source = usage, USAGE_INVALID
            facts.has_usage = bool({"input_tokens", "output_tokens"} - invalid) or usage.images > 0
        return self.price(facts)

    def price(self, facts: CallFacts) -> Quote:
        if facts.declared_cost_nanos is not None:
            return Quote(
                PRICED, input_nanos=facts.declared_cost_nanos, key="declared", source="declared by the application"
            )
        if not facts.has_usage and facts.outcome == "success":
            # Not free and not zero: the call happened and its size is unknown.
            return Quote(UNPRICED, reason="the call reported no usage")
        quote = self._quote(facts, facts.model)
        if quote.status == FREE and not self._named_local(facts):
            quote = self._vendor_list_price(facts) or quote
        if quote.status == UNPRICED and facts.response_model and facts.request_model not in ("", facts.model):
            # A response model no catalog knows (OpenAI answers ``davinci-002`` as ``davinci:2023-07-21-v2``):
            # the request model's price, with the key saying so, before giving up.
            fallback = self._quote(facts, facts.request_model)
            if fallback.status == PRICED:
                return replace(fallback, key=f"{fallback.key} (request model; {facts.response_model} unknown)")
        return quote

    def _vendor_list_price(self, facts: CallFacts) -> Quote | None:
        """A vendor's model on a loopback endpoint (a LiteLLM proxy, a company sidecar, an SSH tunnel)
        is billed by the vendor: priced at its list price when a catalog has one, else None (a model
        only a local server has stays free). Not for Ollama's daemon, nor for a model with an Ollama-style
        tag (``deepseek-r1:8b``): those are open weights running here, whatever a vendor calls alike."""
        billed_by = vendor(facts.model)
        model = facts.model.lower()
        if billed_by is None or facts.provider == "ollama" or (":" in model and not model.startswith("ft:")):
            return None
        quote = self.pricer.quote(
            billed_by, facts.model, facts.usage, at=facts.started_at, service_tier=facts.service_tier
        )
        if quote.status != PRICED:
            return None
        return replace(quote, source=f"{quote.source}; by model name on a local endpoint")

    def _named_local(self, facts: CallFacts) -> bool:
        """``endpoints:`` names this local server as a local model server: free, whatever the model."""
        named = named_provider(facts.server_address, facts.server_port, self.settings.endpoints)
        return named is not None and named in LOCAL_PROVIDERS

    def _quote(self, facts: CallFacts, model: str) -> Quote:
        return self.pricer.quote(
            facts.provider,
            model,
            facts.usage,
            at=facts.started_at,
            service_tier=facts.service_tier,
            server_address=facts.server_address if self.is_local(facts) else None,
        )

    def is_local(self, facts: CallFacts) -> bool:
        if facts.local is None:
            facts.local = is_local_endpoint(
                facts.server_address, facts.server_port, facts.provider, self.settings.endpoints
            )
        return facts.local

    def precheck(self, facts: CallFacts, worst_case_nanos: int | None = None) -> object | None:
        """Ask the budget engine before a request leaves; only BudgetExceededError escapes."""
        if self.budgets is None:
            return None
        from costspan.errors import BudgetExceededError

        try:
            return self.budgets.precheck(facts, worst_case_nanos=worst_case_nanos)
        except BudgetExceededError:
            raise
        except Exception:
            self.log_once("budgets.precheck")
            return None

    def release(self, reservation: object | None) -> None:
        if reservation is not None and self.budgets is not None:
            try:
                self.budgets.release(reservation)
            except Exception:
                self.log_once("budgets.release")

    def take_reservation(self, span_id: int) -> object | None:
        return self.reservations.pop(span_id, None)

    def log_once(self, where: str) -> None:
        if where not in self._errors_logged:
            self._errors_logged.add(where)
            logger.exception("costspan: internal error in %s; the application is unaffected", where)

    # -- OpenTelemetry wiring --------------------------------------------------------------
    def attach(self, provider: object) -> bool:
        return attach(provider)

    def tracer_provider(self) -> TracerProvider:
        return tracer_provider(self.service_name)

    # -- lifecycle -------------------------------------------------------------------------
    def add_closer(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def add_drainer(self, drainer: Callable[[], object]) -> None:
        """``drainer()`` writes out what a sink or store holds, and keeps it written from then on."""
        self._drainers.append(drainer)

    def drain(self) -> None:
        """The process was asked to stop (SIGTERM): write out everything recorded so far, and from
        now on write each call as soon as it is recorded, because the process may be killed as soon
        as the application has finished its own shutdown (a server that drains its requests, then
        re-raises SIGTERM with the default action). Recording goes on: calls still in flight are
        recorded as they end, and ``close`` runs at exit as always."""
        for drainer in self._drainers:
            try:
                drainer()
            except Exception:
                self.log_once("drain")
        self._flush_metrics()

    def close(self) -> None:
        """Flush everything recorded and stop; safe to call more than once (atexit calls it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._flush_metrics()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                self.log_once("close")

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
                self.log_once("metrics flush")


_runtime: Runtime | None = None
_disabled = False
_build_lock = threading.Lock()
_processor: Any = None
_private_provider: TracerProvider | None = None
_attached: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
"""Providers the processor is on; weak, so a collected provider's id reused by a new one is not mistaken."""


def _account(facts: CallFacts, reservation: object | None) -> Accounted | None:
    current = get()
    if current is None:
        return None
    if facts.project is None:
        facts.project = current.service_name
    return current.account(facts, reservation)


def _take_reservation(span_id: int) -> object | None:
    current = _runtime
    return current.take_reservation(span_id) if current is not None else None


def processor() -> Any:
    """The process's one CostSpanProcessor; it serves whichever runtime is installed, so a
    provider never needs a second one (the SDK offers no way to remove a processor)."""
    global _processor
    if _processor is None:
        with _build_lock:
            if _processor is None:
                from costspan.processors.cost_span_processor import CostSpanProcessor

                _processor = CostSpanProcessor(_account, take_reservation=_take_reservation)
    return _processor


def attach(provider: object) -> bool:
    """Add the processor and sampler guard to an SDK TracerProvider, once. False if not an SDK one."""
    if not isinstance(provider, TracerProvider):
        return False
    if provider in _attached:
        return True
    span_processor = processor()
    with _build_lock:
        if provider in _attached:
            return True
        from costspan.processors.sampler_guard import guard

        guard(provider)
        provider.add_span_processor(span_processor)
        _attached.add(provider)
    return True


def tracer_provider(service_name: str) -> TracerProvider:
    """The global SDK provider with costspan attached, or a private one when there is none.

    The private provider has no exporter: it exists so calls are still priced, charged and
    counted when the application set up no tracing at all.
    """
    global _private_provider
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        if provider not in _attached:
            attach(provider)
        return provider
    if _private_provider is None:
        private = TracerProvider(resource=Resource.create({"service.name": service_name}))
        attach(private)  # the sampler guard too: OTEL_TRACES_SAMPLER=always_off must not drop accounting
        with _build_lock:
            if _private_provider is None:
                _private_provider = private
    return _private_provider


def _service_name() -> str:
    name = os.environ.get("OTEL_SERVICE_NAME")
    if name:
        return name
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return "unknown_service"


def build(
    settings: Settings, *, start_endpoint: bool = True, meter_provider: Any = None, registry: Any = None
) -> Runtime:
    """Assemble a runtime from settings; tests pass their own Prometheus ``registry`` and meter provider."""
    from costspan.exporters.otlp_metrics import OtlpMetrics
    from costspan.pricing.pricer import build_pricer

    runtime = Runtime(
        settings=settings, pricer=build_pricer(settings), service_name=_service_name(), meter_provider=meter_provider
    )
    from costspan.exporters.labels import LabelLimiter

    limiter = LabelLimiter.from_settings(settings)  # one per runtime: both sinks fold alike
    if registry is not None:
        from costspan.exporters.prometheus import PrometheusMetrics

        prometheus = PrometheusMetrics(registry, limiter=limiter)
    else:
        prometheus = _prometheus_metrics()
        prometheus.use_limiter(limiter)
    runtime.sinks.append(prometheus)
    meter = meter_provider.get_meter("costspan") if meter_provider is not None else None
    runtime.sinks.append(OtlpMetrics(meter, limiter=limiter))
    runtime.monitor = EstimationMonitor(runtime.counter, prometheus.record_estimation_error, sample_rate(settings))

    from costspan.budgets import BudgetEngine

    runtime.budgets = BudgetEngine.from_settings(settings)
    runtime.add_closer(runtime.budgets.close)
    runtime.add_drainer(runtime.budgets.flush)
    _register_budget_metrics(runtime, registry, meter)

    from costspan.exporters.ledger import LedgerSink

    ledger = LedgerSink.from_settings(settings, service=runtime.service_name)
    if ledger is not None:
        ledger.set_drop_hook(prometheus.ledger_rows_dropped.inc)
        runtime.sinks.append(ledger)
        runtime.add_closer(ledger.close)
        runtime.add_drainer(ledger.drain)
        if ledger.prompt_hashes:
            runtime.prompt_salt = ledger.prompt_salt()

    if start_endpoint and (settings.prometheus_port is not None or settings.endpoint_error is not None):
        _start_endpoint(runtime, registry)
    return runtime


def _start_endpoint(runtime: Runtime, registry: Any) -> None:
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
        runtime.add_closer(server.shutdown)


_prometheus: Any = None


def _prometheus_metrics() -> Any:
    """One set of series per process: the default registry refuses a second registration."""
    global _prometheus
    if _prometheus is None:
        from costspan.exporters.prometheus import PrometheusMetrics

        _prometheus = PrometheusMetrics()
    return _prometheus


def _register_budget_metrics(runtime: Runtime, registry: Any, meter: Any) -> None:
    """Budget gauges read the store at scrape time; one collector per registry, swapped to this engine."""
    from costspan.exporters.budget_metrics import register, register_otlp

    register(runtime.budgets, registry)
    register_otlp(meter)


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
            _install_shutdown(_runtime)
    return _runtime


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the process's runtime (``costspan.configure`` and tests)."""
    global _runtime, _disabled
    with _build_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime, _disabled = runtime, False
    _install_shutdown(runtime)
    return runtime


def reset() -> None:
    """Close and forget the runtime (tests)."""
    global _runtime, _disabled
    with _build_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime, _disabled = None, False


SIGTERM_FLUSH_SECONDS = 10.0


def _install_shutdown(runtime: Runtime) -> None:
    atexit.register(runtime.close)
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return
    if getattr(previous, "_costspan", False):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        """Write out what is recorded, then do exactly what SIGTERM did before costspan: costspan
        never decides whether or when the process stops, and keeps recording until it does."""
        current = _runtime
        if current is not None:
            # On a thread, with a deadline: the signal may have interrupted this thread inside
            # costspan's own code, holding a lock the flush needs. Better to go on without the last
            # flush than to hang the shutdown.
            drainer = threading.Thread(target=current.drain, name="costspan-sigterm", daemon=True)
            drainer.start()
            drainer.join(SIGTERM_FLUSH_SECONDS)
        if callable(previous) and previous not in (signal.SIG_IGN, signal.SIG_DFL):
            previous(signum, frame)
        elif previous == signal.SIG_DFL or previous is None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    on_sigterm._costspan = True  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, on_sigterm)
