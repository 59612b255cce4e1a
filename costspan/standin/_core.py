"""Shared core of the fake provider server: scenarios, recorded requests, replies and helpers.

The provider wire-format modules (``wire_openai``, ``wire_anthropic``, ``wire_gemini``,
``wire_ollama``) only turn a :class:`RequestContext` into a :class:`Reply`; everything that is the
same for every provider (choosing the scenario, default usage numbers, splitting the answer into
stream pieces, delays, cutting a stream, in-stream errors) lives here so that no provider module
repeats it.

Stdlib only: ``costspan demo`` needs the same stand-in at run time, without pytest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_TEXT = "Hello from the costspan fake provider. This deterministic answer has plausible usage numbers."

# Tokens a chat request costs beyond its text (role markers, message framing), so that the default
# input count looks like what the providers report for a short prompt.
CHAT_OVERHEAD_TOKENS = 7

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks (at least one)."""
    return max(1, len(_TOKEN_RE.findall(text)))


def iter_strings(value: Any, skip_keys: frozenset[str] = frozenset()) -> Iterable[str]:
    """Every string leaf of a JSON value (the text a provider would tokenize), skipping some keys."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip_keys:
                yield from iter_strings(item, skip_keys)
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item, skip_keys)


def split_text(text: str, max_pieces: int = 8) -> list[str]:
    """Split the answer into stream deltas (whole words, spaces kept) so that joining them restores it."""
    words = re.findall(r"\S+\s*", text) or [text]
    per_piece = max(1, -(-len(words) // max_pieces))
    return ["".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece)]


def fake_id(prefix: str, *parts: object, length: int = 24) -> str:
    """A stable id derived from the request number, so two runs of a test see the same ids."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}{digest[:length]}"


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish embedding: the same text always maps to the same vector."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(round((b - 127.5) / 127.5, 6) for b in block)
        counter += 1
    return out[:dimensions]


def floats_to_base64(values: list[float]) -> str:
    """OpenAI's ``encoding_format="base64"``: little-endian float32 array, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


@dataclass
class Usage:
    """Token counts to report, in each provider's own terms (what the provider would put on the wire).

    ``None`` means "use the default" (estimated from the request and answer text; 0 for details).

    * ``input_tokens``: OpenAI ``prompt_tokens``/``input_tokens`` (includes cached), Anthropic
      ``input_tokens`` (excludes cache reads and writes), Gemini ``promptTokenCount`` (includes
      cached), Ollama ``prompt_eval_count``.
    * ``output_tokens``: OpenAI ``completion_tokens``/``output_tokens`` (includes reasoning; the
      default adds ``reasoning_tokens`` to the answer's tokens), Anthropic ``output_tokens``, Gemini
      ``candidatesTokenCount`` (excludes thoughts), Ollama ``eval_count``.
    * ``cached_tokens``: cache reads: OpenAI ``*_tokens_details.cached_tokens``, Anthropic
      ``cache_read_input_tokens``, Gemini ``cachedContentTokenCount``.
    * ``reasoning_tokens``: OpenAI ``reasoning_tokens``, Gemini ``thoughtsTokenCount``, Anthropic
      ``output_tokens_details.thinking_tokens``.
    * ``cache_creation_5m`` / ``cache_creation_1h``: Anthropic ``cache_creation.ephemeral_*`` (the
      total ``cache_creation_input_tokens`` is their sum unless ``cache_creation_tokens`` is set);
      ``cache_creation_tokens`` is also OpenAI's ``cache_write_tokens``.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cache_creation_5m: int | None = None
    cache_creation_1h: int | None = None


@dataclass(frozen=True)
class ResolvedUsage:
    """Usage with every number filled in, handed to the wire formats."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_creation_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int


@dataclass(frozen=True)
class ToolCall:
    """A function call the model answers with instead of (or besides) text: its name and its
    arguments as the JSON text the API sends (streamed in pieces, as the providers do)."""

    name: str
    arguments: str


@dataclass
class Scenario:
    """What the next matching request gets. Every field has a "behave normally" default.

    Errors: ``status`` >= 400 answers with the provider's real error body for that status (the
    error type/code are derived from the status unless ``error_type``/``error_code`` are given);
    ``retry_after`` adds the ``retry-after`` header (seconds).

    Streams: ``cut_after=K`` sends K stream frames (SSE events / NDJSON lines) and then closes the
    connection without finishing the chunked body, as a dropped connection does;
    ``error_after=K`` sends K frames and then the provider's in-stream error event;
    ``omit_usage=True`` leaves out the usage the stream would carry (OpenAI's final usage chunk,
    Groq's ``x_groq.usage``, Anthropic's ``message_delta``, Gemini's ``usageMetadata``, Ollama's
    counts) and, for non-stream answers, the usage object.

    ``delay`` waits before the first body byte (non-stream) or before the first stream frame (the
    headers are already sent, as a provider does while the model thinks); ``chunk_delay`` waits
    between stream frames.

    ``tool_calls`` makes the answer call those functions (OpenAI's ``tool_calls``; the text is then
    empty unless ``text`` is given, and the finish reason ``tool_calls``).

    ``path_contains`` restricts the scenario to requests whose path contains that text (others
    skip it and stay in the queue order).
    """

    status: int = 200
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    usage: Usage | None = None
    omit_usage: bool = False
    cut_after: int | None = None
    error_after: int | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    response_model: str | None = None
    service_tier: str | None = None
    text: str | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    path_contains: str | None = None

    def with_changes(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (scenarios are shared between queue entries)."""
        return replace(self, **changes)


@dataclass
class RecordedRequest:
    """One request as the server saw it (headers with lower-case names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    route: str | None
    scenario: Scenario

    @property
    def json(self) -> Any:
        """Alias of ``body`` (the parsed JSON body, ``None`` when there was none or it was not JSON)."""
        return self.body


@dataclass
class JsonReply:
    """A complete JSON answer."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """A streamed answer: each frame is one SSE event or one NDJSON line, written and flushed alone.

    ``error_frame`` is the provider's in-stream error event (used by ``Scenario.error_after``).
    """

    frames: list[bytes]
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    error_frame: bytes | None = None


Reply = JsonReply | StreamReply


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it already is a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def ndjson(data: Any) -> bytes:
    """One NDJSON line (Ollama's streaming format)."""
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


@dataclass
class RequestContext:
    """Everything a wire-format handler needs to build its answer."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    params: dict[str, str]
    scenario: Scenario
    request_number: int
    model_aliases: dict[str, str]
    now: float = field(default_factory=time.time)

    @property
    def json_body(self) -> dict[str, Any]:
        """The body as a dict (empty when the request had none), so handlers can ``.get`` freely."""
        return self.body if isinstance(self.body, dict) else {}

    @property
    def text(self) -> str:
        if self.scenario.text is not None:
            return self.scenario.text
        return "" if self.scenario.tool_calls else DEFAULT_TEXT

    def response_model(self, requested: str | None) -> str:
        """Scenario override, then the configured alias (e.g. a dated OpenAI name), then the echo."""
        if self.scenario.response_model is not None:
            return self.scenario.response_model
        requested = requested or "unknown-model"
        return self.model_aliases.get(requested, requested)

    def prompt_tokens(self, payload: Any, overhead: int = CHAT_OVERHEAD_TOKENS) -> int:
        """Default input count: the tokens of every string in the prompt part of the request."""
        text = " ".join(iter_strings(payload, frozenset({"model", "role", "type"})))
        return count_tokens(text) + overhead if text else overhead

    def usage(self, default_input: int, *, output_includes_reasoning: bool = False) -> ResolvedUsage:
        """The scenario's usage with defaults filled in: input from the request, output from the answer."""
        u = self.scenario.usage or Usage()
        reasoning = u.reasoning_tokens or 0
        output = u.output_tokens
        if output is None:
            calls = sum(count_tokens(call.name) + count_tokens(call.arguments) for call in self.scenario.tool_calls)
            text = count_tokens(self.text) if self.text or not calls else 0
            output = text + calls + (reasoning if output_includes_reasoning else 0)
        c5m = u.cache_creation_5m or 0
        c1h = u.cache_creation_1h or 0
        creation = u.cache_creation_tokens if u.cache_creation_tokens is not None else c5m + c1h
        if u.cache_creation_tokens is not None and u.cache_creation_5m is None and u.cache_creation_1h is None:
            c5m = creation  # the total alone means the default (5 minute) cache
        return ResolvedUsage(
            input_tokens=u.input_tokens if u.input_tokens is not None else default_input,
            output_tokens=output,
            cached_tokens=u.cached_tokens or 0,
            reasoning_tokens=reasoning,
            cache_creation_tokens=creation,
            cache_creation_5m=c5m,
            cache_creation_1h=c1h,
        )

    def pieces(self) -> list[str]:
        return split_text(self.text)


Handler = Callable[[RequestContext], Reply]
ErrorBuilder = Callable[[RequestContext, int], JsonReply]


@dataclass(frozen=True)
class Route:
    """One endpoint: ``pattern`` is matched (fullmatch) against the path without the query string.

    ``error`` builds the provider's error answer for a status; ``accepts`` can refine the match
    with the request (e.g. an Azure ``api-key`` header) so two providers can share a path.
    """

    name: str
    method: str
    pattern: re.Pattern[str]
    handle: Handler
    error: ErrorBuilder
    accepts: Callable[[dict[str, str]], bool] | None = None


def route(
    name: str,
    method: str,
    pattern: str,
    handle: Handler,
    error: ErrorBuilder,
    accepts: Callable[[dict[str, str]], bool] | None = None,
) -> Route:
    return Route(name, method, re.compile(pattern), handle, error, accepts)


STATUS_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def error_headers(ctx: RequestContext) -> dict[str, str]:
    """Headers every provider sends with an error: ``retry-after`` when the scenario asks for it."""
    headers = dict(ctx.scenario.headers)
    if ctx.scenario.retry_after is not None:
        value = ctx.scenario.retry_after
        headers["retry-after"] = str(int(value)) if float(value).is_integer() else str(value)
    return headers
