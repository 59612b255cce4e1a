"""OTLP/HTTP receiver: ``POST /v1/traces`` (protobuf or JSON, gzip), plus ``/healthz`` and ``/readyz``.

Hostile input gets a clear status, never a crash: 401 without valid credentials, 411 without a
length, 413 over ``max_request_bytes`` (refused before the body is read) or when it inflates past
``max_decompressed_bytes``, 415 for other content types or encodings, 400 with a ``google.rpc.Status``
for a body that is not OTLP. Full queues (accounting and forwarding, one bound) answer 503 with
``Retry-After``, which OTLP senders retry. Each connection has a read deadline, its TLS handshake
happens in its own thread, and the number of connections is bounded, so a slow or silent client
holds up only itself.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.rpc import status_pb2

from costspan.gateway import payload
from costspan.gateway.auth import allowed
from costspan.gateway.config import GatewayConfig
from costspan.gateway.intake import ACCEPTED, THROTTLED, Intake
from costspan.tls_server import HandshakePerConnection

logger = logging.getLogger("costspan")
READ_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 256
RETRY_AFTER_S = 1
_INVALID_ARGUMENT = 3
_UNAVAILABLE = 14


class _Server(HandshakePerConnection, ThreadingHTTPServer):
    daemon_threads = True
    connection_timeout_s = READ_TIMEOUT_S
    name = "costspan gateway"
    intake: Intake
    config: GatewayConfig
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many connections: this one is closed, the others go on
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "costspan-gateway"
    server: _Server

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/v1/traces":
            self._text(404, "not found: POST OTLP traces to /v1/traces")
            return
        intake, limits = self.server.intake, self.server.config.limits
        if not allowed(self.server.config.auth, self.headers.get("Authorization")):
            self._count("unauthorized")
            self._text(401, "unauthorized", extra={"WWW-Authenticate": 'Bearer realm="costspan"'})
            return
        kind = None
        try:
            kind = payload.media_type(self.headers.get("Content-Type"))
            body = self._body(limits.max_request_bytes)
            request = payload.parse(
                payload.inflate(body, self.headers.get("Content-Encoding"), limits.max_decompressed_bytes), kind
            )
        except payload.Unsupported as exc:
            self._refuse(415, "unsupported", str(exc), kind)
            return
        except payload.TooLarge as exc:
            self.close_connection = True
            self._refuse(413, "too_large", str(exc), kind)
            return
        except payload.BadPayload as exc:
            self._refuse(400, "invalid", str(exc), kind)
            return
        answer = intake.handle(request, "http")
        if answer.status == ACCEPTED and answer.response is not None:
            self._send(200, payload.render(answer.response, kind), kind)
            return
        reason = "queue full" if answer.status == THROTTLED else "shutting down"
        status = status_pb2.Status(code=_UNAVAILABLE, message=f"costspan gateway busy ({reason}): retry later")
        self._send(503, payload.render(status, kind), kind, {"Retry-After": str(RETRY_AFTER_S)})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            intake = self.server.intake
            ready = intake.accepting and intake.has_room(1)
            self._json(200 if ready else 503, {"ready": ready, "queue_spans": intake.pending})
        else:
            self._text(404, "not found")

    # -- helpers ----------------------------------------------------------------------------
    def _body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked(limit)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise payload.BadPayload("a Content-Length (or chunked transfer encoding) is required")
        try:
            length = int(length_header)
        except ValueError as exc:
            raise payload.BadPayload(f"bad Content-Length {length_header[:40]!r}") from exc
        if length < 0:
            raise payload.BadPayload(f"bad Content-Length {length}")
        if length > limit:
            raise payload.TooLarge(f"body of {length} bytes is over the limit of {limit}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise payload.BadPayload("body shorter than its Content-Length")
        return body

    def _chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(64)
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise payload.BadPayload("malformed chunked body") from exc
            if chunk < 0:
                raise payload.BadPayload("malformed chunked body")
            if chunk == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            size += chunk
            if size > limit:
                raise payload.TooLarge(f"body is over the limit of {limit} bytes")
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(8)

    def _refuse(self, code: int, outcome: str, message: str, kind: str | None) -> None:
        self._count(outcome)
        if kind is None:
            self._text(code, message)
            return
        self._send(code, payload.render(status_pb2.Status(code=_INVALID_ARGUMENT, message=message), kind), kind)

    def _count(self, outcome: str) -> None:
        self.server.intake.metrics.requests.labels("http", outcome).inc()

    def _text(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._send(code, (message + "\n").encode(), "text/plain; charset=utf-8", extra)

    def _json(self, code: int, data: object) -> None:
        self._send(code, json.dumps(data).encode(), payload.JSON)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("costspan gateway: %s " + format, self.address_string(), *args)


class HttpReceiver:
    def __init__(self, config: GatewayConfig, intake: Intake) -> None:
        assert config.http is not None
        host, port = config.http
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.intake = intake
        self._server.config = config
        self._server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if config.certfile and config.keyfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(config.certfile, config.keyfile)
            self._server.tls = context
        self._thread = threading.Thread(target=self._server.serve_forever, name="costspan-gateway-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections (requests being handled finish: the intake waits for them)."""
        self._server.shutdown()
        self._server.server_close()
