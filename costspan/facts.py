"""The normalised facts of one LLM call (``CallFacts``, with its ``Usage``), whoever saw the call.

Token semantics are the semantic conventions': ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning. Cache and reasoning counts are subsets and are never added on
top again when pricing. Every instrumentor and every peer's attribute set is reduced to this one
shape, so pricing, budgets, metrics and the ledger have a single input.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from operator import attrgetter

MAX_TOKENS = 20_000_000
"""The largest token count one call can report: twice the largest context window on sale (10
million tokens, Llama 4 Scout; Gemini 1.5 Pro's is 2 million). A count above it, like a negative
one or one that is not an integer, is not usage: no provider bills it."""

INVALID = -(2**62)
"""What a reader makes of a count no provider would send. It stays far out of range in any sum the
reader builds from it (Anthropic's input is three counts added), so :func:`checked` catches it."""

USAGE_INVALID = "invalid"
"""``costspan.facts.source`` of a call whose reported usage held counts no provider would send."""


def as_count(value: object) -> int:
    """A token count as read from an answer: 0 when absent, :data:`INVALID` when it is no count."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return INVALID


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """Subset of ``cache_write_tokens`` written with the 1-hour lifetime (Anthropic)."""
    reasoning_tokens: int = 0
    images: int = 0
    search_units: int = 0
    """Rerank searches billed (Cohere: one per query over up to 100 documents), priced per unit."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


NO_USAGE = Usage()
"""Usage of a call that reported none: shared, since a usage is never changed (a frozen value)."""
_COUNTS = tuple(f.name for f in fields(Usage))
_PARTS = (
    (("cache_read_tokens", "cache_write_tokens"), "input_tokens"),
    (("cache_write_1h_tokens",), "cache_write_tokens"),
    (("reasoning_tokens",), "output_tokens"),
)
_SOUND: frozenset[str] = frozenset()
_read_counts = attrgetter(*_COUNTS)
_INT_ONLY = {int}
_PART_INDEXES = tuple((tuple(map(_COUNTS.index, parts)), _COUNTS.index(whole)) for parts, whole in _PARTS)
_last_sound: Usage | None = None
"""The last usage found sound: a call's usage is checked where it is read and again where it is
priced, and a frozen usage stays sound (held here, so its identity cannot pass to another)."""


def checked(usage: Usage) -> tuple[Usage, frozenset[str]]:
    """The usage with every count no provider would send set to 0, and the names of those counts.

    Out of range (negative, above :data:`MAX_TOKENS`, not an integer) is invalid; so are parts that
    exceed their whole (cached input above the input), which would price the rest below zero.
    """
    global _last_sound
    if usage is _last_sound:
        return usage, _SOUND
    counts = _read_counts(usage)
    if set(map(type, counts)) == _INT_ONLY and min(counts) >= 0 and max(counts) <= MAX_TOKENS:
        # Every call passes here: the counts are judged at once, and the parts against their wholes.
        for part_at, whole_at in _PART_INDEXES:
            if sum(map(counts.__getitem__, part_at)) > counts[whole_at]:
                break
        else:
            _last_sound = usage
            return usage, _SOUND
    bad = {name for name in _COUNTS if not _valid(getattr(usage, name))}
    for parts, whole in _PARTS:
        intact = whole not in bad and not bad.intersection(parts)
        if intact and sum(getattr(usage, part) for part in parts) > getattr(usage, whole):
            bad.update(parts)
    if not bad:
        return usage, _SOUND
    return replace(usage, **dict.fromkeys(bad, 0)), frozenset(bad)


def _valid(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


@dataclass(slots=True)
class CallFacts:
    """Everything the processor knows about a call when its span ends."""

    provider: str
    request_model: str
    operation: str = "chat"
    response_model: str | None = None
    usage: Usage = NO_USAGE
    usage_source: str = "reported"
    """``reported`` (by the provider), ``estimated`` (counted locally), ``none`` or a manual kind."""
    has_usage: bool = True
    stream: bool = False
    service_tier: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    local: bool | None = None
    """Served by a model server on this machine (free unless priced); None: judge from the address."""
    started_at: datetime | None = None
    duration_s: float | None = None
    time_to_first_chunk_s: float | None = None
    error_type: str | None = None
    project: str | None = None
    feature: str | None = None
    user: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    declared_cost_nanos: int | None = None
    """A cost stated by the application (``costspan.track(cost_usd=...)``), used instead of a price."""
    prompt_hash: str | None = None
    """Salted hash of the request messages, only when ``ledger.prompt_hashes`` is on."""
    service: str | None = None
    """The service that made the call when it is not this process (the gateway reads it off the
    span's resource); None: this process's service name."""

    @property
    def model(self) -> str:
        """The model to price: what answered, falling back to what was asked for."""
        return self.response_model or self.request_model

    @property
    def outcome(self) -> str:
        if self.error_type == "BudgetExceededError":
            return "blocked"
        return "error" if self.error_type else "success"
