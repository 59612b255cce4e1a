"""CostSpanProcessor: the one place where cost and budget state are derived (DESIGN.md, rule 2).

Why it hooks ``Span.end`` from ``on_start``: the SDK freezes a span's attributes inside ``end()``
before any processor callback runs (``on_end`` gets a read-only copy and ``_on_ending`` already
sees immutable attributes), yet the exported span must carry its cost. So ``on_start`` replaces
the span's ``end`` with a hook that prices the call, charges its budgets and writes the result
onto the still-open span, then calls the original ``end``. The hook never lets an exception of
ours escape, and the original ``end`` always runs.

Counted once: when LLM spans nest (two instrumentations on one call, or a framework span such as
LangChain's over a client span), the innermost span that ends with a model is charged and every
LLM span above it gets ``costspan.cost.counted_in`` instead of a second charge.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id

from costspan import attributes as A
from costspan import attribution
from costspan.accounting import Accounted
from costspan.processors.cost_attributes import cost_attributes, threshold_events
from costspan.processors.span_facts import facts_from_attributes, is_genai
from costspan.usage import CallFacts

logger = logging.getLogger("costspan")
_MAX_DEPTH = 32


class _Inflight:
    """Per-span bookkeeping between start and end."""

    __slots__ = ("covered_by", "genai", "parent_id")

    def __init__(self, parent_id: int | None, genai: bool) -> None:
        self.parent_id = parent_id
        self.genai = genai
        self.covered_by: str | None = None


class CostSpanProcessor(SpanProcessor):
    def __init__(
        self,
        account: Callable[[CallFacts, object | None], Accounted | None],
        *,
        take_reservation: Callable[[int], object | None] = lambda span_id: None,
    ) -> None:
        self._account = account
        self._take_reservation = take_reservation
        self._inflight: dict[int, _Inflight] = {}
        self._logged: set[str] = set()

    # -- SpanProcessor -------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            genai = is_genai(_attributes(span))
            if genai:
                self._attribute(span, parent_context)
            parent = span.parent
            self._inflight[span.context.span_id] = _Inflight(parent.span_id if parent else None, genai)
            original_end = span.end

            def end(end_time: int | None = None) -> None:
                self._before_end(span)
                original_end(end_time)

            span.end = end  # type: ignore[method-assign]
        except Exception:
            self._log_once("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        self._inflight.pop(span.context.span_id, None)
        # Drop the hook: its closure refers to the span, a cycle that would leave every span of the
        # process to the cycle collector instead of reference counting.
        with contextlib.suppress(AttributeError, TypeError):
            vars(span).pop("end", None)

    def shutdown(self) -> None:
        self._inflight.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- the hook -----------------------------------------------------------------------
    def _before_end(self, span: Span) -> None:
        try:
            if span.end_time is not None:
                return  # a second end(): the SDK warns, we charge nothing twice
            state = self._inflight.get(span.context.span_id)
            attrs = _attributes(span)
            if not is_genai(attrs):
                return
            if state is not None and not state.genai:
                state.genai = True
                self._attribute(span, None)
                attrs = _attributes(span)
            if state is not None and state.covered_by is not None:
                span.set_attribute(A.COUNTED_IN, state.covered_by)
                return
            facts = facts_from_attributes(attrs or {})
            if facts is None:
                return
            ctx = span.context
            facts.trace_id = format_trace_id(ctx.trace_id)
            facts.span_id = format_span_id(ctx.span_id)
            start = span.start_time or time.time_ns()
            facts.started_at = _utc(start)
            facts.duration_s = (time.time_ns() - start) / 1e9
            accounted = self._account(facts, self._take_reservation(ctx.span_id))
            if accounted is None:
                return
            self._write(span, accounted)
            self._cover_ancestors(state, facts.span_id)
        except Exception:
            self._log_once("end")

    def _attribute(self, span: Span, parent_context: otel_context.Context | None) -> None:
        attrs = _attributes(span)
        who = attribution.current(parent_context)
        if who.project and A.PROJECT not in attrs:
            span.set_attribute(A.PROJECT, who.project)
        if who.feature and A.FEATURE not in attrs:
            span.set_attribute(A.FEATURE, who.feature)
        if who.user and A.USER_ID not in attrs:
            span.set_attribute(A.USER_ID, who.user)

    def _write(self, span: Span, accounted: Accounted) -> None:
        span.set_attributes(cost_attributes(accounted, _attributes(span)))
        for name, attributes in threshold_events(accounted):
            span.add_event(name, attributes)

    def _cover_ancestors(self, state: _Inflight | None, span_id: str) -> None:
        """Every open ancestor, not only those already known as LLM spans: a framework or peer span may
        name its model only when it ends (``_before_end`` consults this for LLM spans alone)."""
        depth = 0
        while state is not None and state.parent_id is not None and depth < _MAX_DEPTH:
            state = self._inflight.get(state.parent_id)
            if state is not None and state.covered_by is None:
                state.covered_by = span_id
            depth += 1

    def _log_once(self, where: str) -> None:
        if where not in self._logged:
            self._logged.add(where)
            logger.exception("costspan: internal error in the span processor (%s); the call is unaffected", where)


def _attributes(span: Span) -> Mapping[str, Any]:
    """The span's attributes as a plain dict when the SDK keeps one (read-only here).

    ``span.attributes`` is a mapping proxy over ``BoundedAttributes``, whose ``get`` and ``in``
    go through ``collections.abc`` and raise and catch ``KeyError`` for every absent name: that
    cost a few microseconds on every span of the process, LLM or not.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return span.attributes or {}


def _utc(ns: int) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
