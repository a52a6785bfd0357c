"""The HTML report, loaded in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import json
import shutil

import orjson
import pytest

from evaltray.evaluate import html, score
from evaltray.evaluate import run as runner
from evaltray.evaluate.targets import make_target

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">[/b]"


@pytest.fixture
def page():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser.new_page()
        browser.close()


def test_the_report_shows_slices_intervals_and_failures_in_chromium(ws, tmp_path, monkeypatch, page):
    (tmp_path / "htmlbot.py").write_text("def answer(inp):\n    return inp['messages'][-1]['content'].upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [
        {"id": f"a{i}", "input": f"q{i}", "slice": "refunds", "expected": {"reference": f"Q{i}" if i < 7 else "no"}}
        for i in range(10)
    ]
    rows += [{"id": "h1", "input": "x", "slice": HOSTILE, "expected": {"reference": "nope"}}]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:htmlbot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["exact"], "alice")
    out = html.write_html_report(ws, made.run_id, tmp_path / "report.html")
    page.goto(out.as_uri())
    assert page.title() == f"evaltray run {made.run_id}"  # the hostile slice name did not run
    assert page.locator("h1").inner_text() == "python:htmlbot:answer on unreleased cases"
    cells = page.locator("table").first.locator("tr").all_inner_texts()
    assert cells[1].split("\t")[:3] == ["(all)", "11", "63.6%"]
    assert [c.split("\t")[:3] for c in cells[2:]] == [[HOSTILE, "1", "0.0%"], ["refunds", "10", "70.0%"]]
    assert page.locator("svg[aria-label='pass rate per slice'] circle").count() == 3
    assert page.locator("img").count() == 0 and HOSTILE in page.content().replace("&lt;", "<").replace(
        "&gt;", ">"
    ).replace("&quot;", '"')
    failing = page.locator("table").nth(1).locator("tr").all_inner_texts()
    assert [f.split("\t")[0] for f in failing[1:]] == ["a7", "a8", "a9", "h1"]
    data = json.loads(page.locator("#report-data").inner_text())
    assert (data["overall"]["n"], data["overall"]["passed"]) == (11, 7)
    assert (
        "slice refunds: 10 scored cases can flag a collapse, not declare a fix"
        in page.locator(".warn").all_inner_texts()
    )
