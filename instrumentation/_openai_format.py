"""Reading OpenAI's wire format: shared by the openai and groq SDKs and every OpenAI-compatible server.

Works on the SDKs' pydantic objects and on plain dicts alike (extras such as Groq's ``x_groq``
arrive as dicts), so one reader serves both client libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from costspan import attribute_names as A
from costspan.facts import Usage, as_count
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation.endpoints import endpoint_of


def usage_from(raw: Any) -> Usage | None:
    """Chat/completions (prompt_tokens...) and Responses/images (input_tokens...) usage shapes.

    OpenAI's prompt tokens already include cached ones and completion tokens include reasoning:
    exactly the semconv semantics, so nothing is added.
    """
    if raw is None:
        return None
    input_tokens = field(raw, "prompt_tokens")
    chat_shape = input_tokens is not None
    if not chat_shape:
        input_tokens = field(raw, "input_tokens")
    output_tokens = field(raw, "completion_tokens")
    if output_tokens is None:
        output_tokens = field(raw, "output_tokens")
    if input_tokens is None and output_tokens is None:
        return None
    # The details of the shape the counts came in, asked for alone: asking an SDK's pydantic model
    # for a name it lacks raises and catches an AttributeError inside pydantic, several microseconds.
    if chat_shape:
        input_details, output_details = field(raw, "prompt_tokens_details"), field(raw, "completion_tokens_details")
    else:
        input_details, output_details = field(raw, "input_tokens_details"), field(raw, "output_tokens_details")
    return Usage(
        input_tokens=as_count(input_tokens),
        output_tokens=as_count(output_tokens),
        cache_read_tokens=count(input_details, "cached_tokens"),
        reasoning_tokens=count(output_details, "reasoning_tokens"),
    )


def finish_reasons(choices: Any) -> list[str]:
    return [str(reason) for c in choices or () if (reason := field(c, "finish_reason"))]


def chat_response(result: Any, request: Request) -> Response:
    choices = field(result, "choices") or ()
    texts: list[str] = []
    for choice in choices:  # a loop, not a comprehension frame: this runs on every chat answer
        content = field(field(choice, "message"), "content")
        if isinstance(content, str):
            texts.append(content)
    usage = usage_from(field(result, "usage")) or usage_from(field(field(result, "x_groq"), "usage"))
    return Response(
        model=field(result, "model"),
        response_id=field(result, "id"),
        finish_reasons=finish_reasons(choices),
        usage=usage,
        service_tier=field(result, "service_tier"),
        output_texts=texts,
    )


def completion_response(result: Any, request: Request) -> Response:
    choices = field(result, "choices") or ()
    return Response(
        model=field(result, "model"),
        response_id=field(result, "id"),
        finish_reasons=finish_reasons(choices),
        usage=usage_from(field(result, "usage")),
        output_texts=[t for c in choices if isinstance(t := field(c, "text"), str)],
    )


def embedding_response(result: Any, request: Request) -> Response:
    usage = usage_from(field(result, "usage"))
    return Response(model=field(result, "model"), usage=usage, output_texts=[])


class ChatChunkObserver:
    """Chat and legacy completion chunks.

    The text is kept even when the usage was asked for (``include_usage``, or Groq's ``x_groq``): the
    usage arrives in the last chunk, which a stream the application leaves early never reaches, yet
    the model generated what arrived. Its output is then counted from that text, as for Anthropic,
    Gemini and Ollama, instead of being taken as zero.
    """

    __slots__ = ("_calls", "_finish", "_groq", "_id", "_model", "_texts", "_tier", "_tool_texts", "_usage")

    def __init__(self, request: Request) -> None:
        self._groq = request.provider == "groq"
        """Only Groq's chunks carry ``x_groq``; asking an OpenAI chunk for it costs a pydantic
        ``AttributeError`` per chunk."""
        self._texts: list[str] = []
        self._tool_texts: list[str] = []
        self._calls: set[tuple[int, int]] = set()
        """(choice index, tool call index) of every call seen: its name comes once, its arguments in pieces."""
        self._finish: list[str] = []
        self._usage: Any = None
        self._model: str | None = None
        self._id: str | None = None
        self._tier: str | None = None

    def observe(self, chunk: Any) -> None:
        # The first non-empty id and model: Azure's first chunk (its prompt filter results) has
        # ``"id": ""`` and ``"model": ""``, and the deployment name is not the model that answered.
        if not self._id:
            self._id = field(chunk, "id") or None
        if not self._model:
            self._model = field(chunk, "model") or None
        choices = field(chunk, "choices")
        if choices:
            for choice in choices:
                delta = field(choice, "delta")
                text = field(delta, "content") if delta is not None else field(choice, "text")
                if text:
                    self._texts.append(text)
                if delta is not None:
                    calls, legacy = field(delta, "tool_calls"), field(delta, "function_call")
                    if calls or legacy is not None:
                        self._observe_calls(field(choice, "index") or 0, calls, legacy)
                reason = field(choice, "finish_reason")
                if reason:
                    self._finish.append(str(reason))
        usage = field(chunk, "usage")
        if usage is None and self._groq:
            usage = field(field(chunk, "x_groq"), "usage")
        if usage is not None:
            self._usage = usage
            self._tier = field(chunk, "service_tier")

    def _observe_calls(self, choice: int, calls: Any, legacy: Any) -> None:
        """Tool-call deltas (and the legacy ``function_call``): billed output that is not ``content``.
        Asked only of the chunks that carry one, so a text chunk costs no more than its reading."""
        pieces = [(field(call, "index") or 0, field(call, "function")) for call in calls or ()]
        if legacy is not None:
            pieces.append((-1, legacy))
        for index, function in pieces:
            if function is None:
                continue
            self._calls.add((choice, index))
            for part in (field(function, "name"), field(function, "arguments")):
                if part:
                    self._tool_texts.append(part)

    def response(self) -> Response:
        usage = usage_from(self._usage)
        answered = bool(self._texts or self._tool_texts)
        return Response(
            model=self._model,
            response_id=self._id,
            finish_reasons=self._finish,
            usage=usage,
            service_tier=self._tier,
            output_texts=self._texts if (usage is None or answered) else None,
            tool_call_texts=self._tool_texts,
            tool_calls=len(self._calls),
        )


RequestReader: TypeAlias = Callable[[Any, tuple[Any, ...], dict[str, Any]], "Request | None"]


def request_reader(default_provider: str, operation: str) -> RequestReader:
    """Reads a request made on a client resource; the provider is named from the client's base URL."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        endpoint = endpoint_of(instance, default=default_provider)
        request = read_chat_request(endpoint.provider, operation, kwargs)
        return request.sent_to(endpoint) if request is not None else None

    return read


def read_chat_request(provider: str, operation: str, kwargs: dict[str, Any]) -> Request | None:
    model = kwargs.get("model")
    if not isinstance(model, str):
        return None
    max_tokens = kwargs.get("max_completion_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = kwargs.get("max_tokens")
    messages: Any = kwargs.get("messages")
    if messages is None:
        messages = kwargs.get("prompt", kwargs.get("input"))
    request = Request(
        provider=provider,
        operation=operation,
        model=model,
        stream=kwargs.get("stream") is True,
        messages=messages if isinstance(messages, (list, tuple, str)) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        tools=_billed_schemas(kwargs),
    )
    tier = kwargs.get("service_tier")
    if isinstance(tier, str):
        request.service_tier = tier
        request.attributes[A.OPENAI_REQUEST_SERVICE_TIER] = tier
    return request


def _billed_schemas(kwargs: dict[str, Any]) -> list[Any] | None:
    """``tools`` (or legacy ``functions``) and a ``json_schema`` response format, as function definitions."""
    schemas: list[Any] = []
    for key in ("tools", "functions"):
        value = kwargs.get(key)
        if isinstance(value, (list, tuple)):
            schemas.extend(value)
    response_format = kwargs.get("response_format")
    if isinstance(response_format, dict) and isinstance(json_schema := response_format.get("json_schema"), dict):
        schemas.append({"name": json_schema.get("name"), "description": json_schema.get("description"),
                        "parameters": json_schema.get("schema")})
    return schemas or None
