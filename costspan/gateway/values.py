"""OTLP attribute values to plain Python and back.

The decoder shared with the in-process processor reads a mapping of plain values, so a span's
``KeyValue`` list becomes a dict first. A value of a kind no GenAI attribute has (bytes, maps) is
kept as something the decoder refuses (and the span then passes unpriced), never an error.

Writing the ``costspan.*`` attributes is the gateway's largest cost of its own per LLM span when
done field by field (about a microsecond per attribute through the protobuf runtime), so new keys
are appended as their wire encoding in one merge instead: ``KeyValue`` entries whose bytes, but for
a float's eight, repeat from span to span (the status, the pricing key, the budget name) and are
cached.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from functools import lru_cache
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


def set_attributes(span: Span, values: Mapping[str, Any], existing: Mapping[str, Any]) -> None:
    """Overwrite or add each key on the span; ``existing`` holds the span's attributes as
    :func:`attributes` read them, so only keys it has are looked for among the span's own."""
    if not values:
        return
    overwrite = values.keys() & existing.keys()
    if overwrite:
        for pair in span.attributes:
            if pair.key in overwrite:
                set_value(pair.value, values[pair.key])
    span.MergeFromString(b"".join(_encoded(key, value) for key, value in values.items() if key not in overwrite))


def add_event(span: Span, name: str, time_unix_nano: int, values: Mapping[str, Any]) -> None:
    event = span.events.add()
    event.name = name
    event.time_unix_nano = time_unix_nano
    for key, value in values.items():
        pair = event.attributes.add()
        pair.key = key
        set_value(pair.value, value)


# -- the wire encoding of a Span's ``attributes`` entry (field 9: KeyValue{1: key, 2: AnyValue}) ----
_SPAN_ATTRIBUTE = b"\x4a"
_KEY = b"\x0a"
_VALUE = b"\x12"
_STRING, _BOOL, _INT, _DOUBLE = b"\x0a", b"\x10", b"\x18", b"\x21"
_double = struct.Struct("<d").pack


def _encoded(key: str, value: Any) -> bytes:
    if type(value) is float:
        return _double_prefix(key) + _double(value)
    return _entry(key, value)


@lru_cache(maxsize=4096, typed=True)
def _entry(key: str, value: Any) -> bytes:
    """Bounded: a project name or a pricing key repeats, but any string may come. Typed: ``True``
    and ``1`` are equal keys to a plain cache, not equal values on the wire."""
    if isinstance(value, bool):
        encoded = _BOOL + (b"\x01" if value else b"\x00")
    elif isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"{value} is out of range for an int64 attribute")
        encoded = _INT + _varint(value)
    elif isinstance(value, float):
        encoded = _DOUBLE + _double(value)
    else:
        encoded = _STRING + _delimited(str(value).encode())
    return _SPAN_ATTRIBUTE + _delimited(_KEY + _delimited(key.encode()) + _VALUE + _delimited(encoded))


@lru_cache(maxsize=256)
def _double_prefix(key: str) -> bytes:
    return _entry(key, 0.0)[:-8]


def _delimited(data: bytes) -> bytes:
    return _varint(len(data)) + data


def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement, ten bytes when negative
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
