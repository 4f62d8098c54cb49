"""Real-browser smoke test: sign in on a tablet viewport and see the home page."""

import pytest
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_coach_signs_in_and_sees_home(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "coach@demo.walkthrough.test", DEMO_PASSWORD)
    expect(page.locator("h1")).to_have_text("Hello, Casey Lindqvist")
    expect(page.locator(".lede")).to_contain_text("Lincoln Elementary")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    screenshot(page, "home-coach")


def test_wrong_password_shows_a_message(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "coach@demo.walkthrough.test", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("do not match an active account")


def test_admin_filters_teachers_live_with_htmx(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "admin@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/admin/teachers")
    expect(page.locator("#teacher-list tbody tr")).to_have_count(8)
    page.fill("#q", "okafor")
    expect(page.locator("#teacher-list tbody tr")).to_have_count(1)
    expect(page.locator("#teacher-list")).to_contain_text("Sam Okafor")
    screenshot(page, "admin-teachers")


def test_touch_targets_are_at_least_44px(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "admin@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/admin/users")
    small = page.evaluate(
        """() => [...document.querySelectorAll(
                'button, .button, input:not([type=hidden]), select, nav a')]
              .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect()])
              .filter(([, r]) => r.width > 0 && (r.height < 44 || r.width < 44))
              .map(([h, r]) => `${h} ${r.width}x${r.height}`)"""
    )
    assert small == []
