"""The accounting service: the one path every call's money takes.

Price the call, charge its budgets, hand the result to the sinks (Prometheus, OTLP metrics, the
ledger). costspan's own instrumentors and ``track`` call it directly with the facts they hold;
the span processor calls it with the facts it decodes from other instrumentations' spans, and the
gateway with those it decodes from OTLP. Whoever calls, a call is accounted the same way, and
nothing here raises into the application except a budget's deliberate refusal before a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from costspan.accounted import NO_CHARGE, Accounted, CallLabels, Sink
from costspan.facts import USAGE_INVALID, CallFacts, checked
from costspan.logs import log_once
from costspan.pricing import FREE, PRICED, UNPRICED, Pricer, Quote
from costspan.pricing.names import vendor
from costspan.providers import LOCAL_PROVIDERS, is_local_endpoint, named_provider

if TYPE_CHECKING:
    from costspan.budgets.engine import BudgetEngine, Reservation
    from costspan.exporters.labels import LabelLimiter


@dataclass
class Accounting:
    pricer: Pricer
    limiter: LabelLimiter
    budgets: BudgetEngine | None = None
    sinks: Sequence[Sink] = field(default_factory=list)
    endpoints: tuple[tuple[str, str], ...] = ()
    """``endpoints:`` from the settings: base URLs named as a provider (or as a local server)."""
    service_name: str = "unknown_service"
    """The project of a call that names none."""
    draining: bool = field(default=False, init=False)
    """Set when the process is asked to stop: from then on the ledger commits each call's row
    before the call returns (see :meth:`drain`)."""
    _later: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def account(self, facts: CallFacts, reservation: Reservation | None = None) -> Accounted:
        """Price, charge and record one call. Each stage is isolated: one failing never hides another."""
        if facts.project is None:
            facts.project = self.service_name
        return self._charge_and_record(facts, self.checked_price(facts), reservation)

    def account_later(self, facts: CallFacts) -> Accounted:
        """Price now, charge and record on a worker thread: for a span that ends on an event loop
        while the budget store may wait on a lock or the network. The result has no budget state."""
        if facts.project is None:
            facts.project = self.service_name
        quote = self.checked_price(facts)
        if self._later is None:
            self._later = ThreadPoolExecutor(max_workers=1, thread_name_prefix="costspan-charge")
        self._later.submit(self._charge_and_record, facts, quote, None)
        return Accounted(facts, quote)

    def charges_wait(self) -> bool:
        """Whether accounting a call may wait: on the budget store's file lock or network, or, once
        the process is stopping, on the ledger's commit. Then it is not done on an event loop."""
        return self.draining or (self.budgets is not None and self.budgets.waits_on_store())

    def drain(self) -> None:
        """The process is stopping (SIGTERM): the charges on the worker thread are done, and the
        calls accounted from now on wait for their rows, so they end off any event loop."""
        self.draining = True
        self.flush()

    def flush(self) -> None:
        """Wait for the charges handed to the worker thread (SIGTERM, exit)."""
        later = self._later
        if later is not None:
            later.submit(lambda: None).result(timeout=10)

    def close(self) -> None:
        later, self._later = self._later, None
        if later is not None:
            later.shutdown(wait=True)

    def _charge_and_record(self, facts: CallFacts, quote: Quote, reservation: Reservation | None) -> Accounted:
        charge = NO_CHARGE
        if self.budgets is not None:
            try:
                charge = self.budgets.charge(facts, quote, reservation)
            except Exception:
                log_once("budgets.charge")
        try:
            labels: CallLabels | None = self.limiter.call_labels(facts)
        except Exception:
            log_once("labels")
            labels = None
        accounted = Accounted(facts, quote, charge, labels)
        for sink in self.sinks:
            try:
                sink.record(accounted)
            except Exception:
                log_once(f"sink {type(sink).__name__}")
        return accounted

    def precheck(self, facts: CallFacts, worst_case_nanos: int | None = None) -> Reservation | None:
        """Ask the budgets before a request leaves: the reservation to settle, or BudgetExceededError
        (the one exception that reaches the application, deliberately)."""
        if self.budgets is None:
            return None
        from costspan.errors import BudgetExceededError

        try:
            return self.budgets.precheck(facts, worst_case_nanos=worst_case_nanos)
        except BudgetExceededError:
            raise
        except Exception:
            log_once("budgets.precheck")
            return None

    def release(self, reservation: Reservation | None) -> None:
        """Give back a reservation whose call will not be charged (it failed before it was sent)."""
        if reservation is not None and self.budgets is not None:
            try:
                self.budgets.release(reservation)
            except Exception:
                log_once("budgets.release")

    # -- pricing -----------------------------------------------------------------------------
    def checked_price(self, facts: CallFacts) -> Quote:
        """The price of a call whose usage is checked first: counts no provider would send are
        never priced, charged or refunded, so they are dropped here and the facts say so. Also what
        a copy of an already accounted span is priced with (the gateway), charging nothing."""
        usage, invalid = checked(facts.usage)
        if invalid:
            facts.usage, facts.usage_source = usage, USAGE_INVALID
            counted = usage.images or usage.search_units
            facts.has_usage = bool({"input_tokens", "output_tokens"} - invalid) or bool(counted)
        return self.price(facts)

    def price(self, facts: CallFacts) -> Quote:
        if facts.declared_cost_nanos is not None:
            return Quote(
                PRICED, input_nanos=facts.declared_cost_nanos, key="declared", source="declared by the application"
            )
        if not facts.has_usage and facts.outcome == "success":
            # Not free and not zero: the call happened and its size is unknown.
            return Quote(UNPRICED, reason="the call reported no usage")
        quote = self._quote(facts, facts.model)
        if quote.status == FREE and not self._named_local(facts):
            quote = self._vendor_list_price(facts) or quote
        if quote.status == UNPRICED and facts.response_model and facts.request_model not in ("", facts.model):
            # A response model no catalog knows (OpenAI answers ``davinci-002`` as ``davinci:2023-07-21-v2``):
            # the request model's price, with the key saying so, before giving up.
            fallback = self._quote(facts, facts.request_model)
            if fallback.status == PRICED:
                return replace(fallback, key=f"{fallback.key} (request model; {facts.response_model} unknown)")
        return quote

    def is_local(self, facts: CallFacts) -> bool:
        """Served by a model server on this machine; judged once per call and kept in the facts."""
        if facts.local is None:
            facts.local = is_local_endpoint(facts.server_address, facts.server_port, facts.provider, self.endpoints)
        return facts.local

    def _vendor_list_price(self, facts: CallFacts) -> Quote | None:
        """A vendor's model on a loopback endpoint (a LiteLLM proxy, a company sidecar, an SSH tunnel)
        is billed by the vendor: priced at its list price when a catalog has one, else None (a model
        only a local server has stays free). Not for Ollama's daemon, nor for a model with an Ollama-style
        tag (``deepseek-r1:8b``): those are open weights running here, whatever a vendor calls alike."""
        billed_by = vendor(facts.model)
        model = facts.model.lower()
        if billed_by is None or facts.provider == "ollama" or (":" in model and not model.startswith("ft:")):
            return None
        quote = self.pricer.quote(
            billed_by, facts.model, facts.usage, at=facts.started_at, service_tier=facts.service_tier
        )
        if quote.status != PRICED:
            return None
        return replace(quote, source=f"{quote.source}; by model name on a local endpoint")

    def _named_local(self, facts: CallFacts) -> bool:
        """``endpoints:`` names this local server as a local model server: free, whatever the model."""
        named = named_provider(facts.server_address, facts.server_port, self.endpoints)
        return named is not None and named in LOCAL_PROVIDERS

    def _quote(self, facts: CallFacts, model: str) -> Quote:
        return self.pricer.quote(
            facts.provider,
            model,
            facts.usage,
            at=facts.started_at,
            service_tier=facts.service_tier,
            server_address=facts.server_address if self.is_local(facts) else None,
        )
