"""Money for people in another currency, from a configured rate: ``currency: {code: EUR, per_usd: 0.92}``.

Spans, metrics and stores stay in USD nano-dollars (docs/architecture.md, rule 6); only what people read (reports,
``costspan prices quote``, advice) is converted, always labelled with its code, so nobody mistakes
a converted figure for a billed amount. One module so every command reads the section the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from costspan.errors import ConfigError, check_keys
from costspan.money import NANOS_PER_USD
from costspan.settings import Settings

_CODE = re.compile(r"^[A-Z]{3}$")
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "MXN": "MX$", "BRL": "R$", "CAD": "CA$"}


@dataclass(frozen=True)
class Currency:
    code: str = "USD"
    per_usd: Decimal = Decimal(1)

    @property
    def is_usd(self) -> bool:
        return self.code == "USD"

    def amount(self, nanos: int) -> Decimal:
        """The exact amount in this currency (never rounded: display code rounds)."""
        return Decimal(nanos) * self.per_usd / NANOS_PER_USD

    def label(self) -> str:
        return f"{self.code} at {self.per_usd} per USD"

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


def configured(settings: Settings) -> Currency:
    """The ``currency`` section, validated; USD when absent."""
    section = settings.section("currency")
    if section is None:
        return Currency()
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "currency", "expected a mapping like {code: EUR, per_usd: 0.92}")
    check_keys(settings.source, "currency", section, ("code", "per_usd"))
    code = str(section.get("code", "")).strip().upper()
    if not _CODE.match(code):
        raise ConfigError(settings.source, "currency.code", f"expected a 3-letter currency code, got {code!r}")
    if code == "USD":
        return Currency()
    return Currency(code, _rate(settings, "currency.per_usd", code, section.get("per_usd")))


def requested(settings: Settings, code: str | None) -> Currency:
    """USD unless asked (``--currency EUR``); another currency needs its rate in the ``currency:`` section,
    as ``code``/``per_usd`` or under ``rates: {EUR: 0.92, GBP: 0.79}``."""
    if code is None or code.upper() == "USD":
        return Currency()
    code = code.upper()
    section = settings.section("currency") or {}
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "currency", "expected a mapping with code and per_usd")
    if str(section.get("code", "")).upper() == code:
        return configured(settings)
    rates = section.get("rates")
    rate = rates.get(code) if isinstance(rates, dict) else None
    if rate is None:
        raise ConfigError(settings.source, "currency.per_usd", f"no exchange rate configured for {code}")
    return Currency(code, _rate(settings, f"currency.rates.{code}", code, rate))


def _rate(settings: Settings, key: str, code: str, rate: object) -> Decimal:
    try:
        per_usd = Decimal(str(rate)) if not isinstance(rate, bool) and rate is not None else None
    except InvalidOperation:
        per_usd = None
    if per_usd is None or not per_usd.is_finite() or per_usd <= 0:
        raise ConfigError(settings.source, key, f"expected a positive rate for {code}, got {rate!r}")
    return per_usd
