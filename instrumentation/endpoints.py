"""The endpoint a client resource talks to, named once per client and cached on nothing shared.

SDK resources keep their client at ``_client`` (openai, anthropic, groq) and the client keeps
``base_url``; the provider detection is memoised by URL in :mod:`costspan.providers`.
"""

from __future__ import annotations

from typing import Any

from costspan import runtime as runtime_module
from costspan.providers import Endpoint, detect

_URLS_KEPT = 64
_url_texts: dict[int, tuple[object, str]] = {}
"""id of a client's URL object -> (that object, its text). A client keeps one URL object for its life,
and turning it into text re-assembles it from its parts (several microseconds on every call); the
object is held so its id cannot be reused by another."""


def base_url_of(instance: Any) -> str | None:
    client = getattr(instance, "_client", instance)
    url = getattr(client, "base_url", None)
    if url is None:
        return None
    if isinstance(url, str):
        return url
    known = _url_texts.get(id(url))
    if known is not None and known[0] is url:
        return known[1]
    text = str(url)
    if len(_url_texts) >= _URLS_KEPT:
        _url_texts.clear()
    _url_texts[id(url)] = (url, text)
    return text


def endpoint_of(instance: Any, default: str) -> Endpoint:
    return endpoint_at(base_url_of(instance), default)


def endpoint_at(base_url: str | None, default: str) -> Endpoint:
    """For clients that keep their URL elsewhere (google-genai's ``_api_client``)."""
    runtime = runtime_module.get()
    overrides = runtime.settings.endpoints if runtime is not None else ()
    return detect(base_url, default, overrides)
