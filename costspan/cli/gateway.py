"""``costspan gateway``: the OTLP trace gateway (see costspan.gateway)."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from typing import Any

HELP = """\
Receive OTLP traces from applications or an OpenTelemetry Collector (any language), price and
budget every GenAI span with the same pricer, budgets, metrics and ledger as in-process costspan,
write the costspan.* attributes onto it, and forward every span to the next hop.

It cannot refuse a call: the call already happened. Enforcement (BudgetExceededError) is
in-process only; the gateway counts, alerts and reports.

Receivers: OTLP/HTTP POST /v1/traces (protobuf or JSON, gzip) and OTLP/gRPC TraceService/Export,
on 127.0.0.1 unless told otherwise; GET /healthz and /readyz on the HTTP port. /metrics (the cost
metrics and costspan_gateway_*) on COSTSPAN_PROMETHEUS_PORT, as in-process.

YAML (costspan.yaml, COSTSPAN_CONFIG): gateway.http, gateway.grpc, gateway.forward.{endpoint,
protocol, headers, tls, compression, timeout, retry, workers}, gateway.limits.{max_request_bytes,
max_decompressed_bytes, queue_spans, drain_seconds, window_spans}, gateway.auth.{bearer_token_file,
basic}, gateway.tls.{certfile, keyfile}, gateway.attribution.{project, feature, user},
gateway.dedup_ttl_seconds. Flags override the YAML. Same COSTSPAN_* variables and store
(COSTSPAN_STORE=redis://... for several replicas). COSTSPAN_GATEWAY_TOKEN / COSTSPAN_GATEWAY_PASSWORD
hold the receivers' bearer token / basic-auth password.

A request is answered once it is queued (as the Collector does) and accounted right after, by one
worker; limits.queue_spans bounds the spans waiting to be accounted and forwarded together (503 /
UNAVAILABLE beyond it). A crash (SIGKILL) loses what was answered and not yet accounted.

On SIGTERM: stop accepting, account everything answered, drain the queue to the next hop
(limits.drain_seconds), flush the ledger and metrics; spans that could not be sent are counted and
logged (exit status 1).
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "gateway",
        help="price and budget the GenAI spans of any service inside the OTLP trace pipeline",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--http", metavar="ADDR:PORT", help="OTLP/HTTP receiver (default 127.0.0.1:4318; off)")
    parser.add_argument("--grpc", metavar="ADDR:PORT", help="OTLP/gRPC receiver (default 127.0.0.1:4317; off)")
    parser.add_argument(
        "--forward", metavar="URL", help="next hop, e.g. http://127.0.0.1:14318 (gateway.forward.endpoint)"
    )
    parser.add_argument(
        "--forward-protocol",
        choices=("http/protobuf", "grpc"),
        help="protocol of the next hop (default http/protobuf)",
    )
    parser.add_argument("--no-forward", action="store_true", help="forward nothing: metrics and ledger only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from costspan.gateway import config as gateway_config
    from costspan.gateway.service import Gateway
    from costspan.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    overrides = {
        "http": args.http,
        "grpc": args.grpc,
        "forward": args.forward,
        "protocol": args.forward_protocol,
        "no_forward": args.no_forward,
    }
    config = gateway_config.load(settings, overrides)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    gateway = Gateway(settings, config)
    gateway.start()
    _tune_collector()
    print(f"costspan gateway: ready {gateway.describe()}", file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    print("costspan gateway: stopping", file=sys.stderr, flush=True)
    lost = gateway.stop()
    print(f"costspan gateway: stopped; {lost} spans not forwarded", file=sys.stderr, flush=True)
    return 1 if lost else 0


def _tune_collector() -> None:
    """The process is the gateway's alone, and its heap is mostly long-lived: the price tables, and
    the trace window's 100,000 spans. With the default thresholds a full collection walks all of it
    every few batches, about a tenth of the CPU of accounting; collecting the young generation every
    10,000 allocations instead of 700, with what startup built frozen out of every collection,
    brings that to a few per cent while cyclic garbage is still collected."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
