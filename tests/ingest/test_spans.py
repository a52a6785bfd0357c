"""The span model shared by the OTLP and plain-JSON span formats: OTLP values, ids, times, kinds, status."""

from __future__ import annotations

from datetime import UTC, datetime

from evaltray.ingest.spans import any_value, attributes, hex_id, span_kind, span_time, status_code

OTLP_KINDS = {0: None, 1: "internal", 2: "server", 3: "client"}


def test_span_kind_from_names_and_numbers() -> None:
    assert span_kind("SPAN_KIND_CLIENT", OTLP_KINDS) == "client"
    assert span_kind("SpanKind.SERVER", OTLP_KINDS) == "server"  # Python's enum repr
    assert span_kind(3, OTLP_KINDS) == "client"
    assert span_kind(2, {2: "client"}) == "client"  # the JS SDK numbers kinds its own way
    assert span_kind(0, OTLP_KINDS) is None
    assert span_kind("SPAN_KIND_UNSPECIFIED", OTLP_KINDS) is None
    assert span_kind("", OTLP_KINDS) is None
    assert span_kind(["client"], OTLP_KINDS) is None


def test_span_time_keeps_the_microseconds() -> None:
    want = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert span_time("1700000000123456789") == want  # epoch nanoseconds as OTLP/JSON writes int64
    assert span_time(1_700_000_000_123_456_789) == want
    assert span_time([1_700_000_000, 5_000]) == datetime(2023, 11, 14, 22, 13, 20, 5, tzinfo=UTC)  # JS [s, ns]
    assert span_time("2023-11-14T22:13:20Z") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert span_time(0) is None and span_time("0") is None and span_time(None) is None  # unset in OTLP


def test_ids_status_and_values() -> None:
    assert hex_id("0102030405060708", 8) == "0102030405060708"
    assert hex_id("0x0102030405060708", 8) == "0102030405060708"
    assert hex_id("AQIDBAUGBwg=", 8) == "0102030405060708"  # base64, as protobuf's JSON writes bytes
    assert hex_id("0000000000000000", 8) is None  # all zeros: no id
    assert hex_id("0102", 8) is None
    assert (status_code("STATUS_CODE_ERROR"), status_code("Ok"), status_code(2), status_code(None)) == (2, 1, 2, 0)
    assert any_value({"intValue": "9007199254740993"}) == 9007199254740993  # beyond a float's 53 bits
    assert (
        attributes(
            [
                {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}, {"doubleValue": "NaN"}]}}},
                {"key": 5, "value": {"stringValue": "no string key"}},
            ]
        )["a"][0]
        is True
    )
    assert attributes({"already": "flat"}) == {"already": "flat"}
