"""Patching client methods, and the instrumentor every provider's is: what all of them share."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]  # not in the module's __all__
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from costspan import runtime as runtime_module
from costspan.instrumentation._wrapping import Operation, is_coroutine_method, make_wrapper


@dataclass(frozen=True)
class MethodSpec:
    module: str
    owner: str
    """The class that has the method; ``""`` for a module-level function (``litellm.completion``)."""
    method: str
    operation: Operation
    wrap: Callable[[Operation, bool], Callable[..., Any]] = make_wrapper
    """(operation, method is async) -> the wrapt wrapper; another one for a method that does not send the
    request itself but returns an object that does (anthropic's ``messages.stream()`` manager)."""


def _owner(spec: MethodSpec) -> Any:
    """The class (or, for a module-level function, the module) that has the method; None if absent."""
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        return None
    if not spec.owner:
        return module if callable(getattr(module, spec.method, None)) else None
    owner = getattr(module, spec.owner, None)
    return owner if isinstance(owner, type) and hasattr(owner, spec.method) else None


def patch(methods: Iterable[MethodSpec], tracer_provider: Any = None) -> None:
    """Wrap each method that exists in the installed SDK version (older ones lack some)."""
    runtime = runtime_module.get()
    if runtime is not None and tracer_provider is not None:
        runtime.attach(tracer_provider)
    for spec in methods:
        owner = _owner(spec)
        if owner is None:
            continue
        operation = replace(spec.operation, patched=(owner, spec.method))
        wrapper = spec.wrap(operation, is_coroutine_method(owner, spec.method))
        wrap_function_wrapper(spec.module, f"{spec.owner}.{spec.method}" if spec.owner else spec.method, wrapper)


def unpatch(methods: Iterable[MethodSpec]) -> None:
    for spec in methods:
        owner = _owner(spec)
        if owner is not None:
            unwrap(owner, spec.method)


class ClientInstrumentor(BaseInstrumentor):
    """One client library's instrumentor, registered under ``opentelemetry_instrumentor``.

    A subclass names the library and its supported versions (``instruments``, from
    :mod:`costspan.instrumentation.package`) and the methods it wraps (``methods``)."""

    instruments: ClassVar[tuple[str, ...]] = ()
    methods: ClassVar[tuple[MethodSpec, ...]] = ()

    def instrumentation_dependencies(self) -> tuple[str, ...]:
        return self.instruments

    def _instrument(self, **kwargs: Any) -> None:
        patch(self.methods, kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch(self.methods)
