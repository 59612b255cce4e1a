"""Amazon Bedrock Runtime wire format: Converse and InvokeModel, plain and streamed.

Paths as botocore sends them (``endpoint_url`` at the stand-in, any region, fake credentials):
``POST /model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream``; the model id is URL-encoded (an ARN's ``:`` and ``/`` too).

Streams use the AWS event-stream binary framing (``application/vnd.amazon.eventstream``): each
message is a prelude (total and header lengths, CRC32), typed headers (``:event-type``,
``:message-type``, ``:content-type``), a JSON payload and a CRC32 of the whole, so botocore's own
parser reads them. Converse streams send ``messageStart``, ``contentBlockDelta``...,
``contentBlockStop``, ``messageStop`` and ``metadata`` (the usage); every event carries the ``p``
padding field Bedrock adds. InvokeModel streams send ``chunk`` events whose payload is
``{"bytes": base64(model JSON)}``; the last chunk carries ``amazon-bedrock-invocationMetrics``.

InvokeModel answers in the model family's own body, chosen from the request's shape (a
provisioned-throughput ARN does not name its family): Anthropic messages (``anthropic_version``),
Amazon Nova (``inferenceConfig`` or ``schemaVersion``), Amazon Titan text (``inputText`` with
``textGenerationConfig``) and embeddings (``inputText`` alone), Meta Llama (``max_gen_len``),
Cohere Command R (``message``) and embed (``texts``), Mistral (``prompt``). Only some families put
usage in the body; every plain answer has the ``x-amzn-bedrock-input-token-count`` and
``-output-token-count`` headers, as Bedrock sends them.

Converse counts input the Anthropic way: ``inputTokens`` excludes ``cacheReadInputTokens`` and
``cacheWriteInputTokens`` (``totalTokens`` is the sum of all four). The scenario's
:class:`~costspan.standin._core.Usage` is what goes on the wire, in those terms.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

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
)

EVENT_STREAM = "application/vnd.amazon.eventstream"
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, prelude CRC, string headers, payload, message CRC."""
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return event_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception_event(exception_type: str, message: str) -> bytes:
    return event_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


def _model_id(ctx: RequestContext) -> str:
    return unquote(ctx.params.get("model", ""))


def _vendor_model(model_id: str) -> str:
    """What an Anthropic body on Bedrock names: ``claude-3-haiku-20240307`` for
    ``us.anthropic.claude-3-haiku-20240307-v1:0`` (an ARN names nothing better than itself)."""
    return re.sub(r"^(?:[a-z]+\.)?anthropic\.|-v\d+(?::\d+)?$", "", model_id)


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-amzn-requestid": fake_id("", ctx.request_number, "bedrock", length=32)}
    headers.update(ctx.scenario.headers)
    return headers


def _token_headers(ctx: RequestContext, usage: ResolvedUsage) -> dict[str, str]:
    """What Bedrock's InvokeModel sends on every plain answer, whatever the body says."""
    headers = {
        "x-amzn-bedrock-input-token-count": str(usage.input_tokens),
        "x-amzn-bedrock-output-token-count": str(usage.output_tokens),
        "x-amzn-bedrock-invocation-latency": "412",
    }
    if usage.cached_tokens:
        headers["x-amzn-bedrock-cache-read-input-token-count"] = str(usage.cached_tokens)
    if usage.cache_creation_tokens:
        headers["x-amzn-bedrock-cache-write-input-token-count"] = str(usage.cache_creation_tokens)
    headers.update(_headers(ctx))
    return headers


def _converse_usage(u: ResolvedUsage) -> dict[str, Any]:
    usage = {
        "inputTokens": u.input_tokens,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens + u.cached_tokens + u.cache_creation_tokens,
    }
    if u.cached_tokens:
        usage["cacheReadInputTokens"] = u.cached_tokens
    if u.cache_creation_tokens:
        usage["cacheWriteInputTokens"] = u.cache_creation_tokens
    return usage


def _converse_prompt(ctx: RequestContext) -> int:
    body = ctx.json_body
    return ctx.prompt_tokens([body.get("system"), body.get("messages")])


def converse(ctx: RequestContext) -> Reply:
    usage = ctx.usage(_converse_prompt(ctx))
    answer: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": ctx.text}]}},
        "stopReason": ctx.scenario.finish_reason or "end_turn",
        "metrics": {"latencyMs": 412},
    }
    if not ctx.scenario.omit_usage:
        answer["usage"] = _converse_usage(usage)
    return JsonReply(answer, headers=_headers(ctx))


def converse_stream(ctx: RequestContext) -> Reply:
    usage = ctx.usage(_converse_prompt(ctx))
    frames = [event("messageStart", {"role": "assistant", "p": _PADDING[:8]})]
    for piece in ctx.pieces():
        frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}, "p": "abcd"}))
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0, "p": _PADDING[:20]}))
    frames.append(event("messageStop", {"stopReason": ctx.scenario.finish_reason or "end_turn", "p": "ab"}))
    if not ctx.scenario.omit_usage:
        frames.append(event("metadata", {"usage": _converse_usage(usage), "metrics": {"latencyMs": 412},
                                         "p": _PADDING[:12]}))
    error = exception_event("modelStreamErrorException", ctx.scenario.error_message or "Model stream error")
    return StreamReply(frames, EVENT_STREAM, _headers(ctx), error)


# --- InvokeModel: the model families' own bodies ----------------------------------------------------


def _family(body: dict[str, Any]) -> str:
    if "anthropic_version" in body:
        return "anthropic"
    if "inferenceConfig" in body or "schemaVersion" in body:
        return "nova"
    if "inputText" in body:
        return "titan" if "textGenerationConfig" in body else "titan-embed"
    if "max_gen_len" in body:
        return "llama"
    if "message" in body:
        return "cohere"
    if "texts" in body:
        return "cohere-embed"
    return "mistral"


def _prompt_of(family: str, body: dict[str, Any]) -> Any:
    if family in ("anthropic", "nova"):
        return [body.get("system"), body.get("messages")]
    if family in ("titan", "titan-embed"):
        return body.get("inputText")
    if family == "cohere":
        return [body.get("chat_history"), body.get("message")]
    if family == "cohere-embed":
        return body.get("texts")
    return body.get("prompt")


def _anthropic_usage(u: ResolvedUsage, *, output_tokens: int | None = None) -> dict[str, Any]:
    return {"input_tokens": u.input_tokens, "cache_creation_input_tokens": u.cache_creation_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": u.output_tokens if output_tokens is None else output_tokens}


def _nova_usage(u: ResolvedUsage) -> dict[str, Any]:
    return {"inputTokens": u.input_tokens, "outputTokens": u.output_tokens,
            "totalTokens": u.input_tokens + u.output_tokens,
            "cacheReadInputTokenCount": u.cached_tokens, "cacheWriteInputTokenCount": u.cache_creation_tokens}


def _plain_body(family: str, ctx: RequestContext, usage: ResolvedUsage, model: str) -> dict[str, Any]:
    text, omit = ctx.text, ctx.scenario.omit_usage
    if family == "anthropic":
        message: dict[str, Any] = {"id": fake_id("msg_bdrk_01", ctx.request_number, length=22), "type": "message",
                   "role": "assistant", "model": model, "content": [{"type": "text", "text": text}],
                   "stop_reason": ctx.scenario.finish_reason or "end_turn", "stop_sequence": None}
        if not omit:
            message["usage"] = _anthropic_usage(usage)
        return message
    if family == "nova":
        answer: dict[str, Any] = {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                                  "stopReason": ctx.scenario.finish_reason or "end_turn"}
        if not omit:
            answer["usage"] = _nova_usage(usage)
        return answer
    if family == "titan":
        result = {"outputText": text, "completionReason": ctx.scenario.finish_reason or "FINISH"}
        if omit:
            return {"results": [result]}
        return {"inputTextTokenCount": usage.input_tokens, "results": [{"tokenCount": usage.output_tokens, **result}]}
    if family == "titan-embed":
        vector = fake_vector(str(ctx.json_body.get("inputText")), 8)
        return {"embedding": vector} if omit else {"embedding": vector, "inputTextTokenCount": usage.input_tokens}
    if family == "llama":
        answer = {"generation": text, "stop_reason": ctx.scenario.finish_reason or "stop"}
        if not omit:
            answer.update(prompt_token_count=usage.input_tokens, generation_token_count=usage.output_tokens)
        return answer
    if family == "cohere":  # Command R: no usage in the body, only in the headers
        return {"response_id": fake_id("", ctx.request_number, "cohere", length=32), "text": text,
                "generation_id": fake_id("", ctx.request_number, "gen", length=32), "chat_history": [],
                "finish_reason": ctx.scenario.finish_reason or "COMPLETE"}
    if family == "cohere-embed":
        texts = ctx.json_body.get("texts") or []
        return {"id": fake_id("", ctx.request_number, "embed", length=32), "response_type": "embeddings_floats",
                "texts": texts, "embeddings": [fake_vector(str(t), 8) for t in texts]}
    return {"outputs": [{"text": text, "stop_reason": ctx.scenario.finish_reason or "stop"}]}  # Mistral: headers only


def invoke(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    family = _family(body)
    usage = ctx.usage(ctx.prompt_tokens(_prompt_of(family, body)))
    if family in ("titan-embed", "cohere-embed"):
        usage = ResolvedUsage(usage.input_tokens, 0, 0, 0, 0, 0, 0)
    model = _vendor_model(_model_id(ctx))
    headers = _headers(ctx) if ctx.scenario.omit_usage else _token_headers(ctx, usage)
    return JsonReply(_plain_body(family, ctx, usage, model), headers=headers)


def _metrics(usage: ResolvedUsage) -> dict[str, Any]:
    metrics = {"inputTokenCount": usage.input_tokens, "outputTokenCount": usage.output_tokens,
               "invocationLatency": 412, "firstByteLatency": 120}
    if usage.cached_tokens:
        metrics["cacheReadInputTokenCount"] = usage.cached_tokens
    if usage.cache_creation_tokens:
        metrics["cacheWriteInputTokenCount"] = usage.cache_creation_tokens
    return metrics


def _anthropic_events(ctx: RequestContext, usage: ResolvedUsage, model: str) -> list[dict[str, Any]]:
    message: dict[str, Any] = {
        "id": fake_id("msg_bdrk_01", ctx.request_number, length=22), "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": _anthropic_usage(usage, output_tokens=1),
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
               for piece in ctx.pieces()]
    events.append({"type": "content_block_stop", "index": 0})
    if not ctx.scenario.omit_usage:
        events.append({"type": "message_delta", "delta": {"stop_reason": ctx.scenario.finish_reason or "end_turn",
                                                          "stop_sequence": None},
                       "usage": {"output_tokens": usage.output_tokens}})
    events.append({"type": "message_stop"})
    return events


def _nova_events(ctx: RequestContext, usage: ResolvedUsage, model: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    events += [{"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}} for piece in ctx.pieces()]
    events += [{"contentBlockStop": {"contentBlockIndex": 0}},
               {"messageStop": {"stopReason": ctx.scenario.finish_reason or "end_turn"}}]
    if not ctx.scenario.omit_usage:
        events.append({"metadata": {"usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens},
                                    "metrics": {}, "trace": {}}})
    return events


def _titan_events(ctx: RequestContext, usage: ResolvedUsage, model: str) -> list[dict[str, Any]]:
    pieces = ctx.pieces()
    events: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        chunk: dict[str, Any] = {"outputText": piece, "index": 0,
                                 "completionReason": (ctx.scenario.finish_reason or "FINISH") if last else None}
        if not ctx.scenario.omit_usage:
            chunk["totalOutputTextTokenCount"] = usage.output_tokens if last else None
            chunk["inputTextTokenCount"] = usage.input_tokens if index == 0 else None
        events.append(chunk)
    return events


def _llama_events(ctx: RequestContext, usage: ResolvedUsage, model: str) -> list[dict[str, Any]]:
    pieces = ctx.pieces()
    events: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        chunk: dict[str, Any] = {"generation": piece,
                                 "stop_reason": (ctx.scenario.finish_reason or "stop") if last else None}
        if not ctx.scenario.omit_usage:
            chunk["prompt_token_count"] = usage.input_tokens if index == 0 else None
            chunk["generation_token_count"] = usage.output_tokens if last else index + 1
        events.append(chunk)
    return events


def _mistral_events(ctx: RequestContext, usage: ResolvedUsage, model: str) -> list[dict[str, Any]]:
    pieces = ctx.pieces()
    return [{"outputs": [{"text": piece, "stop_reason": "stop" if i == len(pieces) - 1 else None}]}
            for i, piece in enumerate(pieces)]


_STREAM_EVENTS: dict[str, Callable[[RequestContext, ResolvedUsage, str], list[dict[str, Any]]]] = {
    "anthropic": _anthropic_events,
    "nova": _nova_events,
    "titan": _titan_events,
    "llama": _llama_events,
}


def invoke_stream(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    family = _family(body)
    usage = ctx.usage(ctx.prompt_tokens(_prompt_of(family, body)))
    events = _STREAM_EVENTS.get(family, _mistral_events)(ctx, usage, _vendor_model(_model_id(ctx)))
    if not ctx.scenario.omit_usage:  # Bedrock adds its own counts to the last chunk, whatever the family
        events[-1]["amazon-bedrock-invocationMetrics"] = _metrics(usage)
    frames = [event("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode(), "p": "abcd"})
              for e in events]
    error = exception_event("modelStreamErrorException", ctx.scenario.error_message or "Model stream error")
    headers = {"x-amzn-bedrock-content-type": "application/json", **_headers(ctx)}
    return StreamReply(frames, EVENT_STREAM, headers, error)


_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an error processing your request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    kind, message = _ERRORS.get(status, ("InternalServerException", f"Fake provider error {status}."))
    kind = ctx.scenario.error_type or kind
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    headers["x-amzn-errortype"] = f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return JsonReply({"message": ctx.scenario.error_message or message}, status=status, headers=headers)


_MODEL = r"(?:/.*?)?/model/(?P<model>[^/]+)"

ROUTES: list[Route] = [
    route("bedrock.converse", "POST", _MODEL + "/converse", converse, error),
    route("bedrock.converse_stream", "POST", _MODEL + "/converse-stream", converse_stream, error),
    route("bedrock.invoke", "POST", _MODEL + "/invoke", invoke, error),
    route("bedrock.invoke_stream", "POST", _MODEL + "/invoke-with-response-stream", invoke_stream, error),
]
