"""Instrumentor for the ``groq`` client library.

Groq speaks OpenAI's chat format, so the readers of :mod:`._openai_format` serve it as they are;
its streams carry their usage in the last chunk's ``x_groq.usage``, which the chat chunk observer
reads. The groq SDK makes no spans of its own (1.x), so every call gets one of ours.
"""

from __future__ import annotations

import groq  # noqa: F401  (ModuleNotFoundError here tells the launcher to skip us)

from costspan.instrumentation import package
from costspan.instrumentation._instrumentor import ClientInstrumentor, MethodSpec
from costspan.instrumentation._openai_format import ChatChunkObserver, chat_response, request_reader
from costspan.instrumentation._stainless import is_stream, unwrap_raw, wrap_stream_or_raw
from costspan.instrumentation._wrapping import Operation

_CHAT = Operation(
    request_reader("groq", "chat"), unwrap_raw(chat_response), ChatChunkObserver, is_stream,
    proxy_stream=wrap_stream_or_raw,
)

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("groq.resources.chat.completions", "Completions", "create", _CHAT),
    MethodSpec("groq.resources.chat.completions", "AsyncCompletions", "create", _CHAT),
)


class GroqInstrumentor(ClientInstrumentor):
    """``costspan_groq``: spans with usage for chat completions, sync, async and streaming."""

    instruments = package.GROQ
    methods = METHODS
