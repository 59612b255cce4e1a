"""Every check the runtime makes of a configuration, without starting anything.

``costspan status`` runs it, so the command fails (exit status 2, the message naming source,
key and problem) on exactly the problems that disable costspan, or its /metrics endpoint, in
the application: a configuration that passes here is one the application runs with in full.
Nothing is opened, bound or written.
"""

from __future__ import annotations

from costspan.settings import Settings


def check(settings: Settings) -> None:
    """Raise the first :class:`~costspan.errors.ConfigError` the runtime would meet."""
    from costspan.budgets.config import parse as parse_budgets
    from costspan.exporters import prometheus_endpoint
    from costspan.ledger import config as ledger_config
    from costspan.money import configured_currency
    from costspan.pricing.pricer import build_pricer
    from costspan.runtime import sample_rate

    build_pricer(settings)
    parse_budgets(settings)
    ledger_config.load(settings)
    sample_rate(settings)
    configured_currency(settings)
    prometheus_endpoint.check(settings)
