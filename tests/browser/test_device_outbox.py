"""The device outbox in a real browser: pushes sized to what the server (and any proxy in front
of it) takes, no false conflict after a lost answer, and a clear state once things are sent.

Route handlers written in Python only run while Playwright is waiting, so these tests wait
with Playwright (expect, wait_for_function) whenever a handler must answer.
"""

import json

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer, client, eventually, js_eventually, screenshot, sign_in
from tests.browser.test_offline import _count, _ready_offline, _start

pytestmark = pytest.mark.browser
COACH = "coach@demo.walkthrough.test"
PROXY_LIMIT = 200_000  # bytes a proxy in front of the server takes, far below the server's own


def _outbox(page: Page) -> list[dict]:  # type: ignore[type-arg]
    return list(client(page, "Walkthrough.store.all('outbox')"))


def test_pushes_split_under_a_proxy_limit_and_one_item_too_large_is_set_aside(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _ready_offline(page, live_server)
    template_id = _start(page, "Large Notes Template")
    page.locator("label[for=overall_discourse-3]").tap()
    payload = client(page, f"Walkthrough.store.get('drafts', '{template_id}').then(d => d.payload)")
    client(page, "id => Walkthrough.store.del('drafts', id)", template_id)

    sizes: list[tuple[int, int]] = []

    def proxy(route: Route) -> None:
        body = route.request.post_data or ""
        size = len(body.encode())
        if size > PROXY_LIMIT:  # like nginx's client_max_body_size: an HTML page, no limits
            sizes.append((413, size))
            route.fulfill(status=413, content_type="text/html", body="<h1>413 Too Large</h1>")
        else:
            sizes.append((200, size))
            route.continue_()

    page.route("**/api/sync/push", proxy)
    # Twelve observations of about 30 KB (a long lesson's notes), and one of about 260 KB
    # that no push through this proxy can ever carry, queued among them.
    client(
        page,
        """([payload, count]) => {
          const me = Walkthrough.currentAccountId();
          const note = (i) => ({ minute: i, text: ('Student reasoning noted. ').repeat(400) });
          const jobs = [];
          for (let i = 0; i < count; i++) {
            const big = i === 5;
            const p = JSON.parse(JSON.stringify(payload));
            p.teacher_name = big ? 'Huge Notes Teacher' : 'Large Notes Teacher ' + i;
            p.notes = Array.from({ length: big ? 26 : 3 }, (_, k) => note(k));
            jobs.push(Walkthrough.enqueue(crypto.randomUUID(), 0, p, me));
          }
          return Promise.all(jobs);
        }""",
        [payload, 13],
    )
    client(page, "Walkthrough.flush('test')")
    js_eventually(
        page,
        "Walkthrough.store.all('outbox').then(r => r.length === 1 && r[0].state === 'rejected')",
        timeout_s=30,
    )
    assert (
        live_server.count(
            "SELECT count(*) FROM observation WHERE teacher_name LIKE 'Large Notes Teacher %'"
        )
        == 12
    )
    assert _count(live_server, "Huge Notes Teacher") == 0
    assert any(status == 413 for status, _ in sizes)  # the first push was cut by the proxy
    assert all(size <= PROXY_LIMIT for status, size in sizes if status == 200)
    [left] = _outbox(page)
    assert left["payload"]["teacher_name"] == "Huge Notes Teacher"
    assert "too large to send" in left["reason"]

    page.goto(live_server.url + "/outbox")
    item = page.locator("[data-outbox-list] li")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Not accepted")
    expect(item).to_contain_text("shorten the longest notes")
    expect(item.get_by_role("link", name="Open and fix")).to_be_visible()
    screenshot(page, "outbox-too-large")

    # Later work still goes: nothing queued behind the refused item is stuck.
    page.goto(live_server.url + "/observations/new")
    _start(page, "After The Huge One")
    page.get_by_role("button", name="Save draft").tap()
    eventually(page, lambda: _count(live_server, "After The Huge One") == 1)
    page.unroute("**/api/sync/push", proxy)


def test_a_lost_answer_then_an_edit_is_an_update_not_a_conflict(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _ready_offline(page, live_server)
    teacher = "Lost Answer Teacher"
    calls = {"n": 0}
    network = {"back": False}

    def lose_first_answer(route: Route) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            route.fetch()  # the server stores it…
            route.abort("connectionreset")  # …and the answer never reaches the tablet
        elif not network["back"]:
            route.abort("internetdisconnected")  # then the wifi drops for a while
        else:
            route.continue_()

    page.route("**/api/sync/push", lose_first_answer)
    _start(page, teacher)
    page.locator("label[for=overall_discourse-2]").tap()
    page.get_by_role("button", name="Save draft").tap()
    eventually(page, lambda: calls["n"] >= 1 and _count(live_server, teacher) == 1)
    # stored, but the device does not know it: the item still waits
    assert len(_outbox(page)) == 1

    page.locator("label[for=overall_discourse-4]").tap()  # the observer goes on editing
    page.get_by_role("button", name="Save draft").tap()
    eventually(page, lambda: [(r["seq"], r["base_revision"]) for r in _outbox(page)] == [(2, 0)])
    network["back"] = True
    client(page, "Walkthrough.flush('test')")

    def revision() -> int:
        return live_server.count(
            "SELECT revision FROM observation WHERE teacher_name = :t", t=teacher
        )

    eventually(page, lambda: revision() == 2 and len(_outbox(page)) == 0)
    conflicts = live_server.count(
        "SELECT count(*) FROM observation_conflict c JOIN observation o ON o.id = c.observation_id "
        "WHERE o.teacher_name = :t",
        t=teacher,
    )
    assert conflicts == 0
    payload = live_server.count(
        "SELECT count(*) FROM observation_revision r JOIN observation o ON o.id = r.observation_id "
        "WHERE o.teacher_name = :t AND r.revision = 2",
        t=teacher,
    )
    assert payload == 1
    page.unroute("**/api/sync/push", lose_first_answer)


def test_offline_submit_offers_the_next_walkthrough_and_leaves_the_drafts_list_once_sent(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _ready_offline(page, live_server)
    tablet.set_offline(True)
    submitted, drafted = "Submitted Offline Teacher", "Drafted Offline Teacher"
    _start(page, submitted)
    submitted_url = page.url
    page.locator("label[for=overall_discourse-3]").tap()
    page.get_by_role("button", name="Review and submit").tap()
    page.get_by_role("button", name="Submit observation").tap()
    expect(page.locator("[data-save-status]")).to_contain_text("Submitted and saved on this device")
    expect(page.locator("[data-save-status]")).to_contain_text("nothing more to do here")
    expect(page.locator("[data-status]")).to_have_text("Submitted")
    screenshot(page, "offline-submitted")
    page.get_by_role("link", name="Start the next walk-through").tap()
    expect(page.locator("h1")).to_have_text("New walk-through")

    _start(page, drafted)
    page.locator("label[for=overall_discourse-2]").tap()
    page.get_by_role("button", name="Save draft").tap()
    expect(page.locator("[data-save-status]")).to_contain_text("will be sent automatically")
    page.goto(submitted_url)  # the submitted one, opened again on the device, says so
    expect(page.locator("[data-submitted-note]")).to_be_visible()
    expect(page.get_by_role("button", name="Review the amendment")).to_be_visible()
    expect(page.get_by_role("button", name="Save draft")).to_be_hidden()

    page.goto(live_server.url + "/outbox")
    expect(page.locator("[data-outbox-list] li")).to_have_count(2)
    tablet.set_offline(False)
    expect(page.locator("[data-outbox-list] li")).to_have_count(0, timeout=20000)
    assert _count(live_server, submitted) == 1
    assert _count(live_server, drafted) == 1
    expect(page.locator("[data-drafts-list]")).not_to_contain_text(submitted)
    expect(page.locator("[data-drafts-list]")).not_to_contain_text(drafted)
    expect(page.locator("[data-drafts-list]")).to_contain_text("No drafts")
    drafts = client(page, "Walkthrough.store.all('drafts')")
    assert [d["payload"]["teacher_name"] for d in drafts if d["dirty"]] == []


def test_a_submitted_observation_says_so_and_is_amended_through_the_review(
    live_server: LiveServer, tablet: BrowserContext
) -> None:
    page = tablet.new_page()
    _ready_offline(page, live_server)
    teacher = "Amended Teacher"
    obs_id = _start(page, teacher)
    page.locator("label[for=overall_discourse-3]").tap()
    page.get_by_role("button", name="Review and submit").tap()
    page.get_by_role("button", name="Submit observation").tap()
    page.wait_for_url("**/observations/*?submitted=1")

    page.goto(f"{live_server.url}/observations/{obs_id}/edit")
    expect(page.locator("[data-submitted-note]")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_text("Submitted")
    expect(page.get_by_role("button", name="Save draft")).to_be_hidden()
    page.locator("label[for=overall_discourse-5]").tap()
    page.get_by_role("button", name="Review the amendment").tap()
    expect(page.locator("[data-review]")).to_be_visible()
    assert (
        live_server.count("SELECT revision FROM observation WHERE teacher_name = :t", t=teacher)
        == 1
    )  # nothing is sent before the review is confirmed
    page.get_by_role("button", name="Submit the amendment").tap()
    page.wait_for_url("**/observations/*?submitted=1")
    assert (
        live_server.count(
            "SELECT revision FROM observation WHERE teacher_name = :t AND status = 'submitted'",
            t=teacher,
        )
        == 2
    )


def test_a_tap_then_a_nav_link_keeps_the_tap(live_server: LiveServer, page: Page) -> None:
    sign_in(page, live_server.url, COACH, DEMO_PASSWORD)
    page.goto(live_server.url + "/observations/new")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.goto(live_server.url + "/observations/new")
    _start(page, "Nav Link Teacher")
    capture_url = page.url
    page.locator("label[for=overall_discourse-4]").tap()
    page.get_by_role("button", name="One more: A student explains why, not only what").tap()
    page.get_by_role("link", name="Observations", exact=True).tap()  # at once, a tap on the menu
    page.wait_for_url("**/observations")
    page.goto(capture_url)
    expect(page.locator("#overall_discourse-4")).to_be_checked()
    expect(page.locator("input[name='item-students_explaining']")).to_have_value("1")
    saved = client(
        page, "Walkthrough.store.get('drafts', location.hash.slice(1)).then(d => d.payload.values)"
    )
    assert json.dumps(saved["overall_discourse"]["value"]) == "4"
