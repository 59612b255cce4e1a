"""The shipped alert rules and Alertmanager config, checked by the real tools.

promtool and amtool are what users will run; a rules file that only looks right in review
is not enough. Missing binaries skip locally and fail in CI (see tests/fakes/prom_stack.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from costspan.dashboards import build
from tests.fakes.prom_stack import FakeCostspanTarget, require_binary

HERE = Path(build.HERE)
PROM_DIR = HERE / "prometheus"
RULES = PROM_DIR / "costspan-rules.yml"
RULE_TESTS = sorted(PROM_DIR.glob("*.test.yml"))
AM_CONFIG = HERE / "alertmanager" / "alertmanager.yml"
README = HERE.parent / "README.md"
STACK = Path(__file__).resolve().parent.parent / "examples" / "stack"
RUNBOOK_BASE = "https://github.com/costspan/costspan/blob/main/README.md#"
SEVERITIES = {"info", "warning", "critical"}


def run(argv: list[str], cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, input=stdin.decode() if stdin else None, capture_output=True,
                            text=True, timeout=120, check=False)
    return result


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


@pytest.mark.slow
def test_promtool_check_rules() -> None:
    result = run([require_binary("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    assert len(RULE_TESTS) >= 2
    result = run([require_binary("promtool"), "test", "rules", *(p.name for p in RULE_TESTS)], cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert {
        "CostspanBudgetWarning", "CostspanBudgetCritical", "CostspanBudgetExceeded",
        "CostspanBudgetProjectedExhaustion", "CostspanSpendSpike", "CostspanUnpricedModelCalls",
        "CostspanHighErrorRate", "CostspanQuotaNearLimit", "CostspanCallsBlocked", "CostspanMetricsEndpointDown",
    } <= set(names)
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}runbook-{rule['alert'].lower()}"


def test_budget_levels_are_costspans_defaults() -> None:
    exprs = {rule["alert"]: rule["expr"].strip() for rule in alerts()}
    assert exprs["CostspanBudgetWarning"] == "costspan_budget_utilization_ratio >= 0.75"
    assert exprs["CostspanBudgetCritical"] == "costspan_budget_utilization_ratio >= 0.9"
    assert exprs["CostspanBudgetExceeded"] == "costspan_budget_utilization_ratio >= 1"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
                for expected in check.get("exp_alerts") or []:
                    assert "severity" in expected["exp_labels"], check["alertname"]
                    assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_runbook_anchors_exist_in_the_readme_section() -> None:
    headings = {github_slug(line.lstrip("#")) for line in README.read_text().splitlines() if line.startswith("#")}
    missing = {f"runbook-{rule['alert'].lower()}" for rule in alerts()} - headings
    assert not missing


@pytest.mark.slow
@pytest.mark.parametrize("config", [AM_CONFIG, STACK / "alertmanager.yml"], ids=["shipped", "example-stack"])
def test_amtool_check_config(config: Path) -> None:
    result = run([require_binary("amtool"), "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "CostspanBudgetExceeded", "severity": "critical", "budget": "global-daily"},
         "costspan-critical"),
        ({"alertname": "CostspanBudgetWarning", "severity": "warning", "budget": "global-daily"}, "costspan-team"),
        ({"alertname": "CostspanBudgetWarning", "severity": "warning", "budget": "research-monthly"},
         "research-budget-owners,costspan-team"),
        ({"alertname": "CostspanUnpricedModelCalls", "severity": "info", "provider": "x", "model": "y"},
         "costspan-webhook"),
    ],
)
def test_alertmanager_routes_by_severity_and_budget(labels: dict[str, str], receivers: str) -> None:
    result = run([require_binary("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}",
                  *(f"{k}={v}" for k, v in labels.items())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_inhibition_exceeded_silences_lower_levels_of_the_same_budget() -> None:
    rules = yaml.safe_load(AM_CONFIG.read_text())["inhibit_rules"]
    exceeded = next(r for r in rules if r["source_matchers"] == ['alertname="CostspanBudgetExceeded"'])
    assert "CostspanBudgetWarning" in exceeded["target_matchers"][0]
    assert exceeded["equal"] == ["budget", "window"]


@pytest.mark.slow
def test_promtool_check_metrics_on_a_realistic_exposition() -> None:
    target = FakeCostspanTarget()
    for _ in range(500):
        target.call()
    exposition = generate_latest(target.registry)
    for name in ("costspan_cost_usd_total", "costspan_tokens_total", "costspan_requests_total",
                 "costspan_request_duration_seconds_bucket", "costspan_unpriced_requests_total",
                 "costspan_budget_utilization_ratio", "costspan_quota_limit", "costspan_estimation_error_ratio_bucket"):
        assert name.encode() in exposition
    result = run([require_binary("promtool"), "check", "metrics"], stdin=exposition)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


@pytest.mark.slow
def test_example_stack_prometheus_config_is_valid(tmp_path: Path) -> None:
    shutil.copyfile(STACK / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copyfile(RULES, tmp_path / "costspan-rules.yml")
    result = run([require_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_stack_collector_config_receives_otlp_and_exports_prometheus() -> None:
    config = yaml.safe_load((STACK / "otel-collector.yaml").read_text())
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert "prometheus" in config["exporters"]
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["otlp"]
    assert "prometheus" in config["service"]["pipelines"]["metrics"]["exporters"]
    compose = yaml.safe_load((STACK / "docker-compose.yml").read_text())
    assert {"prometheus", "alertmanager", "grafana", "otel-collector"} <= set(compose["services"])


def test_missing_binaries_skip_locally_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_binary("promtool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_binary("promtool")
