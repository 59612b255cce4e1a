"""Attribution follows the OpenTelemetry context: nesting, threads via contextvars, asyncio, baggage."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import baggage, context

import costspan
from costspan.attribution import Attribution, current


def test_nesting_inherits_unset_values() -> None:
    with costspan.attribute(project="research", user="u1"):
        with costspan.attribute(feature="summarise"):
            assert current() == Attribution(project="research", user="u1", feature="summarise")
        assert current() == Attribution(project="research", user="u1")
    assert current() == Attribution()


def test_decorator_on_sync_and_async_functions() -> None:
    @costspan.attribute(project="p", feature="f")
    def sync() -> Attribution:
        return current()

    @costspan.attribute(user="u")
    async def coro() -> Attribution:
        await asyncio.sleep(0)
        return current()

    assert sync() == Attribution(project="p", feature="f")
    assert asyncio.run(coro()) == Attribution(user="u")


def test_follows_tasks_and_context_copying_executors() -> None:
    async def main() -> list[Attribution]:
        async def child() -> Attribution:
            await asyncio.sleep(0)
            return current()

        with costspan.attribute(project="tasks"):
            return list(await asyncio.gather(child(), child()))

    assert all(a.project == "tasks" for a in asyncio.run(main()))
    with costspan.attribute(user="pool"), ThreadPoolExecutor(1) as pool:
        ctx = contextvars.copy_context()
        assert pool.submit(ctx.run, current).result().user == "pool"


def test_in_process_by_default_and_into_baggage_only_when_asked() -> None:
    with costspan.attribute(project="quiet", user="u9"):
        assert baggage.get_all() == {}
    with costspan.attribute(project="loud", user="u9", propagate=True):
        assert baggage.get_all() == {"costspan.project": "loud", "user.id": "u9"}


def test_incoming_baggage_is_read() -> None:
    ctx = baggage.set_baggage("costspan.project", "from-upstream")
    ctx = baggage.set_baggage("user.id", "u-up", ctx)
    token = context.attach(ctx)
    try:
        with costspan.attribute(feature="local"):
            assert current() == Attribution(project="from-upstream", user="u-up", feature="local")
    finally:
        context.detach(token)
