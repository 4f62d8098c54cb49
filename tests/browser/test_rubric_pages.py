"""Rubric pages on a tablet: readable descriptors, no sideways scrolling, the v1/v2 comparison."""

import pytest
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def _no_horizontal_scroll(page: Page) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_version_page_is_readable_on_a_tablet(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "coach@demo.walkthrough.test", DEMO_PASSWORD)
    page.get_by_role("link", name="Rubrics").click()
    card = page.locator(".rubric-card", has_text="Math-Talk Learning Community")
    card.get_by_role("link", name="Version 1").click()  # (other tests may add rubrics)
    expect(page.locator("h1")).to_contain_text("Math-Talk Learning Community")
    expect(page.locator(".level")).to_have_count(16)
    font_px = page.eval_on_selector(".level p", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert font_px >= 17
    _no_horizontal_scroll(page)
    screenshot(page, "rubric-version")


def test_compare_page_side_by_side(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "principal@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/rubrics")
    page.get_by_role("link", name="Compare versions 1 and 2").click()
    expect(page.locator(".lede")).to_contain_text("2 items changed from v1 to v2")
    expect(page.locator(".change-added")).to_have_count(1)
    _no_horizontal_scroll(page)
    screenshot(page, "rubric-compare")
