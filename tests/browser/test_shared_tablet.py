"""A school iPad shared by two people: each one's work stays theirs, on the device and on the
server, and signing out leaves no personnel pages behind."""

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, client, sign_in
from tests.browser.test_offline import _start, _wait_for

pytestmark = pytest.mark.browser
COACH = "coach@demo.walkthrough.test"
PRINCIPAL = "principal@demo.walkthrough.test"


def _observer_of(server: LiveServer, teacher: str) -> str:
    rows = server.count(
        "SELECT count(*) FROM observation WHERE teacher_name = :t AND deleted_at IS NULL", t=teacher
    )
    assert rows == 1, f"{rows} observations of {teacher}"
    user_id = server.count("SELECT observer_id FROM observation WHERE teacher_name = :t", t=teacher)
    from sqlalchemy import text

    from app.db import make_engine

    engine = make_engine(server.database_url)
    try:
        with engine.connect() as conn:
            email = conn.execute(text('SELECT email FROM "user" WHERE id = :i'), {"i": user_id})
            return str(email.scalar_one())
    finally:
        engine.dispose()


def _stored(server: LiveServer, teacher: str) -> int:
    return server.count(
        "SELECT count(*) FROM observation WHERE teacher_name = :t AND deleted_at IS NULL", t=teacher
    )


def _sign_in(page: Page, server: LiveServer, who: str) -> None:
    sign_in(page, server.url, who, DEMO_PASSWORD)
    page.wait_for_url(lambda url: "/login" not in url)


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").tap()
    page.wait_for_url("**/login")


def _page_cache(page: Page) -> list[str]:
    """Every address in the cache of personal pages (none when the cache is gone)."""
    return list(
        page.evaluate(
            """async () => {
              const names = (await caches.keys()).filter(n => n.startsWith('walkthrough-pages'));
              const out = [];
              for (const n of names) {
                const cache = await caches.open(n);
                for (const r of await cache.keys()) out.push(new URL(r.url).pathname);
              }
              return out;
            }"""
        )
    )


def test_sign_out_while_offline_work_waits_keeps_it_for_its_author(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    """The next person's sign-in never sends the previous person's queue (the old bug)."""
    page = tablet.new_page()
    _sign_in(page, live_server, COACH)
    page.goto(live_server.url + "/observations/new")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.goto(live_server.url + "/observations/new")
    tablet.set_offline(True)
    teacher = "Offline Shared Teacher"
    _start(page, teacher)
    page.locator("label[for=overall_discourse-3]").tap()
    page.get_by_role("button", name="Save draft").tap()
    expect(page.locator("[data-save-status]")).to_contain_text("will be sent automatically")
    # The coach leaves before the device reconnects; on a shared iPad that is the usual case.
    tablet.clear_cookies()
    tablet.set_offline(False)
    expect(page.locator("[data-sync-badge]")).to_contain_text("sign in to send")
    pushes: list[str] = []

    def watch(route: Route) -> None:
        pushes.append(route.request.post_data or "")
        route.continue_()

    page.route("**/api/sync/push", watch)
    _sign_in(page, live_server, PRINCIPAL)
    page.goto(live_server.url + "/outbox")
    page.get_by_role("button", name="Sync now").tap()
    expect(page.locator("[data-sync-badge]")).to_contain_text("waiting for its author")
    client(page, "() => Walkthrough.flush('test')")  # waits for the sync (and one more)
    assert _stored(live_server, teacher) == 0
    assert not any(teacher in body for body in pushes)
    page.unroute("**/api/sync/push", watch)  # (a Python handler only runs while Playwright waits)
    tablet.clear_cookies()
    _sign_in(page, live_server, COACH)
    _wait_for(lambda: _stored(live_server, teacher) == 1)
    assert _observer_of(live_server, teacher) == COACH


def test_signing_out_offline_changes_nothing_and_says_why(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _sign_in(page, live_server, COACH)
    page.goto(live_server.url + "/observations/new")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.goto(live_server.url + "/outbox")
    tablet.set_offline(True)
    page.get_by_role("button", name="Sign out").tap()
    expect(page.locator("#messages")).to_contain_text("Signing out needs the connection")
    assert "/outbox" in _page_cache(page)
    assert page.evaluate("localStorage.getItem('walkthrough-account')") is not None
    tablet.set_offline(False)
    _sign_out(page)  # back online, the same button signs out
    assert _page_cache(page) == []
    assert page.evaluate("localStorage.getItem('walkthrough-account')") is None
    page.goto(live_server.url + "/outbox")
    page.wait_for_url("**/login?next=/outbox")  # signed out on the server too
