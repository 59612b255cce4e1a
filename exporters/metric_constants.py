"""What every metric sink shares: token types and bucket boundaries, defined once.

Prometheus and OTLP must agree, or a dashboard over the Prometheus endpoint and one over a
collector's translation of the OTLP metrics would disagree on buckets and token types. The
GenAI semantic conventions fix the OTLP histograms' boundaries; Prometheus's time-to-first-chunk
histogram keeps costspan's own, which the shipped dashboards and alert rules were written against.
"""

from __future__ import annotations

from costspan.facts import Usage

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
"""The ``type`` label of the token counters; cache and reasoning are subsets of input and output."""


def token_counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """The counts of ``usage`` in the order of :data:`TOKEN_TYPES`."""
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Seconds; semconv's ``gen_ai.client.operation.duration`` boundaries, also Prometheus's duration histogram."""

SEMCONV_TOKEN_BUCKETS = tuple(4.0**i for i in range(14))
"""``gen_ai.client.token.usage``: 1, 4, 16, ... 67108864."""

SEMCONV_TTFC_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""``gen_ai.client.operation.time_to_first_chunk``."""

TTFC_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Prometheus's ``costspan_time_to_first_chunk_seconds`` (dashboards and rules use these)."""

ERROR_RATIO_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""``costspan_estimation_error_ratio``."""
