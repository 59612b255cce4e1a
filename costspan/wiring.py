"""How costspan joins an OpenTelemetry setup, automatic or by hand: the one place that wires.

Under ``opentelemetry-instrument`` the configurator (the user's distro) builds the providers
first; our ``opentelemetry_pre_instrument`` hook then attaches the CostSpanProcessor and the
sampler guard to the tracer provider it built, before any instrumentor creates a tracer (tracers
copy the sampler when made). costspan never takes the distro or configurator slot. With no SDK
provider at all, costspan keeps a private one so calls are still accounted.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from costspan import runtime as runtime_module
from costspan.accounting import Accounting
from costspan.runtime import Runtime
from costspan.settings import Settings, load_settings

if TYPE_CHECKING:
    from costspan.processors.cost_span_processor import CostSpanProcessor

logger = logging.getLogger("costspan")
_lock = threading.Lock()
_processor: CostSpanProcessor | None = None
_private_provider: TracerProvider | None = None
_attached: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
"""Providers the processor is on; weak, so a collected provider's id reused by a new one is not mistaken."""
_last_provider: TracerProvider | None = None
"""The global provider last found attached (the SDK offers no way to take a processor off again)."""


def pre_instrument() -> None:
    runtime = runtime_module.get()
    if runtime is not None:
        attach(trace.get_tracer_provider())


def post_instrument() -> None:
    """Attach again in case a configurator ran late; ``attach`` is idempotent."""
    pre_instrument()


def configure(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    settings: Settings | None = None,
) -> Runtime:
    """Set costspan up for code that configures OpenTelemetry by hand.

    Raises :class:`costspan.ConfigError` on a bad configuration: an explicit call deserves an
    explicit error, unlike the automatic hooks, which log it and stand aside.
    """
    settings = settings or load_settings()  # a bad file raises here, before the running setup is touched
    runtime_module.reset()  # the old runtime lets go of the /metrics port before the new one binds it
    runtime = runtime_module.build(settings, meter_provider=meter_provider)
    runtime_module.install(runtime)
    attach(tracer_provider or trace.get_tracer_provider())
    return runtime


def _accounting() -> Accounting | None:
    current = runtime_module.get()
    return None if current is None else current.accounting


def processor() -> CostSpanProcessor:
    """The process's one CostSpanProcessor; it serves whichever runtime is installed, so a
    provider never needs a second one (the SDK offers no way to remove a processor)."""
    global _processor
    if _processor is None:
        with _lock:
            if _processor is None:
                from costspan.processors.cost_span_processor import CostSpanProcessor

                _processor = CostSpanProcessor(_accounting)
    return _processor


def attach(provider: object) -> bool:
    """Add the processor and sampler guard to an SDK TracerProvider, once. False if not an SDK one."""
    if not isinstance(provider, TracerProvider):
        return False
    if provider in _attached:
        return True
    span_processor = processor()
    with _lock:
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
    global _private_provider, _last_provider
    provider = trace.get_tracer_provider()
    if provider is _last_provider:  # every call asks: one identity test instead of a weak-set lookup
        return provider
    if isinstance(provider, TracerProvider):
        if provider not in _attached:
            attach(provider)
        _last_provider = provider
        return provider
    if _private_provider is None:
        private = TracerProvider(resource=Resource.create({"service.name": service_name}))
        attach(private)  # the sampler guard too: OTEL_TRACES_SAMPLER=always_off must not drop accounting
        with _lock:
            if _private_provider is None:
                _private_provider = private
    return _private_provider
