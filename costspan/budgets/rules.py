"""The one shape every budget and quota limit is reduced to: a :class:`Rule`.

A budget is one rule (unit ``usd``); a quota is up to four (requests or tokens, per minute or per
day). The engine then treats them alike: match the call, pick the member (``per: user``), find
the window, and add an integer to one counter key. Keeping a single shape is what lets the three
stores share one small atomic API.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from costspan.budgets.windows import Window, WindowSpec
from costspan.facts import CallFacts

MATCH_KEYS = ("project", "provider", "model", "user", "feature")
PER_KEYS = ("user", "project", "feature", "model", "provider")
USD, REQUESTS, TOKENS = "usd", "requests", "tokens"
UNIT_NAMES = {USD: "USD", REQUESTS: "requests", TOKENS: "tokens"}
"""How each unit is named to people (errors, status, metric labels)."""


def _value(facts: CallFacts, key: str) -> str | None:
    """A call's value for a ``match``/``per`` key. ``model`` is the requested model: it is what the
    pre-call check sees, so a call lands on the same member before and after it runs."""
    if key == "model":
        return facts.request_model
    value = getattr(facts, key)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``match`` key: any of the listed values, ``*`` globs allowed (``gpt-4o*``)."""

    key: str
    exact: frozenset[str]
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, key: str, values: tuple[str, ...]) -> Condition:
        globs = [v for v in values if any(c in v for c in "*?[")]
        exact = frozenset(v for v in values if v not in globs)
        pattern = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None
        return cls(key, exact, pattern)

    def accepts(self, value: str | None) -> bool:
        if value is None:
            return False
        if value in self.exact:
            return True
        return self.pattern is not None and self.pattern.match(value) is not None

    def matches(self, facts: CallFacts) -> bool:
        if self.key == "model":
            # Either name counts: a dated response model still belongs to the family asked for.
            return self.accepts(facts.request_model) or (
                facts.response_model is not None and self.accepts(facts.response_model)
            )
        return self.accepts(_value(facts, self.key))


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit of one budget or quota over one kind of window."""

    name: str
    kind: str
    """``budget`` or ``quota``."""
    unit: str
    """``usd`` (nano-dollars), ``requests`` or ``tokens``."""
    limit: int
    window: WindowSpec
    conditions: tuple[Condition, ...] = ()
    per: str | None = None
    enforce: bool = False
    reserve: bool = False
    reserve_output_tokens: int | None = None
    thresholds: tuple[float, ...] = ()
    levels: tuple[int, ...] = field(init=False, default=())
    """Counter values at which each threshold is reached (exact integers), ascending."""
    alerts: bool = field(init=False, default=False)
    """Whether crossings raise alerts: minute windows reset before anyone could act on one."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self._level(t) for t in self.thresholds))
        object.__setattr__(self, "alerts", bool(self.thresholds) and self.window.kind != "minute")

    def member(self, facts: CallFacts) -> str | None:
        """The counter this call feeds within the rule, or None when the rule does not apply.

        ``""`` for a rule without ``per``; a ``per`` rule skips calls lacking that value.
        """
        for condition in self.conditions:
            if not condition.matches(facts):
                return None
        if self.per is None:
            return ""
        return _value(facts, self.per)

    def prefix(self, window: Window) -> str:
        """Every counter key of this rule in ``window`` starts with this (members follow it)."""
        return f"{self.kind}|{self.name}|{self.unit}|{window.id}|"

    def _level(self, threshold: float) -> int:
        """The counter value at which ``threshold`` (a fraction of the limit) is reached, exactly."""
        millionths = round(threshold * 1_000_000)
        return max(1, -(-self.limit * millionths // 1_000_000))
