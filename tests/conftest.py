"""Shared fixtures: one SDK tracer provider per session (OpenTelemetry allows one global), a fresh
costspan runtime per test, and the instrumentors enabled once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import runtime as runtime_module
from tests.harness import Harness, make_harness

# The provider stand-in and real SDK clients pointed at it, for every test module.
pytest_plugins = ["tests.fakes.fixtures"]

# A runtime built implicitly (first instrumented call with none installed) must not touch the
# developer's own state directory.
os.environ.setdefault("COSTSPAN_STORE", "memory://")
os.environ.setdefault("COSTSPAN_LEDGER", "off")
os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp(prefix="costspan-test-state-"))
# LiteLLM fetches its price map from the network when imported, unless told to use the copy it ships.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test (the exporter is cleared before it)."""
    _exporter.clear()
    yield _exporter


@pytest.fixture
def tracer_provider() -> TracerProvider:
    return _provider


@pytest.fixture
def make_runtime(tmp_path: Path, spans: InMemorySpanExporter) -> Iterator[Callable[..., Harness]]:
    """``make_runtime(yaml_text=None, **env)``: install a costspan runtime built from those settings."""

    def make(yaml_text: str | None = None, **env: str) -> Harness:
        return make_harness(tmp_path, yaml_text, **env)

    yield make
    runtime_module.reset()


@pytest.fixture(scope="session")
def openai_instrumented() -> Iterator[Any]:
    from costspan.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    yield instrumentor
    instrumentor.uninstrument()
