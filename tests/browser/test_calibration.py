"""A facilitator runs a calibration session; two raters on their own devices join and rate."""

import pytest
from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, js_eventually, screenshot, sign_in

pytestmark = pytest.mark.browser


PHONE = {"width": 390, "height": 844}


def _rater(
    browser: Browser,
    server: LiveServer,
    code: str,
    name: str,
    viewport: dict[str, int] | None = None,
) -> Page:
    context = browser.new_context(
        viewport=viewport or {"width": 820, "height": 1180}, has_touch=True
    )
    page = context.new_page()
    page.goto(server.url + "/join")
    page.get_by_label("Code").fill(code.lower())
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Join").tap()
    expect(page.locator(".lede")).to_contain_text(f"Rating as {name}")
    return page


def test_facilitator_runs_a_session_and_reveals_the_report(
    live_server: LiveServer, page: Page, browser: Browser
) -> None:
    sign_in(page, live_server.url, "facilitator@demo.walkthrough.test", DEMO_PASSWORD)
    page.get_by_role("link", name="Calibration", exact=True).tap()
    page.get_by_label("Title", exact=True).fill("Winter convening")
    page.get_by_label("Rubric").select_option(label="Math-Talk Learning Community v1")
    page.get_by_label("First excerpt's title").fill("Grade 5 area models")
    page.get_by_label("Transcript (one line per turn of talk)").fill(
        "T: How did you find the area?\n"
        "S1: I split it into two rectangles.\n"
        "S2: I did it another way."
    )
    page.get_by_role("button", name="Create session").tap()
    code = page.locator("[data-code]").inner_text().strip()
    assert len(code) == 6
    expect(page.get_by_role("button", name="Reveal the report")).to_be_disabled()  # nobody rated
    expect(page.get_by_role("button", name="Open round 2")).to_be_disabled()

    raters = [_rater(browser, live_server, code, name) for name in ("Ana", "Ben")]
    for rater, level in zip(raters, ("2", "3"), strict=True):
        expect(rater.locator(".transcript li")).to_have_count(3)
        for item in (
            "questioning",
            "explaining_thinking",
            "sources_of_ideas",
            "responsibility_for_learning",
        ):
            rater.locator(f"label[for$='-{item}-{level}']").tap()
        expect(rater.locator("[data-rate-status]")).to_have_text("Saved.")
        if rater is raters[0]:
            # A one-line "why", typed then reloaded at once: kept, and sent.
            why = rater.locator("input[id$='-questioning']")
            why.fill("Only one probing question")
            rater.reload()
            expect(rater.locator("input[id$='-questioning']")).to_have_value(
                "Only one probing question"
            )
            js_eventually(
                rater,
                """async () => {
                  const r = await fetch(location.pathname.replace('/c/', '/api/calibration/')
                    + '/ratings');
                  const saved = (await r.json()).ratings;
                  return saved.some(x => x.reason === 'Only one probing question');
                }""",
            )
        rater.get_by_role("button", name="I am done").tap()
        expect(rater.get_by_role("status").first).to_contain_text("Saved")
    screenshot(raters[0], "calibration-rater")

    expect(page.locator("[data-board-summary]")).to_contain_text(
        "2 joined · 2 done", timeout=10_000
    )
    screenshot(page, "calibration-board")
    # Once someone has rated, the page (without a reload) offers reveal, behind a confirmation.
    page.locator("[data-confirm=reveal] summary").tap()
    expect(page.locator("[data-confirm=reveal]")).to_contain_text("2 of 2 raters have rated")
    page.get_by_role("button", name="Yes, reveal to everyone").tap()
    expect(page.locator("h1")).to_contain_text("agreement")
    expect(page.locator("[data-session-stats]")).to_be_visible()
    expect(page.locator(".heatmap")).to_be_visible()
    screenshot(page, "calibration-report")

    raters[0].reload()
    expect(raters[0].locator(".lede")).to_contain_text("you are Ana")
    expect(raters[0].locator("[data-item]")).to_have_count(4)
    expect(raters[0].locator("[data-item=questioning] [data-reasons]")).to_contain_text(
        "Only one probing question — You · Ana"
    )
    expect(raters[1].locator("[data-item=questioning] [data-reasons]")).to_contain_text(
        "Only one probing question — Rater 1", timeout=10_000
    )  # Ben's page followed the reveal by itself; Ana is anonymous to him
    expect(raters[1].locator("[data-grid]")).to_be_visible()
    for rater in raters:
        rater.context.close()


def test_rater_pages_follow_reveal_and_a_new_round_without_a_reload(
    live_server: LiveServer, page: Page, browser: Browser
) -> None:
    sign_in(page, live_server.url, "facilitator@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/calibration")
    page.get_by_label("Title", exact=True).fill("Following the room")
    page.get_by_label("Rubric").select_option(label="Math-Talk Learning Community v1")
    page.get_by_label("First excerpt's title").fill("Grade 3 arrays")
    page.get_by_label("Transcript (one line per turn of talk)").fill("T: How many?\nS1: Twelve.")
    page.get_by_role("button", name="Create session").tap()
    code = page.locator("[data-code]").inner_text().strip()
    tablet = _rater(browser, live_server, code, "Tess")
    phone = _rater(browser, live_server, code, "Pim", viewport=PHONE)
    for rater, level in ((tablet, "2"), (phone, "3")):
        for item in (
            "questioning",
            "explaining_thinking",
            "sources_of_ideas",
            "responsibility_for_learning",
        ):
            rater.locator(f"label[for$='-{item}-{level}']").tap()
        expect(rater.locator("[data-rate-status]")).to_have_text("Saved.")
        rater.get_by_role("button", name="I am done").tap()
        expect(rater.locator("[data-waiting]")).to_contain_text("nothing to reload")
    # Reveal: both raters' pages turn into the report by themselves.
    page.reload()
    page.locator("[data-confirm=reveal] summary").tap()
    page.get_by_role("button", name="Yes, reveal to everyone").tap()
    for rater, name in ((tablet, "Tess"), (phone, "Pim")):
        expect(rater.locator("h1")).to_contain_text("agreement", timeout=15_000)
        expect(rater.locator(".lede")).to_contain_text(f"you are {name}")
    screenshot(phone, "calibration-report-phone")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    # A new round: the report gives way to a fresh, blind rating page.
    page.goto(page.url.replace("/report", ""))  # the facilitator's session page
    page.locator("[data-confirm=next_round] summary").tap()
    page.get_by_role("button", name="Yes, open round 2").tap()
    for rater in (tablet, phone):
        expect(rater.locator(".lede")).to_contain_text("round 2", timeout=15_000)
        expect(rater.get_by_role("button", name="I am done")).to_be_visible()
    for rater in (tablet, phone):
        rater.context.close()
