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


# --------------------------------------------------------------------------- every printer of data

#: Short enough that no table folds it: markup that would close a tag never opened, and a colour escape.
H = "[/x][b]\x1b[31m"
H_SHOWN = "[/x][b]␛[31m"


@pytest.fixture
def everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A workspace with ``H`` in trace ids, a model, a feature, trace text, a slice, expected behaviours,
    a critique, a tag, release notes and a plan's feature; releases 1.0.0 and 1.1.0 (one case added)."""
    run("--user", "alice", "init", "ws")
    monkeypatch.chdir(tmp_path / "ws")
    chats = tmp_path / "chats.jsonl"
    rows = [
        {
            "id": f"t{i}{H}",
            "model": H,
            "metadata": {"feature": H},
            "messages": [{"role": "user", "content": f"where is my order {H}"}, {"role": "assistant", "content": H}],
        }
        for i in (1, 2)
    ]
    chats.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    run("ingest", str(chats))
    (cid,) = json.loads(run("candidates", "add", "--trace", f"t1{H}", "--json").stdout)["added"]
    review = ("review", cid, "--expected", H, "--critique", H, "--tag", H, "--verdict", "fail", "--slice", H)
    run(*review, "--difficulty", "easy", "--case-type", "typical")
    (case,) = [p["case_id"] for p in json.loads(run("promote", "--json").stdout)["promoted"]]
    run("release", "create", "1.0.0", "--notes", H)
    run("cases", "add", "--source", "sme", "--input", H, "--expected", H, "--feature", H, *EASY)
    run("promote")
    run("release", "create", "1.1.0", "--notes", H)
    run("plan", "init", "--feature", H)
    return {"cid": cid, "case": case}


EASY = ("--difficulty", "easy", "--case-type", "typical")


def test_every_printer_shows_trace_and_case_data_as_text(everywhere, tmp_path):
    """``traces stats`` died with ``MarkupError`` on a model named ``[/x]``: each command that prints trace or
    case data runs on data holding markup and an escape, exits 0 and shows the text as written, the escape
    as a symbol (``cases show`` prints JSON: the escape as ``\\u001b``)."""
    cid, case = everywhere["cid"], everywhere["case"]
    labels = tmp_path / "labels.csv"
    labels.write_text(f"candidate_id,expected\n{cid}{H},x\n{cid},{H}\n", encoding="utf-8")
    expected = {
        ("traces", "stats"): f"\n {H_SHOWN} │ 2 ",
        ("traces", "list"): f" t1{H_SHOWN} │ openai        │ {H_SHOWN} │ {H_SHOWN} │",
        ("traces", "show", f"t1{H}"): f"model: {H_SHOWN}\nfeature: {H_SHOWN}\n",
        ("candidates", "list"): f"│ t1{H_SHOWN} │ promoted │",
        ("cases", "list"): f" {case} │ active │ {cid} │",
        ("cases", "show", case): '"reference": "[/x][b]\\u001b[31m"',
        ("tray", "stats"): f"\n {H_SHOWN} │ 2 ",
        ("release", "create", "1.2.0", "--dry-run"): f"\n {H_SHOWN} │ production 1, sme 1 ",
        ("release", "diff", "1.0.0", "1.1.0"): f"\n {H_SHOWN} │ 1     │ 0       │ 0 ",
        ("plan", "show"): f"│ feature={H_SHOWN} ",
        ("coverage",): f"\n {H_SHOWN} │ ambiguous-query  │ admin ",
        ("sample", "--size", "1", "--dry-run"): f" cell:{H_SHOWN}/ambiguous-query/admin │ 1 ",
        ("dedup",): f" t1{H_SHOWN} │ t2{H_SHOWN} │ exact │ 1.000 │",
        ("cluster", "--backend", "tfidf", "--k", "2"): f" where is my order {H_SHOWN} ",
        ("cluster", "rename", "0", H): f" 0  │ {H_SHOWN} ✎ │ 2 ",
        ("labels", "import", str(labels)): "imported 1 label(s), skipped 1\n",
    }
    for args, text in expected.items():
        r = run(*args)
        _no_controls(r.stdout + r.stderr)
        assert text in r.stdout, (args, r.stdout)
