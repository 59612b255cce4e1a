"""Money for people: USD nano-dollars shown in the chosen currency, rounded only for display.

A stop-gap for ``costspan.currency`` (another module's job); it reads the same ``currency:``
section (``code``, ``per_usd``) so switching to the shared formatter changes no output contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from costspan.errors import ConfigError
from costspan.money import NANOS_PER_USD
from costspan.settings import Settings

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "MXN": "MX$", "BRL": "R$", "CAD": "CA$"}


@dataclass(frozen=True)
class Currency:
    code: str = "USD"
    per_usd: Decimal = Decimal(1)

    def amount(self, nanos: int) -> Decimal:
        """Exact amount in this currency (USD nanos times the configured rate)."""
        return Decimal(nanos) * self.per_usd / NANOS_PER_USD

    def format(self, nanos: int) -> str:
        """``$1,234.56``; small amounts keep two significant digits (``$0.00042``), never ``$0.00``."""
        value = self.amount(nanos)
        symbol = _SYMBOLS.get(self.code)
        sign = "-" if value < 0 else ""
        value = abs(value)
        if value == 0 or value >= Decimal("0.01"):
            text = f"{value:,.2f}"
        else:
            digits = max(2, -value.adjusted() + 1)
            text = f"{value:.{min(digits, 9)}f}"
        return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {self.code}"


def from_settings(settings: Settings, code: str | None) -> Currency:
    """USD unless asked; another currency needs its rate in the ``currency:`` section."""
    if code is None or code.upper() == "USD":
        return Currency()
    code = code.upper()
    section = settings.section("currency") or {}
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "currency", "expected a mapping with code and per_usd")
    rate: object = None
    if str(section.get("code", "")).upper() == code:
        rate = section.get("per_usd")
    rates = section.get("rates")
    if rate is None and isinstance(rates, dict):
        rate = rates.get(code)
    if rate is None:
        raise ConfigError(settings.source, "currency.per_usd", f"no exchange rate configured for {code}")
    try:
        per_usd = Decimal(str(rate))
    except InvalidOperation as exc:
        raise ConfigError(settings.source, "currency.per_usd", f"expected a number, got {rate!r}") from exc
    if per_usd <= 0:
        raise ConfigError(settings.source, "currency.per_usd", f"expected a positive rate, got {rate!r}")
    return Currency(code, per_usd)


def tokens(n: int) -> str:
    """``1.2M``, ``35.4k``, ``812``: counts people read at a glance."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def usd_string(nanos: int) -> str:
    """Exact decimal USD for machine output (``0.000012345``), no float rounding."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}"
