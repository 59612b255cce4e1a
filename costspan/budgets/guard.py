"""Keeps a store failure out of the application: count it, log it once a minute, keep the spend.

When the store is unreachable (Redis down, file read-only) calls go on; what they would have
added waits here and is sent with the next write that gets through, so a budget ends up
charged for everything. After a failure the store is left alone for a moment instead of making
every call wait for its own timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from costspan.budgets.store import Claim, Increment, Store, Take, TakeResult

logger = logging.getLogger("costspan")
T = TypeVar("T")
_RETRY_AFTER_S = 1.0
_LOG_EVERY_S = 60.0


class GuardedStore:
    def __init__(self, store: Store, on_error: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_error = on_error
        """Called with the backend name on every failed attempt (the ``costspan_store_errors_total`` counter)."""
        self._pending: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._logged_at = -_LOG_EVERY_S

    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def pending(self) -> dict[str, int]:
        """Deltas not yet in the store, by key."""
        with self._lock:
            return {key: delta for key, (delta, _) in self._pending.items()}

    def take(self, takes: Sequence[Take]) -> TakeResult | None:
        """The store's answer, or None when it cannot be asked."""
        return self._call("take", lambda: self.store.take(takes))

    def apply(self, increments: Sequence[Increment], *, force: bool = False) -> tuple[int, ...] | None:
        """Add (with whatever is pending); on failure keep the increments for later, return None.

        ``force`` tries even while backing off after a failure (a final flush)."""
        waiting = self._drain() if self._pending else []
        values = self._call("apply", lambda: self.store.apply([*increments, *waiting]), force=force)
        if values is None:
            self._keep([*increments, *waiting])
            return None
        return values[: len(increments)]

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...] | None:
        """The claims won, or None when the store cannot be asked (they are tried again later)."""
        return self._call("claim", lambda: self.store.claim(claims))

    def read(self, keys: Sequence[str]) -> list[int] | None:
        return self._call("read", lambda: self.store.read(keys))

    def scan(self, prefix: str) -> dict[str, int] | None:
        return self._call("scan", lambda: self.store.scan(prefix))

    def flush(self) -> bool:
        """Send what is pending; True when nothing is left waiting."""
        with self._lock:
            empty = not self._pending
        return empty or self.apply((), force=True) is not None

    def close(self) -> None:
        if not self.flush():
            lost = self.pending
            logger.error("costspan: the budget store is unreachable; %d budget counters were not updated: %s",
                         len(lost), lost)
        try:
            self.store.close()
        except Exception:
            logger.debug("costspan: closing the budget store failed", exc_info=True)

    def _drain(self) -> list[Increment]:
        with self._lock:
            waiting = [Increment(key, delta, expires) for key, (delta, expires) in self._pending.items()]
            self._pending.clear()
        return waiting

    def _keep(self, increments: Sequence[Increment]) -> None:
        with self._lock:
            for inc in increments:
                entry = self._pending.setdefault(inc.key, [0, inc.expires_at])
                entry[0] += inc.delta
                entry[1] = max(entry[1], inc.expires_at)

    def _call(self, operation: str, run: Callable[[], T], *, force: bool = False) -> T | None:
        now = time.monotonic()
        if now < self._retry_at and not force:
            return None
        try:
            return run()
        except Exception as exc:
            self._retry_at = now + _RETRY_AFTER_S
            if self.on_error is not None:
                self.on_error(self.backend)
            if now - self._logged_at >= _LOG_EVERY_S:
                self._logged_at = now
                logger.warning(
                    "costspan: the %s budget store failed (%s: %s); calls go on and their spend is kept "
                    "until it is back (logged once a minute)",
                    self.backend,
                    operation,
                    exc,
                )
            return None
