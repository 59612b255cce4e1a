"""Cohere's v2 API wire format: ``POST /v2/chat`` (plain and streamed), ``/v2/embed``, ``/v2/rerank``.

Shapes follow Cohere's v2 API reference. Usage comes twice: ``billed_units`` (what Cohere bills:
the scenario's :class:`~costspan.standin._core.Usage`) and ``tokens`` (what the model processed,
which adds the chat template and system preamble Cohere does not bill: the stand-in adds
:data:`TEMPLATE_TOKENS` to the input). Chat answers carry ``usage``; embed and rerank carry
``meta.billed_units`` (rerank in ``search_units``: one per query of up to 100 documents).

Streams are named SSE events: ``message-start``, ``content-start``, ``content-delta``...,
``content-end``, ``message-end`` (``delta.finish_reason`` and ``delta.usage``).
"""

from __future__ import annotations

from typing import Any

from costspan.standin._core import (
    JsonReply,
    Reply,
    RequestContext,
    ResolvedUsage,
    Route,
    StreamReply,
    error_headers,
    fake_id,
    fake_vector,
    route,
    sse,
)

TEMPLATE_TOKENS = 196
"""Input tokens of Cohere's chat template: processed (``usage.tokens``), not billed (``billed_units``)."""


def _usage(u: ResolvedUsage) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
        "tokens": {"input_tokens": u.input_tokens + TEMPLATE_TOKENS, "output_tokens": u.output_tokens + 1},
        "cached_tokens": u.cached_tokens,
    }


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-trial-endpoint-call-remaining": "999", "num_tokens": "0",
               "x-debug-trace-id": fake_id("", ctx.request_number, "cohere", length=32)}
    headers.update(ctx.scenario.headers)
    return headers


def chat(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    usage = ctx.usage(ctx.prompt_tokens(body.get("messages"), overhead=0))
    message_id = fake_id("", ctx.request_number, "cohere-chat", length=36)
    finish = ctx.scenario.finish_reason or "COMPLETE"
    if not body.get("stream"):
        answer: dict[str, Any] = {
            "id": message_id, "finish_reason": finish,
            "message": {"role": "assistant", "content": [{"type": "text", "text": ctx.text}]},
        }
        if not ctx.scenario.omit_usage:
            answer["usage"] = _usage(usage)
        return JsonReply(answer, headers=_headers(ctx))

    def frame(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, event=kind)

    frames = [
        frame("message-start", id=message_id,
              delta={"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
                                 "citations": []}}),
        frame("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}),
    ]
    frames += [frame("content-delta", index=0, delta={"message": {"content": {"text": piece}}})
               for piece in ctx.pieces()]
    frames.append(frame("content-end", index=0))
    end: dict[str, Any] = {"finish_reason": finish}
    if not ctx.scenario.omit_usage:
        end["usage"] = _usage(usage)
    frames.append(frame("message-end", delta=end))
    return StreamReply(frames, "text/event-stream", _headers(ctx))


def embed(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    texts = [str(t) for t in body.get("texts") or ()]
    usage = ctx.usage(ctx.prompt_tokens(texts, overhead=0))
    answer: dict[str, Any] = {
        "id": fake_id("", ctx.request_number, "cohere-embed", length=36), "response_type": "embeddings_by_type",
        "embeddings": {"float": [fake_vector(t, 8) for t in texts]}, "texts": texts,
        "meta": {"api_version": {"version": "2"}},
    }
    if not ctx.scenario.omit_usage:
        answer["meta"]["billed_units"] = {"input_tokens": usage.input_tokens}
    return JsonReply(answer, headers=_headers(ctx))


def rerank(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    documents = body.get("documents") or []
    shown = min(body.get("top_n") or len(documents), len(documents))
    answer: dict[str, Any] = {
        "id": fake_id("", ctx.request_number, "cohere-rerank", length=36),
        "results": [{"index": i, "relevance_score": round(0.9 - i * 0.1, 4)} for i in range(shown)],
        "meta": {"api_version": {"version": "2"}},
    }
    if not ctx.scenario.omit_usage:
        answer["meta"]["billed_units"] = {"search_units": max(1, -(-len(documents) // 100))}
    return JsonReply(answer, headers=_headers(ctx))


_ERRORS = {
    400: "invalid request: the fake provider was told to reject this request",
    401: "invalid api token",
    404: "model '{model}' not found, make sure the correct model ID was used and that you have access to the model.",
    429: "You are using a Trial key, which is limited to 10 API calls / minute.",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable",
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    message = _ERRORS.get(status, f"Fake provider error {status}.").format(model=ctx.json_body.get("model"))
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    return JsonReply({"id": fake_id("", ctx.request_number, "cohere-error", length=36),
                      "message": ctx.scenario.error_message or message}, status=status, headers=headers)


ROUTES: list[Route] = [
    route("cohere.chat", "POST", r"(?:/.*?)?/v2/chat", chat, error),
    route("cohere.embed", "POST", r"(?:/.*?)?/v2/embed", embed, error),
    route("cohere.rerank", "POST", r"(?:/.*?)?/v2/rerank", rerank, error),
]
