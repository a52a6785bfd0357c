"""``evaltray health``, ``selftest``, ``refresh`` and ``watch`` on the shop workspace (10 traces, no tray yet)."""

from __future__ import annotations

import json

import pytest

from tests.cli.runner import REVIEW_FIELDS, run

pytestmark = pytest.mark.usefixtures("shop")


def _tray(n: int) -> None:
    added = json.loads(run("candidates", "add", "--limit", str(n), "--json").stdout)["added"]
    run("review", *added, "--expected", "Sure.", "--verdict", "pass", *REVIEW_FIELDS)
    run("promote")


def test_health_json_lists_every_signal_with_its_level():
    _tray(3)
    data = json.loads(run("health", "--json").stdout)
    names = [s["name"] for s in data["signals"]]
    assert names == [
        "last-update",
        "revalidation",
        "retirement",
        "slice-mix",
        "spot-check",
        "human-agreement",
        "source-mix",
        "owners",
        "holdout",
        "duplicates",
        "guide-version",
        "saturation",
        "feedback-agreement",
    ]
    levels = {s["name"]: s["level"] for s in data["signals"]}
    assert levels["saturation"] == levels["feedback-agreement"] == "unknown"  # no run, no rated traces
    assert levels["owners"] == levels["revalidation"] == "green"
    assert levels["holdout"] == "unknown"  # no release yet
    # 3 production rows against the default target (50% production): production +50 pp, the others under
    assert levels["source-mix"] == "amber" and data["level"] == "amber"
    assert data["sent"] == []
    human = run("health").stdout
    assert "health of main: amber" in human and "source-mix: add rows from the missing sources" in human


def test_selftest_exits_1_short_of_five_yeses():
    _tray(2)
    r = run("selftest", ok=False)
    assert r.exit_code == 1
    assert "1. Can every row name its provenance" in r.stdout and "YES: 2 of 2 rows carry all six" in r.stdout
    assert "2 of 5 yeses: the next eval number is partly fiction" in r.stdout


def test_refresh_pulls_into_the_pool_and_an_incident_is_logged():
    data = json.loads(run("refresh", "--n", "4", "--json").stdout)
    assert len(data["pulled"]) == 4 and data["triggers"] == ["never refreshed"]
    data = json.loads(run("refresh", "--incident", "double refunds", "--json").stdout)
    assert len(data["pulled"]) == 6 and data["triggers"] == ["incident: double refunds"]
    r = run("refresh", "--incident", " ", ok=False)
    assert r.stderr == 'Error: an incident needs a description: --incident "what happened"\n'


def test_watch_exit_status_and_not_due():
    _tray(2)
    first = run("watch", "--every", "1d", "--json", ok=False)
    data = json.loads(first.stdout)
    assert data["ran"] and first.exit_code == {"green": 0, "amber": 1, "red": 2}[data["level"]]
    second = run("watch", "--every", "1d")
    assert second.stdout.startswith("not due: last ran ")
    r = run("watch", "--every", "daily", ok=False)
    assert r.stderr == "Error: --every 'daily': a whole number and a unit, m, h, d or w (e.g. 1d)\n"
