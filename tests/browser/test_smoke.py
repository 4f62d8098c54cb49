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
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    expect(page.locator("[data-start-walkthrough]")).to_be_visible()
    # The offline client is ES modules: nothing on window, its API is the module's export.
    assert page.evaluate("[typeof window.Walkthrough, typeof window.WalkthroughCore]") == [
        "undefined",
        "undefined",
    ]
    assert (
        page.evaluate("async () => typeof (await import('/static/offline.js')).default.flush")
        == "function"
    )
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


def test_the_api_docs_render_under_the_apps_own_csp(live_server: LiveServer, page: Page) -> None:
    blocked: list[str] = []
    page.on(
        "console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None
    )
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None,
    )
    page.goto(live_server.url + "/api/docs")
    expect(page.locator(".swagger-ui .opblock-summary-path").first).to_be_visible(timeout=15_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/sync/push")
    assert blocked == [] and outside == []
    screenshot(page, "api-docs")


def test_an_admins_navigation_fits_a_portrait_ipad(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, "admin@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/admin/users")
    nav = page.get_by_role("navigation", name="Main")
    rows = page.evaluate(
        """() => new Set([...document.querySelectorAll('nav[aria-label=Main] li')]
              .map(li => Math.round(li.getBoundingClientRect().top))).size"""
    )
    assert rows == 1, f"the main navigation takes {rows} rows at 820 px"
    expect(nav.get_by_role("link", name="Admin")).to_have_attribute("aria-current", "page")
    sub = page.get_by_role("navigation", name="Administration")
    expect(sub.get_by_role("link", name="Users")).to_have_attribute("aria-current", "page")
    # The current item: white on dark blue, at least 4.5:1.
    ratio = page.evaluate(
        """() => {
          const a = document.querySelector('nav[aria-label=Main] a[aria-current=page]');
          const lum = (c) => { const [r, g, b] = c.match(/\\d+/g).slice(0, 3).map(Number)
            .map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
          const s = getComputedStyle(a);
          const [l1, l2] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
          return (l1 + 0.05) / (l2 + 0.05);
        }"""
    )
    assert ratio >= 4.5, ratio
    screenshot(page, "admin-nav-ipad")
    page.get_by_role("link", name="Casey Lindqvist").tap()
    expect(page.locator("[data-edit-user]")).to_be_visible()
    screenshot(page, "admin-edit-user")


def test_an_admin_finds_a_teacher_at_any_school_by_typing(
    live_server: LiveServer, page: Page
) -> None:
    sign_in(page, live_server.url, "admin@demo.walkthrough.test", DEMO_PASSWORD)
    page.goto(live_server.url + "/observations/new")
    # The district's roster is not in the page; typing asks the server, whichever school the
    # school list shows (Priya teaches at Roosevelt Middle).
    assert page.locator("#roster option").count() == 0
    page.locator("#teacher").press_sequentially("priya", delay=20)
    expect(page.locator("#roster option")).to_have_count(1)
    assert page.locator("#roster option").first.get_attribute("value") == "Priya Natarajan"
    assert "Roosevelt Middle" in (page.locator("#roster option").first.text_content() or "")
