"""Helpers for the gateway tests: OTLP spans built with the generated classes, a gateway in-process."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry

from costspan.gateway.config import load
from costspan.gateway.service import Gateway
from costspan.gateway.values import set_value
from costspan.settings import load_settings


def ids(seed: int) -> tuple[bytes, bytes]:
    """A trace id and a span id derived from ``seed`` (never zero)."""
    return (seed + 1).to_bytes(16, "big"), (seed + 1).to_bytes(8, "big")


def span_id(n: int) -> bytes:
    return (n + 1).to_bytes(8, "big")


def llm_attributes(
    model: str = "gpt-4o-mini", input_tokens: int = 1000, output_tokens: int = 200, provider: str = "openai"
) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }


def make_span(
    trace: bytes, span: bytes, parent: bytes = b"", name: str = "chat gpt-4o-mini", attributes: Mapping[str, Any] = {}
) -> Span:
    out = Span(trace_id=trace, span_id=span, parent_span_id=parent, name=name, kind=Span.SPAN_KIND_CLIENT)
    now = time.time_ns()
    out.start_time_unix_nano, out.end_time_unix_nano = now - 500_000_000, now
    for key, value in attributes.items():
        pair = out.attributes.add()
        pair.key = key
        set_value(pair.value, value)
    return out


def export_request(spans: list[Span], service: str = "checkout", **resource: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in {"service.name": service, **resource}.items():
        pair = resource_spans.resource.attributes.add()
        pair.key = key
        set_value(pair.value, value)
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def span_attributes(span: Span) -> dict[str, Any]:
    from costspan.gateway.values import attributes

    return attributes(span.attributes)


def gateway_yaml(forward: str | None = None, protocol: str = "http/protobuf", extra: str = "") -> str:
    lines = ["gateway:", "  http: 127.0.0.1:0", "  grpc: 127.0.0.1:0"]
    if forward:
        lines += ["  forward:", f"    endpoint: {forward}", f"    protocol: {protocol}"]
        lines += ["    retry: {initial_interval: 0.05, max_interval: 0.5}"]
    return "\n".join(lines) + "\n" + extra


@contextmanager
def running_gateway(
    tmp_path: Path, yaml_text: str, *, store: str | None = None, ledger: Path | None = None
) -> Iterator[Gateway]:
    directory = tmp_path / f"gw-{len(list(tmp_path.glob('gw-*')))}"
    directory.mkdir()
    config = directory / "costspan.yaml"
    config.write_text(yaml_text + (f"ledger:\n  path: {ledger}\n" if ledger else ""))
    env = {
        "COSTSPAN_CONFIG": str(config),
        "COSTSPAN_STORE": store or f"sqlite:///{tmp_path / 'costspan.db'}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }
    settings = load_settings(env)
    gateway = Gateway(settings, load(settings, env={}), registry=CollectorRegistry())
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def flush_ledger(gateway: Gateway, timeout: float = 10.0) -> None:
    """Wait until everything answered so far is accounted (the answer comes first), then write the
    ledger out; fails if the accounting does not finish in ``timeout`` seconds."""
    assert gateway.intake.wait_idle(timeout), f"accounting not done after {timeout} s"
    for sink in gateway.runtime.sinks:
        flush = getattr(sink, "flush", None)
        if callable(flush):
            flush()


def ledger_rows(path: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT * FROM calls ORDER BY id"))
    finally:
        conn.close()


def metric(gateway: Gateway, name: str, **labels: str) -> float:
    """A sample from the gateway's registry (cost metrics and self-metrics), 0 when absent."""
    value = gateway.registry.get_sample_value(name, labels)
    return value or 0.0
