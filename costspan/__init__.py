"""costspan: what your LLM calls cost, while they run, and a stop before you overspend.

Zero-code use is through ``opentelemetry-instrument``; this module is the small Python API for
the rest: ``configure`` (manual OpenTelemetry setup), ``attribute`` (who a call is for),
``track`` (items no instrumentor sees), ``status`` (budgets and quotas, for in-app display) and
``flush`` (for applications that handle SIGTERM themselves).
"""

from __future__ import annotations

from typing import Any

from costspan.attribution import attribute
from costspan.errors import BudgetExceededError, ConfigError
from costspan.track import track
from costspan.wiring import configure

__version__ = "0.1.0"


def status() -> list[dict[str, Any]]:
    """Every budget and quota: name, kind, window, limit, used, utilization, status, resets_at, projection."""
    from costspan import runtime

    current = runtime.get()
    if current is None or current.budgets is None:
        return []
    return [entry.as_dict() for entry in current.budgets.status()]


def flush() -> None:
    """Write out everything recorded (ledger rows, spend kept during a store outage, the last OTLP
    figures), and from now on commit each call's row before the call returns (async calls then end
    in a worker thread): what costspan does on SIGTERM, for an application that handles its
    signals itself (``COSTSPAN_SIGTERM=false``)."""
    from costspan import runtime

    runtime.drain()


__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "__version__",
    "attribute",
    "configure",
    "flush",
    "status",
    "track",
]
