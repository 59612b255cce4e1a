"""Which provider a client talks to, from its base URL.

OpenAI-compatible endpoints all use the ``openai`` SDK, so the SDK alone does not say who answers
(and who bills). The host does. Names are the semantic-convention values where one exists.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

# (host suffix, provider) — first match wins, so more specific suffixes come first.
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("openai.azure.com", "azure.ai.openai"),
    ("cognitiveservices.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.openai"),
    ("models.inference.ai.azure.com", "github"),
    ("models.github.ai", "github"),
    ("openrouter.ai", "openrouter"),
    ("groq.com", "groq"),
    ("deepseek.com", "deepseek"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("fireworks.ai", "fireworks"),
    ("mistral.ai", "mistral_ai"),
    ("x.ai", "x_ai"),
    ("perplexity.ai", "perplexity"),
    ("anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("cohere.com", "cohere"),
    ("cohere.ai", "cohere"),
    ("amazonaws.com", "aws.bedrock"),
    ("openai.com", "openai"),
)
# Well-known default ports of local model servers.
_LOCAL_PORTS = {11434: "ollama", 8000: "vllm", 1234: "lmstudio"}
LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "lmstudio", "local"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    provider: str
    address: str | None
    port: int | None
    local: bool
    """A model server on this machine: its calls cost nothing unless the user prices them."""


@lru_cache(maxsize=1024)
def is_local_host(host: str | None) -> bool:
    """Memoised: asked on every span end, and a service talks to a handful of hosts."""
    if not host:
        return False
    if host in ("localhost", "host.docker.internal") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_local_endpoint(
    address: str | None, port: int | None, provider: str, overrides: tuple[tuple[str, str], ...] = ()
) -> bool:
    """For spans from other instrumentations, which say only where the call went.

    A loopback address is a local endpoint unless the user named it as a billing provider (a
    gateway or stand-in on this machine that stands for one); naming it ``local`` keeps it local.
    """
    if provider in LOCAL_PROVIDERS:
        return True
    if not is_local_host(address):
        return False
    named = named_provider(address, port, overrides)
    return named is None or named in LOCAL_PROVIDERS


def named_provider(address: str | None, port: int | None, overrides: tuple[tuple[str, str], ...]) -> str | None:
    """The provider ``endpoints:`` names for the server at ``address:port``, if it names one."""
    for prefix, provider in overrides:
        parts = urlsplit(prefix)
        if (parts.hostname or "").lower() == (address or "").lower() and (port is None or parts.port in (None, port)):
            return provider
    return None


def parse_overrides(spec: str) -> tuple[tuple[str, str], ...]:
    """``COSTSPAN_ENDPOINTS="http://gateway:8080/v1=openai,http://127.0.0.1:9000=anthropic"``."""
    pairs = []
    for item in spec.split(","):
        if not item.strip():
            continue
        url, sep, provider = item.rpartition("=")
        if not sep or not url.strip() or not provider.strip():
            raise ValueError(f"expected URL=provider, got {item.strip()!r}")
        pairs.append((url.strip().rstrip("/"), provider.strip()))
    return tuple(pairs)


@lru_cache(maxsize=256)
def detect(base_url: str | None, default: str = "openai", overrides: tuple[tuple[str, str], ...] = ()) -> Endpoint:
    """Name the provider behind ``base_url``; ``default`` is the SDK's own provider.

    ``overrides`` (URL prefix -> provider) come first: a company gateway or a local stand-in can be
    named as the provider that really bills for it; such an endpoint is never treated as free.
    """
    if not base_url:
        return Endpoint(default, None, None, False)
    parts = urlsplit(str(base_url))
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    url = str(base_url).rstrip("/")
    for prefix, provider in overrides:
        if url.startswith(prefix):
            return Endpoint(provider, host or None, port, provider in LOCAL_PROVIDERS)
    if is_local_host(host):
        path = parts.path.rstrip("/")
        if default != "openai":
            provider = default
        elif port in _LOCAL_PORTS:
            provider = _LOCAL_PORTS[port]
        elif path.endswith("/api") or "ollama" in path:
            provider = "ollama"
        else:
            provider = "local"
        return Endpoint(provider, host, port, True)
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return Endpoint(provider, host, port, False)
    return Endpoint(default, host or None, port, False)
