"""What every command shares: consoles made per invocation, counts that cannot be negative."""

from __future__ import annotations

import orjson
from rich.console import Console

from evaltray.cli import _common

from .runner import run


def test_no_console_is_made_at_import():
    assert not [name for name, value in vars(_common).items() if isinstance(value, Console)]


def test_each_invocation_writes_to_its_own_streams(shop):
    first = run("traces", "stats")
    second = run("traces", "stats", "--where", "feature = 'refunds'")
    assert first.stdout.startswith("10 traces") and second.stdout.startswith("5 traces")
    assert "10 traces" not in second.stdout


def test_counts_refuse_negative_values(shop):
    for args in (
        ("traces", "list", "--limit", "-1"),
        ("candidates", "list", "--limit", "-1"),
        ("review", "--limit", "-1"),
        ("coverage", "--limit", "-1"),
    ):
        r = run(*args, ok=False)
        path = " ".join(a for a in args if not a.startswith("-") and a != "-1")
        expected = f"Error: Invalid value for '--limit': -1 is not in the range x>=0. (try `evaltray {path} --help`)\n"
        assert (r.exit_code, r.stderr) == (1, expected), args


def test_numbers_print_as_people_read_them():
    cases = [(13990.0, "13,990"), (13990, "13,990"), (1234.5, "1,234"), (999.95, "1,000"), (999.94, "999.9")]
    cases += [(2.5, "2.5"), (12.3456, "12.35"), (0.00123, "0.00123"), (1.2e-5, "0.000012"), (-0.5, "-0.5")]
    cases += [(0.0, "0"), (0, "0"), (None, ""), (float("inf"), "inf")]
    assert [(v, _common.number(v)) for v, _ in cases] == cases


def test_stats_percentiles_and_tables_print_formatted_numbers(tmp_path, monkeypatch):
    run("--user", "alice", "init", "ws")
    monkeypatch.chdir(tmp_path / "ws")
    rows = [{"id": f"t{i}", "q": "hi", "ms": 13990} for i in range(3)]
    (tmp_path / "t.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    run("ingest", str(tmp_path / "t.jsonl"), "--format", "jsonl", "--map", "input=q", "--map", "latency_ms=ms")
    r = run("traces", "stats")
    assert " latency_ms    │ 13,990 │ 13,990 │ 13,990 │ 13,990 " in r.stdout and "e+0" not in r.stdout
    r = run("traces", "list")
    assert "│ 13,990 " in r.stdout
