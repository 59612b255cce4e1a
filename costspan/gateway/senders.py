"""One export attempt to the next hop, over OTLP/HTTP or OTLP/gRPC, classified for the retry loop.

Configured as the Collector's ``otlphttp`` / ``otlp`` exporters are: endpoint, headers, TLS (CA,
client certificate), compression, timeout. Retryable answers are the OTLP spec's: HTTP 429, 502,
503, 504 (with ``Retry-After``), gRPC UNAVAILABLE, RESOURCE_EXHAUSTED (only with ``RetryInfo``),
CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS; connection failures too.
"""

from __future__ import annotations

import email.utils
import gzip
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import requests
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from costspan.gateway.config import Forward

_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_RETRYABLE_GRPC = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    """What the next hop asked for (``Retry-After``, ``RetryInfo``), in seconds."""
    rejected: int = 0
    """Spans the next hop refused in a partial success."""
    error: str = ""


class Sender(Protocol):
    def send(self, request: ExportTraceServiceRequest) -> Result: ...

    def close(self) -> None: ...


def make_sender(forward: Forward) -> Sender:
    return GrpcSender(forward) if forward.protocol == "grpc" else HttpSender(forward)


class HttpSender:
    def __init__(self, forward: Forward) -> None:
        self._forward = forward
        self._local = threading.local()
        self._headers = {"Content-Type": "application/x-protobuf", **forward.headers}
        if forward.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            if self._forward.ca_file:
                session.verify = self._forward.ca_file
            if self._forward.cert_file:
                session.cert = (self._forward.cert_file, self._forward.key_file or self._forward.cert_file)
        return session

    def send(self, request: ExportTraceServiceRequest) -> Result:
        body = request.SerializeToString()
        if self._forward.compression == "gzip":
            body = gzip.compress(body, compresslevel=1)
        assert self._forward.endpoint is not None
        try:
            reply = self._session().post(
                self._forward.endpoint, data=body, headers=self._headers, timeout=self._forward.timeout
            )
        except requests.RequestException as exc:
            return Result(False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        if reply.status_code == 200:
            return Result(True, rejected=_partial(reply.content))
        retryable = reply.status_code in _RETRYABLE_HTTP
        return Result(
            False,
            retryable=retryable,
            retry_after=_retry_after(reply.headers.get("Retry-After")) if retryable else None,
            error=f"HTTP {reply.status_code}",
        )

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()


class GrpcSender:
    def __init__(self, forward: Forward) -> None:
        assert forward.endpoint is not None
        target = forward.endpoint.split("://", 1)[1].rstrip("/")
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if forward.endpoint.startswith("http://") or forward.insecure:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(forward.ca_file),
                private_key=_read(forward.key_file),
                certificate_chain=_read(forward.cert_file),
            )
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = TraceServiceStub(self._channel)
        self._metadata = tuple(forward.headers.items())
        self._timeout = forward.timeout
        self._compression = grpc.Compression.Gzip if forward.compression == "gzip" else grpc.Compression.NoCompression

    def send(self, request: ExportTraceServiceRequest) -> Result:
        try:
            reply = self._stub.Export(
                request, metadata=self._metadata, timeout=self._timeout, compression=self._compression
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            delay = _retry_info(exc)
            retryable = code in _RETRYABLE_GRPC or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None)
            return Result(False, retryable=retryable, retry_after=delay, error=f"gRPC {code.name}")
        rejected = reply.partial_success.rejected_spans if reply.HasField("partial_success") else 0
        return Result(True, rejected=rejected)

    def close(self) -> None:
        self._channel.close()


def _partial(content: bytes) -> int:
    reply = ExportTraceServiceResponse()
    try:
        reply.ParseFromString(content)
    except Exception:
        return 0  # a 200 with a body we cannot read: accepted, as the spec says
    return reply.partial_success.rejected_spans


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def _retry_info(error: grpc.RpcError) -> float | None:
    """``RetryInfo`` from the trailers: in the rich status (``grpc-status-details-bin``, as the Collector
    sends it) or alone (``google.rpc.retryinfo-bin``, as the Python SDK reads it)."""
    trailers: Any = error.trailing_metadata() if isinstance(error, grpc.Call) else None
    key: str
    value: Any
    for key, value in trailers or ():
        try:
            if key == "google.rpc.retryinfo-bin":
                return _delay(error_details_pb2.RetryInfo.FromString(value))
            if key == "grpc-status-details-bin":
                for detail in status_pb2.Status.FromString(value).details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        return _delay(info)
        except Exception:
            continue
    return None


def _delay(info: error_details_pb2.RetryInfo) -> float:
    return min(info.retry_delay.seconds + info.retry_delay.nanos / 1e9, MAX_RETRY_AFTER_S)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()
