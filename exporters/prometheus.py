"""costspan's figures as Prometheus series, in prometheus-client's plain style.

Names and labels are the contract in README.md ("Metrics") and docs/architecture.md; dashboards and alert rules query
them. User ids never become labels; every other label goes through a :class:`LabelLimiter`.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from costspan.accounted import Accounted, CallLabels
from costspan.exporters.labels import LabelLimiter
from costspan.exporters.metric_constants import (
    DURATION_BUCKETS,
    ERROR_RATIO_BUCKETS,
    TOKEN_TYPES,
    TTFC_BUCKETS,
    token_counts,
)
from costspan.facts import USAGE_INVALID
from costspan.identity_memo import IdentityMemo
from costspan.money import nanos_to_float
from costspan.pricing import UNPRICED

logger = logging.getLogger("costspan")



class PrometheusMetrics:
    """Registers the series once per registry and records accounted calls into them."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, limiter: LabelLimiter | None = None) -> None:
        self.folded = Counter(
            "costspan_folded_label_values",
            "Label values folded into 'other' because a label reached its cap of distinct values.",
            ["label"],
            registry=registry,
        )
        self._children: dict[tuple[object, ...], Any] = {}
        self._series: IdentityMemo[CallLabels, _Series] = IdentityMemo(limit=4096)
        """By a call's labels (one memoized object for the same names) and its outcome."""
        self.limit = limiter or LabelLimiter()
        self.limit.add_fold_listener(self._count_fold)
        self.cost = Counter(
            "costspan_cost_usd",
            "Cost of LLM calls in US dollars.",
            ["provider", "model", "operation", "project", "feature"],
            registry=registry,
        )
        self.tokens = Counter(
            "costspan_tokens",
            "Tokens used by LLM calls; cache_read, cache_write and reasoning are subsets of input and output.",
            ["provider", "model", "type"],
            registry=registry,
        )
        self.requests = Counter(
            "costspan_requests",
            "LLM calls by outcome: success, error (error_type says which) or blocked by a budget or quota.",
            ["provider", "model", "operation", "outcome", "error_type"],
            registry=registry,
        )
        self.duration = Histogram(
            "costspan_request_duration_seconds",
            "Duration of LLM calls, streams until their last chunk.",
            ["provider", "model", "operation"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.ttfc = Histogram(
            "costspan_time_to_first_chunk_seconds",
            "Time from request to the first chunk of streamed LLM calls.",
            ["provider", "model", "operation"],
            buckets=TTFC_BUCKETS,
            registry=registry,
        )
        self.unpriced = Counter(
            "costspan_unpriced_requests",
            "LLM calls whose model has no known price: their cost is unknown, not zero.",
            ["provider", "model"],
            registry=registry,
        )
        self.invalid_usage = Counter(
            "costspan_invalid_usage",
            "LLM calls whose reported usage held counts no provider would send (negative, not an integer, "
            "absurd); those counts were not priced.",
            ["provider", "model"],
            registry=registry,
        )
        self.ledger_rows_dropped = Counter(
            "costspan_ledger_rows_dropped",
            "Ledger rows given up: a value SQLite cannot store, more rows waiting than the queue holds while "
            "the disk refuses writes, or rows still unwritten at exit.",
            registry=registry,
        )
        self.estimation_error = Histogram(
            "costspan_estimation_error_ratio",
            "Relative error of locally counted tokens against the usage the provider reported, on a sample.",
            ["provider", "model"],
            buckets=ERROR_RATIO_BUCKETS,
            registry=registry,
        )

    def record(self, accounted: Accounted) -> None:
        facts, quote = accounted.facts, accounted.quote
        labels = accounted.labels or self.limit.call_labels(facts)
        outcome = facts.outcome
        series = self._series.get(labels, outcome)
        if series is None:
            series = self._series.put(labels, _Series(self, labels, outcome), outcome)
        if outcome != "blocked":
            series.one(self.cost).inc(nanos_to_float(quote.total_nanos))
            usage = facts.usage
            counts = token_counts(usage)
            for at, count in enumerate(counts):
                if count:
                    series.tokens(at).inc(count)
            if facts.duration_s is not None:
                series.one(self.duration).observe(facts.duration_s)
            if facts.time_to_first_chunk_s is not None:
                series.one(self.ttfc).observe(facts.time_to_first_chunk_s)
            if quote.status == UNPRICED:
                series.one(self.unpriced).inc()
            if facts.usage_source == USAGE_INVALID:
                series.one(self.invalid_usage).inc()
        series.requests.inc()

    def use_limiter(self, limiter: LabelLimiter) -> None:
        """Fold through ``limiter`` from now on (the runtime's, shared with the OTLP sink) and count
        its folds here. The process-wide sink outlives runtimes, so a new runtime swaps it in."""
        if limiter is not self.limit:
            limiter.add_fold_listener(self._count_fold)
            self.limit = limiter

    def _count_fold(self, label: str) -> None:
        self.folded.labels(label).inc()

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """The labelled child, cached: ``labels()`` validates and locks on every call. Bounded by the
        label caps, like the series themselves."""
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def record_estimation_error(self, provider: str, model: str, ratio: float) -> None:
        """A sample re-measures a call already recorded, whose folds were counted then: not again."""
        fold = self.limit.fold
        self.estimation_error.labels(fold("provider", provider)[0], fold("model", model)[0]).observe(ratio)


class _Series:
    """The labelled children one call's labels and outcome record into. Apart from the request count,
    which every call adds to, a child is made when first used, since making one exports its series."""

    __slots__ = ("_metrics", "_one", "_tokens", "labels", "requests")

    def __init__(self, metrics: PrometheusMetrics, labels: CallLabels, outcome: str) -> None:
        self.labels = labels
        self._metrics = metrics
        self.requests = metrics._child(
            metrics.requests, labels.provider, labels.model, labels.operation, outcome, labels.error_type
        )
        self._tokens: list[Any] = [None] * len(TOKEN_TYPES)
        self._one: dict[int, Any] = {}

    def tokens(self, at: int) -> Any:
        found = self._tokens[at]
        if found is None:
            labels = self.labels
            found = self._tokens[at] = self._metrics._child(
                self._metrics.tokens, labels.provider, labels.model, TOKEN_TYPES[at]
            )
        return found

    def one(self, metric: MetricWrapperBase) -> Any:
        """The child of a series with no label of its own beyond the call's."""
        found = self._one.get(id(metric))
        if found is None:
            labels, metrics = self.labels, self._metrics
            values: tuple[str, ...] = (labels.provider, labels.model)
            if metric is metrics.cost:
                values += (labels.operation, labels.project, labels.feature)
            elif metric is metrics.duration or metric is metrics.ttfc:
                values += (labels.operation,)
            found = self._one[id(metric)] = metrics._child(metric, *values)
        return found
