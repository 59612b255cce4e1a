"""CostSpanProcessor: prices the GenAI spans costspan did not account itself, and keeps "counted once".

costspan's own calls account themselves before their span ends (``LLMCall``, ``track``). This
processor handles every other GenAI span: other instrumentations', SDKs that trace themselves,
frameworks'. The SDK freezes a span's attributes inside ``end()`` before any processor callback
runs, yet the exported span must carry its cost; so ``on_start`` replaces the ``end`` of a span
that is, or may become, an LLM call's with a hook that prices it, charges its budgets and writes
the result onto the still-open span, then calls the original ``end``.

Every other span must cost next to nothing. Spans are told apart by their instrumentation scope,
looked up in one dictionary: costspan's own scopes (accounted by the call itself), scopes whose
name says they trace LLM calls (hooked), and the rest; a plain span outside any LLM span costs
that lookup and nothing else. A scope of the rest is watched for its first
spans; if one turns out to be an LLM call only at its end, the scope is hooked from then on, and
that span is accounted when it ends (without cost attributes, which it is too late to write).

Counted once: when LLM spans nest (two instrumentations on one call, or a framework span such as
LangChain's over a client span), the innermost span that ends with a model is charged and every
LLM span above it gets ``costspan.cost.counted_in`` instead of a second charge. Two peers' spans of
one call that do not nest (one instrumentation does not make its span current) share the response
id the provider sent: the second one to end is counted in the first.

A foreign span that ends on an event loop while the budget store may wait on a lock or the network
is priced at once (its cost attributes are written) and charged on a worker thread: the loop never
waits on the store, and such a span carries no budget state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id

from costspan import attribute_names as A
from costspan import attribution
from costspan.accounted import Accounted
from costspan.accounting import Accounting
from costspan.facts import CallFacts
from costspan.logs import log_once
from costspan.processors.codec import decode, is_genai
from costspan.processors.cost_attributes import cost_attributes, threshold_events
from costspan.processors.scopes import OWN_SCOPES, is_llm_scope

_MAX_DEPTH = 32
OWN, HOOKED, WATCHED, PLAIN = range(4)
WATCH_SPANS = 256
"""Spans of an unknown scope checked at their end before the scope is taken as plain."""
_RESPONSES_KEPT = 4096


class CostSpanProcessor(SpanProcessor):
    def __init__(self, accounting: Callable[[], Accounting | None]) -> None:
        self._accounting = accounting
        self._scopes: dict[str, int] = {}
        self._watching: dict[str, int] = {}
        """Spans still to check per watched scope."""
        self._open: dict[int, int] = {}
        """Open spans that may matter for "counted once", with their parent (0: a root): LLM spans
        (costspan's, hooked, watched) and every span started while one of those is open, so that a
        nested LLM span finds its LLM ancestors through the plain spans between them."""
        self._covered: dict[int, str] = {}
        """Open spans a descendant was charged for, with that descendant's id."""
        self._hooked: set[int] = set()
        self._responses: OrderedDict[tuple[int, str], tuple[str, int]] = OrderedDict()
        """(trace, response id) -> the span charged for that answer, and when it ended."""

    # -- SpanProcessor -------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            name = _scope_name(span)
            kind = self._scopes.get(name)
            if kind is None:
                kind = self._classify(name)
            if kind == PLAIN:
                if self._open:  # inside an LLM span: the link may lead from a nested one to it
                    self._link(span)
                return
            self._link(span)
            if kind == OWN:
                return  # costspan's own calls account themselves
            attrs = _attributes(span)
            genai = is_genai(attrs)
            if kind == WATCHED and not genai:
                return
            if genai:
                self._attribute(span, parent_context)
            self._hook(span)
        except Exception:
            log_once("the span processor (on_start)")

    def on_end(self, span: ReadableSpan) -> None:
        if self._open:
            span_id = span.context.span_id
            self._open.pop(span_id, None)
            covered = self._covered.pop(span_id, None) if self._covered else None
            if span_id in self._hooked:
                self._hooked.discard(span_id)
                # Drop the hook: its closure refers to the span, a cycle that would leave the span to
                # the cycle collector instead of reference counting.
                with contextlib.suppress(AttributeError, TypeError):
                    vars(span).pop("end", None)
                return
        else:
            covered = None
        if self._watching:
            self._watch(span, covered)

    def shutdown(self) -> None:
        self._open.clear()
        self._covered.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- for costspan's own calls -----------------------------------------------------------
    def covering(self, span_id: int) -> str | None:
        """The id of the span inside this one that was charged for the call, if any."""
        return self._covered.get(span_id) if self._covered else None

    def cover_ancestors(self, span_id: int, charged: str) -> None:
        """Every open ancestor of a charged span is covered by it: not only those known as LLM
        spans, since a framework or peer span may name its model only when it ends."""
        links, covered = self._open, self._covered
        current = links.get(span_id, 0)
        depth = 0
        while current and depth < _MAX_DEPTH:
            if current not in links:
                return
            covered.setdefault(current, charged)
            current = links[current]
            depth += 1

    # -- the hook -----------------------------------------------------------------------
    def _classify(self, name: str) -> int:
        if name in OWN_SCOPES:
            kind = OWN
        elif is_llm_scope(name):
            kind = HOOKED
        else:
            kind = WATCHED
            self._watching[name] = WATCH_SPANS
        self._scopes[name] = kind
        return kind

    def _link(self, span: ReadableSpan) -> None:
        parent = span.parent
        self._open[span.context.span_id] = parent.span_id if parent is not None else 0

    def _hook(self, span: Span) -> None:
        original_end = span.end

        def end(end_time: int | None = None) -> None:
            self._before_end(span)
            original_end(end_time)

        self._hooked.add(span.context.span_id)
        span.end = end  # type: ignore[method-assign]  # the one way to write attributes before they freeze

    def _before_end(self, span: Span) -> None:
        try:
            if span.end_time is not None:
                return  # a second end(): the SDK warns, we charge nothing twice
            attrs = _attributes(span)
            if not is_genai(attrs):
                return
            if A.PROJECT not in attrs:
                self._attribute(span, None)
                attrs = _attributes(span)
            span_id = span.context.span_id
            counted_in = self._covered.get(span_id) or self._same_response(span, attrs)
            if counted_in is not None:
                span.set_attribute(A.COUNTED_IN, counted_in)
                return
            facts = self._facts(span, attrs)
            accounting = self._accounting()
            if facts is None or accounting is None:
                return
            accounted = _account(accounting, facts)
            span.set_attributes(cost_attributes(accounted, attrs))
            for name, attributes in threshold_events(accounted):
                span.add_event(name, attributes)
            self.cover_ancestors(span_id, format_span_id(span_id))
        except Exception:
            log_once("the span processor (end)")

    def _watch(self, span: ReadableSpan, covered: str | None) -> None:
        """A span of a watched scope ended: if it was an LLM call after all, hook the scope and account
        this one now (its attributes are frozen, so it is charged and recorded without them)."""
        try:
            name = _scope_name(span)
            left = self._watching.get(name)
            if left is None:
                return
            attrs = span.attributes or {}
            if is_genai(attrs):
                self._scopes[name] = HOOKED
                del self._watching[name]
                facts = None if covered else self._facts(span, attrs)
                accounting = self._accounting()
                if facts is not None and accounting is not None:
                    _account(accounting, facts)
                    self.cover_ancestors(span.context.span_id, format_span_id(span.context.span_id))
            elif left <= 1:
                self._scopes[name] = PLAIN
                del self._watching[name]
            else:
                self._watching[name] = left - 1
        except Exception:
            log_once("the span processor (watch)")

    def _same_response(self, span: ReadableSpan, attrs: Mapping[str, Any]) -> str | None:
        """The span already charged for the same answer, if any: same trace, same response id, and
        the two spans overlap in time (two instrumentations of one call), so two calls in a row to a
        server that repeats its ids are still two calls."""
        response_id = attrs.get(A.RESPONSE_ID)
        if not isinstance(response_id, str) or not response_id:
            return None
        key = (span.context.trace_id, response_id)
        first = self._responses.get(key)
        if first is not None and (span.start_time or 0) <= first[1]:
            return first[0]
        self._responses[key] = (format_span_id(span.context.span_id), time.time_ns())
        if len(self._responses) > _RESPONSES_KEPT:
            self._responses.popitem(last=False)
        return None

    @staticmethod
    def _facts(span: ReadableSpan, attrs: Mapping[str, Any]) -> CallFacts | None:
        facts = decode(attrs)
        if facts is None:
            return None
        ctx = span.context
        facts.trace_id, facts.span_id = format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)
        start = span.start_time or time.time_ns()
        facts.started_at = datetime.fromtimestamp(start / 1e9, tz=timezone.utc)
        facts.duration_s = ((span.end_time or time.time_ns()) - start) / 1e9
        return facts

    @staticmethod
    def _attribute(span: Span, parent_context: otel_context.Context | None) -> None:
        attrs = _attributes(span)
        who = attribution.current(parent_context)
        if who.project and A.PROJECT not in attrs:
            span.set_attribute(A.PROJECT, who.project)
        if who.feature and A.FEATURE not in attrs:
            span.set_attribute(A.FEATURE, who.feature)
        if who.user and A.USER_ID not in attrs:
            span.set_attribute(A.USER_ID, who.user)


def _scope_name(span: ReadableSpan) -> str:
    """The span's instrumentation scope name, from the SDK's own fields where it has them: the public
    properties cost more than all the rest a plain span pays here."""
    try:
        return str(span._instrumentation_scope._name)  # type: ignore[union-attr]  # the SDK's fields
    except AttributeError:
        scope = span.instrumentation_scope
        return scope.name if scope is not None else ""


def _account(accounting: Accounting, facts: CallFacts) -> Accounted:
    """Charged here, or on the accounting's worker thread when this thread runs an event loop and
    the charge may wait on the store."""
    if accounting.charges_wait() and _on_event_loop():
        return accounting.account_later(facts)
    return accounting.account(facts)


def _on_event_loop() -> bool:
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop()
        return True
    return False


def _attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict when the SDK keeps one (read-only here).

    ``span.attributes`` is a mapping proxy over ``BoundedAttributes``, whose ``get`` and ``in``
    go through ``collections.abc`` and raise and catch ``KeyError`` for every absent name: that
    cost a few microseconds on every span of the process, LLM or not.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return span.attributes or {}
