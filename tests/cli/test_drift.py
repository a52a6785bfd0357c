"""``evaltray drift``: the report as JSON and as text, --to-candidates, a window too small, a release baseline."""

from __future__ import annotations

import json
import random

from tests.cli.runner import run as cli
from tests.cli.test_monitor import released  # noqa: F401  (a fixture: release 1.0.0 of three cases)
from tests.monitor.test_drift import NEW, _ingest, _known, _texts


def _traffic(ws, tmp_path, monkeypatch):
    rng = random.Random(2)
    _ingest(ws, tmp_path, "old", _known(rng, 40), "2026-11-25T10:00:00Z")
    _ingest(ws, tmp_path, "new", _known(rng, 25) + _texts(NEW, 40, rng), "2026-12-05T10:00:00Z")
    monkeypatch.chdir(ws.root)


def test_drift_json_and_to_candidates(ws, tmp_path, monkeypatch):
    _traffic(ws, tmp_path, monkeypatch)
    r = cli("drift", "--window", "7d", "--baseline-window", "14d", "--to-candidates", "--json")
    data = json.loads(r.stdout)
    assert (data["n_baseline"], data["n_window"]) == (160, 140)
    assert data["level"] == "red"
    novel = {m["name"]: m for m in data["metrics"]}["novel_share"]
    assert novel["level"] == "red" and (novel["amber"], novel["red"]) == (0.05, 0.10)
    assert data["new_clusters"] and data["new_clusters"][0]["examples"]
    assert len(data["candidates_added"]) == sum(c["size"] for c in data["new_clusters"])
    text = cli("drift", "--baseline-window", "14d").stdout
    assert "drift: red" in text and "new intent" in text and "suggested slice new-" in text
    assert cli("drift", "--baseline-window", "14d", "--strict", ok=False).exit_code == 1


def test_a_small_window_is_said_not_measured(ws, tmp_path, monkeypatch):
    _traffic(ws, tmp_path, monkeypatch)
    data = json.loads(cli("drift", "--window", "1d", "--json").stdout)
    assert data["level"] == "unknown" and data["metrics"] == [] and "too few traces" in data["note"]


def test_a_release_baseline(released, tmp_path, monkeypatch):  # noqa: F811
    _traffic(released, tmp_path, monkeypatch)
    data = json.loads(cli("drift", "--baseline", "1.0.0", "--json").stdout)
    assert data["baseline"] == "release 1.0.0" and data["n_baseline"] == 3
    assert "release 1.0.0 has 3" in data["note"]
    r = cli("drift", "--baseline", "1.0.0", "--baseline-window", "30d", ok=False)
    assert r.exit_code == 1 and "not both" in r.stderr


def test_html_report_with_the_trend_and_synthetic_cases(ws, tmp_path, monkeypatch):
    from evaltray.tray import gate
    from tests.helpers import labeled_candidate
    from tests.monitor.test_synthetic import FORMAL

    _traffic(ws, tmp_path, monkeypatch)
    labeled_candidate(ws, FORMAL, source="synthetic")
    gate.promote(ws, "alice")
    cli("drift", "--window", "7d", "--baseline-window", "14d", "--json")  # a first kept report
    out = tmp_path / "drift.html"
    r = cli("drift", "--baseline-window", "14d", "--synthetic", "--html", str(out), "--json")
    data = json.loads(r.stdout)
    (case,) = data["synthetic"]["cases"]
    assert case["off_style"] and data["synthetic"]["flagged"] == [case["case_id"]]
    page = out.read_text()
    # two kept reports: each metric's trend chart has two points; nothing fetched from outside the file
    assert page.count('aria-label="novel_share over time"') == 1
    chart = page.split('aria-label="novel_share over time"')[1].split("</svg>")[0]
    assert chart.count("<circle") == 2 and "#b00020" in chart  # red points
    assert "Synthetic cases" in page and case["case_id"] in page and "off-style" in page
    assert "http" not in page.replace("http-equiv", "")
    text = cli("drift", "--baseline-window", "14d", "--synthetic").stdout
    assert "synthetic cases vs" in text and "off-style" in text


def test_rolling_refresh_list_and_the_gate_refusal(ws, tmp_path, monkeypatch):
    _traffic(ws, tmp_path, monkeypatch)
    data = json.loads(cli("rolling", "refresh", "--window", "30d", "--n", "50", "--json").stdout)
    assert data["n"] == 50 and data["version"].startswith("rolling-") and not data["dry_run"]
    assert "would write" in cli("rolling", "refresh", "--window", "30d", "--dry-run").stdout
    listed = json.loads(cli("rolling", "list", "--json").stdout)
    assert [r["version"] for r in listed] == [data["version"]]
    assert data["version"] in cli("rolling", "list").stdout
    (tmp_path / "echobot.py").write_text("def answer(inp):\n    return 'ok'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run_id = json.loads(cli("run", data["version"], "--target", "python:echobot:answer", "--json").stdout)["run_id"]
    r = cli("gate", run_id, "--baseline", run_id, ok=False)
    assert r.exit_code == 1 and "never used for gating" in r.stderr
