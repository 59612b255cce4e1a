"""Ollama native wire format (``/api/chat``, ``/api/generate``, ``/api/embed``, legacy ``/api/embeddings``).

Point ``ollama.Client(host=server.base_url)`` at the server. Ollama streams by default when the
request has no ``"stream"`` field (the Python client always sends one). Streams are NDJSON:
``"done": false`` chunks, then a final ``"done": true`` line with ``done_reason``,
``prompt_eval_count``, ``eval_count`` and the durations in nanoseconds. ``omit_usage`` drops the
counts and durations from that final line (as Ollama does when it answers from its prompt cache
in some versions). Errors are ``{"error": "..."}`` with the HTTP status.

Ollama's OpenAI-compatible ``/v1/chat/completions`` is served by ``wire_openai`` on the same server.
"""

from __future__ import annotations

import time
from typing import Any

from costspan.standin._core import (
    JsonReply,
    Reply,
    RequestContext,
    ResolvedUsage,
    Route,
    StreamReply,
    count_tokens,
    error_headers,
    fake_vector,
    ndjson,
    route,
)


def _created_at(ctx: RequestContext) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ctx.now)) + ".000000Z"


def _stats(u: ResolvedUsage) -> dict[str, Any]:
    prompt_ns = 1_000_000 * u.input_tokens
    eval_ns = 20_000_000 * u.output_tokens
    load_ns = 10_000_000
    return {
        "total_duration": load_ns + prompt_ns + eval_ns,
        "load_duration": load_ns,
        "prompt_eval_count": u.input_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": u.output_tokens,
        "eval_duration": eval_ns,
    }


def _headers(ctx: RequestContext) -> dict[str, str]:
    return dict(ctx.scenario.headers)


def _answer(ctx: RequestContext, chat: bool) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(body.get("model"))
    prompt = body.get("messages") if chat else [body.get("system"), body.get("prompt")]
    usage = ctx.usage(ctx.prompt_tokens(prompt, overhead=10 if chat else 0))
    base = {"model": model, "created_at": _created_at(ctx)}

    def part(text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}} if chat else {"response": text}

    final: dict[str, Any] = {"done": True, "done_reason": ctx.scenario.finish_reason or "stop"}
    if not chat:
        final["context"] = [1, 2, 3]
    if not ctx.scenario.omit_usage:
        final.update(_stats(usage))
    if not body.get("stream", True):
        return JsonReply({**base, **part(ctx.text), **final}, headers=_headers(ctx))
    frames = [ndjson({**base, **part(piece), "done": False}) for piece in ctx.pieces()]
    frames.append(ndjson({**base, **part(""), **final}))
    stream_error = ndjson({"error": ctx.scenario.error_message or "an error was encountered while running the model"})
    return StreamReply(frames, "application/x-ndjson", _headers(ctx), stream_error)


def chat(ctx: RequestContext) -> Reply:
    return _answer(ctx, chat=True)


def generate(ctx: RequestContext) -> Reply:
    return _answer(ctx, chat=False)


def embed(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw or []]
    dims = body.get("dimensions") or 8
    usage = ctx.usage(sum(count_tokens(t) for t in inputs))
    answer: dict[str, Any] = {"model": ctx.response_model(body.get("model")),
                              "embeddings": [fake_vector(t, dims) for t in inputs]}
    if not ctx.scenario.omit_usage:
        answer.update(total_duration=20_000_000, load_duration=5_000_000, prompt_eval_count=usage.input_tokens)
    return JsonReply(answer, headers=_headers(ctx))


def embeddings_legacy(ctx: RequestContext) -> Reply:
    return JsonReply({"embedding": fake_vector(str(ctx.json_body.get("prompt", "")), 8)}, headers=_headers(ctx))


_MESSAGES = {
    400: "invalid request",
    404: "model '{model}' not found",
    429: "too many requests",
    500: "an error was encountered while running the model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    message = ctx.scenario.error_message or _MESSAGES.get(status, f"fake provider error {status}").format(
        model=ctx.json_body.get("model"))
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    return JsonReply({"error": message}, status=status, headers=headers)


ROUTES: list[Route] = [
    route("ollama.chat", "POST", r"/api/chat", chat, error),
    route("ollama.generate", "POST", r"/api/generate", generate, error),
    route("ollama.embed", "POST", r"/api/embed", embed, error),
    route("ollama.embeddings", "POST", r"/api/embeddings", embeddings_legacy, error),
]
