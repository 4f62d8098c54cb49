"""Offline capture and sync in a real browser: nothing lost, nothing doubled.

Each test records on a tablet-sized page and then checks the server's database itself.
"""

import uuid

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, client, js_eventually, sign_in

pytestmark = pytest.mark.browser
COACH = "coach@demo.walkthrough.test"


def _count(server: LiveServer, teacher: str) -> int:
    return server.count(
        "SELECT count(*) FROM observation WHERE teacher_name = :t AND deleted_at IS NULL", t=teacher
    )


def _wait_for(check, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _ready_offline(page: Page, server: LiveServer) -> None:
    """Sign in, visit the start page online, and wait until the service worker controls it."""
    sign_in(page, server.url, COACH, DEMO_PASSWORD)
    page.goto(server.url + "/observations/new")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.goto(server.url + "/outbox")
    page.goto(server.url + "/observations/new")
    expect(page.locator("h1")).to_have_text("New walk-through")
    assert page.evaluate("!!navigator.serviceWorker.controller")


def _start(page: Page, teacher: str) -> str:
    page.get_by_label("Teacher").fill(teacher)
    page.get_by_text("Discourse Walk-Through").tap()
    page.get_by_role("button", name="Start observing").tap()
    page.wait_for_url("**/capture/discourse-walkthrough/1#*")
    expect(page.locator("h1")).to_have_text(teacher)
    obs_id = page.url.rsplit("#", 1)[1]
    assert uuid.UUID(obs_id)
    return obs_id


def _waiting(page: Page) -> int:
    return int(
        client(
            page,
            "Walkthrough.store.all('outbox')"
            ".then(r => r.filter(x => x.state === 'waiting').length)",
        )
    )


def test_two_tabs_on_one_draft_make_one_observation(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    first = tablet.new_page()
    _ready_offline(first, live_server)
    teacher = "Two Tabs Teacher"
    _start(first, teacher)
    second = tablet.new_page()
    second.goto(first.url)
    expect(second.locator("[data-other-tab]")).to_be_visible()
    expect(second.get_by_role("button", name="Review and submit")).to_be_disabled()
    first.locator("label[for=overall_discourse-2]").tap()
    first.get_by_role("button", name="Review and submit").tap()
    first.get_by_role("button", name="Submit observation").tap()
    first.wait_for_url("**/observations/*?submitted=1")
    second.close()  # leaving the read-only tab sends nothing of its own
    client(first, "() => Walkthrough.flush('test')")  # waits for the sync (and one more)
    assert _count(live_server, teacher) == 1
    assert (
        live_server.count(
            "SELECT count(*) FROM observation WHERE teacher_name = :t AND status = 'submitted'",
            t=teacher,
        )
        == 1
    )


def test_a_new_service_worker_keeps_waiting_items_and_pages_working(
    own_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _ready_offline(page, own_server)
    old_caches = page.evaluate("caches.keys()")
    tablet.set_offline(True)
    teacher = "Upgrade Day Teacher"
    _start(page, teacher)
    capture_url = page.url
    page.locator("label[for=overall_discourse-4]").tap()
    page.get_by_role("button", name="Save draft").tap()
    expect(page.locator("[data-save-status]")).to_contain_text("will be sent automatically")

    own_server.restart(WALKTHROUGH_BUILD_ID="build-two")  # a new version is deployed
    page.route("**/api/sync/push", lambda route: route.abort("internetdisconnected"))
    tablet.set_offline(False)
    page.evaluate("navigator.serviceWorker.getRegistration().then(r => r.update())")
    js_eventually(
        page,
        "old => caches.keys().then(k => k.filter(n => n !== 'walkthrough-pages'))"
        ".then(k => k.length === 1 && !old.includes(k[0]))",
        old_caches,
    )
    assert _count(own_server, teacher) == 0  # still waiting on the device
    page.unroute("**/api/sync/push")
    page.goto(own_server.url + "/outbox")  # (a goto to the same address and # would not load)
    page.goto(capture_url)  # the cached capture page of the new build still opens the draft
    expect(page.locator("h1")).to_have_text(teacher)
    expect(page.locator("#overall_discourse-4")).to_be_checked()
    _wait_for(lambda: _count(own_server, teacher) == 1)


def test_unsent_observations_move_by_file_and_are_not_doubled(
    live_server: LiveServer, tablet: BrowserContext, browser
) -> None:  # type: ignore[no-untyped-def]
    page = tablet.new_page()
    _ready_offline(page, live_server)
    tablet.set_offline(True)
    teacher = "File Transfer Teacher"
    _start(page, teacher)
    page.locator("label[for=overall_discourse-2]").tap()
    page.get_by_role("button", name="Save draft").tap()
    expect(page.locator("[data-save-status]")).to_contain_text("will be sent automatically")
    page.goto(live_server.url + "/outbox")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download unsent observations").tap()
    path = download.value.path()

    other_device = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True)
    other = other_device.new_page()
    sign_in(other, live_server.url, COACH, DEMO_PASSWORD)
    other.goto(live_server.url + "/outbox")
    other.locator("[data-import]").set_input_files(path)
    expect(other.locator("[data-import-result]")).to_contain_text("1 observation(s) added")
    _wait_for(lambda: _count(live_server, teacher) == 1)
    # Sent under a device id of its own: an old copy is never taken for the device's latest.
    device = live_server.text(
        "SELECT r.device_id FROM observation_revision r JOIN observation o "
        "ON o.id = r.observation_id WHERE o.teacher_name = :t",
        t=teacher,
    )
    assert device.startswith("file:"), device
    other_device.close()

    # Someone else's file is refused: it would send the coach's work under their name.
    third_device = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True)
    third = third_device.new_page()
    sign_in(third, live_server.url, "principal@demo.walkthrough.test", DEMO_PASSWORD)
    third.wait_for_url(lambda url: "/login" not in url)
    third.goto(live_server.url + "/outbox")
    third.locator("[data-import]").set_input_files(path)
    expect(third.locator("[data-import-result]")).to_contain_text("another account's observations")
    assert client(third, "Walkthrough.store.all('outbox')") == []
    third_device.close()

    tablet.set_offline(False)  # the first tablet still has it: its push is a duplicate
    page.get_by_role("button", name="Sync now").tap()
    _wait_for(lambda: _waiting(page) == 0)
    assert _count(live_server, teacher) == 1
