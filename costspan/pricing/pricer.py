"""The pricer: every catalog behind one memoised lookup, then exact integer pricing per call.

Precedence, first match wins (docs/architecture.md):

1. the user's price files (``pricing.files``), for any of the names a model may be known by;
2. for each name, most specific first: genai-prices, then the maps imported with
   ``costspan prices import`` (newest first), then the bundled LiteLLM-derived snapshot;
3. nothing: ``unpriced``, logged once per (provider, model), never counted as free.

Local model servers (a ``server_address`` from the runtime, or a local provider such as
``ollama``) are ``free`` unless a user price file names the model; Ollama cloud models (``-cloud``)
are billed, so they are priced from the user's or imported files, or unpriced.

A model is resolved once per (provider, model, local); a call then costs a dict lookup, picking
the rates in effect at its time and service tier, and a few integer multiplications.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from costspan.facts import Usage
from costspan.pricing import FREE, PRICED, UNPRICED, Quote
from costspan.pricing.config import PricingConfig, pricing_config
from costspan.pricing.fileformat import load_table
from costspan.pricing.genai import GenaiCatalog
from costspan.pricing.model import PricedModel
from costspan.pricing.names import RESELLERS, candidates, canonical_provider, vendor
from costspan.pricing.rates import charge
from costspan.pricing.table import PriceTable
from costspan.providers import LOCAL_PROVIDERS
from costspan.settings import Settings

logger = logging.getLogger("costspan")

SNAPSHOT_PATH = Path(__file__).parent / "data" / "litellm_snapshot.json"
_MEMO_LIMIT = 20_000
# Only for entries that always have a price in effect, so never returned; Resolution needs one.
_NOT_IN_EFFECT = Quote(UNPRICED, reason="no price in effect at the call's time")


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a (provider, model) is priced: catalog entries in precedence order, and the quote to
    give when none of them has a price in effect (``free`` for local models, else ``unpriced``)."""

    models: tuple[PricedModel, ...]
    otherwise: Quote


class LayeredPricer:
    """The :class:`~costspan.pricing.Pricer` costspan runs with."""

    def __init__(
        self,
        *,
        user: Sequence[PriceTable] = (),
        genai: GenaiCatalog | None = None,
        imported: Sequence[PriceTable] = (),
        snapshot: PriceTable | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.user = tuple(user)
        self.genai = genai
        self.imported = tuple(imported)
        self.snapshot = snapshot
        self.aliases = dict(aliases or {})
        self._tables = (*self.user, *self.imported, *((snapshot,) if snapshot else ()))
        self._memo: dict[tuple[str, str, str | None], Resolution] = {}
        self._failed: set[tuple[str, str]] = set()

    # -- the hot path ----------------------------------------------------------------------
    def quote(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        at: datetime | None = None,
        service_tier: str | None = None,
        server_address: str | None = None,
    ) -> Quote:
        try:
            memo_key = (provider, model, server_address)
            resolution = self._memo.get(memo_key)
            if resolution is None:
                resolution = self._remember(memo_key, self.resolve(provider, model, server_address))
            for priced in resolution.models:
                rates = priced.rates(at, service_tier, usage.input_tokens)
                if rates is not None:
                    input_nanos, read_nanos, write_nanos, output_nanos = charge(rates, usage)
                    return Quote(
                        PRICED, input_nanos, read_nanos, write_nanos, output_nanos, key=priced.key, source=priced.source
                    )
            return resolution.otherwise
        except Exception:
            if (provider, model) not in self._failed:
                self._failed.add((provider, model))
                logger.exception("costspan: could not price %s/%s; its calls are recorded as unpriced", provider, model)
            return Quote(UNPRICED, reason="internal pricing error (logged)")

    def _remember(self, memo_key: tuple[str, str, str | None], resolution: Resolution) -> Resolution:
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[memo_key] = resolution
        return resolution

    # -- resolution, once per (provider, model) --------------------------------------------
    def resolve(self, provider: str, model: str, server_address: str | None = None) -> Resolution:
        """Find the entries that price ``model`` at ``provider``; logs why when there are none."""
        name = canonical_provider(provider)
        wanted = self.aliases.get(model.strip().lower(), model)
        cloud = name == "ollama" and _ollama_cloud(wanted, server_address)
        if (server_address is not None or name in LOCAL_PROVIDERS) and not cloud:
            found = self._chain(self._matches(name, wanted, catalogs=False, imported=False))
            return Resolution(found, Quote(FREE, key=f"{name}/{model}", source="local", reason="local model server"))
        found = self._chain(self._matches(name, wanted, catalogs=not cloud))
        if found and not found[-1].date_limited:
            return Resolution(found, _NOT_IN_EFFECT)
        if found:
            reason = f"{found[-1].key} has no price before its first effective date"
        elif cloud:
            reason = f"Ollama cloud model {model!r} has no price; add one to a file in pricing.files"
        else:
            reason = f"no price for model {model!r} of provider {provider!r} in {self._searched()}"
        logger.warning("costspan: %s; such calls are recorded as unpriced", reason)
        return Resolution(found, Quote(UNPRICED, reason=reason))

    def _matches(
        self, provider: str, model: str, *, catalogs: bool = True, imported: bool = True
    ) -> Iterator[PricedModel]:
        """Every entry that could price the call, in precedence order (lazily: the first usually wins)."""
        names = candidates(model)
        pairs = [(provider, n) for n in names]
        fallback = vendor(model) if provider in RESELLERS or not self._knows(provider) else None
        if fallback and fallback != provider:
            pairs += [(fallback, n) for n in names]
        for table in self.user:
            for p, n in pairs:
                if (found := table.find(p, n)) is not None:
                    yield found
        later = (*(self.imported if imported else ()), *((self.snapshot,) if catalogs and self.snapshot else ()))
        for p, n in pairs:
            if catalogs and self.genai is not None and (hit := self.genai.find(p, n)) is not None:
                yield hit
            for table in later:
                if (found := table.find(p, n)) is not None:
                    yield found

    @staticmethod
    def _chain(matches: Iterator[PricedModel]) -> tuple[PricedModel, ...]:
        """Entries up to the first that prices every date (date-limited user prices fall through)."""
        chain: dict[tuple[str, str], PricedModel] = {}
        for found in matches:
            chain.setdefault((found.source, found.key), found)
            if not found.date_limited:
                break
        return tuple(chain.values())

    def _knows(self, provider: str) -> bool:
        if self.genai is not None and self.genai.knows(provider):
            return True
        return any(provider in table.providers for table in self._tables)

    def _searched(self) -> str:
        parts = [f"{len(self.user)} user price file(s)"]
        if self.genai is not None:
            parts.append(self.genai.source)
        parts.append(f"{len(self.imported)} imported map(s)")
        if self.snapshot is not None:
            parts.append(self.snapshot.source)
        return ", ".join(parts)


def _ollama_cloud(model: str, server_address: str | None) -> bool:
    """Ollama's cloud models are billed: ``gpt-oss:120b-cloud`` through the local daemon, or any
    model called on ollama.com directly. A self-hosted Ollama elsewhere on the network is not."""
    host = (server_address or "").strip().lower().rstrip(".")
    return model.strip().lower().endswith(("-cloud", ":cloud")) or host == "ollama.com" or host.endswith(".ollama.com")


def imported_tables(directory: Path) -> list[PriceTable]:
    """Maps stored by ``costspan prices import``, newest first."""
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.yaml"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return [load_table(path, f"import:{path.name}") for path in files]


def build(config: PricingConfig) -> LayeredPricer:
    """A pricer from already parsed settings; raises ConfigError naming any bad file."""
    return LayeredPricer(
        user=[load_table(path, f"user:{path}", label_is_origin=False) for path in config.files],
        genai=GenaiCatalog.load(),
        imported=imported_tables(config.import_dir),
        snapshot=load_table(SNAPSHOT_PATH, "litellm-snapshot") if config.snapshot and SNAPSHOT_PATH.exists() else None,
        aliases=config.aliases,
    )


def build_pricer(settings: Settings) -> LayeredPricer:
    """The runtime's pricer (``costspan.runtime.build``), and the one every command prices with, so a
    figure a command shows is what a span gets; raises ConfigError on a bad price file."""
    return build(pricing_config(settings))
