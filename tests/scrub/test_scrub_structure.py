"""Structure-aware scrubbing (issue 10 §2): JSON stays JSON, numbers stay numbers, skip lists only for
structure, every stored column scrubbed or pseudonymized, one person's name parts, the field size limit,
and ``evaltray scrub`` not holding the ingest lock while it scrubs.

The tool results are cut from tests/data/tau2/tau2-bench-retail-gpt-4.1.json (τ²-bench, MIT).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.errors import WorkspaceError
from evaltray.core.settings import Settings
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import ingest_files
from evaltray.scrub import PlaceholderMap, Scrubber, _store, open_vault, pseudonym, scrub_store
from evaltray.scrub._store import ID_KEY_FILE, TRUNCATED_KEY

#: A τ²-bench retail get_order_details result, with the price made 1234567.89 and the item id also as a number
#: (``sku``): the old text scrub made that one ``<PHONE_1>``, outside any string.
ORDER = (
    '{"order_id": "#W4923227", "user_id": "isabella_lopez_6490", "items": [{"name": "Bluetooth Speaker", '
    '"product_id": "4768869376", "item_id": "7751905257", "sku": 7751905257, "price": 1234567.89, "options": {"color": "red"}}], '
    '"status": "pending", "payment_history": [{"transaction_type": "payment", "amount": 1234567.89, '
    '"payment_method_id": "credit_card_8554680"}]}'
)


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber()


def tool(content: str) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": "call_1", "content": content}]


# ------------------------------------------------------------------------------------- JSON in, JSON out


def test_tool_result_numbers_and_ids_stay_and_json_stays_valid(scrubber: Scrubber) -> None:
    out = scrubber.scrub_messages(tool(ORDER), "t")[0]["content"]
    doc = json.loads(out)  # failed before: the sku became <PHONE_1> outside any string
    assert doc["items"][0]["price"] == 1234567.89 and doc["payment_history"][0]["amount"] == 1234567.89
    assert doc["items"][0]["item_id"] == "7751905257" and doc["items"][0]["product_id"] == "4768869376"
    assert doc["items"][0]["sku"] == 7751905257
    assert doc["user_id"] == "<USERNAME_1>"  # the PII in it is still found
    assert out == ORDER.replace("isabella_lopez_6490", "<USERNAME_1>")  # the original's style: ", " and ": "


def test_json_styles_are_kept_and_unchanged_text_is_byte_exact(scrubber: Scrubber) -> None:
    compact = '{"email":"jane@example.com","total":1234567.89,"note":"café"}'
    assert scrubber.scrub_messages(tool(compact), "t")[0]["content"] == compact.replace("jane@example.com", "<EMAIL_1>")
    indented = json.dumps({"email": "jane@example.com", "ids": ["7751905257"]}, indent=2)
    assert scrubber.scrub_messages(tool(indented), "t")[0]["content"] == indented.replace(
        "jane@example.com", "<EMAIL_1>"
    )
    escaped = '{"name": "Caf\\u00e9", "mail": "jane@example.com"}'
    assert scrubber.scrub_messages(tool(escaped), "t")[0]["content"] == escaped.replace("jane@example.com", "<EMAIL_1>")
    odd = '{ "price" :  1234567.89 ,\t"sku": "7751905257" }'  # no PII: kept exactly, spacing and all
    assert scrubber.scrub_messages(tool(odd), "t")[0]["content"] == odd


def test_arguments_as_json_text_and_keys_naming_pii(scrubber: Scrubber) -> None:
    msgs = [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {
                        "name": "modify_user_address",
                        "arguments": '{"user_id":"isabella_lopez_6490","zip":85034,"phone":2125550143,"card_number":4111111111111111,"qty":3}',
                    },
                }
            ],
        }
    ]
    call = scrubber.scrub_messages(msgs, "t")[0]["tool_calls"][0]
    assert call["function"]["name"] == "modify_user_address" and call["id"] == "call_9"
    assert json.loads(call["function"]["arguments"]) == {
        "user_id": "<USERNAME_1>",
        "zip": "<ADDRESS_1>",  # a number under a key that names PII is that PII
        "phone": "<PHONE_1>",
        "card_number": "<CREDIT_CARD_1>",
        "qty": 3,
    }


def test_an_object_keyed_by_email_or_by_item_id_and_a_top_level_array(scrubber: Scrubber) -> None:
    text = '[{"jane@example.com": 2}, "7751905257", 1234567.89, {"variants": {"9534205511": {"price": 52.69}}}]'
    out = scrubber.scrub_messages(tool(text), "t")[0]["content"]
    # a product's variants keyed by item id (get_product_details): the ids stay, and stay ids elsewhere
    assert json.loads(out) == [
        {"<EMAIL_1>": 2},
        "7751905257",
        1234567.89,
        {"variants": {"9534205511": {"price": 52.69}}},
    ]


# ------------------------------------------------------------------------------------- structure vs free values


@pytest.mark.parametrize("key", ["id", "type", "model", "format", "detail"])
def test_metadata_is_free_values_whatever_the_key(scrubber: Scrubber, key: str) -> None:
    result = scrubber.scrub_trace("t", [], {"metadata": {key: "jane@example.com", "nested": {key: "jane@example.com"}}})
    assert result.fields == {"metadata": {key: "<EMAIL_1>", "nested": {key: "<EMAIL_1>"}}}  # kept before


def test_role_and_schema_values_are_kept_only_when_they_look_like_structure(scrubber: Scrubber) -> None:
    msgs = [
        {"role": "jane@example.com", "content": "hi"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "mail jane@example.com"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}},
            ],
        },
        {"role": "assistant", "content": "ok", "finish_reason": "stop", "refusal": "not for jane@example.com"},
        {"role": "tool", "name": "jane@example.com", "tool_call_id": "jane@example.com", "content": "done"},
    ]
    out = scrubber.scrub_messages(msgs, "t")
    assert out[0]["role"] == "<EMAIL_1>"  # kept before: role was on the skip list
    assert out[1]["role"] == "user" and out[1]["content"][0] == {"type": "text", "text": "mail <EMAIL_1>"}
    assert out[1]["content"][1] == msgs[1]["content"][1]
    assert (out[2]["finish_reason"], out[2]["refusal"]) == ("stop", "not for <EMAIL_1>")
    assert (out[3]["name"], out[3]["tool_call_id"]) == ("<EMAIL_1>", "<EMAIL_1>")


def test_spans_keep_ids_and_kinds_and_parent_links_agree(scrubber: Scrubber) -> None:
    spans = [
        {"id": "a1b2c3d4e5f60718", "parent_id": None, "name": "agent", "kind": "CHAIN", "model": "gpt-4.1"},
        {"id": "jane@example.com", "parent_id": "a1b2c3d4e5f60718", "name": "lookup", "kind": "TOOL"},
        {"id": "99aa", "parent_id": "jane@example.com", "name": "call Jane Doe", "kind": "LLM"},
    ]
    out = scrubber.scrub_trace("t", [], {"spans": spans}).fields
    assert out is not None
    assert out["spans"][0] == spans[0]
    assert out["spans"][1]["id"] == out["spans"][2]["parent_id"] == "<EMAIL_1>"  # the link survives
    assert out["spans"][2]["name"] == "call <PERSON_1>"


# ------------------------------------------------------------------------------------- people


def test_first_and_last_name_of_one_person_and_of_two(scrubber: Scrubber) -> None:
    msgs = [
        {"role": "user", "content": "I am Isabella Lopez; my husband Yusuf Rossi ordered it."},
        tool('{"first_name": "Isabella", "last_name": "Lopez"}')[0],
        tool('{"first_name": "Yusuf", "last_name": "Rossi"}')[0],
        {"role": "assistant", "content": "Thanks Isabella. Is Mr. Rossi there?"},
    ]
    counts: Counter[str] = Counter()
    out = [m["content"] for m in Scrubber(vault=None).scrub_messages(msgs, "t", counts=counts)]
    assert out == [
        "I am <PERSON_1>; my husband <PERSON_2> ordered it.",
        '{"first_name": "<PERSON_1_FIRST>", "last_name": "<PERSON_1_LAST>"}',
        '{"first_name": "<PERSON_2_FIRST>", "last_name": "<PERSON_2_LAST>"}',
        "Thanks <PERSON_1_FIRST>. Is Mr. <PERSON_2_LAST> there?",
    ]
    assert counts["PERSON"] == 8
    # idempotent: nothing is found inside the part placeholders
    assert Scrubber().scrub_text(out[3], PlaceholderMap()) == out[3]


def test_name_fields_first_then_the_full_name(scrubber: Scrubber) -> None:
    msgs = [
        tool('{"name": {"first_name": "Fatima", "last_name": "Johnson"}}')[0],
        {"role": "assistant", "content": "Fatima Johnson, your order is on its way."},
    ]
    out = scrubber.scrub_messages(msgs, "t")
    assert json.loads(out[0]["content"]) == {"name": {"first_name": "<PERSON_1_FIRST>", "last_name": "<PERSON_1_LAST>"}}
    assert out[1]["content"] == "<PERSON_1>, your order is on its way."


# ------------------------------------------------------------------------------------- size limit


def test_a_field_over_the_limit_is_cut_marked_and_counted() -> None:
    s = Scrubber(max_field_chars=1000)
    seen: list[int] = []
    detect = s.detect
    s.detect = lambda text: seen.append(len(text)) or detect(text)  # type: ignore[method-assign]
    body = "mail jane@example.com " + "lorem ipsum " * 2000  # 24,022 characters
    result = s.scrub_trace("t", [{"role": "user", "content": body}, {"role": "assistant", "content": "short"}])
    assert result.truncated == 1 and result.messages is not None
    text = result.messages[0]["content"]
    assert text.startswith("mail <EMAIL_1> lorem ipsum ")
    assert text.endswith(" …[evaltray scrub: truncated, 23,023 of 24,022 characters dropped; not valid JSON]")
    assert max(seen) <= 1000  # the scrubber never looked past the limit
    assert len(Scrubber().scrub_trace("t", [{"role": "user", "content": body}]).messages[0]["content"]) == 24_015


def test_the_limit_setting_and_its_environment_variable(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ws.root / "evaltray.toml"
    text = settings.read_text()
    settings.write_text(text.replace("[ingest]\n", "[ingest]\nscrub_max_field_chars = 10\n"))
    with pytest.raises(WorkspaceError, match=r"ingest.scrub_max_field_chars must be a whole number of characters"):
        Settings.load(ws.root)
    settings.write_text(text.replace("[ingest]\n", "[ingest]\nscrub_max_field_chars = 5000\n"))
    assert _store.ScrubConfig.for_workspace(Workspace.open(ws.root)).max_field_chars == 5000
    monkeypatch.setenv("EVALTRAY_SCRUB_MAX_FIELD_CHARS", "2000")
    assert _store.ScrubConfig.for_workspace(Workspace.open(ws.root)).max_field_chars == 2000
    monkeypatch.setenv("EVALTRAY_SCRUB_MAX_FIELD_CHARS", "lots")
    with pytest.raises(WorkspaceError, match=r"EVALTRAY_SCRUB_MAX_FIELD_CHARS must be a whole number"):
        _store.ScrubConfig.for_workspace(ws)


# ------------------------------------------------------------------------------------- the store


def chats(tmp_path: Path, lines: list[dict[str, Any]]) -> Path:
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


def stored(ws: Workspace) -> dict[str, dict[str, Any]]:
    table = TraceStore(ws.traces_dir).query(order_by="trace_id")
    return {r["trace_id"]: r for r in table.to_pylist()}


LINES = [
    {
        "id": "jane@example.com",
        "tags": ["vip", "owner jane@example.com"],
        "feature": "refunds for jane@example.com",
        "metadata": {"id": "jane@example.com", "region": "eu"},
        "messages": [{"role": "user", "content": "refund order #W4923227 please"}],
    },
    {"id": "t-2", "tags": ["plain"], "messages": [{"role": "user", "content": "hello"}]},
]


def test_trace_id_tags_and_feature_with_pii_at_ingest_and_reingest(ws: Workspace, tmp_path: Path) -> None:
    path = chats(tmp_path, LINES)
    report = ingest_files(ws, [path])
    key = bytes.fromhex((ws.state_dir / ID_KEY_FILE).read_text())
    alias = pseudonym(key, "EMAIL", "jane@example.com")
    got = stored(ws)
    assert sorted(got) == sorted([alias, "t-2"])  # the id held an e-mail: kept before
    row = got[alias]
    assert row["tags"] == ["vip", "owner <EMAIL_1>"] and row["feature"] == "refunds for <EMAIL_1>"
    assert orjson.loads(row["metadata"]) == {"id": "<EMAIL_1>", "region": "eu"}
    assert got["t-2"]["tags"] == ["plain"]
    assert report.ingested == 2
    again = ingest_files(ws, [path])  # the stored id is the pseudonym: the duplicate is still seen
    assert (again.ingested, again.skipped) == (0, 2)


def test_trace_id_pseudonym_through_evaltray_scrub_and_the_vault(ws: Workspace, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "owner.key"
    _store.create_vault_key(key_file)
    settings = ws.root / "evaltray.toml"
    settings.write_text(
        settings.read_text().replace('# vault_key = "~/.config/evaltray/vault.key"', f'vault_key = "{key_file}"')
    )
    ws = Workspace.open(ws.root)
    ingest_files(ws, [chats(tmp_path, LINES)], scrub=False)
    assert "jane@example.com" in stored(ws)
    report = scrub_store(ws, "alice", workers=1)
    alias = pseudonym(bytes.fromhex((ws.state_dir / ID_KEY_FILE).read_text()), "EMAIL", "jane@example.com")
    assert sorted(stored(ws)) == sorted([alias, "t-2"]) and report.rows == 2
    assert open_vault(ws).reveal(alias, alias) == "jane@example.com"
    assert open_vault(ws).reveal(alias, "<EMAIL_1>") == "jane@example.com"


def test_ingest_reports_and_flags_truncated_traces(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALTRAY_SCRUB_MAX_FIELD_CHARS", "1000")
    big = {"id": "big-1", "messages": [{"role": "user", "content": "word " * 1000}]}
    report = ingest_files(ws, [chats(tmp_path, [big, LINES[1]])])
    assert report.files[0].truncated == ["big-1"] and report.truncated == ["big-1"]
    row = stored(ws)["big-1"]
    assert orjson.loads(row["metadata"]) == {TRUNCATED_KEY: 1}
    assert row["input_text"].endswith("truncated, 4,001 of 5,000 characters dropped; not valid JSON]")


def test_evaltray_scrub_does_not_hold_the_ingest_lock_while_scrubbing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_files(ws, [chats(tmp_path, LINES)], scrub=False)
    scrub_table = _store.scrub_table
    taken: list[bool] = []

    def scrub_while_ingest_locks(table: Any, config: Any, skip: Any = ()) -> Any:
        with ws.lock("ingest"):  # wait=0: raises at once if scrub_store held it (it did before)
            taken.append(True)
        return scrub_table(table, config, skip)

    monkeypatch.setattr(_store, "scrub_table", scrub_while_ingest_locks)
    report = scrub_store(ws, "alice", workers=1)
    assert taken == [True, True] and (report.rewritten, report.redone) == (1, 0)  # one piece per row
    assert {r["scrubbed"] for r in stored(ws).values()} == {True}


def test_a_part_changed_while_it_was_scrubbed_is_scrubbed_again(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_files(ws, [chats(tmp_path, LINES)], scrub=False)
    store = TraceStore(ws.traces_dir)
    (part,) = store.parts()
    scrub_table = _store.scrub_table
    calls: list[int] = []

    def another_writer_meanwhile(table: Any, config: Any, skip: Any = ()) -> Any:
        if not calls:  # the first time only: another writer rewrites the part (a row's note changes)
            old = store.read_part(part)
            notes = old.column("feedback_comment").to_pylist()
            notes[1] = "call me at jane@example.com"
            i = old.schema.get_field_index("feedback_comment")
            with ws.lock("ingest"):
                store.replace_part(part, old.set_column(i, old.schema.field(i), [notes]))
        calls.append(1)
        return scrub_table(table, config, skip)

    monkeypatch.setattr(_store, "scrub_table", another_writer_meanwhile)
    report = scrub_store(ws, "alice", workers=1)
    assert (len(calls), report.redone, report.rewritten, report.rows) == (4, 1, 1, 2)  # a piece per row, twice
    assert stored(ws)["t-2"]["feedback_comment"] == "call me at <EMAIL_1>"  # the change was not lost


def test_the_cli_names_truncated_traces(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTRAY_SCRUB_MAX_FIELD_CHARS", "1000")
    big = {"id": "big-1", "messages": [{"role": "user", "content": "word " * 1000}]}
    path = chats(tmp_path, [big])
    run = CliRunner().invoke(cli, ["-w", str(ws.root), "-u", "alice", "ingest", str(path), "--json"])
    assert orjson.loads(run.stdout)["files"][0]["truncated"] == ["big-1"]
    assert "truncated 1 trace(s): a field over [ingest] scrub_max_field_chars was stored cut: big-1" in run.stderr
    other = Workspace.init(tmp_path / "other", name="other", user="alice")
    ingest_files(other, [path], scrub=False)
    run = CliRunner().invoke(cli, ["-w", str(other.root), "-u", "alice", "scrub"])
    assert "truncated 1 trace(s): a field over [ingest] scrub_max_field_chars was stored cut: big-1" in run.stdout
    other.close()


def test_free_text_that_is_a_number_and_a_pii_key_number_of_an_entity_not_scrubbed() -> None:
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "2125550143"}]},  # a phone typed alone
        tool('{"zip": 85034, "phone": 2125550143}')[0],
    ]
    out = Scrubber(entities=["PHONE"]).scrub_messages(msgs, "t")
    assert out[0]["content"][0]["text"] == "<PHONE_1>"
    assert json.loads(out[1]["content"]) == {"zip": 85034, "phone": "<PHONE_1>"}  # ADDRESS is off: still a number


def test_a_whole_file_format_dedups_by_the_stored_id_too(ws: Workspace, tmp_path: Path) -> None:
    """τ²-bench results are read whole (not line by line): the other duplicate check in ingest."""
    sims = [
        {"id": "jane@example.com", "task_id": "1", "messages": [{"role": "user", "content": "hi"}]},
        {"id": "sim-2", "task_id": "2", "messages": [{"role": "user", "content": "hello"}]},
    ]
    path = tmp_path / "results.json"
    path.write_bytes(orjson.dumps({"info": {}, "tasks": [], "simulations": sims}))
    first = ingest_files(ws, [path], fmt="tau2")
    alias = pseudonym(bytes.fromhex((ws.state_dir / ID_KEY_FILE).read_text()), "EMAIL", "jane@example.com")
    assert first.ingested == 2 and sorted(stored(ws)) == sorted([alias, "sim-2"])
    again = ingest_files(ws, [path], fmt="tau2")
    assert (again.ingested, again.skipped) == (0, 2)
