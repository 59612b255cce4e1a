"""costspan's own price tables: the user's files, imported maps and the bundled snapshot.

A table is a list of entries, each matching calls by provider and model (exact names or a
regular expression over the whole name) and carrying prices from an effective date. Entries
sharing a ``key`` form that key's price history; a call is priced by the newest entry already in
effect on the call's (UTC) date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from costspan.pricing.model import service_tier_name, utc_day
from costspan.pricing.rates import PriceCard, RateCard, Rates


@dataclass(frozen=True)
class PriceEntry:
    key: str
    card: PriceCard
    providers: frozenset[str] = frozenset()
    """Semconv provider names this entry applies to; empty: any provider."""
    models: frozenset[str] = frozenset()
    """Exact model names, lowercased."""
    model_regex: re.Pattern[str] | None = None
    effective: date | None = None
    service_tiers: Mapping[str, PriceCard] = field(default_factory=dict)
    """Partial cards over ``card`` for a service tier (``batch``, ``flex``, ``priority``)."""

    def matches(self, provider: str, model: str) -> bool:
        if self.providers and provider not in self.providers:
            return False
        if model in self.models:
            return True
        return self.model_regex is not None and self.model_regex.fullmatch(model) is not None


class TableModel:
    """One key's entries, newest effective date first, compiled lazily per (entry, service tier)."""

    __slots__ = ("_compiled", "date_limited", "entries", "key", "source")

    def __init__(self, key: str, source: str, entries: Iterable[PriceEntry]) -> None:
        self.key = key
        self.source = source
        self.entries = tuple(sorted(entries, key=lambda e: e.effective or date.min, reverse=True))
        self.date_limited = self.entries[-1].effective is not None
        self._compiled: dict[tuple[int, str | None], RateCard | None] = {}

    def _index(self, at: datetime | None) -> int | None:
        if not self.date_limited and len(self.entries) == 1:
            return 0
        day = utc_day(at)
        for index, entry in enumerate(self.entries):
            if entry.effective is None or entry.effective <= day:
                return index
        return None

    def card(self, at: datetime | None, service_tier: str | None) -> PriceCard | None:
        index = self._index(at)
        if index is None:
            return None
        entry = self.entries[index]
        tier_card = entry.service_tiers.get(service_tier_name(service_tier) or "")
        return tier_card.over(entry.card) if tier_card is not None else entry.card

    def rates(self, at: datetime | None, service_tier: str | None, input_tokens: int) -> Rates | None:
        index = self._index(at)
        if index is None:
            return None
        slot = (index, service_tier)
        compiled = self._compiled.get(slot)
        if compiled is None:
            card = self.card(at, service_tier)
            compiled = self._compiled[slot] = card.compile() if card is not None else None
        return compiled.for_input(input_tokens) if compiled is not None else None

    def service_tiers(self) -> tuple[str, ...]:
        return tuple(sorted({tier for entry in self.entries for tier in entry.service_tiers}))


class PriceTable:
    """Entries from one file, indexed for exact names; regular expressions are tried in file order."""

    def __init__(self, source: str, entries: Iterable[PriceEntry]) -> None:
        self.source = source
        self.entries = tuple(entries)
        self._exact: dict[str, list[PriceEntry]] = {}
        self._regex: list[PriceEntry] = []
        for entry in self.entries:
            for model in entry.models:
                self._exact.setdefault(model, []).append(entry)
            if entry.model_regex is not None:
                self._regex.append(entry)
        self.providers = frozenset(p for entry in self.entries for p in entry.providers)

    def find(self, provider: str, model: str) -> TableModel | None:
        """The entry for ``model`` at ``provider``; entries naming the provider beat generic ones."""
        exact = [e for e in self._exact.get(model, ()) if e.matches(provider, model)]
        exact.sort(key=lambda e: not e.providers)
        first = exact[0] if exact else next((e for e in self._regex if e.matches(provider, model)), None)
        if first is None:
            return None
        history = [e for e in self.entries if e.key == first.key and e.matches(provider, model)]
        return TableModel(first.key, self.source, history)
