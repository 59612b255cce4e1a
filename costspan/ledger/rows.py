"""Turn one accounted call into one ledger row (the tuple order of ``schema.COLUMNS``).

Runs on the writer thread, never on the caller's: the caller only enqueues the ``Accounted``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from costspan.accounted import Accounted

Row = tuple[object, ...]


def as_int(value: object) -> int:
    """A SQLite value read as a count (NULL and an empty string as 0): the column types say int, the
    driver's types say object."""
    if isinstance(value, (int, float)):
        return int(value)
    return int(value) if isinstance(value, str) and value else 0


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC (the SDK's clock is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _us(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1_000_000)


def to_row(accounted: Accounted, service: str, recorded_us: int) -> Row:
    """The row for a call. ``recorded_us`` stands in for the start time when the facts lack one
    (start = recorded - duration), so no row is ever without a time."""
    facts, quote = accounted.facts, accounted.quote
    usage = facts.usage
    started = facts.started_at
    ts_us = to_us(started) if started is not None else recorded_us - (_us(facts.duration_s) or 0)
    return (
        ts_us,
        service,
        facts.provider,
        facts.request_model,
        facts.response_model,
        facts.model,
        facts.operation,
        facts.project,
        facts.feature,
        facts.user,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.images,
        quote.total_nanos,
        quote.input_nanos,
        quote.output_nanos,
        quote.cache_read_nanos,
        quote.cache_write_nanos,
        quote.status,
        quote.key,
        quote.source,
        facts.usage_source,
        _us(facts.duration_s),
        _us(facts.time_to_first_chunk_s),
        facts.outcome,
        facts.error_type,
        facts.trace_id,
        facts.span_id,
        getattr(facts, "prompt_hash", None),
    )
