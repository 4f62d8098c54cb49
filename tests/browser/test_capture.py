"""A coach records a whole walk-through on a tablet (820×1180, touch) and submits it."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import ARTIFACTS, LiveServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_coach_records_and_submits_a_walkthrough(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "coach@demo.walkthrough.test", DEMO_PASSWORD)
    page.get_by_role("link", name="Observations", exact=True).tap()
    page.get_by_role("link", name="New walk-through").tap()

    page.get_by_label("Teacher").fill("Sam Okafor")
    page.get_by_text("Discourse Walk-Through").tap()
    page.get_by_label("Grade").select_option("3")
    page.get_by_role("button", name="Start observing").tap()

    page.wait_for_url("**/capture/discourse-walkthrough/1#*")
    expect(page.locator("h1")).to_have_text("Sam Okafor")
    # The visit's time is kept to the minute, but the timer counts from now, not from 0:25.
    expect(page.locator("[data-timer]")).to_have_text(re.compile(r"^0:0\d$"))
    expect(page.locator("[data-timer]")).not_to_have_text("0:00", timeout=3000)
    # A typed count below 0 is corrected where it was typed, with the reason.
    typed = page.locator("input[name=item-building_on_peer]")
    typed.fill("-3")
    typed.press("Tab")
    expect(typed).to_have_value("0")
    expect(page.locator("#item-building_on_peer [data-tally-note]")).to_have_text(
        "A count cannot be below 0: set to 0."
    )
    page.locator("label.toggle", has=page.locator("input[name=item-task_visible]")).tap()
    page.locator("label.toggle", has=page.locator("input[name=item-partner_talk]")).tap()
    plus = page.get_by_role("button", name="One more: A student explains why, not only what")
    for _ in range(3):
        plus.tap()
    page.get_by_role("button", name="One more: The teacher presses for reasoning").tap()
    page.get_by_role("button", name="One fewer: The teacher presses for reasoning").tap()
    page.get_by_role("button", name="One more: The teacher presses for reasoning").tap()
    page.locator("label[for=overall_discourse-4]").tap()
    page.locator("#item-overall_discourse summary", has_text="Evidence").tap()
    page.locator("#overall_discourse-evidence").fill("Two students argued about 3/4 vs 2/3.")
    page.locator("#glow-text").fill("Partners used the sentence frames.")
    page.locator("#overall_notes").fill("Pairs talked first.\nThen the whole class.")
    page.locator(".note-row textarea").last.fill("Launch: task posted, pairs formed")
    page.get_by_role("button", name="Add a note at this minute").tap()
    page.locator(".note-row textarea").last.fill("Share-out begins")
    screenshot(page, "capture-tablet")
    page.get_by_role("button", name="Review and submit").tap()

    expect(page.locator("[data-review-title]")).to_have_text("1 item without a rating")
    expect(page.locator("[data-review-missing]")).to_contain_text("One next step to suggest")
    screenshot(page, "review-tablet")
    page.get_by_role("button", name="Submit observation").tap()
    page.wait_for_url("**/observations/*?submitted=1")

    expect(page.get_by_role("status")).to_contain_text("Submitted")
    summary = page.locator("main")
    expect(summary).to_contain_text("4 – Reasoning")
    expect(summary).to_contain_text("Two students argued about 3/4 vs 2/3.")
    expect(summary).to_contain_text("Launch: task posted, pairs formed")
    expect(summary).to_contain_text("Share-out begins")
    notes = page.locator("[data-overall-notes]")  # its line breaks kept
    expect(notes).to_have_css("white-space", "pre-wrap")
    expect(notes).to_have_text("Pairs talked first.\nThen the whole class.")
    rows = page.locator(".value-row")
    expect(rows.filter(has_text="A student explains why")).to_contain_text("3")
    expect(rows.filter(has_text="The teacher presses for reasoning")).to_contain_text("1")
    expect(rows.filter(has_text="A rich mathematical task")).to_contain_text("Present")
    expect(rows.filter(has_text="More than one strategy")).to_contain_text("Not present")


def test_capture_page_weight_is_under_100_kb_compressed(
    live_server: LiveServer, page: Page
) -> None:
    sign_in(page, live_server.url, "coach@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/observations/new")
    page.get_by_label("Teacher").fill("Ana García")
    page.get_by_role("button", name="Start observing").tap()
    expect(page.locator("h1")).to_have_text("Ana García")
    capture_url = page.url

    fresh = page.context.browser.new_context(viewport={"width": 820, "height": 1180})  # type: ignore[union-attr]
    fresh.add_cookies(page.context.cookies())
    weighed = fresh.new_page()
    responses = []
    weighed.on("requestfinished", lambda r: responses.append(r))
    weighed.goto(capture_url, wait_until="load")
    total = 0
    detail = {}
    for request in responses:
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        total += size
        detail[request.url.replace(live_server.url, "")] = size
    fresh.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "capture-page-weight.json").write_text(
        json.dumps({"total_bytes": total, **detail}, indent=2)
    )
    assert any("htmx" in url for url in detail) and any(url.endswith("app.css") for url in detail)
    assert total < 100 * 1024, detail
