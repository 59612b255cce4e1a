"""Exactness where it is hard: several processes (each with threads) sharing one SQLite file or
one real redis-server. Quotas admit exactly their limit, spend sums to the nano-dollar, and each
threshold is crossed exactly once in the whole fleet."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from costspan.budgets import BudgetEngine
from costspan.errors import BudgetExceededError
from costspan.pricing import PRICED, Quote
from costspan.settings import load_settings
from tests.test_budget_stores import facts, fresh_redis

PROCESSES = 4
THREADS = 4
CHARGES = 250
BASE_COST = 1_000_003  # nano-dollars; every charge adds a distinct amount on top

QUOTA_YAML = "quotas:\n  - {name: exact, match: {provider: groq}, requests_per_day: 50, enforce: true}\n"
LOAD_YAML = (
    "budgets:\n  - {name: fleet, limit_usd: 3, window: day}\n"
    "quotas:\n  - {name: calls, requests_per_day: 1000000, tokens_per_day: 100000000}\n"
    "alerts:\n  thresholds: [0.25, 0.5, 0.75, 1.0]\n"
)


def _engine(config: str, url: str) -> BudgetEngine:
    return BudgetEngine.from_settings(load_settings({"COSTSPAN_CONFIG": config, "COSTSPAN_STORE": url}))


def _quota_worker(config: str, url: str, attempts: int, start: Any, results: Any) -> None:
    engine = _engine(config, url)
    call = facts(provider="groq")
    allowed = 0
    start.wait()
    for _ in range(attempts):
        try:
            reservation = engine.precheck(call)
        except BudgetExceededError:
            continue
        allowed += 1
        engine.charge(call, Quote(PRICED, input_nanos=1), reservation)
    engine.close()
    results.put(allowed)


def _load_worker(config: str, url: str, worker: int, start: Any, results: Any) -> None:
    engine = _engine(config, url)
    crossings: list[tuple[str, float]] = []
    total = [0]
    lock = threading.Lock()
    ready = threading.Barrier(THREADS)

    def run(thread: int) -> None:
        ready.wait()
        for i in range(CHARGES):
            cost = BASE_COST + (worker * THREADS + thread) * CHARGES + i
            result = engine.charge(facts(), Quote(PRICED, input_nanos=cost))
            with lock:
                total[0] += cost
                crossings.extend((c.budget, c.threshold) for c in result.crossings)

    start.wait()
    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.close()
    results.put((total[0], crossings))


def _run_fleet(target: Any, args: tuple[Any, ...]) -> list[Any]:
    """Start PROCESSES spawned workers together (a barrier), return what each reported."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args[:2], *args[2:], n, start, results)) for n in range(PROCESSES)]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
    assert all(worker.exitcode == 0 for worker in workers)
    return reports


def _store(kind: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else fresh_redis()


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "costspan.yaml"
    path.write_text(text)
    return str(path)


def _quota_fleet_worker(config: str, url: str, worker: int, start: Any, results: Any) -> None:
    _quota_worker(config, url, 30, start, results)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_request_quota_admits_exactly_its_limit_across_processes(kind: str, tmp_path: Path) -> None:
    config, url = _config(tmp_path, QUOTA_YAML), _store(kind, tmp_path)
    allowed = _run_fleet(_quota_fleet_worker, (config, url))  # 4 processes x 30 attempts
    assert sum(allowed) == 50
    engine = _engine(config, url)
    (entry,) = engine.status()
    assert entry.used == 50
    engine.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_spend_is_exact_and_each_threshold_crosses_once_across_processes(kind: str, tmp_path: Path) -> None:
    config, url = _config(tmp_path, LOAD_YAML), _store(kind, tmp_path)
    reports = _run_fleet(_load_worker, (config, url))  # 4 processes x 4 threads x 250 charges
    expected = sum(total for total, _ in reports)
    crossings = sorted(c for _, found in reports for c in found)
    assert crossings == [("fleet", 0.25), ("fleet", 0.5), ("fleet", 0.75), ("fleet", 1.0)]
    engine = _engine(config, url)
    entries = {(e.name, e.unit, e.window): e.used for e in engine.status()}
    engine.close()
    calls = PROCESSES * THREADS * CHARGES
    assert entries[("fleet", "USD", "day")] == expected  # to the nano-dollar
    assert entries[("calls", "requests", "day")] == calls
    assert entries[("calls", "tokens", "day")] == calls * 15


def test_a_second_process_sees_the_first_ones_spend(tmp_path: Path) -> None:
    config, url = _config(tmp_path, LOAD_YAML), _store("sqlite", tmp_path)
    first = _engine(config, url)
    first.charge(facts(), Quote(PRICED, input_nanos=123_456_789))
    first.close()  # the process is gone; the file stays
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    reader = ctx.Process(target=_read_spend, args=(config, url, results))
    reader.start()
    assert results.get(timeout=30) == 123_456_789
    reader.join(timeout=10)


def _read_spend(config: str, url: str, results: Any) -> None:
    engine = _engine(config, url)
    results.put(engine.status()[0].used)
    engine.close()
