"""Model and provider names as spans carry them, turned into the names catalogs know.

Spans name models the way each API does: dated (``gpt-4o-mini-2024-07-18``), with a vendor prefix
(``anthropic/claude-sonnet-4.5`` through OpenRouter, ``openai/gpt-oss-20b`` on Groq), as a Bedrock
inference profile (``us.anthropic.claude-...-v2:0``), a resource path (``models/gemini-2.5-pro``)
or a fine-tune (``ft:gpt-4o-mini-2024-07-18:org::id``). :func:`candidates` lists the names to try,
most specific first, so an exact catalog entry always wins over a looser one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Everything a span or a price file may call a provider, reduced to the semconv name.
_PROVIDER_ALIASES = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "gcp.gen_ai": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "grok": "x_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "together_ai": "together",
    "together-ai": "together",
    "fireworks_ai": "fireworks",
    "moonshot": "moonshotai",
    "az.ai.inference": "azure.ai.inference",
}

# Semconv name -> genai-prices provider id, where they differ or genai-prices' own fuzzy provider
# match would pick the wrong one (it reads ``azure.ai.openai`` as OpenAI).
_GENAI_PRICES_IDS = {
    "azure.ai.openai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "aws.bedrock": "aws",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}

# Providers that resell other vendors' models at (about) the vendor's list price: when their own
# catalog lacks a model, the vendor's price is the right one. Hosts that set their own prices
# (Groq, Together, Fireworks...) are not here: their models are never priced at another's rate.
RESELLERS = frozenset({"openrouter", "azure.ai.openai", "aws.bedrock", "gcp.vertex_ai", "github", "litellm"})

# Model family -> the vendor that sets its list price.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(gpt-(?!oss)|o\d|chatgpt-|text-embedding-|davinci|babbage|dall-e|tts-|whisper|omni-)"), "openai"),
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^(gemini|gemma|imagen|veo|text-embedding-00|text-multilingual-embedding)"), "gcp.gemini"),
    (re.compile(r"^grok"), "x_ai"),
    (re.compile(r"^(mistral|mixtral|codestral|magistral|ministral|pixtral|devstral|voxtral)"), "mistral_ai"),
    (re.compile(r"^deepseek"), "deepseek"),
    (re.compile(r"^(command|embed-|rerank-)"), "cohere"),
    (re.compile(r"^sonar"), "perplexity"),
)
# Vendor prefixes: ``anthropic/claude...`` (OpenRouter, gateways) and ``anthropic.claude...`` (Bedrock).
_VENDOR_PREFIXES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "x-ai": "x_ai",
    "xai": "x_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "deepseek-ai": "deepseek",
    "cohere": "cohere",
}
_BEDROCK_REGION = re.compile(r"^(us|eu|apac|ap|global|us-gov|jp|au|ca|in|sa)\.(?=[a-z0-9-]+\.)")
_BEDROCK_VENDOR = re.compile(r"^(anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|qwen|writer)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(:\d+)?$|:\d+$")
_FINE_TUNE = re.compile(r"^ft:([^:]+)(:.*)?$")
_DATE_SUFFIX = re.compile(r"[-@](20\d\d-?[01]\d-?[0-3]\d|[01]\d[0-3]\d)$")
_VERSION_SUFFIX = re.compile(r"-(latest|0\d\d)$")


def canonical_provider(name: str | None) -> str:
    """The semconv name for any spelling of a provider (``''`` when unknown)."""
    lowered = (name or "").strip().lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


def genai_prices_id(provider: str) -> str:
    return _GENAI_PRICES_IDS.get(provider, provider)


def _path_tail(name: str) -> str | None:
    """``models/gemini-2.5-pro``, ``projects/p/locations/l/publishers/google/models/x``, ARNs."""
    if name.startswith("arn:") and "/" in name:
        return name.rsplit("/", 1)[1]
    if name.startswith("models/") or "/models/" in name:
        return name.rsplit("models/", 1)[1]
    return None


def _vendor_stripped(name: str) -> str | None:
    _, sep, tail = name.partition("/")
    return tail if sep and tail else None


def _bedrock_region(name: str) -> str | None:
    stripped = _BEDROCK_REGION.sub("", name)
    return stripped if stripped != name else None


def _bedrock_vendor(name: str) -> str | None:
    stripped = _BEDROCK_VENDOR.sub("", name)
    return stripped if stripped != name else None


def _bedrock_version(name: str) -> str | None:
    if not _BEDROCK_VENDOR.match(name) and not name.startswith("claude"):
        return None
    stripped = _BEDROCK_VERSION.sub("", name)
    return stripped if stripped != name else None


def _fine_tune_base(name: str) -> str | None:
    match = _FINE_TUNE.match(name)
    return f"ft:{match.group(1)}" if match and match.group(2) else None


def _fine_tune_model(name: str) -> str | None:
    match = _FINE_TUNE.match(name)
    return match.group(1) if match else None


def _undated(name: str) -> str | None:
    stripped = _DATE_SUFFIX.sub("", name)
    return stripped if stripped != name else None


def _unversioned(name: str) -> str | None:
    stripped = _VERSION_SUFFIX.sub("", name)
    return stripped if stripped != name else None


# Applied in this order, each to every name found so far: specific forms come before generic ones.
_TRANSFORMS: tuple[Callable[[str], str | None], ...] = (
    _path_tail,
    _fine_tune_base,
    _fine_tune_model,
    _vendor_stripped,
    _bedrock_region,
    _bedrock_vendor,
    _bedrock_version,
    _undated,
    _unversioned,
)


def candidates(model: str) -> tuple[str, ...]:
    """Names to look ``model`` up by, the exact (lowercased) name first.

    A fine-tune's own names (``ft:gpt-4o-mini``: fine-tuned inference has its own, higher price)
    all come before its base model's, which prices it only when no catalog knows the fine-tune.
    """
    found = [model.strip().lower()]
    for transform in _TRANSFORMS:
        for name in list(found):
            new = transform(name)
            if new and new not in found:
                found.append(new)
    return tuple(sorted(found, key=lambda name: not name.startswith("ft:")))


def vendor(model: str) -> str | None:
    """The vendor whose list price applies to ``model`` (from its prefix or its family), if any."""
    name = model.strip().lower()
    tail = _path_tail(name)
    name = tail or name
    name = _BEDROCK_REGION.sub("", name)
    for separator in ("/", "."):
        head, sep, _ = name.partition(separator)
        if sep and head in _VENDOR_PREFIXES:
            return _VENDOR_PREFIXES[head]
    bare = _FINE_TUNE.sub(r"\1", name)
    for pattern, family_vendor in _FAMILIES:
        if pattern.match(bare):
            return family_vendor
    return None
