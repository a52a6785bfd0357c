"""The web app served by uvicorn, driven in headless Chromium (Debian's package, through Playwright).

With ``EVALTRAY_SCREENSHOTS=DIR`` the tests also save the main pages' screenshots there (the README's come from
``EVALTRAY_SCREENSHOTS=docs/screenshots``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaltray.monitor import dashboards
from evaltray.tray import review as rev

from .conftest import OUTPUT, PASSWORD, add_candidate, ingest_chat

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("EVALTRAY_SCREENSHOTS")


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def _page(browser: Any, base: str, name: str) -> Any:
    """A new browser page signed in as ``name`` through the sign-in form."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{base}/queue")
    assert page.url.startswith(f"{base}/login?next=")
    if SHOTS:
        _shot(page, "login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def _shot(page: Any, name: str) -> None:
    assert SHOTS is not None
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_a_labeler_labels_a_candidate_with_the_keyboard_blind(browser, server, site):
    page = _page(browser, server, "lab")
    first, second = site.cands[0], site.cands[1]
    assert page.url == f"{server}/queue/{first}"
    assert OUTPUT not in page.content() and page.locator("#blind-note").is_visible()
    if SHOTS:
        _shot(page, "queue-blind")
    page.keyboard.press("j")
    page.wait_for_url(f"{server}/queue/{second}")
    page.keyboard.press("k")
    page.wait_for_url(f"{server}/queue/{first}")
    page.keyboard.press("p")  # no verdict before the expected behaviour: the page says why
    assert "Write the expected behaviour first" in page.locator("#flash").inner_text()
    assert page.locator("input[name=verdict]").count() == 0
    page.keyboard.press("w")
    page.keyboard.type("Say refunds take 5 to 7 business days and offer the order status.")
    with page.expect_response(lambda r: r.url.endswith("/expected")):
        page.keyboard.press("Control+Enter")
    assert page.locator("#recorded-output").inner_text() == OUTPUT
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    assert page.locator("input[name=verdict][value=fail]").is_checked()
    page.keyboard.press("e")
    page.keyboard.type("Gives the policy but never looks up the order.")
    page.keyboard.press("Escape")
    if SHOTS:
        _shot(page, "queue-revealed")
    with page.expect_navigation():
        page.keyboard.press("s")
    assert page.url == f"{server}/queue/{second}"  # on to the next row
    review = rev.latest_review(site.ws, first)
    assert review is not None
    assert (review.reviewer, review.verdict, review.expected_first) == ("lab", "fail", True)
    assert review.critique == "Gives the policy but never looks up the order."
    assert review.expected["reference"] == "Say refunds take 5 to 7 business days and offer the order status."


def test_a_draft_typed_in_the_browser_survives_a_reload(browser, server, site):
    page = _page(browser, server, "lab")
    with page.expect_response(lambda r: r.url.endswith("/draft") and r.status == 204):
        page.fill("#critique", "Half a thought")
    page.reload()
    assert page.locator("#critique").input_value() == "Half a thought"


def test_a_labeler_is_refused_promotion_in_the_browser(browser, server, site):
    page = _page(browser, server, "lab")
    page.goto(f"{server}/")
    if SHOTS:
        _shot(page, "home")
    page.click("#promote")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Error 403"
    assert "user 'lab' is a labeler; promoting needs one of" in page.locator(".error").inner_text()


#: Each tries to run script, load something, or leak text through CSS; all must show as text.
PAYLOADS = [
    "<script>document.title='pwned-script'; fetch('/leak?script')</script>",
    "<img src=x onerror=\"document.title='pwned-img'\">",
    "<a href=\"javascript:document.title='pwned-link'\" id=evil-link>click me</a>",
    "<style>input[name=csrf][value^=a]{background:url(/leak?css)} body{background:url(/leak?body)}</style>",
    '"><svg onload="document.title=\'pwned-svg\'">',
    "{{ 7*7 }} {% if 1 %}jinja{% endif %}",
]


def test_hostile_trace_text_renders_as_text_and_runs_nothing(browser, server, site, tmp_path):
    hostile = "\n".join(PAYLOADS)
    cid = add_candidate(site.ws, hostile, output=hostile)
    ingest_chat(site.ws, tmp_path, "t-hostile", hostile, scrub=False)
    site.ws.settings.scrub = False  # shown as stored: the payloads reach the page intact
    page = _page(browser, server, "lab")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for url in (f"{server}/queue/{cid}", f"{server}/trace?id=t-hostile", f"{server}/traces"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert not page.title().startswith("pwned"), url
        assert page.locator("main img, main svg, main style, main script, #evil-link").count() == 0, url
        text = page.locator("main").inner_text()
        for payload in PAYLOADS[:1] if url.endswith("/traces") else PAYLOADS:
            assert payload.splitlines()[0][:60] in text, (url, payload)
    page.goto(f"{server}/queue/{cid}")
    page.fill("#reference", "Refuse.")
    with page.expect_response(lambda r: r.url.endswith("/expected")):
        page.click("#show-output")
    page.wait_for_load_state("networkidle")
    assert page.locator("#recorded-output").inner_text() == hostile  # the output, revealed, is text too
    assert not page.title().startswith("pwned") and dialogs == []
    assert [u for u in asked if "/leak" in u or not u.startswith(server)] == []
    if SHOTS:
        page.goto(f"{server}/trace?id=t-hostile")
        _shot(page, "trace")


def test_the_traces_and_guide_pages_in_the_browser(browser, server, site, tmp_path):
    ingest_chat(site.ws, tmp_path, "t-1001", "My order 1001 never arrived; can I get a refund?", scrub=False)
    ingest_chat(site.ws, tmp_path, "t-1002", "How do I change my delivery address?", scrub=False)
    site.ws.settings.scrub = False
    page = _page(browser, server, "adj")
    page.goto(f"{server}/traces")
    page.fill("input[name=q]", "refund")
    page.click(".filters button")
    page.wait_for_load_state()
    rows = page.locator("#trace-list tbody tr").all_inner_texts()
    assert len(rows) == 1 and rows[0].startswith("t-1001")
    if SHOTS:
        _shot(page, "traces")
    page.goto(f"{server}/guide")
    page.fill("input[name=version]", "1")
    page.fill(
        "textarea[name=body]",
        "Write what the assistant should do before you read what it did.\n\nFail a reply that invents an order status.",
    )
    page.click("form[action='/guide'] button")
    page.wait_for_load_state()
    assert page.locator("#guide-body").inner_text().startswith("Write what the assistant should do")
    if SHOTS:
        _shot(page, "guide")


def test_escalate_in_the_browser_reaches_the_adjudicators_queue(browser, server, site):
    page = _page(browser, server, "lab")
    first = site.cands[0]
    assert page.url == f"{server}/queue/{first}"
    page.fill("#escalate-reason", "the policy does not say")
    with page.expect_navigation():
        page.click("#escalate")
    assert page.url == f"{server}/queue/{site.cands[1]}"  # on to her next task
    adj = _page(browser, server, "adj")
    assert adj.url == f"{server}/queue/{first}"  # the escalated task comes first to the adjudicator
    note = adj.locator("#escalated-note").inner_text()
    assert note == "Escalated to the adjudicator by lab: the policy does not say"
    assert adj.locator("#escalate-form").count() == 0


def _label_in_browser(page: Any, expected: str, verdict: str) -> None:
    """Write the expected behaviour, see the output, give ``verdict`` and save, from the keyboard."""
    page.keyboard.press("w")
    page.keyboard.type(expected)
    with page.expect_response(lambda r: r.url.endswith("/expected")):
        page.keyboard.press("Control+Enter")
    page.keyboard.press("Escape")
    page.keyboard.press(verdict[0])
    with page.expect_navigation():
        page.keyboard.press("s")


def test_a_disagreement_between_two_labelers_reaches_the_adjudicator_and_the_decision_lands(browser, server, site):
    from evaltray.tray import candidates as pool
    from evaltray.tray import tasks as tq

    site.ws.settings.overlap = 1.0
    first, *others = site.cands
    for cid in others:
        pool.reject(site.ws, cid, "duplicate", "alice")
    lab = _page(browser, server, "lab")
    assert lab.url == f"{server}/queue/{first}"
    _label_in_browser(lab, "Say 5 to 7 business days.", "pass")
    lab2 = _page(browser, server, "lab2")
    assert lab2.url == f"{server}/queue/{first}"  # the second label, blind to the first
    assert "Say 5 to 7 business days." not in lab2.content()
    _label_in_browser(lab2, "Look the order up before answering.", "fail")
    [adj_task] = tq.list_tasks(site.ws, kind="adjudicate", status="open")
    adj = _page(browser, server, "adj")
    assert adj.url == f"{server}/tasks/{adj_task.id}"
    assert "lab said pass" in adj.locator("#label-1 h3").inner_text()
    assert "lab2 said fail" in adj.locator("#label-2 h3").inner_text()
    if SHOTS:
        _shot(adj, "adjudicate")
    adj.check("input[name=verdict][value=fail]")
    adj.fill("#decision-reason", "The guide says: look the order up first.")
    with adj.expect_navigation():
        adj.click("#done")
    review = rev.latest_review(site.ws, first)
    assert review is not None
    assert (review.reviewer, review.verdict) == ("adj", "fail")
    assert review.expected["reference"] == "Look the order up before answering."
    assert tq.get_task(site.ws, adj_task.id).outcome == "done"
    adj.goto(f"{server}/agreement")
    assert "0.0%" in adj.locator("#overall").inner_text()
    assert "1 disagreement(s) decided" in adj.locator("#overall").inner_text()


def test_the_dashboards_in_the_browser(browser, server, boards):
    page = _page(browser, server, "vic")
    page.goto(f"{server}/dash/coverage")
    assert page.locator("#heatmap td.fill-4").count() == 1  # refunds · medium: 2 of 2
    if SHOTS:
        _shot(page, "dash-coverage")
    page.goto(f"{server}/dash/passrates")
    assert page.locator("svg[aria-label='pass rate per slice'] circle").count() == 2
    for name in ("passrates", "sources", "releases", "health"):
        page.goto(f"{server}/dash/{name}")
        assert page.locator("h1").inner_text() == dashboards.title(name)
        if SHOTS:
            _shot(page, f"dash-{name}")


def test_a_slice_mix_change_is_proposed_and_the_composition_owner_approves_it_in_the_browser(browser, server, site):
    from evaltray.curate import plan_changes as pc
    from evaltray.curate.plan import load_plan, plan_path
    from evaltray.web import accounts
    from tests.helpers import register

    ws = site.ws
    register(ws, "co", "composition_owner")
    accounts.set_password(ws, "co", PASSWORD, actor="alice")
    plan_path(ws).write_text(
        "dimensions:\n  feature: [refunds]\ngrid: [feature]\nslices:\n  refunds: {owner: alice, target_share: 0.6}\n"
    )
    lab = _page(browser, server, "lab")
    lab.goto(f"{server}/plan/changes")
    text = lab.input_value("#plan-text")
    assert "target_share: 0.6" in text
    lab.fill("#plan-text", text.replace("0.6", "0.7"))
    lab.fill("#propose-reason", "refunds are most of the traffic")
    with lab.expect_navigation():
        lab.click("#propose")
    [change] = pc.list_changes(ws)
    assert lab.url == f"{server}/plan/changes/{change.id}"
    assert lab.locator("#slice-refunds td").all_inner_texts()[:2] == ["60%", "70%"]
    assert lab.locator("#decide-form").count() == 0  # a labeler proposes; the composition owner decides
    co = _page(browser, server, "co")
    co.goto(f"{server}/plan/changes/{change.id}")
    if SHOTS:
        _shot(co, "plan-change")
    co.fill("#decision-reason", "matches production")
    with co.expect_navigation():
        co.click("#approve")
    assert co.locator("#change-status").inner_text() == "approved"
    assert load_plan(ws).slices["refunds"]["target_share"] == 0.7


def test_an_adjudicator_starts_a_spot_check_and_an_admin_deactivates_a_user_in_the_browser(browser, server, site):
    from evaltray.tray import gate
    from evaltray.tray import tasks as tq
    from tests.helpers import labeled_candidate

    ws = site.ws
    for i in range(3):
        labeled_candidate(ws, f"Golden {i}?", user="alice")
    gate.promote(ws, "alice")
    adj = _page(browser, server, "adj")
    adj.goto(f"{server}/agreement")
    adj.fill("input[name=sample]", "2")
    with adj.expect_navigation():
        adj.click("#spotcheck")
    assert adj.locator("#spot-opened").inner_text().startswith("2 spot-check task(s) opened")
    assert len(tq.list_tasks(ws, kind="spotcheck", status="open")) == 2
    admin = _page(browser, server, "alice")
    admin.goto(f"{server}/users")
    form = admin.locator("#deactivate-lab")
    form.locator("select[name=heir]").select_option("lab2")
    form.locator("input[name=dry_run]").uncheck()
    if SHOTS:
        _shot(admin, "users")
    with admin.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "lab is no longer a user." in admin.locator("#handover").inner_text()
    assert "lab" not in {u["name"] for u in ws.users()}
