"""The endpoint a client resource talks to, named once per client and cached on nothing shared.

SDK resources keep their client at ``_client`` (openai, anthropic, groq) and the client keeps
``base_url``; the provider detection is memoised by URL in :mod:`costspan.providers`.
"""

from __future__ import annotations

from typing import Any

from costspan import runtime as runtime_module
from costspan.identity_memo import IdentityMemo
from costspan.providers import Endpoint, detect

_url_texts: IdentityMemo[object, str] = IdentityMemo(limit=64)
"""A client keeps one URL object for its life, and turning it into text re-assembles it from its
parts: several microseconds on every call."""


def base_url_of(instance: Any) -> str | None:
    client = getattr(instance, "_client", instance)
    url = getattr(client, "base_url", None)
    if url is None:
        return None
    if isinstance(url, str):
        return url
    text = _url_texts.get(url)
    return text if text is not None else _url_texts.put(url, str(url))


def endpoint_of(instance: Any, default: str) -> Endpoint:
    return endpoint_at(base_url_of(instance), default)


def endpoint_at(base_url: str | None, default: str) -> Endpoint:
    """For clients that keep their URL elsewhere (google-genai's ``_api_client``)."""
    runtime = runtime_module.get()
    overrides = runtime.settings.endpoints if runtime is not None else ()
    return detect(base_url, default, overrides)
