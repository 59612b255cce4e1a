"""Instrumentor for Amazon Bedrock through boto3: ``bedrock-runtime``'s Converse and InvokeModel APIs.

boto3 builds its client classes at run time, so there is no client method to patch ahead of time:
every operation of every AWS client goes through ``botocore.client.BaseClient._make_api_call``,
and that is wrapped (as OpenTelemetry's botocore instrumentation does, so a second wrapper there
is seen and we step aside). Calls to other services and other operations cost one attribute read.

What each API reports, in semconv terms (input counts cache reads and writes):

* ``Converse`` / ``ConverseStream``: ``usage`` (``inputTokens`` excludes ``cacheReadInputTokens``
  and ``cacheWriteInputTokens``, as Anthropic's does), in the answer or the stream's ``metadata``.
* ``InvokeModel``: the model family's own body (Anthropic messages, Amazon Nova and Titan, Meta
  Llama), read as the application reads it: the body stays the SDK's lazy ``StreamingBody`` and
  its raw stream is watched. Families whose bodies carry no usage (Mistral, Cohere) are counted
  from the ``x-amzn-bedrock-*-token-count`` headers Bedrock sends with every plain answer.
* ``InvokeModelWithResponseStream``: the family's stream events, else the
  ``amazon-bedrock-invocationMetrics`` Bedrock adds to the last chunk.

The model is priced as Bedrock names it (``modelId``: versioned ids, ``us.``/``eu.``/``apac.``/
``global.`` inference profiles, ARNs), never by the name inside an Anthropic body: the Bedrock id
says whether the call was regional or global, and a provisioned-throughput ARN is billed by the
hour, not per token (unpriced unless ``pricing.aliases`` maps it). The client's region goes on the
span as ``cloud.region``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.client  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)

from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._anthropic_format import EventObserver
from costspan.instrumentation._anthropic_format import usage_from as anthropic_usage
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation._streams import ChunkObserver, StreamedCall, StreamState, WatchedProxy, wrap_stream
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_at

SERVICE = "bedrock-runtime"
PROVIDER = "aws.bedrock"
RPC_METHOD = "rpc.method"
CLOUD_REGION = "cloud.region"
_METRICS = "amazon-bedrock-invocationMetrics"
_HEADER = "x-amzn-bedrock-{}-token-count"


def bedrock_usage(input_tokens: Any, output_tokens: Any, cache_read: Any = None, cache_write: Any = None) -> Usage:
    """Bedrock's own counts (Converse, Nova, invocation metrics, headers): input excludes the cache."""
    counts = {"i": input_tokens, "o": output_tokens, "r": cache_read, "w": cache_write}
    read, write = count(counts, "r"), count(counts, "w")
    return Usage(
        input_tokens=count(counts, "i") + read + write,
        output_tokens=count(counts, "o"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def converse_usage(raw: Any) -> Usage | None:
    if field(raw, "inputTokens") is None and field(raw, "outputTokens") is None:
        return None
    return bedrock_usage(
        field(raw, "inputTokens"), field(raw, "outputTokens"),
        field(raw, "cacheReadInputTokens"), field(raw, "cacheWriteInputTokens"),
    )


def _metrics_usage(metrics: Any) -> Usage | None:
    """``amazon-bedrock-invocationMetrics`` (last stream chunk) and Nova's body usage name them alike."""
    if field(metrics, "inputTokenCount") is None and field(metrics, "outputTokenCount") is None:
        return None
    return bedrock_usage(
        field(metrics, "inputTokenCount"), field(metrics, "outputTokenCount"),
        field(metrics, "cacheReadInputTokenCount"), field(metrics, "cacheWriteInputTokenCount"),
    )


def header_usage(headers: Mapping[str, str]) -> Usage | None:
    """The ``x-amzn-bedrock-*-token-count`` headers; a value that is no number reaches ``count()`` as is."""

    def get(kind: str) -> object:
        value = headers.get(_HEADER.format(kind))
        try:
            return None if value is None else int(value)
        except ValueError:
            return value

    if get("input") is None and get("output") is None:
        return None
    return bedrock_usage(get("input"), get("output"), get("cache-read-input"), get("cache-write-input"))


def _body_usage(body: Mapping[str, Any]) -> Usage | None:
    """Usage from an InvokeModel body, in whichever family's shape it comes; None when it has none."""
    usage = body.get("usage")
    if isinstance(usage, Mapping) and "input_tokens" in usage:  # Anthropic messages
        return anthropic_usage(usage)
    if isinstance(usage, Mapping) and "inputTokens" in usage:  # Amazon Nova
        nova = {"inputTokenCount": usage.get("inputTokens"), "outputTokenCount": usage.get("outputTokens"),
                "cacheReadInputTokenCount": usage.get("cacheReadInputTokenCount"),
                "cacheWriteInputTokenCount": usage.get("cacheWriteInputTokenCount")}
        return _metrics_usage(nova)
    if "inputTextTokenCount" in body:  # Amazon Titan text and embeddings
        results = body.get("results")
        output = sum(count(r, "tokenCount") for r in results) if isinstance(results, list) else 0
        return bedrock_usage(body.get("inputTextTokenCount"), output)
    if "prompt_token_count" in body or "generation_token_count" in body:  # Meta Llama
        return bedrock_usage(body.get("prompt_token_count"), body.get("generation_token_count"))
    return None


def _body_texts(body: Mapping[str, Any]) -> list[str]:
    """The answer's text in any family's body or stream chunk (for counting output when usage is missing)."""
    for key in ("generation", "outputText", "completion"):  # Llama, Titan stream, legacy Claude
        if isinstance(value := body.get(key), str):
            return [value]
    if isinstance(text := body.get("text"), str) and "generation_id" in body:  # Cohere Command R
        return [text]
    found: list[str] = []
    for key in ("content", "results", "outputs", "choices"):
        for item in body.get(key) or ():
            text = field(item, "text") or field(item, "outputText") or field(field(item, "message"), "content")
            if isinstance(text, str):
                found.append(text)
    message = field(field(body, "output"), "message")  # Nova
    found += [t for part in field(message, "content") or () if isinstance(t := field(part, "text"), str)]
    return found


def _finish_reason(body: Mapping[str, Any]) -> str | None:
    for key in ("stop_reason", "stopReason", "finish_reason", "completionReason"):
        if isinstance(value := body.get(key), str):
            return value
    for key in ("results", "outputs", "choices"):
        for item in body.get(key) or ():
            reason = field(item, "completionReason") or field(item, "stop_reason") or field(item, "finish_reason")
            if isinstance(reason, str):
                return reason
    return None


# --- requests -----------------------------------------------------------------------------------


def _invoke_body(params: Mapping[str, Any]) -> dict[str, Any]:
    body = params.get("body")
    if isinstance(body, (bytes, bytearray, str)):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}  # a file object is the SDK's to read


def _invoke_shape(body: Mapping[str, Any], model: str) -> tuple[str, Any, Any]:
    """(operation, prompt content, max output tokens) of an InvokeModel body, whatever its family."""
    if "embed" in model.lower() or "texts" in body or ("inputText" in body and "textGenerationConfig" not in body):
        return "embeddings", body.get("inputText", body.get("texts")), None
    if "messages" in body:  # Anthropic, Nova
        messages = body["messages"]
        if body.get("system") and isinstance(messages, list):
            messages = [{"role": "system", "content": body["system"]}, *messages]
        config = body.get("inferenceConfig")
        limit = body.get("max_tokens", field(config, "max_new_tokens") or field(config, "maxTokens"))
        return "chat", messages, limit
    if "message" in body:  # Cohere Command R
        return "chat", [*(body.get("chat_history") or []), {"role": "user", "content": body["message"]}], \
            body.get("max_tokens")
    config = body.get("textGenerationConfig")
    limit = body.get("max_gen_len", body.get("max_tokens", field(config, "maxTokenCount")))
    return "text_completion", body.get("prompt", body.get("inputText")), limit


def _converse_shape(params: Mapping[str, Any]) -> tuple[str, Any, Any]:
    messages = params.get("messages")
    system = params.get("system")
    if system and isinstance(messages, list):
        messages = [{"role": "system", "content": system}, *messages]
    return "chat", messages, field(params.get("inferenceConfig"), "maxTokens")


@dataclass(frozen=True)
class Api:
    stream: bool
    shape: Callable[[Mapping[str, Any], str], tuple[str, Any, Any]]


_APIS = {
    "Converse": Api(False, lambda params, model: _converse_shape(params)),
    "ConverseStream": Api(True, lambda params, model: _converse_shape(params)),
    "InvokeModel": Api(False, lambda params, model: _invoke_shape(_invoke_body(params), model)),
    "InvokeModelWithResponseStream": Api(True, lambda params, model: _invoke_shape(_invoke_body(params), model)),
}


def read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    """``_make_api_call(operation_name, api_params)`` of a ``bedrock-runtime`` client; None for all else."""
    meta = getattr(instance, "meta", None)
    if meta is None or meta.service_model.service_name != SERVICE:
        return None
    name = args[0] if args else kwargs.get("operation_name")
    api = _APIS.get(name) if isinstance(name, str) else None
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    if api is None or not isinstance(params, Mapping) or not isinstance(model := params.get("modelId"), str):
        return None
    operation, content, limit = api.shape(params, model)
    endpoint = endpoint_at(meta.endpoint_url, default=PROVIDER)
    request = Request(
        provider=endpoint.provider,
        operation=operation,
        model=model,
        stream=api.stream,
        messages=content if isinstance(content, (str, list, tuple)) else None,
        max_tokens=limit if isinstance(limit, int) else None,
        attributes={RPC_METHOD: name},
    ).sent_to(endpoint)
    if meta.region_name:
        request.attributes[CLOUD_REGION] = meta.region_name
    return request


# --- responses ----------------------------------------------------------------------------------


def converse_response(result: Any, request: Request) -> Response:
    message = field(field(result, "output"), "message")
    reason = field(result, "stopReason")
    return Response(
        finish_reasons=[str(reason)] if reason else (),
        usage=converse_usage(field(result, "usage")),
        output_texts=[t for part in field(message, "content") or () if isinstance(t := field(part, "text"), str)],
    )


class ConverseStreamObserver:
    """ConverseStream events (and Nova's InvokeModel stream chunks, which have the same shape):
    text deltas, ``messageStop`` with the stop reason, ``metadata`` with the usage."""

    __slots__ = ("_finish", "_tool_texts", "_usage", "texts")

    def __init__(self, request: Request | None = None) -> None:
        self.texts: list[str] = []
        self._tool_texts: list[str] = []
        self._finish: list[str] = []
        self._usage: Usage | None = None

    def observe(self, event: Any) -> None:
        if (delta := field(field(event, "contentBlockDelta"), "delta")) is not None:
            if text := field(delta, "text"):
                self.texts.append(text)
            elif tool_input := field(field(delta, "toolUse"), "input"):
                self._tool_texts.append(tool_input)
        elif (stop := field(event, "messageStop")) is not None:
            if reason := field(stop, "stopReason"):
                self._finish.append(str(reason))
        elif (metadata := field(event, "metadata")) is not None:
            self._usage = converse_usage(field(metadata, "usage"))

    def response(self) -> Response:
        return Response(
            finish_reasons=self._finish, usage=self._usage, output_texts=self.texts, tool_call_texts=self._tool_texts
        )


class InvokeStreamObserver:
    """InvokeModelWithResponseStream chunks: ``{"chunk": {"bytes": <the family's JSON event>}}``.

    Anthropic events go to the Anthropic reader, Nova's to the Converse one; Llama and Titan carry
    their counts on their chunks; every family's last chunk has Bedrock's invocation metrics, the
    fallback. Without any of them (a cut stream), the output is counted from the text received.
    """

    __slots__ = ("_anthropic", "_counts", "_finish", "_metrics", "_nova", "_texts")

    def __init__(self, request: Request) -> None:
        self._anthropic: EventObserver | None = None
        self._nova: ConverseStreamObserver | None = None
        self._counts: dict[str, Any] = {}
        self._metrics: Usage | None = None
        self._texts: list[str] = []
        self._finish: list[str] = []

    def observe(self, event: Any) -> None:
        data = field(field(event, "chunk"), "bytes")
        if not data:
            return
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            return
        if (metrics := chunk.get(_METRICS)) is not None:
            self._metrics = _metrics_usage(metrics)
        if "type" in chunk:
            self._anthropic = self._anthropic or EventObserver(Request(PROVIDER, "chat", ""))
            self._anthropic.observe(chunk)
        elif chunk.keys() & {"messageStart", "contentBlockDelta", "messageStop", "metadata"}:
            self._nova = self._nova or ConverseStreamObserver()
            self._nova.observe(chunk)
        else:
            self._texts += _body_texts(chunk)
            for key in ("inputTextTokenCount", "prompt_token_count", "totalOutputTextTokenCount",
                        "generation_token_count"):
                if chunk.get(key) is not None:
                    self._counts[key] = chunk[key]
            if reason := _finish_reason(chunk):
                self._finish.append(reason)

    def response(self) -> Response:
        inner = self._anthropic or self._nova
        if inner is not None:
            response = inner.response()
            if response.usage is None or response.estimate_output:
                response.usage = self._metrics or response.usage
                response.estimate_output = response.estimate_output and self._metrics is None
            response.model = None  # priced by the Bedrock id, not the name inside the body
            return response
        counts = self._counts
        usage = None
        if counts.keys() & {"inputTextTokenCount", "prompt_token_count"}:
            usage = bedrock_usage(
                counts.get("inputTextTokenCount", counts.get("prompt_token_count")),
                counts.get("totalOutputTextTokenCount", counts.get("generation_token_count")),
            )
        if usage is None or not counts.keys() & {"totalOutputTextTokenCount", "generation_token_count"}:
            usage = self._metrics or usage
        estimate = usage is not None and self._metrics is None and usage.output_tokens == 0 and bool(self._texts)
        return Response(finish_reasons=self._finish, usage=usage, output_texts=self._texts, estimate_output=estimate)


class InvokeBodyObserver:
    """InvokeModel's body, as the application reads it: the bytes, then the family's JSON, then the headers."""

    __slots__ = ("_data", "headers")

    def __init__(self, request: Request) -> None:
        self._data = bytearray()
        self.headers: Mapping[str, str] = {}

    def observe(self, data: Any) -> None:
        if data:
            self._data += data

    def response(self) -> Response:
        try:
            body = json.loads(self._data) if self._data else None
        except ValueError:
            body = None  # read in part: the headers still have the counts
        if not isinstance(body, dict):
            return Response(usage=header_usage(self.headers))
        reason = _finish_reason(body)
        return Response(
            response_id=body.get("id") if isinstance(body.get("id"), str) else None,
            finish_reasons=[reason] if reason else (),
            usage=_body_usage(body) or header_usage(self.headers),
            output_texts=_body_texts(body),
        )


class _RawBody(WatchedProxy):
    """The urllib3 response under InvokeModel's ``StreamingBody``: every way of reading the body
    (``read()``, ``iter_chunks()``, ``iter_lines()``) reads it here, so the application keeps the
    SDK's own body object. The call ends at the end of the body, on ``close()``, or when dropped."""

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> Any:
        try:
            data = self.__wrapped__.read(amt, *args, **kwargs)
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        try:
            self._self_state.observer.observe(data)
        except Exception:
            self._self_state.log_error("response body")
        if amt is None or not data:
            self._self_state.finish()
        return data



def proxy_result(
    result: Any, call: StreamedCall, observer: ChunkObserver, log_error: Callable[[str], None], *, is_async: bool
) -> Any:
    """The SDK's own response dict, with its stream (or the body's raw stream) watched in place."""
    if "stream" in result:  # ConverseStream
        result["stream"] = wrap_stream(result["stream"], call, observer, log_error, is_async=is_async)
    elif isinstance(observer, InvokeBodyObserver):
        observer.headers = field(field(result, "ResponseMetadata"), "HTTPHeaders") or {}
        body = result["body"]
        body._raw_stream = _RawBody(body._raw_stream, StreamState(call, observer, log_error))
    else:  # InvokeModelWithResponseStream
        result["body"] = wrap_stream(result["body"], call, observer, log_error, is_async=is_async)
    return result


def _observer(request: Request) -> ChunkObserver:
    method = request.attributes.get(RPC_METHOD)
    if method == "ConverseStream":
        return ConverseStreamObserver(request)
    if method == "InvokeModelWithResponseStream":
        return InvokeStreamObserver(request)
    return InvokeBodyObserver(request)


_OPERATION = Operation(
    read_request,
    converse_response,
    _observer,
    is_stream=lambda result, request: request.attributes.get(RPC_METHOD) != "Converse",
    proxy_stream=proxy_result,
)

METHODS: tuple[MethodSpec, ...] = (MethodSpec("botocore.client", "BaseClient", "_make_api_call", _OPERATION),)


class BedrockInstrumentor(ClientInstrumentor):
    """``costspan_bedrock``: Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream (boto3)."""

    instruments = package.BEDROCK
    methods = METHODS
