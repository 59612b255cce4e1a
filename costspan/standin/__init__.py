"""Local stand-ins for the LLM providers, for ``costspan demo`` and the tests.

They answer in each provider's wire format (JSON, SSE, NDJSON) so the real client SDKs run
unchanged against them, and they never reach the network.
"""

from costspan.standin._core import RecordedRequest, Scenario, ToolCall, Usage
from costspan.standin.server import ProviderServer

__all__ = ["ProviderServer", "RecordedRequest", "Scenario", "ToolCall", "Usage"]
