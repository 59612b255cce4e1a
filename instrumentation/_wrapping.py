"""The wrapper every instrumented client method shares, sync and async.

A provider module describes each method with an :class:`Operation` (how to read the request,
the response and the stream chunks); this module does the rest identically for all of them:
start the call (which may refuse it), send the request inside the span, and hand back the SDK's
own object, or a transparent proxy of its stream. No fault of ours reaches the application:
if reading the request fails the call goes ahead uninstrumented; if reading the response fails
the span still ends and the SDK's object is returned untouched.

Counted once: where someone else makes the GenAI span for the call, a span of ours would be a
second one, so the wrapper then only asks the budgets before the request leaves and the processor
prices the other span. That is the case when the SDK traces itself (``Operation.sdk_traces``), and
when another wrapt-based instrumentation (OpenLLMetry, the official OpenTelemetry ones, OpenLIT)
wraps the same method, inside ours or outside: its span need not be a parent or child of ours
(OpenLLMetry's does not become the current span), so nesting alone cannot tell it is the same call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from wrapt import FunctionWrapper

from costspan import runtime as runtime_module
from costspan.errors import BudgetExceededError
from costspan.instrumentation._call import LLMCall, Request, ReservationHold, Response, precheck
from costspan.instrumentation._streams import ChunkObserver, ends_off_loop, wrap_stream
from costspan.logs import log_once
from costspan.runtime import Runtime

logger = logging.getLogger("costspan")

# Set while one of our wrappers runs, so a nested instrumented method (e.g. ``parse`` calling
# ``create``, or a second instrumentation of the same method) does not count the call twice.
_ACTIVE = otel_context.create_key("costspan.call_active")


@dataclass(frozen=True)
class Operation:
    read_request: Callable[[Any, tuple[Any, ...], dict[str, Any]], Request | None]
    """(instance, args, kwargs) -> Request, or None to leave this call alone."""
    read_response: Callable[[Any, Request], Response]
    new_observer: Callable[[Request], ChunkObserver] | None = None
    is_stream: Callable[[Any, Request], bool] = lambda result, request: request.stream
    sdk_traces: Callable[[Any, Runtime], bool] | None = None
    """(instance, runtime) -> whether the SDK makes its own GenAI span for this call, seen by our processor."""
    proxy_stream: Callable[..., Any] = wrap_stream
    """Puts the stream proxy in place (``wrap_stream``'s signature); a helper object that reads its events
    from an inner stream proxies that one and is returned itself."""
    patched: tuple[Any, str] | None = None
    """(class or module, method) where this operation is patched in; set by ``patch()``."""

    def wrapped_by_another(self) -> bool:
        """Whether a second wrapt wrapper sits on the patched method: another instrumentation's, around ours
        or inside it (the SDKs' own methods are plain functions)."""
        if self.patched is None:
            return False
        owner, name = self.patched
        attribute = owner.__dict__.get(name)
        return isinstance(attribute, FunctionWrapper) and isinstance(attribute.__wrapped__, FunctionWrapper)


Call: TypeAlias = "LLMCall | ReservationHold"


def _begin(operation: Operation, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
    if not is_instrumentation_enabled() or otel_context.get_value(_ACTIVE):
        return None
    runtime: Runtime | None = runtime_module.get()
    if runtime is None:
        return None
    try:
        request = operation.read_request(instance, args, kwargs)
        spanned_elsewhere = request is not None and (
            operation.wrapped_by_another()
            or (operation.sdk_traces is not None and operation.sdk_traces(instance, runtime))
        )
    except Exception:
        log_once("reading the request")
        return None
    if request is None:
        return None
    try:
        return _hold(runtime, request) if spanned_elsewhere else LLMCall.start(runtime, request)
    except BudgetExceededError:
        raise
    except Exception:
        log_once("starting the span")
        return None


def _hold(runtime: Runtime, request: Request) -> ReservationHold | None:
    """Someone else makes the span: ask the budgets only, and hold what they reserve until the call ends."""
    try:
        reservation = precheck(runtime, request)
    except BudgetExceededError as exc:
        try:
            LLMCall.refused(runtime, request, exc)
        except Exception:
            log_once("recording a refused call")
        raise
    return None if reservation is None else ReservationHold(runtime, request, reservation)


def _finish(operation: Operation, call: Call, result: Any, *, is_async: bool) -> Any:
    try:
        if operation.new_observer is not None and operation.is_stream(result, call.request):
            observer = operation.new_observer(call.request)
            return operation.proxy_stream(result, call, observer, log_once, is_async=is_async)
        call.succeed(operation.read_response(result, call.request))
    except Exception:
        log_once("reading the response")
        try:
            call.succeed(Response())
        except Exception:
            log_once("ending the span")
    return result


def _enter(call: Call) -> Token[Context]:
    """Attach one context for the call: our span current (HTTP client spans nest under it) and the
    mark that a call is being instrumented. Returns the token to detach."""
    return otel_context.attach(call.context(otel_context.set_value(_ACTIVE, True)))


def make_wrapper(operation: Operation, wrapped_is_async: bool) -> Callable[..., Any]:
    """A wrapt wrapper for one client method."""
    return partial(run_async if wrapped_is_async else run_sync, operation)


async def run_async(operation: Operation, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Await ``wrapped(*args, **kwargs)`` as one instrumented call of ``operation`` on ``instance``.

    An enforced budget's check waits on the shared store (a SQLite lock, a Redis round trip); it
    then runs in a worker thread, with this context, so the event loop never waits on it.
    """
    runtime = runtime_module.get()
    budgets = runtime.budgets if runtime is not None else None
    if budgets is not None and budgets.precheck_does_io():
        call = await _begin_off_loop(operation, instance, args, kwargs)
    else:
        call = _begin(operation, instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    token = _enter(call)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        if ends_off_loop(runtime):
            await asyncio.to_thread(call.fail, exc)  # the thread completes even if this await is cancelled
        else:
            call.fail(exc)
        raise
    finally:
        otel_context.detach(token)
    if ends_off_loop(runtime):  # ending the call charges it: judged now, SIGTERM may have come meanwhile
        return await asyncio.to_thread(_finish, operation, call, result, is_async=True)
    return _finish(operation, call, result, is_async=True)


async def _begin_off_loop(operation: Operation, instance: Any, args: Any, kwargs: Any) -> Call | None:
    """``_begin`` in a worker thread. If the caller is cancelled meanwhile, the call it began is ended
    (and its reservation released) when the thread finishes, instead of being left open."""
    begun = asyncio.ensure_future(asyncio.to_thread(_begin, operation, instance, args, kwargs))
    try:
        return await asyncio.shield(begun)
    except asyncio.CancelledError:
        begun.add_done_callback(_abandon)
        raise


def _abandon(begun: asyncio.Future[Call | None]) -> None:
    if begun.cancelled() or begun.exception() is not None:
        return
    call = begun.result()
    if call is not None:
        call.fail(asyncio.CancelledError())


def run_sync(operation: Operation, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Call ``wrapped(*args, **kwargs)`` as one instrumented call of ``operation`` on ``instance``."""
    call = _begin(operation, instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    token = _enter(call)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        otel_context.detach(token)
    return _finish(operation, call, result, is_async=False)


def is_coroutine_method(owner: type, name: str) -> bool:
    """Whether calling the method gives a coroutine, seen through decorators (the Stainless SDKs wrap their
    async ``create`` in a plain function that checks the arguments)."""
    method = getattr(owner, name, None)
    return method is not None and inspect.iscoroutinefunction(inspect.unwrap(method))
