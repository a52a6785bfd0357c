"""Running ``evaltray`` in-process, as the CLI tests do."""

from __future__ import annotations

from click.testing import CliRunner, Result

from evaltray.cli import cli


def run(*args: str, input: str | None = None, ok: bool = True, env: dict | None = None) -> Result:
    """Invoke the CLI; with ``ok`` the command must exit 0. A traceback always fails the test."""
    result = CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


#: ``cases add`` of one complete, promotable case (an adjudicator's own label is signed at once).
ADD_PAYPAL_CASE = (
    "cases", "add", "--source", "sme", "--input", "Can I pay with PayPal?", "--expected", "Yes.",
    "--feature", "payments", "--difficulty", "easy", "--case-type", "typical",
)  # fmt: skip


def release_of_reviewed(n: int, expected: str, version: str = "1.0.0") -> list[str]:
    """Review the first ``n`` candidates of the shop's traces with ``expected`` (passed, slice refunds),
    promote them and create release ``version``; the candidate ids."""
    import json

    added = json.loads(run("candidates", "add", "--limit", str(n), "--json").stdout)["added"]
    run("review", *added, "--expected", expected, "--verdict", "pass", *REVIEW_FIELDS)
    run("promote")
    run("release", "create", version)
    return added


#: The slice, difficulty and case type a scripted review gives, so the gate has all it needs.
REVIEW_FIELDS = ("--slice", "refunds", "--difficulty", "easy", "--case-type", "typical")
