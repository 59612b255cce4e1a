"""OpenAI wire format, and its dialects: Azure OpenAI, Groq, and OpenAI-compatible servers (Ollama's ``/v1``).

Routes match on the path *suffix* (``.../chat/completions``), so any base path works; the prefix
picks the dialect:

* ``/openai/deployments/{deployment}/...`` (``?api-version=``) -> Azure OpenAI: the model comes
  from the deployment when the body has none; answers carry ``prompt_filter_results`` /
  ``content_filter_results`` and streams start with Azure's empty-choices filter chunk.
* ``/openai/v1/...`` -> Groq (the Groq SDK's own path, and what an OpenAI client pointed at
  ``https://api.groq.com/openai/v1`` sends): streams carry ``x_groq.id`` on the first chunk and
  ``x_groq.usage`` on the last content chunk; usage has Groq's timing fields. The same path with an
  ``api-key`` header is Azure's v1 API, answered as plain OpenAI.
* anything else (``/v1/...``) -> OpenAI.

Field names follow the types in ``openai`` 3.x and ``groq`` 1.x (``openai/types/chat``,
``openai/types/responses``, ``openai/types/images_response.py``).
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
    count_tokens,
    error_headers,
    fake_id,
    fake_vector,
    floats_to_base64,
    route,
    sse,
)

_PREFIX = r"(?P<prefix>(?:/.*?)?)"


def _dialect(ctx: RequestContext) -> str:
    prefix = ctx.params.get("prefix", "")
    if "/openai/deployments/" in prefix:
        return "azure"
    if prefix.endswith("/openai/v1") or prefix == "/openai/v1":
        return "openai" if "api-key" in ctx.headers else "groq"
    return "openai"


def _requested_model(ctx: RequestContext) -> str:
    model = ctx.json_body.get("model")
    if isinstance(model, str) and model:
        return model
    prefix = ctx.params.get("prefix", "")
    if "/openai/deployments/" in prefix:
        return prefix.rsplit("/openai/deployments/", 1)[1].split("/")[0]
    return "unknown-model"


def _common_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": fake_id("req_", ctx.request_number, "openai"), "openai-processing-ms": "42"}
    headers.update(ctx.scenario.headers)
    return headers


def _service_tier(ctx: RequestContext, dialect: str) -> str | None:
    if ctx.scenario.service_tier is not None:
        return ctx.scenario.service_tier
    if dialect == "groq":
        return "on_demand"
    requested = ctx.json_body.get("service_tier")
    return requested if isinstance(requested, str) and requested != "auto" else "default"


def _chat_usage(u: ResolvedUsage, dialect: str) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    }
    if dialect == "groq":
        usage.update(queue_time=0.012, prompt_time=0.004, completion_time=0.021, total_time=0.025)
        if u.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
        if u.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
        return usage
    prompt_details: dict[str, Any] = {"cached_tokens": u.cached_tokens, "audio_tokens": 0}
    if u.cache_creation_tokens:
        prompt_details["cache_write_tokens"] = u.cache_creation_tokens
    usage["prompt_tokens_details"] = prompt_details
    usage["completion_tokens_details"] = {
        "reasoning_tokens": u.reasoning_tokens,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    return usage


_AZURE_FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def _stream_error_frame(ctx: RequestContext) -> bytes:
    message = ctx.scenario.error_message or "The server had an error while processing your request."
    return sse({"error": {"message": message, "type": ctx.scenario.error_type or "server_error", "param": None,
                          "code": ctx.scenario.error_code}})


def _finish(ctx: RequestContext) -> str:
    return ctx.scenario.finish_reason or ("tool_calls" if ctx.scenario.tool_calls else "stop")


def _tool_call_id(ctx: RequestContext, index: int) -> str:
    return fake_id("call_", ctx.request_number, index)


def _json_pieces(arguments: str, size: int = 7) -> list[str]:
    """Arguments arrive a few characters at a time, split anywhere (inside keys and strings too)."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


# --- chat completions -------------------------------------------------------------------------


def chat_completions(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    dialect = _dialect(ctx)
    model = ctx.response_model(_requested_model(ctx))
    # Tool definitions and a JSON schema response format are part of the billed prompt.
    prompt = [body.get("messages"), body.get("tools"), body.get("functions"), body.get("response_format")]
    usage = ctx.usage(ctx.prompt_tokens(prompt), output_includes_reasoning=True)
    completion_id = fake_id("chatcmpl-", ctx.request_number, "chat", length=29)
    created = int(ctx.now)
    fingerprint = "fp_" + fake_id("", model, length=10)
    tier = _service_tier(ctx, dialect)
    headers = _common_headers(ctx)

    calls = ctx.scenario.tool_calls
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": ctx.text or (None if calls else ""),
                                   "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = [
                {"id": _tool_call_id(ctx, i), "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for i, c in enumerate(calls)
            ]
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(ctx)}
        answer: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "service_tier": tier,
            "system_fingerprint": fingerprint,
        }
        if not ctx.scenario.omit_usage:
            answer["usage"] = _chat_usage(usage, dialect)
        if dialect == "azure":
            choice["content_filter_results"] = _AZURE_FILTER
            answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _AZURE_FILTER}]
        if dialect == "groq":
            answer["x_groq"] = {"id": fake_id("req_", ctx.request_number, "groq", length=26)}
        return JsonReply(answer, headers=headers)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": tier,
            "system_fingerprint": fingerprint,
            "choices": choices,
        }
        if include_usage and dialect != "groq":
            data["usage"] = None
        data.update(extra)
        return data

    def streamed(delta: dict[str, Any], finish_reason: str | None = None, filtered: bool = True) -> dict[str, Any]:
        """One streamed choice; Azure adds its content filter's verdict to every one (empty on the first)."""
        data: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if dialect == "azure":
            data["content_filter_results"] = _AZURE_FILTER if filtered else {}
        return data

    frames: list[bytes] = []
    if dialect == "azure":
        frames.append(sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _AZURE_FILTER}]}))
    first_delta = {"role": "assistant", "content": None if calls and not ctx.text else "", "refusal": None}
    groq_id = fake_id("req_", ctx.request_number, "groq", length=26)
    first_extra = {"x_groq": {"id": groq_id}} if dialect == "groq" else {}
    frames.append(sse(chunk([streamed(first_delta, filtered=False)], **first_extra)))
    for piece in ctx.pieces() if ctx.text else ():
        frames.append(sse(chunk([streamed({"content": piece})])))
    for index, call in enumerate(calls):
        # The first delta of a call names it (arguments empty); its arguments follow in pieces.
        head = {"index": index, "id": _tool_call_id(ctx, index), "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        frames.append(sse(chunk([streamed({"tool_calls": [head]})])))
        for piece in _json_pieces(call.arguments):
            frames.append(sse(chunk([streamed({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})])))
    last_extra: dict[str, Any] = {}
    if dialect == "groq" and not ctx.scenario.omit_usage:
        last_extra["x_groq"] = {"id": groq_id, "usage": _chat_usage(usage, dialect)}
    frames.append(sse(chunk([streamed({}, _finish(ctx))], **last_extra)))
    if include_usage and not ctx.scenario.omit_usage:
        frames.append(sse(chunk([], usage=_chat_usage(usage, dialect))))
    frames.append(sse("[DONE]"))
    return StreamReply(frames, "text/event-stream; charset=utf-8", headers, _stream_error_frame(ctx))


# --- legacy completions -----------------------------------------------------------------------


def completions(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(_requested_model(ctx))
    usage = ctx.usage(ctx.prompt_tokens(body.get("prompt"), overhead=0), output_includes_reasoning=True)
    completion_id = fake_id("cmpl-", ctx.request_number, "completion", length=29)
    created = int(ctx.now)
    legacy_usage = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    base = {"id": completion_id, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": None}
    if not body.get("stream"):
        answer = dict(base, choices=[{"text": ctx.text, "index": 0, "logprobs": None, "finish_reason": _finish(ctx)}])
        if not ctx.scenario.omit_usage:
            answer["usage"] = legacy_usage
        return JsonReply(answer, headers=_common_headers(ctx))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    frames = [
        sse(dict(base, choices=[{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]))
        for piece in ctx.pieces()
    ]
    frames.append(sse(dict(base, choices=[{"text": "", "index": 0, "logprobs": None, "finish_reason": _finish(ctx)}])))
    if include_usage and not ctx.scenario.omit_usage:
        frames.append(sse(dict(base, choices=[], usage=legacy_usage)))
    frames.append(sse("[DONE]"))
    return StreamReply(frames, "text/event-stream; charset=utf-8", _common_headers(ctx), _stream_error_frame(ctx))


# --- embeddings -------------------------------------------------------------------------------


def _embedding_inputs(raw: Any) -> list[str]:
    """``input`` may be a string, a list of strings, a token list or a list of token lists."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [" ".join(map(str, raw))]
    if isinstance(raw, list):
        return [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
    return [""]


def embeddings(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(_requested_model(ctx))
    inputs = _embedding_inputs(body.get("input"))
    requested_dims = body.get("dimensions")
    dims = requested_dims if isinstance(requested_dims, int) else 8
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = fake_vector(text, dims)
        data.append({"object": "embedding", "index": index,
                     "embedding": floats_to_base64(vector) if as_base64 else vector})
    usage = ctx.usage(sum(count_tokens(t) for t in inputs))
    answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not ctx.scenario.omit_usage:
        answer["usage"] = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
    return JsonReply(answer, headers=_common_headers(ctx))


# --- responses --------------------------------------------------------------------------------


def _responses_usage(u: ResolvedUsage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def responses(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(_requested_model(ctx))
    prompt = [body.get("instructions"), body.get("input")]
    usage = ctx.usage(ctx.prompt_tokens(prompt), output_includes_reasoning=True)
    response_id = fake_id("resp_", ctx.request_number, "responses", length=48)
    message_id = fake_id("msg_", ctx.request_number, "responses-msg", length=48)
    tier = _service_tier(ctx, "openai")

    def output_text(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def message(status: str, text: str | None) -> dict[str, Any]:
        content = [output_text(text)] if text is not None else []
        return {"id": message_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def response_obj(status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(ctx.now),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": tier,
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": _responses_usage(usage) if with_usage else None,
            "user": None,
            "metadata": {},
        }

    headers = _common_headers(ctx)
    if not body.get("stream"):
        final = response_obj("completed", [message("completed", ctx.text)], not ctx.scenario.omit_usage)
        return JsonReply(final, headers=headers)

    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_obj("in_progress", [], False)},
        {"type": "response.in_progress", "response": response_obj("in_progress", [], False)},
        {"type": "response.output_item.added", "output_index": 0, "item": message("in_progress", None)},
        {"type": "response.content_part.added", "item_id": message_id, "output_index": 0, "content_index": 0,
         "part": output_text("")},
    ]
    for piece in ctx.pieces():
        events.append({"type": "response.output_text.delta", "item_id": message_id, "output_index": 0,
                       "content_index": 0, "delta": piece, "logprobs": []})
    events += [
        {"type": "response.output_text.done", "item_id": message_id, "output_index": 0, "content_index": 0,
         "text": ctx.text, "logprobs": []},
        {"type": "response.content_part.done", "item_id": message_id, "output_index": 0, "content_index": 0,
         "part": output_text(ctx.text)},
        {"type": "response.output_item.done", "output_index": 0, "item": message("completed", ctx.text)},
        {"type": "response.completed",
         "response": response_obj("completed", [message("completed", ctx.text)], not ctx.scenario.omit_usage)},
    ]
    frames = []
    for number, event in enumerate(events):
        event["sequence_number"] = number
        frames.append(sse(event, event=event["type"]))
    error = {"type": "error", "code": ctx.scenario.error_code or "server_error",
             "message": ctx.scenario.error_message or "The server had an error while processing your request.",
             "param": None, "sequence_number": len(events)}
    return StreamReply(frames, "text/event-stream; charset=utf-8", headers, sse(error, event="error"))


# --- images -----------------------------------------------------------------------------------

# Output tokens OpenAI bills per gpt-image-1 image (square sizes; other sizes are close enough here).
_IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}
# A 1x1 transparent PNG: a real image so clients that decode it succeed.
_PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def image_generations(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    requested = _requested_model(ctx) if body.get("model") else "dall-e-2"
    gpt_image = requested.startswith("gpt-image") or requested.startswith("chatgpt-image")
    requested_n = body.get("n")
    n = requested_n if isinstance(requested_n, int) else 1
    quality = body.get("quality") or "auto"
    wants_url = not gpt_image and body.get("response_format", "url") == "url"
    data = []
    for index in range(n):
        item: dict[str, Any] = {"revised_prompt": body.get("prompt")} if requested == "dall-e-3" else {}
        if wants_url:
            item["url"] = f"https://fake-images.invalid/{fake_id('img_', ctx.request_number, index)}.png"
        else:
            item["b64_json"] = _PNG_1X1
        data.append(item)
    answer: dict[str, Any] = {"created": int(ctx.now), "data": data}
    if gpt_image:
        per_image = _IMAGE_OUTPUT_TOKENS.get(str(quality), 1056)
        u = ctx.scenario.usage
        usage = ctx.usage(ctx.prompt_tokens(body.get("prompt"), overhead=0))
        output = u.output_tokens if u and u.output_tokens is not None else per_image * n
        answer.update(background="opaque", output_format="png", quality=quality if quality != "auto" else "medium",
                      size=body.get("size") or "1024x1024")
        if not ctx.scenario.omit_usage:
            answer["usage"] = {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"text_tokens": usage.input_tokens, "image_tokens": 0},
                "output_tokens": output,
                "total_tokens": usage.input_tokens + output,
            }
    return JsonReply(answer, headers=_common_headers(ctx))


# --- errors -----------------------------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request: the fake provider was told to reject it."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported."),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1. "
          "Please try again in 20s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded, please try again later."),
}


def error(ctx: RequestContext, status: int) -> JsonReply:
    kind, code, message = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None,
                                               f"Fake provider error {status}."))
    scenario = ctx.scenario
    body = {"error": {
        "message": scenario.error_message or message.format(model=_requested_model(ctx)),
        "type": scenario.error_type or kind,
        "param": None,
        "code": scenario.error_code if scenario.error_code is not None else code,
    }}
    headers = _common_headers(ctx)
    headers.update(error_headers(ctx))
    if status == 429:
        headers.setdefault("x-ratelimit-limit-requests", "3")
        headers.setdefault("x-ratelimit-remaining-requests", "0")
        headers.setdefault("x-ratelimit-reset-requests", "20s")
    return JsonReply(body, status=status, headers=headers)


def _prefixed(suffix: str) -> str:
    return _PREFIX + suffix


ROUTES: list[Route] = [
    route("openai.chat.completions", "POST", _prefixed("/chat/completions"), chat_completions, error),
    route("openai.completions", "POST", _prefixed("/completions"), completions, error),
    route("openai.embeddings", "POST", _prefixed("/embeddings"), embeddings, error),
    route("openai.responses", "POST", _prefixed("/responses"), responses, error),
    route("openai.images.generations", "POST", _prefixed("/images/generations"), image_generations, error),
]
