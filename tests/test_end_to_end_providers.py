"""Zero code, nine client libraries: ``opentelemetry-instrument python examples/all_providers_app.py``.

The example application holds no costspan code. It calls OpenAI, Anthropic, Gemini, Groq, Ollama,
Bedrock (boto3), Mistral, Cohere and, through LiteLLM, DeepSeek (one plain call and one stream each) through
their real SDKs, in
its own process under the standard launcher, against one provider stand-in. Each billing provider
reaches the stand-in under its own path prefix, and ``COSTSPAN_ENDPOINTS`` names each prefix as the
provider it stands for, as a company gateway would be named; Ollama is on loopback and stays a free local model.

Each provider's stand-in answers with token counts of its own, so a call attributed to the wrong
provider, counted twice or missed shows up in the per-provider sums on /metrics.

Two set-ups. As installed: the anthropic SDK traces itself, so its own span is the call's one span,
and OpenLLMetry's Groq and OpenAI instrumentations (installed here as test peers) make those spans while
costspan's wrappers step aside; costspan prices those spans. Costspan alone:
``ANTHROPIC_OPEN_TELEMETRY=false`` and the peers disabled, so costspan's own instrumentors make every
span. Either way each call has exactly one priced span.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costspan.standin import ProviderServer, Scenario, Usage
from tests.fakes.prom_stack import free_port, wait_until
from tests.test_end_to_end import console_spans, scrape, total

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "all_providers_app.py"
LAUNCHER = Path(sys.executable).with_name("opentelemetry-instrument")
CALLS_PER_PROVIDER = 2  # the example makes one plain call and one stream per provider

# provider name on spans and metrics -> (path prefix on the stand-in, what the stand-in answers with).
# Distinct counts per provider: a call credited to the wrong provider cannot go unnoticed.
SERVED: dict[str, tuple[str, Usage]] = {
    "openai": ("/x-openai", Usage(input_tokens=101, output_tokens=11)),
    "anthropic": ("/x-anthropic", Usage(input_tokens=202, output_tokens=22)),
    "gcp.gemini": ("/x-gemini", Usage(input_tokens=303, output_tokens=33)),
    "groq": ("/x-groq", Usage(input_tokens=404, output_tokens=44)),
    "ollama": ("/api/", Usage(input_tokens=505, output_tokens=55)),
    "aws.bedrock": ("/x-bedrock", Usage(input_tokens=606, output_tokens=66)),
    "mistral_ai": ("/x-mistral", Usage(input_tokens=707, output_tokens=77)),
    "cohere": ("/x-cohere", Usage(input_tokens=808, output_tokens=88)),
    "deepseek": ("/x-deepseek", Usage(input_tokens=909, output_tokens=99)),  # through LiteLLM
}
BILLING = ("openai", "anthropic", "gcp.gemini", "groq", "aws.bedrock", "mistral_ai", "cohere", "deepseek")


@pytest.fixture
def standin() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        # Anything unexpected (a retry, an extra call) gets counts no provider is supposed to have.
        server.set_default(Scenario(usage=Usage(input_tokens=9_999, output_tokens=999)))
        for prefix, usage in SERVED.values():
            server.enqueue(Scenario(usage=usage, path_contains=prefix), times=CALLS_PER_PROVIDER)
        yield server


def app_environment(server: ProviderServer, tmp_path: Path, metrics_port: int, **extra: str) -> dict[str, str]:
    url = server.base_url
    prefixes = {provider: prefix for provider, (prefix, _) in SERVED.items()}
    endpoints = {
        f"{url}{prefixes['openai']}/v1": "openai",
        f"{url}{prefixes['anthropic']}": "anthropic",
        f"{url}{prefixes['gcp.gemini']}": "gcp.gemini",
        f"{url}{prefixes['groq']}": "groq",
        f"{url}{prefixes['aws.bedrock']}": "aws.bedrock",
        f"{url}{prefixes['mistral_ai']}": "mistral_ai",
        f"{url}{prefixes['cohere']}": "cohere",
        f"{url}{prefixes['deepseek']}": "deepseek",
    }
    return {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("COSTSPAN_", "OTEL_", "ANTHROPIC_", "AWS_", "MISTRAL_", "CO_", "DEEPSEEK_"))},
        "OPENAI_BASE_URL": f"{url}{prefixes['openai']}/v1",
        "OPENAI_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": f"{url}{prefixes['anthropic']}",
        "ANTHROPIC_API_KEY": "test-key",
        "GEMINI_BASE_URL": f"{url}{prefixes['gcp.gemini']}",
        "GEMINI_API_KEY": "test-key",
        "GROQ_BASE_URL": f"{url}{prefixes['groq']}",
        "GROQ_API_KEY": "test-key",
        "OLLAMA_HOST": url,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"{url}{prefixes['aws.bedrock']}",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-key",
        "MISTRAL_SERVER_URL": f"{url}{prefixes['mistral_ai']}",
        "MISTRAL_API_KEY": "test-key",
        "CO_API_URL": f"{url}{prefixes['cohere']}",
        "CO_API_KEY": "test-key",
        "DEEPSEEK_API_BASE": f"{url}{prefixes['deepseek']}/v1",
        "DEEPSEEK_API_KEY": "test-key",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OTEL_SERVICE_NAME": "all-providers-app",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "COSTSPAN_PROMETHEUS_PORT": str(metrics_port),
        "COSTSPAN_ENDPOINTS": ",".join(f"{prefix}={provider}" for prefix, provider in endpoints.items()),
        "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'costspan.db'}",
        "COSTSPAN_LEDGER": "off",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "EXAMPLE_LINGER_SECONDS": "2",
        **extra,
    }


def run_app(server: ProviderServer, tmp_path: Path, **extra: str) -> tuple[dict[Any, float], str, str]:
    """Run the example under the launcher; /metrics is read while it lingers, the spans after it exits."""
    port = free_port()
    process = subprocess.Popen(
        [str(LAUNCHER), sys.executable, str(APP)],
        env=app_environment(server, tmp_path, port, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    expected_calls = CALLS_PER_PROVIDER * len(SERVED)
    try:

        def all_calls_counted() -> dict[Any, float] | None:
            if process.poll() is not None:
                raise AssertionError(f"the app exited before /metrics was read:\n{process.communicate()[1]}")
            samples = scrape(port)
            return samples if total(samples, "costspan_requests_total") >= expected_calls else None

        samples = wait_until(all_calls_counted, timeout=60, what="every call of the app on /metrics")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    return samples, stdout, stderr


def served_tokens(server: ProviderServer) -> dict[str, tuple[int, int]]:
    """(input, output) tokens the stand-in reported per provider, from the scenarios it answered with."""
    sums: dict[str, tuple[int, int]] = {}
    for request in server.requests:
        provider = next(name for name, (prefix, _) in SERVED.items() if request.path.startswith(prefix))
        usage = request.scenario.usage
        assert usage is not None and usage.input_tokens is not None and usage.output_tokens is not None
        before = sums.get(provider, (0, 0))
        sums[provider] = (before[0] + usage.input_tokens, before[1] + usage.output_tokens)
    return sums


SETUPS: dict[str, dict[str, str]] = {
    "as-installed": {},
    "costspan-alone": {
        "ANTHROPIC_OPEN_TELEMETRY": "false",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "groq,openai,openai_v2",
    },
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_every_provider_priced_once_on_spans_and_metrics(standin: ProviderServer, tmp_path: Path, setup: str) -> None:
    extra = SETUPS[setup]

    samples, stdout, stderr = run_app(standin, tmp_path, **extra)

    assert "Traceback" not in stderr, stderr
    served = served_tokens(standin)
    assert Counter(r.path.split("/")[1] for r in standin.requests) == {
        "x-openai": 2, "x-anthropic": 2, "x-gemini": 2, "x-groq": 2, "api": 2, "x-bedrock": 2, "x-mistral": 2,
        "x-cohere": 2, "x-deepseek": 2,
    }

    # Spans: exactly one charged LLM span per call, named for its provider, carrying what that provider served.
    # As installed, the official openai-v2 instrumentation (a gateway test peer, registered under the same
    # entry point name as OpenLLMetry's) also makes a span of each openai call, around OpenLLMetry's: it
    # is counted in the inner one, never charged.
    llm = [s for s in console_spans(stdout) if "gen_ai.request.model" in s.get("attributes", {})]
    charged = [s for s in llm if "costspan.cost.counted_in" not in s["attributes"]]
    claimed = {f"0x{s['attributes']['costspan.cost.counted_in']}"
               for s in llm if "costspan.cost.counted_in" in s["attributes"]}
    assert claimed <= {s["context"]["span_id"] for s in charged}
    if setup == "costspan-alone":
        assert claimed == set()
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for span in charged:
        by_provider.setdefault(span["attributes"]["gen_ai.provider.name"], []).append(span)
    assert {p: len(spans) for p, spans in by_provider.items()} == dict.fromkeys(SERVED, CALLS_PER_PROVIDER)
    for provider, spans in by_provider.items():
        _, usage = SERVED[provider]
        for span in spans:
            attrs = span["attributes"]
            assert span["kind"] == "SpanKind.CLIENT"
            assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (
                usage.input_tokens, usage.output_tokens
            ), (provider, span["name"])
            if provider == "ollama":
                assert (attrs["costspan.cost.status"], attrs["costspan.cost.usd"]) == ("free", 0.0)
            else:
                assert attrs["costspan.cost.status"] == "priced", span
                assert attrs["costspan.cost.usd"] > 0
    anthropic_names = {s["name"] for s in by_provider["anthropic"]}
    if setup == "as-installed":
        assert anthropic_names == {"anthropic.messages.create"}  # the SDK's span, and none of costspan's
    else:
        assert anthropic_names == {"chat claude-sonnet-4-6"}
        # costspan's instrumentors made every span (they mark where the request went).
        assert all("costspan.endpoint.local" in s["attributes"] for s in llm)

    # Metrics: per provider, the calls, the tokens the stand-in served and the cost on the spans.
    for provider in SERVED:
        assert total(samples, "costspan_requests_total", provider=provider, outcome="success") == CALLS_PER_PROVIDER
        assert total(samples, "costspan_tokens_total", provider=provider, type="input") == served[provider][0]
        assert total(samples, "costspan_tokens_total", provider=provider, type="output") == served[provider][1]
        span_nanos = sum(round(s["attributes"]["costspan.cost.usd"] * 1e9) for s in by_provider[provider])
        assert round(total(samples, "costspan_cost_usd_total", provider=provider) * 1e9) == span_nanos
    for provider in BILLING:
        assert total(samples, "costspan_cost_usd_total", provider=provider) > 0
    assert total(samples, "costspan_cost_usd_total", provider="ollama") == 0
    assert total(samples, "costspan_requests_total", outcome="error") == 0
    assert total(samples, "costspan_unpriced_requests_total") == 0
