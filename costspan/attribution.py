"""Who a call is for: project, user and feature, carried by the OpenTelemetry context.

The context (not a thread-local) is what follows asyncio tasks and contextvars-aware executors.
Attribution stays in the process unless ``propagate=True``: baggage travels in the headers of
every outgoing request, the LLM provider's included, so user ids must not go there silently.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from opentelemetry import baggage, context

_KEY = context.create_key("costspan.attribution")
BAGGAGE_PROJECT = "costspan.project"
BAGGAGE_FEATURE = "costspan.feature"
BAGGAGE_USER = "user.id"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Attribution:
    project: str | None = None
    user: str | None = None
    feature: str | None = None


_EMPTY = Attribution()


def current(ctx: context.Context | None = None) -> Attribution:
    """The attribution in force: in-process values first, then incoming baggage."""
    own = context.get_value(_KEY, ctx)
    found = own if isinstance(own, Attribution) else _EMPTY
    if found.project and found.user and found.feature:
        return found
    entries = baggage.get_all(ctx)
    if not entries:
        return found

    def pick(mine: str | None, key: str) -> str | None:
        if mine:
            return mine
        value = entries.get(key)
        return str(value) if value else None

    return Attribution(
        project=pick(found.project, BAGGAGE_PROJECT),
        user=pick(found.user, BAGGAGE_USER),
        feature=pick(found.feature, BAGGAGE_FEATURE),
    )


def pinned(who: Attribution, ctx: context.Context | None = None) -> context.Context:
    """A context in which ``who`` is the attribution in force, whatever surrounds it later.

    For calls an SDK sends lazily (a stream the application iterates after leaving its
    ``attribute()`` block): attribution is what was in force when the call was made."""
    return context.set_value(_KEY, who, ctx)


class attribute(contextlib.ContextDecorator):
    """``with costspan.attribute(project="research", user="u-42"):`` or ``@costspan.attribute(...)``.

    Nested uses inherit what they do not set. Works as a decorator on coroutine functions too.
    """

    def __init__(
        self,
        project: str | None = None,
        user: str | None = None,
        feature: str | None = None,
        *,
        propagate: bool = False,
    ) -> None:
        self._values = {"project": project, "user": user, "feature": feature}
        self._propagate = propagate
        self._tokens: list[Token[context.Context]] = []

    def _context(self) -> context.Context:
        base = context.get_value(_KEY)
        merged = base if isinstance(base, Attribution) else _EMPTY
        merged = replace(merged, **{k: v for k, v in self._values.items() if v is not None})
        ctx = context.set_value(_KEY, merged)
        if self._propagate:
            for key, value in (
                (BAGGAGE_PROJECT, merged.project),
                (BAGGAGE_USER, merged.user),
                (BAGGAGE_FEATURE, merged.feature),
            ):
                if value:
                    ctx = baggage.set_baggage(key, value, ctx)
        return ctx

    def __enter__(self) -> Attribution:
        ctx = self._context()
        self._tokens.append(context.attach(ctx))
        return current(ctx)

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return cast(F, wrapper)

    def _fresh(self) -> attribute:
        """A new instance per invocation: a decorated function may run concurrently."""
        return attribute(**self._values, propagate=self._propagate)
