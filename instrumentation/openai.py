"""Instrumentor for the ``openai`` client library (and every endpoint it is pointed at).

The provider is named from the client's base URL (Azure, OpenRouter, Groq, GitHub Models, local
servers...), because the same SDK talks to all of them and they bill differently.
"""

from __future__ import annotations

from typing import Any

import openai  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)

from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._openai_format import (
    ChatChunkObserver,
    chat_response,
    completion_response,
    embedding_response,
    field,
    request_reader,
    usage_from,
)
from costspan.instrumentation._stainless import is_stream, unwrap_raw, wrap_stream_or_raw
from costspan.instrumentation._wrapping import Operation


def _responses_response(result: Any, request: Request) -> Response:
    texts = field(result, "output_text")
    return Response(
        model=field(result, "model"),
        response_id=field(result, "id"),
        finish_reasons=[str(s)] if (s := field(result, "status")) else [],
        usage=usage_from(field(result, "usage")),
        service_tier=field(result, "service_tier"),
        output_texts=[texts] if isinstance(texts, str) else [],
    )


class ResponsesEventObserver:
    """Responses API events: text deltas until ``response.completed`` brings the usage."""

    __slots__ = ("_final", "_texts", "_want_text")

    def __init__(self, request: Request) -> None:
        self._texts: list[str] = []
        self._final: Any = None
        self._want_text = True

    def observe(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "response.output_text.delta":
            delta = field(event, "delta")
            if delta:
                self._texts.append(delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed", "response.created"):
            self._final = field(event, "response")

    def response(self) -> Response:
        if self._final is None:
            return Response(output_texts=self._texts)
        response = _responses_response(self._final, Request("", "", ""))
        response.output_texts = self._texts
        return response


def _images_response(result: Any, request: Request) -> Response:
    data = field(result, "data") or ()
    usage = usage_from(field(result, "usage")) or Usage()
    usage = Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        images=len(data),
    )
    return Response(model=request.model, usage=usage, output_texts=[])


_read_image_request = request_reader("openai", "generate_content")


def _images_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    kwargs = dict(kwargs)
    kwargs.setdefault("model", "dall-e-2")  # the API's default when no model is named
    request = _read_image_request(instance, args, kwargs)
    if request is not None:
        for key in ("size", "quality"):
            value = kwargs.get(key)
            if isinstance(value, str):
                request.attributes[f"openai.request.image.{key}"] = value
        n = kwargs.get("n")
        if isinstance(n, int):
            request.attributes["gen_ai.request.choice.count"] = n
    return request


_CHAT = Operation(
    request_reader("openai", "chat"), unwrap_raw(chat_response), ChatChunkObserver, is_stream,
    proxy_stream=wrap_stream_or_raw,
)
_COMPLETION = Operation(
    request_reader("openai", "text_completion"), unwrap_raw(completion_response), ChatChunkObserver, is_stream,
    proxy_stream=wrap_stream_or_raw,
)
_EMBEDDINGS = Operation(request_reader("openai", "embeddings"), unwrap_raw(embedding_response))
_RESPONSES = Operation(
    request_reader("openai", "chat"), unwrap_raw(_responses_response), ResponsesEventObserver, is_stream,
    proxy_stream=wrap_stream_or_raw,
)
_IMAGES = Operation(_images_request, unwrap_raw(_images_response))

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("openai.resources.chat.completions", "Completions", "create", _CHAT),
    MethodSpec("openai.resources.chat.completions", "Completions", "parse", _CHAT),
    MethodSpec("openai.resources.chat.completions", "AsyncCompletions", "create", _CHAT),
    MethodSpec("openai.resources.chat.completions", "AsyncCompletions", "parse", _CHAT),
    MethodSpec("openai.resources.completions", "Completions", "create", _COMPLETION),
    MethodSpec("openai.resources.completions", "AsyncCompletions", "create", _COMPLETION),
    MethodSpec("openai.resources.embeddings", "Embeddings", "create", _EMBEDDINGS),
    MethodSpec("openai.resources.embeddings", "AsyncEmbeddings", "create", _EMBEDDINGS),
    MethodSpec("openai.resources.responses", "Responses", "create", _RESPONSES),
    MethodSpec("openai.resources.responses", "AsyncResponses", "create", _RESPONSES),
    MethodSpec("openai.resources.images", "Images", "generate", _IMAGES),
    MethodSpec("openai.resources.images", "AsyncImages", "generate", _IMAGES),
)


class OpenAIInstrumentor(ClientInstrumentor):
    """``costspan_openai``: spans with usage for chat, completions, embeddings, responses and images."""

    instruments = package.OPENAI
    methods = METHODS
