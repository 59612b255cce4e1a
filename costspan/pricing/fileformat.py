"""costspan's price file format (YAML; JSON is valid too), read with errors that say where.

```yaml
source: acme negotiated prices        # optional label for costspan.pricing.source
models:
  - key: azure/prod-chat              # optional; default provider/model
    match: {provider: azure.ai.openai, model: prod-chat}   # or model_regex: 'gpt-4o(-.*)?'
    effective: 2026-01-01             # optional; before it, older entries of the key (or the catalogs) apply
    input: 2.50                       # USD per million tokens
    cached_input: 1.25
    cache_write: 3.125                # 5-minute cache writes
    cache_write_1h: 5.00
    output: 10.00
    reasoning: 10.00                  # omitted: reasoning costs the output rate
    per_image: 0.04                   # USD per generated image
    per_request: 0.001                # USD per request
    per_search_unit: 0.002            # USD per rerank search unit (Cohere: one query, up to 100 documents)
    tiers:                            # above N input tokens the WHOLE request costs these
      - {above: 200000, input: 5.00, output: 15.00}
    service_tiers:                    # partial overrides for batch / flex / priority
      batch: {input: 1.25, output: 5.00}
```
Every problem raises :class:`ConfigError` naming the file, the entry and what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from costspan.errors import ConfigError, check_keys
from costspan.pricing.model import service_tier_name
from costspan.pricing.names import canonical_provider
from costspan.pricing.rates import PriceCard, PriceSet
from costspan.pricing.table import PriceEntry, PriceTable

PRICE_FIELDS = (
    "input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning", "per_image", "per_request",
    "per_search_unit",
)
_TOP_KEYS = {"format", "source", "attribution", "generated", "models"}
_ENTRY_KEYS = {"key", "match", "effective", "tiers", "service_tiers", "note", *PRICE_FIELDS}
_MATCH_KEYS = {"provider", "model", "model_regex"}
FORMAT = "costspan-prices/1"

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def read_document(path: Path) -> object:
    """The parsed file (JSON by suffix, else YAML), or a ConfigError naming the file."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(where, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}): expected a YAML or JSON price file"
        raise ConfigError(where, "(file)", problem) from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"line {exc.lineno}, column {exc.colno}", f"malformed JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        spot = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(where, spot, f"malformed YAML: {getattr(exc, 'problem', exc)}") from exc


def load_table(path: Path, default_source: str, *, label_is_origin: bool = True) -> PriceTable:
    return parse_table(read_document(path), str(path), default_source, label_is_origin=label_is_origin)


def parse_table(data: object, origin: str, default_source: str, *, label_is_origin: bool = True) -> PriceTable:
    """A validated table; ``origin`` (the file) names every error, ``default_source`` labels prices.

    A file's own ``source`` label replaces ``default_source`` for files costspan wrote (imports,
    the snapshot: ``label_is_origin``); a user's label is kept beside the file's path, so a price
    always says which file it came from.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(origin, "(top level)", "expected a mapping with a 'models' list")
    check_keys(origin, "", data, _TOP_KEYS)
    if data.get("format", FORMAT) != FORMAT:
        raise ConfigError(origin, "format", f"unsupported format {data['format']!r} (expected {FORMAT})")
    label = data.get("source", default_source)
    if not isinstance(label, str) or not label:
        raise ConfigError(origin, "source", f"expected a non-empty label, got {label!r}")
    source = label if label_is_origin or label == default_source else f"{default_source} ({label})"
    models = data.get("models")
    if not isinstance(models, list):
        raise ConfigError(origin, "models", f"expected a list of entries, got {type(models).__name__}")
    return PriceTable(source, (_entry(raw, origin, index) for index, raw in enumerate(models)))


def _entry(raw: object, origin: str, index: int) -> PriceEntry:
    where = f"models[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(origin, where, "expected a mapping")
    if isinstance(raw.get("key"), str):
        where = f"{where} ({raw['key']})"
    check_keys(origin, where, raw, _ENTRY_KEYS)
    providers, models, regex = _match(raw.get("match"), origin, f"{where}.match")
    card = _card(raw, origin, where)
    if not card.base.prices_anything():
        raise ConfigError(
            origin, where, "no price: give at least one of input, output, per_image, per_request, per_search_unit"
        )
    key = raw.get("key") or _default_key(providers, models, regex)
    if not isinstance(key, str):
        raise ConfigError(origin, f"{where}.key", f"expected a string, got {key!r}")
    tiers_raw = raw.get("service_tiers") or {}
    if not isinstance(tiers_raw, Mapping):
        raise ConfigError(origin, f"{where}.service_tiers", "expected a mapping of tier name to prices")
    service_tiers: dict[str, PriceCard] = {}
    for name, prices in tiers_raw.items():
        spot = f"{where}.service_tiers.{name}"
        if not isinstance(prices, Mapping):
            raise ConfigError(origin, spot, "expected a mapping of prices")
        extra = sorted(set(prices) - {*PRICE_FIELDS, "tiers"})
        if extra:
            raise ConfigError(origin, f"{spot}.{extra[0]}", "unknown key (prices and tiers only)")
        service_tiers[service_tier_name(str(name)) or str(name)] = _card(prices, origin, spot)
    return PriceEntry(
        key=key,
        card=card,
        providers=providers,
        models=models,
        model_regex=regex,
        effective=_date(raw.get("effective"), origin, f"{where}.effective"),
        service_tiers=service_tiers,
    )


def _match(raw: object, origin: str, where: str) -> tuple[frozenset[str], frozenset[str], re.Pattern[str] | None]:
    if not isinstance(raw, Mapping):
        raise ConfigError(origin, where, "expected a mapping with model or model_regex (and optionally provider)")
    check_keys(origin, where, raw, _MATCH_KEYS)
    providers = frozenset(canonical_provider(p) for p in _names(raw.get("provider"), origin, f"{where}.provider"))
    models = frozenset(m.strip().lower() for m in _names(raw.get("model"), origin, f"{where}.model"))
    pattern = raw.get("model_regex")
    if bool(models) == (pattern is not None):
        raise ConfigError(origin, where, "give exactly one of model or model_regex")
    regex = None
    if pattern is not None:
        if not isinstance(pattern, str):
            raise ConfigError(origin, f"{where}.model_regex", f"expected a string, got {pattern!r}")
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(origin, f"{where}.model_regex", f"invalid regular expression: {exc}") from exc
    return providers, models, regex


def _names(raw: object, origin: str, where: str) -> list[str]:
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ConfigError(origin, where, f"expected a name or a list of names, got {raw!r}")
    return [str(v) for v in values]


def _card(raw: Mapping[str, Any], origin: str, where: str) -> PriceCard:
    base = _prices(raw, origin, where)
    tiers_raw = raw.get("tiers") or []
    if not isinstance(tiers_raw, list):
        raise ConfigError(origin, f"{where}.tiers", "expected a list of {above: N, <prices>}")
    tiers: list[tuple[int, PriceSet]] = []
    for index, tier in enumerate(tiers_raw):
        spot = f"{where}.tiers[{index}]"
        if not isinstance(tier, Mapping):
            raise ConfigError(origin, spot, "expected a mapping with above and prices")
        extra = sorted(set(tier) - {*PRICE_FIELDS, "above"})
        if extra:
            raise ConfigError(origin, f"{spot}.{extra[0]}", "unknown key (above and prices only)")
        above = tier.get("above")
        if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
            raise ConfigError(origin, f"{spot}.above", f"expected a positive token count, got {above!r}")
        if tiers and above <= tiers[-1][0]:
            raise ConfigError(origin, f"{spot}.above", "tiers must be in increasing order of 'above'")
        prices = _prices(tier, origin, spot)
        if prices.is_empty():
            raise ConfigError(origin, spot, "a tier needs at least one price")
        tiers.append((above, prices))
    return PriceCard(base, tuple(tiers))


def _prices(raw: Mapping[str, Any], origin: str, where: str) -> PriceSet:
    values: dict[str, Decimal] = {}
    for name in PRICE_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise ConfigError(origin, f"{where}.{name}", f"expected a non-negative number, got {value!r}")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ConfigError(origin, f"{where}.{name}", f"expected a non-negative number, got {value!r}") from exc
        if not number.is_finite() or number < 0:
            raise ConfigError(origin, f"{where}.{name}", f"expected a non-negative number, got {value!r}")
        values[name] = number
    return PriceSet(**values)


def _date(raw: object, origin: str, where: str) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ConfigError(origin, where, f"expected a date like 2026-01-31, got {raw!r}")


def _default_key(providers: frozenset[str], models: frozenset[str], regex: re.Pattern[str] | None) -> str:
    model = min(models) if models else (regex.pattern if regex is not None else "")
    return f"{min(providers)}/{model}" if len(providers) == 1 else model
