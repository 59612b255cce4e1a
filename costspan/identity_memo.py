"""Values kept per object, found by the object's identity: for objects that live long and are asked
about on every call (a client's URL, a call's memoized labels), where rebuilding the value costs
microseconds and hashing the object itself would cost almost as much.

Each entry holds its object, so the id it is found by cannot be another object's while it is kept;
the memo is emptied when it reaches its limit, so objects that come and go cannot make it grow.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[tuple[int, str], tuple[K, V]] = {}

    def get(self, key: K, part: str = "") -> V | None:
        """The value kept for ``key`` (and ``part``, when one object keeps several), or None."""
        found = self._entries.get((id(key), part))
        return found[1] if found is not None and found[0] is key else None

    def put(self, key: K, value: V, part: str = "") -> V:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(id(key), part)] = (key, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
