"""A web application that makes one LLM call per request, for SIGTERM drills under real servers.

``app`` is ASGI (uvicorn, gunicorn with uvicorn workers), ``wsgi_app`` is WSGI (gunicorn's sync
workers). Each request calls the openai SDK against the stand-in at ``STANDIN_URL``. costspan
instruments the SDK when this module is imported, or, with ``COSTSPAN_LAZY=1``, on the first
request: then the server's own SIGTERM handler was installed before costspan's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import openai

_URL = os.environ["STANDIN_URL"] + "/v1"
_MESSAGES: Any = [{"role": "user", "content": "Name one lighthouse."}]
_lock = threading.Lock()
_instrumented = False
_CALLS = os.environ.get("DRILL_CALLS_LOG")
"""When set, a file each completed LLM call appends a line to (``pid response-id``), once costspan
has accounted it: the calls the ledger must hold, as the application saw them end."""


def _completed(answer: Any) -> None:
    if _CALLS:
        fd = os.open(_CALLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {answer.id}\n".encode())
        finally:
            os.close(fd)


def _instrument() -> None:
    global _instrumented
    with _lock:
        if not _instrumented:
            from costspan.instrumentation.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument()
            _instrumented = True


if os.environ.get("COSTSPAN_LAZY") != "1":
    _instrument()


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})  # lifespan.startup.complete, lifespan.shutdown.complete
            if kind == "lifespan.shutdown":
                return
    _instrument()
    client = openai.AsyncOpenAI(base_url=_URL, api_key="k", max_retries=0)
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=_MESSAGES)
    _completed(answer)
    body = (answer.choices[0].message.content or "").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    _instrument()
    client = openai.OpenAI(base_url=_URL, api_key="k", max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=_MESSAGES)
    _completed(answer)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(answer.choices[0].message.content or "").encode()]
