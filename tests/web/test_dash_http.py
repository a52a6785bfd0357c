"""The dashboards in the web: every board a page any signed-in role reads, and its JSON twin with the same
figures; the numbers are the ``boards`` fixture's, worked out by hand."""

from __future__ import annotations

import pytest

from evaltray.monitor import dashboards
from evaltray.web.views.dash import fill_level, heatmap

from .conftest import sign_in


def test_fill_levels_and_the_heatmap_layout():
    assert [fill_level(f, 4) for f in (0, 1, 2, 3, 4, 9)] == [
        "fill-0",
        "fill-1",
        "fill-2",
        "fill-3",
        "fill-4",
        "fill-4",
    ]
    assert fill_level(3, 0) == "none"
    cells = [
        {"cell": {"feature": "refunds", "difficulty": "easy"}, "n": 1},
        {"cell": {"feature": "refunds", "difficulty": "hard"}, "n": 2},
        {"cell": {"feature": "billing", "difficulty": "easy"}, "n": 3},
    ]
    cols, rows = heatmap(cells, ["feature", "difficulty"])
    assert cols == ["easy", "hard"]
    assert rows == [("billing", [cells[2], None]), ("refunds", [cells[0], cells[1]])]


@pytest.mark.parametrize("name", dashboards.BOARDS.names())
def test_each_board_is_a_page_for_a_viewer_and_its_json_twin_has_the_same_figures(client, boards, name):
    sign_in(client, "vic")
    page = client.get(f"/dash/{name}")
    assert page.status_code == 200 and f'id="board-{name}"' in page.text
    twin = client.get(f"/api/dash/{name}")
    assert twin.status_code == 200
    assert twin.json()["title"] == dashboards.title(name) and twin.json()["board"] == name


def test_the_boards_figures(client, boards):
    sign_in(client, "vic")
    cov = client.get("/api/dash/coverage").json()
    filled = {(c["cell"]["feature"], c["cell"]["difficulty"]): c["filled"] for c in cov["cells"]}
    assert filled[("refunds", "medium")] == 2 and filled[("refunds", "hard")] == 1
    assert filled[("billing", "medium")] == 1 and filled[("billing", "easy")] == 0
    page = client.get("/dash/coverage").text
    assert '<td class="fill-2" title="traffic 0, pending 0">1/2</td>' in page  # refunds · hard: half filled
    assert '<td class="fill-4" title="traffic 0, pending 0">2/2</td>' in page
    sources = client.get("/api/dash/sources").json()["slices"]
    assert sources["refunds"]["counts"] == {"sme": 2, "production": 1}
    runs = client.get("/api/dash/passrates").json()["runs"]
    [run] = runs
    assert (run["overall"]["n"], run["overall"]["passed"]) == (5, 3)
    assert run["slices"]["refunds"]["pass_rate"] == 0.75 and run["slices"]["billing"]["pass_rate"] == 0.0
    page = client.get("/dash/passrates").text
    assert page.count("<circle") == 2 and "overall 60.0% (3/5" in page  # one dot per slice
    assert client.get("/api/dash/rejects").json() == {
        "board": "rejects",
        "title": dashboards.title("rejects"),
        "by_reason": {"duplicate": 1},
        "total": 1,
    }
    [release] = client.get("/api/dash/releases").json()["releases"]
    assert release["version"] == "1.0.0" and release["n_cases"]["main"] == 4
    assert release["sets"]["main"]["by_slice"]["added"] == {"refunds": 3, "billing": 1}


def test_an_unknown_board_is_a_404_naming_the_boards_and_a_stranger_is_sent_to_sign_in(client, boards):
    r = client.get("/dash/coverage")
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/login")
    assert client.get("/api/dash/coverage").status_code == 401
    sign_in(client, "lab")
    r = client.get("/api/dash/nope")
    assert (
        r.status_code == 404
        and "no dashboard 'nope'; there are: coverage, drift, failures, health, passrates" in r.text
    )


def test_a_capped_count_reads_over_the_cap():
    from evaltray.web.render import capped

    assert (capped(1000, 1000), capped(1001, 1000), capped(12, 1000)) == ("1,000", "over 1,000", "12")


def _kept(ws, stamp: str, level: str, shift: float | None, novel: float) -> None:
    """A kept drift summary as `evaltray drift` writes it (metric values and thresholds by hand)."""
    import orjson

    from evaltray.monitor.drift import DRIFT_DIR

    folder = ws.root / DRIFT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "created_at": stamp,
        "level": level,
        "baseline": "traffic <b>14d</b>",
        "window": "last 7d",
        "n_baseline": 120,
        "n_window": 80,
        "metrics": {
            "centroid_shift": {
                "value": shift,
                "level": "unknown" if shift is None else level,
                "amber": 0.05,
                "red": 0.1,
            },
            "novel_share": {"value": novel, "level": "green", "amber": 0.1, "red": 0.2},
        },
        "new_clusters": 2,
    }
    (folder / f"{stamp.replace(':', '')}.json").write_bytes(orjson.dumps(summary))


def test_the_drift_board_shows_each_metric_with_threshold_status_and_trend(client, site):
    ws = site.ws
    sign_in(client, "vic")
    empty = client.get("/api/dash/drift").json()
    assert (empty["level"], empty["metrics"]) == (None, []) and "run `evaltray drift`" in empty["note"]
    _kept(ws, "2026-11-01T09:00:00+00:00", "unknown", None, 0.02)
    _kept(ws, "2026-11-08T09:00:00+00:00", "green", 0.01, 0.03)
    _kept(ws, "2026-11-15T09:00:00+00:00", "red", 0.12, 0.04)
    data = client.get("/api/dash/drift").json()
    assert (data["level"], data["reports"], data["n_window"], data["new_clusters"]) == ("red", 3, 80, 2)
    assert data["metrics"] == [
        {"name": "centroid_shift", "value": 0.12, "amber": 0.05, "red": 0.1, "level": "red"},
        {"name": "novel_share", "value": 0.04, "amber": 0.1, "red": 0.2, "level": "green"},
    ]
    # the report that did not measure the shift leaves a gap in its trend, not a zero
    assert data["trend"]["centroid_shift"] == {
        "bounds": [0.05, 0.1],
        "points": [["2026-11-08T09:00:00+00:00", 0.01, "green"], ["2026-11-15T09:00:00+00:00", 0.12, "red"]],
    }
    assert len(data["trend"]["novel_share"]["points"]) == 3
    page = client.get("/dash/drift").text
    row = page.split('<tr id="metric-centroid_shift">')[1].split("</tr>")[0]
    assert "<td>0.12</td><td>0.05 / 0.1</td>" in row and '<td class="level-red">red</td>' in row
    assert row.count("<circle") == 2 and 'aria-label="centroid_shift over time"' in row
    assert page.split('<tr id="metric-novel_share">')[1].split("</tr>")[0].count("<circle") == 3
    assert "traffic &lt;b&gt;14d&lt;/b&gt; (120)" in page and "<b>14d</b>" not in page
    assert "3 kept report(s)" in page and "2 new intent cluster(s)" in page
