"""The one path both receivers take: room in the queue, account, queue for the next hop, answer.

Back-pressure comes first: a request that would not fit in the forwarding queue is refused as
retryable *before* anything is accounted, so the sender's retry is its first delivery. Accounting
happens exactly here, once per accepted request; forwarding retries never come back through it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from costspan.gateway.accountant import Accountant
from costspan.gateway.forwarder import Forwarder
from costspan.gateway.selfmetrics import GatewayMetrics

ACCEPTED = "accepted"
THROTTLED = "throttled"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    response: ExportTraceServiceResponse | None = None


class Intake:
    def __init__(self, accountant: Accountant, forwarder: Forwarder | None, metrics: GatewayMetrics) -> None:
        self.accountant = accountant
        self.forwarder = forwarder
        self.metrics = metrics
        self.accepting = True
        self._in_flight = 0
        self._idle = threading.Condition()

    def handle(self, request: ExportTraceServiceRequest, transport: str) -> Answer:
        with self._idle:
            if not self.accepting:
                self.metrics.requests.labels(transport, UNAVAILABLE).inc()
                return Answer(UNAVAILABLE)
            self._in_flight += 1
        try:
            return self._handle(request, transport)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle(self, request: ExportTraceServiceRequest, transport: str) -> Answer:
        spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        if self.forwarder is not None and not self.forwarder.has_room(spans):
            self.metrics.requests.labels(transport, THROTTLED).inc()
            return Answer(THROTTLED)
        outcome = self.accountant.process(request)
        self.metrics.received.labels(transport).inc(outcome.spans + outcome.rejected)
        if outcome.rejected:
            self.metrics.dropped.labels("invalid").inc(outcome.rejected)
        for status, count in outcome.genai.items():
            self.metrics.genai.labels(status).inc(count)
        if self.forwarder is not None and outcome.spans:
            # Accounted already, so it is queued even if a concurrent request took the last room:
            # the queue may pass its bound by the requests in flight, never lose an accounted span.
            self.forwarder.offer(request, outcome.spans, force=True)
        self.metrics.requests.labels(transport, ACCEPTED).inc()
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=outcome.rejected, error_message=outcome.message)
            )
        return Answer(ACCEPTED, response)

    def close(self, timeout: float) -> bool:
        """Refuse new requests and wait for those being handled; False if some were still running."""
        with self._idle:
            self.accepting = False
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)
