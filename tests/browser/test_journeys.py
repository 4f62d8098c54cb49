"""The journeys every tablet must survive, in Chromium and in WebKit (the engine of every iPad
browser): offline capture through a reload and a submit, a browser restart with unsent work,
a flaky server, an expired sign-in, a burst of taps then a reload, and two accounts on one
shared iPad. Each is written once against a `Device` and runs in both engines; the network
is a proxy of the test's own (`network`), so both meet the same faults.

Each checks what arrived in the server's database itself: nothing lost, nothing doubled.
"""

import uuid

import pytest
import yaml

from app.demo import DEMO_PASSWORD
from app.rubrics.loader import RubricDefinition
from tests.browser.devices import Device, FaultProxy, Tab
from tests.browser.helpers import LiveServer

pytestmark = pytest.mark.browser
COACH = "coach@demo.walkthrough.test"
PRINCIPAL = "principal@demo.walkthrough.test"
COACH_NAME = "Casey Lindqvist"
MORE = "One more: A student explains why, not only what"
TALLY = "input[name='item-students_explaining']"
STATUS = "[data-save-status]"
OUTBOX_ITEMS = "[data-outbox-list] li"


def stored(server: LiveServer, teacher: str) -> int:
    return server.count(
        "SELECT count(*) FROM observation WHERE teacher_name = :t AND deleted_at IS NULL", t=teacher
    )


def observer_of(server: LiveServer, teacher: str) -> str:
    return server.text(
        'SELECT u.email FROM observation o JOIN "user" u ON u.id = o.observer_id '
        "WHERE o.teacher_name = :t AND o.deleted_at IS NULL",
        t=teacher,
    )


def revision(server: LiveServer, teacher: str) -> int:
    return server.count(
        "SELECT revision FROM observation WHERE teacher_name = :t AND deleted_at IS NULL", t=teacher
    )


def sign_in(tab: Tab, network: FaultProxy, who: str) -> None:
    tab.goto(network.url + "/login")
    tab.fill("#email", who)
    tab.fill("#password", DEMO_PASSWORD)
    tab.tap("button[type=submit]")
    try:
        tab.wait(lambda: "/login" not in tab.url, "signed in", timeout_s=10)
    except AssertionError:
        # WebKit, cold, has once lost the tap on a page that had only just loaded. Signing in
        # is not what these journeys test: the form is sent again, and must then work.
        tab.goto(network.url + "/login")
        tab.fill("#email", who)
        tab.fill("#password", DEMO_PASSWORD)
        tab.tap("button[type=submit]")
        tab.wait(lambda: "/login" not in tab.url, "signed in")


def sign_out(tab: Tab) -> None:
    tab.tap_button("Sign out")
    tab.wait_for_url("/login")


def ready_offline(tab: Tab, network: FaultProxy, who: str = COACH) -> None:
    """Sign in, and visit the start page until the service worker controls it."""
    sign_in(tab, network, who)
    tab.goto(network.url + "/observations/new")
    tab.wait_for_service_worker()
    tab.goto(network.url + "/outbox")
    tab.goto(network.url + "/observations/new")
    tab.expect_text("h1", "New walk-through")
    assert tab.js("() => !!navigator.serviceWorker.controller")


def start(tab: Tab, teacher: str) -> str:
    tab.fill("#teacher", teacher)
    tab.tap("input[name=rubric][value='discourse-walkthrough:1']")
    tab.tap_button("Start observing")
    tab.wait_for_url("/capture/discourse-walkthrough/1#")
    tab.expect_text("h1", teacher)
    obs_id = tab.url.rsplit("#", 1)[1]
    assert uuid.UUID(obs_id)
    return obs_id


def record_draft(tab: Tab, network: FaultProxy, teacher: str, level: int = 3) -> str:
    tab.goto(network.url + "/observations/new")
    obs_id = start(tab, teacher)
    tab.tap(f"label[for=overall_discourse-{level}]")
    tab.tap_button("Save draft")
    tab.expect_text(STATUS, "Saved")  # on this device, and sent when the server answers
    return obs_id


def outbox_size(tab: Tab) -> int:
    return int(tab.js("() => Walkthrough.store.all('outbox').then(r => r.length)"))


def waiting(tab: Tab) -> int:
    return int(
        tab.js(
            "() => Walkthrough.store.all('outbox')"
            ".then(r => r.filter(x => x.state === 'waiting').length)"
        )
    )


def sync_now(tab: Tab) -> None:
    """Tap "Sync now" and wait for that sync (and one more) to end."""
    tab.tap_button("Sync now")
    tab.js("() => Walkthrough.flush('test')")


def test_offline_capture_survives_reloads_and_a_submit_then_syncs_once(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    network.offline()
    tab.reload()  # the start page, from the device's cache
    tab.expect_text("h1", "New walk-through")
    teacher = f"Offline Teacher {device.engine}"
    obs_id = start(tab, teacher)
    tab.reload()  # the capture page, offline, after a reload
    tab.expect_text("h1", teacher)
    tab.tap("label[for=overall_discourse-5]")
    tab.tap_button(MORE)
    tab.fill("#glow-text", "Rich partner talk")
    tab.reload()
    tab.expect_checked("#overall_discourse-5")
    tab.expect_value(TALLY, "1")
    tab.expect_value("#glow-text", "Rich partner talk")
    tab.js("() => window.scrollTo(0, 0)")
    tab.screenshot(f"capture-offline-{device.engine}")  # at iPad size, 820 × 1180
    tab.tap_button("Review and submit")
    tab.tap_button("Submit observation")
    tab.expect_text(STATUS, "Submitted and saved on this device")
    tab.goto(network.url + "/outbox")
    tab.expect_count(OUTBOX_ITEMS, 1)
    assert stored(live_server, teacher) == 0

    network.online()
    tab.reload()  # a page load sends what waits
    tab.wait(lambda: stored(live_server, teacher) == 1, "the observation on the server")
    tab.expect_count(OUTBOX_ITEMS, 0)
    sync_now(tab)  # a further sync sends nothing again
    assert live_server.observation_ids(teacher) == [uuid.UUID(obs_id)]  # the device's own id
    assert (
        live_server.count(
            "SELECT count(*) FROM observation WHERE teacher_name = :t AND status = 'submitted' "
            "AND revision = 1",
            t=teacher,
        )
        == 1
    )


def test_a_browser_restart_offline_keeps_unsent_work_and_sends_it_once(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    network.offline()
    teacher = f"Restart Teacher {device.engine}"
    obs_id = record_draft(tab, network, teacher, level=4)
    capture_url = tab.url

    tab = device.restart()  # the browser is ended and opened again, still offline
    tab.goto(capture_url)
    tab.expect_text("h1", teacher)
    tab.expect_checked("#overall_discourse-4")
    tab.goto(network.url + "/outbox")
    tab.expect_count(OUTBOX_ITEMS, 1)
    tab.expect_text("[data-outbox-list]", teacher)
    assert stored(live_server, teacher) == 0

    network.online()
    tab.reload()
    tab.wait(lambda: stored(live_server, teacher) == 1, "the observation on the server")
    tab.expect_count(OUTBOX_ITEMS, 0)
    assert live_server.observation_ids(teacher) == [uuid.UUID(obs_id)]


def test_server_errors_and_a_cut_connection_lose_and_double_nothing(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    teachers = [f"Flaky Network {device.engine} {i}" for i in range(3)]
    network.offline()
    for teacher in teachers:
        record_draft(tab, network, teacher)
    # Two server errors, then a push the server stores whose answer never arrives.
    network.plan("/api/sync/push", "500", "503", "cut")
    network.online()
    tab.goto(network.url + "/outbox")
    for _ in range(8):  # the observer taps "Sync now" until the server recovers
        if network.calls["/api/sync/push"] >= 4:
            break
        sync_now(tab)
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox", timeout_s=60)
    assert network.calls["/api/sync/push"] >= 4
    for teacher in teachers:
        assert stored(live_server, teacher) == 1, teacher
        assert revision(live_server, teacher) == 1, (
            teacher
        )  # sent again after the cut: no new revision
    tab.expect_text(
        "[data-outbox-summary]", "Everything you recorded on this device is on the server"
    )


def test_an_expired_sign_in_keeps_the_outbox_and_sends_after_signing_in(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    network.offline()
    teacher = f"Expired Session Teacher {device.engine}"
    record_draft(tab, network, teacher)
    # The sign-in expires on the server while the item waits (the cookie stays on the device).
    live_server.execute(
        'DELETE FROM user_session WHERE user_id = (SELECT id FROM "user" WHERE email = :e)', e=COACH
    )
    network.online()
    tab.js("() => Walkthrough.flush('online')")  # the page's next sync learns it must sign in
    tab.expect_text("[data-sync-badge]", "sign in to send")
    assert waiting(tab) == 1
    assert stored(live_server, teacher) == 0
    sign_in(tab, network, COACH)
    tab.wait(lambda: stored(live_server, teacher) == 1, "the observation on the server")
    tab.goto(network.url + "/outbox")
    tab.expect_count(OUTBOX_ITEMS, 0)


def test_a_burst_of_taps_then_an_immediate_reload_keeps_every_tap(
    device: Device, network: FaultProxy
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    start(tab, f"Burst Teacher {device.engine}")
    for _ in range(5):
        tab.tap_button(MORE)
    tab.tap("label[for=overall_discourse-4]")
    tab.reload()  # at once: no wait for any save
    tab.expect_value(TALLY, "5")
    tab.expect_checked("#overall_discourse-4")
    tab.wait_js(  # …and IndexedDB has it too, once the restored state is written back
        "() => Walkthrough.store.get('drafts', location.hash.slice(1)).then(d => "
        "!!d && !!d.payload.values.students_explaining && "
        "d.payload.values.students_explaining.value === 5)"
    )


def cached_pages(tab: Tab) -> str:
    """The addresses and text of every page in the cache of personal pages."""
    return str(
        tab.js(
            """async () => {
              let out = '';
              for (const n of await caches.keys()) {
                if (!n.startsWith('walkthrough-pages')) continue;
                const cache = await caches.open(n);
                for (const r of await cache.keys())
                  out += r.url + '\\n' + await (await cache.match(r)).text();
              }
              return out;
            }"""
        )
    )


def device_drafts(tab: Tab) -> list[str]:
    """The teacher names of every draft kept on the device, whoever's (read from IndexedDB
    directly: the page's client shows only the signed-in person's)."""
    return list(
        tab.js(
            """() => new Promise(r => { const q = indexedDB.open('walkthrough');
                 q.onsuccess = () => {
                   const t = q.result.transaction('drafts').objectStore('drafts').getAll();
                   t.onsuccess = () => { q.result.close();
                     r(t.result.map(x => x.payload.teacher_name)); }; }; })"""
        )
    )


def test_two_accounts_on_one_shared_ipad_never_cross(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    network.plan("/api/sync/push", *["503"] * 50)  # the coach's work cannot go yet
    coach_teacher = f"Shared iPad Coach Teacher {device.engine}"
    coach_obs = record_draft(tab, network, coach_teacher, level=4)
    tab.expect_text(STATUS, "will be sent automatically")
    coach_capture = tab.url
    tab.goto(network.url + "/outbox")
    tab.expect_count(OUTBOX_ITEMS, 1)
    assert COACH_NAME in cached_pages(tab)  # the coach's own pages, kept for offline use
    sign_out(tab)

    # Signing out removed the pages naming people and kept the unsent work.
    assert cached_pages(tab) == ""
    kept = tab.js(
        """() => new Promise(r => { const q = indexedDB.open('walkthrough');
             q.onsuccess = () => {
               const t = q.result.transaction('outbox').objectStore('outbox').getAll();
               t.onsuccess = () => { q.result.close(); r(t.result.map(x => x.id)); }; }; })"""
    )
    assert kept == [coach_obs]
    shells = tab.js(
        "() => caches.keys()"
        ".then(ns => Promise.all(ns.map(n => caches.open(n).then(c => c.keys()))))"
        ".then(all => all.flat().map(r => new URL(r.url).pathname))"
    )
    assert "/capture/discourse-walkthrough/1" in shells  # the shells, naming nobody, stay

    # The principal signs in on the same tablet: the coach's work is counted, never shown
    # or sent, and the principal's own work goes under the principal's name.
    network.plan("/api/sync/push")
    sign_in(tab, network, PRINCIPAL)
    tab.expect_text("[data-sync-badge]", "1 waiting for its author to sign in")
    tab.goto(network.url + "/outbox")
    tab.expect_text("[data-others-note]", "recorded on this device by another")
    tab.expect_count(OUTBOX_ITEMS, 0)
    assert coach_teacher not in tab.text("[data-drafts-list]")
    sync_now(tab)
    assert stored(live_server, coach_teacher) == 0
    tab.goto(coach_capture)  # the coach's observation, opened by the principal
    tab.wait(lambda: tab.visible("[data-other-account]"), "the other-account notice")
    assert not tab.visible("[data-other-tab]")  # the one message that applies
    assert coach_teacher not in tab.text("h1")
    assert tab.value("#overall_notes") == ""

    principal_teacher = f"Shared iPad Principal Teacher {device.engine}"
    record_draft(tab, network, principal_teacher, level=2)
    tab.wait(lambda: stored(live_server, principal_teacher) == 1, "the principal's observation")
    assert observer_of(live_server, principal_teacher) == PRINCIPAL
    assert stored(live_server, coach_teacher) == 0
    tab.wait(lambda: outbox_size(tab) == 1, "only the coach's work left to send")
    sign_out(tab)
    # The principal's copy of what the server has went with their pages; the coach's
    # unsent work stays.
    drafts = device_drafts(tab)
    assert principal_teacher not in drafts and coach_teacher in drafts, drafts

    # The coach signs in again: their observation goes, under their name, once.
    sign_in(tab, network, COACH)
    tab.wait(lambda: stored(live_server, coach_teacher) == 1, "the coach's observation")
    assert observer_of(live_server, coach_teacher) == COACH
    tab.goto(network.url + "/outbox")
    tab.expect_count(OUTBOX_ITEMS, 0)
    assert not tab.visible("[data-others-note]")


def test_a_page_left_while_it_writes_blocks_nothing_on_the_next_page(
    device: Device, network: FaultProxy
) -> None:
    """WebKit freezes a page it keeps for "back" with its IndexedDB writes running; the next
    page's storage must not wait on them (the app aborts them when the page is hidden)."""
    tab = device.tab
    ready_offline(tab, network)
    start(tab, f"Frozen Page Teacher {device.engine}")
    # A large write still running when the page goes to another.
    tab.js(
        "() => { Walkthrough.store.put('meta', { key: 'bulk', value: 'x'.repeat(3e7) });"
        " setTimeout(() => { location.href = '/observations'; }); }"
    )
    tab.wait(lambda: tab.url.endswith("/observations"), "the observations page")
    answer = tab.js(
        "() => Promise.race([Walkthrough.store.get('meta', 'last_sync').then(() => 'answered'),"
        " new Promise(r => setTimeout(() => r('blocked'), 5000))])"
    )
    assert answer == "answered"


def test_save_or_submit_then_leaving_at_once_loses_nothing_and_doubles_nothing(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    """The page is left in the same moment as Save (or Submit) is tapped, before any of its
    writes can finish: the next page load queues and sends what the observer saved."""
    tab = device.tab
    ready_offline(tab, network)
    teachers = [f"Hasty Teacher {device.engine} {i}" for i in range(3)]
    for i, teacher in enumerate(teachers):
        tab.goto(network.url + "/observations/new")
        start(tab, teacher)
        tab.tap(f"label[for=overall_discourse-{i + 2}]")
        if i == 2:
            tab.tap_button("Review and submit")
        tab.js(
            "button => { document.querySelector(button).click();"
            " setTimeout(() => { location.href = '/observations'; }); }",
            "[data-submit]" if i == 2 else "[data-save-draft]",
        )
        tab.wait(lambda: "/capture/" not in tab.url, "a page of observations")
    tab.goto(network.url + "/outbox")
    for teacher in teachers:
        tab.wait(lambda t=teacher: stored(live_server, t) == 1, f"{teacher} on the server")
    tab.expect_count(OUTBOX_ITEMS, 0)
    for i, teacher in enumerate(teachers):
        state = live_server.text(
            "SELECT status || ' ' || revision FROM observation WHERE teacher_name = :t", t=teacher
        )
        assert state == ("submitted 1" if i == 2 else "draft 1"), teacher
    assert (
        tab.js(
            "() => Object.keys(localStorage).filter(k => k.startsWith('walkthrough-queue:')).length"
        )
        == 0
    )


def test_the_device_page_says_what_the_browser_keeps(device: Device, network: FaultProxy) -> None:
    """WebKitGTK, like Safari in a tab, has no navigator.storage: the page says so and what to
    do, rather than showing nothing."""
    tab = device.tab
    sign_in(tab, network, COACH)
    tab.goto(network.url + "/outbox")
    if tab.js("() => !!(navigator.storage && navigator.storage.estimate)"):
        tab.expect_text("[data-storage]", "MB")
    else:  # WebKitGTK 2.50, like Safari before 17
        tab.expect_text("[data-storage]", "does not say how much it stores")
    tab.expect_text("[data-storage]", "after 7 days without a visit")  # a tab, not the Home Screen
    tab.screenshot(f"device-page-{device.engine}")


def test_an_edit_after_a_sync_then_leaving_at_once_arrives_as_the_next_revision(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    """The page still holds the revision it started from when its own sync moves the draft
    on; the edit it journals then is this device's latest work, never discarded as stale."""
    tab = device.tab
    ready_offline(tab, network)
    teacher = f"Edited After Sync {device.engine}"
    record_draft(tab, network, teacher, level=2)
    tab.wait(lambda: stored(live_server, teacher) == 1, "the first save on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")
    capture_url = tab.url
    # A large write ahead of the draft's keeps it from finishing before the page is left (in
    # WebKit the page is then frozen and its writes aborted: only the journal has the edit).
    tab.js(
        "() => { Walkthrough.store.put('drafts', { id: 'bulk', owner: -1, dirty: false,"
        " payload: { teacher_name: 'x'.repeat(3e7) } }); }"
    )
    tab.js(
        "() => { const notes = document.querySelector('#overall_notes');"
        " notes.value = 'Typed after the sync';"
        " notes.dispatchEvent(new Event('input', {bubbles: true}));"
        " document.querySelector('[data-save-draft]').click();"
        " setTimeout(() => { location.href = '/observations'; }); }"
    )
    tab.wait(lambda: "/capture/" not in tab.url, "a page of observations")
    tab.goto(network.url + "/outbox")
    tab.wait(lambda: revision(live_server, teacher) == 2, "the edit on the server")
    notes = live_server.text(
        "SELECT overall_notes FROM observation WHERE teacher_name = :t", t=teacher
    )
    assert notes == "Typed after the sync"
    tab.goto(capture_url)
    tab.expect_value("#overall_notes", "Typed after the sync")


THREE_ITEMS = """\
slug: three-item
version: 1
title: Three-Item Look-Fors
description: Built in the app for a browser test.
status: draft
source:
  attribution: Written by the district for the tests.
sections:
  - key: talk
    title: Talk
    items:
      - key: partners
        kind: check
        title: Students talk with a partner
      - key: reasoning
        kind: scale
        title: Reasoning heard
        levels:
          - value: 1
            label: None
            descriptor: No reasoning is heard.
          - value: 2
            label: Some
            descriptor: A few students explain why.
          - value: 3
            label: Most
            descriptor: Most students explain why.
      - key: questions
        kind: count
        title: Student questions
"""


def test_a_rubric_built_in_the_app_is_published_and_used_offline_once(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    slug = f"three-item-{device.engine}"  # one server for both engines: a rubric each
    sign_in(tab, network, "admin@demo.walkthrough.test")
    tab.goto(network.url + "/rubrics")
    # The structured builder: a new rubric, then its three items in the form, step by step.
    expected = yaml.safe_load(THREE_ITEMS)
    tab.fill("#new-slug", slug)
    tab.fill("#new-title", expected["title"])
    tab.fill("#new-description", expected["description"])
    tab.fill("#new-attribution", expected["source"]["attribution"])
    tab.tap_button("Start the draft")
    tab.wait_for_url(f"/rubrics/{slug}/versions/1/build")

    def field(name: str, text: str) -> None:
        tab.fill(f"[id='{name}']", text)

    item = "sections[0].items[{}]"
    field("sections[0].title", "Talk")
    field("sections[0].key", "talk")
    field(item.format(0) + ".title", "Students talk with a partner")
    field(item.format(0) + ".key", "partners")
    tab.tap_button("Add a scale")
    tab.expect_text("[data-step-notice]", "Added a scale")
    field(item.format(1) + ".title", "Reasoning heard")
    field(item.format(1) + ".key", "reasoning")
    tab.tap_button("Add a level")
    tab.expect_text("[data-step-notice]", "Added a level")
    scale = expected["sections"][0]["items"][1]
    for k, level in enumerate(scale["levels"]):
        field(f"{item.format(1)}.levels[{k}].label", level["label"])
        field(f"{item.format(1)}.levels[{k}].descriptor", level["descriptor"])
    tab.tap_button("Add a tally")
    tab.expect_text("[data-step-notice]", "Added a tally")
    field(item.format(2) + ".title", "Student questions")
    field(item.format(2) + ".key", "questions")
    assert (
        tab.value(f"[id='{item.format(1)}.levels[2].descriptor']") == "Most students explain why."
    )
    tab.screenshot(f"builder-form-{device.engine}")  # at iPad size, 820 x 1180
    tab.tap_button("Save the draft")
    tab.wait_for_url(f"/rubrics/{slug}/versions/1?saved=1")
    tab.expect_text("[data-notice]", "Saved the draft.")
    # What the form made is the rubric as written in the YAML format, hash for hash.
    made = live_server.text(
        "SELECT content_hash FROM rubric_version WHERE slug = :s AND version = 1", s=slug
    )
    written = RubricDefinition.model_validate(
        {**expected, "slug": slug, "sections": [{**expected["sections"][0]}]}
    )
    assert made == written.content_hash()
    tab.tap_link("Preview as observers see it")
    tab.wait_for_url("/preview")
    tab.expect_text("[data-preview]", "Preview of Three-Item Look-Fors v1 (a draft)")
    assert tab.count("label[for^=reasoning-]") >= 3
    tab.screenshot(f"builder-preview-{device.engine}")
    tab.goto(f"{network.url}/rubrics/{slug}/versions/1/publish")
    tab.expect_text("h1", "Publish Three-Item Look-Fors v1?")
    tab.tap_button("Publish version 1")
    tab.expect_text("[data-notice]", "Published Three-Item Look-Fors v1")
    sign_out(tab)

    ready_offline(tab, network)  # the coach's tablet learns of the new version online
    # The new version's worker has finished installing and taken over: a page already in its
    # cache is not enough (going offline mid-install would fail the install, and the worker
    # still in charge has no copy of the new capture page).
    tab.wait_js(
        "path => navigator.serviceWorker.getRegistration().then(r => !!r && !r.installing"
        " && !r.waiting && !!r.active && r.active.state === 'activated')"
        ".then(done => done && caches.match(path).then(m => !!m))",
        f"/capture/{slug}/1",
        timeout_s=60,
    )
    network.offline()
    teacher = f"Built Rubric Teacher {device.engine}"
    tab.goto(network.url + "/observations/new")
    tab.fill("#teacher", teacher)
    tab.tap(f"input[name=rubric][value='{slug}:1']")
    tab.tap_button("Start observing")
    tab.wait_for_url(f"/capture/{slug}/1#")
    tab.tap("label[for=reasoning-3]")
    tab.tap_button("One more: Student questions")
    tab.tap_button("Review and submit")
    tab.tap_button("Submit observation")
    tab.expect_text(STATUS, "Submitted and saved on this device")
    assert stored(live_server, teacher) == 0

    network.online()
    tab.goto(network.url + "/outbox")
    tab.wait(lambda: stored(live_server, teacher) == 1, "the observation on the server")
    sync_now(tab)
    assert stored(live_server, teacher) == 1
    rubric = live_server.text(
        "SELECT r.slug || ' v' || r.version || ' ' || o.status FROM observation o "
        "JOIN rubric_version r ON r.id = o.rubric_version_id WHERE o.teacher_name = :t",
        t=teacher,
    )
    assert rubric == f"{slug} v1 submitted"


def edit_page_visited_online(
    tab: Tab, network: FaultProxy, live_server: LiveServer, teacher: str
) -> str:
    """A draft saved and sent (level 3), then its edit page visited online at revision 1, so
    the device keeps that copy of the page; returns its address."""
    ready_offline(tab, network)
    obs_id = record_draft(tab, network, teacher, level=3)
    tab.wait(lambda: stored(live_server, teacher) == 1, "the first save on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")
    edit_url = f"{network.url}/observations/{obs_id}/edit"
    tab.goto(edit_url)
    tab.expect_checked("#overall_discourse-3")
    return edit_url


def test_an_older_cached_copy_of_an_edit_page_never_undoes_what_was_sent(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    """Offline, the device's cache gives back the edit page as it was first visited; the
    device's own later (sent) state wins over it, so the next save does not revert it."""
    import json

    tab = device.tab
    teacher = f"Cached Page Teacher {device.engine}"
    edit_url = edit_page_visited_online(tab, network, live_server, teacher)
    tab.tap("label[for=overall_discourse-5]")
    tab.tap_button("Save draft")
    tab.wait(lambda: revision(live_server, teacher) == 2, "the edit on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")

    network.offline()
    tab.goto(network.url + "/outbox")
    tab.goto(edit_url)  # the cached copy, which still says revision 1
    tab.expect_text("h1", teacher)
    tab.expect_checked("#overall_discourse-5")
    network.online()
    tab.tap_button("Save draft")
    tab.expect_text(STATUS, "Saved")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")
    values = json.loads(
        live_server.text('SELECT "values" FROM observation WHERE teacher_name = :t', t=teacher)
    )
    assert values["overall_discourse"]["value"] == 5


def test_an_older_cached_edit_page_shows_what_this_device_submitted(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    """Submitted from its edit page, an observation's draft stays on the device (nothing to
    send): offline, the cached copy of that page from before the submit shows the submitted
    state, not revision 1, and an amendment made there arrives on top of it."""
    tab = device.tab
    teacher = f"Cached Submit Teacher {device.engine}"
    edit_url = edit_page_visited_online(tab, network, live_server, teacher)
    tab.tap("label[for=overall_discourse-5]")
    tab.tap_button("Review and submit")
    tab.tap_button("Submit observation")

    def state() -> str:
        return live_server.text(
            "SELECT status || ' ' || revision FROM observation WHERE teacher_name = :t", t=teacher
        )

    tab.wait(lambda: state() == "submitted 2", "the submit on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")

    network.offline()
    tab.goto(network.url + "/outbox")
    tab.goto(edit_url)  # the cached copy, which still says draft, revision 1
    tab.expect_text("h1", teacher)
    tab.expect_checked("#overall_discourse-5")
    tab.expect_text("[data-status]", "Submitted")
    tab.tap("label[for=overall_discourse-4]")
    tab.tap_button("Review the amendment")
    tab.tap_button("Submit the amendment")
    network.online()
    tab.goto(network.url + "/outbox")
    tab.wait(lambda: state() == "submitted 3", "the amendment on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")
    conflicts = live_server.count(
        "SELECT count(*) FROM observation_conflict c JOIN observation o "
        "ON o.id = c.observation_id WHERE o.teacher_name = :t",
        t=teacher,
    )
    assert conflicts == 0
    values = live_server.text('SELECT "values" FROM observation WHERE teacher_name = :t', t=teacher)
    assert '"value": 4' in values or '"value":4' in values


def test_after_a_sign_in_expires_the_next_person_removes_what_the_last_one_left(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    """The sign-in page forgets who was signed in; the next person to sign in on the tablet
    still removes the last one's copies of what the server has (never their unsent work)."""
    tab = device.tab
    ready_offline(tab, network)
    sent = f"Expired Sign-In Sent Teacher {device.engine}"
    record_draft(tab, network, sent, level=2)
    tab.wait(lambda: stored(live_server, sent) == 1, "the draft on the server")
    tab.wait(lambda: outbox_size(tab) == 0, "an empty outbox")
    network.plan("/api/sync/push", *["503"] * 50)
    unsent = f"Expired Sign-In Unsent Teacher {device.engine}"
    record_draft(tab, network, unsent, level=3)
    tab.expect_text(STATUS, "will be sent automatically")

    assert sent in device_drafts(tab) and unsent in device_drafts(tab)
    tab.expire_session()  # the coach's sign-in ran out; the tablet goes to the sign-in page
    network.plan("/api/sync/push")
    sign_in(tab, network, PRINCIPAL)
    tab.goto(network.url + "/outbox")
    tab.wait(lambda: sent not in device_drafts(tab), "the coach's sent copy removed")
    assert unsent in device_drafts(tab)  # the coach's unsent work stays for the coach
