"""The codec between an LLM call's facts and span attributes, both ways.

:func:`encode` writes the facts costspan's own instrumentors hold onto their spans, in the GenAI
semantic conventions; :func:`decode` reads them back off any span, whoever produced it, which is
how the processor and the gateway price spans of instrumentations costspan does not ship. Ours and
the official instrumentation use the current semantic conventions; OpenLLMetry, OpenLIT,
OpenInference and the Vercel AI SDK (``ai.*``) use older or their own names, all read here. What
costspan writes it reads back unchanged (``decode(encode(facts))`` keeps every attribute-carried
fact: the round trip is tested), so a span priced by the gateway and the same call priced
in-process agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costspan import attribute_names as A
from costspan.facts import CallFacts, Usage, as_count
from costspan.pricing.names import canonical_provider

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


def decode(attributes: Mapping[str, Any]) -> CallFacts | None:
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
        prompt_hash=_first_str(attributes, A.PROMPT_HASH),
    )


def encode(facts: CallFacts) -> dict[str, Any]:
    """The span attributes of a call's facts, as costspan's own spans carry them (semconv names).

    The facts a span holds in other ways (start and end time, trace and span ids) and what is never
    on a span (a cost the application declared) are not attributes. Zero subset counts are left
    out, as the instrumentors always did."""
    values = encode_request(facts)
    values.update(encode_outcome(facts))
    return values


def encode_request(facts: CallFacts) -> dict[str, Any]:
    """The attributes of what is known before the request leaves: what a span starts with (semconv
    wants them at start, where samplers can see them)."""
    values: dict[str, Any] = {
        A.OPERATION: facts.operation,
        A.PROVIDER: facts.provider,
        A.REQUEST_MODEL: facts.request_model,
    }
    # Straight tests, not a table filtered by a generator: this runs on every call's span.
    if facts.stream:
        values[A.REQUEST_STREAM] = True
    if facts.service_tier is not None:
        values[A.OPENAI_SERVICE_TIER] = facts.service_tier
    if facts.server_address is not None:
        values[A.SERVER_ADDRESS] = facts.server_address
    if facts.server_port is not None:
        values[A.SERVER_PORT] = facts.server_port
    if facts.local is not None:
        values[A.ENDPOINT_LOCAL] = facts.local
    if facts.project is not None:
        values[A.PROJECT] = facts.project
    if facts.feature is not None:
        values[A.FEATURE] = facts.feature
    if facts.user is not None:
        values[A.USER_ID] = facts.user
    if facts.prompt_hash is not None:
        values[A.PROMPT_HASH] = facts.prompt_hash
    return values


def encode_outcome(facts: CallFacts) -> dict[str, Any]:
    """The attributes of what the answer (or the failure) brought: what a span gets at its end. The
    service tier is the response's when it names one, so it is here too."""
    values: dict[str, Any] = {A.USAGE_SOURCE: facts.usage_source}
    if facts.response_model is not None:
        values[A.RESPONSE_MODEL] = facts.response_model
    if facts.service_tier is not None:
        values[A.OPENAI_SERVICE_TIER] = facts.service_tier
    if facts.time_to_first_chunk_s is not None:
        values[A.RESPONSE_TTFC] = facts.time_to_first_chunk_s
    if facts.error_type is not None:
        values[A.ERROR_TYPE] = facts.error_type
    if facts.has_usage:
        usage = facts.usage
        values[A.INPUT_TOKENS] = usage.input_tokens
        values[A.OUTPUT_TOKENS] = usage.output_tokens
        if usage.cache_read_tokens:
            values[A.CACHE_READ_TOKENS] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            values[A.CACHE_CREATION_TOKENS] = usage.cache_write_tokens
        if usage.cache_write_1h_tokens:
            values[A.CACHE_WRITE_1H_TOKENS] = usage.cache_write_1h_tokens
        if usage.reasoning_tokens:
            values[A.REASONING_TOKENS] = usage.reasoning_tokens
        if usage.images:
            values[A.IMAGE_COUNT] = usage.images
        if usage.search_units:
            values[A.SEARCH_UNITS] = usage.search_units
    return values
