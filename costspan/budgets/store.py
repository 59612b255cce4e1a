"""The budget store: integer counters and one-time claims, shared by every process that counts.

Four operations carry all the semantics, each atomic in every backend, so the engine never
reads a value and writes it back (that loses increments and over-admits under concurrency):

* :meth:`Store.take` checks a set of counters against their limits and, only if all pass,
  adds to them: the pre-call check (request quotas, reservations).
* :meth:`Store.apply` adds to counters and returns their new values: a charge.
* :meth:`Store.claim` claims the alert thresholds those values reached: a claim is won by
  exactly one caller, whichever process it runs in. It is a separate step because it is rare
  (a few times per window), so the common charge stays one small operation.
* :meth:`Store.read` / :meth:`Store.scan` read values for status and metrics.

Counter keys carry their window, so a window reset is a new key and old keys just expire.

Exactly once: a take or an apply may run on the server and still fail on the client (a Redis
stall longer than the socket timeout), and the guard then replays it. So each carries an
operation id that the store records, with its effect, in the same atomic step, for
:data:`OP_TTL_S`: an apply whose id is recorded already changes nothing. A charge also names the
take that reserved for it (:class:`Giveback`); the store gives that reservation back only if the
take really happened, and only once, so a precheck whose answer was lost neither leaks its
reservation nor is given back twice.

A store whose writes are never in doubt (:attr:`Store.outcome_known`: a write that raised changed
nothing) cannot have such a replay, so an apply there needs an id only when the id names the
charge itself for other callers too (a span's ids: a gateway replica, or the gateway behind an
in-process caller, may charge the same span); the engine sends none otherwise, and the store then
records nothing. A take keeps its id either way: its giveback depends on it. So does a charge the
guard keeps for later: a fork copies it into the child, and the copies must count once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from costspan.errors import ConfigError


class Take(NamedTuple):
    key: str
    delta: int
    limit: int
    expires_at: int
    """Epoch seconds after which the counter may be dropped."""

    def refuses(self, current: int) -> bool:
        """At the limit already, or this delta would carry the counter over it."""
        return current >= self.limit or current + self.delta > self.limit


class TakeResult(NamedTuple):
    refused: int
    """Index of the first take that failed (nothing was added), or -1 when all were added."""
    values: tuple[int, ...]
    """Each counter's value before the take."""


class Increment(NamedTuple):
    key: str
    delta: int
    expires_at: int


class Giveback(NamedTuple):
    """A reservation to return with a charge (or alone, a release): ``taken`` is what the take
    with id ``take_op`` added; it is subtracted only if the store recorded that take."""

    take_op: str
    taken: tuple[Increment, ...]


OP_TTL_S = 86_400
"""How long a store remembers an operation id: a replay within a day is recognised. (Spend kept
longer than that while the store is unreachable is still applied, once per replay attempt that
reaches the store: the guard forgets a charge as soon as one apply of it succeeds.)"""


class _OpIds:
    """Operation ids unique across processes and hosts for far longer than a store keeps them: a
    random prefix per process (new after a fork) and a counter, a fraction of a uuid4's cost."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = os.urandom(12).hex()
        self.counter = itertools.count()

    def new(self, kind: str) -> str:
        return f"{kind}:{self.prefix}:{next(self.counter)}"


new_op = _OpIds().new
"""A fresh operation id, ``kind:process:counter``."""


class Claim(NamedTuple):
    key: str
    expires_at: int


class Store(Protocol):
    backend: str
    outcome_known: bool
    """Whether every write either takes effect and returns, or raises having changed nothing (one
    local transaction, rolled back on any error): then a replay of a failed write cannot count twice."""

    def take(self, takes: Sequence[Take], op: str | None = None) -> TakeResult:
        """Check and add; when it adds, ``op`` (if given) is recorded with it."""
        ...

    def apply(
        self, increments: Sequence[Increment], op: str | None = None, giveback: Giveback | None = None
    ) -> tuple[int, ...]:
        """Add the deltas (less ``giveback`` if its take is recorded); each counter's new value.

        With ``op`` already recorded nothing is added, and the values are the counters' current ones;
        without ``op`` nothing is recorded (the caller knows this apply is not repeated)."""
        ...

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...]:
        """Indices of the claims this caller won (each key is won once, by one caller)."""
        ...

    def read(self, keys: Sequence[str]) -> list[int]: ...

    def scan(self, prefix: str) -> dict[str, int]:
        """Every live counter whose key starts with ``prefix`` (members of a ``per`` budget)."""
        ...

    def close(self) -> None: ...


def check_url(url: str, source: str, key: str = "store") -> None:
    """Refuse a store URL no backend can open, at start-up and whether or not budgets are
    configured: the ledger's location follows the store, so a typo must not turn it off quietly."""
    if url.startswith("memory://"):
        return
    if url.startswith("sqlite:///"):
        if not url[len("sqlite:///") :]:
            raise ConfigError(source, key, f"no file in {url!r}: expected sqlite:///path/to/costspan.db")
        return
    if url.startswith(("redis://", "rediss://")):
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 (a property that parses, and raises on a bad port)
        except ValueError as exc:
            raise ConfigError(source, key, f"bad port in {url!r}: expected redis://host:6379/0") from exc
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ConfigError(source, key, f"bad database {database!r} in {url!r}: expected a number (redis://host:6379/0)")
        return
    if url.startswith("unix://"):
        return
    raise ConfigError(source, key, f"unknown store {url!r}: expected memory://, sqlite:///path or redis://host:port/db")


def open_store(url: str, source: str) -> Store:
    """The store a URL names. Nothing connects here: each backend opens on first use (and again
    after a fork), so a store that is down delays no start-up and raises into no application."""
    check_url(url, source)
    if url.startswith("memory://"):
        from costspan.budgets.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        from costspan.budgets.sqlite import SqliteStore

        return SqliteStore(url[len("sqlite:///") :])
    from costspan.budgets.redis_store import RedisStore

    return RedisStore(url)
