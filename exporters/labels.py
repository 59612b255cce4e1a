"""Bounded label values, so a runaway set of model or project names cannot explode a TSDB.

Each label keeps the first N distinct values it sees in this process; later ones become
``other`` and are counted in ``costspan_folded_label_values_total`` so the folding is visible.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OTHER = "other"
DEFAULT_CAPS = {"model": 200, "project": 100, "feature": 100, "provider": 50, "operation": 20, "error_type": 50}


class LabelLimiter:
    def __init__(self, caps: dict[str, int] | None = None, on_fold: Callable[[str], None] | None = None) -> None:
        self._caps = dict(DEFAULT_CAPS if caps is None else caps)
        self._seen: dict[str, set[str]] = {name: set() for name in self._caps}
        self._lock = threading.Lock()
        self._on_fold = on_fold

    def __call__(self, label: str, value: str | None) -> str:
        value = value or ""
        seen = self._seen.get(label)
        if seen is None or value in seen:
            return value
        with self._lock:
            if value in seen:
                return value
            if len(seen) < self._caps[label]:
                seen.add(value)
                return value
        if self._on_fold is not None:
            self._on_fold(label)
        return OTHER
