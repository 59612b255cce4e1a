"""Stream proxies that keep the SDK's own stream object and end the span exactly once.

The proxy (a ``wrapt.ObjectProxy``) forwards every attribute, so ``.response``, ``.headers``,
``get_final_message()`` and the rest keep working; it passes every chunk through unchanged and
stays lazy (nothing is read ahead). The span ends when the stream is exhausted, closed, fails,
or is abandoned (garbage-collected unfinished), whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import wrapt

from costspan.instrumentation._call import Response
from costspan.runtime import Runtime


class StreamedCall(Protocol):
    """What a stream reports to: an :class:`LLMCall`, or a :class:`ReservationHold` where the SDK makes the span."""

    def first_chunk(self) -> None: ...

    def succeed(self, response: Response) -> None: ...

    def fail(self, exc: BaseException, partial: Response | None = None) -> None: ...


class ChunkObserver(Protocol):
    """Per-provider reading of chunks; must be cheap (a few attribute reads per chunk)."""

    def observe(self, chunk: Any) -> None: ...

    def response(self) -> Response: ...


class StreamState:
    __slots__ = ("call", "finished", "log_error", "observer")

    def __init__(self, call: StreamedCall, observer: ChunkObserver, log_error: Callable[[str], None]) -> None:
        self.call = call
        self.observer = observer
        self.finished = False
        self.log_error = log_error

    @property
    def off_loop(self) -> bool:
        """Ending the call may wait (the budget store, the ledger once stopping): an async stream
        then ends it in a worker thread. Judged when it ends, since SIGTERM may have come meanwhile."""
        return ends_off_loop(getattr(self.call, "runtime", None))

    def on_chunk(self, chunk: Any) -> None:
        try:
            self.call.first_chunk()
            self.observer.observe(chunk)
        except Exception:
            self.log_error("stream chunk")

    def finish(self, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        response = self._partial()  # an answer we cannot read still ends the span, as a non-stream's does
        try:
            if error is not None:
                self.call.fail(error, response)
            else:
                self.call.succeed(response if response is not None else Response())
        except Exception:
            self.log_error("stream end")


    def _partial(self) -> Response | None:
        try:
            return self.observer.response()
        except Exception:
            self.log_error("stream end")
            return None


    async def finish_async(self, error: BaseException | None = None) -> None:
        """``finish`` for async streams: off the event loop when the charge may wait on the store. The
        worker thread completes even if this await is cancelled."""
        if self.finished:
            return
        if self.off_loop:
            await asyncio.to_thread(self.finish, error)
        else:
            self.finish(error)


def ends_off_loop(runtime: Runtime | None) -> bool:
    """Whether ending a call may wait (see ``Accounting.charges_wait``): an async call then ends in a
    worker thread. Judged as the call ends, since SIGTERM may have come while it ran."""
    return runtime is not None and runtime.accounting.charges_wait()


class WatchedProxy(wrapt.ObjectProxy):
    """What every synchronous proxy shares: its call ends on ``close()``, or when it is dropped unfinished."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish()

    def __del__(self) -> None:
        state = getattr(self, "_self_state", None)
        if state is not None and not state.finished:
            finish_abandoned(state)


async def next_chunk(stream: Any, state: StreamState) -> Any:
    """The next chunk of an async stream, seen by the call; the stream's end or failure ends the call."""
    try:
        chunk = await stream.__anext__()
    except StopAsyncIteration:
        await state.finish_async()
        raise
    except BaseException as exc:
        await state.finish_async(exc)
        raise
    state.on_chunk(chunk)
    return chunk


class SyncStreamProxy(WatchedProxy):
    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped, state)
        # botocore's EventStream is iterable but no iterator: its generator is made here, not started.
        self._self_source = wrapped if isinstance(wrapped, Iterator) else iter(wrapped)

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._self_source)
        except StopIteration:
            self._self_state.finish()
            raise
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        self._self_state.on_chunk(chunk)
        return chunk

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_state.finish()


class AsyncStreamProxy(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        return await next_chunk(self.__wrapped__, self._self_state)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            await self._self_state.finish_async()

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            await self._self_state.finish_async()

    async def aclose(self) -> None:
        """Async generators (ollama's and google-genai's streams) close with ``aclose()``."""
        try:
            await self.__wrapped__.aclose()
        finally:
            await self._self_state.finish_async()

    def __del__(self) -> None:
        state = getattr(self, "_self_state", None)
        if state is not None and not state.finished:
            finish_abandoned(state)


def finish_abandoned(state: StreamState) -> None:
    """End an abandoned stream's call on another thread: the collector runs ``__del__`` wherever it
    happens to run, possibly inside costspan's own code holding the budget store's lock."""
    with contextlib.suppress(RuntimeError):  # the interpreter is shutting down: no new threads
        threading.Thread(target=state.finish, name="costspan-abandoned-stream", daemon=True).start()


def wrap_stream(
    stream: Any, call: StreamedCall, observer: ChunkObserver, log_error: Callable[[str], None], *, is_async: bool
) -> Any:
    return proxy_stream(stream, StreamState(call, observer, log_error), is_async=is_async)


def proxy_stream(stream: Any, state: StreamState, *, is_async: bool) -> Any:
    return AsyncStreamProxy(stream, state) if is_async else SyncStreamProxy(stream, state)
