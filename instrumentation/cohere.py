"""Instrumentor for Cohere's ``cohere`` client library, v2 API (``ClientV2``/``AsyncClientV2``):
``chat``, ``chat_stream``, ``embed`` and ``rerank``, sync and async.

Cohere reports two counts: ``usage.billed_units`` (what it bills) and ``usage.tokens`` (what the
model processed, including the chat template and preamble it does not bill). The billed units are
the span's usage and are priced; ``tokens`` is left aside. Embed and rerank report under
``meta.billed_units``; rerank is billed per search unit (one query over up to 100 documents),
carried as ``search_units`` and priced per unit where a catalog has such a price (LiteLLM's map
does for ``rerank-v3.5`` and its kin, as ``input_cost_per_query``); a rerank model with none is
``unpriced``, never free.

``chat_stream`` is a generator (the async one an async generator): the request leaves at the
first ``next()``, and the proxy sees its events from there, ``message-end`` bringing the usage.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import cohere  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)

from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation._streams import ChunkObserver, StreamedCall, wrap_stream
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_at

PROVIDER = "cohere"


def billed_usage(billed: Any) -> Usage | None:
    """``billed_units`` as usage; None when the answer has none."""
    if field(billed, "input_tokens") is None and field(billed, "output_tokens") is None:
        return None
    return Usage(input_tokens=count(billed, "input_tokens"), output_tokens=count(billed, "output_tokens"))


def _base_url(instance: Any) -> str | None:
    wrapper = getattr(instance, "_client_wrapper", None)
    return wrapper.get_base_url() if wrapper is not None else None


def _reader(operation: str, stream: bool) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], Request | None]:
    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        model = kwargs.get("model")
        if not isinstance(model, str):
            return None
        content = kwargs.get("messages", kwargs.get("texts", kwargs.get("query")))
        max_tokens = kwargs.get("max_tokens")
        endpoint = endpoint_at(_base_url(instance), default=PROVIDER)
        return Request(
            provider=endpoint.provider,
            operation=operation,
            model=model,
            stream=stream,
            messages=content if isinstance(content, (str, list, tuple)) else None,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            tools=kwargs.get("tools") if isinstance(kwargs.get("tools"), (list, tuple)) else None,
        ).sent_to(endpoint)

    return read


def _chat_response(result: Any, request: Request) -> Response:
    reason = field(result, "finish_reason")
    content = field(field(result, "message"), "content") or ()
    return Response(
        response_id=field(result, "id"),
        finish_reasons=[str(reason)] if reason else (),
        usage=billed_usage(field(field(result, "usage"), "billed_units")),
        output_texts=[t for part in content if isinstance(t := field(part, "text"), str)],
    )


def _embed_response(result: Any, request: Request) -> Response:
    return Response(
        response_id=field(result, "id"), usage=billed_usage(field(field(result, "meta"), "billed_units")),
        output_texts=[],
    )


def _rerank_response(result: Any, request: Request) -> Response:
    """Billed per search unit: priced where a catalog has a per-unit price, otherwise unpriced (never free)."""
    billed = field(field(result, "meta"), "billed_units")
    units = field(billed, "search_units")
    usage = Usage(search_units=count(billed, "search_units")) if units is not None else None
    return Response(response_id=field(result, "id"), usage=usage)


class StreamObserver:
    """v2 chat stream events: ``content-delta`` text, ``message-end`` with the finish reason and usage."""

    __slots__ = ("_finish", "_id", "_texts", "_usage")

    def __init__(self, request: Request) -> None:
        self._texts: list[str] = []
        self._finish: list[str] = []
        self._id: str | None = None
        self._usage: Usage | None = None

    def observe(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "content-delta":
            text = field(field(field(field(event, "delta"), "message"), "content"), "text")
            if text:
                self._texts.append(text)
        elif kind == "message-start":
            self._id = field(event, "id")
        elif kind == "message-end":
            delta = field(event, "delta")
            if reason := field(delta, "finish_reason"):
                self._finish.append(str(reason))
            self._usage = billed_usage(field(field(delta, "usage"), "billed_units"))

    def response(self) -> Response:
        return Response(response_id=self._id, finish_reasons=self._finish, usage=self._usage, output_texts=self._texts)


def _proxy_generator(
    stream: Any, call: StreamedCall, observer: ChunkObserver, log_error: Callable[[str], None], *, is_async: bool
) -> Any:
    """``AsyncV2Client.chat_stream`` is an async generator function: called without ``await``, so the
    wrapper runs as for a sync method, and the proxy is chosen by what it returned."""
    return wrap_stream(stream, call, observer, log_error, is_async=inspect.isasyncgen(stream))


_CHAT = Operation(_reader("chat", False), _chat_response)
_CHAT_STREAM = Operation(_reader("chat", True), _chat_response, StreamObserver, proxy_stream=_proxy_generator)
_EMBED = Operation(_reader("embeddings", False), _embed_response)
_RERANK = Operation(_reader("rerank", False), _rerank_response)


def _methods(owner: str) -> tuple[MethodSpec, ...]:
    return (
        MethodSpec("cohere.v2.client", owner, "chat", _CHAT),
        MethodSpec("cohere.v2.client", owner, "chat_stream", _CHAT_STREAM),
        MethodSpec("cohere.v2.client", owner, "embed", _EMBED),
        MethodSpec("cohere.v2.client", owner, "rerank", _RERANK),
    )


METHODS: tuple[MethodSpec, ...] = (*_methods("V2Client"), *_methods("AsyncV2Client"))


class CohereInstrumentor(ClientInstrumentor):
    """``costspan_cohere``: v2 chat, chat_stream, embed and rerank, sync and async."""

    instruments = package.COHERE
    methods = METHODS
