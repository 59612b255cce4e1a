"""One LLM request in flight: its span, its pre-call budget check, and its single end.

Instrumentors report facts only (docs/architecture.md, rule 1): model, provider, operation, token counts
as the provider reported them (normalised to semconv), and whether they were estimated. The call
holds those facts from its start (where it went, who it is for, when) to its end (the response),
hands them to the accounting service with the reservation its budget check took, writes the facts
and the result onto its span through the codec, and only then ends the span: nothing is written
to attributes to be read back. Everything here is shared by every provider.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from costspan import attribute_names as A
from costspan import attribution, wiring
from costspan.errors import BudgetExceededError
from costspan.estimation import PER_TOOL_CALL, Sample, message_text
from costspan.facts import NO_USAGE, USAGE_INVALID, CallFacts, Usage, checked
from costspan.instrumentation.prompt_hash import hash_messages
from costspan.logs import log_once
from costspan.processors.codec import encode_outcome, encode_request
from costspan.processors.cost_attributes import cost_attributes, threshold_events
from costspan.providers import Endpoint
from costspan.runtime import Runtime

if TYPE_CHECKING:
    from costspan.budgets.engine import Reservation

TRACER_NAME = "costspan.instrumentation"


@dataclass(slots=True)
class Request:
    """What the instrumentor read from the call's arguments."""

    provider: str
    operation: str
    model: str
    stream: bool = False
    server_address: str | None = None
    server_port: int | None = None
    local: bool | None = None
    """Sent to a model server on this machine (see :class:`~costspan.providers.Endpoint`)."""
    messages: Any = None
    """Request content, kept in memory only for token counting and the prompt hash; never on the span."""
    max_tokens: int | None = None
    tools: list[Any] | None = None
    """Tool definitions and a JSON response schema: billed input, counted when usage must be estimated."""
    service_tier: str | None = None
    """The tier the request asks for; the response's, when it names one, wins."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Provider-specific span attributes (a region, a requested image size) that are not facts."""

    def sent_to(self, endpoint: Endpoint) -> Request:
        """Where the request goes: the server, and whether it is a model server on this machine."""
        self.server_address, self.server_port, self.local = endpoint.address, endpoint.port, endpoint.local
        return self

    def facts(self, runtime: Runtime) -> CallFacts:
        """The call's facts as known before it is sent: the ones the budget check and the span start with."""
        who = attribution.current()
        return CallFacts(
            provider=self.provider,
            request_model=self.model,
            operation=self.operation,
            stream=self.stream,
            service_tier=self.service_tier,
            server_address=self.server_address,
            server_port=self.server_port,
            local=self.local,
            started_at=datetime.now(timezone.utc),
            project=who.project or runtime.service_name,
            feature=who.feature,
            user=who.user,
            prompt_hash=(
                hash_messages(self.messages, runtime.prompt_salt)
                if runtime.prompt_salt is not None and self.messages is not None
                else None
            ),
        )


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
    __slots__ = (
        "_ended",
        "_extra",
        "_first_chunk_ns",
        "_lock",
        "_opened",
        "_reservation",
        "_start_ns",
        "facts",
        "request",
        "runtime",
        "span",
    )

    def __init__(self, runtime: Runtime, request: Request, facts: CallFacts) -> None:
        self.runtime = runtime
        self.request = request
        self.facts = facts
        self._opened = _opening_attributes(runtime, request, facts)
        """What the span started with: its end sets the outcome, and the service tier only if the answer changed it."""
        self._extra: dict[str, Any] = {}
        """Attributes of the response that are not facts (its id, finish reasons, output content)."""
        self.span = _tracer(wiring.tracer_provider(runtime.service_name)).start_span(
            f"{request.operation} {request.model}", kind=SpanKind.CLIENT, attributes=self._opened
        )
        self._start_ns = time.monotonic_ns()
        self._first_chunk_ns: int | None = None
        self._reservation: Reservation | None = None
        self._ended = False
        self._lock = threading.Lock()

    @classmethod
    def start(cls, runtime: Runtime, request: Request) -> LLMCall:
        """Open the span and ask the budgets; raises BudgetExceededError (span ended) if refused."""
        call = cls(runtime, request, request.facts(runtime))
        try:
            call._reservation = precheck(runtime, request, call.facts)
        except BudgetExceededError as exc:
            call.fail(exc)
            raise
        return call

    @classmethod
    def refused(cls, runtime: Runtime, request: Request, exc: BudgetExceededError) -> None:
        """Record a call the budgets refused on a span of its own (its client never ran, so made none)."""
        cls(runtime, request, request.facts(runtime)).fail(exc)

    def context(self, parent: Context) -> Context:
        """``parent`` with the span current, for while the request is sent, so HTTP client spans nest under it."""
        return trace.set_span_in_context(self.span, parent)

    def first_chunk(self) -> None:
        if self._first_chunk_ns is None:
            self._first_chunk_ns = time.monotonic_ns()

    def succeed(self, response: Response) -> None:
        """Account the call with the response's facts and end the span."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._record(response)
        except Exception:
            log_once("recording a response")
        self._settle()

    def fail(self, exc: BaseException, partial: Response | None = None) -> None:
        """End the span as failed. ``partial``: what a stream delivered before it broke; the
        provider bills the input it processed and the output it sent, so they are counted."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:  # runs in the application's own ``except``: nothing may escape from here
            self.facts.usage = NO_USAGE  # the precheck's input estimate is not what the call used
            self.facts.has_usage = False
            self.facts.usage_source = "none"
            if partial is not None:
                self._record(partial)
            self.facts.error_type = _error_type(exc)
            self.span.set_status(Status(StatusCode.ERROR, _describe(exc)))
        except Exception:
            log_once("recording a failed call")
        self._settle()

    def _settle(self) -> None:
        """Account the call (unless a nested span already did) and end the span, whatever happens."""
        span, facts = self.span, self.facts
        try:
            ids = span.get_span_context()
            facts.trace_id, facts.span_id = format_trace_id(ids.trace_id), format_span_id(ids.span_id)
            facts.duration_s = (time.monotonic_ns() - self._start_ns) / 1e9
            if self._first_chunk_ns is not None:
                facts.time_to_first_chunk_s = (self._first_chunk_ns - self._start_ns) / 1e9
            opened = self._opened
            values = encode_outcome(facts)
            tier = values.get(A.OPENAI_SERVICE_TIER)
            if tier is not None and tier == opened.get(A.OPENAI_SERVICE_TIER):
                del values[A.OPENAI_SERVICE_TIER]  # the tier asked for, confirmed by the answer
            values.update(self._extra)
            processor = wiring.processor()
            covered_by = processor.covering(ids.span_id)
            events: list[tuple[str, dict[str, Any]]] = []
            if covered_by is not None:
                # A span inside this one (another instrumentation's) was charged for the call.
                values[A.COUNTED_IN] = covered_by
                self.runtime.accounting.release(self._reservation)
            else:
                accounted = self.runtime.accounting.account(facts, self._reservation)
                values.update(cost_attributes(accounted, opened))
                events = threshold_events(accounted)
                processor.cover_ancestors(ids.span_id, facts.span_id)
            span.set_attributes(values)
            for name, attributes in events:
                span.add_event(name, attributes)
        except Exception:
            log_once("accounting a call")
        finally:
            span.end()

    def _record(self, response: Response) -> None:
        facts, runtime = self.facts, self.runtime
        values: dict[str, Any] = {}
        # What a provider sent is checked here, once: a model or an id that is not a string is no fact.
        facts.response_model = _text(response.model)
        if response_id := _text(response.response_id):
            values[A.RESPONSE_ID] = response_id
        if reasons := list(map(str, response.finish_reasons or ())):
            values[A.RESPONSE_FINISH_REASONS] = reasons
        if service_tier := _text(response.service_tier):
            facts.service_tier = service_tier
        usage, invalid = (None, frozenset[str]()) if response.usage is None else checked(response.usage)
        source = "reported"
        if invalid:
            usage = self._repair(usage, invalid, response)
            source = USAGE_INVALID
        elif usage is None and response.output_texts is not None:
            usage = self._estimate(response)
            source = "estimated"
        elif usage is not None and response.estimate_output and response.output_texts is not None:
            # Output includes the reasoning the provider already counted (Gemini reports thoughts
            # on every chunk); what arrived is counted on top.
            usage = replace(usage, output_tokens=usage.reasoning_tokens + self._count_output(response))
            source = "estimated"
        elif usage is not None:
            self._sample(usage, response)
        facts.usage = usage or NO_USAGE
        facts.has_usage = usage is not None
        facts.usage_source = source if usage is not None or invalid else "none"
        if runtime.settings.capture_content and response.output_texts:
            values[A.OUTPUT_MESSAGES] = _as_json(
                [{"role": "assistant", "parts": [{"type": "text", "content": "".join(response.output_texts)}]}]
            )
        self._extra.update(values)

    def _sample(self, usage: Usage, response: Response) -> None:
        """A share of the calls that report usage is re-counted locally to measure the estimator."""
        monitor, request = self.runtime.monitor, self.request
        texts = response.output_texts
        if monitor is None or request.messages is None or texts is None or not monitor.should_sample():
            return
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
        return usage if known or usage.images or usage.search_units else None

    def _estimate(self, response: Response) -> Usage:
        counter, request = self.runtime.counter, self.request
        messages = request.messages
        input_tokens = counter.count_messages(request.model, messages, request.tools) if messages is not None else 0
        return Usage(input_tokens=input_tokens, output_tokens=self._count_output(response))

    def _count_output(self, response: Response) -> int:
        """What the provider bills as output: the text, and the tool calls' names and arguments."""
        texts = [*(response.output_texts or ()), *response.tool_call_texts]
        return self.runtime.counter.count_text(self.request.model, texts) + PER_TOOL_CALL * response.tool_calls


def _opening_attributes(runtime: Runtime, request: Request, facts: CallFacts) -> dict[str, Any]:
    """What the span starts with: what sampling may look at (semconv: set at start) and who it is for."""
    attrs = encode_request(facts)
    if request.max_tokens is not None:
        attrs[A.REQUEST_MAX_TOKENS] = request.max_tokens
    attrs.update(request.attributes)
    if runtime.settings.capture_content and request.messages is not None:
        attrs[A.INPUT_MESSAGES] = _as_json(request.messages)
    return attrs


def precheck(runtime: Runtime, request: Request, facts: CallFacts | None = None) -> Reservation | None:
    """Ask the budgets before the request leaves: the reservation to settle, or BudgetExceededError.

    Nothing else escapes: a fault while estimating the worst case checks the call without it.
    """
    budgets = runtime.budgets
    if budgets is None or not budgets.checks_before_calls():
        return None
    facts = facts or request.facts(runtime)
    input_tokens = 0
    worst_case: int | None = None
    try:
        if request.messages is not None and budgets.wants_input_estimate():
            input_tokens = runtime.counter.count_messages(request.model, request.messages, request.tools)
            # The worst case: the request's max_tokens, else the cap a reserving budget configures.
            max_output = request.max_tokens if request.max_tokens is not None else budgets.output_token_cap()
            if max_output is not None:
                worst = Usage(input_tokens=input_tokens, output_tokens=max_output)
                worst_case = runtime.pricer.quote(request.provider, request.model, worst).total_nanos
    except Exception:
        log_once("estimating the worst case")
        input_tokens, worst_case = 0, None
    facts.usage = Usage(input_tokens=input_tokens)
    return runtime.accounting.precheck(facts, worst_case)


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

    def __init__(self, runtime: Runtime, request: Request, reservation: Reservation) -> None:
        self.runtime = runtime
        self.request = request
        self._reservation: Reservation | None = reservation
        self._lock = threading.Lock()

    def context(self, parent: Context) -> Context:
        return parent

    def first_chunk(self) -> None:
        pass

    def succeed(self, response: Response) -> None:
        self._release()

    def fail(self, exc: BaseException, partial: Response | None = None) -> None:
        self._release()  # the SDK's own span records what the stream delivered

    def _release(self) -> None:
        with self._lock:
            reservation, self._reservation = self._reservation, None
        self.runtime.accounting.release(reservation)


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()
_last_tracer: tuple[trace.TracerProvider, trace.Tracer] | None = None
"""The last provider asked and its tracer: a process has one, and the weak lookup costs a reference per call."""


def _tracer(provider: trace.TracerProvider) -> trace.Tracer:
    """One tracer per provider: the SDK builds a new Tracer object on every ``get_tracer`` call."""
    global _last_tracer
    last = _last_tracer
    if last is not None and last[0] is provider:
        return last[1]
    tracer = _tracers.get(provider)
    if tracer is None:
        from costspan import __version__

        tracer = _tracers[provider] = provider.get_tracer(TRACER_NAME, __version__)
    _last_tracer = (provider, tracer)
    return tracer


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


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
