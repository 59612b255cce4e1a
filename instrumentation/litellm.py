"""Instrumentor for the LiteLLM SDK: ``completion``, ``acompletion``, ``embedding`` and ``aembedding``,
streaming included.

LiteLLM routes one call to any of a hundred providers; the span is named for the provider it routes
to (``litellm.get_llm_provider``, from the model prefix, ``custom_llm_provider`` and ``api_base``), in
the names costspan uses everywhere, and an ``api_base`` is named as the openai SDK's base URL is (a
loopback vLLM server is local; ``COSTSPAN_ENDPOINTS`` can name a gateway). The model on the span is the
one the provider is asked for (``gpt-4o-mini``, not ``openai/gpt-4o-mini``), so it is priced as a call
made through that provider's own SDK would be.

LiteLLM answers in OpenAI's shape whatever the provider, so :mod:`._openai_format` reads it; LiteLLM
adds Anthropic's cache reads and writes back into ``prompt_tokens`` (semconv's input) and keeps the
writes in ``cache_creation_input_tokens``, which are read here.

Counted once: LiteLLM sends some calls through the openai SDK's instrumented methods (Azure chat,
OpenAI embeddings with an ``encoding_format``, legacy completions; 1.110 posts other OpenAI-compatible
chat requests below them). The call is LiteLLM's, so this wrapper makes the span and marks the context
(as every costspan wrapper does): the openai SDK's wrapper inside steps aside. LiteLLM's own cost figure is not
used (costspan's pricer is the one source of prices) but a disagreement above 1% is logged once per
model at DEBUG, as a hint that one of the two price lists is out of date.

Streams: ``CustomStreamWrapper`` is iterable both ways (``for`` after ``completion``, ``async for``
after ``acompletion``), so its proxy is too. Without ``stream_options.include_usage`` LiteLLM shows no
usage chunk but keeps what the provider reported in the final chunk's ``_hidden_params["usage"]``:
read there when the provider did report it, and counted locally otherwise (LiteLLM's own count then
stands in that dict, and is not taken as reported).

Patched on the ``litellm`` package, where applications and LiteLLM's Router call them; a name imported
with ``from litellm import completion`` before instrumenting keeps the unpatched function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import litellm
import wrapt
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

from costspan import runtime as runtime_module
from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._openai_format import (
    ChatChunkObserver,
    chat_response,
    embedding_response,
    read_chat_request,
    usage_from,
)
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation._streams import (
    ChunkObserver,
    StreamedCall,
    StreamState,
    SyncStreamProxy,
    finish_abandoned,
    next_chunk,
)
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_at
from costspan.money import nanos_to_float
from costspan.pricing import PRICED
from costspan.pricing.litellm import provider_name

logger = logging.getLogger("costspan")
_UNREPORTED: type | None = getattr(litellm.types.utils, "UnreportedUsage", None)
"""LiteLLM's mark for a stream whose provider reported no usage (recent versions)."""
_TOLERANCE = 0.01
_compared: set[tuple[str, str]] = set()


def usage_of(raw: Any) -> Usage | None:
    """LiteLLM's ``Usage``: OpenAI's fields, plus the cache writes it keeps apart (Anthropic, Bedrock)."""
    usage = usage_from(raw)
    if usage is None:
        return None
    details = field(field(raw, "prompt_tokens_details"), "cache_creation_token_details")
    return replace(
        usage,
        cache_write_tokens=count(raw, "cache_creation_input_tokens"),
        cache_write_1h_tokens=count(details, "ephemeral_1h_input_tokens"),
    )


def _reader(operation: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], Request | None]:
    positional = ("model", "messages") if operation == "chat" else ("model", "input")

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        if kwargs.get("mock_response") is not None:
            return None  # LiteLLM answers it itself: nothing is sent, nothing is billed
        fields = dict(zip(positional, args, strict=False))
        fields.update(kwargs)
        model = fields.get("model")
        if not isinstance(model, str):
            return None
        api_base = fields.get("api_base") or fields.get("base_url")
        api_base = api_base if isinstance(api_base, str) else None
        custom = fields.get("custom_llm_provider")
        try:
            routed, routed_to, _, default_base = litellm.get_llm_provider(
                model=model, custom_llm_provider=custom if isinstance(custom, str) else None, api_base=api_base
            )
        except Exception:
            return None  # LiteLLM cannot route it either: it raises before anything is sent
        endpoint = endpoint_at(api_base or default_base, default=provider_name(routed_to))
        fields["model"] = routed
        request = read_chat_request(endpoint.provider, operation, fields)
        return request.sent_to(endpoint) if request is not None else None

    return read


def _chat_response(result: Any, request: Request) -> Response:
    response = chat_response(result, request)
    response.usage = usage_of(field(result, "usage"))
    compare_cost(request, response, field(getattr(result, "_hidden_params", None), "response_cost"))
    return response


def _embedding_response(result: Any, request: Request) -> Response:
    response = embedding_response(result, request)
    compare_cost(request, response, field(getattr(result, "_hidden_params", None), "response_cost"))
    return response


def compare_cost(request: Request, response: Response, theirs: Any) -> None:
    """Log once per model, at DEBUG, where LiteLLM's cost of the call and costspan's price differ by over 1%."""
    if not logger.isEnabledFor(logging.DEBUG) or response.usage is None or isinstance(theirs, bool):
        return
    model = response.model or request.model
    runtime = runtime_module.get()
    if not isinstance(theirs, (int, float)) or runtime is None or (request.provider, model) in _compared:
        return
    quote = runtime.pricer.quote(request.provider, model, response.usage)
    if quote.status != PRICED:
        return
    ours = nanos_to_float(quote.total_nanos)
    if abs(ours - theirs) > _TOLERANCE * max(abs(ours), abs(theirs)):
        _compared.add((request.provider, model))
        logger.debug(
            "costspan: LiteLLM prices a %s/%s call at %.9f USD, costspan at %.9f USD (%s, %s); costspan's is used",
            request.provider, model, theirs, ours, quote.key, quote.source,
        )


class StreamObserver(ChatChunkObserver):
    """LiteLLM's stream chunks (OpenAI's shape), and the usage it keeps in the final chunk's hidden params."""

    __slots__ = ("_hidden", "_reported", "_request")

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._request = request
        self._hidden: dict[str, Any] | None = None
        self._reported = False

    def observe(self, chunk: Any) -> None:
        super().observe(chunk)
        hidden = getattr(chunk, "_hidden_params", None)
        if isinstance(hidden, dict) and hidden.get("usage") is not None:
            # Set on the final chunk from what the provider reported, or LiteLLM's "unreported" mark; the
            # same dict is updated when the stream ends, so it is read then.
            self._hidden = hidden
            self._reported = _UNREPORTED is not None and not isinstance(hidden["usage"], _UNREPORTED)

    def response(self) -> Response:
        response = super().response()
        raw = self._usage
        if raw is None and self._reported and self._hidden is not None:
            raw = self._hidden.get("usage")
        usage = usage_of(raw)
        if usage is not None:
            response.usage = usage
            compare_cost(self._request, response, field(raw, "cost"))
        return response


class CustomStreamProxy(SyncStreamProxy):
    """A ``CustomStreamWrapper`` that is iterated either way, closed with ``close()`` or ``aclose()``, or
    used as a (sync or async) context manager; the span ends once, whichever ends it."""

    def __init__(self, wrapped: Any, state: StreamState, is_async: bool) -> None:
        super().__init__(wrapped, state)
        self._self_async = is_async

    def __aiter__(self) -> CustomStreamProxy:
        return self

    async def __anext__(self) -> Any:
        return await next_chunk(self.__wrapped__, self._self_state)

    def close(self) -> None:
        """LiteLLM's ``close()`` is synchronous, also after ``acompletion``; a charge that waits on the store
        then runs in a worker thread, so the event loop never waits on it."""
        try:
            self.__wrapped__.close()
        finally:
            if self._self_async and self._self_state.off_loop:
                finish_abandoned(self._self_state)
            else:
                self._self_state.finish()

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            await self._self_state.finish_async()

    async def __aenter__(self) -> CustomStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            await self._self_state.finish_async()


def _proxy(
    stream: Any, call: StreamedCall, observer: ChunkObserver, log_error: Callable[[str], None], *, is_async: bool
) -> wrapt.ObjectProxy:
    return CustomStreamProxy(stream, StreamState(call, observer, log_error), is_async)


def _is_stream(result: Any, request: Request) -> bool:
    return isinstance(result, CustomStreamWrapper)


_CHAT = Operation(_reader("chat"), _chat_response, StreamObserver, _is_stream, proxy_stream=_proxy)
_EMBEDDINGS = Operation(_reader("embeddings"), _embedding_response)

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("litellm", "", "completion", _CHAT),
    MethodSpec("litellm", "", "acompletion", _CHAT),
    MethodSpec("litellm", "", "embedding", _EMBEDDINGS),
    MethodSpec("litellm", "", "aembedding", _EMBEDDINGS),
)


class LiteLLMInstrumentor(ClientInstrumentor):
    """``costspan_litellm``: completion and embedding, sync and async, streaming; one span per call."""

    instruments = package.LITELLM
    methods = METHODS
