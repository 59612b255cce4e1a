"""The one path both receivers take: admit, room in the queues, queue for accounting, answer.

A request is answered as soon as it is safely queued, as the OpenTelemetry Collector acknowledges
data once it is in its queue: the request thread only admits it (spans with malformed ids are
removed and reported as partial success, the one check the answer depends on), checks for room
and queues it. One worker thread then accounts the queued requests in arrival order (trace window,
claims, pricing, budgets, ledger, metrics, the ``costspan.*`` attributes) and hands them to the
forwarder. One worker, because accounting is Python under the GIL: more threads would only take
turns, and a single one keeps the trace window's view of a trace in the order it arrived.

So a 200 means "held in this process's memory", not "accounted": a crash (SIGKILL, out of memory)
between the answer and the accounting loses those spans, neither accounted nor forwarded, exactly
as the Collector's in-memory sending queue loses what it holds. SIGTERM loses nothing: the intake
stops accepting, then :meth:`Intake.close` accounts everything accepted before the forwarder drains.

One bound, ``limits.queue_spans``, covers the spans waiting to be accounted and those waiting for
(or in flight to) the next hop, so back-pressure (HTTP 503, gRPC UNAVAILABLE) refuses a request
*before* it is accepted: the sender's retry is its first delivery. Accounting happens exactly here,
once per accepted request; forwarding retries never come back through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from costspan.gateway.accountant import ERROR, Accountant, llm_spans
from costspan.gateway.forwarder import Forwarder
from costspan.gateway.selfmetrics import GatewayMetrics

logger = logging.getLogger("costspan")
ACCEPTED = "accepted"
THROTTLED = "throttled"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    response: ExportTraceServiceResponse | None = None


@dataclass(frozen=True, slots=True)
class _Accepted:
    request: ExportTraceServiceRequest
    spans: int
    at: float
    """``time.perf_counter()`` when it was answered, for the accounting delay."""


class Intake:
    def __init__(
        self, accountant: Accountant, forwarder: Forwarder | None, capacity: int, metrics: GatewayMetrics
    ) -> None:
        self.accountant = accountant
        self.forwarder = forwarder
        self.capacity = capacity
        self.metrics = metrics
        self.accepting = True
        self._in_flight = 0
        """Requests being handled by a receiver thread."""
        self._waiting: deque[_Accepted] = deque()
        self._unaccounted = 0
        """Spans accepted and not yet accounted (queued, or with the worker)."""
        self._stopping = False
        self._cond = threading.Condition()
        self._worker = threading.Thread(target=self._work, name="costspan-gateway-account", daemon=True)

    @property
    def pending(self) -> int:
        """Spans held under the bound: waiting to be accounted, or to be forwarded."""
        return self._unaccounted + (self.forwarder.pending if self.forwarder is not None else 0)

    def has_room(self, spans: int) -> bool:
        """Whether a request of ``spans`` would be taken now (when nothing is held, any one request is)."""
        held = self.pending
        return held == 0 or held + spans <= self.capacity

    def start(self) -> None:
        self._worker.start()

    def handle(self, request: ExportTraceServiceRequest, transport: str) -> Answer:
        with self._cond:
            if not self.accepting:
                self.metrics.requests.labels(transport, UNAVAILABLE).inc()
                return Answer(UNAVAILABLE)
            self._in_flight += 1
        try:
            return self._handle(request, transport)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _handle(self, request: ExportTraceServiceRequest, transport: str) -> Answer:
        admission = self.accountant.admit(request)
        with self._cond:
            if self._stopping:  # handled past the shutdown grace: the worker is gone, the sender retries elsewhere
                self.metrics.requests.labels(transport, UNAVAILABLE).inc()
                return Answer(UNAVAILABLE)
            if not self.has_room(admission.spans):
                self.metrics.requests.labels(transport, THROTTLED).inc()
                return Answer(THROTTLED)
            if admission.spans:
                self._waiting.append(_Accepted(request, admission.spans, time.perf_counter()))
                self._unaccounted += admission.spans
                self.metrics.accounting_queue.set(self._unaccounted)
                self._cond.notify_all()
        self.metrics.received.labels(transport).inc(admission.spans + admission.rejected)
        if admission.rejected:
            self.metrics.dropped.labels("invalid").inc(admission.rejected)
        self.metrics.requests.labels(transport, ACCEPTED).inc()
        response = ExportTraceServiceResponse()
        if admission.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=admission.rejected, error_message=admission.message)
            )
        return Answer(ACCEPTED, response)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every request accepted so far is accounted and handed to the forwarder (what a
        test checks after an answer, and what :meth:`close` waits for); False at the timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unaccounted == 0, timeout)

    def close(self, grace: float) -> bool:
        """Refuse new requests, wait up to ``grace`` seconds for those being handled, then account
        everything accepted and stop the worker. False if some requests were still being handled
        (they are refused: nothing is accepted that would not be accounted)."""
        with self._cond:
            self.accepting = False
            handled = self._cond.wait_for(lambda: self._in_flight == 0, grace)
            self._stopping = True
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join()
        return handled

    # -- the worker -------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if not self._waiting:
                    return
                accepted = self._waiting.popleft()
            self._account(accepted)
            with self._cond:
                self._unaccounted -= accepted.spans
                self.metrics.accounting_queue.set(self._unaccounted)
                self._cond.notify_all()

    def _account(self, accepted: _Accepted) -> None:
        try:
            for status, count in self.accountant.process(accepted.request).items():
                self.metrics.genai.labels(status).inc(count)
        except Exception:  # a bug, not the data: the spans still go on, as they came, and the fault is counted
            logger.exception("costspan gateway: a request could not be accounted; its %d spans go on", accepted.spans)
            self.metrics.genai.labels(ERROR).inc(llm_spans(accepted.request))
        self.metrics.accounting_delay.observe(time.perf_counter() - accepted.at)
        if self.forwarder is not None:
            # Offered before it leaves the accounting count: the two queues together never look
            # emptier than they are, so the bound holds across the hand-over.
            self.forwarder.offer(accepted.request, accepted.spans)
