"""Errors that reach the user: a bad configuration, and the deliberate budget refusal."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, always naming where it is so it can be fixed without guessing."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


def check_keys(source: str, section: str, given: Mapping[Any, object], known: Collection[str]) -> None:
    """Refuse a key ``known`` lacks, naming the nearest known one: a typo (``prot:``) must not
    leave a default silently in place. ``section`` prefixes the key (``""`` at the top level)."""
    unknown = sorted(str(key) for key in given if key not in known)
    if not unknown:
        return
    key = unknown[0]
    nearest = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]!r}? " if nearest else ""
    raise ConfigError(
        source, f"{section}.{key}" if section else key, f"unknown key; {hint}(known: {', '.join(sorted(known))})"
    )


class BudgetExceededError(Exception):
    """Raised before a call is sent when an enforced budget or quota is spent.

    The only exception costspan ever raises into the application. It names the budget, its limit,
    the spend and when the window resets, both in the message and as attributes, so a handler can
    tell the user something useful (which budget, until when).
    """

    def __init__(
        self,
        budget: str,
        limit: Decimal,
        spent: Decimal,
        resets_at: datetime | None,
        *,
        kind: str = "budget",
        unit: str = "USD",
        reason: str = "spent",
    ) -> None:
        self.budget = budget
        self.kind = kind
        self.limit = limit
        self.spent = spent
        self.resets_at = resets_at
        self.unit = unit
        self.reason = reason
        resets = resets_at.isoformat() if resets_at else "never"
        amounts = f"limit ${limit}, spent ${spent}" if unit == "USD" else f"limit {limit} {unit}, used {spent} {unit}"
        super().__init__(
            f"costspan {kind} {budget!r} refused the call ({reason}): {amounts}; window resets at {resets}"
        )
