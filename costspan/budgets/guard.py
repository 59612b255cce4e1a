"""Keeps a store failure out of the application: count it, log it once a minute, keep the spend.

When the store is unreachable (Redis down, file read-only or locked past the wait bound) calls
go on; the charges they would have applied wait here, each with its operation id, and are
replayed after the next write that gets through. Only a charge whose apply raised is kept, so a
replay counts twice only if a write that raised may still have run (a Redis script that ran while
its caller timed out): such a store recognises an id it has applied already. A store whose failed
writes change nothing (:attr:`~costspan.budgets.store.Store.outcome_known`) needs no id for that;
a charge kept without one gets one all the same, because a fork copies the pending charges into
the child process and each copy must not be applied again.
After a failure the store is left alone for a moment instead of making every call wait for its
own timeout.

One bad charge never blocks the others: a failure that is not an outage (a value the store
refuses) drops that charge alone, counted and logged; the others keep flowing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, ParamSpec, TypeVar

from costspan.budgets.store import Claim, Giveback, Increment, Store, Take, TakeResult, new_op
from costspan.faults import is_outage

logger = logging.getLogger("costspan")
T = TypeVar("T")
P = ParamSpec("P")
_RETRY_AFTER_S = 1.0
_LOG_EVERY_S = 60.0
MAX_PENDING = 100_000
"""Charges kept while the store is unreachable; beyond it the oldest are dropped (counted and logged)."""
CLOSE_PATIENCE_S = 5.0
"""How long the final flush at exit keeps retrying a locked or unreachable store."""


class _Charge(NamedTuple):
    increments: tuple[Increment, ...]
    op: str | None
    giveback: Giveback | None


class GuardedStore:
    def __init__(self, store: Store, on_error: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_error = on_error
        """Called with the backend name on every failed attempt (the ``costspan_store_errors_total`` counter)."""
        self.dropped = 0
        """Charges given up: refused by the store as invalid, or beyond :data:`MAX_PENDING`."""
        self._pending: deque[_Charge] = deque()
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._logged_at = -_LOG_EVERY_S
        self._logged_drop = False

    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def pending(self) -> dict[str, int]:
        """Deltas not yet in the store, by key (reservations given back counted as returned)."""
        totals: dict[str, int] = {}
        with self._lock:
            charges = list(self._pending)
        for charge in charges:
            for inc in charge.increments:
                totals[inc.key] = totals.get(inc.key, 0) + inc.delta
            for inc in charge.giveback.taken if charge.giveback is not None else ():
                totals[inc.key] = totals.get(inc.key, 0) - inc.delta
        return totals

    def take(self, takes: Sequence[Take], op: str | None = None) -> TakeResult | None:
        """The store's answer, or None when it cannot be asked."""
        return self._call("take", self.store.take, takes, op)

    def apply(
        self, increments: Sequence[Increment], op: str | None = None, giveback: Giveback | None = None
    ) -> tuple[int, ...] | None:
        """Apply one charge, then whatever is pending; on an outage keep the charge for later, return None."""
        charge = _Charge(tuple(increments), op, giveback)
        values = self._apply(charge)
        if values is None:
            return None
        if self._pending:
            self._replay()
        return values

    def claim(self, claims: Sequence[Claim]) -> tuple[int, ...] | None:
        """The claims won, or None when the store cannot be asked (they are tried again later)."""
        return self._call("claim", self.store.claim, claims)

    def read(self, keys: Sequence[str]) -> list[int] | None:
        return self._call("read", self.store.read, keys)

    def scan(self, prefix: str) -> dict[str, int] | None:
        return self._call("scan", self.store.scan, prefix)

    def flush(self, patience: float = 0.0) -> bool:
        """Send what is pending, retrying for up to ``patience`` seconds; True when nothing is left."""
        deadline = time.monotonic() + patience
        while True:
            self._replay(force=True)
            with self._lock:
                if not self._pending:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        if not self.flush(CLOSE_PATIENCE_S):
            lost = self.pending
            logger.error(
                "costspan: the budget store is unreachable; %d budget counters were not updated: %s", len(lost), lost
            )
        try:
            self.store.close()
        except Exception:
            logger.debug("costspan: closing the budget store failed", exc_info=True)

    # -- internals -------------------------------------------------------------------------
    def _apply(self, charge: _Charge, *, force: bool = False) -> tuple[int, ...] | None:
        """One charge: its values; None when kept for later (an outage) or dropped (invalid)."""
        now = time.monotonic()
        if now < self._retry_at and not force:
            self._keep(charge)
            return None
        try:
            values = self.store.apply(charge.increments, charge.op, charge.giveback)
        except Exception as exc:
            if not is_outage(exc):
                self._drop(charge, exc)
                return None
            self._failed("apply", exc, now)
            self._keep(charge)
            return None
        self._retry_at = 0.0  # it answers again: no reason to keep backing off
        return values

    def _replay(self, *, force: bool = False) -> None:
        """Send pending charges in order until one meets an outage (that one and the rest stay)."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                charge = self._pending.popleft()
            if self._apply(charge, force=force) is None and self._pending and self._pending[-1] is charge:
                # Kept again: the store is still down. Put it back first in line and stop for now.
                with self._lock:
                    self._pending.pop()
                    self._pending.appendleft(charge)
                return

    def _keep(self, charge: _Charge) -> None:
        if charge.op is None:
            # Its replay needs no id to be told from this failed attempt, but a fork copies what is
            # pending into the child, and the parent and each child may then replay it: the id
            # lets the store apply it once between them.
            charge = charge._replace(op=new_op("kept"))
        with self._lock:
            self._pending.append(charge)
            overflow = len(self._pending) > MAX_PENDING
            oldest = self._pending.popleft() if overflow else None
        if oldest is not None:
            self._drop(oldest, OverflowError(f"more than {MAX_PENDING} charges waiting for the store"))

    def _drop(self, charge: _Charge, exc: BaseException) -> None:
        self.dropped += 1
        if self.on_error is not None:
            self.on_error(self.backend)
        if not self._logged_drop:
            self._logged_drop = True
            logger.error(
                "costspan: the %s budget store refused a charge (%s: %s); it is dropped so that other charges "
                "go on (counted in costspan_store_errors_total; logged once): %s",
                self.backend,
                type(exc).__name__,
                exc,
                charge.increments,
            )

    def _failed(self, operation: str, exc: BaseException, now: float) -> None:
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

    def _call(self, operation: str, run: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``run(*args)``, or None when it fails (arguments rather than a closure: a lambda per call
        is measurable on the precheck's path)."""
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            return run(*args, **kwargs)
        except Exception as exc:
            self._failed(operation, exc, now)
            return None

