"""Attribute names: the GenAI semantic conventions we emit and read, and costspan's own.

Kept in one module so instrumentors, the processor and the exporters cannot drift apart on a
spelling; the names are a public contract (docs/architecture.md, "The public contract").
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.attributes import user_attributes as _user
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

# GenAI semantic conventions, from opentelemetry-semantic-conventions where it defines them.
OPERATION = _gen_ai.GEN_AI_OPERATION_NAME
PROVIDER = _gen_ai.GEN_AI_PROVIDER_NAME
SYSTEM_DEPRECATED = _gen_ai.GEN_AI_SYSTEM
REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL
REQUEST_STREAM = _gen_ai.GEN_AI_REQUEST_STREAM
REQUEST_MAX_TOKENS = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL
RESPONSE_ID = _gen_ai.GEN_AI_RESPONSE_ID
RESPONSE_FINISH_REASONS = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
RESPONSE_TTFC = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
CACHE_READ_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
CACHE_CREATION_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_write.input_tokens"
"""The name the rename under way gives cache writes (the anthropic SDK's span uses it); not released yet."""
REASONING_TOKENS = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
SERVER_ADDRESS = _server.SERVER_ADDRESS
SERVER_PORT = _server.SERVER_PORT
ERROR_TYPE = _error.ERROR_TYPE
INPUT_MESSAGES = _gen_ai.GEN_AI_INPUT_MESSAGES
"""Request content as JSON; only with ``COSTSPAN_CAPTURE_CONTENT=true``."""
OUTPUT_MESSAGES = _gen_ai.GEN_AI_OUTPUT_MESSAGES
"""Response text as JSON; only with ``COSTSPAN_CAPTURE_CONTENT=true``."""
USER_ID = _user.USER_ID
OPENAI_SERVICE_TIER = "openai.response.service_tier"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"

# costspan's own.
USAGE_SOURCE = "costspan.facts.source"
IMAGE_COUNT = "costspan.facts.images"
SEARCH_UNITS = "costspan.facts.search_units"
CACHE_WRITE_1H_TOKENS = "costspan.facts.cache_write_1h.input_tokens"
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
