"""Mistral's La Plateforme wire format: ``/v1/chat/completions``, ``/v1/fim/completions``, ``/v1/embeddings``.

Mistral's paths are OpenAI's, so its chat and embeddings routes take only requests from Mistral's
own SDK (user agent ``mistral-client-python/...``); an OpenAI-compatible client at the same paths gets the
OpenAI dialect. ``/fim/completions`` is Mistral's alone.

Shapes follow Mistral's API reference: ``object: "chat.completion"`` answers whose ``usage`` has
``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` and nothing else; FIM answers in the
same shape; streams are ``data:`` events ending ``data: [DONE]``, and Mistral always puts the
usage in the last chunk, beside its ``finish_reason`` (no ``stream_options`` to ask for it).
Errors are ``{"object": "error", "message", "type", "param", "code"}``.
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


def _from_sdk(headers: dict[str, str]) -> bool:
    return headers.get("user-agent", "").startswith("mistral-client-")


def _usage(u: ResolvedUsage) -> dict[str, Any]:
    return {"prompt_tokens": u.input_tokens, "total_tokens": u.input_tokens + u.output_tokens,
            "completion_tokens": u.output_tokens}


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-kong-request-id": fake_id("", ctx.request_number, "mistral", length=32),
               "mistral-correlation-id": fake_id("", ctx.request_number, "corr", length=36)}
    headers.update(ctx.scenario.headers)
    return headers


def _completion(ctx: RequestContext, prompt: Any) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(body.get("model"))
    usage = ctx.usage(ctx.prompt_tokens(prompt))
    completion_id = fake_id("", ctx.request_number, "mistral", length=32)
    created = int(ctx.now)
    finish = ctx.scenario.finish_reason or "stop"
    if not body.get("stream"):
        answer: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion", "model": model, "created": created,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ctx.text, "tool_calls": None,
                                                 "prefix": False}, "finish_reason": finish}],
        }
        if not ctx.scenario.omit_usage:
            answer["usage"] = _usage(usage)
        return JsonReply(answer, headers=_headers(ctx))

    def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

    frames = [sse(chunk({"role": "assistant", "content": ""}, None))]
    pieces = ctx.pieces()
    for piece in pieces[:-1]:
        frames.append(sse(chunk({"content": piece}, None)))
    last = chunk({"content": pieces[-1]}, finish)
    if not ctx.scenario.omit_usage:
        last["usage"] = _usage(usage)
    frames += [sse(last), sse("[DONE]")]
    stream_error = {"object": "error", "message": ctx.scenario.error_message or "Internal server error",
                    "type": "internal_server_error", "param": None, "code": None}
    return StreamReply(frames, "text/event-stream", _headers(ctx), sse(stream_error))


def chat_completions(ctx: RequestContext) -> Reply:
    return _completion(ctx, ctx.json_body.get("messages"))


def fim_completions(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    return _completion(ctx, [body.get("prompt"), body.get("suffix")])


def embeddings(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    inputs = body.get("inputs", body.get("input"))
    texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or ()]
    usage = ctx.usage(ctx.prompt_tokens(texts, overhead=0))
    answer: dict[str, Any] = {
        "id": fake_id("", ctx.request_number, "embed", length=32), "object": "list",
        "model": ctx.response_model(body.get("model")),
        "data": [{"object": "embedding", "embedding": fake_vector(t, 8), "index": i} for i, t in enumerate(texts)],
    }
    if not ctx.scenario.omit_usage:
        answer["usage"] = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens,
                           "completion_tokens": 0}
    return JsonReply(answer, headers=_headers(ctx))


_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request", None),
    401: ("authentication_error", "Unauthorized", None),
    404: ("invalid_request_error", "Invalid model: {model}", "1500"),
    429: ("rate_limited", "Requests rate limit exceeded", "1300"),
    500: ("internal_server_error", "Internal server error", None),
    503: ("service_unavailable", "Service unavailable", None),
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    kind, message, code = _ERRORS.get(status, ("internal_server_error", f"Fake provider error {status}.", None))
    scenario = ctx.scenario
    body = {"object": "error", "message": scenario.error_message or message.format(model=ctx.json_body.get("model")),
            "type": scenario.error_type or kind, "param": None, "code": scenario.error_code or code}
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    return JsonReply(body, status=status, headers=headers)


ROUTES: list[Route] = [
    route("mistral.fim", "POST", r"(?:/.*?)?/v1/fim/completions", fim_completions, error),
    route("mistral.chat", "POST", r"(?:/.*?)?/v1/chat/completions", chat_completions, error, accepts=_from_sdk),
    route("mistral.embeddings", "POST", r"(?:/.*?)?/v1/embeddings", embeddings, error, accepts=_from_sdk),
]
