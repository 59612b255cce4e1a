"""A span delivered twice is accounted once, across batches, retries and replicas.

Before a span is accounted its ``(trace id, span id)`` is claimed in the budget store, the one
place every replica shares; only the caller that wins the claim accounts it (budgets, metrics,
ledger). A claim is one atomic operation in every backend (``INSERT OR IGNORE`` in SQLite, one Lua
script in Redis) and all the spans of a request go in one round trip. Claims expire after the
TTL (a day by default, as the store's operation ids do), so the table stays bounded.

When the store cannot answer (Redis down, SQLite locked past its bound) the spans are accounted
anyway, by this replica's own judgement (its trace window has caught duplicates it saw itself):
losing spend is worse than the rare double count of a cross-replica duplicate during an outage,
and budget charges stay exactly-once through their own operation ids.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from costspan.budgets.guard import GuardedStore
from costspan.budgets.store import Claim


class SpanClaims:
    def __init__(self, store: GuardedStore, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self.unavailable = 0
        """Requests whose claims the store could not answer (accounted by local judgement)."""

    def win(self, keys: Sequence[str]) -> set[int]:
        """Indices of ``keys`` (``trace:span`` hex ids) this caller won and must account."""
        if not keys:
            return set()
        expires = int(time.time()) + self._ttl
        won = self._store.claim([Claim(f"gwspan|{key}", expires) for key in keys])
        if won is None:
            self.unavailable += 1
            return set(range(len(keys)))
        return set(won)

    def close(self) -> None:
        self._store.close()
