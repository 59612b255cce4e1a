"""Money for people in another currency, from a configured rate: ``currency: {code: EUR, per_usd: 0.92}``.

Spans, metrics and stores stay in USD nano-dollars (DESIGN.md); only what people read is
converted, and always labelled with its code and rate so nobody mistakes it for a billed amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from costspan.errors import ConfigError
from costspan.money import nanos_to_usd
from costspan.settings import Settings

_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class DisplayCurrency:
    code: str = "USD"
    per_usd: Decimal = Decimal(1)

    @property
    def is_usd(self) -> bool:
        return self.code == "USD"

    def amount(self, nanos: int) -> Decimal:
        """The exact amount in this currency (never rounded: display code rounds)."""
        return nanos_to_usd(nanos) * self.per_usd

    def label(self) -> str:
        return f"{self.code} at {self.per_usd} per USD"


def display_currency(settings: Settings) -> DisplayCurrency:
    """The ``currency`` section, validated; USD when absent."""
    section = settings.section("currency")
    if section is None:
        return DisplayCurrency()
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "currency", "expected a mapping like {code: EUR, per_usd: 0.92}")
    code = str(section.get("code", "")).strip().upper()
    if not _CODE.match(code):
        raise ConfigError(settings.source, "currency.code", f"expected a 3-letter currency code, got {code!r}")
    if code == "USD":
        return DisplayCurrency()
    rate = section.get("per_usd")
    try:
        per_usd = Decimal(str(rate)) if not isinstance(rate, bool) and rate is not None else None
    except InvalidOperation:
        per_usd = None
    if per_usd is None or not per_usd.is_finite() or per_usd <= 0:
        raise ConfigError(settings.source, "currency.per_usd", f"expected a positive rate for {code}, got {rate!r}")
    return DisplayCurrency(code, per_usd)
