"""How costspan joins an OpenTelemetry setup, automatic or by hand.

Under ``opentelemetry-instrument`` the configurator (the user's distro) builds the providers
first; our ``opentelemetry_pre_instrument`` hook then attaches the CostSpanProcessor and the
sampler guard to the tracer provider it built, before any instrumentor creates a tracer (tracers
copy the sampler when made). costspan never takes the distro or configurator slot.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace

from costspan import runtime as runtime_module
from costspan.runtime import Runtime
from costspan.settings import Settings, load_settings

logger = logging.getLogger("costspan")


def pre_instrument() -> None:
    runtime = runtime_module.get()
    if runtime is not None:
        runtime.attach(trace.get_tracer_provider())


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
    runtime.attach(tracer_provider or trace.get_tracer_provider())
    return runtime
