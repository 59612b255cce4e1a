"""The three budget stores against one contract, and the helpers the other budget tests share.

The Redis tests drive a real ``redis-server`` started here on a free port (one per session);
they are skipped, with the reason, only when the binary is not installed.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from costspan.budgets import BudgetEngine
from costspan.budgets.store import Claim, Giveback, Increment, Store, Take, open_store
from costspan.errors import ConfigError
from costspan.facts import CallFacts, Usage
from costspan.settings import load_settings

BACKENDS = ("memory", "sqlite", "redis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A throw-away redis-server on ``port`` (no persistence), answering PING when this returns."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")
    directory = tempfile.mkdtemp(prefix="costspan-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.02)
    process.terminate()
    raise RuntimeError("redis-server did not start")


@functools.cache
def redis_server() -> str:
    """URL of a private redis-server for this test session, started on first use."""
    port = free_port()
    atexit.register(start_redis(port).terminate)
    return f"redis://127.0.0.1:{port}/0"


def fresh_redis(db: int = 0) -> str:
    """The session's server with database ``db`` emptied."""
    import redis

    url = redis_server().rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def store_url(backend: str, directory: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{directory / 'budgets.db'}"
    return fresh_redis()


def make_engine(
    tmp_path: Path, yaml_text: str, url: str, *, clock: Callable[[], float] = time.time, **env: str
) -> BudgetEngine:
    config = tmp_path / "costspan.yaml"
    config.write_text(yaml_text)
    settings = load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_STORE": url, **env})
    return BudgetEngine.from_settings(settings, clock=clock)


def facts(
    provider: str = "openai", model: str = "gpt-4o-mini", *, input_tokens: int = 10, output_tokens: int = 5, **who: str
) -> CallFacts:
    return CallFacts(provider=provider, request_model=model, usage=Usage(input_tokens, output_tokens), **who)


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path)


@pytest.fixture
def store(backend_url: str) -> Iterator[Store]:
    opened = open_store(backend_url, "test")
    yield opened
    opened.close()


EXPIRES = int(time.time()) + 3600


def test_take_adds_only_when_every_counter_has_room(store: Store) -> None:
    assert store.take([Take("a", 2, 3, EXPIRES), Take("b", 1, 1, EXPIRES)]).refused == -1
    refused = store.take([Take("a", 1, 3, EXPIRES), Take("b", 1, 1, EXPIRES)])
    assert (refused.refused, refused.values) == (1, (2, 1))
    assert store.read(["a", "b", "missing"]) == [2, 1, 0]  # "a" was not added to either


def test_take_refuses_at_the_limit_and_when_the_delta_would_cross_it(store: Store) -> None:
    assert store.take([Take("m", 0, 10, EXPIRES)]).refused == -1  # a read-only check
    assert store.take([Take("m", 8, 10, EXPIRES)]).refused == -1
    assert store.take([Take("m", 3, 10, EXPIRES)]).refused == 0  # 8 + 3 > 10
    assert store.take([Take("m", 2, 10, EXPIRES)]).refused == -1  # exactly 10 fits
    assert store.take([Take("m", 0, 10, EXPIRES)]).refused == 0  # at the limit


def test_apply_returns_the_new_values(store: Store) -> None:
    assert store.apply([Increment("x", 6, EXPIRES), Increment("y", -2, EXPIRES)]) == (6, -2)
    assert store.apply([Increment("x", 4, EXPIRES)]) == (10,)


def test_each_claim_is_won_once(store: Store) -> None:
    assert store.claim([Claim("claim|x|0.5", EXPIRES), Claim("claim|x|1", EXPIRES)]) == (0, 1)
    assert store.claim([Claim("claim|x|0.9", EXPIRES), Claim("claim|x|1", EXPIRES)]) == (0,)
    assert store.claim([Claim("claim|x|0.9", EXPIRES)]) == ()


def test_scan_finds_the_members_of_a_prefix_only(store: Store) -> None:
    store.apply([Increment("budget|b|usd|day:1|alice", 3, EXPIRES), Increment("budget|b|usd|day:1|bob", 4, EXPIRES)])
    store.apply([Increment("budget|b|usd|day:2|alice", 9, EXPIRES), Increment("budget|bb|usd|day:1|x", 1, EXPIRES)])
    store.apply([Increment("budget|b|usd|day:1|", 1, EXPIRES)])
    store.claim([Claim("claim|budget|b|usd|day:1||1", EXPIRES)])
    assert store.scan("budget|b|usd|day:1|") == {
        "budget|b|usd|day:1|alice": 3,
        "budget|b|usd|day:1|bob": 4,
        "budget|b|usd|day:1|": 1,
    }


def test_a_second_store_on_the_same_url_sees_the_counters(backend_url: str) -> None:
    if backend_url.startswith("memory"):
        pytest.skip("memory:// is private to one store by design")
    first, second = open_store(backend_url, "test"), open_store(backend_url, "test")
    try:
        first.apply([Increment("shared", 7, EXPIRES)])
        assert second.read(["shared"]) == [7]
    finally:
        first.close()
        second.close()


def test_redis_counters_expire_with_their_window() -> None:
    import redis

    url = fresh_redis()
    store = open_store(url, "test")
    store.apply([Increment("k", 1, int(time.time()) + 100)])
    store.claim([Claim("c", int(time.time()) + 100)])
    client = redis.Redis.from_url(url)
    assert 0 < client.ttl("costspan:k") <= 100
    assert 0 < client.ttl("costspan:c") <= 100
    client.close()
    store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [("ftp://host/x", "unknown store"), ("sqlite:///", "no file")],
)
def test_bad_store_urls_are_config_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        open_store(url, "/etc/costspan.yaml")
    assert caught.value.source == "/etc/costspan.yaml"
    assert caught.value.key == "store"


def test_an_operation_applied_twice_counts_once(store: Store) -> None:
    """A replay (the caller timed out while the store ran it) must not count the charge again."""
    assert store.apply([Increment("spend", 5, EXPIRES)], "charge:1") == (5,)
    assert store.apply([Increment("spend", 5, EXPIRES)], "charge:1") == (5,)
    assert store.apply([Increment("spend", 2, EXPIRES)], "charge:2") == (7,)
    assert store.read(["spend"]) == [7]


def test_a_reservation_is_given_back_only_if_its_take_happened_and_only_once(store: Store) -> None:
    taken = (Increment("requests", 1, EXPIRES),)
    assert store.take([Take("requests", 1, 10, EXPIRES)], "take:a").refused == -1
    # The charge adds the real count and gives the reservation back: 1 in all, not 2.
    assert store.apply([Increment("requests", 1, EXPIRES)], "charge:a", Giveback("take:a", taken)) == (1,)
    # A release of the same take (or a replayed charge) gives nothing back a second time.
    store.apply([], "release:a", Giveback("take:a", taken))
    assert store.read(["requests"]) == [1]
    # A take that never reached the store (its answer lost, or never sent) is not given back.
    assert store.apply([Increment("requests", 1, EXPIRES)], "charge:b", Giveback("take:b", taken)) == (2,)


def test_a_refused_take_records_nothing_to_give_back(store: Store) -> None:
    assert store.take([Take("q", 1, 0, EXPIRES)], "take:refused").refused == 0
    store.apply([], "release:refused", Giveback("take:refused", (Increment("q", 1, EXPIRES),)))
    assert store.read(["q"]) == [0]


def test_a_new_sqlite_store_file_gets_small_pages(tmp_path: Path) -> None:
    """The page size must be set before the file's first write, or SQLite ignores it; each commit
    copies every page it changed into the log, so small pages keep a charge cheap."""
    import sqlite3

    from costspan.budgets.sqlite import PAGE_SIZE, SqliteStore

    store = SqliteStore(tmp_path / "b.db")
    store.apply([Increment("spend", 1, EXPIRES)])
    store.close()
    conn = sqlite3.connect(tmp_path / "b.db")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE < 4096
    conn.close()
