"""Attribute names: the GenAI semantic conventions we emit and read, and costspan's own.

Kept in one module so instrumentors, the processor and the exporters cannot drift apart on a
spelling; the names are a public contract (DESIGN.md, "Span attributes").
"""

from __future__ import annotations

# GenAI semantic conventions (v1.41).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM_DEPRECATED = "gen_ai.system"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TTFC = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_write.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
INPUT_MESSAGES = "gen_ai.input.messages"
"""Request content as JSON; only with ``COSTSPAN_CAPTURE_CONTENT=true``."""
OUTPUT_MESSAGES = "gen_ai.output.messages"
"""Response text as JSON; only with ``COSTSPAN_CAPTURE_CONTENT=true``."""
USER_ID = "user.id"
OPENAI_SERVICE_TIER = "openai.response.service_tier"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"

# costspan's own.
USAGE_SOURCE = "costspan.usage.source"
IMAGE_COUNT = "costspan.usage.images"
SEARCH_UNITS = "costspan.usage.search_units"
CACHE_WRITE_1H_TOKENS = "costspan.usage.cache_write_1h.input_tokens"
COST_USD = "costspan.cost.usd"
COST_INPUT_USD = "costspan.cost.input_usd"
COST_OUTPUT_USD = "costspan.cost.output_usd"
COST_CACHE_READ_USD = "costspan.cost.cache_read_usd"
COST_CACHE_WRITE_USD = "costspan.cost.cache_write_usd"
COST_STATUS = "costspan.cost.status"
PRICING_KEY = "costspan.pricing.key"
PRICING_SOURCE = "costspan.pricing.source"
PROJECT = "costspan.project"
FEATURE = "costspan.feature"
BUDGET_NAME = "costspan.budget.name"
BUDGET_UTILIZATION = "costspan.budget.utilization"
BUDGET_REMAINING_USD = "costspan.budget.remaining_usd"
BUDGET_STATUS = "costspan.budget.status"
BUDGET_THRESHOLD = "costspan.budget.threshold"
BUDGET_THRESHOLD_EVENT = "costspan.budget.threshold"
PROMPT_HASH = "costspan.request.prompt_hash"
"""Salted hash of the request messages (``ledger.prompt_hashes: true`` only): finds repeated prompts, keeps no text."""
ENDPOINT_LOCAL = "costspan.endpoint.local"
"""Whether the call went to a model server on this machine (free unless priced), as the instrumentor judged it."""
COUNTED_IN = "costspan.cost.counted_in"
"""Set on an outer GenAI span whose call was already priced on an inner span (counted once)."""

# Peers' names, read so that their spans are priced too.
PEER_INPUT_TOKENS = (
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
)
PEER_OUTPUT_TOKENS = (
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
PEER_CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read_input_tokens",
    "llm.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "ai.usage.cachedInputTokens",
)
PEER_CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
PEER_CACHE_WRITE_1H_TOKENS = ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens",)
"""The anthropic SDK's own spans (2.x) say how many cache writes have the 1-hour lifetime."""
PEER_REASONING_TOKENS = (
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "ai.usage.reasoningTokens",
)
PEER_MODEL = ("llm.model_name", "llm.request.model", "llm.response.model", "ai.model.id")
PEER_RESPONSE_MODEL = ("llm.response.model", "ai.response.model")
PEER_PROVIDER = ("llm.provider", "llm.system", "ai.model.provider")
PEER_OPERATION = ("llm.request.type", "ai.operationId")
"""The Vercel AI SDK names its spans' operation ``ai.generateText.doGenerate``, ``ai.embed.doEmbed``..."""
PEER_PROJECT = ("ai.telemetry.metadata.costspan.project", "ai.telemetry.metadata.project")
PEER_FEATURE = ("ai.telemetry.metadata.costspan.feature", "ai.telemetry.metadata.feature")
PEER_USER = (
    "enduser.id",
    "ai.telemetry.metadata.user.id",
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user",
)
"""Who a call is for, as other instrumentations say it (``enduser.id`` is the general semconv name;
the Vercel AI SDK carries the application's ``experimental_telemetry.metadata``)."""
