"""The metric contract, checked on the exposition a real costspan runtime serves after real calls.

Why this file: dashboards, alert rules and every user's own queries are written against metric
names and label names. A renamed label breaks them silently (PromQL returns nothing, not an
error), so the contract is checked where it is produced: real calls through the real openai SDK
against the local stand-in (a chat, streams, embeddings, an unpriced model, a 500 and a 429, calls
refused by an enforced budget, a feature past its label cap, a budget store outage), then the
registry as Prometheus would scrape it.

The contract is the Metrics table of the README (what users read), which must contain DESIGN.md's
table (copied below: DESIGN.md lives outside the repository) plus the documented additions.
:class:`tests.fakes.prom_stack.FakeCostspanTarget`, which the alert timing tests scrape, must serve
exactly the same families, types, label names and buckets, so the fake cannot drift either.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import costspan
from costspan.budgets.memory import MemoryStore
from costspan.standin import ProviderServer
from tests.fakes.prom_stack import REAL_TRAFFIC_YAML, FakeCostspanTarget, RealCostspanTarget, require_binary
from tests.harness import Harness

README = Path(__file__).resolve().parent.parent / "README.md"

BUDGET = frozenset({"budget", "window"})
QUOTA = frozenset({"quota", "unit", "window"})
PM = frozenset({"provider", "model"})
DESIGN_TABLE: dict[str, tuple[str, frozenset[str]]] = {
    "costspan_cost_usd_total": ("counter", PM | {"operation", "project", "feature"}),
    "costspan_tokens_total": ("counter", PM | {"type"}),
    "costspan_requests_total": ("counter", PM | {"operation", "outcome"}),
    "costspan_request_duration_seconds": ("histogram", PM | {"operation"}),
    "costspan_unpriced_requests_total": ("counter", PM),
    "costspan_budget_spend_usd": ("gauge", BUDGET),
    "costspan_budget_limit_usd": ("gauge", BUDGET),
    "costspan_budget_utilization_ratio": ("gauge", BUDGET),
    "costspan_quota_used": ("gauge", QUOTA),
    "costspan_quota_limit": ("gauge", QUOTA),
    "costspan_estimation_error_ratio": ("histogram", PM),
}
"""DESIGN.md, "Metrics": the names the dashboards and rules were designed against."""
DOCUMENTED_ADDITIONS: dict[str, frozenset[str]] = {"costspan_requests_total": frozenset({"error_type"})}
"""Labels added since DESIGN.md and documented in the README."""
DOCUMENTED_VALUES: dict[tuple[str, str], set[str]] = {
    ("costspan_requests_total", "outcome"): {"success", "error", "blocked"},
    ("costspan_tokens_total", "type"): {"input", "output", "cache_read", "cache_write", "reasoning"},
    ("costspan_quota_used", "unit"): {"requests", "tokens"},
    ("costspan_quota_used", "window"): {"minute", "day"},
}


@dataclass
class Family:
    """One exposed metric family: its type, the label-name sets of its samples, its buckets."""

    type: str
    label_sets: set[frozenset[str]] = field(default_factory=set)
    buckets: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)

    @property
    def labels(self) -> frozenset[str]:
        (only,) = self.label_sets or {frozenset()}
        return only


def parse(exposition: str) -> dict[str, Family]:
    """Families by their exposed name (counters with ``_total``), from ``# TYPE`` lines and samples.

    prometheus-client also writes a ``X_created`` gauge family for each counter and histogram (the
    series' creation time); those are kept, so the fake and the real exposition must agree on them.
    """
    families = {
        parts[2]: Family(parts[3])
        for line in exposition.splitlines()
        if line.startswith("# TYPE ") and (parts := line.split())
    }
    for parsed in text_string_to_metric_families(exposition):
        for sample in parsed.samples:
            name = sample.name
            if name not in families:
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                assert families.get(base, Family("")).type == "histogram", f"sample {name} of no family"
                name = base
            family = families[name]
            labels = dict(sample.labels)
            if "le" in labels:
                family.buckets.add(labels.pop("le"))
            family.label_sets.add(frozenset(labels))
            for key, value in labels.items():
                family.values.setdefault(key, set()).add(value)
    return families


def readme_contract() -> dict[str, tuple[str, frozenset[str]]]:
    """The README's Metrics table: ``| `name`, `name` | type | label, label (`values`) |``."""
    section = README.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    contract: dict[str, tuple[str, frozenset[str]]] = {}
    for row in section.splitlines():
        if not row.startswith("| `costspan_"):
            continue
        names, kind, labels = (cell.strip() for cell in row.strip().strip("|").split("|"))
        label_names = frozenset(x.strip() for x in re.sub(r"\([^)]*\)", "", labels).split(",") if x.strip())
        for name in re.findall(r"`(costspan_\w+)`", names):
            contract[name] = (kind, label_names)
    assert len(contract) >= len(DESIGN_TABLE), "the README's Metrics table was not found"
    return contract


def is_created(name: str, families: dict[str, Family]) -> bool:
    """A prometheus-client creation-time family (``X_created`` beside counter ``X_total`` or histogram ``X``)."""
    base = name.removesuffix("_created")
    return name.endswith("_created") and (f"{base}_total" in families or base in families)


@pytest.fixture
def real(
    make_runtime: Callable[..., Harness],
    provider_server: ProviderServer,
    openai_client: openai.OpenAI,
    openai_instrumented: Any,
) -> tuple[str, dict[str, Family]]:
    """The exposition of a runtime after two rounds of real calls and one budget store outage."""
    harness = make_runtime(REAL_TRAFFIC_YAML, COSTSPAN_ENDPOINTS=f"{provider_server.base_url}/v1=openai")
    traffic = RealCostspanTarget(harness, openai_client, provider_server)
    traffic.one_round()
    traffic.one_round()
    assert harness.runtime.monitor is not None
    harness.runtime.monitor.drain()

    def unreachable(self: MemoryStore, *charge: Any) -> tuple[int, ...]:
        raise ConnectionError("the budget store is down")

    with pytest.MonkeyPatch.context() as patch:  # an outage: the charge fails, is counted and kept
        patch.setattr(MemoryStore, "apply", unreachable)
        costspan.track(provider="openai", model="gpt-4o-mini", input_tokens=100, project="research")
    exposition = generate_latest(harness.registry).decode()
    return exposition, parse(exposition)


@pytest.mark.slow
def test_promtool_check_metrics_is_clean_on_the_real_exposition(real: tuple[str, dict[str, Family]]) -> None:
    exposition, _ = real
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_design_table_families_are_served_with_exactly_their_labels(real: tuple[str, dict[str, Family]]) -> None:
    _, families = real
    for name, (kind, labels) in DESIGN_TABLE.items():
        assert name in families, f"{name} is not served"
        family = families[name]
        assert family.type == kind, (name, family.type)
        expected = labels | DOCUMENTED_ADDITIONS.get(name, frozenset())
        assert family.label_sets == {expected}, (name, family.label_sets)


def test_every_readme_family_is_served_with_exactly_its_labels(real: tuple[str, dict[str, Family]]) -> None:
    _, families = real
    contract = readme_contract()
    for name, (kind, labels) in DESIGN_TABLE.items():  # the README documents DESIGN.md's table and more
        assert contract[name] == (kind, labels | DOCUMENTED_ADDITIONS.get(name, frozenset())), name
    missing = sorted(set(contract) - set(families))
    assert not missing, f"documented but not served: {missing}"
    for name, (kind, labels) in contract.items():
        family = families[name]
        assert family.type == kind, (name, family.type)
        assert family.label_sets == {labels}, f"{name}: served {family.label_sets}, documented {labels}"
    undocumented = sorted(n for n in families if n not in contract and not is_created(n, families))
    assert not undocumented, f"served but not in the README's Metrics table: {undocumented}"


def test_label_values_are_the_documented_ones(real: tuple[str, dict[str, Family]]) -> None:
    _, families = real
    for (name, label), allowed in DOCUMENTED_VALUES.items():
        assert families[name].values[label] <= allowed, (name, label, families[name].values[label])
    assert families["costspan_requests_total"].values["outcome"] == {"success", "error", "blocked"}
    assert families["costspan_requests_total"].values["error_type"] >= {
        "", "InternalServerError", "RateLimitError", "BudgetExceededError"}
    assert families["costspan_folded_label_values_total"].values["label"] == {"feature"}
    assert "other" in families["costspan_cost_usd_total"].values["feature"]
    assert families["costspan_store_errors_total"].values["store"] == {"memory"}


def test_the_fake_target_serves_the_same_families_labels_and_buckets(real: tuple[str, dict[str, Family]]) -> None:
    _, families = real
    fake_target = FakeCostspanTarget()
    for _ in range(300):
        fake_target.call()
    fake = parse(generate_latest(fake_target.registry).decode())

    def shape(found: dict[str, Family]) -> dict[str, tuple[str, set[frozenset[str]]]]:
        return {name: (f.type, f.label_sets) for name, f in found.items() if name.startswith("costspan_")}

    assert shape(fake) == shape(families)
    for name, family in families.items():
        if family.type == "histogram":
            assert fake[name].buckets == family.buckets, name
