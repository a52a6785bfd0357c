"""The scrubber wired into the workspace: scrub at ingest, `evaltray scrub`, quarantine, the vault, candidates.

``chats.jsonl`` holds three OpenAI-format chats: ``lopez-40`` is the first eleven messages of τ²-bench
retail simulation 55094b9e… (tests/data/scrub/tau2_lopez_trace.json) in OpenAI shape, with the
customer's e-mail as ``user`` and in ``metadata``; ``noah-7`` a short chat with a name, a phone number
and an e-mail; ``clean-1`` HaluEval ID 3674's question, which holds no personal data.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.errors import NotFound, PermissionDenied, WorkspaceError
from evaltray.core.records import Role
from evaltray.core.settings import Settings
from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore, list_traces, show_trace
from evaltray.core.workers import process_pool
from evaltray.ingest import _driver, ingest_files
from evaltray.scrub import (
    Scrubber,
    ScrubConfig,
    ScrubError,
    VaultError,
    _store,
    create_vault_key,
    pseudonym,
    reveal,
    scrub_store,
    scrub_table,
    vault_file,
)
from evaltray.scrub._store import ID_KEY_FILE
from evaltray.tray import candidates as pool
from tests.helpers import register

DATA = Path(__file__).parents[1] / "data" / "scrub_workspace"
CHATS = DATA / "chats.jsonl"
EMAIL = "isabella.lopez3271@example.com"
#: What scrubbing at ingest replaced in chats.jsonl, worked out message by message:
#: lopez-40: the e-mail in a user turn, a tool argument, a tool result, metadata.customer_email and
#: ``user``; first_name, last_name and "Isabella Lopez" in metadata.note; address1, address2 and zip in
#: two tool results; the user id isabella_lopez_6490, made of her names, in a tool result, a tool argument
#: and two more tool results. noah-7: name and e-mail twice each, the phone once.
COUNTS = {"EMAIL": 7, "PERSON": 5, "ADDRESS": 6, "PHONE": 1, "USERNAME": 4}
PII = (
    "isabella.lopez",
    "Isabella",
    "Lopez",
    "Sunset Drive",
    "Suite 176",
    "85034",
    "Noah",
    "555-0143",
    "noah.ito",
    "isabella_lopez",
)


def rows(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Stored rows by trace id, without the columns that say when they were written."""
    table = TraceStore(ws.traces_dir).query(order_by="trace_id")
    return {r["trace_id"]: r for r in table.drop_columns(["ingested_at", "ingest_date"]).to_pylist()}


def messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    return orjson.loads(row["messages"])


def id_key(ws: Workspace) -> bytes:
    return bytes.fromhex((ws.state_dir / ID_KEY_FILE).read_text())


def invoke(ws: Workspace, *args: str, user: str = "alice") -> Any:
    return CliRunner().invoke(cli, ["-w", str(ws.root), "-u", user, *args], catch_exceptions=False)


def twin(tmp_path: Path, ws: Workspace, name: str) -> Workspace:
    """A second workspace with ``ws``'s pseudonym key, so both give an id the same pseudonym."""
    other = Workspace.init(tmp_path / name, name=name, user="alice")
    (other.state_dir / ID_KEY_FILE).write_bytes((ws.state_dir / ID_KEY_FILE).read_bytes())
    return other


def use_key(ws: Workspace, key: Path) -> None:
    """Point ``[ingest] vault_key`` at ``key`` (reopen the workspace to read it)."""
    settings = ws.root / "evaltray.toml"
    settings.write_text(
        settings.read_text().replace('# vault_key = "~/.config/evaltray/vault.key"', f'vault_key = "{key}"')
    )


def assert_scrubbed(got: dict[str, dict[str, Any]], id_key: bytes) -> None:
    lopez, noah, clean = got["lopez-40"], got["noah-7"], got["clean-1"]
    assert {r["scrubbed"] for r in got.values()} == {True}
    msgs = messages(lopez)
    assert msgs[3]["content"] == "Sure, it’s <EMAIL_1>."
    assert msgs[4]["tool_calls"] == [
        {"id": "call_2xzbrH6DkKxcu4GnAB2Rdipb", "name": "find_user_id_by_email", "arguments": {"email": "<EMAIL_1>"}}
    ]
    assert msgs[5]["content"] == "<USERNAME_1>"  # the user id made of her names, the same placeholder throughout
    assert msgs[6]["tool_calls"][0]["arguments"] == {"user_id": "<USERNAME_1>"}
    details = orjson.loads(msgs[7]["content"])
    assert details["user_id"] == orjson.loads(msgs[9]["content"])["user_id"] == "<USERNAME_1>"
    assert details["name"] == {"first_name": "<PERSON_1_FIRST>", "last_name": "<PERSON_1_LAST>"}
    assert details["address"] == {
        "address1": "<ADDRESS_1>",
        "address2": "<ADDRESS_2>",
        "city": "Phoenix",
        "country": "USA",
        "state": "AZ",
        "zip": "<ADDRESS_3>",
    }
    assert details["email"] == "<EMAIL_1>"
    # the same address in a later tool result gets the same placeholders
    assert orjson.loads(msgs[9]["content"])["address"] == details["address"]
    assert lopez["input_text"] == "Sure, it’s <EMAIL_1>."
    assert lopez["output_text"] == msgs[10]["content"]
    assert orjson.loads(lopez["metadata"]) == {
        "task_id": "40",
        "customer_email": "<EMAIL_1>",
        "session_id": "sess-40",
        "note": "<PERSON_1> asked for her gift card balance",  # the person of first_name/last_name
    }
    assert lopez["user_id"] == pseudonym(id_key, "EMAIL", EMAIL)
    assert re.fullmatch(r"email-[0-9a-f]{16}", lopez["user_id"])
    assert lopez["session_id"] == "sess-40"
    assert [m["content"] for m in messages(noah)] == [
        "Hi, I'm <PERSON_1>. Call me at <PHONE_1> or write to <EMAIL_1>.",
        "Thanks <PERSON_1_FIRST>! I have sent the details to <EMAIL_1>.",  # Noah of <PERSON_1> Noah Ito
    ]
    assert (noah["input_text"], noah["output_text"]) == (messages(noah)[0]["content"], messages(noah)[1]["content"])
    assert (noah["user_id"], noah["session_id"]) == ("u-1001", "sess-7")  # ids without PII stay
    assert clean["input_text"] == "Compare World War I and World War II in terms of duration and casualty count."
    text = orjson.dumps(list(got.values()), default=str).decode()
    assert [p for p in PII if p in text] == []


# ------------------------------------------------------------------------------------- at ingest


def test_ingest_scrubs_messages_tool_arguments_metadata_and_ids(ws: Workspace) -> None:
    assert ws.settings.scrub is True  # the default
    report = ingest_files(ws, [CHATS])
    assert (report.ingested, report.quarantined, report.files[0].scrubbed) == (3, [], COUNTS)
    got = rows(ws)
    assert_scrubbed(got, id_key(ws))
    # system_hash and output_chars describe the trace as recorded
    assert got["noah-7"]["output_chars"] == len("Thanks Noah! I have sent the details to noah.ito@example.org.")


def test_scrub_off_then_evaltray_scrub_gives_the_rows_of_scrub_at_ingest(ws: Workspace, tmp_path: Path) -> None:
    ingest_files(ws, [CHATS])
    later = twin(tmp_path, ws, "later")
    try:
        report = ingest_files(later, [CHATS], scrub=False)
        assert (report.ingested, report.files[0].scrubbed) == (3, {})
        before = rows(later)
        assert {r["scrubbed"] for r in before.values()} == {False}
        assert messages(before["noah-7"])[0]["content"] == (
            "Hi, I'm Noah Ito. Call me at (212) 555-0143 or write to noah.ito@example.org."
        )
        # showing them says so on stderr, by id only
        shown = invoke(later, "traces", "show", "noah-7", "--json")
        assert orjson.loads(shown.stdout)["messages"][0]["content"].startswith("Hi, I'm Noah Ito.")
        assert shown.stderr == "not scrubbed yet (text as recorded, may hold PII): noah-7; run `evaltray scrub`\n"
        listed = invoke(later, "traces", "list", "--json")
        assert listed.stderr == (
            "not scrubbed yet (text as recorded, may hold PII): clean-1, lopez-40, noah-7; run `evaltray scrub`\n"
        )

        result = invoke(later, "scrub", "--json")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {
            "dry_run": False,
            "parts": 1,
            "parts_rewritten": 1,
            "traces": 3,
            "replaced": dict(sorted(COUNTS.items())),
            "quarantined": [],
            "truncated": [],
        }
        assert rows(later) == rows(ws)
        assert invoke(later, "traces", "show", "noah-7").stderr == ""

        (part,) = TraceStore(later.traces_dir).parts()
        data = part.read_bytes()
        again = invoke(later, "scrub")
        assert again.stdout == "scrubbed 0 trace(s) in 0 of 1 part(s)\n"
        assert part.read_bytes() == data  # idempotent: the part is not even rewritten
        # and scrubbing scrubbed rows once more, flag ignored, changes no value
        table = TraceStore(later.traces_dir).read_part(part)
        unflagged = table.set_column(
            table.schema.get_field_index("scrubbed"), "scrubbed", pa.array([False] * table.num_rows)
        )
        rescrubbed, info = scrub_table(unflagged, ScrubConfig.for_workspace(later))
        assert rescrubbed.equals(table) and (info.counts, info.quarantined) == ({}, {})
    finally:
        later.close()


def test_dry_run_reports_and_writes_nothing(ws: Workspace) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    (part,) = TraceStore(ws.traces_dir).parts()
    data = part.read_bytes()
    result = invoke(ws, "scrub", "--dry-run")
    assert result.stdout.splitlines()[0] == "would scrub 3 trace(s) in 1 of 1 part(s)"
    assert part.read_bytes() == data


def test_a_crash_mid_scrub_leaves_whole_parts_and_a_rerun_finishes(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two parts: the chats, then the same chats under other ids
    other = tmp_path / "other.jsonl"
    other.write_bytes(
        b"".join(line.replace(b'"id": "', b'"id": "x-') + b"\n" for line in CHATS.read_bytes().splitlines())
    )
    ingest_files(ws, [CHATS, other], scrub=False)
    store = TraceStore(ws.traces_dir)
    assert len(store.parts()) == 2
    replace = TraceStore.replace_part
    calls = []

    def crash_on_second(self: TraceStore, part: Path, table: Any) -> None:
        calls.append(part)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed between two parts
        replace(self, part, table)

    monkeypatch.setattr(TraceStore, "replace_part", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        scrub_store(ws, "alice", workers=1)
    flags = sorted(pq.read_table(p, columns=["scrubbed"]).column("scrubbed").to_pylist() for p in store.parts())
    assert flags == [[False] * 3, [True] * 3]  # one part old, one new, none half-written
    monkeypatch.setattr(TraceStore, "replace_part", replace)
    report = scrub_store(ws, "alice", workers=1)
    assert (report.rows, report.rewritten) == (3, 1)
    got = rows(ws)
    assert {r["scrubbed"] for r in got.values()} == {True}
    assert messages(got["x-noah-7"]) == messages(got["noah-7"])


def test_old_parts_without_the_column_read_as_unscrubbed_and_get_scrubbed(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    (part,) = TraceStore(ws.traces_dir).parts()
    pq.write_table(pq.read_table(part).drop_columns(["scrubbed"]), part)  # a part written before the column
    assert {r["scrubbed"] for r in rows(ws).values()} == {None}

    with caplog.at_level(logging.WARNING, logger="evaltray.tray.candidates"):
        assert pool.add_from_traces(ws, "alice") == []
    assert caplog.messages == [
        "skipped 3 trace(s) not scrubbed yet (ingested with scrubbing off, or before it "
        "existed); run `evaltray scrub`, then add them again"
    ]

    scrub_store(ws, "alice", workers=1)
    assert pq.read_table(part).column("scrubbed").to_pylist() == [True] * 3
    added = pool.add_from_traces(ws, "alice")
    assert len(added) == 3
    noah = next(c for c in map(lambda cid: pool.get(ws, cid), added) if c.trace_id == "noah-7")
    assert noah.input["messages"][0]["content"] == "Hi, I'm <PERSON_1>. Call me at <PHONE_1> or write to <EMAIL_1>."


def test_candidates_take_unscrubbed_rows_where_the_workspace_does_not_scrub(ws: Workspace) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    ws.settings.scrub = False
    assert len(pool.add_from_traces(ws, "alice")) == 3


# ------------------------------------------------------------------------------------- quarantine


def _fail_for(trace_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Scrubber._scrub

    def scrub(self: Scrubber, messages: Any, fields: Any, tid: str, counts: Any) -> Any:
        if tid == trace_id:  # the message quotes the text: it must not reach the user
            raise ValueError(f"cannot handle {messages!r}")
        return real(self, messages, fields, tid, counts)

    monkeypatch.setattr(Scrubber, "_scrub", scrub)


def test_a_trace_that_cannot_be_scrubbed_is_quarantined_without_its_text(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_for("noah-7", monkeypatch)
    result = invoke(ws, "ingest", str(CHATS))
    assert result.exit_code == 0
    assert result.stderr == "quarantined trace noah-7: could not be scrubbed; stored without its text\n"
    assert not any(p in result.output for p in PII)
    noah = rows(ws)["noah-7"]
    assert {
        c: noah[c]
        for c in (
            "messages",
            "input_text",
            "output_text",
            "metadata",
            "user_id",
            "session_id",
            "payload_kept",
            "keep_reason",
            "scrubbed",
        )
    } == {
        "messages": None,
        "input_text": None,
        "output_text": None,
        "metadata": None,
        "user_id": None,
        "session_id": None,
        "payload_kept": False,
        "keep_reason": "quarantined",
        "scrubbed": True,
    }
    assert noah["n_messages"] == 2  # what is not text stays
    assert rows(ws)["lopez-40"]["payload_kept"] is True


def test_evaltray_scrub_quarantines_too(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    _fail_for("lopez-40", monkeypatch)
    result = invoke(ws, "scrub", "--json")
    assert orjson.loads(result.stdout)["quarantined"] == ["lopez-40"]
    lopez = rows(ws)["lopez-40"]
    assert (lopez["messages"], lopez["keep_reason"]) == (None, "quarantined")


# ------------------------------------------------------------------------------------- worker processes


def test_parallel_ingest_scrubs_in_the_workers_quarantines_and_fills_the_vault(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "keys" / "owner.key"
    assert invoke(ws, "vault", "keygen", str(key)).exit_code == 0
    use_key(ws, key)
    ws = Workspace.open(ws.root)
    # one line per chunk, parsed by two worker processes; two identical lines without an id share a
    # content-derived id that the driver renumbers after the worker sealed its originals
    monkeypatch.setattr(_driver, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_driver, "PARALLEL_CHUNK_BYTES", 1)
    monkeypatch.setattr(_driver, "CHUNK_BYTES", 1)
    _fail_for("clean-1", monkeypatch)
    anon = orjson.dumps({"messages": [{"role": "user", "content": "Reach me at ada@example.net"}]})
    path = tmp_path / "chats.jsonl"
    path.write_bytes(CHATS.read_bytes() + anon + b"\n" + anon + b"\n")
    report = ingest_files(ws, [path], workers=2)
    assert (report.ingested, report.quarantined) == (5, ["clean-1"])
    assert report.files[0].scrubbed == {**COUNTS, "EMAIL": COUNTS["EMAIL"] + 2}
    got = rows(ws)
    twins = sorted(t for t in got if t.startswith("oai-"))
    assert len(twins) == 2 and twins[1] == twins[0] + "-1"
    assert {got[t]["input_text"] for t in twins} == {"Reach me at <EMAIL_1>"}
    assert got["clean-1"]["keep_reason"] == "quarantined"
    # the rows the workers wrote are those of an ingest in this process
    here = twin(tmp_path, ws, "here")
    ingest_files(here, [path], workers=1)
    assert rows(here) == got
    here.close()

    assert invoke(ws, "vault", "reveal", twins[1], "<EMAIL_1>", "--key", str(key)).stdout == "ada@example.net\n"
    assert invoke(ws, "vault", "reveal", "noah-7", "<PHONE_1>").stdout == "(212) 555-0143\n"
    sealed = vault_file(ws).read_bytes()
    assert [p for p in ("noah.ito", "555-0143", "ada@", EMAIL) if p.encode() in sealed] == []
    ws.close()


def test_evaltray_scrub_with_worker_processes(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_files(ws, [CHATS])
    key = tmp_path / "keys" / "owner.key"
    later = twin(tmp_path, ws, "later")
    invoke(later, "vault", "keygen", str(key))
    use_key(later, key)
    later.close()
    later = Workspace.open(later.root)
    ingest_files(later, [CHATS], scrub=False)
    monkeypatch.setattr(_store, "SLICE_ROWS", 1)  # a piece per row: two workers share the part
    _fail_for("clean-1", monkeypatch)
    report = scrub_store(later, "alice", workers=2)
    assert (report.rows, report.rewritten, report.quarantined, dict(report.counts)) == (3, 1, ["clean-1"], COUNTS)
    got, want = rows(later), rows(ws)
    assert got["clean-1"]["keep_reason"] == "quarantined"
    assert {t: got[t] for t in ("lopez-40", "noah-7")} == {t: want[t] for t in ("lopez-40", "noah-7")}
    assert invoke(later, "vault", "reveal", "noah-7", "<EMAIL_1>").stdout == "noah.ito@example.org\n"
    later.close()


def test_workers_scrub_with_the_scrubber_their_pool_was_given(ws: Workspace) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    store = TraceStore(ws.traces_dir)
    (part,) = store.parts()
    table = store.read_part(part)
    config = ScrubConfig(("EMAIL_ADDRESS",), b"k" * 32)
    given = Scrubber(entities=["PHONE"])  # not what the config builds: the rows show which one a worker used
    pieces = [table.slice(i, 1) for i in range(table.num_rows)]
    with process_pool(2, config.install, (given,)) as pool:
        scrubbed = pa.concat_tables(t for t, _ in pool.map(scrub_table, pieces, [config] * len(pieces)))
    noah = next(r for r in scrubbed.to_pylist() if r["trace_id"] == "noah-7")
    assert orjson.loads(noah["messages"])[0]["content"] == (
        "Hi, I'm Noah Ito. Call me at <PHONE_1> or write to noah.ito@example.org."
    )


def _die(table: pa.Table, config: ScrubConfig) -> Any:
    os._exit(1)  # a worker killed mid-piece (the OOM killer)


def test_a_worker_that_dies_is_an_error_and_leaves_the_part_whole(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    (part,) = TraceStore(ws.traces_dir).parts()
    data = part.read_bytes()
    monkeypatch.setattr(_store, "SLICE_ROWS", 1)
    monkeypatch.setattr(_store, "scrub_table", _die)
    with pytest.raises(ScrubError) as err:
        scrub_store(ws, "alice", workers=2)
    assert str(err.value) == (
        f"{part.name}: a scrub worker process died (out of memory?); every part is whole, "
        "old or new; run again, or with --workers 1 to scrub in one process"
    )
    assert part.read_bytes() == data


# ------------------------------------------------------------------------------------- vault


def test_vault_keygen_and_reveal_round_trip(ws: Workspace, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "owner.key"
    made = invoke(ws, "vault", "keygen", str(key), "--json")
    assert orjson.loads(made.stdout) == {"path": str(key), "dry_run": False}
    assert key.stat().st_mode & 0o777 == 0o600
    assert invoke(ws, "vault", "keygen", str(key)).stderr == (
        f"Error: {key}: a key file already exists; refusing to overwrite it\n"
    )
    inside = invoke(ws, "vault", "keygen", str(ws.root / "owner.key"))
    assert inside.stderr == (
        f"Error: {ws.root / 'owner.key'} is inside the workspace; keep the vault key where only you can read it\n"
    )
    use_key(ws, key)
    ws = Workspace.open(ws.root)
    ingest_files(ws, [CHATS])
    lopez = rows(ws)["lopez-40"]
    assert invoke(ws, "vault", "reveal", "lopez-40", "<EMAIL_1>").stdout == EMAIL + "\n"
    assert invoke(ws, "vault", "reveal", "lopez-40", "<PERSON_1>").stdout == "Isabella Lopez\n"
    assert invoke(ws, "vault", "reveal", "lopez-40", "<PERSON_1_LAST>").stdout == "Lopez\n"
    assert orjson.loads(invoke(ws, "vault", "reveal", "lopez-40", lopez["user_id"], "--json").stdout) == {
        "trace_id": "lopez-40",
        "placeholder": lopez["user_id"],
        "value": EMAIL,
    }
    assert invoke(ws, "vault", "reveal", "lopez-40", "<EMAIL_9>").stderr == (
        "Error: no vault entry for <EMAIL_9> in trace lopez-40\n"
    )
    ws.add_user("bob", Role.LABELER, actor="alice")
    assert invoke(ws, "vault", "reveal", "lopez-40", "<EMAIL_1>", user="bob").stderr == (
        "Error: user 'bob' is a labeler; revealing a scrubbed value needs one of: admin\n"
    )
    sealed = vault_file(ws).read_bytes()
    assert sealed.count(b"\n") == 13 and not any(p.encode() in sealed for p in PII)
    other = tmp_path / "keys" / "other.key"
    invoke(ws, "vault", "keygen", str(other))
    assert invoke(ws, "vault", "reveal", "lopez-40", "<EMAIL_1>", "--key", str(other)).stderr == (
        "Error: vault entry <EMAIL_1> in trace lopez-40 does not open with this key\n"
    )
    with ws.tx() as conn:
        audited = conn.exec_driver_sql("SELECT actor, object_id FROM audit WHERE action = 'vault.reveal'").fetchall()
    assert audited == [("alice", "lopez-40")] * 4  # every value shown, by whom
    ws.close()


def test_a_vault_key_inside_the_workspace_is_refused(ws: Workspace) -> None:
    settings = ws.root / "evaltray.toml"
    settings.write_text(
        settings.read_text().replace('# vault_key = "~/.config/evaltray/vault.key"', 'vault_key = "keys/vault.key"')
    )
    ws = Workspace.open(ws.root)
    with pytest.raises(VaultError) as err:
        ingest_files(ws, [CHATS])
    assert str(err.value) == (
        "ingest.vault_key 'keys/vault.key' is inside the workspace; keep the key where only "
        "its owner can read it (the workspace is shared)"
    )
    ws.close()


def test_a_vault_key_under_an_unknown_home_is_an_error(ws: Workspace) -> None:
    use_key(ws, Path("~no-such-user-evaltray/vault.key"))
    ws = Workspace.open(ws.root)
    with pytest.raises(VaultError) as err:
        ScrubConfig.for_workspace(ws)
    assert str(err.value) == "ingest.vault_key '~no-such-user-evaltray/vault.key': no such home directory"
    ws.close()


def test_a_damaged_pseudonym_key_is_an_error_not_a_new_key(ws: Workspace) -> None:
    path = ws.state_dir / ID_KEY_FILE
    path.write_text("not a key\n")
    with pytest.raises(ScrubError) as err:
        ScrubConfig.for_workspace(ws)
    assert str(err.value) == (
        f"{path}: not a pseudonym key (hex); restore it from a backup. A new key would give "
        "every id a new pseudonym, so evaltray does not make one over it"
    )
    assert path.read_text() == "not a key\n"


# ------------------------------------------------------------------------------------- settings, bad input


def test_settings_scrub_keys(ws: Workspace, tmp_path: Path) -> None:
    text = (ws.root / "evaltray.toml").read_text()
    assert "\nscrub = true " in text
    settings = ws.root / "evaltray.toml"
    settings.write_text(text.replace('# scrub_entities = ["EMAIL", "PHONE", "PERSON"]', 'scrub_entities = ["EMAIL"]'))
    ws = Workspace.open(ws.root)
    assert ws.settings.scrub_entities == ["EMAIL"]
    ingest_files(ws, [CHATS])
    assert [m["content"] for m in messages(rows(ws)["noah-7"])] == [
        "Hi, I'm Noah Ito. Call me at (212) 555-0143 or write to <EMAIL_1>.",
        "Thanks Noah! I have sent the details to <EMAIL_1>.",
    ]
    ws.close()
    settings.write_text(
        text.replace('# scrub_entities = ["EMAIL", "PHONE", "PERSON"]', 'scrub_entities = ["NHS_NUMBER"]')
    )
    ws = Workspace.open(ws.root)
    with pytest.raises(ScrubError) as err:
        ingest_files(ws, [CHATS])
    assert str(err.value) == (
        "ingest.scrub_entities: unknown entity 'NHS_NUMBER' (one of: EMAIL, PHONE, CREDIT_CARD, IBAN, SSN, ITIN, "
        "PASSPORT, DRIVER_LICENSE, IP_ADDRESS, URL, API_KEY, ADDRESS, PERSON, USERNAME)"
    )
    ws.close()
    settings.write_text(text.replace("\nscrub = true ", '\nscrub = "yes" '))
    with pytest.raises(WorkspaceError, match=r"ingest.scrub must be true or false, got 'yes'"):
        Settings.load(ws.root)


def test_bad_input_goes_through_scrubbed(ws: Workspace, tmp_path: Path) -> None:
    big = (
        "the quick brown fox jumps over the lazy dog " * 12_000 + "mail jane.doe@example.com " + "lorem ipsum " * 38_000
    )
    lines = [
        {"id": "empty", "messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": None}]},
        {"id": "junk", "messages": [{"role": "user", "content": "\x00\x01\ufffd binary \x7f junk"}]},
        {
            "id": "mixed",
            "messages": [{"role": "user", "content": "Привет, меня зовут Анна 🙂 東京 anna@example.ru"}],
            "metadata": {"emoji": "👍🏽", "nested": {"deep": [{"mail": "anna@example.ru"}]}},
        },
        {"id": "big", "messages": [{"role": "user", "content": big}]},
    ]
    path = tmp_path / "bad.jsonl"
    binary = b'{"id": "binary", "messages": [{"role": "user", "content": "\xff\xfe\x00 raw bytes"}]}'
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + binary + b"\n")
    report = ingest_files(ws, [path])
    assert (report.ingested, report.quarantined) == (4, [])
    assert [str(i) for i in report.issues] == [
        f"{path}:5: not valid JSON (str is not valid UTF-8: surrogates not allowed)"
    ]
    got = rows(ws)
    assert messages(got["empty"])[0]["content"] == ""
    assert messages(got["junk"])[0]["content"] == "\x00\x01\ufffd binary \x7f junk"
    assert got["mixed"]["input_text"] == "Привет, меня зовут Анна 🙂 東京 <EMAIL_1>"
    assert orjson.loads(got["mixed"]["metadata"]) == {"emoji": "👍🏽", "nested": {"deep": [{"mail": "<EMAIL_1>"}]}}
    assert got["big"]["input_text"] == big.replace("jane.doe@example.com", "<EMAIL_1>")


# ------------------------------------------------------------------------------------- the vault's API


def test_vault_key_is_refused_inside_the_workspace_or_over_a_key(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="is inside the workspace"):
        create_vault_key(ws.root / "owner.key", ws.root)
    key = tmp_path / "keys" / "owner.key"
    assert create_vault_key(key, ws.root, dry_run=True) == key.resolve() and not key.exists()
    assert create_vault_key(key, ws.root) == key.resolve() and key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(VaultError, match="a key file already exists"):
        create_vault_key(key, ws.root)


def test_reveal_is_for_admins_and_audited(ws: Workspace, tmp_path: Path) -> None:
    key = create_vault_key(tmp_path / "keys" / "owner.key", ws.root)
    use_key(ws, key)
    ws = Workspace.open(ws.root)
    ingest_files(ws, [CHATS])
    register(ws, "bob", Role.ADJUDICATOR)  # an adjudicator registers with a key
    with pytest.raises(PermissionDenied):
        reveal(ws, "bob", "noah-7", "<PHONE_1>")
    assert reveal(ws, "alice", "noah-7", "<PHONE_1>") == "(212) 555-0143"
    with ws.tx() as conn:
        audited = conn.execute(sa.text("SELECT actor, object_id FROM audit WHERE action = 'vault.reveal'")).all()
    assert [tuple(r) for r in audited] == [("alice", "noah-7")]
    ws.close()


def test_listing_names_the_traces_not_scrubbed_yet(ws: Workspace) -> None:
    ingest_files(ws, [CHATS], scrub=False)
    listing = list_traces(ws.trace_store(), "model = 'gpt-4.1'", limit=2)
    assert [r["trace_id"] for r in listing.rows] == ["clean-1", "lopez-40"]
    assert listing.unscrubbed == ["clean-1", "lopez-40"] and "scrubbed" not in listing.rows[0]
    assert list_traces(ws.trace_store(), limit=2, scrubs=False).unscrubbed == []
    shown = show_trace(ws.trace_store(), "noah-7")
    assert shown.unscrubbed == ["noah-7"]
    assert shown.rows[0]["messages"][0] == {
        "role": "user",
        "content": "Hi, I'm Noah Ito. Call me at (212) 555-0143 or write to noah.ito@example.org.",
    }
    scrub_store(ws, "alice")
    assert show_trace(ws.trace_store(), "noah-7").unscrubbed == list_traces(ws.trace_store()).unscrubbed == []
    with pytest.raises(NotFound, match="no trace 'nope'"):
        show_trace(ws.trace_store(), "nope")
