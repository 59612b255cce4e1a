"""A local stand-in for the LLM providers, speaking each provider's exact wire format over real HTTP.

Why: costspan's tests must drive the real client SDKs (openai, anthropic, google-genai, groq,
ollama) end to end, transports included, so that instrumentation is tested against what the SDKs
really do with real bytes (SSE parsing, NDJSON, errors raised from HTTP statuses, dropped
connections). ``costspan demo`` needs the same stand-in at run time, so this module and the
``wire_*`` modules use the standard library only (no pytest; they may move into the package).

Usage::

    with ProviderServer() as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
        server.set_next(status=429, retry_after=2)          # next request: rate limited
        server.enqueue(Scenario(usage=Usage(input_tokens=100, cached_tokens=40)), times=2)
        ...
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

Pointing each SDK at it (``url = server.base_url``):

* OpenAI: ``openai.OpenAI(base_url=url + "/v1", api_key="x")``.
* Azure OpenAI: ``openai.AzureOpenAI(azure_endpoint=url, api_key="x", api_version="2024-10-21")``
  -> ``/openai/deployments/{model}/chat/completions?api-version=...``.
* Groq: ``groq.Groq(base_url=url, api_key="x")`` -> ``/openai/v1/chat/completions``.
* Anthropic: ``anthropic.Anthropic(base_url=url, api_key="x")`` -> ``/v1/messages``.
* Gemini: ``genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url))``; Vertex AI:
  see :mod:`costspan.standin.wire_gemini` (express mode with an API key, or project/location with
  ``google.oauth2.credentials.Credentials(token="fake")``).
* Ollama: ``ollama.Client(host=url)``; its OpenAI-compatible API: ``openai.OpenAI(base_url=url + "/v1")``.
* Bedrock: ``boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
  aws_access_key_id="x", aws_secret_access_key="x")`` -> ``/model/{modelId}/converse`` etc.
* Mistral: ``mistralai.client.Mistral(api_key="x", server_url=url)`` -> ``/v1/chat/completions``,
  ``/v1/fim/completions``, ``/v1/embeddings`` (told from OpenAI's by the SDK's user agent).
* Cohere: ``cohere.ClientV2(api_key="x", base_url=url)`` -> ``/v2/chat``, ``/v2/embed``, ``/v2/rerank``.

Standalone: ``python -m costspan.standin.server --port 8765`` (``--alias REQ=RESP`` to answer a
requested model with another name, e.g. ``gpt-4o-mini=gpt-4o-mini-2024-07-18``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from costspan.standin import (
    wire_anthropic,
    wire_bedrock,
    wire_cohere,
    wire_gemini,
    wire_mistral,
    wire_ollama,
    wire_openai,
)
from costspan.standin._core import (
    STATUS_PHRASES,
    JsonReply,
    RecordedRequest,
    Reply,
    RequestContext,
    Route,
    Scenario,
    StreamReply,
    Usage,
    apply_faults,
    cut_point,
)

__all__ = [
    "OPENAI_DATED_MODELS",
    "ROUTES",
    "ProviderServer",
    "RecordedRequest",
    "Scenario",
    "Usage",
    "main",
]

# Order matters only where suffixes overlap: ``/chat/completions`` is tried before ``/completions``, and
# Mistral's routes (its SDK's requests, and ``/fim/completions``) before OpenAI's.
ROUTES: list[Route] = [
    *wire_anthropic.ROUTES, *wire_bedrock.ROUTES, *wire_cohere.ROUTES, *wire_gemini.ROUTES, *wire_ollama.ROUTES,
    *wire_mistral.ROUTES, *wire_openai.ROUTES,
]

# What OpenAI answers for the undated aliases (a convenience for ``model_aliases=``; not the default,
# which echoes the requested model).
OPENAI_DATED_MODELS: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "text-embedding-3-small": "text-embedding-3-small",
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ProviderServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping keep-alive connections (or closing streams early) is normal, not a failure."""
        if self.owner.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Parses, records, picks the scenario, asks the route for a reply and writes it."""

    # HTTP/1.1: keep-alive like the real APIs, and chunked streams whose truncation clients detect.
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end eventually
    server: _HTTPServer

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None

        if self.command == "GET" and path == "/health":  # readiness probe: not recorded
            self._write_json(JsonReply({"status": "ok"}), Scenario())
            return

        match = None
        chosen: Route | None = None
        for candidate in ROUTES:
            if candidate.method != self.command:
                continue
            match = candidate.pattern.fullmatch(path)
            if match and (candidate.accepts is None or candidate.accepts(headers)):
                chosen = candidate
                break
        scenario, number = owner._record(self.command, path, query, headers, body, raw,
                                         chosen.name if chosen else None)
        if chosen is None or match is None:
            not_found = JsonReply({"error": {"message": f"fake provider server: no route for {self.command} {path}",
                                                "type": "invalid_request_error", "param": None, "code": None}},
                                  status=404)
            self._write_json(not_found, scenario)
            return
        ctx = RequestContext(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=body,
            params={k: v for k, v in match.groupdict().items() if v is not None},
            scenario=scenario,
            request_number=number,
            model_aliases=dict(owner.model_aliases),
        )
        reply: Reply
        try:
            reply = chosen.error(ctx, scenario.status) if scenario.status >= 400 else chosen.handle(ctx)
            reply = apply_faults(reply, scenario)
        except Exception as exc:  # a bug in a fake must show up as a 500 the test can see, not a hang
            reply = JsonReply({"error": {"message": f"fake provider server bug: {exc!r}", "type": "server_error"}},
                              status=500)
        try:
            if isinstance(reply, StreamReply):
                self._write_stream(reply, scenario)
            else:
                self._write_json(reply, scenario)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. it closed a stream early)
        else:
            owner._answered(number)

    def _start(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status, STATUS_PHRASES.get(status))
        self.send_header("content-type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)

    def _write_json(self, reply: JsonReply, scenario: Scenario) -> None:
        data = reply.data()
        if scenario.delay:
            time.sleep(scenario.delay)
        end = cut_point(len(data), scenario.end_at_byte)
        if end is not None:  # a body that ends early, and says so
            data = data[:end]
        cut = cut_point(len(data), scenario.cut_at_byte, short=True)
        if cut is None and scenario.cut_after is not None:  # a dropped connection: half of the promised body
            cut = len(data) // 2
        self._start(reply.status, reply.content_type, reply.headers)
        # A dropped connection always owes bytes, even when the body it promised was empty.
        self.send_header("content-length", str(max(len(data), 1) if cut is not None else len(data)))
        self.end_headers()
        if cut is not None:
            self.wfile.write(data[:cut])
            self._abort()
            return
        self.wfile.write(data)
        self.wfile.flush()

    def _write_stream(self, reply: StreamReply, scenario: Scenario) -> None:
        self._start(200, reply.content_type, reply.headers)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        if scenario.delay:
            time.sleep(scenario.delay)
        total = sum(len(frame) for frame in reply.frames)
        cut = cut_point(total, scenario.cut_at_byte)
        end = cut_point(total, scenario.end_at_byte)
        budget = min((point for point in (cut, end) if point is not None), default=None)
        for index, frame in enumerate(reply.frames):
            if scenario.cut_after is not None and index >= scenario.cut_after:
                break
            if scenario.error_after is not None and index >= scenario.error_after and reply.error_frame:
                self._write_chunk(reply.error_frame)
                break
            if budget is not None:  # a byte cut: this frame is written up to the cut, mid-frame
                if budget <= 0:
                    break
                frame, budget = frame[:budget], budget - len(frame)
            if index and scenario.chunk_delay:
                time.sleep(scenario.chunk_delay)
            self._write_chunk(frame)
        if scenario.cut_after is not None or (cut is not None and (end is None or cut <= end)):
            self._abort()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the connection mid-body, so the client sees an incomplete response."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class ProviderServer:
    """The fake provider server: a ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread.

    Scenarios: requests take scenarios from a FIFO queue (``enqueue``/``set_next``); when the
    queue holds none that matches, the default scenario applies (``set_default``; initially
    ``Scenario()``: a normal answer with usage estimated from the request).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model_aliases: dict[str, str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self._port = port
        self.verbose = verbose
        self._initial_aliases = dict(model_aliases or {})
        self.model_aliases: dict[str, str] = dict(self._initial_aliases)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._answered_numbers: list[int] = []
        self._queue: list[Scenario] = []
        self._default = Scenario()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ProviderServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-provider-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._port
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:{port}`` without a trailing slash; SDK-specific suffixes are added by callers."""
        if self._httpd is None:
            raise RuntimeError("ProviderServer is not started")
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + path

    # --- scenarios ---------------------------------------------------------------------------

    def enqueue(self, *scenarios: Scenario, times: int = 1, **fields: Any) -> None:
        """Queue scenarios for the next requests, in order; each is used ``times`` times.

        ``server.enqueue(status=500)`` builds the scenario from keyword fields.
        """
        if fields:
            scenarios = (*scenarios, Scenario(**fields))
        with self._lock:
            for scenario in scenarios:
                self._queue.extend([scenario] * times)

    def set_next(self, scenario: Scenario | None = None, /, **fields: Any) -> None:
        """Shorthand for one scenario: ``server.set_next(status=429, retry_after=1)``."""
        base = scenario or Scenario()
        self.enqueue(base.with_changes(**fields) if fields else base)

    def set_default(self, scenario: Scenario | None = None, /, **fields: Any) -> None:
        """The scenario for requests when the queue has none for them (``None``: back to normal)."""
        base = scenario or Scenario()
        with self._lock:
            self._default = base.with_changes(**fields) if fields else base

    def set_model_alias(self, requested: str, response: str) -> None:
        """Answer requests for ``requested`` with ``response`` as the model name (e.g. a dated OpenAI name)."""
        with self._lock:
            self.model_aliases[requested] = response

    @property
    def pending(self) -> int:
        """How many queued scenarios have not been used yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget requests, queued scenarios, the default scenario and added aliases."""
        with self._lock:
            self._requests.clear()
            self._answered_numbers.clear()
            self._queue.clear()
            self._default = Scenario()
            self.model_aliases = dict(self._initial_aliases)

    # --- recorded requests -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def answered(self) -> list[int]:
        """The numbers (1, 2, ... in the order received) of the requests whose whole answer was
        written to the connection, in the order they were finished."""
        with self._lock:
            return list(self._answered_numbers)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise LookupError("no request received yet")
            return self._requests[-1]

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        raw: bytes,
        route_name: str | None,
    ) -> tuple[Scenario, int]:
        with self._lock:
            scenario = self._default
            for index, queued in enumerate(self._queue):
                if queued.path_contains is None or queued.path_contains in path:
                    scenario = self._queue.pop(index)
                    break
            self._requests.append(RecordedRequest(method, path, query, headers, body, raw, route_name, scenario))
            return scenario, len(self._requests)

    def _answered(self, number: int) -> None:
        with self._lock:
            self._answered_numbers.append(number)


def _parse_aliases(values: Iterable[str]) -> dict[str, str]:
    aliases = {}
    for value in values:
        requested, _, response = value.partition("=")
        if not response:
            raise SystemExit(f"--alias wants REQUESTED=RESPONSE, got {value!r}")
        aliases[requested] = response
    return aliases


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until Ctrl-C (``python -m costspan.standin.server``)."""
    parser = argparse.ArgumentParser(description="Fake LLM provider server (OpenAI, Azure, Groq, Anthropic, "
                                                 "Gemini/Vertex, Ollama wire formats).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--alias", action="append", default=[], metavar="REQ=RESP",
                        help="answer model REQ as RESP, e.g. gpt-4o-mini=gpt-4o-mini-2024-07-18")
    parser.add_argument("--dated-openai-models", action="store_true", help="use OpenAI's dated names for aliases")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    aliases = dict(OPENAI_DATED_MODELS) if args.dated_openai_models else {}
    aliases.update(_parse_aliases(args.alias))
    server = ProviderServer(args.host, args.port, model_aliases=aliases, verbose=args.verbose)
    server.start()
    print(f"fake provider server listening on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
