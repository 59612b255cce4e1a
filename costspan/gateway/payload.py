"""OTLP/HTTP bodies in and out: content types, gzip, size limits, the JSON encoding's quirks.

Everything here treats the body as hostile: its size is checked before it is read, its
decompressed size while it is inflated (a gzip bomb stops at the limit, never in memory), and any
parse failure becomes :class:`BadPayload` with a message for the 400 answer.

OTLP/JSON is protobuf's JSON mapping with two exceptions the spec names: trace and span ids are
hex strings, not base64, and enum fields may be integers. The ids are rewritten to base64 before
``json_format`` parses the message, and back to hex when an answer is written.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class BadPayload(ValueError):
    """A body that is not a valid OTLP traces request (HTTP 400, gRPC INVALID_ARGUMENT)."""


class TooLarge(ValueError):
    """A body over a size limit (HTTP 413)."""


class Unsupported(ValueError):
    """A content type or encoding the receiver does not speak (HTTP 415)."""


def media_type(content_type: str | None) -> str:
    """``application/x-protobuf`` or ``application/json``; raises Unsupported otherwise."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, JSON):
        return kind
    raise Unsupported(f"unsupported content type {content_type!r}: send {PROTOBUF} or {JSON}")


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body decoded from its ``Content-Encoding`` (identity or gzip), at most ``limit`` bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        if len(body) > limit:
            raise TooLarge(f"body of {len(body)} bytes is over the limit of {limit}")
        return body
    if coding not in ("gzip", "deflate"):
        raise Unsupported(f"unsupported content encoding {encoding!r}: send gzip or identity")
    inflater = zlib.decompressobj(wbits=31 if coding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadPayload(f"malformed {coding} body: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"body inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise BadPayload(f"truncated {coding} body")
    return out


def parse(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from a decoded body; raises BadPayload."""
    request = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise BadPayload(f"malformed protobuf: {exc}") from exc
        return request
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadPayload(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadPayload("malformed OTLP/JSON: expected an object with resourceSpans")
    try:
        _ids_to_base64(data)
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, BadPayload, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise BadPayload(f"malformed OTLP/JSON: {exc}") from exc
    return request


def render(message: Message, kind: str) -> bytes:
    """An answer (response or ``google.rpc.Status``) in the request's encoding."""
    if kind == PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


def _ids_to_base64(data: dict[str, Any]) -> None:
    for resource_spans in _list(data.get("resourceSpans")):
        for scope_spans in _list(_dict(resource_spans).get("scopeSpans")):
            for span in _list(_dict(scope_spans).get("spans")):
                span = _dict(span)
                _fix_ids(span)
                for link in _list(span.get("links")):
                    _fix_ids(_dict(link))


def _fix_ids(entry: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = entry.get(name)
        if isinstance(value, str) and value:
            try:
                entry[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise BadPayload(f"{name} {value[:40]!r} is not hex") from exc


def _list(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayload("malformed OTLP/JSON: expected a list")
    return value


def _dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload("malformed OTLP/JSON: expected an object")
    return value
