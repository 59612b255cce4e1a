"""``memory://``: counters in this process only, for tests and throw-away runs.

One lock makes every operation atomic across threads, which is all the exactness a single
process can need; expired counters are dropped once a minute so per-user keys do not pile up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from costspan.budgets.store import OP_TTL_S, Claim, Giveback, Increment, Take, TakeResult

_PRUNE_EVERY = 60.0


class MemoryStore:
    backend = "memory"
    outcome_known = True
    """Each operation runs whole under one lock in this process: none is left in doubt."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._expires: dict[str, int] = {}
        self._claims: dict[str, int] = {}
        self._ops: dict[str, int] = {}
        """Operation ids applied, with their expiry (exactly-once replays)."""
        self._lock = threading.Lock()
        self._next_prune = time.time() + _PRUNE_EVERY

    def take(self, takes: Sequence[Take], op: str | None = None) -> TakeResult:
        with self._lock:
            values = tuple(self._values.get(t.key, 0) for t in takes)
            for index, (take, value) in enumerate(zip(takes, values, strict=True)):
                if take.refuses(value):
                    return TakeResult(index, values)
            for take, value in zip(takes, values, strict=True):
                self._set(take.key, value + take.delta, take.expires_at)
            if op is not None:
                self._ops[op] = int(time.time()) + OP_TTL_S
            return TakeResult(-1, values)

    def apply(
        self, increments: Sequence[Increment], op: str | None = None, giveback: Giveback | None = None
    ) -> tuple[int, ...]:
        with self._lock:
            if op is not None:
                if op in self._ops:
                    return tuple(self._values.get(inc.key, 0) for inc in increments)
                self._ops[op] = int(time.time()) + OP_TTL_S
            changes = list(increments)
            if giveback is not None and self._ops.pop(giveback.take_op, None) is not None:
                changes.extend(Increment(t.key, -t.delta, t.expires_at) for t in giveback.taken)
            for inc in changes:
                self._set(inc.key, self._values.get(inc.key, 0) + inc.delta, inc.expires_at)
            self._maybe_prune()
            return tuple(self._values[inc.key] for inc in increments)

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...]:
        with self._lock:
            won = []
            for index, claim in enumerate(claims):
                if claim.key not in self._claims:
                    self._claims[claim.key] = claim.expires_at
                    won.append(index)
            return tuple(won)

    def read(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            return [self._values.get(key, 0) for key in keys]

    def scan(self, prefix: str) -> dict[str, int]:
        with self._lock:
            return {key: value for key, value in self._values.items() if key.startswith(prefix)}

    def close(self) -> None:
        """Nothing to release: the counters live and die with the process."""

    def _set(self, key: str, value: int, expires_at: int) -> None:
        self._values[key] = value
        if expires_at > self._expires.get(key, 0):
            self._expires[key] = expires_at

    def _maybe_prune(self) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        for key in [k for k, expires in self._expires.items() if expires < now]:
            del self._expires[key]
            del self._values[key]
        for table in (self._claims, self._ops):
            for key in [k for k, expires in table.items() if expires < now]:
                del table[key]
