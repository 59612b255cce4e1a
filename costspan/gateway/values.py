"""OTLP attribute values to plain Python and back.

The decoder shared with the in-process processor reads a mapping of plain values, so a span's
``KeyValue`` list becomes a dict first. A value of a kind no GenAI attribute has (bytes, maps) is
kept as something the decoder refuses (and the span then passes unpriced), never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return tuple(plain(item) for item in value.array_value.values)
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "kvlist_value":
        return None  # no GenAI attribute is a map; reading it as absent keeps the span unpriced, not broken
    return None


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Later duplicates win, as in the SDKs."""
    return {pair.key: plain(pair.value) for pair in pairs}


def set_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def set_attributes(span: Span, values: Mapping[str, Any]) -> None:
    """Overwrite or add each key on the span."""
    if not values:
        return
    pending = dict(values)
    for pair in span.attributes:
        if pair.key in pending:
            set_value(pair.value, pending.pop(pair.key))
    for key, value in pending.items():
        pair = span.attributes.add()
        pair.key = key
        set_value(pair.value, value)


def add_event(span: Span, name: str, time_unix_nano: int, values: Mapping[str, Any]) -> None:
    event = span.events.add()
    event.name = name
    event.time_unix_nano = time_unix_nano
    for key, value in values.items():
        pair = event.attributes.add()
        pair.key = key
        set_value(pair.value, value)
