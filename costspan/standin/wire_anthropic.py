"""Anthropic Messages wire format (``POST /v1/messages``, also ``?beta=true`` as ``client.beta.messages`` sends).

Field names follow ``anthropic`` 2.x types (``anthropic/types/message.py``, ``usage.py``,
``message_delta_usage.py``, ``raw_message_stream_event.py``). Anthropic's ``input_tokens`` excludes
cache reads and writes; the fake reports exactly what the scenario's :class:`Usage` says.

Streams use named SSE events: ``message_start`` (usage with the input side and ``output_tokens: 1``),
``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``), ``content_block_stop``,
``message_delta`` (``stop_reason`` and the cumulative usage), ``message_stop``. With
``omit_usage`` the ``message_delta`` event is left out, so only ``message_start``'s usage arrives.
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
    route,
    sse,
)


def _usage(u: ResolvedUsage, tier: str, *, output_tokens: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_creation_5m,
            "ephemeral_1h_input_tokens": u.cache_creation_1h,
        },
        "output_tokens": u.output_tokens if output_tokens is None else output_tokens,
        "service_tier": tier,
    }
    if u.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return usage


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"request-id": fake_id("req_", ctx.request_number, "anthropic"), "anthropic-organization-id": "fake-org"}
    headers.update(ctx.scenario.headers)
    return headers


def messages(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(body.get("model"))
    usage = ctx.usage(ctx.prompt_tokens([body.get("system"), body.get("messages")]))
    tier = ctx.scenario.service_tier or "standard"
    message_id = fake_id("msg_01", ctx.request_number, "anthropic", length=22)
    stop_reason = ctx.scenario.finish_reason or "end_turn"

    def message(content: list[dict[str, Any]], stop: str | None, usage_obj: dict[str, Any]) -> dict[str, Any]:
        return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": None, "usage": usage_obj}

    if not body.get("stream"):
        answer = message([{"type": "text", "text": ctx.text}], stop_reason, _usage(usage, tier))
        if ctx.scenario.omit_usage:
            # Usage is required in the Message type; "omitted" means the provider sent zeros.
            answer["usage"] = {"input_tokens": 0, "output_tokens": 0}
        return JsonReply(answer, headers=_headers(ctx))

    frames = [
        sse({"type": "message_start", "message": message([], None, _usage(usage, tier, output_tokens=1))},
            event="message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            event="content_block_start"),
        sse({"type": "ping"}, event="ping"),
    ]
    for piece in ctx.pieces():
        frames.append(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                          event="content_block_delta"))
    frames.append(sse({"type": "content_block_stop", "index": 0}, event="content_block_stop"))
    if not ctx.scenario.omit_usage:
        final_usage = _usage(usage, tier)
        del final_usage["service_tier"]
        frames.append(sse({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": final_usage}, event="message_delta"))
    frames.append(sse({"type": "message_stop"}, event="message_stop"))
    stream_error = {"type": "error", "error": {"type": ctx.scenario.error_type or "overloaded_error",
                                               "message": ctx.scenario.error_message or "Overloaded"}}
    return StreamReply(frames, "text/event-stream; charset=utf-8", _headers(ctx), sse(stream_error, event="error"))


_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: the fake provider was told to reject this request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error",
          "This request would exceed the rate limit for your organization of 50 requests per minute."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    kind, message = _ERRORS.get(status, ("api_error", f"Fake provider error {status}."))
    scenario = ctx.scenario
    request_id = fake_id("req_", ctx.request_number, "anthropic")
    body = {
        "type": "error",
        "error": {"type": scenario.error_type or kind,
                  "message": scenario.error_message or message.format(model=ctx.json_body.get("model"))},
        "request_id": request_id,
    }
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    if status == 429:
        headers.setdefault("anthropic-ratelimit-requests-limit", "50")
        headers.setdefault("anthropic-ratelimit-requests-remaining", "0")
    return JsonReply(body, status=status, headers=headers)


ROUTES: list[Route] = [
    route("anthropic.messages", "POST", r"(?:/.*?)?/v1/messages", messages, error),
]
