"""The tray file: one writer, one reader, and the reader's fast path for rows exactly as signed."""

from __future__ import annotations

import hashlib

import orjson

from evaltray.tray import casefile, gate
from evaltray.tray.casefile import case_line, line_signed_hash, load_cases, read_tray, restamp, signed_hash, write_cases
from tests.helpers import tray_of

PENDING = b',"version":{"added":"pending","last_changed":"pending"}}'


def test_case_line_keeps_field_order_compact():
    assert case_line({"id": "c-2", "b": [1, None], "a": "é"}) == '{"id":"c-2","b":[1,null],"a":"é"}\n'.encode()


def test_write_then_read_round_trips_sorted_by_id(ws):
    rows = [
        {"id": "c-b", "x": 1, "version": {"added": "pending", "last_changed": "pending"}},
        {"id": "c-a", "x": 2, "version": {"added": "1.0.0", "last_changed": "1.0.0"}},
    ]
    write_cases(ws, "main", rows)
    assert ws.cases_path("main").read_bytes() == (
        b'{"id":"c-a","x":2,"version":{"added":"1.0.0","last_changed":"1.0.0"}}\n{"id":"c-b","x":1' + PENDING + b"\n"
    )
    tray = read_tray(ws, "main")
    assert tray.rows == [(1, rows[1]), (2, rows[0])]
    assert tray.raws == [case_line(rows[1])[:-1], case_line(rows[0])[:-1]]
    assert tray.bad == [] and tray.trusted == set()
    assert load_cases(ws, "main") == {"c-a": rows[1], "c-b": rows[0]}


def test_missing_file_is_an_empty_tray(ws):
    ws.cases_path("main").unlink(missing_ok=True)
    assert read_tray(ws, "main") == casefile.TrayRows()
    assert load_cases(ws, "main") == {}


def test_lines_that_are_not_rows_are_reported_by_line_number(ws):
    ws.cases_path("main").write_bytes(b'{"id":"c-a"}\r\n\n{not json\n[1, 2]\n  \n{"id":"c-b"}')
    tray = read_tray(ws, "main")
    assert tray.rows == [(1, {"id": "c-a"}), (6, {"id": "c-b"})]
    assert tray.raws == [b'{"id":"c-a"}', b'{"id":"c-b"}']
    assert tray.bad == [(3, "not valid JSON"), (4, "not a JSON object")]


def test_signed_hash_leaves_out_the_version_by_hand():
    case = {"id": "c-1", "slice": "s", "version": {"added": "pending", "last_changed": "pending"}}
    want = hashlib.sha256(b'{"id":"c-1","slice":"s"}').hexdigest()
    assert signed_hash(case) == want
    assert line_signed_hash(b'{"id":"c-1","slice":"s"' + PENDING, case) == want
    # a line with spaces, or whose version is not its last field, is not hashed from its bytes
    assert line_signed_hash(b'{"id": "c-1", "slice": "s", "version": {}}', case) is None


def test_restamp_sets_pending_versions_only():
    raw = b'{"id":"c-1","version":{"added":"0.9.0","last_changed":"pending"}}'
    case = orjson.loads(raw)
    assert restamp(raw, case, "1.0.0") == b'{"id":"c-1","version":{"added":"0.9.0","last_changed":"1.0.0"}}'
    assert case["version"] == {"added": "0.9.0", "last_changed": "1.0.0"}
    raw = b'{"id":"c-1"' + PENDING
    assert (
        restamp(raw, orjson.loads(raw), "2.0.0") == b'{"id":"c-1","version":{"added":"2.0.0","last_changed":"2.0.0"}}'
    )
    done = b'{"id":"c-1","version":{"added":"1.0.0","last_changed":"1.0.0"}}'
    assert restamp(done, orjson.loads(done), "2.0.0") is done


def _stub_view(row):
    """What a release reads of a case it does not diff."""
    return {
        "id": row["id"],
        "slice": row["slice"],
        "difficulty": row["difficulty"],
        "case_type": row["case_type"],
        "provenance": {"source": row["provenance"]["source"], "supersedes": row["provenance"]["supersedes"]},
        "version": row["version"],
    }


def test_signed_fast_path_gives_the_rows_of_the_full_parse(ws):
    tray_of(ws, {"refunds": 3, "shipping/returns": 2})
    state = gate.registry_state(ws)
    full = read_tray(ws, "main")
    fast = read_tray(ws, "main", signed=state)
    assert fast.trusted == {0, 1, 2, 3, 4} and fast.raws == full.raws and fast.bad == []
    assert [line for line, _ in fast.rows] == [1, 2, 3, 4, 5]
    assert fast.cases == [_stub_view(row) for row in full.cases]
    # the registry's record of each case is what was signed
    for row in full.cases:
        reg = state.cases[row["id"]]
        assert (reg.set_name, reg.status, reg.content_hash) == ("main", "active", signed_hash(row))
        assert reg.review_id == row["validation"]["review_id"] and reg.review_id in state.signed_reviews
    # the same lines in another set's file are not what was signed for that set: parsed in full
    ws.cases_path("edge").write_bytes(ws.cases_path("main").read_bytes())
    assert read_tray(ws, "edge", signed=state).trusted == set()
    # nor is a retired case's line
    gate.retire(ws, full.cases[0]["id"], "feature removed", "alice")
    assert read_tray(ws, "edge", signed=gate.registry_state(ws)).trusted == set()
    ws.cases_path("main").write_bytes(ws.cases_path("edge").read_bytes())
    assert read_tray(ws, "main", signed=gate.registry_state(ws)).trusted == {1, 2, 3, 4}


def test_hand_edited_row_is_parsed_in_full_and_caught(ws):
    tray_of(ws, {"refunds": 3})
    lines = ws.cases_path("main").read_bytes().splitlines()
    edited = orjson.loads(lines[1])
    edited["expected"]["reference"] = "Sure, always."
    lines[1] = orjson.dumps(edited)
    # a line re-serialised with spaces holds the same row: parsed, not trusted, still sound
    lines[2] = orjson.dumps(orjson.loads(lines[2]), option=orjson.OPT_INDENT_2).replace(b"\n", b"")
    ws.cases_path("main").write_bytes(b"\n".join(lines) + b"\n")
    state = gate.registry_state(ws)
    tray = read_tray(ws, "main", signed=state)
    assert tray.trusted == {0}
    assert tray.rows[1] == (2, edited) and tray.rows[2][1] == orjson.loads(lines[2])
    tray_problems, problems = gate.read_signed(ws, "main", set(), state)
    assert tray_problems.cases[1:] == tray.cases[1:]
    assert [str(p) for p in problems] == [
        f"line 2 {edited['id']}: row differs from what was signed off (hand-edited after promotion?)",
        f"line 2 {edited['id']}: sign-off signature by 'alice' is invalid: it does not verify against their "
        "registered keys for this case's label (label edited after sign-off, or a signature copied from elsewhere)",
        f"line 2 {edited['id']}: promotion signature by 'alice' is invalid: the row differs from what was "
        "promoted, or the signature is not theirs",
    ]
    assert [str(p) for p in gate.validate(ws)] == [str(p) for p in problems]
