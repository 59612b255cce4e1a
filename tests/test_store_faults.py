"""Store faults with the real stores: a stalled redis-server, SQLite files locked, deleted and fed
values no store can hold. What must hold: a charge counts once whatever is replayed, one bad value
blocks no other charge, no caller waits on the store beyond its bound, and a lost file is noticed."""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from costspan.budgets import BudgetEngine
from costspan.budgets.sqlite import BUSY_TIMEOUT_S
from costspan.pricing import PRICED, Quote
from tests.test_budget_stores import facts, fresh_redis, make_engine

BUDGET = "budgets:\n  - {name: daily, limit_usd: 100, window: day}\n"
QUOTA = "quotas:\n  - {name: calls, requests_per_day: 1000, enforce: true}\n" + BUDGET


def spent(engine: BudgetEngine, name: str = "daily") -> int:
    (entry,) = [e for e in engine.status() if e.name == name]
    return int(entry.used)


@pytest.mark.slow
def test_a_charge_the_server_ran_during_a_redis_stall_counts_once(tmp_path: Path) -> None:
    """The client times out (0.5 s) while the paused server still holds the script; it runs when the
    pause ends, and the guard's replay must then change nothing."""
    import redis

    url = fresh_redis()
    engine = make_engine(tmp_path, BUDGET, url)
    admin = redis.Redis.from_url(url)
    admin.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    engine.charge(facts(), Quote(PRICED, input_nanos=1_000))  # times out; kept for later
    time.sleep(1.7)  # the pause ends and the server runs the queued script
    assert engine._store is not None and engine._store.pending  # costspan still holds it
    engine.flush()
    engine.charge(facts(), Quote(PRICED, input_nanos=10))
    assert admin.get("costspan:" + next(iter(admin.scan_iter("costspan:budget*"))).decode()[9:]) == b"1010"
    engine.close()
    admin.close()


@pytest.mark.slow
def test_a_precheck_whose_answer_was_lost_is_given_back_once(tmp_path: Path) -> None:
    """The take ran on the stalled server but its reply never came: the call was admitted (fail-open)
    and its charge must give back what the take counted, so the request is counted once."""
    import redis

    url = fresh_redis()
    engine = make_engine(tmp_path, QUOTA, url)
    admin = redis.Redis.from_url(url)
    admin.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    reservation = engine.precheck(facts())
    assert reservation is not None  # kept although the store did not answer
    time.sleep(1.7)
    engine.flush()
    engine._store._retry_at = 0.0  # type: ignore[union-attr]  # skip the guard's one-second back-off
    engine.charge(facts(), Quote(PRICED, input_nanos=10), reservation)
    assert spent(engine, "calls") == 1
    engine.close()
    admin.close()


@pytest.mark.parametrize("backend", ["sqlite", "memory", "redis"])
def test_one_value_no_store_can_hold_does_not_block_the_other_charges(tmp_path: Path, backend: str) -> None:
    url = {"sqlite": f"sqlite:///{tmp_path / 'b.db'}", "memory": "memory://", "redis": ""}[backend] or fresh_redis()
    engine = make_engine(tmp_path, BUDGET, url)
    engine.charge(facts(), Quote(PRICED, input_nanos=2**63))
    for _ in range(60):
        engine.charge(facts(), Quote(PRICED, input_nanos=1_000))
    assert engine._store is not None and not engine._store.pending
    assert spent(engine) == 60_000
    engine.close()


def test_a_charge_the_store_refuses_is_dropped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Defence in depth below the engine's own range check: a store error that is not an outage
    (here SQLite's integer overflow) drops that charge, counted, and later charges flow."""
    from costspan.budgets.guard import GuardedStore
    from costspan.budgets.sqlite import SqliteStore
    from costspan.budgets.store import Increment

    errors: list[str] = []
    guarded = GuardedStore(SqliteStore(tmp_path / "b.db"), on_error=errors.append)
    expires = int(time.time()) + 3600
    guarded.apply([Increment("k", 7, expires)], "a")
    with caplog.at_level(logging.ERROR, logger="costspan"):
        assert guarded.apply([Increment("k", 2**63, expires)], "b") is None  # no SQLite INTEGER holds it
    assert guarded.apply([Increment("k", 5, expires)], "c") == (12,)
    assert guarded.dropped == 1 and errors == ["sqlite"] and not guarded.pending
    assert "refused a charge" in caplog.text
    guarded.close()


def _charge_while_commits_fail(directory: str, results: Any) -> None:
    """In a child process, since the file-size limit is the whole process's: the store's write-ahead
    log may not grow, so each charge's COMMIT fails (in WAL mode a small transaction's pages are
    written at COMMIT) with a disk I/O error; then the limit is lifted and the guard replays them."""
    path = Path(directory) / "b.db"
    engine = make_engine(Path(directory), BUDGET, f"sqlite:///{path}")
    errors: list[str] = []
    engine.set_error_hook(errors.append)
    engine.charge(facts(), Quote(PRICED, input_nanos=1_000))
    span = facts()
    span.trace_id, span.span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(f"{path}-wal"), hard))
    assert engine._store is not None
    engine.charge(facts(), Quote(PRICED, input_nanos=700))  # no span: no operation id
    engine._store._retry_at = 0.0  # skip the guard's one-second back-off
    engine.charge(span, Quote(PRICED, input_nanos=50))  # a span's charge carries its id
    in_file = sqlite3.connect(path).execute("SELECT sum(value) FROM budget_counters").fetchone()[0]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    pending = engine._store.pending
    flushed = engine._store.flush()
    engine.charge(span, Quote(PRICED, input_nanos=50))  # the same span again (a replica's copy)
    engine.charge(facts(), Quote(PRICED, input_nanos=3))
    results.put((errors, in_file, list(pending.values()), flushed, spent(engine)))
    engine.close()


def test_a_charge_whose_sqlite_commit_failed_is_replayed_and_counted_once(tmp_path: Path) -> None:
    """A failed COMMIT leaves nothing behind, so the guard's replay is the charge's one application,
    with an operation id or without."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_charge_while_commits_fail, args=(str(tmp_path), results))
    child.start()
    errors, in_file, pending, flushed, total = results.get(timeout=60)
    child.join(timeout=10)
    assert child.exitcode == 0
    assert errors == ["sqlite", "sqlite"]  # both COMMITs failed...
    assert in_file == 1_000  # ...and left the file as it was
    assert pending == [750] and flushed
    assert total == 1_753


def hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(5)
    return thread


def test_a_caller_waits_on_a_locked_sqlite_store_no_longer_than_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    engine = make_engine(tmp_path, QUOTA, f"sqlite:///{path}")
    engine.status()  # creates the file
    holder = hold_write_lock(path, 2.0)
    started = time.monotonic()
    reservation = engine.precheck(facts())  # admitted (fail-open) after the bound
    engine.charge(facts(), Quote(PRICED, input_nanos=700), reservation)  # kept for later
    waited = time.monotonic() - started
    holder.join()
    assert waited < BUSY_TIMEOUT_S * 3, waited
    assert engine._store is not None and engine._store.flush()
    assert spent(engine) == 700 and spent(engine, "calls") == 1


def test_a_charge_kept_before_a_fork_counts_once_between_parent_and_child(tmp_path: Path) -> None:
    """A fork (a pre-fork server) copies the charges waiting for the store into the child; the parent
    and the child both replay them, and the store must apply each once."""
    path = tmp_path / "b.db"
    engine = make_engine(tmp_path, BUDGET, f"sqlite:///{path}")
    engine.status()  # creates the file
    holder = hold_write_lock(path, 0.5)
    engine.charge(facts(), Quote(PRICED, input_nanos=700))  # locked past the bound: kept
    holder.join()
    assert engine._store is not None and engine._store.pending
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if engine._store.flush() else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine._store.flush()
    assert spent(engine) == 700
    engine.close()


def test_fail_closed_refuses_while_the_store_is_locked(tmp_path: Path) -> None:
    from costspan.errors import BudgetExceededError

    path = tmp_path / "b.db"
    engine = make_engine(tmp_path, "fail_closed: true\n" + QUOTA, f"sqlite:///{path}")
    engine.status()
    holder = hold_write_lock(path, 1.0)
    with pytest.raises(BudgetExceededError, match="unreachable"):
        engine.precheck(facts())
    holder.join()
    engine.close()


def test_a_deleted_store_file_is_noticed_and_its_spend_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    engine = make_engine(tmp_path, BUDGET, f"sqlite:///{path}")
    errors: list[str] = []
    engine.set_error_hook(errors.append)
    engine.charge(facts(), Quote(PRICED, input_nanos=5_000))
    os.unlink(path)
    time.sleep(1.1)  # the file's identity is checked once a second
    with caplog.at_level(logging.ERROR, logger="costspan"):
        engine.charge(facts(), Quote(PRICED, input_nanos=1_000))
    assert "deleted or replaced" in caplog.text
    assert errors == ["sqlite"]
    assert path.exists()
    assert engine._store is not None and engine._store.flush()
    assert spent(engine) == 6_000
    # A second process's view of the new file agrees: the spend is in the file, not only in memory.
    other = make_engine(tmp_path, BUDGET, f"sqlite:///{path}")
    assert spent(other) == 6_000
    other.close()
    engine.close()


def test_a_deleted_store_file_is_restored_once_by_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    first = make_engine(tmp_path, BUDGET, f"sqlite:///{path}")
    second = make_engine(tmp_path, BUDGET, f"sqlite:///{path}")
    first.charge(facts(), Quote(PRICED, input_nanos=4_000))
    second.charge(facts(), Quote(PRICED, input_nanos=1_000))
    os.unlink(path)
    time.sleep(1.1)
    for engine in (first, second):
        engine.charge(facts(), Quote(PRICED, input_nanos=100))
        assert engine._store is not None and engine._store.flush()
    assert spent(first) == spent(second) == 5_200
    first.close()
    second.close()
