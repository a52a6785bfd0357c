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
    assert r.status_code == 404 and "no dashboard 'nope'; there are: coverage, failures, health, passrates" in r.text


def test_a_capped_count_reads_over_the_cap():
    from evaltray.web.render import capped

    assert (capped(1000, 1000), capped(1001, 1000), capped(12, 1000)) == ("1,000", "over 1,000", "12")
