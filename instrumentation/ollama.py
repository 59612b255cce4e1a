"""Instrumentor for the ``ollama`` client library: ``chat``, ``generate``, ``embed`` and the legacy ``embeddings``.

Ollama reports ``prompt_eval_count`` (input) and ``eval_count`` (output) on the answer, or on the
last line of a streamed (NDJSON) answer. A model served on this machine costs nothing unless the
user prices it (``costspan.endpoint.local``); Ollama's cloud models (names ending ``-cloud``) run
on Ollama's servers even when called through the local one, so they are never judged local and
are priced when a price is known. The ollama SDK makes no spans of its own (0.6).
"""

from __future__ import annotations

from typing import Any

import ollama  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)

from costspan.facts import Usage
from costspan.instrumentation import package
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._sdk_format import count, field
from costspan.instrumentation._wrapping import Operation
from costspan.instrumentation.endpoints import endpoint_of

_CLOUD_SUFFIX = "-cloud"


def usage_from(result: Any) -> Usage | None:
    """None when the answer has no counts (an unfinished stream, the legacy embeddings endpoint)."""
    if field(result, "prompt_eval_count") is None and field(result, "eval_count") is None:
        return None
    return Usage(input_tokens=count(result, "prompt_eval_count"), output_tokens=count(result, "eval_count"))


def _reader(operation: str, prompt_parameter: str) -> Any:
    """Reads ``(model, <prompt_parameter>, ...)``, passed by position or by name as the client allows."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        model = args[0] if args else kwargs.get("model")
        if not isinstance(model, str) or not model:
            return None
        prompt: Any = args[1] if len(args) > 1 else kwargs.get(prompt_parameter)
        system = kwargs.get("system")
        if isinstance(prompt, str) and isinstance(system, str):
            prompt = [system, prompt]
        endpoint = endpoint_of(instance, default="ollama")
        request = Request(
            provider=endpoint.provider,
            operation=operation,
            model=model,
            stream=kwargs.get("stream") is True,
            messages=prompt if isinstance(prompt, (str, list, tuple)) else None,
        ).sent_to(endpoint)
        if model.endswith(_CLOUD_SUFFIX):
            request.local = False  # billed by Ollama's cloud, though the daemon runs here
        return request

    return read


def _text(result: Any) -> str | None:
    """The answer's text: ``message.content`` for chat, ``response`` for generate."""
    text = field(field(result, "message"), "content")
    if text is None:
        text = field(result, "response")
    return text if isinstance(text, str) else None


def _response(result: Any, request: Request) -> Response:
    return _answer(result)


def _answer(result: Any) -> Response:
    text = _text(result)
    reason = field(result, "done_reason")
    return Response(
        model=field(result, "model"),
        finish_reasons=[str(reason)] if reason else (),
        usage=usage_from(result),
        output_texts=[text] if text else [],
    )


class ChunkObserver:
    """NDJSON lines: text until the ``done`` line, which has the counts."""

    __slots__ = ("_last", "_texts")

    def __init__(self, request: Request) -> None:
        self._texts: list[str] = []
        self._last: Any = None

    def observe(self, chunk: Any) -> None:
        text = _text(chunk)
        if text:
            self._texts.append(text)
        self._last = chunk

    def response(self) -> Response:
        response = _answer(self._last) if self._last is not None else Response()
        response.output_texts = self._texts
        return response


_CHAT = Operation(_reader("chat", "messages"), _response, ChunkObserver)
_GENERATE = Operation(_reader("text_completion", "prompt"), _response, ChunkObserver)
_EMBED = Operation(_reader("embeddings", "input"), _response)
_EMBEDDINGS = Operation(_reader("embeddings", "prompt"), _response)


def _methods(owner: str) -> tuple[MethodSpec, ...]:
    return (
        MethodSpec("ollama._client", owner, "chat", _CHAT),
        MethodSpec("ollama._client", owner, "generate", _GENERATE),
        MethodSpec("ollama._client", owner, "embed", _EMBED),
        MethodSpec("ollama._client", owner, "embeddings", _EMBEDDINGS),
    )


METHODS: tuple[MethodSpec, ...] = (*_methods("Client"), *_methods("AsyncClient"))


class OllamaInstrumentor(ClientInstrumentor):
    """``costspan_ollama``: chat, generate and embeddings, sync, async and streaming."""

    instruments = package.OLLAMA
    methods = METHODS
