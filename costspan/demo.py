"""The ``costspan demo`` workload: real client SDKs, a local stand-in for the providers, the real pipeline.

Everything a user would see in production runs for real here: the instrumentors, the processor,
pricing from the catalog, budgets and quotas on the embedded SQLite store, the ledger, the
/metrics endpoint. Only the providers are simulated, by a stand-in on 127.0.0.1 that answers in
each provider's wire format, and the demo says so before it starts.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from rich.console import Console

import costspan
from costspan import attribute_names as A
from costspan.cli.console import table_console
from costspan.settings import load_settings

PROJECTS = ("research", "support-bot", "search")
USERS = tuple(f"user-{i:02d}" for i in range(1, 9))
FEATURES = ("summarise", "chat", "classify", "embed")
MESSAGES: Any = [{"role": "user", "content": "Summarise this support ticket in one line, please."}]
"""Typed ``Any``: each SDK declares its own message types for the same JSON."""


class SpanPrinter(SpanExporter):
    """One readable line per LLM span: what was called, its tokens, its cost and its budget."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def export(self, spans: Any) -> SpanExportResult:
        for span in spans:
            self.console.print(describe(span), soft_wrap=True)
        return SpanExportResult.SUCCESS


def describe(span: ReadableSpan) -> str:
    a = span.attributes or {}
    if A.REQUEST_MODEL not in a:
        return f"[dim]{span.name}[/dim]"
    provider = str(a.get(A.PROVIDER, "?"))
    if a.get(A.ERROR_TYPE) == "BudgetExceededError":
        return f"[bold red]BLOCKED[/] {provider:10s} {span.name:40s} (refused before sending)"
    tokens = f"in {a.get(A.INPUT_TOKENS, 0):>5} out {a.get(A.OUTPUT_TOKENS, 0):>4}"
    status = a.get(A.COST_STATUS)
    cost = f"${a.get(A.COST_USD, 0.0):.6f}" if status == "priced" else str(status)
    budget = ""
    utilization = a.get(A.BUDGET_UTILIZATION)
    if A.BUDGET_NAME in a and isinstance(utilization, float | int):
        budget = f"  {a[A.BUDGET_NAME]!s} {utilization * 100:5.1f}% {a.get(A.BUDGET_STATUS)!s}"
    events = "".join(
        f"  [yellow]threshold {e.attributes.get(A.BUDGET_THRESHOLD)} crossed on {e.attributes.get(A.BUDGET_NAME)}[/]"
        for e in span.events
        if e.name == A.BUDGET_THRESHOLD_EVENT and e.attributes
    )
    stream = " (stream)" if a.get(A.REQUEST_STREAM) else ""
    return f"{provider:10s} {span.name + stream:40s} {tokens}  {cost:>11s}{budget}{events}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(state: Path, urls: dict[str, str]) -> str:
    return textwrap.dedent(
        f"""
        # Written by `costspan demo`. The endpoints below are the local stand-ins, named as the
        # providers they imitate: the billing provider each call is counted under. (Unnamed, a
        # loopback endpoint is a local server: a model a vendor's list price covers, such as
        # gpt-4o-mini through a LiteLLM proxy, is priced at that price with
        # costspan.endpoint.local=true; any other model is free. `URL: local` forces free.)
        store: sqlite:///{state / "costspan.db"}
        endpoints:
          {urls["openai"]}/v1: openai
          {urls["anthropic"]}: anthropic
          {urls["groq"]}: groq
          {urls["gemini"]}: gcp.gemini
          {urls["bedrock"]}: aws.bedrock
          {urls["mistral"]}: mistral_ai
          {urls["cohere"]}: cohere
        budgets:
          - name: demo-daily
            limit_usd: 0.006
            window: day
          - name: research-weekly
            match: {{project: research}}
            limit_usd: 0.0008
            window: week
            enforce: true
          - name: per-user-daily
            per: user
            limit_usd: 0.02
            window: day
        quotas:
          - name: groq-free-tier
            match: {{provider: groq}}
            requests_per_minute: 6
            enforce: true
        alerts:
          thresholds: [0.5, 0.75, 0.9, 1.0]
        """
    )


@contextlib.contextmanager
def _standins() -> Iterator[dict[str, str]]:
    from costspan.standin import ProviderServer

    with contextlib.ExitStack() as stack:
        urls = {}
        for name in ("openai", "anthropic", "gemini", "groq", "ollama", "bedrock", "mistral", "cohere"):
            server = stack.enter_context(ProviderServer())
            urls[name] = server.base_url.rstrip("/")
        yield urls


def _clients(urls: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
    """(label, call) pairs over the SDKs that are installed; each call is one real SDK request."""
    calls: list[tuple[str, Callable[[], Any]]] = []
    with contextlib.suppress(ImportError):
        import openai

        oa = openai.OpenAI(base_url=urls["openai"] + "/v1", api_key="demo-no-key", max_retries=0)
        calls.append(("openai chat", lambda: oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)))
        calls.append(
            (
                "openai stream",
                lambda: list(
                    oa.chat.completions.create(
                        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                    )
                ),
            )
        )
        calls.append(("openai embed", lambda: oa.embeddings.create(model="text-embedding-3-small", input="ticket")))
    with contextlib.suppress(ImportError):
        import anthropic

        an = anthropic.Anthropic(base_url=urls["anthropic"], api_key="demo-no-key", max_retries=0)
        calls.append(
            (
                "anthropic",
                lambda: an.messages.create(model="claude-sonnet-4-5", max_tokens=300, messages=MESSAGES),
            )
        )
    with contextlib.suppress(ImportError):
        from google import genai
        from google.genai import types

        ge = genai.Client(api_key="demo-no-key", http_options=types.HttpOptions(base_url=urls["gemini"]))
        calls.append(("gemini", lambda: ge.models.generate_content(model="gemini-2.5-flash", contents="Summarise.")))
    with contextlib.suppress(ImportError):
        import groq

        gq = groq.Groq(base_url=urls["groq"], api_key="demo-no-key", max_retries=0)
        calls.append(("groq", lambda: gq.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)))
    with contextlib.suppress(ImportError):
        import ollama

        ol = ollama.Client(host=urls["ollama"])
        calls.append(("ollama", lambda: ol.chat(model="llama3.2", messages=MESSAGES)))
    with contextlib.suppress(ImportError):
        import boto3

        br = boto3.client("bedrock-runtime", endpoint_url=urls["bedrock"], region_name="eu-west-1",
                          aws_access_key_id="demo-no-key", aws_secret_access_key="demo-no-key")
        converse: Any = [{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}]
        calls.append(("bedrock", lambda: br.converse(modelId="eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                                      messages=converse)))
    with contextlib.suppress(ImportError):
        from mistralai.client import Mistral

        mi = Mistral(api_key="demo-no-key", server_url=urls["mistral"])
        calls.append(("mistral", lambda: mi.chat.complete(model="mistral-small-latest", messages=MESSAGES)))
    with contextlib.suppress(ImportError):
        import cohere

        co = cohere.ClientV2(api_key="demo-no-key", base_url=urls["cohere"])
        calls.append(("cohere", lambda: co.chat(model="command-a-03-2025", messages=MESSAGES)))
    return calls


def _instrument() -> None:
    from costspan.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    for module, name in (
        ("costspan.instrumentation.anthropic", "AnthropicInstrumentor"),
        ("costspan.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
        ("costspan.instrumentation.groq", "GroqInstrumentor"),
        ("costspan.instrumentation.ollama", "OllamaInstrumentor"),
        ("costspan.instrumentation.bedrock", "BedrockInstrumentor"),
        ("costspan.instrumentation.mistral", "MistralInstrumentor"),
        ("costspan.instrumentation.cohere", "CohereInstrumentor"),
    ):
        with contextlib.suppress(ImportError):
            getattr(__import__(module, fromlist=[name]), name)().instrument()


def run_demo(*, calls: int, port: int, state_dir: str | None, linger: float) -> int:
    console = table_console(highlight=False)
    console.print(
        "[bold]costspan demo[/]: a simulated workload against a [bold]LOCAL STAND-IN[/] for OpenAI, Anthropic, "
        "Gemini, Groq and Ollama.\nThe real client SDKs make real HTTP requests, but only to 127.0.0.1: nothing "
        "leaves this machine and no API key is used. Costs are what the real providers would charge.\n"
    )
    state = Path(state_dir or tempfile.mkdtemp(prefix="costspan-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    os.environ.setdefault("OTEL_SERVICE_NAME", "costspan-demo")
    # Anthropic's SDK traces itself; the demo shows costspan's handling either way.
    with _standins() as urls:
        config = state / "costspan.yaml"
        config.write_text(_config(state, urls))
        env = {**os.environ, "COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(port)}
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SpanPrinter(console)))
        trace.set_tracer_provider(provider)
        runtime = costspan.configure(tracer_provider=provider, settings=load_settings(env))
        _instrument()
        console.print(f"state: {state}   config: {config}   metrics: http://127.0.0.1:{port}/metrics\n")

        workload = _clients(urls)
        rng = random.Random(7)
        blocked = 0
        for i in range(calls):
            _label, call = workload[i % len(workload)]
            with costspan.attribute(
                project=rng.choice(PROJECTS), user=rng.choice(USERS), feature=rng.choice(FEATURES)
            ):
                try:
                    call()
                except costspan.BudgetExceededError as exc:
                    blocked += 1
                    console.print(f"  [red]{exc}[/]")
        console.print(f"\n{calls} calls made, {blocked} refused before sending.\n")

        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        console.print(f"[bold]/metrics[/] (http://127.0.0.1:{port}/metrics), costspan series:")
        for line in body.splitlines():
            if line.startswith(("costspan_cost_usd_total", "costspan_requests_total", "costspan_budget_utilization")):
                console.print(f"  {line}")
        if linger:
            console.print(f"\n/metrics stays up for {linger:.0f} s ...")
            time.sleep(linger)
        runtime.close()
    _print_report_and_status(console, env)
    return 0


def _print_report_and_status(console: Console, env: dict[str, str]) -> None:
    from costspan.cli.main import main as cli

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("COSTSPAN_") and k != "COSTSPAN_PROMETHEUS_PORT"})
    os.environ.pop("COSTSPAN_PROMETHEUS_PORT", None)
    try:
        console.print("\n[bold]$ costspan report --since 1d[/]")
        cli(["report", "--since", "1d"])
        console.print("\n[bold]$ costspan status[/]")
        cli(["status"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
