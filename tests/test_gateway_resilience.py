"""The gateway under stress: next hop down under load, SIGTERM under load, replicas on a real Redis,
and a fuzz of malformed requests."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from costspan.gateway.service import Gateway
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_support import (
    export_request,
    flush_ledger,
    gateway_yaml,
    ledger_rows,
    llm_attributes,
    make_span,
    metric,
    running_gateway,
    span_attributes,
)
from tests.test_budget_stores import free_port, fresh_redis

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Sender:
    """A sender with its own queue, as an OTLP exporter or a Collector: it retries 503 after Retry-After."""

    def __init__(self, url: str, batch: int = 50) -> None:
        self.url = url
        self.batch = batch
        self.accepted: list[bytes] = []
        """Span ids of LLM spans in requests answered 200."""
        self.throttled = 0
        self.stop = threading.Event()
        self._next = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _request(self) -> tuple[bytes, list[bytes]]:
        spans = []
        for _ in range(self.batch):
            self._next += 1
            trace, sid = (self._next + 10**6).to_bytes(16, "big"), (self._next + 10**6).to_bytes(8, "big")
            spans.append(make_span(trace, sid, attributes=llm_attributes()))
        return export_request(spans, service="load").SerializeToString(), [s.span_id for s in spans]

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            body, span_ids = self._request()
            while True:
                try:
                    reply = session.post(self.url, data=body, headers=PROTOBUF, timeout=10)
                except requests.RequestException:
                    return  # the gateway is gone (SIGTERM): this request was not accepted
                if reply.status_code == 200:
                    self.accepted.extend(span_ids)
                    break
                assert reply.status_code == 503, reply.status_code
                self.throttled += 1
                if self.stop.wait(float(reply.headers.get("Retry-After", "1")) / 5):
                    return
            time.sleep(0.02)

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.mark.slow
def test_next_hop_down_for_30_seconds_under_load_loses_no_span(tmp_path: Path) -> None:
    hop_port = free_port()
    yaml_text = gateway_yaml(f"http://127.0.0.1:{hop_port}") + "  limits: {queue_spans: 2000}\n"
    with running_gateway(tmp_path, yaml_text) as gateway:
        assert gateway.http is not None
        with Sender(f"http://127.0.0.1:{gateway.http.port}/v1/traces") as sender:
            time.sleep(30)  # the next hop is down all along: the queue fills, the sender is told to retry
            assert sender.throttled > 0
            receiver = OtlpReceiver(port=hop_port).__enter__()
            time.sleep(3)
        try:
            deadline = time.monotonic() + 60
            while len(list(receiver.spans())) < len(sender.accepted) and time.monotonic() < deadline:
                time.sleep(0.2)
            delivered = [s.span_id for s in receiver.spans()]
            assert sorted(delivered) == sorted(sender.accepted)  # every accepted span, once
            assert metric(gateway, "costspan_gateway_spans_dropped_total", reason="retries_exhausted") == 0
            flush_ledger(gateway)
            assert len(ledger_rows(tmp_path / "costspan-ledger.db")) == len(sender.accepted)
        finally:
            receiver.__exit__()


@pytest.mark.slow
def test_sigterm_under_load_loses_nothing_accounted(tmp_path: Path) -> None:
    http_port = free_port()
    env = {
        **os.environ,
        "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'costspan.db'}",
        "COSTSPAN_CONFIG": str(tmp_path / "none.yaml"),
        "COSTSPAN_LEDGER": "on",
    }
    (tmp_path / "none.yaml").write_text("gateway:\n  limits: {drain_seconds: 20}\n")
    with OtlpReceiver() as receiver:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "costspan.cli.main",
                "gateway",
                "--http",
                f"127.0.0.1:{http_port}",
                "--grpc",
                "off",
                "--forward",
                receiver.endpoint,
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        assert "ready" in process.stderr.readline()
        with Sender(f"http://127.0.0.1:{http_port}/v1/traces") as sender:
            time.sleep(5)
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
        accounted = {row["span_id"] for row in ledger_rows(tmp_path / "costspan-ledger.db")}
        accepted = {sid.hex() for sid in sender.accepted}
        assert accepted and accepted <= accounted  # nothing accepted is missing from the ledger
        assert accounted <= accepted  # and nothing was accounted that the sender was not told of...
        forwarded = {s.span_id.hex() for s in receiver.spans()}
        assert accepted <= forwarded  # ...and everything accepted reached the next hop in the drain


@pytest.mark.slow
def test_the_same_batch_to_two_replicas_on_redis_is_charged_once(tmp_path: Path) -> None:
    url = fresh_redis()
    budget = "budgets:\n  - name: daily\n    limit_usd: 10\n    window: day\n"
    trace = (77).to_bytes(16, "big")
    parent = make_span(trace, (1).to_bytes(8, "big"), name="ai.generateText", attributes=llm_attributes())
    child = make_span(trace, (2).to_bytes(8, "big"), (1).to_bytes(8, "big"), attributes=llm_attributes())
    body = export_request([parent, child]).SerializeToString()
    with (
        OtlpReceiver() as receiver,
        running_gateway(
            tmp_path, gateway_yaml(receiver.endpoint, extra=budget), store=url, ledger=tmp_path / "a.db"
        ) as one,
        running_gateway(
            tmp_path, gateway_yaml(receiver.endpoint, extra=budget), store=url, ledger=tmp_path / "b.db"
        ) as two,
    ):
        replies: list[int] = []

        def send(gateway: Gateway) -> None:
            assert gateway.http is not None
            for _ in range(3):  # the sender retried after timeouts, too
                url_ = f"http://127.0.0.1:{gateway.http.port}/v1/traces"
                replies.append(requests.post(url_, data=body, headers=PROTOBUF, timeout=10).status_code)

        threads = [threading.Thread(target=send, args=(g,)) for g in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert replies == [200] * 6
        flush_ledger(one)
        flush_ledger(two)
        rows = ledger_rows(tmp_path / "a.db") + ledger_rows(tmp_path / "b.db")
        assert len(rows) == 1 and rows[0]["span_id"] == (2).to_bytes(8, "big").hex()
        (daily,) = one.runtime.budgets.status()
        assert daily.used == rows[0]["cost_nanos"]


def _hostile_value(rng: random.Random) -> object:
    return rng.choice(
        [
            -1,
            10**18,
            2**63 - 1,
            float("nan"),
            float("inf"),
            -0.5,
            "",
            "x" * rng.randint(0, 5000),
            "\u202e\x1b[31m",
            True,
            3.7,
            "12",
        ]
    )


@pytest.mark.slow
def test_fuzz_of_malformed_requests(tmp_path: Path) -> None:
    """Raw bytes mutated (protobuf and JSON) and hostile spans beside a good one: never a 5xx, never
    a crash, never a good span lost. Counts are printed (pytest -s)."""
    rng = random.Random(1313)
    keys = [*list(llm_attributes()), "ai.model.id", "ai.usage.promptTokens", "llm.token_count.prompt", "gen_ai.system"]
    tried = crashed = lost = 0
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        assert gateway.http is not None
        url = f"http://127.0.0.1:{gateway.http.port}/v1/traces"
        session = requests.Session()
        good_ids: list[bytes] = []
        for i in range(600):
            trace = (i + 5000).to_bytes(16, "big")
            good = make_span(trace, (1).to_bytes(8, "big"), attributes=llm_attributes())
            hostile = make_span(trace, (2).to_bytes(8, "big"), attributes={k: _hostile_value(rng) for k in keys})
            body = export_request([hostile, good]).SerializeToString()
            tried += 1
            reply = session.post(url, data=body, headers=PROTOBUF, timeout=10)
            crashed += reply.status_code >= 500
            good_ids.append(trace)
        base = export_request([make_span((9).to_bytes(16, "big"), (9).to_bytes(8, "big"), attributes=llm_attributes())])
        samples = [(base.SerializeToString(), PROTOBUF)]
        as_json = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}]}]}
        samples.append((json.dumps(as_json).encode(), {"Content-Type": "application/json"}))
        for i in range(1400):
            body, headers = samples[i % 2]
            data = bytearray(body)
            for _ in range(rng.randint(1, 8)):
                action = rng.random()
                if action < 0.5 and data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
                elif action < 0.75:
                    data = data[: rng.randrange(len(data) + 1)]
                else:
                    data[rng.randrange(len(data) + 1) : 0] = rng.randbytes(rng.randint(1, 16))
            tried += 1
            try:
                reply = session.post(url, data=bytes(data), headers=headers, timeout=10)
                crashed += reply.status_code >= 500 or reply.status_code not in (200, 400)
            except requests.RequestException:
                crashed += 1
        assert requests.get(url.replace("/v1/traces", "/healthz"), timeout=5).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            priced = {s.trace_id for s in receiver.spans() if s.span_id == (1).to_bytes(8, "big")}
            if len(priced) >= len(good_ids):
                break
            time.sleep(0.1)
        forwarded = [s for s in receiver.spans() if s.span_id == (1).to_bytes(8, "big") and s.trace_id in set(good_ids)]
        ok = {s.trace_id for s in forwarded if span_attributes(s).get("costspan.cost.status") == "priced"}
        lost = len(set(good_ids) - ok)
        flush_ledger(gateway)
    print(f"fuzz: {tried} requests tried, {crashed} crashed, {lost} good spans lost")
    assert crashed == 0 and lost == 0
