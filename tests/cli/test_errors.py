"""Every error is one line, ``Error: …`` on stderr, exit status 1: usage errors, refusals of the system."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evaltray.cli import cli, main

from .runner import run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--frob"], "No such option '--frob'. (try `evaltray ingest --help`)"),
        (["ingest"], "Missing argument 'FILES...'. (try `evaltray ingest --help`)"),
        (["traces", "show"], "Missing argument 'TRACE_ID'. (try `evaltray traces show --help`)"),
        (["release", "create", "--bogus", "1.0.0"], "No such option '--bogus'. (try `evaltray release create --help`)"),
        (
            ["export", "1.0.0", "--to", "csv"],
            "Invalid value for '--to': 'csv' is not one of 'promptfoo', 'inspect', 'hf', 'jsonl'. "
            "(try `evaltray export --help`)",
        ),
        (
            ["cluster", "merge", "one", "2"],
            "Invalid value for 'A': 'one' is not a valid integer. (try `evaltray cluster merge --help`)",
        ),
        (["--frob", "traces"], "No such option '--frob'. (try `evaltray --help`)"),
        (["tracez"], "No such command 'tracez'. (Did you mean one of: 'traces', 'tray'?) (try `evaltray --help`)"),
        (["traces", "lst"], "No such command 'lst'. Did you mean 'list'? (try `evaltray traces --help`)"),
    ],
)
def test_usage_errors_are_one_line_with_exit_1(tmp_path, args, message):
    r = run(*args, ok=False)
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"Error: {message}\n")


def test_the_entry_point_says_a_usage_error_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["evaltray", "traces", "list", "--limit", "many"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "Error: Invalid value for '--limit': 'many' is not a valid integer range. (try `evaltray traces list --help`)\n"
    )


def test_a_bare_group_still_shows_its_help():
    r = CliRunner().invoke(cli, ["traces"])
    assert "Commands:" in r.output and "Error" not in r.output


def test_init_where_no_directory_can_be_made_is_one_line(tmp_path):
    r = run("init", "/proc/evaltray-nope/ws", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: /proc/evaltray-nope: No such file or directory\n")


def test_tracebacks_named_in_the_issue_are_one_line(shop):
    for args, message in [
        (
            ["traces", "list", "--limit", "-1"],
            "Invalid value for '--limit': -1 is not in the range x>=0. (try `evaltray traces list --help`)",
        ),
        (["cluster", "--k", "0", "--backend", "tfidf"], "k must be a positive integer or 'auto', got 0"),
        (["cluster", "--k", "abc", "--backend", "tfidf"], "k must be a positive integer or 'auto', got 'abc'"),
        (["cluster", "merge", "0", "0"], "no clusters yet; run `evaltray cluster`"),
    ]:
        r = run(*args, ok=False)
        assert (r.exit_code, r.stderr) == (1, f"Error: {message}\n"), args


def test_a_wrong_setting_is_one_line_naming_key_value_and_what_was_expected(shop):
    toml = shop / "evaltray.toml"
    text = toml.read_text(encoding="utf-8")
    for old, new, message in [
        (
            "holdout = 0.20",
            'holdout = "twenty"',
            "release.holdout must be a number between 0 and 1 (both excluded), got 'twenty'",
        ),
        (
            'sets = ["main", "edge"]',
            'sets = "main"',
            "workspace.sets must be a list of set names (lowercase letters, digits, _ and -, at most 64, starting with a letter or digit; each names files), each once, got 'main'",
        ),
        (
            "stale_after_days = 180",
            "stale_after_days = -1",
            "thresholds.stale_after_days must be a whole number of days, 1 or more, got -1",
        ),
    ]:
        toml.write_text(text.replace(old, new), encoding="utf-8")
        r = run("traces", "stats", ok=False)
        assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"Error: {toml}: {message}\n"), old


def test_a_file_nothing_could_be_read_from_exits_1_after_the_report(ws, tmp_path):
    """A file in no known format, or a --map field no record has: the report is printed, then one error line
    (both exited 0 before)."""
    weird, rows = tmp_path / "weird.bin", tmp_path / "rows.jsonl"
    weird.write_bytes(b"hello\x00world")
    rows.write_text('{"q": "hi"}\n{"q": "bye"}\n')
    r = run("-w", str(ws.root), "ingest", str(rows), "--map", "input=question", ok=False)
    assert r.exit_code == 1 and "rows.jsonl" in r.stdout
    assert (
        r.stderr.splitlines()[-1]
        == f"Error: nothing read from {rows}:1: no input: field 'question' is missing or empty"
    )
    r = run("-w", str(ws.root), "ingest", str(weird), str(rows), "--map", "input=q", ok=False)
    assert r.exit_code == 1 and r.stderr.splitlines()[-1].startswith(
        f"Error: nothing read from {weird}: cannot tell the format"
    )
    assert run("-w", str(ws.root), "ingest", str(rows), "--map", "input=q").exit_code == 0  # the records have q
