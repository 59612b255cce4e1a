"""An application instrumented by someone else's package, not costspan, exporting OTLP traces.

Usage: python_app.py openllmetry|openai-v2 http|grpc ENDPOINT BASE_URL CALLS
"""

from __future__ import annotations

import sys

import openai
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main() -> None:
    kind, protocol, endpoint, base_url, calls = sys.argv[1:]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        exporter = Grpc(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        exporter = Http(endpoint=endpoint + "/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": f"py-{kind}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if kind == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # type: ignore[no-redef]
    OpenAIInstrumentor().instrument()
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    for _ in range(int(calls)):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}])
    provider.shutdown()
    if "costspan" in sys.modules:
        raise SystemExit("costspan must not be loaded in this application")


if __name__ == "__main__":
    main()
