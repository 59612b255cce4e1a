"""Calls an SDK sends lazily: the attribution in force when the application made the call.

``google-genai``'s ``generate_content_stream`` returns a generator that sends its request only when
the application first iterates it, often after leaving the ``costspan.attribute()`` block the
call was made in. The budget check and the charge would then see whoever is in force at that later
moment (the service name, usually). Wrapping the public method captures the attribution at the
call and pins it around every step of the generator, so the request method's own wrapper, the
span and the charge all see it. The proxy forwards everything else and stays lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry import context as otel_context

from costspan import attribution
from costspan.instrumentation._wrapping import Operation


class _PinnedIterator(wrapt.ObjectProxy):
    __slots__ = ()

    def __init__(self, wrapped: Any, who: attribution.Attribution) -> None:
        super().__init__(wrapped)
        self._self_who = who

    def __iter__(self) -> _PinnedIterator:
        return self

    def __next__(self) -> Any:
        return self._pinned(next, self.__wrapped__)

    def send(self, value: Any) -> Any:
        return self._pinned(self.__wrapped__.send, value)

    def throw(self, *args: Any) -> Any:
        return self._pinned(self.__wrapped__.throw, *args)

    def close(self) -> Any:
        return self._pinned(self.__wrapped__.close)

    def _pinned(self, step: Callable[..., Any], *args: Any) -> Any:
        token = otel_context.attach(attribution.pinned(self._self_who))
        try:
            return step(*args)
        finally:
            otel_context.detach(token)


class _PinnedAsyncIterator(wrapt.ObjectProxy):
    __slots__ = ()

    def __init__(self, wrapped: Any, who: attribution.Attribution) -> None:
        super().__init__(wrapped)
        self._self_who = who

    def __aiter__(self) -> _PinnedAsyncIterator:
        return self

    async def __anext__(self) -> Any:
        return await self._pinned(self.__wrapped__.__anext__)

    async def asend(self, value: Any) -> Any:
        return await self._pinned(self.__wrapped__.asend, value)

    async def athrow(self, *args: Any) -> Any:
        return await self._pinned(self.__wrapped__.athrow, *args)

    async def aclose(self) -> Any:
        return await self._pinned(self.__wrapped__.aclose)

    async def _pinned(self, step: Callable[..., Any], *args: Any) -> Any:
        token = otel_context.attach(attribution.pinned(self._self_who))
        try:
            return await step(*args)
        finally:
            otel_context.detach(token)


def pin_attribution(operation: Operation, is_async: bool) -> Callable[..., Any]:
    """A ``MethodSpec.wrap`` for a public method that returns a lazy (async) generator of requests."""
    del operation  # the request method's own wrapper makes the call; this one only pins who it is for

    if is_async:

        async def wrap_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            who = attribution.current()
            result = await wrapped(*args, **kwargs)
            return _PinnedAsyncIterator(result, who) if hasattr(result, "__anext__") else result

        return wrap_async

    def wrap_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        return _PinnedIterator(result, attribution.current()) if hasattr(result, "__next__") else result

    return wrap_sync
