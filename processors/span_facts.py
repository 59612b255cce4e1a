"""Reads the facts of an LLM call off a span's attributes, whoever produced the span.

Ours and the official instrumentation use the current semantic conventions; OpenLLMetry,
OpenLIT, OpenInference and the Vercel AI SDK (``ai.*``) use older or their own names. Reading all
of them here is what lets the processor, and the gateway for spans of any language, price spans
from instrumentations costspan does not ship.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costspan import attributes as A
from costspan.money import usd_to_nanos
from costspan.pricing.names import canonical_provider
from costspan.usage import CallFacts, Usage, as_count

DECLARED_COST = "costspan.cost.declared_usd"

_OPERATION_ALIASES = {
    "completion": "text_completion",
    "chat.completions": "chat",
    "embedding": "embeddings",
    "embed": "embeddings",
}
GENAI_MARKERS = frozenset(
    {A.OPERATION, A.PROVIDER, A.SYSTEM_DEPRECATED, "llm.model_name", "llm.request.type", "ai.model.id"}
)
"""Attribute names any one of which makes a span an LLM call's (or a framework's over one)."""
_SEMCONV_DOTTED = frozenset({"azure.ai.openai", "azure.ai.inference", "gcp.gemini", "gcp.vertex_ai", "aws.bedrock"})
_SDK_PROVIDERS = {
    # The Vercel AI SDK names a provider by its package and API (``openai.chat``, ``google.vertex.chat``).
    "google.vertex": "gcp.vertex_ai",
    "google.generative-ai": "gcp.gemini",
    "amazon-bedrock": "aws.bedrock",
    "azure-openai": "azure.ai.openai",
    "togetherai": "together",
}


def is_genai(attributes: Mapping[str, Any] | None) -> bool:
    """Cheap test, run on every span end: does anything say this is an LLM call?"""
    if not attributes:
        return False
    return any(name in attributes for name in GENAI_MARKERS)


def provider_name(raw: str) -> str:
    """The semconv name of a provider however a span spells it (``OpenAI``, ``openai.chat``, ``azure``)."""
    name = raw.strip().lower()
    if "." not in name or name in _SEMCONV_DOTTED:
        return canonical_provider(name)
    for prefix, semconv in _SDK_PROVIDERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return semconv
    return canonical_provider(name.split(".", 1)[0])


def _operation(attributes: Mapping[str, Any]) -> str:
    operation = _first_str(attributes, A.OPERATION, *A.PEER_OPERATION) or "chat"
    if operation.startswith("ai."):  # the Vercel AI SDK's operation id: ai.generateText.doGenerate...
        return "embeddings" if ".embed" in operation else "chat"
    return _OPERATION_ALIASES.get(operation, operation)


def _first_int(attributes: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return None


def _first_count(attributes: Mapping[str, Any], *names: str) -> int | None:
    """The first token count present; ``INVALID`` when it is no count (the accounting then says so)."""
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return as_count(value)
    return None


def _first_str(attributes: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = attributes.get(name)
        if value:
            return str(value)
    return None


def facts_from_attributes(attributes: Mapping[str, Any]) -> CallFacts | None:
    """The call's facts, or None when the span names no model (nothing to price)."""
    model = _first_str(attributes, A.REQUEST_MODEL, *A.PEER_MODEL)
    response_model = _first_str(attributes, A.RESPONSE_MODEL, *A.PEER_RESPONSE_MODEL)
    if model is None and response_model is None:
        return None
    provider = provider_name(_first_str(attributes, A.PROVIDER, A.SYSTEM_DEPRECATED, *A.PEER_PROVIDER) or "unknown")
    operation = _operation(attributes)

    input_tokens = _first_count(attributes, A.INPUT_TOKENS, *A.PEER_INPUT_TOKENS)
    output_tokens = _first_count(attributes, A.OUTPUT_TOKENS, *A.PEER_OUTPUT_TOKENS)
    cache_read = _first_count(attributes, A.CACHE_READ_TOKENS, *A.PEER_CACHE_READ_TOKENS) or 0
    cache_write = (
        _first_count(attributes, A.CACHE_CREATION_TOKENS, A.CACHE_WRITE_TOKENS, *A.PEER_CACHE_WRITE_TOKENS) or 0
    )
    reasoning = _first_count(attributes, A.REASONING_TOKENS, *A.PEER_REASONING_TOKENS) or 0
    images = _first_count(attributes, A.IMAGE_COUNT) or 0
    search_units = _first_count(attributes, A.SEARCH_UNITS) or 0
    has_usage = input_tokens is not None or output_tokens is not None or images > 0 or search_units > 0
    if input_tokens is not None and A.INPUT_TOKENS not in attributes and provider == "anthropic":
        # Older Anthropic instrumentations report the API's input_tokens, which excludes cache traffic.
        input_tokens += cache_read + cache_write
    usage = Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=_first_count(attributes, A.CACHE_WRITE_1H_TOKENS, *A.PEER_CACHE_WRITE_1H_TOKENS) or 0,
        reasoning_tokens=reasoning,
        images=images,
        search_units=search_units,
    )
    ttfc = attributes.get(A.RESPONSE_TTFC)
    declared = attributes.get(DECLARED_COST)
    return CallFacts(
        provider=provider,
        request_model=model or response_model or "",
        response_model=response_model,
        operation=operation,
        usage=usage,
        usage_source=str(attributes.get(A.USAGE_SOURCE) or ("reported" if has_usage else "none")),
        has_usage=has_usage,
        stream=bool(attributes.get(A.REQUEST_STREAM, False)),
        service_tier=_first_str(attributes, A.OPENAI_SERVICE_TIER, A.OPENAI_REQUEST_SERVICE_TIER),
        server_address=_first_str(attributes, A.SERVER_ADDRESS),
        server_port=_first_int(attributes, A.SERVER_PORT),
        local=bool(local) if (local := attributes.get(A.ENDPOINT_LOCAL)) is not None else None,
        time_to_first_chunk_s=float(ttfc) if ttfc is not None else None,
        error_type=_first_str(attributes, A.ERROR_TYPE),
        project=_first_str(attributes, A.PROJECT, *A.PEER_PROJECT),
        feature=_first_str(attributes, A.FEATURE, *A.PEER_FEATURE),
        user=_first_str(attributes, A.USER_ID, *A.PEER_USER),
        declared_cost_nanos=usd_to_nanos(str(declared)) if declared is not None else None,
        prompt_hash=_first_str(attributes, A.PROMPT_HASH),
    )
