"""BudgetEngine: the pre-call check and the charge, over whichever store the settings name.

The instrumentation asks :meth:`BudgetEngine.precheck` before a request leaves (it may refuse);
the span processor calls :meth:`BudgetEngine.charge` when the call ends. Each is one atomic
store operation (one transaction, or one Redis round trip), which is what keeps quotas exact
when many threads, processes or hosts share them:

* precheck *takes*: it checks every enforced limit the call matches and, only if all pass,
  counts the request (and reserves the worst-case cost or the estimated input tokens); when it
  has nothing to count or reserve (spend budgets that do not reserve) it only reads;
* charge *applies*: it adds the real cost and tokens and gives back what precheck reserved, in
  one step. When the new totals reach an alert threshold (a few times per window), a second step
  claims it; a claim is won once in the whole store, so each crossing produces one span event
  and one log record however many processes run.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from costspan.accounted import NO_CHARGE, BudgetSnapshot, ChargeResult, ThresholdCrossing
from costspan.budgets.config import BudgetsConfig, parse
from costspan.budgets.guard import GuardedStore
from costspan.budgets.rules import REQUESTS, TOKENS, UNIT_NAMES, USD, Rule
from costspan.budgets.status import BudgetStatus
from costspan.budgets.store import Claim, Giveback, Increment, Store, Take, TakeResult, new_op, open_store
from costspan.budgets.windows import Window
from costspan.errors import BudgetExceededError
from costspan.facts import CallFacts
from costspan.money import MAX_CALL_NANOS, nanos_to_usd
from costspan.pricing import UNPRICED, Quote
from costspan.settings import Settings

logger = logging.getLogger("costspan")
_EXPIRY_GRACE_S = 3600
"""Counters outlive their window by an hour, so a status read at the turn still finds them."""
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a precheck added to the store (or tried to: its answer may have been lost), to be
    reconciled by the charge or given back; the store returns it only if the take happened."""

    giveback: Giveback


class _Hit(NamedTuple):
    """One rule a call matched, in the window the call falls in."""

    rule: Rule
    window: Window
    key: str
    member: str
    expires_at: int


class _Slot:
    """A rule with its current window's key prefix, recomputed only when the window turns."""

    __slots__ = ("current", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.current: tuple[Window, str, int] | None = None

    def hit(self, facts: CallFacts, now: float) -> _Hit | None:
        member = self.rule.member(facts)
        if member is None:
            return None
        current = self.current
        if current is None or not current[0].start <= now < current[0].end:
            window = self.rule.window.at(now)
            # One tuple, assigned at once: another thread sees the old window or the new, never a mix.
            current = self.current = (window, self.rule.prefix(window), int(window.end) + _EXPIRY_GRACE_S)
        window, prefix, expires_at = current
        return _Hit(self.rule, window, prefix + member, member, expires_at)


class BudgetEngine:
    def __init__(
        self,
        config: BudgetsConfig,
        store: Store | None,
        *,
        enforce: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._slots = tuple(_Slot(rule) for rule in config.rules)
        self._store = GuardedStore(store) if store is not None and config.rules else None
        self._enforced = tuple(slot for slot in self._slots if slot.rule.enforce) if enforce else ()
        self._wants_input = any(s.rule.reserve or s.rule.unit == TOKENS for s in self._enforced)
        caps = [s.rule.reserve_output_tokens for s in self._enforced if s.rule.reserve_output_tokens is not None]
        self._output_cap = max(caps) if caps else None
        self._clock = clock
        self._replays_need_ids = store is not None and not store.outcome_known
        """Whether a write that raised may still have run, so a fresh charge needs an id to be replayed."""
        self._reached: dict[str, int] = {}
        """Per counter key: how many of its thresholds this process has seen claimed."""
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> BudgetEngine:
        """Raises ConfigError for a bad section; opens no store (and costs nothing) without budgets."""
        config = parse(settings)
        store = open_store(settings.store_url, settings.source) if config.rules else None
        return cls(config, store, enforce=settings.enforce, clock=clock)

    @property
    def backend(self) -> str | None:
        return self._store.backend if self._store is not None else None

    def set_error_hook(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(backend)`` on each store failure (the metrics exporter counts them)."""
        if self._store is not None:
            self._store.on_error = hook

    # -- before the call -------------------------------------------------------------------
    def wants_input_estimate(self) -> bool:
        """Whether precheck uses the request's input tokens, so they are worth counting first."""
        return self._wants_input

    def waits_on_store(self) -> bool:
        """Whether a charge may wait on a file lock or the network: async callers then end their
        calls (which charges them) off the event loop."""
        return self._store is not None and self._store.backend != "memory"

    def checks_before_calls(self) -> bool:
        """Whether any rule is enforced: if not, the instrumentation skips the precheck altogether."""
        return bool(self._enforced) and self._store is not None

    def precheck_does_io(self) -> bool:
        """Whether a precheck may wait on the store (only enforced rules are checked before a call)."""
        return bool(self._enforced) and self.waits_on_store()

    def output_token_cap(self) -> int | None:
        """Output tokens to assume for a worst case when the request sets no ``max_tokens``."""
        return self._output_cap

    def precheck(self, facts: CallFacts, *, worst_case_nanos: int | None = None) -> Reservation | None:
        """Refuse (BudgetExceededError) or admit the call; admitted, it holds a reservation."""
        if not self._enforced or self._store is None:
            return None
        now = self._clock()
        hits: list[_Hit] = []
        takes: list[Take] = []
        for slot in self._enforced:
            hit = slot.hit(facts, now)
            if hit is not None:
                hits.append(hit)
                delta = _precheck_delta(hit.rule, facts, worst_case_nanos)
                takes.append(Take(hit.key, delta, hit.rule.limit, hit.expires_at))
        if not takes:
            return None
        if any(not 0 <= take.delta <= MAX_CALL_NANOS for take in takes):
            logger.debug("costspan: a precheck amount out of range was not reserved: %s", takes)
            takes = [take._replace(delta=0) for take in takes]
        op, result = self._take(self._store, takes)
        if result is None:
            if self.config.fail_closed:
                raise _refusal(hits[0], 0, "the budget store is unreachable and fail_closed is set")
        elif result.refused >= 0:
            hit, used = hits[result.refused], result.values[result.refused]
            raise _refusal(hit, used, _reason(hit, used))
        if not op:
            return None  # it only read: nothing to give back
        # Kept even when the store did not answer: the take may have run, and the charge then
        # gives it back (the store knows whether it did).
        taken = tuple(Increment(t.key, t.delta, t.expires_at) for t in takes if t.delta)
        return Reservation(Giveback(op, taken))

    @staticmethod
    def _take(store: GuardedStore, takes: list[Take]) -> tuple[str, TakeResult | None]:
        """The take's operation id and the store's answer (None: it could not be asked)."""
        if any(take.delta for take in takes):
            op = new_op("take")
            return op, store.take(takes, op)
        # Nothing to count or reserve (spend budgets that do not reserve): a check that adds
        # nothing needs no write lock and no operation id, only the current values.
        values = store.read([take.key for take in takes])
        if values is None:
            return "", None
        for index, (take, value) in enumerate(zip(takes, values, strict=True)):
            if take.refuses(value):
                return "", TakeResult(index, tuple(values))
        return "", TakeResult(-1, tuple(values))

    def release(self, reservation: object | None) -> None:
        """Give back a reservation whose call will not be charged with it."""
        if isinstance(reservation, Reservation) and self._store is not None:
            self._store.apply((), self._replay_id("release"), reservation.giveback)

    # -- after the call --------------------------------------------------------------------
    def charge(self, facts: CallFacts, quote: Quote, reservation: object | None = None) -> ChargeResult:
        """Add the call to every rule it matches, settle its reservation, report crossings."""
        store = self._store
        if store is None or facts.outcome == "blocked":
            return NO_CHARGE
        now = self._clock()
        amounts = {
            USD: quote.total_nanos if quote.status != UNPRICED else 0,
            REQUESTS: 1,
            TOKENS: facts.usage.total_tokens if facts.has_usage else 0,
        }
        hits: list[_Hit] = []
        increments: dict[str, Increment] = {}
        for slot in self._slots:
            hit = slot.hit(facts, now)
            if hit is not None:
                hits.append(hit)
                amount = amounts[hit.rule.unit]
                added = increments.get(hit.key)
                increments[hit.key] = (
                    Increment(hit.key, amount, hit.expires_at)
                    if added is None
                    else added._replace(delta=added.delta + amount)
                )
        giveback = reservation.giveback if isinstance(reservation, Reservation) else None
        if not increments and giveback is None:
            return NO_CHARGE
        if any(not -MAX_CALL_NANOS <= inc.delta <= MAX_CALL_NANOS for inc in increments.values()):
            logger.warning("costspan: a charge out of range was not applied to the budgets: %s", increments)
            return NO_CHARGE
        applied = store.apply(tuple(increments.values()), self._charge_op(facts), giveback)
        if applied is None or not increments:
            return NO_CHARGE
        values = dict(zip(increments, applied, strict=True))
        return ChargeResult(self._most_used(hits, values), self._crossings(hits, values))

    def _charge_op(self, facts: CallFacts) -> str | None:
        """The charge's id: its span's ids where it has them (a gateway replica, or a gateway behind
        this process, charging the same span is the same charge), else one for the guard's replays."""
        if facts.trace_id and facts.span_id:
            return f"span:{facts.trace_id}:{facts.span_id}"
        return self._replay_id("charge")

    def _replay_id(self, kind: str) -> str | None:
        """A fresh id where the store needs one to recognise a replay of a write whose outcome was
        lost; None where no outcome is ever lost (the store then records nothing)."""
        return new_op(kind) if self._replays_need_ids else None

    def _crossings(self, hits: list[_Hit], values: dict[str, int]) -> tuple[ThresholdCrossing, ...]:
        """Claim the thresholds the new totals reached that no one here has seen claimed yet.

        The store decides who wins each claim; this process remembers how far each counter got so
        the common charge, with nothing new reached, never asks."""
        candidates: list[tuple[_Hit, int]] = []
        for hit in hits:
            if not hit.rule.alerts:
                continue
            reached = bisect_right(hit.rule.levels, values[hit.key])
            seen = self._reached.get(hit.key, 0)
            candidates.extend((hit, i) for i in range(seen, reached))
        if not candidates or self._store is None:
            return ()
        claims = [Claim(f"claim|{hit.key}|{hit.rule.thresholds[i]:g}", hit.expires_at) for hit, i in candidates]
        won = self._store.claim(claims)
        if won is None:
            return ()  # asked again on the next charge
        if len(self._reached) > _MAX_REMEMBERED:
            self._reached.clear()  # only a shortcut: the store refuses a claim made twice
        for hit, i in candidates:
            self._reached[hit.key] = max(self._reached.get(hit.key, 0), i + 1)
        crossings = []
        for index in won:
            hit, i = candidates[index]
            threshold = hit.rule.thresholds[i]
            crossings.append(ThresholdCrossing(hit.rule.name, threshold))
            _log_crossing(hit, threshold, values[hit.key])
        return tuple(crossings)

    def _most_used(self, hits: list[_Hit], values: dict[str, int]) -> BudgetSnapshot | None:
        best: _Hit | None = None
        best_utilization = -1.0
        for hit in hits:
            if hit.rule.unit == USD:
                utilization = values[hit.key] / hit.rule.limit
                if utilization > best_utilization:
                    best, best_utilization = hit, utilization
        if best is None:
            return None
        remaining = max(best.rule.limit - values[best.key], 0)
        return BudgetSnapshot(best.rule.name, best_utilization, remaining, self.config.levels.status(best_utilization))

    # -- status and lifecycle --------------------------------------------------------------
    def status(self) -> list[BudgetStatus]:
        """Every budget and every quota limit, read from the store (never raises)."""
        if self._store is None or self._closed:
            return []
        now = self._clock()
        rules = [slot.rule for slot in self._slots]
        windows = [rule.window.at(now) for rule in rules]
        plain = [rule.prefix(w) for rule, w in zip(rules, windows, strict=True) if rule.per is None]
        values = self._store.read(plain)
        error = None if values is not None else "the budget store is unreachable"
        pending = self._store.pending
        found = dict(zip(plain, values or [0] * len(plain), strict=True))
        entries = []
        for rule, window in zip(rules, windows, strict=True):
            prefix = rule.prefix(window)
            if rule.per is None:
                members = {"": found[prefix]}
            else:
                scanned = self._store.scan(prefix)
                error = error if scanned is not None else "the budget store is unreachable"
                members = {key[len(prefix) :]: value for key, value in (scanned or {}).items()}
            for key, delta in pending.items():
                if key.startswith(prefix):
                    member = key[len(prefix) :]
                    members[member] = members.get(member, 0) + delta
            entries.append(BudgetStatus.of(rule, window, members, now, self.config.levels, error))
        return entries

    def flush(self) -> None:
        """Send spend kept while the store was unreachable (nothing else is ever deferred)."""
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._store is not None:
            self._store.close()


def _precheck_delta(rule: Rule, facts: CallFacts, worst_case_nanos: int | None) -> int:
    if rule.unit == REQUESTS:
        return 1
    if rule.unit == TOKENS:
        return facts.usage.input_tokens
    return worst_case_nanos if rule.reserve and worst_case_nanos else 0


def _reason(hit: _Hit, used: int) -> str:
    if used >= hit.rule.limit:
        return f"{hit.window.kind} limit reached" if hit.rule.kind == "quota" else "budget spent"
    if hit.rule.unit == USD:
        return "the call's worst-case cost would exceed the limit"
    return f"the call's {hit.rule.unit} would exceed the {hit.window.kind} limit"


def _refusal(hit: _Hit, used: int, reason: str) -> BudgetExceededError:
    rule = hit.rule
    money = rule.unit == USD
    return BudgetExceededError(
        rule.name,
        nanos_to_usd(rule.limit) if money else Decimal(rule.limit),
        nanos_to_usd(used) if money else Decimal(used),
        hit.window.resets_at(),
        kind=rule.kind,
        unit=UNIT_NAMES[rule.unit],
        reason=reason,
    )


def _log_crossing(hit: _Hit, threshold: float, used: int) -> None:
    rule = hit.rule
    shown = f"${nanos_to_usd(used)} of ${nanos_to_usd(rule.limit)}" if rule.unit == USD else f"{used} of {rule.limit}"
    logger.warning(
        "costspan: %s %r%s crossed %g%% of its %s %s limit (%s used); the window resets at %s",
        rule.kind,
        rule.name,
        f" ({rule.per} {hit.member})" if rule.per else "",
        threshold * 100,
        hit.window.kind,
        UNIT_NAMES[rule.unit],
        shown,
        hit.window.resets_at().isoformat(),
    )
