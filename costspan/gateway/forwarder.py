"""The queue to the next hop: retries with backoff, drain at shutdown.

Requests come here once accounted (so a retry never accounts again). The queue is bounded by the
intake, in spans, together with the requests still waiting to be accounted and those in flight
here: when a request would not fit, the receiver tells its sender to retry later (HTTP 503, gRPC
UNAVAILABLE) before accepting it, so the data waits in the sender's own queue instead of being
dropped, and everything accounted is always taken here. Workers send with exponential backoff
and jitter, honouring the next hop's ``Retry-After`` / ``RetryInfo``, until it accepts, refuses for
good, or ``max_elapsed_time`` passes. Every span given up is counted by reason and logged, never
lost silently.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from costspan.gateway.config import Forward
from costspan.gateway.selfmetrics import GatewayMetrics
from costspan.gateway.senders import Sender

logger = logging.getLogger("costspan")
_LOG_EVERY_S = 10.0


class Forwarder:
    def __init__(self, sender: Sender, forward: Forward, metrics: GatewayMetrics) -> None:
        self._sender = sender
        self._forward = forward
        self._metrics = metrics
        self._items: deque[tuple[ExportTraceServiceRequest, int]] = deque()
        self._spans = 0
        """Spans queued or in flight."""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, name=f"costspan-gateway-forward-{i}", daemon=True)
            for i in range(forward.workers)
        ]
        self._logged_at = -_LOG_EVERY_S
        self._lost_in_flight = 0
        """Spans a worker was still retrying when the deadline came (counted ``shutdown`` by it)."""

    @property
    def pending(self) -> int:
        return self._spans

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def offer(self, request: ExportTraceServiceRequest, spans: int) -> None:
        """Queue an accounted request (the intake made room for it when it accepted it)."""
        with self._cond:
            self._items.append((request, spans))
            self._spans += spans
            self._metrics.queue.set(self._spans)
            self._cond.notify()

    def drain(self, deadline_s: float) -> int:
        """Let the workers empty the queue for up to ``deadline_s`` seconds (the intake has accounted
        and offered everything it accepted), then stop them; the spans left are counted
        (``shutdown``) and logged. Returns how many."""
        end = time.monotonic() + deadline_s
        with self._cond:
            while self._spans and time.monotonic() < end:
                self._cond.wait(min(0.1, max(end - time.monotonic(), 0.0)))
            self._stop.set()
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=self._forward.timeout + 1.0)
        with self._cond:
            left = sum(spans for _, spans in self._items)
            self._items.clear()
            self._spans = 0
            self._metrics.queue.set(0)
        if left:
            self._metrics.dropped.labels("shutdown").inc(left)
        lost = left + self._lost_in_flight
        if lost:
            logger.error("costspan gateway: %d spans could not reach the next hop before the shutdown deadline", lost)
        self._sender.close()
        return lost

    # -- workers ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                request, spans = self._items.popleft()
            try:
                self._deliver(request, spans)
            except Exception:
                logger.exception("costspan gateway: forwarding failed unexpectedly; %d spans dropped", spans)
                self._metrics.dropped.labels("rejected_by_next_hop").inc(spans)
            with self._cond:
                self._spans -= spans
                self._metrics.queue.set(self._spans)
                self._cond.notify_all()

    def _deliver(self, request: ExportTraceServiceRequest, spans: int) -> None:
        retry = self._forward.retry
        started = time.monotonic()
        backoff = retry.initial_interval
        while True:
            attempt = time.perf_counter()
            result = self._sender.send(request)
            outcome = "success" if result.ok else ("retryable" if result.retryable else "failure")
            self._metrics.export_duration.labels(outcome).observe(time.perf_counter() - attempt)
            if result.ok:
                self._metrics.forwarded.inc(spans - result.rejected)
                if result.rejected:
                    self._drop("rejected_by_next_hop", result.rejected, "partial success")
                return
            if not result.retryable:
                self._drop("rejected_by_next_hop", spans, result.error)
                return
            elapsed = time.monotonic() - started
            if retry.max_elapsed_time and elapsed >= retry.max_elapsed_time:
                self._drop("retries_exhausted", spans, result.error)
                return
            delay = result.retry_after if result.retry_after is not None else backoff * random.uniform(0.5, 1.5)
            if retry.max_elapsed_time:
                delay = min(delay, max(retry.max_elapsed_time - elapsed, 0.0))
            backoff = min(backoff * 2, retry.max_interval)
            self._log(f"next hop unavailable ({result.error}); retrying a batch of {spans} spans in {delay:.1f} s")
            if self._stop.wait(delay):
                self._metrics.dropped.labels("shutdown").inc(spans)
                with self._cond:
                    self._lost_in_flight += spans
                return

    def _drop(self, reason: str, spans: int, error: str) -> None:
        self._metrics.dropped.labels(reason).inc(spans)
        logger.error("costspan gateway: %d spans dropped (%s): %s", spans, reason, error)

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            logger.warning("costspan gateway: %s", message)
