"""The budget store: integer counters and one-time claims, shared by every process that counts.

Three operations carry all the semantics, each atomic in every backend, so the engine never
reads a value and writes it back (that loses increments and over-admits under concurrency):

* :meth:`Store.take` checks a set of counters against their limits and, only if all pass,
  adds to them: the pre-call check (request quotas, reservations).
* :meth:`Store.apply` adds to counters and claims the alert thresholds their new values reach:
  a charge. A claim succeeds for exactly one caller per window, whichever process it runs in.
* :meth:`Store.read` / :meth:`Store.scan` read values for status and metrics.

Counter keys carry their window, so a window reset is a new key and old keys just expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from costspan.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Take:
    key: str
    delta: int
    limit: int
    expires_at: int
    """Epoch seconds after which the counter may be dropped."""

    def refuses(self, current: int) -> bool:
        """At the limit already, or this delta would carry it over."""
        return current >= self.limit or current + self.delta > self.limit


@dataclass(frozen=True, slots=True)
class TakeResult:
    refused: int
    """Index of the first take that failed (nothing was added), or -1 when all were added."""
    values: tuple[int, ...]
    """Each counter's value before the take."""


@dataclass(frozen=True, slots=True)
class Increment:
    key: str
    delta: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Claim:
    counter: int
    """Index of the increment whose new value is tested."""
    level: int
    """Claimed only when that value is at least this."""
    key: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Applied:
    values: tuple[int, ...]
    """Each counter's value after the increments."""
    claimed: tuple[int, ...]
    """Indices of the claims this call won."""


class Store(Protocol):
    backend: str

    def take(self, takes: Sequence[Take]) -> TakeResult: ...

    def apply(self, increments: Sequence[Increment], claims: Sequence[Claim] = ()) -> Applied: ...

    def read(self, keys: Sequence[str]) -> list[int]: ...

    def scan(self, prefix: str) -> dict[str, int]:
        """Every live counter whose key starts with ``prefix`` (members of a ``per`` budget)."""
        ...

    def close(self) -> None: ...


def open_store(url: str, source: str) -> Store:
    """The store a URL names. Nothing connects here: each backend opens on first use (and again
    after a fork), so a store that is down delays no start-up and raises into no application."""
    if url.startswith("memory://"):
        from costspan.budgets.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        from costspan.budgets.sqlite import SqliteStore

        path = url[len("sqlite:///") :]
        if not path:
            raise ConfigError(source, "store", f"no file in {url!r}: expected sqlite:///path/to/costspan.db")
        return SqliteStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from costspan.budgets.redis_store import RedisStore

        return RedisStore(url)
    raise ConfigError(source, "store", f"unknown store {url!r}: expected memory://, sqlite:///path or redis://host:port/db")
