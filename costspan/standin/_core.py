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

    Faults (for drills; every wire format, applied by :func:`apply_faults` and the server's writer
    to whatever answer the route built, so no wire module knows about them):

    * ``counts``: wire fields replaced wherever they occur in the answer (the JSON body and every
      stream frame) by these JSON values of any type (strings, floats, null, lists, objects,
      booleans, 2**63...), or removed with :data:`DROP`; the key ``"*"`` stands for every field
      in :data:`COUNT_FIELDS`. ``{"usage": "n/a"}`` replaces a whole usage object.
    * ``malformed``: the JSON body (for a stream, its middle frame) is broken in one of the ways of
      :data:`MALFORMED` (``"unclosed"``, ``"trailing-comma"``...).
    * ``stream_events``: odd events in the stream, names of :data:`ODD_EVENTS` (keep-alive
      comments, empty data lines, unknown event types, empty choices, duplicate usage, usage
      before content, events after the end marker, the end marker twice).
    * ``cut_at_byte``: the connection drops after that many body bytes (negative: counted from the
      end), mid-frame or mid-JSON; ``end_at_byte``: the body ends cleanly there (the
      ``content-length`` or the chunked encoding says it is complete).
    * ``raw_body``: these bytes are sent instead of the answer (with its status), e.g.
      :data:`HTML_ERROR_PAGE`; ``content_type`` overrides the answer's content type.
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
    counts: dict[str, Any] = field(default_factory=dict)
    malformed: str | None = None
    stream_events: tuple[str, ...] = ()
    cut_at_byte: int | None = None
    end_at_byte: int | None = None
    raw_body: bytes | None = None
    content_type: str | None = None

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
    """A complete JSON answer (``raw``: bytes sent instead of the encoded ``body``, for faults)."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"

    def data(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


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


# --- faults -------------------------------------------------------------------------------------
# Shared by every wire format: they rewrite the reply a route built (JSON values, SSE events,
# NDJSON lines), so no wire module repeats them. See the fault fields of :class:`Scenario`.

COUNT_FIELDS = frozenset({
    # OpenAI and Groq (chat, completions, responses)
    "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "audio_tokens",
    "accepted_prediction_tokens", "rejected_prediction_tokens", "cache_write_tokens",
    "input_tokens", "output_tokens",
    # Anthropic
    "cache_creation_input_tokens", "cache_read_input_tokens", "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens", "thinking_tokens",
    # Gemini
    "promptTokenCount", "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount",
    "cachedContentTokenCount", "toolUsePromptTokenCount", "tokenCount",
    # Ollama
    "prompt_eval_count", "eval_count",
})
"""The wire fields that carry token counts, in every provider's format (``counts={"*": ...}``)."""

USAGE_FIELDS = frozenset({"usage", "usageMetadata", "prompt_eval_count", "eval_count"})
"""Fields whose presence makes a stream frame a usage frame."""


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
"""A ``Scenario.counts`` value that removes the field instead of replacing it."""

MALFORMED = ("unclosed", "trailing-comma", "garbage-after", "bom", "single-quotes", "not-json", "empty")
"""Ways ``Scenario.malformed`` breaks JSON: a missing closing brace, a trailing comma, text after
the value, a UTF-8 byte-order mark, Python-style quotes, plain text, nothing at all."""

ODD_EVENTS = ("keep-alive", "empty-data", "unknown-event", "empty-choices", "duplicate-usage", "usage-first",
              "after-end", "end-twice")
"""Odd stream events ``Scenario.stream_events`` adds (each a no-op where the stream has nothing it applies to)."""

HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n"
)
"""What a proxy in front of a provider answers when the upstream fails (often with status 200)."""

_SSE_DONE = b"data: [DONE]\n\n"


def break_json(text: bytes, kind: str) -> bytes:
    """Valid JSON made invalid in one of the :data:`MALFORMED` ways."""
    stripped = text.rstrip()
    if kind == "unclosed":
        return stripped[:-1]
    if kind == "trailing-comma":
        return stripped[:-1] + b",}" if stripped.endswith(b"}") else stripped[:-1] + b",]"
    if kind == "garbage-after":
        return stripped + b" <!-- upstream -->"
    if kind == "bom":
        return b"\xef\xbb\xbf" + text
    if kind == "single-quotes":
        return stripped.replace(b'"', b"'")
    if kind == "not-json":
        return b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
    if kind == "empty":
        return b""
    raise ValueError(f"unknown malformation {kind!r}; one of {MALFORMED}")


def _patch(value: Any, counts: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_patch(item, counts) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        new = counts.get(key, counts["*"] if "*" in counts and key in COUNT_FIELDS else item)
        if new is DROP:
            continue
        out[key] = _patch(item, counts) if new is item else new
    return out


@dataclass
class _Frame:
    """One stream frame taken apart: SSE ``event``/``data`` lines, or one NDJSON line (``data``)."""

    event: str | None
    data: bytes
    sse: bool

    @classmethod
    def parse(cls, frame: bytes, is_sse: bool) -> _Frame:
        if not is_sse:
            return cls(None, frame.rstrip(b"\n"), False)
        event = None
        data: list[bytes] = []
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
        return cls(event, b"\n".join(data), True)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    def build(self, data: bytes | None = None, obj: Any = None) -> bytes:
        payload = data if data is not None else json.dumps(obj, separators=(",", ":")).encode()
        if not self.sse:
            return payload + b"\n"
        head = f"event: {self.event}\n".encode() if self.event else b""
        return head + b"data: " + payload + b"\n\n"


def _carries_usage(value: Any) -> bool:
    if isinstance(value, dict):
        return any((k in USAGE_FIELDS and v is not None) or _carries_usage(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_carries_usage(v) for v in value)
    return False


def _emptied(value: Any) -> Any:
    """A content frame with nothing in it: lists of choices/candidates empty, texts empty."""
    if isinstance(value, dict):
        return {k: [] if k in ("choices", "candidates") else "" if k in ("text", "content", "response")
                and isinstance(v, str) else _emptied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_emptied(v) for v in value]
    return value


def _odd_events(frames: list[bytes], is_sse: bool, events: Iterable[str]) -> list[bytes]:
    out = list(frames)
    parsed = [_Frame.parse(f, is_sse) for f in frames]
    json_frames = [i for i, p in enumerate(parsed) if isinstance(p.json, dict)]
    named = any(p.event for p in parsed)
    for name in events:
        if name == "keep-alive":  # SSE comments (OpenAI, Anthropic send them); a blank NDJSON line
            out = [x for f in out for x in ((b": keep-alive\n\n" if is_sse else b"\n"), f)]
        elif name == "empty-data":
            out.insert(len(out) // 2, b"data: \n\n" if is_sse else b"{}\n")
        elif name == "unknown-event":
            odd = {"type": "costspan_drill_unknown", "detail": {"note": "an event type this SDK does not know"}}
            frame = _Frame("costspan_drill_unknown" if named else None, b"", is_sse).build(obj=odd)
            out.insert(min(2, len(out)), frame)
        elif name == "empty-choices" and json_frames:
            source = parsed[json_frames[len(json_frames) // 2]]
            out.insert(min(2, len(out)), source.build(obj=_emptied(source.json)))
        elif name == "duplicate-usage":
            out = [x for f in out for x in ((f, f) if _carries_usage(_Frame.parse(f, is_sse).json) else (f,))]
        elif name == "usage-first":
            carriers = [i for i, f in enumerate(out) if _carries_usage(_Frame.parse(f, is_sse).json)]
            if carriers:
                out.insert(min(1, len(out)), out.pop(carriers[-1]))
        elif name == "after-end" and json_frames:
            out += [frames[json_frames[len(json_frames) // 2]], frames[json_frames[-1]]]
        elif name == "end-twice" and out:
            out.append(_SSE_DONE if is_sse and out[-1] == _SSE_DONE else out[-1])
        elif name not in ODD_EVENTS:
            raise ValueError(f"unknown odd event {name!r}; one of {ODD_EVENTS}")
    return out


def apply_faults(reply: Reply, scenario: Scenario) -> Reply:
    """The reply with the scenario's content faults applied (byte cuts are the writer's)."""
    if scenario.raw_body is not None:
        return JsonReply(None, reply.status if isinstance(reply, JsonReply) else 200, dict(reply.headers),
                         raw=scenario.raw_body, content_type=scenario.content_type or "text/html; charset=utf-8")
    if isinstance(reply, JsonReply):
        body = _patch(reply.body, scenario.counts) if scenario.counts else reply.body
        raw = break_json(json.dumps(body).encode(), scenario.malformed) if scenario.malformed else None
        return replace(reply, body=body, raw=raw, content_type=scenario.content_type or reply.content_type)
    is_sse = "event-stream" in reply.content_type
    frames = list(reply.frames)
    if scenario.counts:
        frames = []
        for frame in reply.frames:
            part = _Frame.parse(frame, is_sse)
            value = part.json
            frames.append(frame if value is None else part.build(obj=_patch(value, scenario.counts)))
    if scenario.malformed and frames:
        middle = len(frames) // 2
        part = _Frame.parse(frames[middle], is_sse)
        frames[middle] = part.build(data=break_json(part.data, scenario.malformed))
    if scenario.stream_events:
        frames = _odd_events(frames, is_sse, scenario.stream_events)
    return replace(reply, frames=frames, content_type=scenario.content_type or reply.content_type)


def cut_point(length: int, at: int | None, *, short: bool = False) -> int | None:
    """Where a body of ``length`` bytes is cut (``at`` negative counts from the end; None: not cut).

    ``short``: at least one byte is missing (a dropped connection after the whole body with its
    ``content-length`` is no drop at all; the client would keep a connection the server closed)."""
    if at is None:
        return None
    point = at if at >= 0 else length + at
    return max(0, min(point, length - 1 if short else length))
