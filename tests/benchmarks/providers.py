"""What costspan adds to one call of each provider's SDK, plain and streamed, with the network taken out.

Each SDK talks to an in-process ``httpx.MockTransport`` (``httpx2`` for the SDKs built on it; boto3 to
a ``before-send`` handler, LiteLLM to the openai client it is handed) that answers canned bodies in the
provider's own wire format, built once by the stand-in's wire modules
(``costspan.standin``), so what is measured is the SDK's own work plus whatever instrumentation is
on. The SDKs differ a lot in their own cost per call (pydantic parsing, SSE decoding), so the
overhead is reported per provider, in microseconds and relative to the bare call.

Variants, interleaved over rounds in a shuffled order (these machines are noisy) and reported as
medians: ``bare`` (no costspan), ``+span`` (bare, inside one plain OpenTelemetry span: the yardstick
for what a span costs at all) and ``costspan`` (every instrumentor on, pricing every call).
The anthropic SDK traces itself by default, so its ``bare`` already makes a span; it is measured
that way and with the SDK's tracing off (then costspan makes the span). Bare runs use a tracer
provider costspan was never attached to, so its processor is out of them too.

After the measurements one call per case is checked: costspan's span carries the canned usage
and a cost, so the figures are for a working pipeline and not for a wrapper that stepped aside.

Usage: python tests/benchmarks/providers.py [--rounds 7] [--calls 200] [--only openai]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Before costspan's first use, which reads them: no state written anywhere by a benchmark.
os.environ.setdefault("COSTSPAN_STORE", "memory://")
os.environ.setdefault("COSTSPAN_LEDGER", "off")

import anthropic
import groq
import httpx
import httpx2
import ollama
import openai
from google import genai
from google.genai import types
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from costspan.standin import Scenario, Usage
from costspan.standin._core import JsonReply, RequestContext
from costspan.standin.server import ROUTES

MESSAGES: Any = [{"role": "user", "content": "In one sentence: why measure what LLM calls cost?"}]
PROMPT = "In one sentence: why measure what LLM calls cost?"
USAGE = Usage(input_tokens=25, output_tokens=40)
TEXT = " ".join(f"word{i}" for i in range(40))  # the stand-in splits an answer into 8 stream deltas


class KeepLast(SpanExporter):
    """Drops spans, remembering the last LLM span: the check after the run reads it."""

    def __init__(self) -> None:
        self.last: ReadableSpan | None = None

    def export(self, spans: Any) -> SpanExportResult:
        for span in spans:
            if span.attributes and "gen_ai.request.model" in span.attributes:
                self.last = span
        return SpanExportResult.SUCCESS


# --- canned answers, in each provider's wire format -------------------------------------------------


@dataclass(frozen=True)
class Canned:
    content: bytes
    content_type: str
    frames: int
    """Stream frames (SSE events or NDJSON lines); 0 for a plain JSON answer."""


def canned(
    path: str, body: dict[str, Any], query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Canned:
    """The stand-in's answer to ``POST path`` with ``body`` (and ``headers``), as bytes on the wire."""
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if route.method != "POST" or match is None or (route.accepts is not None and not route.accepts(headers or {})):
            continue
        ctx = RequestContext(
            method="POST",
            path=path,
            query=query or {},
            headers=headers or {},
            body=body,
            params={k: v for k, v in match.groupdict().items() if v is not None},
            scenario=Scenario(usage=USAGE, text=TEXT),
            request_number=1,
            model_aliases={},
        )
        reply = route.handle(ctx)
        if isinstance(reply, JsonReply):
            return Canned(json.dumps(reply.body).encode(), "application/json", 0)
        return Canned(b"".join(reply.frames), reply.content_type, len(reply.frames))
    raise LookupError(f"no stand-in route for {path}")


def mock_transport(module: Any, plain: Canned, stream: Canned, is_stream: Callable[[Any], bool]) -> Any:
    """``module.MockTransport`` (httpx or httpx2) answering ``stream`` or ``plain``, as the request asks."""

    def handle(request: Any) -> Any:
        answer = stream if is_stream(request) else plain
        return module.Response(200, content=answer.content, headers={"content-type": answer.content_type})

    return module.MockTransport(handle)


def body_streams(request: Any) -> bool:
    return b'"stream":true' in request.content.replace(b" ", b"")


# --- the cases -----------------------------------------------------------------------------------


@dataclass
class Case:
    """One provider's SDK with its mock transport: a plain call and a fully read stream."""

    name: str
    provider: str
    plain: Canned
    stream: Canned
    make_client: Callable[[TracerProvider], Any]
    """Builds the client; the tracer provider is for SDKs that trace themselves (anthropic)."""
    call: Callable[[Any], Any]
    read_stream: Callable[[Any], Any]


def openai_case() -> Case:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream_options": {"include_usage": True}}
    plain = canned("/v1/chat/completions", body)
    stream = canned("/v1/chat/completions", {**body, "stream": True})

    def client(_: TracerProvider) -> openai.OpenAI:
        transport = mock_transport(httpx2, plain, stream, body_streams)
        return openai.OpenAI(api_key="x", max_retries=0, http_client=httpx2.Client(transport=transport))

    def read(c: openai.OpenAI) -> None:
        for _ in c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass

    return Case("openai", "openai", plain, stream, client,
                lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES), read)


def anthropic_case(sdk_traces: bool) -> Case:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 200, "messages": MESSAGES}
    plain = canned("/v1/messages", body)
    stream = canned("/v1/messages", {**body, "stream": True})

    def client(tracer_provider: TracerProvider) -> anthropic.Anthropic:
        transport = mock_transport(httpx2, plain, stream, body_streams)
        option: Any = {"tracer_provider": tracer_provider} if sdk_traces else False
        return anthropic.Anthropic(
            api_key="x", max_retries=0, http_client=httpx2.Client(transport=transport), open_telemetry=option
        )

    def read(c: anthropic.Anthropic) -> None:
        for _ in c.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES, stream=True):
            pass

    name = "anthropic (SDK span)" if sdk_traces else "anthropic (SDK tracing off)"
    return Case(name, "anthropic", plain, stream, client,
                lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES), read)


def gemini_case() -> Case:
    body = {"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}
    path = "/v1beta/models/gemini-2.5-flash:"
    plain = canned(path + "generateContent", body)
    stream = canned(path + "streamGenerateContent", body, {"alt": "sse"})

    def client(_: TracerProvider) -> genai.Client:
        transport = mock_transport(httpx2, plain, stream, lambda r: r.url.path.endswith(":streamGenerateContent"))
        options = types.HttpOptions(httpx_client=httpx2.Client(transport=transport))
        return genai.Client(api_key="x", http_options=options)

    def read(c: genai.Client) -> None:
        for _ in c.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT):
            pass

    return Case("gemini", "gcp.gemini", plain, stream, client,
                lambda c: c.models.generate_content(model="gemini-2.5-flash", contents=PROMPT), read)


def groq_case() -> Case:
    body = {"model": "llama-3.1-8b-instant", "messages": MESSAGES}
    plain = canned("/openai/v1/chat/completions", body)
    stream = canned("/openai/v1/chat/completions", {**body, "stream": True})

    def client(_: TracerProvider) -> groq.Groq:
        transport = mock_transport(httpx, plain, stream, body_streams)
        return groq.Groq(api_key="x", max_retries=0, http_client=httpx.Client(transport=transport))

    def read(c: groq.Groq) -> None:
        for _ in c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True):
            pass

    return Case("groq", "groq", plain, stream, client,
                lambda c: c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES), read)


def ollama_case() -> Case:
    body = {"model": "llama3.2", "messages": MESSAGES}
    plain = canned("/api/chat", {**body, "stream": False})
    stream = canned("/api/chat", {**body, "stream": True})

    def client(_: TracerProvider) -> ollama.Client:
        transport = mock_transport(httpx, plain, stream, body_streams)
        return ollama.Client(host="http://127.0.0.1:11434", transport=transport)

    def read(c: ollama.Client) -> None:
        for _ in c.chat(model="llama3.2", messages=MESSAGES, stream=True):
            pass

    return Case("ollama", "ollama", plain, stream, client, lambda c: c.chat(model="llama3.2", messages=MESSAGES), read)


def mistral_case() -> Case:
    from mistralai.client import Mistral

    body = {"model": "mistral-small-latest", "messages": MESSAGES}
    headers = {"user-agent": "mistral-client-python/bench"}
    plain = canned("/v1/chat/completions", body, headers=headers)
    stream = canned("/v1/chat/completions", {**body, "stream": True}, headers=headers)

    def client(_: TracerProvider) -> Mistral:
        transport = mock_transport(httpx2, plain, stream, body_streams)
        return Mistral(api_key="x", client=httpx2.Client(transport=transport))

    def read(c: Mistral) -> None:
        for _ in c.chat.stream(model="mistral-small-latest", messages=MESSAGES):
            pass

    return Case("mistral", "mistral_ai", plain, stream, client,
                lambda c: c.chat.complete(model="mistral-small-latest", messages=MESSAGES), read)


def cohere_case() -> Case:
    """Cohere's v2 client takes its httpx client as ``httpx_client``; ``chat`` and ``chat_stream`` both post
    to ``/v2/chat``, the body saying which."""
    import cohere

    body = {"model": "command-a-03-2025", "messages": MESSAGES}
    plain = canned("/v2/chat", body)
    stream = canned("/v2/chat", {**body, "stream": True})

    def client(_: TracerProvider) -> cohere.ClientV2:
        transport = mock_transport(httpx, plain, stream, body_streams)
        return cohere.ClientV2(api_key="x", httpx_client=httpx.Client(transport=transport))

    def read(c: cohere.ClientV2) -> None:
        for _ in c.chat_stream(model="command-a-03-2025", messages=MESSAGES):
            pass

    return Case("cohere", "cohere", plain, stream, client,
                lambda c: c.chat(model="command-a-03-2025", messages=MESSAGES), read)


class CannedBody:
    """What botocore reads an answer's body from (urllib3's response): all of it in one chunk."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self.content


def bedrock_case() -> Case:
    """boto3 sends through botocore's own HTTP session: a ``before-send`` handler answers instead (what
    botocore's Stubber would skip is kept: serialising, signing, parsing the answer and its event stream)."""
    import boto3
    from botocore.awsrequest import AWSResponse

    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    messages: Any = [{"role": "user", "content": [{"text": PROMPT}]}]
    plain = canned(f"/model/{model}/converse", {"messages": messages})
    stream = canned(f"/model/{model}/converse-stream", {"messages": messages})

    def client(_: TracerProvider) -> Any:
        bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                               aws_secret_access_key="x")

        def answer(request: Any, **_: Any) -> AWSResponse:
            reply = stream if request.url.endswith("/converse-stream") else plain
            return AWSResponse(request.url, 200, {"content-type": reply.content_type}, CannedBody(reply.content))

        bedrock.meta.events.register("before-send.bedrock-runtime", answer)
        return bedrock

    def read(c: Any) -> None:
        for _ in c.converse_stream(modelId=model, messages=messages)["stream"]:
            pass

    return Case("bedrock", "aws.bedrock", plain, stream, client,
                lambda c: c.converse(modelId=model, messages=messages), read)


def litellm_case() -> Case:
    """LiteLLM to OpenAI, with the openai client LiteLLM is handed (``client=``) on the mock transport."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream_options": {"include_usage": True}}
    plain = canned("/v1/chat/completions", body)
    stream = canned("/v1/chat/completions", {**body, "stream": True})

    def client(_: TracerProvider) -> openai.OpenAI:
        transport = mock_transport(httpx2, plain, stream, body_streams)
        return openai.OpenAI(api_key="x", max_retries=0, http_client=httpx2.Client(transport=transport))

    def read(c: openai.OpenAI) -> None:
        for _ in litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, client=c, stream=True,
                                    stream_options={"include_usage": True}):
            pass

    return Case("litellm (to openai)", "openai", plain, stream, client,
                lambda c: litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, client=c), read)


def all_cases() -> list[Case]:
    return [openai_case(), anthropic_case(True), anthropic_case(False), gemini_case(), groq_case(), ollama_case(),
            mistral_case(), cohere_case(), bedrock_case(), litellm_case()]


# --- variants and measurement --------------------------------------------------------------------


def instrumentors() -> list[BaseInstrumentor]:
    from costspan.instrumentation.anthropic import AnthropicInstrumentor
    from costspan.instrumentation.bedrock import BedrockInstrumentor
    from costspan.instrumentation.cohere import CohereInstrumentor
    from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor
    from costspan.instrumentation.groq import GroqInstrumentor
    from costspan.instrumentation.litellm import LiteLLMInstrumentor
    from costspan.instrumentation.mistral import MistralInstrumentor
    from costspan.instrumentation.ollama import OllamaInstrumentor
    from costspan.instrumentation.openai import OpenAIInstrumentor

    return [OpenAIInstrumentor(), AnthropicInstrumentor(), GoogleGenAIInstrumentor(), GroqInstrumentor(),
            OllamaInstrumentor(), MistralInstrumentor(), CohereInstrumentor(), BedrockInstrumentor(),
            LiteLLMInstrumentor()]


@dataclass
class Variant:
    name: str
    costspan: bool
    span: bool


VARIANTS = [Variant("bare", False, False), Variant("+span", False, True), Variant("costspan", True, False)]


class Bench:
    """Clients per case and variant, and the two tracer providers (one costspan is attached to, one not)."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases
        self.kept = KeepLast()
        self.instrumented = TracerProvider()  # the global one: costspan attaches its processor here
        self.instrumented.add_span_processor(BatchSpanProcessor(self.kept))
        trace.set_tracer_provider(self.instrumented)
        self.bare = TracerProvider()  # never seen by costspan: bare runs and the yardstick span use it
        self.bare.add_span_processor(BatchSpanProcessor(KeepLast()))
        self.yardstick = self.bare.get_tracer("bench")
        self.instrumentors = instrumentors()
        self.clients = {(case.name, False): case.make_client(self.bare) for case in cases}
        # Each costspan client is built instrumented, as under the launcher: cohere's client binds its
        # ``chat`` and ``chat_stream`` to the instance when built, so one built before ``instrument()``
        # never calls the patched methods (the Cohere case once failed its check for that reason).
        self.instrument(True)
        try:
            self.clients.update({(case.name, True): case.make_client(self.instrumented) for case in cases})
        finally:
            self.instrument(False)

    def instrument(self, on: bool) -> None:
        for instrumentor in self.instrumentors:
            if on:
                instrumentor.instrument()
            else:
                instrumentor.uninstrument()

    def one(self, case: Case, streamed: bool, variant: Variant) -> None:
        client = self.clients[(case.name, variant.costspan)]
        run = case.read_stream if streamed else case.call
        if variant.span:
            with self.yardstick.start_as_current_span("chat", attributes={f"app.attr{i}": i for i in range(8)}):
                run(client)
        else:
            run(client)

    def measure(self, case: Case, streamed: bool, variant: Variant, calls: int) -> float:
        """Microseconds per call, over ``calls`` calls after a warm-up."""
        if variant.costspan:
            self.instrument(True)
        try:
            for _ in range(5):
                self.one(case, streamed, variant)
            gc.collect()
            start = time.perf_counter()
            for _ in range(calls):
                self.one(case, streamed, variant)
            return (time.perf_counter() - start) / calls * 1e6
        finally:
            if variant.costspan:
                self.instrument(False)

    def check(self, case: Case, streamed: bool) -> str:
        """One costspan call: its span must carry the canned usage and a cost status, or the run is void."""
        self.instrument(True)
        try:
            self.kept.last = None
            self.one(case, streamed, VARIANTS[-1])
            self.instrumented.force_flush()
        finally:
            self.instrument(False)
        span = self.kept.last
        attrs: dict[str, Any] = dict(span.attributes or {}) if span is not None else {}
        got = (attrs.get("gen_ai.provider.name"), attrs.get("gen_ai.usage.input_tokens"),
               attrs.get("gen_ai.usage.output_tokens"), attrs.get("costspan.facts.source"))
        if got != (case.provider, USAGE.input_tokens, USAGE.output_tokens, "reported"):
            raise SystemExit(f"{case.name} {'stream' if streamed else 'plain'}: costspan's span is wrong: {attrs}")
        return str(attrs.get("costspan.cost.status"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", help="run the cases whose name starts with this")
    args = parser.parse_args()

    cases = [c for c in all_cases() if args.only is None or c.name.startswith(args.only)]
    bench = Bench(cases)
    work = [(case, streamed) for case in cases for streamed in (False, True)]
    results: dict[tuple[str, bool, str], list[float]] = {}
    for _ in range(args.rounds):
        order = [(case, streamed, variant) for case, streamed in work for variant in VARIANTS]
        random.shuffle(order)
        for case, streamed, variant in order:
            value = bench.measure(case, streamed, variant, args.calls)
            results.setdefault((case.name, streamed, variant.name), []).append(value)
    statuses = {(case.name, streamed): bench.check(case, streamed) for case, streamed in work}

    print(f"python {sys.version.split()[0]}, {args.rounds} rounds x {args.calls} calls, "
          "medians in microseconds per call; network replaced by an in-process mock transport")
    header = (f"{'provider':28s} {'call':6s} {'frames':>6s} {'bare':>8s} {'+span':>8s} {'costspan':>9s} "
              f"{'adds':>7s} {'adds %':>7s} {'x span':>7s}  cost")
    print(header)
    print("-" * len(header))
    for case, streamed in work:
        median = {v.name: statistics.median(results[(case.name, streamed, v.name)]) for v in VARIANTS}
        adds = median["costspan"] - median["bare"]
        span = median["+span"] - median["bare"]
        ratio = f"{adds / span:7.1f}" if span > 1 else f"{'n/a':>7s}"
        frames = (case.stream if streamed else case.plain).frames
        print(f"{case.name:28s} {'stream' if streamed else 'plain':6s} {frames:6d} {median['bare']:8.1f} "
              f"{median['+span']:8.1f} {median['costspan']:9.1f} {adds:+7.1f} {adds / median['bare'] * 100:+6.1f}% "
              f"{ratio}  {statuses[(case.name, streamed)]}")
    print("adds: costspan minus bare; x span: that, in units of what one plain span costs on the same call.")


if __name__ == "__main__":
    main()
