"""Reading Anthropic's Messages format: shared by the anthropic SDK and Bedrock's InvokeModel.

Bedrock's InvokeModel answers Claude models with Anthropic's own message bodies and stream events,
so one reader serves both client libraries. Anthropic's ``input_tokens`` excludes cache reads and
writes; the semantic conventions count them in, so they are added back. Cache writes say in
``cache_creation`` how many were written with the 1-hour lifetime, which is priced higher than the
default 5 minutes.
"""

from __future__ import annotations

from typing import Any

from costspan.facts import Usage
from costspan.instrumentation._call import Request, Response
from costspan.instrumentation._sdk_format import count, field

# The usage fields a stream's ``message_start`` carries and its ``message_delta`` may update.
_USAGE_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens",
    "output_tokens_details",
)


def usage_from(raw: Any) -> Usage | None:
    """Anthropic's usage in semconv terms: input counts cache reads and writes, output counts thinking."""
    if raw is None:
        return None
    split = field(raw, "cache_creation")
    write_1h = count(split, "ephemeral_1h_input_tokens")
    cache_write = count(raw, "cache_creation_input_tokens") or count(split, "ephemeral_5m_input_tokens") + write_1h
    cache_read = count(raw, "cache_read_input_tokens")
    return Usage(
        input_tokens=count(raw, "input_tokens") + cache_read + cache_write,
        output_tokens=count(raw, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=count(field(raw, "output_tokens_details"), "thinking_tokens"),
    )



class EventObserver:
    """Raw stream events: ``message_start`` brings the input usage, ``message_delta`` the final output.

    A stream that ends before ``message_delta`` (cut, or left early) keeps the reported input and
    counts its output from the text that arrived.
    """

    __slots__ = ("_final", "_finish", "_id", "_model", "_texts", "_usage")

    def __init__(self, request: Request) -> None:
        self._usage: dict[str, Any] | None = None
        self._texts: list[str] = []
        self._finish: list[str] = []
        self._id: str | None = None
        self._model: str | None = None
        self._final = False

    def observe(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "content_block_delta":
            text = field(field(event, "delta"), "text")
            if text:
                self._texts.append(text)
        elif kind == "message_start":
            message = field(event, "message")
            self._id, self._model = field(message, "id"), field(message, "model")
            usage = field(message, "usage")
            self._usage = {name: field(usage, name) for name in _USAGE_FIELDS}
        elif kind == "message_delta":
            reason = field(field(event, "delta"), "stop_reason")
            if reason:
                self._finish.append(str(reason))
            usage = field(event, "usage")
            merged = self._usage if self._usage is not None else {}
            for name in _USAGE_FIELDS:
                value = field(usage, name)
                if value is not None:
                    merged[name] = value
            self._usage, self._final = merged, True

    def response(self) -> Response:
        return Response(
            model=self._model,
            response_id=self._id,
            finish_reasons=self._finish,
            usage=usage_from(self._usage),
            output_texts=self._texts,
            estimate_output=not self._final,
        )
