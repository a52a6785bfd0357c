"""What every command shares: consoles made per invocation, counts that cannot be negative."""

from __future__ import annotations

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
