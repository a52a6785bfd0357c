"""OpenTelemetry spans in whichever JSON shape they arrive: the span model, OTLP's value encodings, span kinds.

:mod:`.otel` (OTLP/JSON) and :mod:`.openinference` (spans as plain JSON objects) read their shapes into
:class:`SpanRecord`; :mod:`.span_reading` interprets one, :mod:`.span_traces` makes traces of them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ._common import as_float, as_int, parse_time


def any_value(value: Any) -> Any:
    """The plain value of an OTLP/JSON ``AnyValue`` (int64 arrive as strings; bytes stay base64)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])  # exactly: int64 ids and nanosecond counts exceed a float's 53 bits
        except (TypeError, ValueError):
            return as_int(value["intValue"])
    if "doubleValue" in value:
        return as_float(value["doubleValue"])  # also "NaN"/"Infinity", which proto3 JSON writes as strings
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """A flat dict from OTLP ``[{key, value: AnyValue}]`` (a dict is taken as already flat)."""
    if isinstance(kvs, dict):
        return kvs
    out: dict[str, Any] = {}
    for kv in kvs or []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


_HEX = re.compile(r"[0-9a-fA-F]+")


def hex_id(value: Any, nbytes: int) -> str | None:
    """A lowercase hex trace/span id from hex (``0x`` allowed) or the base64 protobuf's JSON writes."""
    if not isinstance(value, str) or not value:
        return None
    text = value[2:] if value[:2].lower() == "0x" else value
    if len(text) == 2 * nbytes and _HEX.fullmatch(text):
        return text.lower() if int(text, 16) else None  # an all-zero id means "no id" in OTel
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == nbytes and any(raw) else None


def status_code(value: Any) -> int:
    """OTel status as 0 unset, 1 ok, 2 error, from ints or enum names (``STATUS_CODE_ERROR``, ``ERROR``)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.upper().removeprefix("STATUS_CODE_").removeprefix("STATUSCODE.")
        return {"OK": 1, "ERROR": 2}.get(name, 0)
    return 0


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def span_time(value: Any) -> datetime | None:
    """A span timestamp, exact to the microsecond: epoch nanoseconds (int or digit string), OTel JS
    ``[s, ns]``, or anything :func:`parse_time` reads. 0 and "0" mean unset in OTLP."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, str) and value.isdigit() and len(value) >= 18:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**17:
        return EPOCH + timedelta(microseconds=value // 1000)  # float seconds would round the last digits
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return EPOCH + timedelta(seconds=value[0], microseconds=value[1] // 1000)
    return parse_time(value)


@dataclass(slots=True)
class SpanEvent:
    """A span event or an OTLP log record tied to a span: name, time, attributes, and a log body."""

    name: str
    time: datetime | None
    attrs: dict[str, Any]
    body: Any = None


@dataclass(slots=True)
class SpanRecord:
    """One span, whichever JSON shape it came in: ids in hex, times as datetimes, attributes flat."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    name: str | None = None
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    status_code: int = 0
    status_message: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None


def span_kind(value: Any, numbered: Mapping[int, str | None]) -> str | None:
    """A span kind in lower case (``client``) from its enum name (``SPAN_KIND_CLIENT``, ``SpanKind.CLIENT``) or
    its number in ``numbered`` (OTLP and the JS SDK number them differently); None when unspecified."""
    if isinstance(value, int):
        return numbered.get(value)
    if isinstance(value, str):
        name = value.lower().removeprefix("span_kind_").removeprefix("spankind.")
        return None if name in ("", "unspecified") else name
    return None
