"""Instrumentor for the ``anthropic`` client library: ``messages`` and ``beta.messages``.

The anthropic SDK 2.x traces its own calls: unless its client's ``open_telemetry`` option (or
``ANTHROPIC_OPEN_TELEMETRY=false``) turns traces off, every ``messages.create`` gets a CLIENT span
``anthropic.messages.create`` with the GenAI usage attributes, input already normalised. A span of
ours would count the same call twice, so where the SDK's span reaches a tracer provider our
processor is attached to, the instrumentor only asks the budgets before the request leaves and the
processor prices the SDK's span. Where the SDK makes no span (traces off, SDKs before 2.x, no SDK
tracer provider), the instrumentor makes the span itself.

Anthropic's ``input_tokens`` excludes cache reads and writes; the semantic conventions count them
in, so they are added back. Cache writes say in ``cache_creation`` how many were written with the
1-hour lifetime, which is priced higher than the default 5 minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)
import wrapt
from opentelemetry import trace

from costspan.instrumentation import package
from costspan.instrumentation._anthropic_format import EventObserver, usage_from
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._sdk_format import field
from costspan.instrumentation._stainless import is_stream, unwrap_raw, wrap_stream_or_raw
from costspan.instrumentation._streams import ChunkObserver, StreamedCall, wrap_stream
from costspan.instrumentation._wrapping import Operation, run_async, run_sync
from costspan.instrumentation.endpoints import endpoint_of
from costspan.runtime import Runtime


def _reader(helper: bool) -> Any:
    """Reads the arguments of ``create``/``parse``, or with ``helper`` those of ``stream()``, which always streams."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        model = kwargs.get("model")
        if not isinstance(model, str):
            return None
        max_tokens = kwargs.get("max_tokens")
        messages: Any = kwargs.get("messages")
        system = kwargs.get("system")
        if not isinstance(messages, (list, tuple)):
            messages = None  # any other iterable is the SDK's to consume
        elif system is not None:
            messages = [{"role": "system", "content": system}, *messages]
        request = Request(
            provider="anthropic",
            operation="chat",
            model=model,
            stream=helper or kwargs.get("stream") is True,
            messages=messages,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )
        endpoint = endpoint_of(instance, default="anthropic")
        request.provider = endpoint.provider  # the same SDK reaches Bedrock and Vertex AI
        return request.sent_to(endpoint)

    return read


def _message_response(result: Any, request: Request) -> Response:
    reason = field(result, "stop_reason")
    content = field(result, "content") or ()
    return Response(
        model=field(result, "model"),
        response_id=field(result, "id"),
        finish_reasons=[str(reason)] if reason else (),
        usage=usage_from(field(result, "usage")),
        output_texts=[text for block in content if isinstance(text := field(block, "text"), str)],
    )


def _traced_by_sdk(instance: Any, runtime: Runtime) -> bool:
    """Whether the SDK makes its own span for the call, on a tracer provider our processor is attached to.

    ``open_telemetry`` is the client's resolved option (anthropic >= 2.x; older clients lack it and make
    no spans). ``attach`` puts the processor on an SDK tracer provider and says False for the no-op one,
    whose spans no processor would see: then the call needs a span of ours.
    """
    options = getattr(getattr(instance, "_client", None), "open_telemetry", None)
    if not isinstance(options, Mapping) or not field(options.get("traces"), "enabled"):
        return False
    return runtime.attach(options.get("tracer_provider") or trace.get_tracer_provider())


def _observe_raw_stream(
    stream: Any, call: StreamedCall, observer: ChunkObserver, log_error: Any, *, is_async: bool
) -> Any:
    """The helper's ``MessageStream`` reads its events from ``_raw_stream``: watch them there.

    So ``text_stream``, ``get_final_message()``, ``until_done()`` and iteration, which all read that
    raw stream from inside the helper, are seen alike, and the application keeps the helper itself.
    """
    stream._raw_stream = wrap_stream(stream._raw_stream, call, observer, log_error, is_async=is_async)
    return stream


class _StreamManager(wrapt.ObjectProxy):
    """``messages.stream()`` returns a manager that sends the request when it is entered: the call starts there."""

    def __init__(self, manager: Any, operation: Operation, instance: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(manager)
        self._self_operation = operation
        self._self_instance = instance
        self._self_kwargs = kwargs

    def __enter__(self) -> Any:
        def enter(*args: Any, **kwargs: Any) -> Any:
            return self.__wrapped__.__enter__()

        return run_sync(self._self_operation, enter, self._self_instance, (), self._self_kwargs)

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        def enter(*args: Any, **kwargs: Any) -> Any:
            return self.__wrapped__.__aenter__()

        return await run_async(self._self_operation, enter, self._self_instance, (), self._self_kwargs)

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)


def _stream_manager_wrapper(operation: Operation, is_async: bool) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return _StreamManager(wrapped(*args, **kwargs), operation, instance, kwargs)

    return wrapper


_CREATE = Operation(
    _reader(helper=False), unwrap_raw(_message_response), EventObserver, is_stream, sdk_traces=_traced_by_sdk,
    proxy_stream=wrap_stream_or_raw,
)
_STREAM_HELPER = Operation(
    _reader(helper=True),
    _message_response,
    EventObserver,
    lambda result, request: True,
    sdk_traces=_traced_by_sdk,
    proxy_stream=_observe_raw_stream,
)


def _methods(module: str) -> tuple[MethodSpec, ...]:
    return (
        MethodSpec(module, "Messages", "create", _CREATE),
        MethodSpec(module, "Messages", "parse", _CREATE),
        MethodSpec(module, "Messages", "stream", _STREAM_HELPER, wrap=_stream_manager_wrapper),
        MethodSpec(module, "AsyncMessages", "create", _CREATE),
        MethodSpec(module, "AsyncMessages", "parse", _CREATE),
        MethodSpec(module, "AsyncMessages", "stream", _STREAM_HELPER, wrap=_stream_manager_wrapper),
    )


METHODS: tuple[MethodSpec, ...] = (
    *_methods("anthropic.resources.messages.messages"),
    *_methods("anthropic.resources.beta.messages.messages"),
)


class AnthropicInstrumentor(ClientInstrumentor):
    """``costspan_anthropic``: ``messages`` and ``beta.messages`` (create, parse, stream), sync and async."""

    instruments = package.ANTHROPIC
    methods = METHODS
