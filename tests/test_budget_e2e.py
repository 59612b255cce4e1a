"""Budgets end to end: the real openai SDK against the local stand-in, the span, the metrics, and
the budget gauges served once from a pre-fork pair of processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan
from costspan import attribute_names as A
from costspan.standin import ProviderServer
from tests.harness import Harness
from tests.test_budget_stores import free_port

MESSAGES = [{"role": "user", "content": "Summarise the ticket."}]


def test_enforced_budget_blocks_the_next_call_before_it_leaves(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: Any,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
) -> None:
    harness = make_runtime(
        f"""
endpoints:
  {provider_server.base_url.rstrip("/")}/v1: openai
budgets:
  - name: tiny
    limit_usd: 0.000001
    window: day
    enforce: true
alerts:
  thresholds: [0.5, 1.0]
"""
    )
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert provider_server.request_count == 1

    with pytest.raises(costspan.BudgetExceededError) as caught:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert provider_server.request_count == 1  # refused before any byte left
    assert caught.value.budget == "tiny"
    assert "'tiny'" in str(caught.value) and "resets at" in str(caught.value)

    charged, blocked = spans.get_finished_spans()
    assert charged.attributes is not None and blocked.attributes is not None
    assert charged.attributes[A.BUDGET_NAME] == "tiny"
    assert charged.attributes[A.BUDGET_STATUS] == "exceeded"
    assert charged.attributes[A.BUDGET_REMAINING_USD] == 0.0
    events = [e.attributes for e in charged.events if e.name == A.BUDGET_THRESHOLD_EVENT]
    assert [(e[A.BUDGET_NAME], e[A.BUDGET_THRESHOLD]) for e in events if e] == [("tiny", 0.5), ("tiny", 1.0)]
    assert blocked.attributes[A.ERROR_TYPE] == "BudgetExceededError"
    assert A.BUDGET_NAME not in blocked.attributes

    assert harness.sample("costspan_requests_total", outcome="blocked") == 1
    assert harness.sample("costspan_requests_total", outcome="success") == 1
    spent = harness.sample("costspan_budget_spend_usd", budget="tiny", window="day")
    assert spent == pytest.approx(charged.attributes[A.COST_USD])
    assert harness.sample("costspan_budget_utilization_ratio", budget="tiny") > 1
    assert harness.sample("costspan_budget_exhaustion_seconds", budget="tiny") == 0
    statuses = costspan.status()
    assert [(s["name"], s["status"]) for s in statuses] == [("tiny", "exceeded")]


def test_reserve_uses_the_counted_input_and_max_tokens(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    openai_client: Any,
    provider_server: ProviderServer,
) -> None:
    make_runtime(
        f"""
endpoints:
  {provider_server.base_url.rstrip("/")}/v1: openai
budgets:
  - {{name: held, limit_usd: 0.01, window: day, enforce: true, reserve: true}}
"""
    )
    # gpt-4o-mini output is $0.60 per million tokens: 100k tokens of worst case is $0.06.
    with pytest.raises(costspan.BudgetExceededError, match="worst-case"):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100_000)
    assert provider_server.request_count == 0
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000)
    (entry,) = costspan.status()
    # Reconciled to the call's real cost (about $0.00001), far below the 1000-token worst case ($0.0006).
    assert 0 < entry["used_nanos"] < 100_000


def test_otlp_budget_gauges(make_runtime: Callable[..., Harness]) -> None:
    harness = make_runtime("budgets:\n  - {name: otlp, limit_usd: 2, window: week}\n")
    costspan.track(provider="openai", model="gpt-4o-mini", cost_usd="0.5")
    (point,) = harness.otlp_points("costspan.budget.utilization")
    assert point.value == pytest.approx(0.25)
    assert dict(point.attributes) == {"budget": "otlp", "window": "week"}


WORKER = textwrap.dedent(
    """
    import sys, time
    from costspan import runtime
    from costspan.settings import load_settings
    from costspan.facts import CallFacts, Usage

    current = runtime.build(load_settings())
    facts = CallFacts(provider="openai", request_model="gpt-4o-mini", usage=Usage(10, 5),
                      declared_cost_nanos=int(sys.argv[1]))
    current.accounting.account(facts)
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    current.close()
    """
)


@pytest.mark.slow
def test_prefork_workers_publish_the_budget_gauges_once(tmp_path: Path) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text("budgets:\n  - {name: shared, limit_usd: 1, window: day}\n")
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "COSTSPAN_CONFIG": str(config),
        "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'budgets.db'}",
        "COSTSPAN_LEDGER": "off",
        "COSTSPAN_PROMETHEUS_PORT": str(port),
    }
    command = [sys.executable, "-c", WORKER]
    server = subprocess.Popen([*command, "300000000", "20"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        subprocess.run([*command, "200000000", "0"], env=env, check=True, capture_output=True)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.kill()
        server.wait()
    lines = [line for line in body.splitlines() if line.startswith("costspan_budget_spend_usd{")]
    assert lines == ['costspan_budget_spend_usd{budget="shared",window="day"} 0.5']  # both workers, once


@pytest.mark.parametrize("enforce", [True, False], ids=["precheck-waits", "charge-waits"])
def test_an_async_call_waiting_on_the_store_does_not_block_the_event_loop(
    enforce: bool,
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    provider_server: ProviderServer,
    tmp_path: Path,
) -> None:
    """Another process holds the SQLite store's write lock for 0.4 s; the enforced check before the
    call, or the charge after it, waits for it in a worker thread while the loop's other tasks run."""
    import asyncio

    import openai

    store = tmp_path / "budgets.db"
    make_runtime(
        f"""
endpoints:
  {provider_server.base_url.rstrip("/")}/v1: openai
budgets:
  - {{name: guarded, limit_usd: 100, window: day, enforce: {"true" if enforce else "false"}}}
""",
        COSTSPAN_STORE=f"sqlite:///{store}",
    )
    client = openai.AsyncOpenAI(base_url=provider_server.base_url + "/v1", api_key="k", max_retries=0)

    async def run() -> tuple[float, float, None]:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # creates the schema
        return await call_while_locked(client, store, 0.4, lambda: None)

    waited, longest_gap, _ = asyncio.run(run())
    assert 0.09 <= waited < 0.35  # the call waited for the lock, but no longer than the store's bound
    assert longest_gap < 0.08  # and the loop ran its other task all along
    assert provider_server.request_count == 2


def test_once_stopping_an_async_call_waits_for_its_ledger_row_off_the_event_loop(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    provider_server: ProviderServer,
    tmp_path: Path,
) -> None:
    """After SIGTERM (``costspan.flush()`` does the same) a call returns only once its ledger row is
    committed. With no budget to wait on, an async call then still ends in a worker thread: another
    process holds the ledger's write lock for 0.3 s, and the loop runs its other task meanwhile."""
    import asyncio

    import openai

    make_runtime(
        f"""
endpoints:
  {provider_server.base_url.rstrip("/")}/v1: openai
""",
        COSTSPAN_STORE=f"sqlite:///{tmp_path / 'costspan.db'}",
        COSTSPAN_LEDGER="on",
    )
    ledger = tmp_path / "costspan-ledger.db"
    client = openai.AsyncOpenAI(base_url=provider_server.base_url + "/v1", api_key="k", max_retries=0)

    def rows() -> int:
        with sqlite3.connect(ledger) as db:
            return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])

    async def run() -> tuple[float, float, int]:
        costspan.flush()  # what the SIGTERM handler runs
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert rows() == 1  # written before the call returned
        return await call_while_locked(client, ledger, 0.3, rows)

    waited, longest_gap, written = asyncio.run(run())
    assert written == 2 and waited >= 0.2  # the call waited for its row's commit
    assert longest_gap < 0.08  # in a worker thread: the loop ran its other task all along


def test_a_call_cancelled_while_its_budget_check_waits_is_ended_and_released(
    make_runtime: Callable[..., Harness],
    openai_instrumented: Any,
    provider_server: ProviderServer,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    import asyncio

    import openai

    store = tmp_path / "budgets.db"
    harness = make_runtime(
        f"""
endpoints:
  {provider_server.base_url.rstrip("/")}/v1: openai
quotas:
  - {{name: two-a-day, requests_per_day: 2, enforce: true}}
""",
        COSTSPAN_STORE=f"sqlite:///{store}",
    )
    harness.runtime.budgets.status()  # creates the store's schema
    client = openai.AsyncOpenAI(base_url=provider_server.base_url + "/v1", api_key="k", max_retries=0)
    holder, release = lock_the_store(store)

    async def cancelled_then_retried() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES), 0.05)
        release.set()
        await asyncio.to_thread(holder.join)
        for _ in range(100):  # the worker thread ends the abandoned call once the lock is free
            if spans.get_finished_spans():
                break
            await asyncio.sleep(0.02)
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    asyncio.run(cancelled_then_retried())

    abandoned, completed = spans.get_finished_spans()
    assert (abandoned.attributes or {})[A.ERROR_TYPE] == "CancelledError"
    assert (completed.attributes or {}).get(A.ERROR_TYPE) is None
    assert provider_server.request_count == 1
    # The abandoned call's reservation was settled when its span ended: one count each, not three.
    (quota,) = harness.runtime.budgets.status()
    assert quota.used == 2


T = TypeVar("T")


async def call_while_locked(
    client: Any, db: Path, hold_s: float, then: Callable[[], T]
) -> tuple[float, float, T]:
    """One async call while another writer holds ``db``'s write lock for ``hold_s``, and a task
    ticks every 10 ms: how long the call took, the longest the loop went without a tick, and what
    ``then()`` said as the call returned."""
    import asyncio
    import time

    holder, release = lock_the_store(db)
    threading.Timer(hold_s, release.set).start()
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while not release.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    started = time.monotonic()
    ticker = asyncio.create_task(tick())
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    waited = time.monotonic() - started
    seen = then()
    await ticker
    holder.join()
    return waited, max(gaps, default=waited), seen  # no tick at all: the loop was blocked throughout


def lock_the_store(store: Path) -> tuple[threading.Thread, threading.Event]:
    """Another writer takes the SQLite store's write lock and holds it until the event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(store, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    locked.wait(5)
    return holder, release
