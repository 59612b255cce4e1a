"""One LLM request in flight: its span, its pre-call budget check, and its single end.

Instrumentors report facts only (DESIGN.md, rule 1): model, provider, operation, token counts
as the provider reported them (normalised to semconv), and whether they were estimated. The
processor prices the span when it ends. Everything here is shared by every provider.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from costspan.instrumentation.prompt_hash import hash_messages
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from costspan import attributes as A
from costspan import attribution
from costspan.errors import BudgetExceededError
from costspan.estimation import PER_TOOL_CALL, Sample, message_text
from costspan.providers import Endpoint
from costspan.runtime import Runtime
from costspan.usage import USAGE_INVALID, CallFacts, Usage, checked

_TRACER_NAME = "costspan.instrumentation"


@dataclass(slots=True)
class Request:
    """What the instrumentor read from the call's arguments."""

    provider: str
    operation: str
    model: str
    stream: bool = False
    server_address: str | None = None
    server_port: int | None = None
    messages: Any = None
    """Request content, kept in memory only for token counting and the prompt hash; never on the span."""
    max_tokens: int | None = None
    tools: list[Any] | None = None
    """Tool definitions and a JSON response schema: billed input, counted when usage must be estimated."""
    attributes: dict[str, Any] = field(default_factory=dict)

    def sent_to(self, endpoint: Endpoint) -> Request:
        """Where the request goes: the server, and whether it is a model server on this machine."""
        self.server_address, self.server_port = endpoint.address, endpoint.port
        self.attributes[A.ENDPOINT_LOCAL] = endpoint.local
        return self


@dataclass(slots=True)
class Response:
    """What the instrumentor read from the response (or the stream, at its end)."""

    model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] = ()
    usage: Usage | None = None
    service_tier: str | None = None
    output_texts: list[str] | None = None
    tool_call_texts: list[str] = field(default_factory=list)
    """Names and argument pieces of the tool calls in the answer (billed output, never answer text)."""
    tool_calls: int = 0
    estimate_output: bool = False
    """The stream ended before its final usage: ``usage`` has the reported input, count the output from the texts."""


class LLMCall:
    __slots__ = ("_ended", "_first_chunk_ns", "_lock", "_start_ns", "request", "runtime", "span")

    def __init__(self, runtime: Runtime, request: Request, span: Span) -> None:
        self.runtime = runtime
        self.request = request
        self.span = span
        self._start_ns = time.monotonic_ns()
        self._first_chunk_ns: int | None = None
        self._ended = False
        self._lock = threading.Lock()

    @classmethod
    def start(cls, runtime: Runtime, request: Request) -> LLMCall:
        """Open the span and ask the budgets; raises BudgetExceededError (span ended) if refused."""
        call = cls(runtime, request, _open_span(runtime, request))
        try:
            reservation = precheck(runtime, request)
        except BudgetExceededError as exc:
            call.fail(exc)
            raise
        if reservation is not None:
            runtime.reservations[call.span.get_span_context().span_id] = reservation
        return call

    @classmethod
    def refused(cls, runtime: Runtime, request: Request, exc: BudgetExceededError) -> None:
        """Record a call the budgets refused on a span of its own (its client never ran, so made none)."""
        cls(runtime, request, _open_span(runtime, request)).fail(exc)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make the span current while the request is sent, so HTTP client spans nest under it."""
        with trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield

    def first_chunk(self) -> None:
        if self._first_chunk_ns is None:
            self._first_chunk_ns = time.monotonic_ns()

    def succeed(self, response: Response) -> None:
        """Record the response's facts and end the span."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._record(response)
        finally:
            self.span.end()

    def fail(self, exc: BaseException, partial: Response | None = None) -> None:
        """End the span as failed. ``partial``: what a stream delivered before it broke; the
        provider bills the input it processed and the output it sent, so they are counted."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:  # runs in the application's own ``except``: nothing may escape from here
            if partial is not None:
                self._record(partial)
            self.span.set_attribute(A.ERROR_TYPE, _error_type(exc))
            self.span.set_status(Status(StatusCode.ERROR, _describe(exc)))
            if not isinstance(exc, BudgetExceededError):
                self.runtime.release(self.runtime.take_reservation(self.span.get_span_context().span_id))
        except Exception:
            self.runtime.log_once("recording a failed call")
        finally:
            self.span.end()

    def _record(self, response: Response) -> None:
        span, request, runtime = self.span, self.request, self.runtime
        values: dict[str, Any] = {}
        if response.model:
            values[A.RESPONSE_MODEL] = response.model
        if response.response_id:
            values[A.RESPONSE_ID] = response.response_id
        if response.finish_reasons:
            values[A.RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
        if response.service_tier:
            values[A.OPENAI_SERVICE_TIER] = response.service_tier
        if self._first_chunk_ns is not None:
            values[A.RESPONSE_TTFC] = (self._first_chunk_ns - self._start_ns) / 1e9
        usage, invalid = (None, frozenset[str]()) if response.usage is None else checked(response.usage)
        if invalid:
            usage = self._repair(usage, invalid, response)
            values[A.USAGE_SOURCE] = USAGE_INVALID
        elif usage is None and response.output_texts is not None:
            usage = self._estimate(response)
            values[A.USAGE_SOURCE] = "estimated"
        elif usage is not None and response.estimate_output and response.output_texts is not None:
            # Output includes the reasoning the provider already counted (Gemini reports thoughts
            # on every chunk); what arrived is counted on top.
            usage = replace(usage, output_tokens=usage.reasoning_tokens + self._count_output(response))
            values[A.USAGE_SOURCE] = "estimated"
        elif usage is not None:
            values[A.USAGE_SOURCE] = "reported"
            monitor = runtime.monitor
            if monitor is not None and request.messages is not None and monitor.should_sample():
                texts = response.output_texts
                if texts is not None:
                    monitor.submit(
                        Sample(
                            provider=request.provider,
                            model=request.model,
                            input_texts=message_text(request.messages),
                            output_texts=texts,
                            reported_input=usage.input_tokens,
                            reported_output=usage.output_tokens,
                            message_count=_message_count(request.messages),
                        )
                    )
        if usage is not None:
            values[A.INPUT_TOKENS] = usage.input_tokens
            values[A.OUTPUT_TOKENS] = usage.output_tokens
            if usage.cache_read_tokens:
                values[A.CACHE_READ_TOKENS] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                values[A.CACHE_CREATION_TOKENS] = usage.cache_write_tokens
            if usage.cache_write_1h_tokens:
                values[A.CACHE_WRITE_1H_TOKENS] = usage.cache_write_1h_tokens
            if usage.reasoning_tokens:
                values[A.REASONING_TOKENS] = usage.reasoning_tokens
            if usage.images:
                values[A.IMAGE_COUNT] = usage.images
            if usage.search_units:
                values[A.SEARCH_UNITS] = usage.search_units
        if runtime.settings.capture_content and response.output_texts:
            values[A.OUTPUT_MESSAGES] = _as_json(
                [{"role": "assistant", "parts": [{"type": "text", "content": "".join(response.output_texts)}]}]
            )
        span.set_attributes(values)

    def _repair(self, usage: Usage | None, invalid: frozenset[str], response: Response) -> Usage | None:
        """Usage that held counts no provider would send: keep the valid ones, count the input and
        output locally where the request and the answer allow, and report nothing where they do not."""
        assert usage is not None
        counter, request = self.runtime.counter, self.request
        known = {"input_tokens", "output_tokens"} - invalid
        if "input_tokens" in invalid and request.messages is not None:
            usage = replace(usage, input_tokens=counter.count_messages(request.model, request.messages, request.tools))
            known.add("input_tokens")
        if "output_tokens" in invalid and response.output_texts is not None:
            usage = replace(usage, output_tokens=self._count_output(response))
            known.add("output_tokens")
        return usage if known or usage.images else None

    def _estimate(self, response: Response) -> Usage:
        counter, request = self.runtime.counter, self.request
        messages = request.messages
        input_tokens = counter.count_messages(request.model, messages, request.tools) if messages is not None else 0
        return Usage(input_tokens=input_tokens, output_tokens=self._count_output(response))

    def _count_output(self, response: Response) -> int:
        """What the provider bills as output: the text, and the tool calls' names and arguments."""
        texts = [*(response.output_texts or ()), *response.tool_call_texts]
        return self.runtime.counter.count_text(self.request.model, texts) + PER_TOOL_CALL * response.tool_calls


def _open_span(runtime: Runtime, request: Request) -> Span:
    attrs: dict[str, Any] = {
        A.OPERATION: request.operation,
        A.PROVIDER: request.provider,
        A.REQUEST_MODEL: request.model,
    }
    if request.stream:
        attrs[A.REQUEST_STREAM] = True
    if request.server_address:
        attrs[A.SERVER_ADDRESS] = request.server_address
    if request.server_port:
        attrs[A.SERVER_PORT] = request.server_port
    if request.max_tokens is not None:
        attrs[A.REQUEST_MAX_TOKENS] = request.max_tokens
    attrs.update(request.attributes)
    if runtime.prompt_salt is not None and request.messages is not None:
        attrs[A.PROMPT_HASH] = hash_messages(request.messages, runtime.prompt_salt)
    if runtime.settings.capture_content and request.messages is not None:
        attrs[A.INPUT_MESSAGES] = _as_json(request.messages)
    return _tracer(runtime.tracer_provider()).start_span(
        f"{request.operation} {request.model}", kind=SpanKind.CLIENT, attributes=attrs
    )


def precheck(runtime: Runtime, request: Request) -> object | None:
    """Ask the budgets before the request leaves: the reservation to settle, or BudgetExceededError.

    Nothing else escapes: a fault while estimating the worst case checks the call without it.
    """
    if runtime.budgets is None or not runtime.budgets.checks_before_calls():
        return None
    who = attribution.current()
    input_tokens = 0
    worst_case: int | None = None
    try:
        if request.messages is not None and runtime.budgets.wants_input_estimate():
            input_tokens = runtime.counter.count_messages(request.model, request.messages, request.tools)
            # The worst case: the request's max_tokens, else the cap a reserving budget configures.
            max_output = request.max_tokens if request.max_tokens is not None else runtime.budgets.output_token_cap()
            if max_output is not None:
                worst = Usage(input_tokens=input_tokens, output_tokens=max_output)
                worst_case = runtime.pricer.quote(request.provider, request.model, worst).total_nanos
    except Exception:
        runtime.log_once("estimating the worst case")
        input_tokens, worst_case = 0, None
    facts = CallFacts(
        provider=request.provider,
        request_model=request.model,
        operation=request.operation,
        usage=Usage(input_tokens=input_tokens),
        server_address=request.server_address,
        project=who.project or runtime.service_name,
        feature=who.feature,
        user=who.user,
    )
    return runtime.precheck(facts, worst_case)


class ReservationHold:
    """A call whose GenAI span someone else makes (the SDK itself, as anthropic 2.x does, or another
    instrumentation of the same method), holding a budget reservation.

    A second span of ours would count the call twice, so the processor prices the other span, and that
    span cannot carry the reservation (its id is unknown before it starts). The other span is charged
    when it ends; the reservation is released when the call ends, at about the same moment, so budgets
    see the call's real cost and the worst case is held only meanwhile. Same interface as
    :class:`LLMCall`, so the wrapper and the stream proxies serve both.
    """

    __slots__ = ("_lock", "_reservation", "request", "runtime")

    def __init__(self, runtime: Runtime, request: Request, reservation: object) -> None:
        self.runtime = runtime
        self.request = request
        self._reservation: object | None = reservation
        self._lock = threading.Lock()

    @contextmanager
    def active(self) -> Iterator[None]:
        yield

    def first_chunk(self) -> None:
        pass

    def succeed(self, response: Response) -> None:
        self._release()

    def fail(self, exc: BaseException, partial: Response | None = None) -> None:
        self._release()  # the SDK's own span records what the stream delivered

    def _release(self) -> None:
        with self._lock:
            reservation, self._reservation = self._reservation, None
        self.runtime.release(reservation)


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def _tracer(provider: trace.TracerProvider) -> trace.Tracer:
    """One tracer per provider: the SDK builds a new Tracer object on every ``get_tracer`` call."""
    tracer = _tracers.get(provider)
    if tracer is None:
        from costspan import __version__

        tracer = _tracers[provider] = provider.get_tracer(_TRACER_NAME, __version__)
    return tracer


def _message_count(messages: object) -> int:
    if isinstance(messages, (list, tuple)) and messages and isinstance(messages[0], dict):
        return len(messages)
    return 0


def _as_json(content: object) -> str:
    """Content as the span attribute semconv describes: JSON; SDK objects through ``str``."""
    return json.dumps(content, ensure_ascii=False, default=str)


def _describe(exc: BaseException) -> str:
    """The error's message for the span status; an exception whose ``__str__`` fails still ends it."""
    try:
        return str(exc)[:200]
    except Exception:
        return type(exc).__name__


def _error_type(exc: BaseException) -> str:
    """semconv ``error.type``: the exception's class name (HTTP status codes live in the class)."""
    return type(exc).__name__
