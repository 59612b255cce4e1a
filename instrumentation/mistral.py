"""Instrumentor for Mistral's ``mistralai`` client library: chat, FIM and embeddings, sync and async.

Mistral's answers and stream chunks have OpenAI's shape (``usage.prompt_tokens`` and
``completion_tokens``, choices with deltas), so the readers of :mod:`._openai_format` serve them;
the SDK's streams yield events whose ``data`` is the chunk, and Mistral always sends the usage in
the last chunk. The provider is named from the client's server URL, so a Mistral model deployed
behind another endpoint is billed as what that endpoint is named.

mistralai 2.x and later can trace its own calls (``MISTRAL_SDK_TELEMETRY``, off by default): where
its spans reach a tracer provider our processor is attached to, a span of ours would count the call
twice, so the instrumentor then only asks the budgets and the processor prices the SDK's span.
"""

from __future__ import annotations

import os
from typing import Any

import mistralai  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)
from opentelemetry import trace

from costspan.instrumentation import package
from costspan.instrumentation._call import Request
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._openai_format import (
    ChatChunkObserver,
    chat_response,
    embedding_response,
    read_chat_request,
)
from costspan.instrumentation._sdk_format import field
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_at
from costspan.runtime import Runtime

PROVIDER = "mistral_ai"


def _server_url(instance: Any, kwargs: dict[str, Any]) -> str | None:
    url = kwargs.get("server_url")
    if isinstance(url, str):
        return url
    config = getattr(instance, "sdk_configuration", None)
    return config.get_server_details()[0] if config is not None else None


def _reader(operation: str, stream: bool) -> Any:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        endpoint = endpoint_at(_server_url(instance, kwargs), default=PROVIDER)
        fields = dict(kwargs)
        if "inputs" in fields:  # embeddings.create(model=..., inputs=...)
            fields["input"] = fields.pop("inputs")
        if "suffix" in fields and isinstance(fields.get("prompt"), str):  # FIM: prompt and suffix are both input
            fields["prompt"] = [fields["prompt"], str(fields["suffix"] or "")]
        request = read_chat_request(endpoint.provider, operation, fields)
        if request is None:
            return None
        request.stream = stream
        return request.sent_to(endpoint)

    return read


class EventObserver(ChatChunkObserver):
    """The SDK's stream events carry the chunk in ``data``."""

    __slots__ = ()

    def observe(self, chunk: Any) -> None:
        super().observe(field(chunk, "data"))


def _traced_by_sdk(instance: Any, runtime: Runtime) -> bool:
    """Whether the SDK's tracing hook sends spans to a provider our processor is attached to.

    It traces only when told (``MISTRAL_SDK_TELEMETRY=global``, or a tracer provider configured on the
    client); its dedicated provider exports to Mistral and is no provider of ours.
    """
    config = getattr(instance, "sdk_configuration", None)
    hooks = getattr(config, "__dict__", {}).get("_hooks")
    for hook in getattr(hooks, "before_request_hooks", ()):
        provider = getattr(hook, "tracer_provider", None)
        if provider is None and (
            getattr(hook, "_telemetry_use_global_provider", False)
            or os.environ.get("MISTRAL_SDK_TELEMETRY", "").strip().lower() == "global"
        ):
            provider = trace.get_tracer_provider()
        if provider is not None and hasattr(hook, "tracing_enabled"):
            return runtime.attach(provider)
    return False


def _operation(operation: str, stream: bool) -> Operation:
    reader = embedding_response if operation == "embeddings" else chat_response
    return Operation(_reader(operation, stream), reader, EventObserver, sdk_traces=_traced_by_sdk)


_CHAT, _CHAT_STREAM = _operation("chat", False), _operation("chat", True)
_FIM, _FIM_STREAM = _operation("text_completion", False), _operation("text_completion", True)
_EMBEDDINGS = _operation("embeddings", False)

def _methods(package: str) -> tuple[MethodSpec, ...]:
    return (
        MethodSpec(f"{package}.chat", "Chat", "complete", _CHAT),
        MethodSpec(f"{package}.chat", "Chat", "complete_async", _CHAT),
        MethodSpec(f"{package}.chat", "Chat", "stream", _CHAT_STREAM),
        MethodSpec(f"{package}.chat", "Chat", "stream_async", _CHAT_STREAM),
        MethodSpec(f"{package}.fim", "Fim", "complete", _FIM),
        MethodSpec(f"{package}.fim", "Fim", "complete_async", _FIM),
        MethodSpec(f"{package}.fim", "Fim", "stream", _FIM_STREAM),
        MethodSpec(f"{package}.fim", "Fim", "stream_async", _FIM_STREAM),
        MethodSpec(f"{package}.embeddings", "Embeddings", "create", _EMBEDDINGS),
        MethodSpec(f"{package}.embeddings", "Embeddings", "create_async", _EMBEDDINGS),
    )


# mistralai 2.x and later keep the client under ``mistralai.client``; 1.x at the top level.
METHODS: tuple[MethodSpec, ...] = (*_methods("mistralai.client"), *_methods("mistralai"))


class MistralInstrumentor(ClientInstrumentor):
    """``costspan_mistral``: chat (complete, stream), FIM and embeddings, sync and async."""

    instruments = package.MISTRAL
    methods = METHODS
