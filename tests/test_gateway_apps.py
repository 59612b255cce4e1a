"""Proof with real parts: applications instrumented by other packages (Python: OpenLLMetry and the
official openai-v2; Node.js: openai with OpenLLMetry-JS, and the Vercel AI SDK), exporting with the
real OTLP exporters to the gateway, which forwards to a receiving OTLP endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.gateway.service import Gateway
from costspan.money import nanos_to_usd
from costspan.standin import ProviderServer
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_support import flush_ledger, gateway_yaml, ledger_rows, metric, running_gateway, span_attributes

APPS = Path(__file__).parent / "gateway_apps"
NODE_DIR = APPS / "node"
CALLS = 3
pytestmark = pytest.mark.slow


def _priced(receiver: OtlpReceiver, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        priced = [s for s in receiver.spans() if "costspan.cost.status" in span_attributes(s)]
        if len(priced) >= count:
            return priced
        time.sleep(0.05)
    raise AssertionError(f"{len(list(receiver.spans()))} spans forwarded, not {count} priced ones")


def _assert_agree(gateway: Gateway, tmp_path: Path, spans: list, service: str) -> None:
    """Forwarded spans, the ledger and /metrics tell the same costs."""
    flush_ledger(gateway)
    rows = [r for r in ledger_rows(tmp_path / "costspan-ledger.db") if r["service"] == service]
    charged = [span_attributes(s) for s in spans if "costspan.cost.counted_in" not in span_attributes(s)]
    assert len(rows) == len(charged) == CALLS
    by_span = {r["span_id"]: r for r in rows}
    for span, attrs in zip(spans, (span_attributes(s) for s in spans), strict=True):
        if "costspan.cost.counted_in" in attrs:
            continue
        row = by_span[span.span_id.hex()]
        assert attrs["costspan.cost.status"] == "priced" and row["cost_nanos"] > 0
        assert Decimal(str(attrs["costspan.cost.usd"])) == nanos_to_usd(row["cost_nanos"])
    total = sum(r["cost_nanos"] for r in rows)
    served = sum(
        s.value
        for family in gateway.registry.collect()
        if family.name == "costspan_cost_usd"
        for s in family.samples
        if s.name == "costspan_cost_usd_total" and s.labels["project"] == service
    )
    assert abs(Decimal(str(served)) - nanos_to_usd(total)) < Decimal("1e-12")


@pytest.mark.parametrize("kind", ["openllmetry", "openai-v2"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_python_app_instrumented_by_another_package_is_priced_by_the_gateway(
    kind: str, protocol: str, tmp_path: Path
) -> None:
    with (
        ProviderServer() as standin,
        OtlpReceiver() as receiver,
        running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway,
    ):
        assert gateway.http is not None and gateway.grpc is not None
        port = gateway.http.port if protocol == "http" else gateway.grpc.port
        endpoint = f"http://127.0.0.1:{port}"
        subprocess.run(
            [
                sys.executable,
                str(APPS / "python_app.py"),
                kind,
                protocol,
                endpoint,
                standin.base_url + "/v1",
                str(CALLS),
            ],
            check=True,
            timeout=120,
            env={**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
        )
        spans = _priced(receiver, CALLS)
        _assert_agree(gateway, tmp_path, spans, f"py-{kind}")
        assert metric(gateway, "costspan_gateway_spans_received_total", transport=protocol) >= CALLS


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (tests/run.sh installs Debian's nodejs)"
    if not (NODE_DIR / "node_modules").is_dir():
        return "npm packages not installed: run tests/run.sh (npm ci in tests/gateway_apps/node)"
    return None


@pytest.mark.skipif(_node_ready() is not None, reason=str(_node_ready()))
@pytest.mark.parametrize("app", ["openai-openllmetry", "vercel-ai"])
def test_a_node_app_is_priced_by_the_gateway_and_counted_once(app: str, tmp_path: Path) -> None:
    with (
        ProviderServer() as standin,
        OtlpReceiver() as receiver,
        running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway,
    ):
        assert gateway.http is not None
        subprocess.run(
            [
                "node",
                str(NODE_DIR / "app.mjs"),
                app,
                f"http://127.0.0.1:{gateway.http.port}",
                standin.base_url + "/v1",
                str(CALLS),
            ],
            check=True,
            timeout=120,
            cwd=NODE_DIR,
        )
        spans = _priced(receiver, CALLS)
        _assert_agree(gateway, tmp_path, spans, f"node-{app}")
        if app == "vercel-ai":  # ai.generateText repeats its doGenerate's usage: it points at it instead
            deadline = time.monotonic() + 10
            while len(outer := [s for s in receiver.spans() if s.name == "ai.generateText"]) < CALLS:
                assert time.monotonic() < deadline, "the outer ai.generateText spans were not forwarded"
                time.sleep(0.05)
            inner = {s.span_id.hex() for s in spans}
            assert all(span_attributes(s)["costspan.cost.counted_in"] in inner for s in outer)
            assert {span_attributes(s)["gen_ai.request.model"] for s in spans} == {"gpt-4o-mini"}
