"""Instrumentor for the ``google-genai`` client library (Gemini API and Vertex AI).

``generate_content`` can send several requests for one call (automatic function calling, and
automatic continuation), and the response it returns carries only the last request's usage. Each
request is billed, so the instrumentor wraps the method that sends one request
(``_generate_content``, ``_generate_content_stream``): one span per billed request, whether the
call came from ``generate_content``, ``generate_content_stream``, a chat session or ``client.aio``.
If a later SDK drops those methods, the public ones are wrapped instead. ``embed_content`` sends
one request and is wrapped as it is. The SDK makes no spans of its own (3.x).

``usage_metadata`` in semconv terms: ``prompt_token_count`` already includes cached content
(``cached_content_token_count``, the cache reads), tool-use prompts are input too, and thoughts
(``thoughts_token_count``) are billed output reported apart from the candidates: they are added.
"""

from __future__ import annotations

from typing import Any

from google.genai import models  # ModuleNotFoundError here tells the launcher to skip us

from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._lazy import pin_attribution
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_at


def usage_from(raw: Any) -> Usage | None:
    """``GenerateContentResponseUsageMetadata`` and the embeddings' ``UsageMetadata`` (``response_token_count``)."""
    if raw is None:
        return None
    thoughts = count(raw, "thoughts_token_count")
    return Usage(
        input_tokens=count(raw, "prompt_token_count") + count(raw, "tool_use_prompt_token_count"),
        output_tokens=count(raw, "candidates_token_count") + count(raw, "response_token_count") + thoughts,
        cache_read_tokens=count(raw, "cached_content_token_count"),
        reasoning_tokens=thoughts,
    )


def _reader(operation: str, stream: bool = False) -> Any:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        model = kwargs.get("model")
        if not isinstance(model, str):
            return None
        api = instance._api_client
        contents = kwargs.get("contents", kwargs.get("content"))
        max_tokens = field(kwargs.get("config"), "max_output_tokens")
        endpoint = endpoint_at(api._http_options.base_url, "gcp.vertex_ai" if api.vertexai else "gcp.gemini")
        return Request(
            provider=endpoint.provider,
            operation=operation,
            model=model.rsplit("/", 1)[-1],  # "models/x", "publishers/google/models/x", "projects/.../models/x"
            stream=stream,
            messages=contents if isinstance(contents, (str, list, tuple)) else None,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        ).sent_to(endpoint)

    return read


def _finish_reasons(candidates: Any) -> list[str]:
    reasons = (field(c, "finish_reason") for c in candidates)
    return [str(getattr(r, "value", r)) for r in reasons if r]


def _texts(candidates: Any) -> list[str]:
    parts = (part for c in candidates for part in field(field(c, "content"), "parts") or ())
    return [text for part in parts if isinstance(text := field(part, "text"), str)]


def _generate_response(result: Any, request: Request) -> Response:
    candidates = field(result, "candidates") or ()
    return Response(
        model=field(result, "model_version"),
        response_id=field(result, "response_id"),
        finish_reasons=_finish_reasons(candidates),
        usage=usage_from(field(result, "usage_metadata")),
        output_texts=_texts(candidates),
    )


def _embed_response(result: Any, request: Request) -> Response:
    usage = usage_from(field(result, "usage_metadata"))
    if usage is None:
        # Vertex AI counts the tokens of each embedded text in its statistics.
        statistics = [field(e, "statistics") for e in field(result, "embeddings") or ()]
        counts = [count(s, "token_count") for s in statistics if field(s, "token_count") is not None]
        usage = Usage(input_tokens=sum(counts)) if counts else None
    return Response(usage=usage, output_texts=[])


class ChunkObserver:
    """Stream chunks are whole responses; ``usage_metadata`` is complete on the last one.

    A stream that ends before a finish reason keeps the reported prompt count and counts its output
    from the text that arrived.
    """

    __slots__ = ("_finish", "_id", "_model", "_texts", "_usage")

    def __init__(self, request: Request) -> None:
        self._usage: Any = None
        self._texts: list[str] = []
        self._finish: list[str] = []
        self._id: str | None = None
        self._model: str | None = None

    def observe(self, chunk: Any) -> None:
        if self._id is None:
            self._id, self._model = field(chunk, "response_id"), field(chunk, "model_version")
        usage = field(chunk, "usage_metadata")
        if usage is not None:
            self._usage = usage
        candidates = field(chunk, "candidates")
        if candidates:
            self._texts.extend(_texts(candidates))
            self._finish.extend(_finish_reasons(candidates))

    def response(self) -> Response:
        return Response(
            model=self._model,
            response_id=self._id,
            finish_reasons=self._finish,
            usage=usage_from(self._usage),
            output_texts=self._texts,
            estimate_output=not self._finish,
        )


def _request_method(owner: type, name: str) -> str:
    """The method that sends one request (``_generate_content``), or the public one if this SDK has none."""
    private = "_" + name
    return private if hasattr(owner, private) else name


_GENERATE = Operation(_reader("generate_content"), _generate_response)
_STREAM = Operation(_reader("generate_content", stream=True), _generate_response, ChunkObserver)
_EMBED = Operation(_reader("embeddings"), _embed_response)


def _methods(owner: type) -> tuple[MethodSpec, ...]:
    module, name = owner.__module__, owner.__name__
    stream_method = _request_method(owner, "generate_content_stream")
    # The public stream method sends its requests lazily: pin the caller's attribution on it.
    lazy = () if stream_method == "generate_content_stream" else (
        MethodSpec(module, name, "generate_content_stream", _STREAM, wrap=pin_attribution),
    )
    return (
        MethodSpec(module, name, _request_method(owner, "generate_content"), _GENERATE),
        MethodSpec(module, name, stream_method, _STREAM),
        *lazy,
        MethodSpec(module, name, "embed_content", _EMBED),
    )


METHODS: tuple[MethodSpec, ...] = (*_methods(models.Models), *_methods(models.AsyncModels))


class GoogleGenAIInstrumentor(ClientInstrumentor):
    """``costspan_google_genai``: content generation (plain and streamed) and embeddings, sync and ``client.aio``."""

    instruments = package.GOOGLE_GENAI
    methods = METHODS
