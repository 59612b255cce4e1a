"""The wrapper every instrumented client method shares, sync and async.

A provider module describes each method with an :class:`Operation` (how to read the request,
the response and the stream chunks); this module does the rest identically for all of them:
start the call (which may refuse it), send the request inside the span, and hand back the SDK's
own object, or a transparent proxy of its stream. No fault of ours reaches the application:
if reading the request fails the call goes ahead uninstrumented; if reading the response fails
the span still ends and the SDK's object is returned untouched.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costspan.instrumentation._call import LLMCall, Request, Response
from costspan.instrumentation._streams import ChunkObserver, wrap_stream
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from costspan import runtime as runtime_module
from costspan.errors import BudgetExceededError
from costspan.runtime import Runtime

logger = logging.getLogger("costspan")
_logged: set[str] = set()

# Set while one of our wrappers runs, so a nested instrumented method (e.g. ``parse`` calling
# ``create``, or a second instrumentation of the same method) does not count the call twice.
_ACTIVE = otel_context.create_key("costspan.call_active")


def log_once(where: str) -> None:
    if where not in _logged:
        _logged.add(where)
        logger.exception("costspan: internal error (%s); the call is unaffected", where)


@dataclass(frozen=True)
class Operation:
    read_request: Callable[[Any, tuple[Any, ...], dict[str, Any]], Request | None]
    """(instance, args, kwargs) -> Request, or None to leave this call alone."""
    read_response: Callable[[Any, Request], Response]
    new_observer: Callable[[Request], ChunkObserver] | None = None
    is_stream: Callable[[Any, Request], bool] = lambda result, request: request.stream


def _begin(operation: Operation, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall | None:
    if not is_instrumentation_enabled() or otel_context.get_value(_ACTIVE):
        return None
    runtime: Runtime | None = runtime_module.get()
    if runtime is None:
        return None
    try:
        request = operation.read_request(instance, args, kwargs)
    except Exception:
        log_once("reading the request")
        return None
    if request is None:
        return None
    try:
        return LLMCall.start(runtime, request)
    except BudgetExceededError:
        raise
    except Exception:
        log_once("starting the span")
        return None


def _finish(operation: Operation, call: LLMCall, result: Any, *, is_async: bool) -> Any:
    try:
        if operation.new_observer is not None and operation.is_stream(result, call.request):
            return wrap_stream(result, call, operation.new_observer(call.request), log_once, is_async=is_async)
        call.succeed(operation.read_response(result, call.request))
    except Exception:
        log_once("reading the response")
        try:
            call.succeed(Response())
        except Exception:
            log_once("ending the span")
    return result


def make_wrapper(operation: Operation, wrapped_is_async: bool) -> Callable[..., Any]:
    """A wrapt wrapper for one client method."""
    if wrapped_is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = _begin(operation, instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = otel_context.attach(otel_context.set_value(_ACTIVE, True))
            try:
                with call.active():
                    result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                otel_context.detach(token)
            return _finish(operation, call, result, is_async=True)

        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = _begin(operation, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(otel_context.set_value(_ACTIVE, True))
        try:
            with call.active():
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return _finish(operation, call, result, is_async=False)

    return sync_wrapper


def is_coroutine_method(owner: type, name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(owner, name, None))
