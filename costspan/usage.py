"""The normalised facts of one LLM call, read off a span whoever produced it.

Token semantics are the semantic conventions': ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning. Cache and reasoning counts are subsets and are never added on
top again when pricing. Every instrumentor and every peer's attribute set is reduced to this one
shape, so pricing, budgets, metrics and the ledger have a single input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class CallFacts:
    """Everything the processor knows about a call when its span ends."""

    provider: str
    request_model: str
    operation: str = "chat"
    response_model: str | None = None
    usage: Usage = field(default_factory=Usage)
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

    @property
    def model(self) -> str:
        """The model to price: what answered, falling back to what was asked for."""
        return self.response_model or self.request_model

    @property
    def outcome(self) -> str:
        if self.error_type == "BudgetExceededError":
            return "blocked"
        return "error" if self.error_type else "success"
