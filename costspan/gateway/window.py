"""Recent spans per trace, so the spans of one trace that arrive in different requests are counted once.

The in-process processor sees a trace's spans start and end in order; the gateway sees them in
batches, in any order, possibly split across requests. So it remembers, for the most recent
:attr:`capacity` spans (across traces, the oldest trace forgotten first), each span's parent and,
for LLM spans, whether it was charged or covered by another. That is enough to decide, for a new
LLM span, whether an LLM relative already carries the charge:

* a descendant already charged or covered (the usual order: children end, and are exported, first)
  covers it: it gets ``costspan.cost.counted_in``, as in-process;
* an ancestor already *charged* (it arrived first, with the usage of everything under it) covers
  it the same way. An ancestor that was itself covered does not: a second ``doGenerate`` under one
  ``ai.generateText`` is a second call.

The window is per process: with several replicas, route by trace id (the Collector's
``loadbalancing`` exporter) so a trace's spans meet in one replica. Duplicate deliveries of one
span are caught across replicas by :mod:`costspan.gateway.claims` instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_DEPTH = 64
MAX_SPANS_PER_TRACE = 4096


@dataclass(slots=True)
class Verdict:
    """What was decided for one LLM span: charged (``by`` is itself) or covered by ``by``."""

    charged: bool
    by: str


@dataclass(slots=True)
class _Trace:
    parents: dict[bytes, bytes] = field(default_factory=dict)
    verdicts: dict[bytes, Verdict] = field(default_factory=dict)


class TraceWindow:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._traces: OrderedDict[bytes, _Trace] = OrderedDict()
        self._size = 0
        self.lock = threading.Lock()
        """Held by the accountant around one trace's whole decision (see :meth:`decide`)."""

    def __len__(self) -> int:
        return self._size

    def trace(self, trace_id: bytes) -> _Trace:
        """The trace's entry, made most recent (call under :attr:`lock`)."""
        entry = self._traces.get(trace_id)
        if entry is None:
            entry = self._traces[trace_id] = _Trace()
        else:
            self._traces.move_to_end(trace_id)
        return entry

    def observe(self, entry: _Trace, span_id: bytes, parent_id: bytes) -> None:
        """Remember a span's parent (call under :attr:`lock`)."""
        if span_id not in entry.parents and len(entry.parents) < MAX_SPANS_PER_TRACE:
            entry.parents[span_id] = parent_id
            self._size += 1

    def evict(self) -> None:
        """Forget the oldest traces until the window holds at most its capacity (under :attr:`lock`)."""
        while self._size > self.capacity and len(self._traces) > 1:
            _, oldest = self._traces.popitem(last=False)
            self._size -= len(oldest.parents)
        if self._size > self.capacity:  # one huge trace, or a capacity of 0
            self._traces.clear()
            self._size = 0

    def decide(self, entry: _Trace, candidates: list[tuple[bytes, str]]) -> dict[bytes, tuple[Verdict, bool]]:
        """Verdicts for LLM spans ``(span id, hex id)`` of one trace, innermost first (under
        :attr:`lock`, after every span of the request was observed), each with whether it is new;
        a span decided before keeps its verdict (a duplicate delivery: not new)."""
        chains = {span: _ancestors(entry.parents, span) for span, _ in candidates}
        ordered = sorted(candidates, key=lambda c: len(chains[c[0]]), reverse=True)
        decided: dict[bytes, tuple[Verdict, bool]] = {}
        for span, hex_id in ordered:
            known = entry.verdicts.get(span)
            if known is not None:
                decided[span] = (known, False)
                continue
            verdict = self.covered(entry, span) or self._outer_cover(entry, chains[span]) or Verdict(True, hex_id)
            entry.verdicts[span] = verdict
            decided[span] = (verdict, True)
        return decided

    @staticmethod
    def covered(entry: _Trace, span: bytes) -> Verdict | None:
        """The charge of an LLM span below ``span``, if one was decided already (also for an LLM span
        that names no model, such as a framework's, which gets ``counted_in`` like in-process)."""
        for other, verdict in entry.verdicts.items():
            if other != span and span in _ancestors(entry.parents, other):
                return Verdict(False, verdict.by)
        return None

    @staticmethod
    def _outer_cover(entry: _Trace, chain: list[bytes]) -> Verdict | None:
        for ancestor in chain:
            verdict = entry.verdicts.get(ancestor)
            if verdict is not None and verdict.charged:
                return Verdict(False, verdict.by)
        return None


def _ancestors(parents: dict[bytes, bytes], span: bytes) -> list[bytes]:
    chain: list[bytes] = []
    current = parents.get(span)
    while current and len(chain) < MAX_DEPTH:
        chain.append(current)
        current = parents.get(current)
    return chain
