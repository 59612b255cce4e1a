"""LiteLLM's ``model_prices_and_context_window.json`` read into costspan's price file format.

The map is the de-facto public price list (MIT). Its entries are per-token USD floats with
suffixes for long-context tiers (``_above_200k_tokens``), 1-hour cache writes (``_above_1hr``) and
service tiers (``_batches``, ``_flex``, ``_priority``); costspan keeps the fields its usage record
can charge and skips entries priced only in other units (seconds, pixels, characters), counting
them so the import can say what it left out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from costspan.errors import ConfigError
from costspan.pricing.names import canonical_provider
from costspan.providers import LOCAL_PROVIDERS

_PROVIDERS = {
    "text-completion-openai": "openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock_converse": "aws.bedrock",
    "cohere_chat": "cohere",
    "amazon_nova": "aws.bedrock",
    "codestral": "mistral_ai",
    "text-completion-codestral": "mistral_ai",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "lm_studio": "lmstudio",
}
_MODES = {None, "chat", "completion", "responses", "embedding", "image_generation", "moderation", "rerank"}
_FIELDS = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_token": "output",
    "output_cost_per_reasoning_token": "reasoning",
    "output_cost_per_image": "per_image",
    "input_cost_per_request": "per_request",
    "input_cost_per_query": "per_search_unit",
}
_PER_UNIT = {"per_image", "per_request", "per_search_unit"}
_SERVICE_TIERS = {"batches": "batch", "flex": "flex", "priority": "priority"}
_PRICE_KEY = re.compile(
    r"^(?P<field>" + "|".join(_FIELDS) + r")(?P<hour>_above_1hr)?(?:_above_(?P<k>\d+)k_tokens)?"
    r"(?:_(?P<tier>[a-z]+))?$"
)
# Names no call carries: image size and quality variants, region-pinned Bedrock entries.
_UNMATCHABLE = re.compile(r"(^|/)(\d+|max)-x-(\d+|max)/|^(low|medium|high|standard|hd)/|^[a-z]{2}(-[a-z]+)+-\d+/")
_MILLION = Decimal(1_000_000)


@dataclass
class Converted:
    """Entries in costspan's format, and why others were left out (reason -> count)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def provider_name(litellm_provider: str) -> str:
    if litellm_provider.startswith("vertex_ai"):
        return "gcp.vertex_ai"
    return _PROVIDERS.get(litellm_provider) or canonical_provider(litellm_provider)


def model_name(key: str, litellm_provider: str) -> str:
    """``gemini/gemini-2.5-pro`` -> ``gemini-2.5-pro``; ``groq/openai/gpt-oss-20b`` -> ``openai/gpt-oss-20b``."""
    head, sep, tail = key.partition("/")
    if sep and (head == litellm_provider or litellm_provider.startswith((f"{head}-", f"{head}_"))):
        return tail.lower()
    return key.lower()


def is_litellm_map(data: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(data, Mapping) and "models" not in data and any(
        isinstance(v, Mapping) and "litellm_provider" in v for v in data.values()
    )


def convert(data: Mapping[str, Any], origin: str) -> Converted:
    """Every usable entry of a LiteLLM map; ConfigError (naming ``origin`` and the entry) on bad data."""
    result = Converted()
    for key, raw in data.items():
        if key == "sample_spec":
            continue
        if not isinstance(raw, Mapping):
            raise ConfigError(origin, key, f"expected a mapping of model properties, got {type(raw).__name__}")
        litellm_provider = raw.get("litellm_provider")
        if not isinstance(litellm_provider, str) or not litellm_provider:
            result.skipped["no litellm_provider"] += 1
            continue
        if raw.get("mode") not in _MODES:
            result.skipped[f"mode {raw.get('mode')}"] += 1
            continue
        if raw.get("mode") == "rerank" and "input_cost_per_query" not in raw:
            # Rerank calls report search units, not tokens: a per-token price would make them free.
            result.skipped["rerank priced per token"] += 1
            continue
        model = model_name(key, litellm_provider)
        if _UNMATCHABLE.search(model):
            result.skipped["size, quality or region variant"] += 1
            continue
        entry = _entry(key, raw, origin, provider_name(litellm_provider), model)
        if entry is None:
            result.skipped["priced only in units costspan does not measure"] += 1
        elif provider_name(litellm_provider) in LOCAL_PROVIDERS and not _priced_above_zero(entry):
            # LiteLLM writes 0 for "runs locally"; for Ollama's billed cloud models that reads as free.
            result.skipped["zero price for a local model server"] += 1
        else:
            result.entries.append(entry)
    return result


def _entry(key: str, raw: Mapping[str, Any], origin: str, provider: str, model: str) -> dict[str, Any] | None:
    base: dict[str, Any] = {}
    tiers: dict[int, dict[str, Any]] = {}
    service: dict[str, dict[str, Any]] = {}
    service_tiers: dict[str, dict[int, dict[str, Any]]] = {}
    for name, value in raw.items():
        match = _PRICE_KEY.match(name)
        if match is None:
            continue
        tier = match.group("tier")
        if tier is not None and tier not in _SERVICE_TIERS:
            continue
        target = _FIELDS[match.group("field")]
        if match.group("hour"):
            if target != "cache_write":
                continue
            target = "cache_write_1h"
        price = _price(value, origin, f"{key}.{name}", per_unit=target in _PER_UNIT)
        threshold = int(match.group("k")) * 1000 if match.group("k") else None
        if tier is None:
            bucket = base if threshold is None else tiers.setdefault(threshold, {})
        else:
            tier_name = _SERVICE_TIERS[tier]
            bucket = (
                service.setdefault(tier_name, {})
                if threshold is None
                else service_tiers.setdefault(tier_name, {}).setdefault(threshold, {})
            )
        bucket[target] = price
    if "per_image" in base and "output_cost_per_image_token" in raw:
        del base["per_image"]  # images billed as output tokens: a per-image price would count them twice
    if not any(k in base for k in ("input", "output", "per_image", "per_request", "per_search_unit")):
        return None
    entry: dict[str, Any] = {"key": f"{provider}/{model}", "match": {"provider": provider, "model": model}, **base}
    if tiers:
        entry["tiers"] = [{"above": t, **tiers[t]} for t in sorted(tiers)]
    for tier_name, thresholds in service_tiers.items():
        service.setdefault(tier_name, {})["tiers"] = [{"above": t, **thresholds[t]} for t in sorted(thresholds)]
    if service:
        entry["service_tiers"] = {name: service[name] for name in sorted(service)}
    return entry


def _price(value: object, origin: str, where: str, *, per_unit: bool) -> int | float:
    """A per-token USD float as USD per million tokens (or per unit), exactly, as a plain number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(origin, where, f"expected a non-negative number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(origin, where, f"expected a non-negative number, got {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise ConfigError(origin, where, f"expected a non-negative number, got {value!r}")
    scaled = (number if per_unit else number * _MILLION).normalize()
    return int(scaled) if scaled == scaled.to_integral_value() else float(scaled)


def _priced_above_zero(entry: Mapping[str, Any]) -> bool:
    return any(entry.get(name) for name in ("input", "output", "per_image", "per_request", "per_search_unit"))
