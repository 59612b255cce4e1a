"""The zero-code path, end to end: ``opentelemetry-instrument python examples/openai_app.py``.

The example application holds no costspan code. It runs in its own process under the standard
launcher, talks to the provider stand-in over real HTTP, and we read what a user would read: the
spans the console exporter prints, the /metrics endpoint (scraped by a real Prometheus), the OTLP
metrics a collector would receive, and the ledger after a SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from costspan.dashboards import build
from costspan.standin import ProviderServer, Scenario, Usage
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.prom_stack import Prometheus, free_port, run_stack, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "openai_app.py"
LAUNCHER = Path(sys.executable).with_name("opentelemetry-instrument")
DASHBOARDS = Path(build.HERE)
CALLS = 4  # the example makes: chat, stream, embeddings, async chat


@pytest.fixture
def standin() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        server.set_default(Scenario(usage=Usage(input_tokens=120, output_tokens=30)))
        yield server


def launch(server: ProviderServer, tmp_path: Path, linger: float, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COSTSPAN_", "OTEL_"))},
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": f"{server.base_url}/v1",
        "OTEL_SERVICE_NAME": "openai-app",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "COSTSPAN_PROMETHEUS_PORT": str(port),
        "COSTSPAN_ENDPOINTS": f"{server.base_url}/v1=openai",
        "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'costspan.db'}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "EXAMPLE_LINGER_SECONDS": str(linger),
        # OpenLLMetry's OpenAI instrumentation is installed as a test peer; these tests are about
        # costspan's own instrumentor unless they say otherwise.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
        **env,
    }
    process = subprocess.Popen(
        [str(LAUNCHER), sys.executable, str(APP)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    return process, port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


def wait_for_calls(process: subprocess.Popen[str], port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    def ready() -> Any:
        if process.poll() is not None:
            raise AssertionError(f"the app exited early:\n{process.stderr.read() if process.stderr else ''}")
        try:
            samples = scrape(port)
        except OSError:
            return None
        return samples if total(samples, "costspan_requests_total") >= CALLS else None

    return wait_until(ready, timeout=60, what="the app's four calls on /metrics")


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The console exporter prints one JSON object per span."""
    decoder, spans, index = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", index)) != -1:
        span, index = decoder.raw_decode(stdout, start)
        spans.append(span)
    return spans


def latest_points(receiver: OtlpReceiver, name: str) -> list[tuple[Any, Any]]:
    """The points of the last export that carried ``name`` (cumulative: later exports repeat earlier sums)."""
    found: list[tuple[Any, Any]] = []
    for request in list(receiver.metrics):
        points = [
            (metric, point)
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in getattr(metric, metric.WhichOneof("data")).data_points
        ]
        found = points or found
    return found


def attribute_pairs(point: Any) -> set[tuple[str, str]]:
    return {(a.key, a.value.string_value) for a in point.attributes}


def test_launcher_prices_every_call_on_spans_and_metrics(standin: ProviderServer, tmp_path: Path) -> None:
    process, port = launch(standin, tmp_path, linger=3)
    samples = wait_for_calls(process, port)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert total(samples, "costspan_requests_total", provider="openai", outcome="success") == CALLS
    assert total(samples, "costspan_tokens_total", provider="openai", type="input") == CALLS * 120
    assert total(samples, "costspan_cost_usd_total", provider="openai") > 0
    assert total(samples, "costspan_unpriced_requests_total") == 0
    assert total(samples, "costspan_request_duration_seconds_count") == CALLS

    llm = [s for s in console_spans(stdout) if "gen_ai.request.model" in s.get("attributes", {})]
    assert sorted(s["name"] for s in llm) == sorted(
        ["chat gpt-4o-mini", "chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    )
    for span in llm:
        attrs = span["attributes"]
        assert span["kind"] == "SpanKind.CLIENT"
        assert attrs["gen_ai.usage.input_tokens"] == 120
        assert attrs["costspan.cost.status"] == "priced"
        assert attrs["costspan.cost.usd"] > 0
    # The spans and the counter agree to the nano-dollar (both come from one integer quote).
    span_sum = sum(round(s["attributes"]["costspan.cost.usd"] * 1e9) for s in llm)
    assert span_sum == round(total(samples, "costspan_cost_usd_total") * 1e9)


def test_counted_when_the_sampler_drops_every_span(standin: ProviderServer, tmp_path: Path) -> None:
    process, port = launch(standin, tmp_path, linger=2, OTEL_TRACES_SAMPLER="always_off")
    samples = wait_for_calls(process, port)
    stdout, _ = process.communicate(timeout=60)

    assert total(samples, "costspan_requests_total", outcome="success") == CALLS
    assert total(samples, "costspan_cost_usd_total") > 0
    assert [s for s in console_spans(stdout) if "gen_ai.request.model" in s.get("attributes", {})] == []


def test_otlp_metrics_reach_a_collector(standin: ProviderServer, tmp_path: Path) -> None:
    """A short-lived process: everything, budget gauges included, arrives in the export at exit."""
    config = tmp_path / "costspan.yaml"
    config.write_text("budgets:\n  - name: team-daily\n    limit_usd: 10\n    window: day\n")
    with OtlpReceiver() as receiver:
        process, _ = launch(
            standin,
            tmp_path,
            linger=0,
            COSTSPAN_CONFIG=str(config),
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{receiver.endpoint}/v1/metrics",
        )
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr

        usage = latest_points(receiver, "gen_ai.client.token.usage")
        cost = latest_points(receiver, "costspan.cost.usd")
        budget_spend = latest_points(receiver, "costspan.budget.spend_usd")
    assert usage, "no gen_ai.client.token.usage points were exported"
    input_points = [p for _, p in usage if ("gen_ai.token.type", "input") in attribute_pairs(p)]
    assert sum(p.sum for p in input_points) == CALLS * 120
    assert sum(p.as_double for _, p in cost) > 0
    assert budget_spend, "the budget gauges were not exported before the process exited"
    assert budget_spend[-1][1].as_double == pytest.approx(sum(p.as_double for _, p in cost), rel=1e-6)


def test_real_prometheus_scrapes_the_application(standin: ProviderServer, tmp_path: Path) -> None:
    process, port = launch(standin, tmp_path, linger=20)
    try:
        wait_for_calls(process, port)
        prometheus = Prometheus([f"127.0.0.1:{port}"], tmp_path / "prometheus")
        try:
            result = prometheus.wait_for('sum(costspan_requests_total{provider="openai"}) == 4', timeout=20)
            assert float(result[0]["value"][1]) == CALLS
            cost = prometheus.query("sum(costspan_cost_usd_total)")
            assert float(cost[0]["value"][1]) > 0
        finally:
            prometheus.stop()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_sigterm_loses_nothing_from_the_ledger(standin: ProviderServer, tmp_path: Path) -> None:
    process, port = launch(standin, tmp_path, linger=60, COSTSPAN_LEDGER="on")
    wait_for_calls(process, port)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert time.monotonic() - started < 20  # SIGTERM ends the process promptly, after the flush

    env = {**os.environ, "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'costspan.db'}", "COSTSPAN_LEDGER": "on"}
    exported = subprocess.run(
        [sys.executable, "-m", "costspan.cli.main", "export", "--format", "jsonl", "--since", "1d"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert len(rows) == CALLS
    assert all(row["provider"] == "openai" for row in rows)


def test_an_exceeded_budget_alerts_through_prometheus_and_alertmanager(standin: ProviderServer, tmp_path: Path) -> None:
    """The shipped rules and Alertmanager routing, fed by the real application's budget gauges."""
    config = tmp_path / "costspan.yaml"
    config.write_text("budgets:\n  - name: tiny-daily\n    limit_usd: 0.0001\n    window: day\n")
    shipped = yaml.safe_load((DASHBOARDS / "alertmanager" / "alertmanager.yml").read_text())
    process, port = launch(standin, tmp_path, linger=40, COSTSPAN_CONFIG=str(config))
    try:
        samples = wait_for_calls(process, port)
        assert total(samples, "costspan_budget_utilization_ratio", budget="tiny-daily") >= 1
        rules = [DASHBOARDS / "prometheus" / "costspan-rules.yml"]
        stack_gen = run_stack(tmp_path / "stack", [f"127.0.0.1:{port}"], rules, shipped)
        stack = next(stack_gen)
        webhook = stack.webhook
        assert webhook is not None
        try:
            delivered = wait_until(
                lambda: [a for _, a in webhook.alerts() if a["labels"].get("alertname") == "CostspanBudgetExceeded"],
                timeout=30,
                what="CostspanBudgetExceeded delivered by Alertmanager",
            )
            assert delivered[0]["labels"]["budget"] == "tiny-daily"
            assert delivered[0]["labels"]["severity"] == "critical"
        finally:
            stack_gen.close()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def priced_llm_spans(stdout: str) -> list[dict[str, Any]]:
    return [s for s in console_spans(stdout) if s.get("attributes", {}).get("costspan.cost.status")]


def test_a_peer_instrumentations_spans_are_priced_without_ours(standin: ProviderServer, tmp_path: Path) -> None:
    """OpenLLMetry's opentelemetry-instrumentation-openai makes the spans; costspan's processor prices them."""
    process, port = launch(standin, tmp_path, linger=3, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_openai")
    samples = wait_for_calls(process, port)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    priced = priced_llm_spans(stdout)
    assert len(priced) == CALLS
    assert all(s["attributes"]["costspan.cost.status"] == "priced" for s in priced)
    assert not any(s["name"].startswith(("chat ", "embeddings ")) for s in priced)  # none of ours
    assert total(samples, "costspan_requests_total", provider="openai", outcome="success") == CALLS
    assert total(samples, "costspan_tokens_total", provider="openai", type="input") == CALLS * 120
    assert total(samples, "costspan_cost_usd_total", provider="openai") > 0


def test_with_a_peer_and_ours_each_call_counts_once(standin: ProviderServer, tmp_path: Path) -> None:
    process, port = launch(standin, tmp_path, linger=3, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="")
    samples = wait_for_calls(process, port)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert len(priced_llm_spans(stdout)) == CALLS
    assert total(samples, "costspan_requests_total") == CALLS
    assert total(samples, "costspan_tokens_total", type="input") == CALLS * 120


def test_counted_with_no_tracing_set_up_and_the_sampler_off(standin: ProviderServer, tmp_path: Path) -> None:
    """No tracer provider at all (costspan keeps a private one) and OTEL_TRACES_SAMPLER=always_off."""
    script = (
        "import openai\n"
        "from prometheus_client import REGISTRY\n"
        "from costspan.instrumentation.openai import OpenAIInstrumentor\n"
        "OpenAIInstrumentor().instrument()\n"
        "openai.OpenAI(max_retries=0).chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', "
        "'content': 'hi'}])\n"
        "print(REGISTRY.get_sample_value('costspan_requests_total', {'provider': 'openai', 'model': 'gpt-4o-mini',"
        " 'operation': 'chat', 'outcome': 'success', 'error_type': ''}))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COSTSPAN_", "OTEL_"))},
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": f"{standin.base_url}/v1",
        "COSTSPAN_ENDPOINTS": f"{standin.base_url}/v1=openai",
        "COSTSPAN_STORE": "memory://",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1.0"
