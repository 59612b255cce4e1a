"""The same figures through the OpenTelemetry MeterProvider, so ``OTEL_METRICS_EXPORTER=otlp`` ships them.

The GenAI semantic-convention histograms carry their advisory bucket boundaries. costspan's own
instruments use curly-brace units so that a collector's Prometheus translation yields exactly
the names the dashboards query (``costspan_cost_usd_total``, not ``costspan_cost_USD_total``).
Token histograms are fed only from reported usage: semconv makes offline counts opt-in.

Every attribute value that can grow without bound (models, requested and responded, projects,
features, error types) goes through the runtime's :class:`LabelLimiter`, the same one the
Prometheus sink uses: an OTLP backend pays per series just as Prometheus does, and both must
fold the same values into ``other``. Folds are counted in ``costspan.folded_label_values``
(``costspan_folded_label_values_total`` after a collector's Prometheus translation). User ids
are never attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.util.types import Attributes

from costspan import attribute_names as A
from costspan.accounted import Accounted, CallLabels
from costspan.exporters.labels import LabelLimiter
from costspan.exporters.metric_constants import (
    DURATION_BUCKETS,
    SEMCONV_TOKEN_BUCKETS,
    SEMCONV_TTFC_BUCKETS,
    TOKEN_TYPES,
    token_counts,
)
from costspan.facts import USAGE_INVALID
from costspan.identity_memo import IdentityMemo
from costspan.money import nanos_to_float
from costspan.pricing import UNPRICED


class OtlpMetrics:
    def __init__(self, meter: metrics.Meter | None = None, limiter: LabelLimiter | None = None) -> None:
        """``limiter``: the runtime's, shared with the Prometheus sink; a private one when not given."""
        from costspan import __version__

        meter = meter or metrics.get_meter("costspan", __version__)
        self._limit = limiter or LabelLimiter()
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(SEMCONV_TOKEN_BUCKETS),
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk in a streaming operation.",
            explicit_bucket_boundaries_advisory=list(SEMCONV_TTFC_BUCKETS),
        )
        self._cost = meter.create_counter("costspan.cost.usd", unit="{USD}", description="Cost of LLM calls in USD.")
        self._tokens = meter.create_counter("costspan.tokens", unit="{token}", description="Tokens by type.")
        self._requests = meter.create_counter(
            "costspan.requests", unit="{request}", description="LLM calls by outcome."
        )
        self._unpriced = meter.create_counter(
            "costspan.unpriced_requests", unit="{request}", description="LLM calls with no known price."
        )
        self._invalid_usage = meter.create_counter(
            "costspan.invalid_usage",
            unit="{request}",
            description="LLM calls whose reported usage held counts no provider would send; not priced.",
        )
        self._folded = meter.create_counter(
            "costspan.folded_label_values",
            unit="{value}",
            description="Label values folded into 'other' because a label reached its cap of distinct values.",
        )
        self._limit.add_fold_listener(self._count_fold)
        self._attributes: IdentityMemo[CallLabels, _Attributes] = IdentityMemo(limit=4096)
        """By a call's labels (one memoized object for the same names) and its outcome."""

    def _count_fold(self, label: str) -> None:
        self._folded.add(1, {"label": label})

    def record(self, accounted: Accounted) -> None:
        facts, quote = accounted.facts, accounted.quote
        labels = accounted.labels or self._limit.call_labels(facts)
        outcome = facts.outcome
        attrs = self._attributes.get(labels, outcome)
        if attrs is None:
            attrs = self._attributes.put(labels, _Attributes.of(labels, outcome), outcome)
        self._requests.add(1, attrs.requests)
        if outcome == "blocked":
            return
        if facts.duration_s is not None:
            self._duration.record(facts.duration_s, attrs.semconv)
        if facts.time_to_first_chunk_s is not None:
            self._ttfc.record(facts.time_to_first_chunk_s, attrs.semconv)
        usage = facts.usage
        if facts.usage_source == "reported" and facts.has_usage:
            self._token_usage.record(usage.input_tokens, attrs.token_usage[0])
            self._token_usage.record(usage.output_tokens, attrs.token_usage[1])
        self._cost.add(nanos_to_float(quote.total_nanos), attrs.cost)
        counts = token_counts(usage)
        for by_type, count in zip(attrs.tokens, counts, strict=True):
            if count:
                self._tokens.add(count, by_type)
        if quote.status == UNPRICED:
            self._unpriced.add(1, attrs.provider_model)
        if facts.usage_source == USAGE_INVALID:
            self._invalid_usage.add(1, attrs.provider_model)

@dataclass(frozen=True, slots=True)
class _Attributes:
    """The attribute sets of one call's labels and outcome, per instrument."""

    requests: Attributes
    semconv: Attributes
    token_usage: tuple[Attributes, Attributes]
    cost: Attributes
    tokens: tuple[Attributes, ...]
    provider_model: Attributes

    @classmethod
    def of(cls, labels: CallLabels, outcome: str) -> _Attributes:
        provider, model = labels.provider, labels.model
        base = {"provider": provider, "model": model, "operation": labels.operation}
        semconv: dict[str, str] = {
            A.OPERATION: labels.operation,
            A.PROVIDER: provider,
            A.REQUEST_MODEL: labels.request_model,
        }
        if labels.response_model:
            semconv[A.RESPONSE_MODEL] = labels.response_model
        if labels.error_type:
            semconv[A.ERROR_TYPE] = labels.error_type
        return cls(
            requests={**base, "outcome": outcome, "error_type": labels.error_type},
            semconv=semconv,
            token_usage=({**semconv, "gen_ai.token.type": "input"}, {**semconv, "gen_ai.token.type": "output"}),
            cost={**base, "project": labels.project, "feature": labels.feature},
            tokens=tuple({"provider": provider, "model": model, "type": token_type} for token_type in TOKEN_TYPES),
            provider_model={"provider": provider, "model": model},
        )
