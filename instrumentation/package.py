"""The client libraries costspan instruments, and the versions it supports.

As in the opentelemetry-python-contrib packages, these declarations live apart from the code, so
the launcher can read an instrumentor's dependencies (and skip it when its library is missing or
too old) without importing the library.
"""

from __future__ import annotations

OPENAI = ("openai >= 1.40",)
ANTHROPIC = ("anthropic >= 0.40",)
GOOGLE_GENAI = ("google-genai >= 1.0",)
GROQ = ("groq >= 0.11",)
OLLAMA = ("ollama >= 0.4",)
BEDROCK = ("botocore >= 1.34",)
MISTRAL = ("mistralai >= 1.2",)
COHERE = ("cohere >= 5.11",)
LITELLM = ("litellm >= 1.60",)
