"""Serving HTTP over TLS without letting one client hold up the others.

``socketserver`` servers wrap the listening socket in TLS by default, which runs every handshake in
the accept loop: one client that connects and says nothing blocks every other. Both of costspan's
servers (``/metrics`` and the gateway's OTLP/HTTP receiver) therefore take the plain connection
and handshake in its own worker thread, with a deadline, so a silent client loses its own
connection and only its own.
"""

from __future__ import annotations

import logging
import socket
import ssl
from socketserver import BaseServer
from typing import Any

logger = logging.getLogger("costspan")


class HandshakePerConnection(BaseServer):
    """Mixed into a threading server: ``tls`` (or None for plain HTTP), ``connection_timeout_s``, and
    ``name`` (what the logs call the server)."""

    tls: ssl.SSLContext | None = None
    connection_timeout_s = 10.0
    name = "costspan"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            request.settimeout(self.connection_timeout_s)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:  # a port scan, a plain-HTTP client, a silent one
            logger.debug("%s: TLS handshake with %s failed: %s", self.name, client_address, exc)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            self.shutdown_request(wrapped)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that times out or drops mid-request is the client's problem: no traceback on stderr."""
        logger.debug("%s: request from %s failed", self.name, client_address, exc_info=True)
