"""Gateway throughput, added latency and memory (numbers, not a timed test).

Runs ``costspan gateway`` as a subprocess pinned to one core (``taskset``), forwarding to an OTLP
receiver in this process; load comes from this process's threads on the other core.

    .venv/bin/python tests/benchmarks/gateway.py --seconds 20 --rss-minutes 2

(a) GenAI spans priced, charged on SQLite (one budget) and forwarded; (b) non-GenAI spans passed
through: sustained spans per second, sending batches of 512 spans (the SDKs' default batch) as fast
as the gateway takes them. The gateway answers once a batch is queued and accounts it afterwards,
so the rate is counted where the spans leave it (``costspan_gateway_spans_forwarded_total`` on its
``/metrics``), once its queues have filled, not from the answers: those only say how much was
buffered. Then, at half of (a)'s rate, p50/p99 of the added latency per request (the request's
round trip to the gateway: parse, id check, queue, answer), p50/p99 of the time from the answer
until the batch is accounted (``costspan_gateway_accounting_delay_seconds``, interpolated within
its buckets as Prometheus's ``histogram_quantile`` does), and the RSS of the gateway over
``--rss-minutes`` of that load.
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
from prometheus_client.parser import text_string_to_metric_families

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


def start_gateway(directory: Path, forward: str) -> tuple[subprocess.Popen[str], int, int]:
    port, metrics_port = free_port(), free_port()
    config = directory / "costspan.yaml"
    config.write_text(
        "budgets:\n  - {name: daily, limit_usd: 1000000, window: day}\ngateway:\n  limits: {queue_spans: 200000}\n"
    )
    env = {
        **os.environ,
        "COSTSPAN_CONFIG": str(config),
        "COSTSPAN_STORE": f"sqlite:///{directory / 'costspan.db'}",
        "COSTSPAN_PROMETHEUS_PORT": str(metrics_port),
    }
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
    return process, port, metrics_port


def scrape(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the gateway serves, by name and labels."""
    text = requests.get(metrics_url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def cpu_seconds(pid: int) -> float:
    """The gateway's CPU time (user and system): on a shared machine, what it did per span does not
    depend on how much of its core it was given."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def forwarded(metrics_url: str) -> float:
    return scrape(metrics_url)[("costspan_gateway_spans_forwarded_total", ())]


def wait_drained(url: str) -> None:
    """Until the gateway holds nothing, so one phase's backlog is not counted in the next."""
    ready = url.replace("/v1/traces", "/readyz")
    while requests.get(ready, timeout=10).json()["queue_spans"]:
        time.sleep(0.2)


def throughput(
    url: str, metrics_url: str, pid: int, genai: bool, seconds: float, threads: int = 3, fill: float = 5
) -> tuple[float, float]:
    """Spans forwarded per second while senders keep the gateway's queues full (after ``fill``
    seconds), and per second of the gateway's CPU time."""
    stop = threading.Event()
    counter = [10**9 * (2 if genai else 3)]
    lock = threading.Lock()

    def run() -> None:
        session = requests.Session()
        while not stop.is_set():
            with lock:
                counter[0] += BATCH
                start = counter[0]
            body = fresh_bodies(genai, start)
            reply = session.post(url, data=body, headers=HEADERS, timeout=30)
            if reply.status_code != 200:  # as an OTLP exporter does: wait as told (each refusal costs a parse)
                stop.wait(float(reply.headers.get("Retry-After", "1")))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    time.sleep(fill)
    first, began, cpu = forwarded(metrics_url), time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    last, ended, cpu = forwarded(metrics_url), time.monotonic(), cpu_seconds(pid) - cpu
    stop.set()
    for w in workers:
        w.join()
    wait_drained(url)
    return (last - first) / (ended - began), (last - first) / cpu


def delay_quantiles(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    quantiles: tuple[float, ...],
) -> list[float]:
    """Quantiles of the accounting delay observed between two scrapes, as ``histogram_quantile``."""
    name = "costspan_gateway_accounting_delay_seconds_bucket"
    buckets = sorted(
        (float(dict(labels)["le"]), count - before.get((sample, labels), 0.0))
        for (sample, labels), count in after.items()
        if sample == name
    )
    total = buckets[-1][1]
    out = []
    for q in quantiles:
        rank, lower, below = q * total, 0.0, 0.0
        for bound, count in buckets:
            if count >= rank:
                if bound == float("inf"):
                    out.append(lower)
                else:
                    out.append(lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 0))
                break
            lower, below = bound, count
    return out


def latency_and_rss(url: str, pid: int, rate: float, seconds: float) -> tuple[list[float], list[int], int]:
    """Round trips of the accepted requests, RSS samples, and how many requests were refused (a
    refusal is quick: counted apart, it would flatter the latency)."""
    latencies: list[float] = []
    refused = 0
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
        reply = session.post(url, data=body, headers=HEADERS, timeout=30)
        if reply.status_code == 200:
            latencies.append(time.perf_counter() - began)
        else:
            refused += 1
        if time.monotonic() - last_rss > 1:
            last_rss = time.monotonic()
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]))
    return latencies, rss, refused


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
        process, port, metrics_port = start_gateway(Path(tmp), sink.endpoint)
        pid = process.pid  # taskset execs the gateway: the pid is the gateway's own
        url = f"http://127.0.0.1:{port}/v1/traces"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        forget = threading.Thread(target=_forget, args=(sink,), daemon=True)
        forget.start()
        try:
            throughput(url, metrics_url, pid, True, 3, fill=1)  # warm up
            genai, genai_cpu = throughput(url, metrics_url, pid, True, args.seconds)
            plain, plain_cpu = throughput(url, metrics_url, pid, False, args.seconds)
            per_cpu = "per second of the gateway's CPU time"
            print(
                f"(a) GenAI spans priced, charged on SQLite, forwarded: {genai:,.0f} spans/s "
                f"({genai_cpu:,.0f} {per_cpu})"
            )
            print(f"(b) non-GenAI spans passed through: {plain:,.0f} spans/s ({plain_cpu:,.0f} {per_cpu})")
            before, cpu = scrape(metrics_url), cpu_seconds(pid)
            latencies, rss, refused = latency_and_rss(url, pid, genai / 2, args.rss_minutes * 60)
            busy = (cpu_seconds(pid) - cpu) / (args.rss_minutes * 60)
            after = scrape(metrics_url)
            delays = delay_quantiles(before, after, (0.5, 0.99))
            key = ("costspan_gateway_spans_forwarded_total", ())
            sustained = (after[key] - before[key]) / (args.rss_minutes * 60)
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99)] * 1000
            half = f"at half of (a), {genai / 2:,.0f} spans/s in batches of {BATCH}"
            print(f"{half}: p50 {p50:.1f} ms, p99 {p99:.1f} ms per accepted request, {refused} refused (503)")
            print(f"spans forwarded meanwhile: {sustained:,.0f} spans/s")
            print(f"answer to accounted: p50 {delays[0] * 1000:.0f} ms, p99 {delays[1] * 1000:.0f} ms")
            print(f"gateway CPU meanwhile: {busy:.0%} of a core")
            first, low, peak, last = rss[0] // 1024, min(rss) // 1024, max(rss) // 1024, rss[-1] // 1024
            print(
                f"RSS over {args.rss_minutes:g} min: first {first} MiB, min {low} MiB, peak {peak} MiB, last {last} MiB"
            )
            errors = sum(v for (name, _), v in scrape(metrics_url).items() if name == "costspan_store_errors_total")
            # A store that did not answer in its bound is skipped (charges kept in memory): cheaper, not comparable.
            print(f"store errors over the whole run: {errors:,.0f}")
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
