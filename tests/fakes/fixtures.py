"""Pytest fixtures for the fake provider server and real SDK clients pointed at it.

Use them from a test module or conftest with
``from tests.fakes.fixtures import *  # noqa: F403`` or by importing the names you need (pytest
finds fixtures imported into a module's namespace), or ``pytest_plugins = ["tests.fakes.fixtures"]``
in the top-level conftest.

One server per session (starting it per test would cost a thread and a port each time); every test
gets it reset by ``provider_server``, so scenarios and recorded requests never leak between tests.
Clients use ``max_retries=0`` so error scenarios fail fast and each scenario is consumed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from costspan.standin import ProviderServer

__all__ = [
    "anthropic_client",
    "gemini_client",
    "groq_client",
    "ollama_client",
    "openai_client",
    "provider_server",
    "provider_server_session",
    "vertex_client",
]


@pytest.fixture(scope="session")
def provider_server_session() -> Iterator[ProviderServer]:
    """The session's server (not reset: prefer ``provider_server``)."""
    with ProviderServer() as server:
        yield server


@pytest.fixture
def provider_server(provider_server_session: ProviderServer) -> Iterator[ProviderServer]:
    """The shared server, reset before and after the test."""
    provider_server_session.reset()
    yield provider_server_session
    provider_server_session.reset()


@pytest.fixture
def openai_client(provider_server: ProviderServer) -> Any:
    import openai

    return openai.OpenAI(base_url=provider_server.base_url + "/v1", api_key="test-key", max_retries=0)


@pytest.fixture
def anthropic_client(provider_server: ProviderServer) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=provider_server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def groq_client(provider_server: ProviderServer) -> Any:
    import groq

    return groq.Groq(base_url=provider_server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def gemini_client(provider_server: ProviderServer) -> Any:
    """Gemini Developer API client (paths ``/v1/models/{model}:...``); retries are off by default in the SDK."""
    from google import genai
    from google.genai import types

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=provider_server.base_url))


@pytest.fixture
def vertex_client(provider_server: ProviderServer) -> Any:
    """Vertex AI client with project and location, offline: a ready token means no ADC lookup or refresh."""
    import google.oauth2.credentials
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=True,
        project="test-project",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token="test-token"),
        http_options=types.HttpOptions(base_url=provider_server.base_url),
    )


@pytest.fixture
def ollama_client(provider_server: ProviderServer) -> Any:
    import ollama

    return ollama.Client(host=provider_server.base_url)
