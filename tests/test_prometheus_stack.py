"""End to end with the real servers: a real Prometheus scrapes costspan, evaluates the shipped rules
and answers every panel query and variable query of every shipped dashboard; a real Alertmanager
routes with the shipped config to a webhook the test runs.

Two scrape targets, each for what it proves:

* :class:`tests.fakes.prom_stack.RealCostspanTarget`, for the dashboards and the rules: a real
  costspan runtime (private registry, tests/harness.py) served with prometheus-client's
  ``start_http_server`` while real calls through the instrumented openai SDK hit the local
  provider stand-in: chats, streams, embeddings, an unpriced model, 500s and 429s, calls refused
  by an enforced budget, features past their label cap. Every panel must be valid PromQL and
  return data for that traffic; the core panels must return numbers.
* :class:`tests.fakes.prom_stack.FakeCostspanTarget`, only for the alert timing scenario: a budget
  must cross its levels *now*, with values the test pins (110 % here, 80 % there) and a projection
  alert pending on a known pace; real traffic cannot stage that in seconds. The fake serves
  exactly the real families and labels (tests/test_metrics_contract.py compares them).

Scrape and rule evaluation every second keep the whole module around 30 seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from costspan import runtime as runtime_module
from costspan.dashboards import build
from costspan.standin import ProviderServer
from tests.fakes.prom_stack import (
    REAL_TRAFFIC_YAML,
    FakeCostspanTarget,
    RealCostspanTarget,
    Stack,
    run_stack,
    wait_until,
)
from tests.harness import make_harness

pytestmark = pytest.mark.slow

DASHBOARDS = Path(build.HERE)
RULES = DASHBOARDS / "prometheus" / "costspan-rules.yml"
AM_CONFIG = DASHBOARDS / "alertmanager" / "alertmanager.yml"

# What Grafana substitutes, with values that suit a 1 s scrape interval and a short test.
SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$__range": "5m",
    "$__interval": "2s",
}
VARIABLE = re.compile(r"\$(\w+)")
# The panels a user opens first: they must show numbers for real traffic, not just "no error".
CORE_PANELS = {
    1: "spend today",
    7: "spend by provider",
    21: "budget utilization",
    23: "budget utilization over time",
    31: "requests by outcome",
    34: "latency quantiles",
    37: "tokens by type",
}


def substitute(expr: str) -> str:
    for name, value in SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    return VARIABLE.sub(".*", expr)  # every template variable at "All" (allValue .*)


# -- the real costspan endpoint under real traffic ---------------------------------------------


@pytest.fixture(scope="module")
def real_target(
    tmp_path_factory: pytest.TempPathFactory, provider_server_session: ProviderServer, openai_instrumented: Any
) -> Iterator[RealCostspanTarget]:
    server = provider_server_session
    server.reset()
    harness = make_harness(
        tmp_path_factory.mktemp("real-costspan"), REAL_TRAFFIC_YAML, COSTSPAN_ENDPOINTS=f"{server.base_url}/v1=openai"
    )
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="test-key", max_retries=0)
    target = RealCostspanTarget(harness, client, server).start()
    yield target
    target.stop()
    runtime_module.reset()
    server.reset()


@pytest.fixture(scope="module")
def real_stack(tmp_path_factory: pytest.TempPathFactory, real_target: RealCostspanTarget) -> Iterator[Stack]:
    yield from run_stack(tmp_path_factory.mktemp("real-prom"), [real_target.address], [RULES])


@pytest.fixture(scope="module")
def real_warm(real_stack: Stack, real_target: RealCostspanTarget) -> Stack:
    """Enough scrapes of moving counters for the 30 s rate windows, histograms and derivatives."""
    prom = real_stack.prometheus
    wait_until(prom.targets_up, 15, "the real costspan endpoint to be up")
    for expr in (
        "sum(rate(costspan_request_duration_seconds_count[30s])) > 0",
        "sum(rate(costspan_time_to_first_chunk_seconds_count[30s])) > 0",
        "sum(rate(costspan_estimation_error_ratio_count[30s])) > 0",
        'sum(rate(costspan_requests_total{outcome="blocked"}[30s])) > 0',
        "deriv(costspan_budget_spend_usd[1h]) > 0",
    ):
        prom.wait_for(expr, timeout=20)
    assert not real_target.errors, real_target.errors
    return real_stack


def panel_queries(options: build.Options) -> list[tuple[str, int, str, dict[str, Any]]]:
    return [
        (name, panel["id"], panel["title"], target)
        for name, dashboard in build.build_all(options).items()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def numbers(result: list[dict[str, Any]]) -> list[float]:
    """The finite values of an instant (vector) or range (matrix) result."""
    raw = [v for series in result for v in ([series["value"]] if "value" in series else series["values"])]
    return [x for _, text in raw if math.isfinite(x := float(text))]


@pytest.mark.parametrize(
    "options",
    [build.Options(), build.Options(lang="es", currency="EUR", per_usd=0.92)],
    ids=["en-USD", "es-EUR"],
)
def test_every_panel_query_is_valid_and_returns_data_for_real_traffic(
    real_warm: Stack, real_target: RealCostspanTarget, options: build.Options
) -> None:
    prom = real_warm.prometheus
    empty, blank_core = [], []
    results: dict[int, list[dict[str, Any]]] = {}
    per_query: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for dashboard, panel_id, title, target in panel_queries(options):
        expr = substitute(target["expr"])  # a PromQL error raises PromQLError here, naming the query
        if target.get("instant"):

            def instant(expr: str = expr) -> list[dict[str, Any]]:
                return prom.query(expr)

            result = wait_until(instant, 10, f"{dashboard} {panel_id}:{title}: {expr}")
        else:
            result = prom.query_range(expr, seconds=30)
        results.setdefault(panel_id, []).extend(result)
        per_query[(panel_id, target["refId"])] = result
        if not result:
            empty.append(f"{dashboard} panel {panel_id}:{title}: {expr}")
        elif panel_id in CORE_PANELS and not numbers(result):
            blank_core.append(f"{dashboard} panel {panel_id}:{title} (only NaN/Inf): {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert not blank_core, "core panels without numbers:\n" + "\n".join(blank_core)
    assert not real_target.errors, real_target.errors

    def legend(panel_id: int, label: str) -> set[str]:
        return {series["metric"].get(label, "") for series in results[panel_id]}

    # The traffic's situations are visible as themselves, not merely as "some data".
    assert legend(31, "outcome") == {"success", "error", "blocked"}
    assert {"input", "output", "cache_read", "reasoning"} <= legend(37, "type")
    assert legend(21, "budget") == {"global-daily", "capped-daily"}
    for ref_id in "ABC":  # p50, p95 and p99 latency, each a number
        assert numbers(per_query[(34, ref_id)]), f"latency query {ref_id} has no numbers"


def test_every_variable_query_returns_values_for_real_traffic(real_warm: Stack) -> None:
    pattern = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>\w+)\)$")
    for name, dashboard in build.build_all().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            parsed = pattern.match(variable["query"]["query"])
            assert parsed, f"{name}: ${variable['name']} is not a label_values() query"
            values = real_warm.prometheus.label_values(parsed["label"], substitute(parsed["match"]))
            assert values, f"{name}: ${variable['name']} has no values"
            assert "user" not in parsed["label"]


def test_rules_evaluate_on_real_metrics_and_alert_on_what_the_traffic_does(real_warm: Stack) -> None:
    prom = real_warm.prometheus

    def all_evaluated() -> bool:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return bool(rules) and all(r.get("lastEvaluation", "").startswith("20") for r in rules)

    wait_until(all_evaluated, 10, "every rule to be evaluated once")
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, broken
    # Recording rules produce series (the 7-day baseline has no history yet, by design).
    for record in ("provider_model_project:costspan_cost_usd:rate5m", "project:costspan_cost_usd:increase1h",
                   "provider_model:costspan_requests:error_ratio5m", "costspan:quota_utilization:ratio",
                   "costspan:budget_window_remaining_seconds", "costspan:budget_projected_spend_usd"):
        prom.wait_for(record, timeout=10)

    # The traffic blocks calls on an exceeded budget, calls an unpriced model and fails 2 calls in
    # 10: those alerts fire (or wait out their ``for:``); the healthy budget stays quiet.
    def states() -> dict[tuple[str, str], str] | None:
        found = {(a["labels"]["alertname"], a["labels"].get("budget", "")): a["state"] for a in prom.alerts()}
        wanted = {("CostspanBudgetExceeded", "capped-daily"), ("CostspanCallsBlocked", ""),
                  ("CostspanUnpricedModelCalls", ""), ("CostspanHighErrorRate", "")}
        return found if wanted <= set(found) else None

    found = wait_until(states, 15, f"the alerts real traffic causes\n{prom.log()}")
    assert found[("CostspanBudgetExceeded", "capped-daily")] == "firing"
    assert found[("CostspanCallsBlocked", "")] == "firing"
    assert found[("CostspanUnpricedModelCalls", "")] == "firing"
    assert found[("CostspanHighErrorRate", "")] == "pending"  # for: 5m
    assert not [key for key in found if key[1] == "global-daily"]


# -- the fake target, for alert timing with pinned values --------------------------------------


@pytest.fixture(scope="module")
def target() -> Iterator[FakeCostspanTarget]:
    fake = FakeCostspanTarget().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, target: FakeCostspanTarget) -> Iterator[Stack]:
    shipped_am = yaml.safe_load(AM_CONFIG.read_text())
    workdir = tmp_path_factory.mktemp("prom-stack")
    yield from run_stack(workdir, [target.address], [RULES], shipped_am)


@pytest.fixture(scope="module")
def warm(stack: Stack) -> Stack:
    """Enough scrapes for the 30 s rate windows and every series the traffic makes."""
    prom = stack.prometheus
    wait_until(prom.targets_up, 15, "the scrape target to be up")
    prom.wait_for('sum(rate(costspan_requests_total{outcome="blocked"}[30s])) > 0')
    prom.wait_for("count_over_time(costspan_budget_spend_usd[30s]) > 3")
    return stack


def test_budget_crossing_fires_and_alertmanager_delivers(warm: Stack, target: FakeCostspanTarget) -> None:
    prom, am, webhook = warm.prometheus, warm.alertmanager, warm.webhook
    assert am is not None and webhook is not None

    def budget_alerts(budget: str) -> list[dict[str, Any]]:
        return [a for a in prom.alerts() if a["labels"].get("budget") == budget
                and a["labels"]["alertname"].startswith("CostspanBudget")]

    # Quiet while under the warning level (rules have run for a while by now) ...
    assert prom.query('costspan_budget_utilization_ratio{budget="global-daily"} < 0.75')
    levels = {"CostspanBudgetWarning", "CostspanBudgetCritical", "CostspanBudgetExceeded"}
    assert [a for a in budget_alerts("global-daily") if a["labels"]["alertname"] in levels] == []
    # ... but the fake's pace (about $200 an hour against $50 a day) is projected past the limit:
    # the projection alert is pending (for: 15m) on live data.
    projected = wait_until(
        lambda: [a for a in budget_alerts("global-daily")
                 if a["labels"]["alertname"] == "CostspanBudgetProjectedExhaustion"],
        10, "the projection alert to be pending")
    assert projected[0]["state"] == "pending"

    # Cross every level at once: exceeded.
    target.set_budget_utilization("global-daily", "day", 1.1)
    # And the research budget past its warning level only: routed to its owners as well.
    target.set_budget_utilization("research-monthly", "month", 0.8)

    def delivered(alertname: str, budget: str) -> list[tuple[str, dict[str, Any]]]:
        return [(receiver, a) for receiver, a in webhook.alerts()
                if a["labels"].get("alertname") == alertname and a["labels"].get("budget") == budget
                and a["status"] == "firing"]

    exceeded = wait_until(lambda: delivered("CostspanBudgetExceeded", "global-daily"), 30,
                          f"CostspanBudgetExceeded at the webhook\nPrometheus:\n{prom.log()}\nAM:\n{am.log()}")
    receiver, alert = exceeded[0]
    assert receiver == "costspan-critical"
    assert alert["labels"] == {
        "alertname": "CostspanBudgetExceeded", "budget": "global-daily", "window": "day", "severity": "critical",
        "job": "costspan", "instance": target.address,
    }
    assert alert["annotations"]["summary"] == "Budget global-daily is exceeded"
    assert alert["annotations"]["runbook_url"].endswith("README.md#runbook-costspanbudgetexceeded")
    assert "110%" in alert["annotations"]["description"]

    # Prometheus fires all three levels; Alertmanager inhibits warning and critical for this budget.
    firing = {a["labels"]["alertname"] for a in budget_alerts("global-daily") if a["state"] == "firing"}
    assert {"CostspanBudgetWarning", "CostspanBudgetCritical", "CostspanBudgetExceeded"} <= firing

    def inhibited() -> dict[str, list[str]]:
        return {a["labels"]["alertname"]: a["status"]["inhibitedBy"] for a in am.alerts()
                if a["labels"].get("budget") == "global-daily"}

    def all_three() -> dict[str, list[str]] | None:
        states = inhibited()
        return states if len(states) >= 3 else None

    states = wait_until(all_three, 10, "the budget's alerts in Alertmanager")
    assert states["CostspanBudgetExceeded"] == []
    assert states["CostspanBudgetWarning"], "warning not inhibited by exceeded"
    assert states["CostspanBudgetCritical"], "critical not inhibited by exceeded"
    assert not delivered("CostspanBudgetWarning", "global-daily")

    # The research budget's warning reaches its owners (continue: true) and the team channel.
    research = wait_until(
        lambda: (r := {rcv for rcv, _ in delivered("CostspanBudgetWarning", "research-monthly")}) >= {
            "research-budget-owners", "costspan-team"} and r,
        30, "the research warning at both receivers")
    assert research == {"research-budget-owners", "costspan-team"}
