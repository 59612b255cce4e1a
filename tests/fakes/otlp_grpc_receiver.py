"""An OTLP/gRPC trace receiver for tests (the generated servicer), that can be told to refuse."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class GrpcOtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, Any]] = []
        self.refuse = 0
        """Answer UNAVAILABLE to this many more requests."""
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        with self._lock:
            if self.refuse:
                self.refuse -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "down for a test")
            self.traces.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
        return ExportTraceServiceResponse()

    def spans(self) -> list[Any]:
        with self._lock:
            return [s for r in self.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def __enter__(self) -> GrpcOtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(0)
