"""The endpoint a client resource talks to, named once per client and cached on nothing shared.

SDK resources keep their client at ``_client`` (openai, anthropic, groq) and the client keeps
``base_url``; the provider detection is memoised by URL in :mod:`costspan.providers`.
"""

from __future__ import annotations

from typing import Any

from costspan import runtime as runtime_module
from costspan.providers import Endpoint, detect


def base_url_of(instance: Any) -> str | None:
    client = getattr(instance, "_client", instance)
    url = getattr(client, "base_url", None)
    return str(url) if url is not None else None


def endpoint_of(instance: Any, default: str) -> Endpoint:
    return endpoint_at(base_url_of(instance), default)


def endpoint_at(base_url: str | None, default: str) -> Endpoint:
    """For clients that keep their URL elsewhere (google-genai's ``_api_client``)."""
    runtime = runtime_module.get()
    overrides = runtime.settings.endpoints if runtime is not None else ()
    return detect(base_url, default, overrides)
