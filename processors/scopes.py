"""Which instrumentation scopes make LLM spans: read from a tracer's name, once per scope.

The processor and the sampler guard both ask, so an application's other spans (HTTP, database,
its own) pay neither the processor's end hook nor the guard's sampling wrapper.
"""

from __future__ import annotations

OWN_SCOPES = frozenset({"costspan.instrumentation", "costspan.track"})
"""costspan's own tracers: their calls account themselves."""

_LLM_WORDS = (
    "openai", "anthropic", "genai", "gen_ai", "llm", "langchain", "llama", "bedrock", "vertex", "gemini", "mistral",
    "cohere", "groq", "ollama", "litellm", "openinference", "openlit", "traceloop", "haystack", "crewai", "dspy",
    "semantic_kernel", "semantic-kernel", "ai-sdk", "vercel",
)


def is_llm_scope(name: str) -> bool:
    """Whether a tracer of this name traces LLM calls (costspan's, a provider SDK's, a framework's)."""
    lowered = name.lower()
    return name in OWN_SCOPES or any(word in lowered for word in _LLM_WORDS)
