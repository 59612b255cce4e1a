"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The generated servicer and messages, with one difference from ``add_TraceServiceServicer_to_server``:
the request is parsed by a deserializer that does not raise, so a malformed message is answered
INVALID_ARGUMENT with a reason (gRPC would say INTERNAL). Full queues are UNAVAILABLE with
``RetryInfo`` (in the rich status and alone, as the Collector and the SDKs read it).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from costspan.gateway.auth import allowed
from costspan.gateway.config import GatewayConfig
from costspan.gateway.intake import ACCEPTED, THROTTLED, Intake
from costspan.gateway.receiver_http import RETRY_AFTER_S

logger = logging.getLogger("costspan")
_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
MAX_WORKERS = 16


class _Malformed:
    """What the deserializer hands the servicer for bytes that are no ExportTraceServiceRequest."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse(data: bytes) -> ExportTraceServiceRequest | _Malformed:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        return _Malformed(f"malformed protobuf: {exc}")
    return request


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, config: GatewayConfig, intake: Intake) -> None:
        self._config = config
        self._intake = intake

    def Export(self, request: Any, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        metrics = self._intake.metrics
        header = dict(context.invocation_metadata()).get("authorization")
        if not allowed(self._config.auth, header if isinstance(header, str) else None):
            metrics.requests.labels("grpc", "unauthorized").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
        if isinstance(request, _Malformed):
            metrics.requests.labels("grpc", "invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        answer = self._intake.handle(request, "grpc")
        if answer.status == ACCEPTED and answer.response is not None:
            return answer.response
        reason = "queue full" if answer.status == THROTTLED else "shutting down"
        message = f"costspan gateway busy ({reason}): retry later"
        info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_AFTER_S))
        detail = AnyMessage()
        detail.Pack(info)
        status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, details=[detail])
        context.set_trailing_metadata(
            (
                ("google.rpc.retryinfo-bin", info.SerializeToString()),
                ("grpc-status-details-bin", status.SerializeToString()),
            )
        )
        context.abort(grpc.StatusCode.UNAVAILABLE, message)
        raise AssertionError("unreachable: abort raises")


class GrpcReceiver:
    def __init__(self, config: GatewayConfig, intake: Intake) -> None:
        assert config.grpc is not None
        limit = config.limits.max_decompressed_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="costspan-gateway-grpc"),
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 1024 * 1024)],
            maximum_concurrent_rpcs=MAX_WORKERS * 8,
        )
        handler = grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    _Servicer(config, intake).Export,
                    request_deserializer=_parse,
                    response_serializer=ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        host, port = config.grpc
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if config.certfile and config.keyfile:
            with open(config.keyfile, "rb") as key, open(config.certfile, "rb") as cert:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address} for gRPC")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float) -> None:
        """Refuse new RPCs and let those running finish for up to ``grace`` seconds."""
        self._server.stop(grace).wait(grace + 1.0)
