"""Money: exact integer nano-dollars, and their display in another currency.

Stores, ledger and counters add integers so that a sum over a million calls equals the sum of the
calls to the last unit. Micro-dollars would round a five-token embedding ($0.0000001) to zero, so
the unit is the nano-dollar; an int64 still holds $9.2 billion.

Spans, metrics and stores stay in USD nano-dollars (DESIGN.md); only what people read (reports,
``costspan prices quote``, advice) is converted, from a configured rate
(``currency: {code: EUR, per_usd: 0.92}``), and always labelled with its code, so nobody mistakes
a converted figure for a billed amount. One module, so every command reads the section the same
way and every figure is rounded in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from costspan.errors import ConfigError, check_keys
from costspan.settings import Settings

NANOS_PER_USD = 1_000_000_000
MAX_NANOS = 2**63 - 1
"""The largest count a store or the ledger holds (SQLite and Redis integers are 64-bit)."""
_NANO = Decimal(1)
MAX_CALL_NANOS = 2**53 - 1
"""The most one call may cost: about nine million dollars, far beyond any real call. Redis's Lua
compares counters as doubles, exact below 2**53; a larger amount can only come from a bad value."""


def usd_to_nanos(usd: Decimal | int | str) -> int:
    """Round an exact USD amount to whole nano-dollars (banker's rounding: no drift in sums)."""
    return int((Decimal(usd) * NANOS_PER_USD).quantize(_NANO, rounding=ROUND_HALF_EVEN))


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def nanos_to_float(nanos: int) -> float:
    """For span attributes and metric samples, which are floats by protocol; never summed by us."""
    return nanos / NANOS_PER_USD


def usd_string(nanos: int) -> str:
    """Exact decimal USD for machine output (``0.000012345``), no float rounding."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


# -- display in another currency ---------------------------------------------------------------

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


def configured_currency(settings: Settings) -> Currency:
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


def requested_currency(settings: Settings, code: str | None) -> Currency:
    """USD unless asked (``--currency EUR``); another currency needs its rate in the ``currency:`` section,
    as ``code``/``per_usd`` or under ``rates: {EUR: 0.92, GBP: 0.79}``."""
    if code is None or code.upper() == "USD":
        return Currency()
    code = code.upper()
    section = settings.section("currency") or {}
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "currency", "expected a mapping with code and per_usd")
    if str(section.get("code", "")).upper() == code:
        return configured_currency(settings)
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
