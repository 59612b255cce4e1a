"""Gateway throughput, added latency and memory (numbers, not a timed test).

Runs ``costspan gateway`` as a subprocess pinned to one core (``taskset``), forwarding to an OTLP
receiver in this process; load comes from this process's threads on the other core.

    .venv/bin/python tests/benchmarks/gateway.py --seconds 20 --rss-minutes 2

(a) GenAI spans priced, charged on SQLite (one budget) and forwarded; (b) non-GenAI spans passed
through: sustained spans per second, sending batches of 512 spans (the SDKs' default batch) as fast
as the gateway answers. Then, at half of (a)'s rate, p50/p99 of the added latency per request (the
request's round trip to the gateway, which answers once the batch is accounted and queued), and the
peak RSS of the gateway over ``--rss-minutes`` of that load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_support import export_request, llm_attributes, make_span
from tests.test_budget_stores import free_port

BATCH = 512
HEADERS = {"Content-Type": "application/x-protobuf"}


def fresh_bodies(genai: bool, start: int) -> bytes:
    spans = []
    for i in range(BATCH):
        serial = start + i
        trace, span = serial.to_bytes(16, "big"), serial.to_bytes(8, "big")
        attrs = llm_attributes() if genai else {"http.request.method": "GET"}
        spans.append(make_span(trace, span, attributes=attrs))
    return export_request(spans, service="bench").SerializeToString()


def start_gateway(directory: Path, forward: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    config = directory / "costspan.yaml"
    config.write_text(
        "budgets:\n  - {name: daily, limit_usd: 1000000, window: day}\ngateway:\n  limits: {queue_spans: 200000}\n"
    )
    env = {**os.environ, "COSTSPAN_CONFIG": str(config), "COSTSPAN_STORE": f"sqlite:///{directory / 'costspan.db'}"}
    command = [
        sys.executable,
        "-m",
        "costspan.cli.main",
        "gateway",
        "--http",
        f"127.0.0.1:{port}",
        "--grpc",
        "off",
        "--forward",
        forward,
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "ready" in line, line
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, port


def throughput(url: str, genai: bool, seconds: float, threads: int = 3) -> float:
    sent = [0]
    stop = time.monotonic() + seconds
    counter = [10**9 * (2 if genai else 3)]
    lock = threading.Lock()

    def run() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            with lock:
                counter[0] += BATCH
                start = counter[0]
            body = fresh_bodies(genai, start)
            reply = session.post(url, data=body, headers=HEADERS, timeout=30)
            if reply.status_code == 200:
                with lock:
                    sent[0] += BATCH
            else:
                time.sleep(0.05)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    began = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sent[0] / (time.monotonic() - began)


def latency_and_rss(url: str, pid: int, rate: float, seconds: float) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    rss: list[int] = []
    interval = BATCH / rate
    session = requests.Session()
    end = time.monotonic() + seconds
    serial = 7 * 10**9
    next_at = time.monotonic()
    last_rss = 0.0
    while time.monotonic() < end:
        serial += BATCH
        body = fresh_bodies(True, serial)
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += interval
        began = time.perf_counter()
        session.post(url, data=body, headers=HEADERS, timeout=30)
        latencies.append(time.perf_counter() - began)
        if time.monotonic() - last_rss > 1:
            last_rss = time.monotonic()
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]))
    return latencies, rss


def _forget(sink: OtlpReceiver) -> None:
    """The next hop keeps nothing: this process's memory is not what is measured."""
    while True:
        time.sleep(0.5)
        sink.traces.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rss-minutes", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as sink:
        process, port = start_gateway(Path(tmp), sink.endpoint)
        pid = process.pid  # taskset execs the gateway: the pid is the gateway's own
        url = f"http://127.0.0.1:{port}/v1/traces"
        forget = threading.Thread(target=_forget, args=(sink,), daemon=True)
        forget.start()
        try:
            throughput(url, True, 3)  # warm up
            genai = throughput(url, True, args.seconds)
            plain = throughput(url, False, args.seconds)
            print(f"(a) GenAI spans priced, charged on SQLite, forwarded: {genai:,.0f} spans/s")
            print(f"(b) non-GenAI spans passed through:                   {plain:,.0f} spans/s")
            latencies, rss = latency_and_rss(url, pid, genai / 2, args.rss_minutes * 60)
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            half = f"at half of (a), {genai / 2:,.0f} spans/s in batches of {BATCH}"
            print(f"{half}: p50 {p50:.1f} ms, p99 {p99:.1f} ms per request")
            first, peak, last = rss[0] // 1024, max(rss) // 1024, rss[-1] // 1024
            print(f"RSS over {args.rss_minutes:g} min: first {first} MiB, peak {peak} MiB, last {last} MiB")
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
