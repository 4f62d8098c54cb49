"""The participation map at tablet size (820 x 1180), offline, in Chromium and in WebKitGTK (the
engine of every iPad browser): lay out 24 markers, log 60 contributions with two taps each (and
a teacher move), undo a wrong tap, reload with the server out of reach, submit, sync: every
event arrives once, in order, with its marker and talk type; then the observation page shows
the same figures."""

import json
import re
import uuid

import pytest

from tests.browser.devices import Device, FaultProxy, Tab
from tests.browser.helpers import LiveServer
from tests.browser.test_journeys import STATUS, ready_offline, stored

pytestmark = pytest.mark.browser
TALK = ["explains", "question", "builds", "short"]
# Who speaks, contribution by contribution: a few students often, some once, most never.
SPEAKERS = [1, 2, 3, 1, 5, 8, 1, 2, 13, 1, 2, 3, 21, 1, 7, 2, 1, 3, 9, 1] * 3
HEADLINE = "60 contributions; 9 of 24 students spoke at least once (38%)."
MARKERS = ".p-marker:not(.p-teacher)"


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
    tab.tap_button("Undo last")  # ...taken back
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
