"""What instrumentation adds to one OpenAI call, with the network taken out.

An in-process ``httpx.MockTransport`` answers canned responses, so what is measured is the
client plus whatever instrumentation is enabled. Variants are interleaved over rounds (these
machines are noisy) and medians reported. For a repeatable figure, run one variant under
callgrind:  valgrind --tool=callgrind python tests/benchmarks/overhead.py --only costspan --calls 200

Usage: python tests/benchmarks/overhead.py [--rounds 7] [--calls 300] [--memory 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

os.environ.setdefault("COSTSPAN_STORE", "memory://")
os.environ.setdefault("COSTSPAN_LEDGER", "off")

MODEL = "gpt-4o-mini"
CHUNKS = 50
BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 5, "total_tokens": 30},
    }
).encode()


def _stream_body() -> bytes:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18"}
    lines = [
        {**base, "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
        for i in range(CHUNKS)
    ]
    lines.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 25, "completion_tokens": CHUNKS, "total_tokens": 25 + CHUNKS}
    lines.append({**base, "choices": [], "usage": usage})
    return ("".join(f"data: {json.dumps(x)}\n\n" for x in lines) + "data: [DONE]\n\n").encode()


STREAM = _stream_body()


def handler(request: httpx.Request) -> httpx.Response:
    if b'"stream":true' in request.content.replace(b" ", b""):
        return httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=BODY, headers={"content-type": "application/json"})


class DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


MESSAGES = [{"role": "user", "content": "Say hi."}]


def make_clients() -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    transport = httpx.MockTransport(handler)
    sync = openai.OpenAI(
        api_key="x", base_url="https://api.openai.com/v1", http_client=httpx.Client(transport=transport)
    )
    async_ = openai.AsyncOpenAI(
        api_key="x",
        base_url="https://api.openai.com/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    return sync, async_


class Variant:
    def __init__(self, name: str, enable: Callable[[], None], disable: Callable[[], None], span: bool = False):
        self.name, self.enable, self.disable, self.manual_span = name, enable, disable, span


def build_variants(tracer: trace.Tracer) -> list[Variant]:
    from costspan.instrumentation.openai import OpenAIInstrumentor

    ours = OpenAIInstrumentor()
    def with_ledger() -> None:
        """The whole pipeline: the SQLite ledger written by its thread, beside a store in a temporary folder."""
        os.environ["COSTSPAN_LEDGER"] = "on"
        os.environ["COSTSPAN_STORE"] = f"sqlite:///{tempfile.mkdtemp(prefix='costspan-bench-')}/costspan.db"
        ours.instrument()

    variants = [
        Variant("bare", lambda: None, lambda: None),
        Variant("bare+span", lambda: None, lambda: None, span=True),
        Variant("costspan", ours.instrument, ours.uninstrument),
        Variant("costspan+ledger", with_ledger, ours.uninstrument),
    ]
    try:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Peer

        peer = Peer()
        variants.append(Variant("openllmetry", peer.instrument, peer.uninstrument))
    except Exception:
        pass
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as Official

        official = Official()
        variants.append(Variant("official", official.instrument, official.uninstrument))
    except Exception:
        pass
    return variants


SPAN_ATTRS = {f"gen_ai.attr{i}": i for i in range(18)}


def one_call(kind: str, sync: openai.OpenAI, async_: openai.AsyncOpenAI, tracer: trace.Tracer, span: bool) -> None:
    def body() -> None:
        if kind == "plain":  # a span that is not an LLM call's (an HTTP or database span of the application)
            tracer.start_span("GET /health").end()
        elif kind == "sync":
            sync.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        elif kind == "stream":
            for _ in sync.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass
        else:
            asyncio.run(_async_call(async_))

    if span:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=SPAN_ATTRS):
            body()
    else:
        body()


async def _async_call(client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]


def measure(kind: str, variant: Variant, calls: int, clients: Any, tracer: trace.Tracer) -> float:
    variant.enable()
    try:
        for _ in range(5):
            one_call(kind, *clients, tracer, variant.manual_span)
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            one_call(kind, *clients, tracer, variant.manual_span)
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        variant.disable()


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_check(calls: int, clients: Any, tracer: trace.Tracer) -> None:
    """Resident memory after every tenth of ``calls`` instrumented calls (RSS, not tracemalloc: tracing
    every allocation makes 100,000 calls take half an hour). Flat means nothing accumulates per call."""
    from costspan.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    for _ in range(2000):  # warm: caches, the span batch queue, the allocator's arenas
        one_call("sync", *clients, tracer, False)
    gc.collect()
    points = [(0, rss_kib())]
    for i in range(1, calls + 1):
        one_call("sync", *clients, tracer, False)
        if i % (calls // 10) == 0:
            gc.collect()
            points.append((i, rss_kib()))
    print("memory (RSS KiB after N calls): " + ", ".join(f"{n:,}: {kib:,}" for n, kib in points))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--only", help="run one variant (for callgrind)")
    ap.add_argument("--kind", default="sync", choices=["sync", "stream", "async", "plain"])
    ap.add_argument("--memory", type=int, default=0, help="calls for the memory-growth check (0: skip)")
    args = ap.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")
    clients = make_clients()
    variants = build_variants(tracer)

    if args.only:
        variant = next(v for v in variants if v.name == args.only)
        variant.enable()
        for _ in range(args.calls):
            one_call(args.kind, *clients, tracer, variant.manual_span)
        return

    results: dict[str, dict[str, list[float]]] = {}
    for kind in ("sync", "stream", "async") if args.rounds else ():  # --rounds 0: the memory check only
        per = results.setdefault(kind, {v.name: [] for v in variants})
        for _ in range(args.rounds):
            order = variants[:]
            random.shuffle(order)
            for variant in order:
                per[variant.name].append(measure(kind, variant, args.calls if kind != "async" else args.calls // 3,
                                                 clients, tracer))
    if results:
        version = sys.version.split()[0]
        print(f"python {version}, {args.rounds} rounds x {args.calls} calls, medians in microseconds/call")
    for kind, per in results.items():
        medians = {name: statistics.median(values) for name, values in per.items()}
        bare = medians["bare"]
        line = ", ".join(f"{name} {value:.1f} (+{value - bare:.1f})" for name, value in medians.items())
        print(f"{kind:6s}: {line}")
        span_cost = medians["bare+span"] - bare
        ours = medians["costspan"] - bare
        print(f"        costspan adds {ours:.1f} us = {ours / span_cost:.2f}x a bare span ({span_cost:.1f} us)")
        if kind == "stream":
            print(f"        per streamed chunk (costspan minus bare span, over {CHUNKS} chunks): "
                  f"{(ours - span_cost) / CHUNKS:.2f} us upper bound")

    if args.memory:
        memory_check(args.memory, clients, tracer)


if __name__ == "__main__":
    main()
