"""The participation map at tablet size (820 x 1180), offline, in Chromium and in WebKitGTK (the
engine of every iPad browser): lay out 24 markers, log 60 contributions with two taps each (and
a teacher move), undo a wrong tap, reload with the server out of reach, submit, sync: every
event arrives once, in order, with its marker and talk type; then the observation page shows
the same figures."""

import json
import re
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.devices import Device, FaultProxy, Tab
from tests.browser.helpers import LiveServer, sign_in
from tests.browser.test_journeys import STATUS, ready_offline, stored

pytestmark = pytest.mark.browser
TALK = ["explains", "question", "builds", "short"]
# Who speaks, contribution by contribution: a few students often, some once, most never.
SPEAKERS = [1, 2, 3, 1, 5, 8, 1, 2, 13, 1, 2, 3, 21, 1, 7, 2, 1, 3, 9, 1] * 3
HEADLINE = "60 contributions; 9 of 24 students spoke at least once (38%)."
MARKERS = ".p-marker:not(.p-teacher)"
COACH = "coach@demo.walkthrough.test"
ADMIN = "admin@demo.walkthrough.test"


def _tap(tab: Tab, marker: int, talk: str) -> None:
    tab.tap(f".p-marker[data-marker='{marker}']")
    tab.tap(f"[data-p-talk-buttons] [data-talk='{talk}']")


def _count(marker: int) -> str:
    return f".p-marker[data-marker='{marker}'] [data-p-count]"


def test_sixty_contributions_logged_offline_arrive_once(
    device: Device, network: FaultProxy, live_server: LiveServer
) -> None:
    tab = device.tab
    ready_offline(tab, network)
    teacher = f"Participation Map Teacher {device.engine}"
    tab.fill("#teacher", teacher)
    tab.tap("input[name=rubric][value='who-talks:1']")
    tab.tap_button("Start observing")
    tab.wait_for_url("/capture/who-talks/1#")
    obs_id = tab.url.rsplit("#", 1)[1]
    network.offline()

    tab.expect_value("[data-p-seats]", "24")
    tab.tap_button("Lay out the map")
    tab.expect_count(MARKERS, 24)
    expected = []
    for i, marker in enumerate(SPEAKERS):
        talk = TALK[i % 4]
        _tap(tab, marker, talk)
        expected.append((marker, talk))
        if i == 29:  # the teacher presses for reasoning, mid-lesson
            _tap(tab, 0, "presses")
            expected.append((0, "presses"))
    _tap(tab, 24, "short")  # a wrong tap...
    tab.tap_button("Undo last contribution")  # ...taken back
    tab.expect_text("[data-p-last]", "Took back student 24's Short answer")
    tab.expect_text(_count(1), str(SPEAKERS.count(1)))
    tab.expect_text(_count(24), "0")
    tab.expect_text("[data-p-summary] [data-p-headline]", HEADLINE)

    tab.reload()  # right after the last tap, with the server out of reach
    tab.expect_count(MARKERS, 24)
    tab.expect_text(_count(1), str(SPEAKERS.count(1)))
    tab.expect_text(".p-marker.p-teacher [data-p-count]", "1")
    tab.expect_text("[data-p-summary] [data-p-headline]", HEADLINE)
    tab.js("() => document.querySelector('[data-participation-item]').scrollIntoView()")
    tab.screenshot(f"participation-map-offline-{device.engine}")

    tab.fill("#pattern-text", "Five students made most of the talk.")
    tab.tap_button("Review and submit")
    tab.tap_button("Submit observation")
    tab.expect_text(STATUS, "Submitted and saved on this device")
    assert stored(live_server, teacher) == 0

    network.online()
    tab.reload()  # a page load sends what waits
    tab.wait(lambda: stored(live_server, teacher) == 1, "the observation on the server")
    tab.wait_js("() => Walkthrough.store.all('outbox').then(r => r.length === 0)")
    assert live_server.observation_ids(teacher) == [uuid.UUID(obs_id)]  # once, the device's id
    values = json.loads(
        live_server.text('SELECT "values" FROM observation WHERE teacher_name = :t', t=teacher)
    )
    talk_map = values["talk_map"]["value"]
    assert talk_map["markers"] == 24
    assert [(e["marker"], e["talk"]) for e in talk_map["events"]] == expected
    seconds = [e["at"] for e in talk_map["events"]]
    assert seconds == sorted(seconds)

    tab.goto(f"{network.url}/observations/{obs_id}")
    tab.expect_text("[data-participation-summary] [data-p-headline]", HEADLINE)
    assert re.fullmatch(r"0\.\d\d", tab.text("[data-participation-summary] [data-measure='gini']"))
    tab.screenshot(f"participation-map-observation-{device.engine}")


GROUPED = """\
slug: talk-by-table
version: 1
title: Talk by Table
description: Who talks, by table group.
status: draft
source:
  attribution: A district's math team.
sections:
  - key: talk
    title: Who talks
    items:
      - key: talk_map
        kind: participation
        title: Participation map
        talk_types:
          - {key: explains, label: Explains reasoning}
          - {key: short, label: Short answer}
        groups:
          - {key: front, label: Front tables}
          - {key: back, label: Back tables}
        groups_meaning: Where the student sits, front half or back half of the room.
        seats: 8
        per_row: 4
"""


def _publish(server: LiveServer, body: str, slug: str) -> None:
    """An admin's script publishes a rubric version through the API (a personal token)."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as web:
        login = web.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
        web.post(
            "/login",
            data={"email": ADMIN, "password": DEMO_PASSWORD, "csrf_token": csrf},
        )
        page = web.get("/account/tokens").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        made = web.post("/account/tokens", data={"csrf_token": csrf, "name": "map"}).text
        token = re.search(r"data-new-token>(wt_[^<]+)<", made).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as script:
        draft = script.post(
            "/api/rubrics/drafts", content=body, headers={"Content-Type": "application/yaml"}
        )
        assert draft.status_code == 201, draft.text
        published = script.post(f"/api/rubrics/{slug}/versions/1/publish")
        assert published.status_code == 200, published.text


def test_grouping_labels_are_set_on_markers_and_shared_by_group(
    page: Page, live_server: LiveServer
) -> None:
    """Chromium: a district's grouping labels, set on markers in the lesson, give each group's
    share of students and of contributions beside the map."""
    _publish(live_server, GROUPED, "talk-by-table")
    sign_in(page, live_server.url, COACH, DEMO_PASSWORD)
    page.goto(live_server.url + "/observations/new")
    page.get_by_label("Teacher").fill("Grouped Map Teacher")
    page.get_by_text("Talk by Table").tap()
    page.get_by_role("button", name="Start observing").tap()
    page.wait_for_url("**/capture/talk-by-table/1#*")
    expect(page.locator(".p-privacy")).to_contain_text("Where the student sits")
    page.get_by_role("button", name="Lay out the map").tap()
    expect(page.locator(".p-marker")).to_have_count(8)
    for marker in (1, 2):  # the front tables' two students
        page.locator(f".p-marker[data-marker='{marker}']").tap()
        page.locator("[data-p-group-buttons] [data-group='front']").tap()
        expect(page.locator("[data-group='front']")).to_have_attribute("aria-pressed", "true")
        expect(page.locator(f".p-marker[data-marker='{marker}'] .p-group")).to_have_text(
            "Front tables"
        )
        page.get_by_role("button", name="Cancel").tap()
    for marker, talk in ((1, "explains"), (1, "short"), (2, "short"), (5, "explains")):
        page.locator(f".p-marker[data-marker='{marker}']").tap()
        page.locator(f"[data-p-talk-buttons] [data-talk='{talk}']").tap()
    groups = page.locator("[data-p-summary] table").nth(1)
    expect(groups.locator("tr", has_text="Front tables")).to_contain_text("25% (2)")
    expect(groups.locator("tr", has_text="Front tables")).to_contain_text("75% (3)")
    expect(groups.locator("tr", has_text="No label")).to_contain_text("75% (6)")
    page.reload()
    expect(page.locator(".p-marker[data-marker='2'] .p-group")).to_have_text("Front tables")
    expect(groups.locator("tr", has_text="No label")).to_contain_text("25% (1)")
