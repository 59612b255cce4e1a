"""A real Prometheus and Alertmanager for tests, on free loopback ports, with configs in tmp dirs.

Why real binaries: what we ship (rules, dashboards' PromQL, Alertmanager routing and inhibition)
is only proven by the programs that will run it. The Debian packages ``prometheus`` and
``prometheus-alertmanager`` provide them; when missing, tests skip, except in CI (``CI=true``)
where a missing binary is a failure, so CI never goes green by skipping.

The scrape target is pluggable:

* :class:`RealCostspanTarget` serves a real costspan runtime's registry while real SDK calls
  (through the instrumented ``openai`` client, against the local provider stand-in) keep running
  in a background thread: chats, streams with and without usage, embeddings, an unpriced model,
  HTTP errors, calls blocked by an enforced budget, features past their label cap. This is what
  dashboards are proven against.
* :class:`FakeCostspanTarget` serves the same family and label names with values a test can pin
  (a budget at 110 % now), for alert timing scenarios that real traffic cannot stage in seconds.
  tests/test_metrics_contract.py compares its exposition with the real one, so it cannot drift.

Any other ``host:port`` serving /metrics, such as the instrumented example app, can be scraped
instead or as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from costspan.exporters.metric_constants import DURATION_BUCKETS, ERROR_RATIO_BUCKETS, TTFC_BUCKETS

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Binaries and small helpers


def require_binary(name: str) -> str:
    """Path of ``name``; skips the test when absent, fails it when absent in CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must install it", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    detail = f" ({last_error})" if last_error else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def http_json(url: str, data: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # Prometheus answers 400/422 with a JSON error body
        payload = exc.read()
        try:
            return json.loads(payload)
        except ValueError:
            raise exc from None


class _Process:
    """A subprocess whose output goes to a log file quoted in failures, stopped by its own pid."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.name = Path(argv[0]).name
        self._log_handle = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log_handle, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_handle.close()

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    return bool(response.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        try:
            wait_until(ready, timeout, f"{url} to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None


# ---------------------------------------------------------------------------------------------
# Webhook receiver (Alertmanager delivers here)


class WebhookReceiver:
    """Collects the JSON bodies Alertmanager posts (its webhook format, version 4)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.payloads.append({"path": self.path, **body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """Every delivered alert as (receiver name, alert)."""
        with self._lock:
            return [(p.get("receiver", ""), alert) for p in self.payloads for alert in p.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# Alertmanager and Prometheus


class Alertmanager:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        binary = require_binary("prometheus-alertmanager")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self._process = _Process(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: a single instance on loopback
                "--log.level=warn",
            ],
            workdir / "alertmanager.log",
        )
        self._process.wait_ready(f"{self.url}/-/ready")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode(filters)
        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts?{query}")
        return result

    def log(self) -> str:
        return self._process.tail()

    def stop(self) -> None:
        self._process.stop()


class Prometheus:
    """One Prometheus scraping ``targets`` every second and evaluating ``rule_files`` every second."""

    def __init__(
        self,
        targets: Iterable[str],
        workdir: Path,
        rule_files: Iterable[Path] = (),
        alertmanager: Alertmanager | None = None,
        job: str = "costspan",
    ) -> None:
        binary = require_binary("prometheus")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = []
        for index, source in enumerate(rule_files):
            copy = workdir / f"rules-{index}-{source.name}"
            shutil.copyfile(source, copy)
            rules.append(str(copy))
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
        if alertmanager is not None:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]
            }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self._process = _Process(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
        )
        self._process.wait_ready(f"{self.url}/-/ready")

    def api(self, path: str, **params: str) -> Any:
        """Call the HTTP API (queries as POST forms, so long ones fit); raises on ``status: error``."""
        url = f"{self.url}/api/v1/{path}"
        if path in ("query", "query_range"):
            body = http_json(url, params)
        else:
            body = http_json(f"{url}?{urllib.parse.urlencode(params)}" if params else url)
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')} (params {params})")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now: the result vector (a scalar becomes a one-element list)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, seconds: int = 60, step: str = "2s") -> list[dict[str, Any]]:
        end = time.time()
        data = self.api("query_range", query=expr, start=str(end - seconds), end=str(end), step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": match})
        return values

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def wait_for(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns a non-empty result (e.g. a scrape landed)."""
        try:
            return wait_until(lambda: self.query(expr), timeout, f"PromQL {expr!r} to return data")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def log(self) -> str:
        return self._process.tail()

    def stop(self) -> None:
        self._process.stop()


class PromQLError(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# A scrape target with the metric contract


@dataclass
class _Model:
    provider: str
    model: str
    input_per_mtok: float | None  # None: unpriced
    output_per_mtok: float
    operation: str = "chat"


MODELS = (
    _Model("openai", "gpt-4o-mini", 0.15, 0.60),
    _Model("openai", "gpt-4o", 2.50, 10.0),
    _Model("openai", "text-embedding-3-small", 0.02, 0.0, "embeddings"),
    _Model("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    _Model("gcp.gemini", "gemini-2.5-flash", 0.30, 2.50),
    _Model("openrouter", "mystery-model-1", None, 0.0),
)
PROJECTS = (("research", "search"), ("support", "chatbot"), ("support", "summarize"))
ERROR_TYPES = ("RateLimitError", "APITimeoutError", "InternalServerError")
WINDOW_SECONDS = {"day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}


@dataclass
class FakeCostspanTarget:
    """Serves costspan's Prometheus contract with moving, realistic values.

    A background thread makes ``calls_per_second`` simulated LLM calls: priced from token counts,
    some streamed (time to first chunk), some failing with an error type, some blocked, some to an
    unpriced model, a sample with an estimation error. Budgets and quotas are gauges the thread
    keeps consistent with the spend (``spend = utilization x limit``); a test moves a budget with
    :meth:`set_budget_utilization` to cross a threshold.
    """

    calls_per_second: float = 20.0
    seed: int = 7
    budgets: dict[tuple[str, str], float] = field(
        default_factory=lambda: {("global-daily", "day"): 50.0, ("research-monthly", "month"): 500.0}
    )
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        pm = ["provider", "model"]
        self.cost = Counter("costspan_cost_usd", "Cost of LLM calls in US dollars.",
                            [*pm, "operation", "project", "feature"], registry=r)
        self.tokens = Counter("costspan_tokens", "Tokens used by LLM calls.", [*pm, "type"], registry=r)
        self.requests = Counter("costspan_requests", "LLM calls by outcome.",
                                [*pm, "operation", "outcome", "error_type"], registry=r)
        self.duration = Histogram("costspan_request_duration_seconds", "Duration of LLM calls.",
                                  [*pm, "operation"], registry=r, buckets=DURATION_BUCKETS)
        self.ttfc = Histogram("costspan_time_to_first_chunk_seconds", "Time to the first chunk of streams.",
                              [*pm, "operation"], registry=r, buckets=TTFC_BUCKETS)
        self.unpriced = Counter("costspan_unpriced_requests", "LLM calls with no known price.", pm, registry=r)
        self.invalid_usage = Counter("costspan_invalid_usage", "LLM calls that reported impossible usage.", pm,
                                     registry=r)
        self.estimation = Histogram("costspan_estimation_error_ratio", "Relative token estimation error.", pm,
                                    registry=r, buckets=ERROR_RATIO_BUCKETS)
        self.folded = Counter("costspan_folded_label_values", "Label values folded into 'other'.", ["label"],
                              registry=r)
        bw = ["budget", "window"]
        self.budget_spend = Gauge("costspan_budget_spend_usd", "Budget spend in the window, USD.", bw, registry=r)
        self.budget_limit = Gauge("costspan_budget_limit_usd", "Budget limit, USD.", bw, registry=r)
        self.budget_util = Gauge("costspan_budget_utilization_ratio", "Budget spend over limit.", bw, registry=r)
        self.budget_projected = Gauge("costspan_budget_projected_spend_usd", "Projected spend at window end, USD.",
                                      bw, registry=r)
        self.budget_exhaustion = Gauge("costspan_budget_exhaustion_seconds", "Seconds until the limit at this pace.",
                                       bw, registry=r)
        quw = ["quota", "unit", "window"]
        self.quota_used = Gauge("costspan_quota_used", "Quota use in the window.", quw, registry=r)
        self.quota_limit = Gauge("costspan_quota_limit", "Quota limit.", quw, registry=r)
        self.store_errors = Counter("costspan_store_errors", "Budget store operations that failed.", ["store"],
                                    registry=r)
        self.store_errors.labels("sqlite")  # present at 0, as after a first store failure was recovered
        self.ledger_dropped = Counter("costspan_ledger_rows_dropped", "Ledger rows given up.", registry=r)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._spend = {key: 0.05 * limit for key, limit in self.budgets.items()}
        self._initial_spend = dict(self._spend)
        self._started = time.monotonic()
        self._pinned: dict[tuple[str, str], float] = {}
        self._quota_minute = 0
        self._stop = threading.Event()
        self.port = 0
        for (budget, window), limit in self.budgets.items():
            self.budget_limit.labels(budget, window).set(limit)
        self.quota_limit.labels("groq-free-8b", "requests", "minute").set(30)
        self.quota_limit.labels("groq-free-8b", "tokens", "day").set(1_000_000)
        self._update_budgets()

    # -- serving
    def start(self) -> FakeCostspanTarget:
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread = threading.Thread(target=self._run, name="fake-costspan-traffic", daemon=True)
        self._thread.start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def set_budget_utilization(self, budget: str, window: str, ratio: float) -> None:
        """Pin a budget at ``ratio`` of its limit (e.g. 1.1: exceeded); traffic no longer moves it."""
        with self._lock:
            self._pinned[(budget, window)] = ratio
            self._update_budgets()

    # -- traffic
    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.calls_per_second):
            with self._lock:
                self.call()

    def call(self) -> None:
        """One simulated LLM call, recorded as costspan records it."""
        rng = self._rng
        m = rng.choice(MODELS)
        project, feature = rng.choice(PROJECTS)
        roll = rng.random()
        if roll < 0.04:
            self.requests.labels(m.provider, m.model, m.operation, "blocked", "BudgetExceededError").inc()
            return
        if roll < 0.10:
            self.requests.labels(m.provider, m.model, m.operation, "error", rng.choice(ERROR_TYPES)).inc()
            self.duration.labels(m.provider, m.model, m.operation).observe(rng.uniform(0.05, 2.0))
            return
        input_tokens = rng.randint(200, 4000)
        output_tokens = 0 if m.operation == "embeddings" else rng.randint(20, 800)
        cache_read = input_tokens // 2 if rng.random() < 0.3 else 0
        reasoning = output_tokens // 3 if m.model == "claude-sonnet-4-5" else 0
        for token_type, count in (("input", input_tokens), ("output", output_tokens), ("cache_read", cache_read),
                                  ("cache_write", 100 if cache_read else 0), ("reasoning", reasoning)):
            if count:
                self.tokens.labels(m.provider, m.model, token_type).inc(count)
        if roll > 0.98:
            self.invalid_usage.labels(m.provider, m.model).inc()
        if m.input_per_mtok is None:
            self.unpriced.labels(m.provider, m.model).inc()
            cost = 0.0
        else:
            cost = (input_tokens * m.input_per_mtok + output_tokens * m.output_per_mtok) / 1e6
        self.cost.labels(m.provider, m.model, m.operation, project, feature).inc(cost)
        self.requests.labels(m.provider, m.model, m.operation, "success", "").inc()
        duration = rng.lognormvariate(-0.5, 0.6)
        self.duration.labels(m.provider, m.model, m.operation).observe(duration)
        if m.operation == "chat" and rng.random() < 0.5:
            self.ttfc.labels(m.provider, m.model, m.operation).observe(duration * rng.uniform(0.1, 0.4))
        if rng.random() < 0.2:
            self.estimation.labels(m.provider, m.model).observe(abs(rng.gauss(0, 0.03)))
        if rng.random() < 0.05:  # a feature name past its cap
            self.folded.labels("feature").inc()
        for key in self._spend:
            if key[0] == "global-daily" or project == "research":
                self._spend[key] += cost
        self._quota_minute = (self._quota_minute + 1) % 30
        self.quota_used.labels("groq-free-8b", "requests", "minute").set(self._quota_minute)
        self.quota_used.labels("groq-free-8b", "tokens", "day").inc(input_tokens + output_tokens)
        self._update_budgets()

    def _update_budgets(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1.0)
        for key, limit in self.budgets.items():
            spend = self._pinned[key] * limit if key in self._pinned else self._spend[key]
            self.budget_spend.labels(*key).set(spend)
            self.budget_util.labels(*key).set(spend / limit)
            # As costspan projects: the window's pace so far, carried to the window's end (here a
            # fixed half window left) and to the limit.
            pace = (self._spend[key] - self._initial_spend[key]) / elapsed
            left = WINDOW_SECONDS[key[1]] / 2
            self.budget_projected.labels(*key).set(spend + pace * left)
            if spend >= limit:
                self.budget_exhaustion.labels(*key).set(0)
            elif pace > 0:
                self.budget_exhaustion.labels(*key).set((limit - spend) / pace)


# ---------------------------------------------------------------------------------------------
# A real costspan runtime under real SDK traffic

REAL_TRAFFIC_YAML = """\
metrics:
  label_caps: {feature: 3}
estimation:
  sample_rate: 1.0
budgets:
  - {name: global-daily, limit_usd: 5000, window: day}
  - {name: capped-daily, match: {project: capped}, limit_usd: 0.000001, window: day, enforce: true}
quotas:
  - {name: openai-tier, match: {provider: openai}, requests_per_minute: 100000, tokens_per_day: 100000000}
"""
"""Settings for :class:`RealCostspanTarget`: a budget that keeps spending (so it has a time to
exhaustion) at a pace far below its limit (so its alerts, the projection included, stay quiet),
one that blocks its project after its first call, a quota, every reported call
re-counted (estimation error samples) and a feature cap the traffic passes (folded values)."""

REAL_MESSAGES: Any = [{"role": "user", "content": "Summarise the customer's ticket in one line."}]


class RealCostspanTarget:
    """A real costspan runtime's Prometheus registry, served on loopback, moved by real calls.

    ``harness`` is a runtime built with a private registry (tests/harness.py) whose settings name
    the stand-in as ``openai`` and use :data:`REAL_TRAFFIC_YAML`; ``client`` is an ``openai.OpenAI``
    pointed at the stand-in, with costspan's instrumentor enabled. :meth:`one_round` makes one of
    every kind of call; :meth:`start` makes one round at once (so every series exists before the
    first scrape) and then keeps making rounds in a background thread until :meth:`stop`.
    Anything unexpected a call raises stops the traffic and is kept in :attr:`errors`.
    """

    def __init__(self, harness: Any, client: Any, server: Any, pause: float = 0.2) -> None:
        from costspan.standin import Scenario, Usage

        self.harness, self.client, self.server, self.pause = harness, client, server, pause
        self.rounds = 0
        self.errors: list[BaseException] = []
        self.port = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: Any = None
        # Cache reads and reasoning on every answer, so the cache and reasoning shares have data.
        server.set_default(Scenario(usage=Usage(input_tokens=1200, output_tokens=300, cached_tokens=400,
                                                reasoning_tokens=100)))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def one_round(self) -> None:
        """One of each: chat, streams (usage reported and not), embeddings, an unpriced model with a
        feature past its cap, a 500 and a 429 from the provider, and calls an enforced budget refuses."""
        import openai

        import costspan
        from costspan.standin import Scenario, Usage

        client, n = self.client, self.rounds
        with costspan.attribute(project="research", feature="search", user=f"user-{n % 5}"):
            client.chat.completions.create(model="gpt-4o-mini", messages=REAL_MESSAGES)
        with costspan.attribute(project="support", feature="chatbot"):
            for options in ({"stream_options": {"include_usage": True}}, {}):
                stream = client.chat.completions.create(model="gpt-4o-mini", messages=REAL_MESSAGES, stream=True,
                                                        **options)
                for _ in stream:
                    pass
        with costspan.attribute(project="research", feature="embed"):
            client.embeddings.create(model="text-embedding-3-small", input="the customer's ticket")
        with costspan.attribute(project="research", feature=f"experiment-{n}"):
            client.chat.completions.create(model="mystery-model-1", messages=REAL_MESSAGES)
        with costspan.attribute(project="research", feature="search"):  # usage no provider would send
            self.server.enqueue(Scenario(usage=Usage(input_tokens=-5000, output_tokens=-5000)))
            client.chat.completions.create(model="gpt-4o-mini", messages=REAL_MESSAGES)
        with costspan.attribute(project="support", feature="chatbot"):
            for status, error in ((500, openai.InternalServerError), (429, openai.RateLimitError)):
                self.server.enqueue(Scenario(status=status))
                with contextlib.suppress(error):
                    client.chat.completions.create(model="gpt-4o", messages=REAL_MESSAGES)
        with costspan.attribute(project="capped", feature="search"):
            for _ in range(2):  # the first call of the run spends the budget, then calls are refused
                with contextlib.suppress(costspan.BudgetExceededError):
                    client.chat.completions.create(model="gpt-4o-mini", messages=REAL_MESSAGES)
        self.rounds += 1

    def start(self) -> RealCostspanTarget:
        self.one_round()
        self.port = free_port()
        self._http, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.harness.registry)
        self._thread = threading.Thread(target=self._run, name="real-costspan-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.pause):
            try:
                self.one_round()
            except BaseException as exc:  # surfaced by the test through self.errors
                self.errors.append(exc)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


@dataclass
class Stack:
    """Prometheus (+ Alertmanager + webhook) scraping a target: what the end-to-end tests drive."""

    prometheus: Prometheus
    alertmanager: Alertmanager | None
    webhook: WebhookReceiver | None
    targets: list[str]


def alertmanager_config_for_test(shipped: dict[str, Any], webhook_url: str) -> dict[str, Any]:
    """The shipped routing, grouping and inhibition, with every receiver's integrations replaced
    by the test's webhook (receiver names kept, so the routing is still observable) and short
    timers so a delivery happens within a second or two."""
    config = json.loads(json.dumps(shipped))
    for receiver in config["receivers"]:
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]

    def shorten(route: dict[str, Any]) -> None:
        for timer in ("group_wait", "group_interval"):
            if timer in route or route is config["route"]:
                route[timer] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


def run_stack(
    workdir: Path,
    targets: list[str],
    rule_files: Iterable[Path] = (),
    alertmanager_config: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """Start what is asked (Alertmanager only with a config), yield it, stop it all."""
    webhook = WebhookReceiver() if alertmanager_config is not None else None
    alertmanager = None
    prometheus = None
    try:
        if alertmanager_config is not None and webhook is not None:
            alertmanager = Alertmanager(alertmanager_config_for_test(alertmanager_config, webhook.url), workdir / "am")
        prometheus = Prometheus(targets, workdir / "prom", rule_files, alertmanager)
        yield Stack(prometheus, alertmanager, webhook, targets)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if alertmanager is not None:
            alertmanager.stop()
        if webhook is not None:
            webhook.close()
