"""Text from data prints as text: rich markup shows as itself, terminal controls show as symbols; ``--json``
keeps the exact strings."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from evaltray.cli._common import shown, visible

from .runner import run

#: What a hostile trace holds, and how a terminal must show it.
HOSTILE = "[bold]x[/] [/x] \x1b[31mred \x1b]8;;http://evil\x07link \u202eevil"
SHOWN = "[bold]x[/] [/x] ␛[31mred ␛]8;;http://evil␇link <U+202E>evil"
HOSTILE_ID = "t[/x]\x1b[2J"
SHOWN_ID = "t[/x]␛[2J"


def test_visible_and_shown_by_hand():
    assert visible("a\x1b[31mb\x9bc\x7fd\re\u2066f\tg\nh") == "a␛[31mb<U+009B>c\u2421d␍e<U+2066>f\tg\nh"
    assert visible(None) == ""
    assert shown("[bold]x[/]") == "\\[bold]x\\[/]"


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run("--user", "alice", "init", "ws")
    monkeypatch.chdir(tmp_path / "ws")
    chats = tmp_path / "[bold]chats[red]\x1b[0m.jsonl"
    row = {
        "id": HOSTILE_ID,
        "metadata": {"feature": "[red]refunds"},
        "messages": [{"role": "user", "content": HOSTILE}, {"role": "assistant", "content": "ok :smile:"}],
    }
    chats.write_bytes(orjson.dumps(row) + b"\n" + b"{not json\n")
    return Path("..") / chats.name  # relative: the report's table stays one row wide


def _no_controls(text: str) -> None:
    assert not [c for c in text if c in "\x1b\x07\u202e"], repr(text)


def test_ingest_report_shows_a_file_name_with_markup(hostile):
    r = run("ingest", str(hostile))
    assert r.stderr.startswith(f"skipped {visible(hostile)}:2: not valid JSON")
    assert f" {visible(hostile)} │ openai │ 1 " in r.stdout
    _no_controls(r.stdout + r.stderr)
    r = run("ingest", str(hostile), "--json")
    assert json.loads(r.stdout)["files"][0]["path"] == str(hostile)


def test_traces_show_and_list_print_hostile_text_as_text(hostile):
    run("ingest", str(hostile))
    r = run("traces", "show", HOSTILE_ID)
    for line in (f"trace_id: {SHOWN_ID}", "feature: [red]refunds", f"user: {SHOWN}", "assistant: ok :smile:"):
        assert f"{line}\n" in r.stdout, line
    _no_controls(r.stdout)
    r = run("traces", "list")
    assert f" {SHOWN_ID} │ openai " in r.stdout and "│ [red]refunds │" in r.stdout
    assert "│ [bold]x[/] [/x] ␛[31mred" in r.stdout
    _no_controls(r.stdout)
    data = json.loads(run("traces", "show", HOSTILE_ID, "--json").stdout)
    assert (data["trace_id"], data["messages"][0]["content"]) == (HOSTILE_ID, HOSTILE)


def test_candidates_list_and_errors_print_hostile_ids_as_text(hostile):
    run("ingest", str(hostile))
    run("candidates", "add", "--trace", HOSTILE_ID)
    r = run("candidates", "list")
    assert f"│ {SHOWN_ID} │ pending │" in r.stdout
    _no_controls(r.stdout)
    assert json.loads(run("candidates", "list", "--json").stdout)[0]["trace_id"] == HOSTILE_ID
    r = run("traces", "show", "nope\x1b[2J[/x]", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: no trace 'nope\\x1b[2J[/x]'\n")
    r = run("init", "/proc/\x1b[2J/ws", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: /proc/␛[2J: No such file or directory\n")
