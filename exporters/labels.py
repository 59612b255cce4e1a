"""Bounded label values, so a runaway set of model or project names cannot explode a TSDB.

Each label keeps the first N distinct values it sees in this process; later ones become
``other``. One limiter serves every metric sink of a runtime (Prometheus and OTLP), so a value
is folded the same way everywhere: a dashboard over the Prometheus endpoint and one over a
collector's OTLP translation agree on which models are ``other``, and the caps bound the series
of both backends, not just one.

Folding is made visible: every fold calls the limiter's listeners (each sink keeps a
``costspan_folded_label_values_total`` counter, by label). A call's labels are resolved once per
call, by the accounting service, however many sinks record it, so a folded call counts once.

The caps come from ``metrics.label_caps`` in costspan.yaml (:func:`parse_label_caps`). User
ids have no cap because they never become labels at all.

The length of a value is capped too (:func:`cut`): the number of series is bounded by the caps,
but not the size of each one, and one 100 kB project name would otherwise be written into every
series that carries it at every scrape.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from costspan.accounted import CallLabels
from costspan.errors import ConfigError, check_keys

if TYPE_CHECKING:
    from costspan.facts import CallFacts
    from costspan.settings import Settings

OTHER = "other"
DEFAULT_CAPS: Mapping[str, int] = {
    "model": 200,
    "project": 100,
    "feature": 100,
    "provider": 50,
    "operation": 20,
    "error_type": 50,
}
"""Distinct values per label and process. ``model`` covers every model-valued label: the
Prometheus ``model`` label and OTLP's ``gen_ai.request.model`` and ``gen_ai.response.model``."""

MAX_VALUE_LENGTH = 128
"""Characters per label value; a longer value is recorded as :func:`cut` writes it."""
_DIGEST_HEX = 8

FoldListener = Callable[[str], None]
_KNOWN_LIMIT = 4096
"""Distinct name combinations whose labels are kept; within the caps, a real fleet has far fewer."""


def cut(value: str) -> str:
    """``value`` within :data:`MAX_VALUE_LENGTH`: a longer one keeps its first 119 characters,
    then ``~`` and 8 hex digits of the SHA-256 of the whole value (128 in all), so two long names
    that differ only near the end stay two series, and the same name always cuts the same way."""
    if len(value) <= MAX_VALUE_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_HEX]
    return f"{value[: MAX_VALUE_LENGTH - _DIGEST_HEX - 1]}~{digest}"


class LabelLimiter:
    """Caps the distinct values of each label; later values fold into :data:`OTHER`.

    Thread-safe: sinks record from whichever thread ended the call. The empty value (a call with
    no feature, say) never uses a slot and is never folded.
    """

    def __init__(self, caps: Mapping[str, int] | None = None, on_fold: FoldListener | None = None) -> None:
        self.caps: dict[str, int] = {**DEFAULT_CAPS, **(caps or {})}
        self._seen: dict[str, set[str]] = {name: set() for name in self.caps}
        self._lock = threading.Lock()
        self._known: dict[tuple[str | None, ...], CallLabels] = {}
        """Labels of calls with nothing folded, by the names they were folded from."""
        self._listeners: list[FoldListener] = []
        if on_fold is not None:
            self._listeners.append(on_fold)

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelLimiter:
        """A limiter with the caps of ``metrics.label_caps`` (checked by ``load_settings``)."""
        return cls(settings.label_caps)

    def add_fold_listener(self, listener: FoldListener) -> None:
        """Call ``listener(label)`` on each fold (each sink's folded-values counter)."""
        with self._lock:
            self._listeners.append(listener)

    def fold(self, label: str, value: str | None) -> tuple[str, bool]:
        """``(value to record, whether it was folded)``, without telling the listeners."""
        value = value or ""
        if len(value) > MAX_VALUE_LENGTH:
            value = cut(value)
        seen = self._seen.get(label)
        if seen is None or not value or value in seen:
            return value, False
        with self._lock:
            if value in seen:
                return value, False
            if len(seen) < self.caps[label]:
                seen.add(value)
                return value, False
        return OTHER, True

    def __call__(self, label: str, value: str | None) -> str:
        """The value to record for one measurement; a fold is reported to the listeners."""
        result, folded = self.fold(label, value)
        if folded:
            self._notify((label,))
        return result

    def call_labels(self, facts: CallFacts) -> CallLabels:
        """The folded labels of one call. The accounting service resolves them once per call and
        hands them to every sink in the :class:`~costspan.accounted.Accounted` it makes, so each
        label folded for the call is reported once, not once per sink.
        """
        key = (
            facts.provider,
            facts.request_model,
            facts.response_model,
            facts.operation,
            facts.project,
            facts.feature,
            facts.error_type,
        )
        known = self._known.get(key)
        if known is not None:
            return known
        fold = self.fold
        folded: list[str] = []
        provider, hit = fold("provider", facts.provider)
        if hit:
            folded.append("provider")
        request_model, hit_request = fold("model", facts.request_model)
        response_model: str | None = None
        hit_response = False
        if facts.response_model:
            response_model, hit_response = fold("model", facts.response_model)
        if hit_request or hit_response:
            folded.append("model")
        operation, hit = fold("operation", facts.operation)
        if hit:
            folded.append("operation")
        project, hit = fold("project", facts.project)
        if hit:
            folded.append("project")
        feature, hit = fold("feature", facts.feature)
        if hit:
            folded.append("feature")
        error_type, hit = fold("error_type", facts.error_type)
        if hit:
            folded.append("error_type")
        labels = CallLabels(
            provider=provider,
            model=response_model if response_model is not None else request_model,
            operation=operation,
            project=project,
            feature=feature,
            error_type=error_type,
            request_model=request_model,
            response_model=response_model,
        )
        if folded:
            self._notify(folded)
        elif len(self._known) < _KNOWN_LIMIT and all(len(name) <= MAX_VALUE_LENGTH for name in key if name):
            # Nothing folded: the same names give the same labels for the rest of the process
            # (a value seen keeps its slot), so the next call with them skips the folding. Names
            # that had to be cut are not kept: the memo must not hold on to a sender's huge strings.
            self._known[key] = labels
        return labels

    def _notify(self, labels: tuple[str, ...] | list[str]) -> None:
        for listener in self._listeners:
            for label in labels:
                listener(label)


def parse_label_caps(section: object, source: str) -> dict[str, int]:
    """The ``metrics:`` section's ``label_caps`` checked: known labels only, each a positive whole number.

    Unknown names are errors rather than ignored, so a typo (``models:``) cannot silently leave
    the default in place; ``user`` gets its own message because it is never a label.
    """
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(source, "metrics", "expected a mapping (label_caps: {model: 200, ...})")
    check_keys(source, "metrics", section, {"label_caps"})
    caps = section.get("label_caps")
    if caps is None:
        return {}
    if not isinstance(caps, dict):
        raise ConfigError(source, "metrics.label_caps", "expected a mapping of label name to a number of values")
    result: dict[str, int] = {}
    for name, cap in caps.items():
        key = f"metrics.label_caps.{name}"
        if name in ("user", "user_id", "user.id"):
            raise ConfigError(source, key, "user ids are never metric labels, so they have no cap")
        check_keys(source, "metrics.label_caps", {name: cap}, DEFAULT_CAPS)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(source, key, f"expected a whole number of values, at least 1, got {cap!r}")
        result[str(name)] = cap
    return result
