"""The feedback loop in a real browser: a coach submits a walk-through on a tablet and shares
its feedback; the teacher opens the link in a fresh browser at phone size (no account),
reflects and acknowledges; the coach sees "Acknowledged". The printed observation (Chromium's
PDF of its print layout) fits on one or two pages."""

import re

from playwright.sync_api import Browser, BrowserContext, expect

from app.demo import DEMO_PASSWORD
from tests.browser.devices import ARTIFACTS
from tests.browser.helpers import LiveServer

COACH = "coach@demo.walkthrough.test"
PHONE = {"width": 390, "height": 844}


def test_a_coach_shares_and_the_teacher_reflects_and_acknowledges_on_a_phone(
    live_server: LiveServer, tablet: BrowserContext, browser: Browser
) -> None:
    coach = tablet.new_page()
    coach.goto(live_server.url + "/login")
    coach.fill("#email", COACH)
    coach.fill("#password", DEMO_PASSWORD)
    coach.locator("button[type=submit]").tap()
    expect(coach).not_to_have_url(re.compile("/login"))
    teacher_name = "Feedback Loop Teacher"
    coach.goto(live_server.url + "/observations/new")
    coach.fill("#teacher", teacher_name)
    coach.locator("input[name=rubric][value='discourse-walkthrough:1']").tap()
    coach.get_by_role("button", name="Start observing").tap()
    expect(coach.locator("h1")).to_have_text(teacher_name)
    coach.locator("label[for=overall_discourse-4]").tap()
    coach.fill("#glow-text", "Every table explained a strategy before sharing out.")
    coach.fill("#grow-text", "Ask a second student to restate the first one's idea.")
    coach.get_by_role("button", name="Review and submit").tap()
    coach.get_by_role("button", name="Submit observation").tap()
    expect(coach).to_have_url(re.compile(r"/observations/[0-9a-f-]{36}\?submitted=1"))
    obs_url = coach.url.split("?", 1)[0]

    card = coach.locator("[data-feedback-state]")
    expect(card).to_have_attribute("data-feedback-state", "not_shared")
    # The coach chooses what the teacher sees: the strength and the next step.
    coach.get_by_label("A strength to name for the teacher").check()
    coach.get_by_label("One next step to suggest").check()
    coach.get_by_role("button", name="Share", exact=True).tap()
    link = coach.locator("[data-share-link]").input_value()
    assert "/f/" in link
    coach.goto(obs_url)  # any page: the one that showed the link is never kept offline
    kept = coach.evaluate(
        """async () => { const out = [];
             for (const n of await caches.keys())
               for (const r of await (await caches.open(n)).keys()) out.push(r.url);
             return out; }"""
    )
    assert kept and not [u for u in kept if "/shared" in u or "/f/" in u], kept

    # The teacher: a fresh browser (no cookies, no account), at phone size.
    phone = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        page = phone.new_page()
        page.goto(link)
        expect(page.locator("h1")).to_have_text(f"Feedback for {teacher_name}")
        expect(page.locator("[data-shared-view]")).to_contain_text("Every table explained")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.fill("#reflection-text", "I will try restating on Monday with table 3.")
        page.get_by_role("button", name="Save my reflection").tap()
        expect(page.locator("[data-my-reflection]")).to_contain_text("restating on Monday")
        page.fill("#ack-name", teacher_name)
        page.fill("#ack-comment", "Thank you.")
        page.get_by_role("button", name="Acknowledge").tap()
        expect(page.locator("[data-acknowledged]")).to_contain_text(f"by {teacher_name}")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "feedback-phone.png"), full_page=True)
    finally:
        phone.close()

    coach.goto(obs_url)
    expect(coach.locator("[data-feedback-badge]")).to_have_text("Acknowledged")
    expect(coach.locator("[data-reflection]")).to_contain_text("restating on Monday")

    # The printed record: the print stylesheet, on A4/Letter, one or two pages.
    coach.emulate_media(media="print")
    expect(coach.locator(".topbar")).to_be_hidden()
    expect(coach.locator("[data-share-form]")).to_be_hidden()
    pdf = coach.pdf(format="Letter")
    (ARTIFACTS / "observation-print.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, pages
    coach.close()
