"""OTLP attribute values to plain Python and back.

The decoder shared with the in-process processor reads a mapping of plain values, so a span's
``KeyValue`` list becomes a dict first. A value of a kind no GenAI attribute has (bytes, maps) is
kept as something the decoder refuses (and the span then passes unpriced), never an error.

Writing the ``costspan.*`` attributes field by field costs about a microsecond per attribute
through the protobuf runtime, the gateway's largest cost of its own per LLM span. Most of them
repeat from span to span (the status, the pricing key, the project), so each such attribute is
serialized once, by the generated classes, as a ``Span`` holding only it, and merged: merging a
serialized message appends to a repeated field, exactly as adding the entry would. Floats (the
costs) differ on every span and are added field by field.
"""

from __future__ import annotations

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
    """Overwrite or add each key on the span, in order; ``existing`` holds the span's attributes as
    :func:`attributes` read them, so only keys it has are looked for among the span's own."""
    if not values:
        return
    overwrite = values.keys() & existing.keys()
    if overwrite:
        for pair in span.attributes:
            if pair.key in overwrite:
                set_value(pair.value, values[pair.key])
    repeated: list[bytes] = []
    for key, value in values.items():
        if key in overwrite:
            continue
        if type(value) is not float:
            repeated.append(_alone(key, value))
            continue
        if repeated:
            span.MergeFromString(b"".join(repeated))
            repeated.clear()
        pair = span.attributes.add()
        pair.key = key
        pair.value.double_value = value
    if repeated:
        span.MergeFromString(b"".join(repeated))


def _alone(key: str, value: Any) -> bytes:
    """A span holding only this attribute, serialized; from the cache unless the value is long."""
    if isinstance(value, str) and len(value) > _CACHED_LENGTH:
        return _serialized(key, value)
    return _cached(key, value)


def _serialized(key: str, value: Any) -> bytes:
    holder = Span()
    pair = holder.attributes.add()
    pair.key = key
    set_value(pair.value, value)
    return holder.SerializeToString()


_CACHED_LENGTH = 256
"""Longer values (a project name is the sender's to choose) are serialized each time: the cache
holds 4,096 entries, and must not become a store of whatever large strings a sender makes up."""
_cached = lru_cache(maxsize=4096, typed=True)(_serialized)
"""Bounded: a project name or a pricing key repeats, but any string may come. Typed: ``True`` and
``1`` are equal keys to a plain cache, not equal values on the wire."""


def add_event(span: Span, name: str, time_unix_nano: int, values: Mapping[str, Any]) -> None:
    event = span.events.add()
    event.name = name
    event.time_unix_nano = time_unix_nano
    for key, value in values.items():
        pair = event.attributes.add()
        pair.key = key
        set_value(pair.value, value)
