"""``expected.tool_calls``: written into a label only when set, so rows made before the field existed keep
their bytes, content hashes and signatures; labels with it go through the gate like any other."""

from __future__ import annotations

import orjson
import pytest

from evaltray.core.errors import EvaltrayError
from evaltray.tray import candidates as pool
from evaltray.tray import gate, lifecycle
from evaltray.tray import review as rev
from evaltray.tray.casefile import load_cases
from evaltray.tray.signatures import promoted_hash

CALLS = [{"name": "find_user", "arguments": {"email": "a@b.c"}}, {"name": "get_order"}]


def test_a_row_written_before_the_field_keeps_its_bytes_and_hash(data_dir):
    """Rows of a tray the demo made with the code before this field (evaltray ecac92a): the gate's normal form
    of each is byte for byte the stored line, so every content hash and signature over it still holds."""
    lines = (data_dir / "tray_before_tool_calls" / "cases.jsonl").read_bytes().splitlines()
    assert len(lines) == 4
    for line in lines:
        row = orjson.loads(line)
        assert "tool_calls" not in row["expected"]
        normal, problems = gate.check_case(row)
        assert problems == []
        assert orjson.dumps(normal) == line
        assert promoted_hash(normal) == promoted_hash(row)


def test_normalize_expected_keeps_tool_calls_only_when_given(ws):
    plain = rev.normalize_expected(ws, "alice", reference="Refunds take 5 days.")
    assert sorted(plain) == ["assertions", "behavior_code", "origin", "reference", "written_by"]
    got = rev.normalize_expected(ws, "alice", tool_calls=CALLS, tool_calls_ordered=True)
    assert got["tool_calls"] == [
        {"name": "find_user", "arguments": {"email": "a@b.c"}},
        {"name": "get_order", "arguments": None},
    ]
    assert got["tool_calls_ordered"] is True and got["reference"] is None  # tool calls alone are a label


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ({"name": "x"}, "tool_calls must be a list of {name, arguments} objects"),
        ([{"name": "ok"}, {"arguments": {}}], "tool_calls[1]: name: Field required (each is {name, arguments?})"),
        ([{"name": "x", "arguments": "[1]"}], "tool_calls[0]: arguments: Input should be a valid dictionary"),
        ([{"name": "x", "args": {}}], "tool_calls[0]: args: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_expected_tool_call_is_refused(ws, calls, message):
    with pytest.raises(EvaltrayError) as err:
        rev.normalize_expected(ws, "alice", reference="r", tool_calls=calls)
    assert str(err.value).startswith(message)


def _labeled(ws, text: str, **expected) -> str:
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": text}], slice="orders")
    exp = rev.normalize_expected(ws, "alice", **expected)
    rev.record_review(ws, cid, "alice", exp, verdict="pass", sign=True, difficulty="easy", case_type="typical")
    return cid


def test_tool_calls_pass_the_gate_and_survive_a_relabel(ws):
    _labeled(ws, "Where is order W1?", tool_calls=CALLS)
    _labeled(ws, "How long do refunds take?", reference="5 days")
    report = gate.promote(ws, "alice")
    assert len(report.promoted) == 2 and gate.validate(ws) == []
    tray = load_cases(ws, "main")
    by_text = {c["input"]["messages"][0]["content"]: c for c in tray.values()}
    with_calls, without = by_text["Where is order W1?"], by_text["How long do refunds take?"]
    assert with_calls["expected"]["tool_calls"][1] == {"name": "get_order", "arguments": None}
    assert "tool_calls" not in without["expected"] and "tool_calls_ordered" not in without["expected"]
    lifecycle.relabel_case(ws, with_calls["id"], "alice", tool_calls=CALLS[:1], tool_calls_ordered=False)
    gate.promote(ws, "alice")
    after = load_cases(ws, "main")[with_calls["id"]]["expected"]
    assert after["tool_calls"] == [CALLS[0]] and after["tool_calls_ordered"] is False
    assert gate.validate(ws) == []


def test_imported_labels_read_a_tool_calls_column(ws, tmp_path):
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Cancel W2"}])
    bad = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Cancel W3"}])
    path = tmp_path / "labels.jsonl"
    rows = [
        {"candidate_id": cid, "tool_calls": [{"name": "cancel_order", "arguments": {"id": "W2"}}]},
        {"candidate_id": bad, "tool_calls": {"name": "cancel_order"}},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    report = rev.import_labels(ws, path, "alice")
    assert len(report.imported) == 1
    assert report.problems == [f"{path}:2: column 'tool_calls' is not a JSON list (candidate {bad})"]
    assert rev.latest_review(ws, cid).expected["tool_calls"] == [{"name": "cancel_order", "arguments": {"id": "W2"}}]
