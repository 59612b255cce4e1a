"""Decides which spans of an OTLP request to charge, accounts them, and writes the result onto them.

The same path as in-process, with what the wire adds:

* one decoder (:func:`~costspan.processors.codec.decode`) and one accounting
  service (:meth:`~costspan.runtime.Runtime.account`: pricer, budgets, Prometheus, OTLP metrics,
  ledger), so a span priced here and one priced in-process cannot differ;
* spans whose ids are malformed are rejected (removed and reported as partial success), never
  the request: a good span is never lost for a bad neighbour. That check (:meth:`Accountant.admit`)
  is all that runs before the answer; :meth:`Accountant.process` runs after it, on the intake's
  one worker thread (:mod:`.intake`), so nothing here is on a sender's latency;
* counted once: within a trace the innermost LLM span is charged (:mod:`.window`), and a span
  delivered twice is accounted by one caller only (:mod:`.claims`); a copy that is not accounted
  still carries its price, so every copy downstream reads alike;
* attribution from the span, then the ``gateway.attribution`` keys (span, then resource), and by
  default the resource's ``service.name`` as the project. User ids never become labels (the
  sinks never make them one).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from costspan import attribute_names as A
from costspan.accounted import Accounted
from costspan.facts import CallFacts
from costspan.gateway.claims import SpanClaims
from costspan.gateway.values import add_event, attributes, set_attributes
from costspan.gateway.window import TraceWindow, Verdict
from costspan.processors.codec import GENAI_MARKERS, decode
from costspan.processors.cost_attributes import cost_attributes, threshold_events
from costspan.runtime import Runtime

logger = logging.getLogger("costspan")
COUNTED_ELSEWHERE = "counted_in"
DUPLICATE = "duplicate"
NO_MODEL = "no_model"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Admission:
    """What the sender is answered: the spans kept, and those rejected (partial success) with why."""

    spans: int
    rejected: int
    message: str


@dataclass(slots=True)
class _Candidate:
    span: Span
    span_id: bytes
    """The span's ids, read once: every read of a protobuf field builds a new object."""
    trace_hex: str
    span_hex: str
    attrs: dict[str, Any]
    facts: CallFacts | None
    resource: Mapping[str, Any]
    key: str = ""


class Accountant:
    def __init__(
        self,
        runtime: Runtime,
        claims: SpanClaims | None,
        window: TraceWindow,
        attribution: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.claims = claims
        self.window = window
        self.attribution = attribution or {}
        self._attributed_from = tuple(
            (name, (keys := self.attribution.get(name, ())), (own, *keys))
            for name, own in (("project", A.PROJECT), ("feature", A.FEATURE), ("user", A.USER_ID))
        )
        """Per attribution: the span's keys to read it from, then the resource's."""
        self._logged: set[str] = set()

    @staticmethod
    def admit(request: ExportTraceServiceRequest) -> Admission:
        """Remove (and count) the spans whose ids are malformed: the one check the answer depends on,
        cheap enough for the request thread, so the rest of the accounting can come after the answer."""
        kept = rejected = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans = scope_spans.spans
                bad = [index for index, span in enumerate(spans) if not _valid_ids(span)]
                for index in reversed(bad):
                    del spans[index]
                rejected += len(bad)
                kept += len(spans)
        message = (
            f"{rejected} spans rejected: trace id must be 16 bytes and span id 8, not all zero" if rejected else ""
        )
        return Admission(kept, rejected, message)

    def process(self, request: ExportTraceServiceRequest) -> Counter[str]:
        """Account the LLM spans of an admitted request and enrich them in place; returns them counted
        by what became of them: a cost status, ``counted_in``, ``duplicate``, ``no_model``, ``error``."""
        genai: Counter[str] = Counter()
        links: dict[bytes, list[tuple[bytes, bytes]]] = {}
        candidates: dict[bytes, list[_Candidate]] = {}
        for resource_spans in request.resource_spans:
            resource: dict[str, Any] | None = None
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    trace_id, span_id = span.trace_id, span.span_id
                    links.setdefault(trace_id, []).append((span_id, span.parent_span_id))
                    if not _is_llm(span):
                        continue
                    if resource is None:
                        resource = attributes(resource_spans.resource.attributes)
                    candidates.setdefault(trace_id, []).append(self._candidate(span, trace_id, span_id, resource))
        verdicts = self._decide(links, candidates)
        self._account(candidates, verdicts, genai)
        return genai

    # -- deciding ---------------------------------------------------------------------------
    def _candidate(self, span: Span, trace_id: bytes, span_id: bytes, resource: Mapping[str, Any]) -> _Candidate:
        attrs = attributes(span.attributes)
        try:
            facts = decode(attrs)
        except Exception:  # a hostile value the decoder did not expect: pass the span through unpriced
            self._log_once("decode")
            facts = None
        return _Candidate(span, span_id, trace_id.hex(), span_id.hex(), attrs, facts, resource)

    def _decide(
        self, links: dict[bytes, list[tuple[bytes, bytes]]], candidates: dict[bytes, list[_Candidate]]
    ) -> dict[bytes, tuple[Verdict, bool]]:
        window = self.window
        verdicts: dict[bytes, tuple[Verdict, bool]] = {}
        with window.lock:
            for trace_id, spans in links.items():
                entry = window.trace(trace_id)
                for span_id, parent_id in spans:
                    window.observe(entry, span_id, parent_id)
                found = candidates.get(trace_id)
                if not found:
                    continue
                priced = [(c.span_id, c.span_hex) for c in found if c.facts is not None]
                verdicts.update(window.decide(entry, priced))
                for c in found:
                    if c.facts is None and (cover := window.covered(entry, c.span_id)) is not None:
                        verdicts[c.span_id] = (cover, False)
            window.evict()
        return verdicts

    # -- accounting -------------------------------------------------------------------------
    def _account(
        self,
        candidates: dict[bytes, list[_Candidate]],
        verdicts: dict[bytes, tuple[Verdict, bool]],
        genai: Counter[str],
    ) -> None:
        to_claim: list[_Candidate] = []
        for found in candidates.values():
            for c in found:
                verdict, new = verdicts.get(c.span_id, (None, False))
                if verdict is not None and verdict.charged and new:
                    c.key = f"{c.trace_hex}:{c.span_hex}"
                    to_claim.append(c)
        won = self.claims.win([c.key for c in to_claim]) if self.claims is not None else set(range(len(to_claim)))
        mine = {id(to_claim[i]) for i in won}
        for found in candidates.values():
            for c in found:
                verdict, _ = verdicts.get(c.span_id, (None, False))
                try:
                    genai[self._enrich(c, verdict, id(c) in mine)] += 1
                except Exception:
                    self._log_once("account")
                    genai[ERROR] += 1

    def _enrich(self, c: _Candidate, verdict: Verdict | None, accounts: bool) -> str:
        if verdict is not None and not verdict.charged:
            set_attributes(c.span, {A.COUNTED_IN: verdict.by}, c.attrs)
            return COUNTED_ELSEWHERE
        if c.facts is None or verdict is None:
            return NO_MODEL
        facts = self._complete(c)
        if accounts:
            accounted = self.runtime.accounting.account(facts)
            set_attributes(c.span, cost_attributes(accounted, c.attrs), c.attrs)
            at = c.span.end_time_unix_nano or time.time_ns()
            for name, values in threshold_events(accounted):
                add_event(c.span, name, at, values)
            return accounted.quote.status
        copy = Accounted(facts, self.runtime.accounting.checked_price(facts))
        set_attributes(c.span, cost_attributes(copy, c.attrs), c.attrs)
        return DUPLICATE

    def _complete(self, c: _Candidate) -> CallFacts:
        """The facts the span's own attributes do not hold: ids, times, attribution, service."""
        facts = c.facts
        assert facts is not None
        span = c.span
        facts.trace_id, facts.span_id = c.trace_hex, c.span_hex
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        facts.started_at = _utc(start)
        facts.duration_s = (end - start) / 1e9 if start and end >= start else None
        service = c.resource.get("service.name")
        facts.service = str(service) if isinstance(service, str) and service else None
        for name, span_keys, resource_keys in self._attributed_from:
            if getattr(facts, name) is None:
                setattr(facts, name, _attributed(c.attrs, span_keys) or _attributed(c.resource, resource_keys))
        if facts.project is None:
            facts.project = facts.service or self.runtime.service_name
        return facts

    def _log_once(self, where: str) -> None:
        if where not in self._logged:
            self._logged.add(where)
            logger.exception("costspan gateway: a span could not be %s; it is passed on as it came", where)


def _attributed(source: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = source.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def llm_spans(request: ExportTraceServiceRequest) -> int:
    """How many spans of the request the accountant would look at as LLM calls."""
    return sum(
        _is_llm(span)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    )


def _is_llm(span: Span) -> bool:
    """Carries an attribute only an LLM call's span has (any convention the decoder reads)."""
    return any(pair.key in GENAI_MARKERS for pair in span.attributes)


def _valid_ids(span: Span) -> bool:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    return (
        len(trace_id) == 16
        and len(span_id) == 8
        and len(parent) in (0, 8)
        and trace_id != b"\0" * 16
        and span_id != b"\0" * 8
    )


_EPOCH_LIMIT_NS = 4_102_444_800 * 10**9
"""2100-01-01: a start time past it is no real call's."""


def _utc(ns: int) -> datetime:
    if not 0 < ns < _EPOCH_LIMIT_NS:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
