"""Gemini wire format, for both backends of ``google-genai``: the Gemini Developer API and Vertex AI.

Paths the SDK (google-genai 3.4) sends, found by pointing it at a recording server:

* Developer API, ``genai.Client(api_key="x", http_options=HttpOptions(base_url=url))``:
  ``POST /v1/models/{model}:generateContent`` (``/v1beta/...`` with ``api_version="v1beta"``),
  ``:streamGenerateContent?alt=sse``, ``:batchEmbedContents`` (``embed_content`` always uses the
  batch endpoint here), ``:countTokens``. The key arrives in ``x-goog-api-key``.
* Vertex AI, express mode (API key, no project):
  ``genai.Client(vertexai=True, api_key="x", http_options=HttpOptions(base_url=url))`` ->
  ``POST /v1beta1/publishers/google/models/{model}:generateContent`` etc.
* Vertex AI with project and location, offline: pass ready-made OAuth credentials so the SDK never
  looks for ADC or refreshes a token::

      import google.oauth2.credentials
      genai.Client(vertexai=True, project="p", location="us-central1",
                   credentials=google.oauth2.credentials.Credentials(token="fake-token"),
                   http_options=HttpOptions(base_url=url))

  -> ``POST /v1beta1/projects/p/locations/us-central1/publishers/google/models/{model}:generateContent``
  with ``Authorization: Bearer fake-token`` (a token without expiry counts as valid).
* On Vertex, ``embed_content`` uses ``:batchEmbedContents`` for ``gemini-embedding-*`` models and
  ``:predict`` (``instances``/``predictions``) for the older ``text-embedding-*`` models.

``usageMetadata`` follows the REST API: ``promptTokenCount`` (includes cached),
``candidatesTokenCount`` (excludes thoughts), ``thoughtsTokenCount``, ``cachedContentTokenCount``,
``totalTokenCount`` = prompt + candidates + thoughts. Streams send ``usageMetadata`` on every chunk
(the last one complete), as Gemini does.
"""

from __future__ import annotations

import json
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
    route,
    sse,
)

_MODEL_PATH = (
    r"(?:/.*?)?/(?P<version>v1|v1beta|v1beta1|v1alpha)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?P<publisher>publishers/google/)?models/(?P<model>[^/:]+):"
)


def _is_vertex(ctx: RequestContext) -> bool:
    return bool(ctx.params.get("publisher"))


def _usage_metadata(ctx: RequestContext, u: ResolvedUsage, *, final: bool = True) -> dict[str, Any]:
    candidates = u.output_tokens if final else 0
    meta: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "totalTokenCount": u.input_tokens + candidates + u.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input_tokens}],
    }
    if final:
        meta["candidatesTokenCount"] = candidates
    if u.reasoning_tokens:
        meta["thoughtsTokenCount"] = u.reasoning_tokens
    if u.cached_tokens:
        meta["cachedContentTokenCount"] = u.cached_tokens
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached_tokens}]
    if _is_vertex(ctx):
        meta["trafficType"] = ctx.scenario.service_tier or "ON_DEMAND"
    return meta


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-goog-request-id": fake_id("", ctx.request_number, "gemini", length=16)}
    headers.update(ctx.scenario.headers)
    return headers


def _envelope(ctx: RequestContext, model: str, response_id: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"modelVersion": model, "responseId": response_id}
    if _is_vertex(ctx):
        extra["createTime"] = "2025-01-01T00:00:00.000000Z"
    return extra


def _generate(ctx: RequestContext, stream: bool) -> Reply:
    body = ctx.json_body
    model = ctx.response_model(ctx.params["model"])
    usage = ctx.usage(ctx.prompt_tokens([body.get("systemInstruction"), body.get("contents")], overhead=0))
    response_id = fake_id("", ctx.request_number, "gemini", length=22)
    finish = ctx.scenario.finish_reason or "STOP"
    omit = ctx.scenario.omit_usage

    def candidate(text: str, done: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if done:
            cand["finishReason"] = finish
        return cand

    if not stream:
        answer: dict[str, Any] = {"candidates": [candidate(ctx.text, True)]}
        if not omit:
            answer["usageMetadata"] = _usage_metadata(ctx, usage)
        answer.update(_envelope(ctx, model, response_id))
        return JsonReply(answer, headers=_headers(ctx))

    pieces = ctx.pieces()
    frames = []
    for number, piece in enumerate(pieces):
        last = number == len(pieces) - 1
        chunk: dict[str, Any] = {"candidates": [candidate(piece, last)]}
        if not omit:
            chunk["usageMetadata"] = _usage_metadata(ctx, usage, final=last)
        chunk.update(_envelope(ctx, model, response_id))
        frames.append(sse(chunk))
    return StreamReply(frames, "text/event-stream", _headers(ctx), sse(_error_body(ctx, 503)))


def generate_content(ctx: RequestContext) -> Reply:
    return _generate(ctx, stream=False)


def stream_generate_content(ctx: RequestContext) -> Reply:
    """SSE with ``?alt=sse`` (what the SDK sends); without it the REST API answers one JSON array."""
    reply = _generate(ctx, stream=True)
    if ctx.query.get("alt") == "sse" or not isinstance(reply, StreamReply):
        return reply
    chunks = [json.loads(frame.decode()[len("data: "):]) for frame in reply.frames]
    return JsonReply(chunks, headers=reply.headers)


def _content_text(content: Any) -> str:
    return " ".join(p.get("text", "") for p in (content or {}).get("parts", []) if isinstance(p, dict))


def batch_embed_contents(ctx: RequestContext) -> Reply:
    requests = ctx.json_body.get("requests") or []
    embeddings = []
    total = 0
    for request in requests:
        text = _content_text(request.get("content"))
        dims = request.get("outputDimensionality") or 8
        tokens = count_tokens(text)
        total += tokens
        item: dict[str, Any] = {"values": fake_vector(text, dims)}
        if _is_vertex(ctx):
            item["statistics"] = {"tokenCount": tokens, "truncated": False}
        embeddings.append(item)
    usage = ctx.usage(total)
    answer: dict[str, Any] = {"embeddings": embeddings}
    if not ctx.scenario.omit_usage:
        answer["usageMetadata"] = {"promptTokenCount": usage.input_tokens, "totalTokenCount": usage.input_tokens}
    return JsonReply(answer, headers=_headers(ctx))


def embed_content(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    text = _content_text(body.get("content"))
    usage = ctx.usage(count_tokens(text))
    answer: dict[str, Any] = {"embedding": {"values": fake_vector(text, body.get("outputDimensionality") or 8)}}
    if not ctx.scenario.omit_usage:
        answer["usageMetadata"] = {"promptTokenCount": usage.input_tokens, "totalTokenCount": usage.input_tokens}
    return JsonReply(answer, headers=_headers(ctx))


def predict(ctx: RequestContext) -> Reply:
    """Vertex ``:predict`` for ``text-embedding-*`` models (``instances`` in, ``predictions`` out)."""
    body = ctx.json_body
    dims = (body.get("parameters") or {}).get("outputDimensionality") or 8
    predictions = []
    chars = 0
    for instance in body.get("instances") or []:
        text = str(instance.get("content", ""))
        chars += len(text)
        predictions.append({"embeddings": {"values": fake_vector(text, dims),
                                           "statistics": {"token_count": count_tokens(text), "truncated": False}}})
    return JsonReply({"predictions": predictions, "metadata": {"billableCharacterCount": chars}},
                     headers=_headers(ctx))


def count_tokens_route(ctx: RequestContext) -> Reply:
    body = ctx.json_body
    return JsonReply({"totalTokens": ctx.prompt_tokens(body.get("contents"), overhead=0)}, headers=_headers(ctx))


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    404: "models/{model} is not found for API version v1beta, or is not supported for generateContent.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}


def _error_body(ctx: RequestContext, status: int) -> dict[str, Any]:
    scenario = ctx.scenario
    error: dict[str, Any] = {
        "code": status,
        "message": scenario.error_message or _MESSAGES.get(status, f"Fake provider error {status}.").format(
            model=ctx.params.get("model")),
        "status": scenario.error_type or _STATUS.get(status, "UNKNOWN"),
    }
    if status == 429 and scenario.retry_after is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": f"{int(scenario.retry_after)}s"}]
    return {"error": error}


def error(ctx: RequestContext, status: int) -> JsonReply:
    headers = _headers(ctx)
    headers.update(error_headers(ctx))
    return JsonReply(_error_body(ctx, status), status=status, headers=headers)


ROUTES: list[Route] = [
    route("gemini.generate_content", "POST", _MODEL_PATH + "generateContent", generate_content, error),
    route("gemini.stream_generate_content", "POST", _MODEL_PATH + "streamGenerateContent", stream_generate_content,
          error),
    route("gemini.batch_embed_contents", "POST", _MODEL_PATH + "batchEmbedContents", batch_embed_contents, error),
    route("gemini.embed_content", "POST", _MODEL_PATH + "embedContent", embed_content, error),
    route("gemini.predict", "POST", _MODEL_PATH + "predict", predict, error),
    route("gemini.count_tokens", "POST", _MODEL_PATH + "countTokens", count_tokens_route, error),
]
