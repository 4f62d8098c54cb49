"""What the room reads at reveal: the report page (one body for everyone, each viewer marked),
the raters' one-line reasons, the rater x item grid with the master, the excerpt with the
rationale's lines linked; and the facilitator's excerpts, editable until the first rating."""

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.calibration import routes, service
from tests.calibration.helpers import create_session, first_stimulus_id, join_as_guest, rate_as
from tests.helpers import World, login

ITEMS = ("questioning", "explaining_thinking", "sources_of_ideas", "responsibility_for_learning")


def _room(client: TestClient, world: World, app: FastAPI) -> tuple[str, int, int, dict]:
    """A session with master scores, two guests (Ana, Ben) who rated, not yet revealed."""
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    client.post(
        f"/calibration/{calibration.id}/master",
        data={
            "csrf_token": token,
            **{f"master-{sid}-{k}": "2" for k in ITEMS},
            f"rationale-{sid}-questioning": "The teacher asks why on line 1 and lines 2-3.",
        },
    )
    guests = {}
    for name, level in (("Ana", 2), ("Ben", 3)):
        guests[name] = join_as_guest(app, calibration.code, name)
        rate_as(*guests[name], calibration.code, {k: level for k in ITEMS}, sid)
    return token, calibration.id or 0, sid, {"code": calibration.code, **guests}


def _reveal(client: TestClient, token: str, session_id: int) -> None:
    response = client.post(
        f"/calibration/{session_id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    assert response.status_code == 303, response.text


def test_each_guest_sees_themselves_and_nobody_elses_name_even_when_first_to_open(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token, session_id, _sid, room = _room(client, world, app)
    _reveal(client, token, session_id)
    # Whoever opens the report first, the body kept for the room holds no one's name.
    service._reports.clear()
    routes._BODIES.clear()
    code = room["code"]
    ana_page = room["Ana"][0].get(f"/c/{code}").text
    ben_page = room["Ben"][0].get(f"/c/{code}").text
    assert "You · Ana" in ana_page and "Ben" not in ana_page
    assert "You · Ben" in ben_page and "Ana" not in ben_page
    assert 'data-r="Rater 1" data-you>You · Ana<' in ana_page
    assert 'data-r="Rater 1">Rater 1<' in ben_page  # Ana, anonymised for Ben
    facilitator_page = client.get(f"/calibration/{session_id}/report").text
    assert "Ana" in facilitator_page and "Ben" in facilitator_page
    assert "You ·" not in facilitator_page


def test_the_grid_marks_the_master_and_the_chart_marks_its_level(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token, session_id, _sid, room = _room(client, world, app)
    _reveal(client, token, session_id)
    page = room["Ana"][0].get(f"/c/{room['code']}").text
    grid = page[page.index("data-grid>") : page.index("</table>", page.index("data-grid>"))]
    assert "data-master-row" in grid
    master_row = re.search(r"data-master-row>(.*?)</tr>", grid)
    assert master_row and master_row.group(1).count("<td>2</td>") == len(ITEMS)
    # Ana rated 2 everywhere (= master), Ben 3 (one level away).
    assert grid.count('<td class="h">2✓</td>') == len(ITEMS)
    assert grid.count('<td class="n">3</td>') == len(ITEMS)
    # Each item's chart: one bar per excerpt, the master's level outlined and named.
    assert page.count("data-master-mark") == len(ITEMS)
    assert page.count("master: 2 ") == len(ITEMS)
    assert 'class="legend"' in page


def test_rationale_line_references_link_to_the_excerpt_beside_the_report(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token, session_id, sid, room = _room(client, world, app)
    _reveal(client, token, session_id)
    page = room["Ben"][0].get(f"/c/{room['code']}").text
    assert f'<li id="x{sid}-l1">T: What do you notice?</li>' in page
    assert f'<a href="#x{sid}-l1" data-line-link>line 1</a>' in page
    assert f'<a href="#x{sid}-l2" data-line-link>lines 2-3</a>' in page
    # A line the excerpt does not have stays text.
    assert routes.link_lines("see line 9", _stimulus(app, sid)) == "see line 9"
    assert "&lt;b&gt;" in routes.link_lines("<b> line 1", _stimulus(app, sid))


def _stimulus(app: FastAPI, sid: int):  # type: ignore[no-untyped-def]
    from sqlmodel import Session

    from app.calibration.models import Stimulus

    with Session(app.state.engine) as s:
        found = s.get(Stimulus, sid)
        assert found is not None
        return found


def test_a_reason_is_kept_with_its_rating_and_shown_at_reveal_anonymised(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token, session_id, sid, room = _room(client, world, app)
    code = room["code"]
    ana, ana_token = room["Ana"]
    saved = ana.post(
        f"/api/calibration/{code}/ratings",
        json=[
            {
                "stimulus_id": sid,
                "item_key": "questioning",
                "value": 2,
                "reason": "  Only  one probe. ",
            }
        ],
        headers={"X-CSRF-Token": ana_token},
    )
    assert saved.status_code == 200
    # A level changed without a reason keeps the reason; too long a reason is refused.
    ana.post(
        f"/api/calibration/{code}/ratings",
        json=[{"stimulus_id": sid, "item_key": "questioning", "value": 2}],
        headers={"X-CSRF-Token": ana_token},
    )
    mine = ana.get(f"/api/calibration/{code}/ratings").json()["ratings"]
    assert {
        "stimulus_id": sid,
        "item_key": "questioning",
        "value": 2,
        "reason": "Only one probe.",
    } in mine
    too_long = ana.post(
        f"/api/calibration/{code}/ratings",
        json=[{"stimulus_id": sid, "item_key": "questioning", "value": 2, "reason": "x" * 201}],
        headers={"X-CSRF-Token": ana_token},
    )
    assert too_long.status_code == 422
    # Without JavaScript, the form's "why" field goes with its level.
    ben, ben_token = room["Ben"]
    form = ben.post(
        f"/c/{code}/rate",
        data={
            "csrf_token": ben_token,
            f"r-{sid}-questioning": "3",
            f"why-{sid}-questioning": "They justify.",
        },
    )
    assert form.status_code == 303
    _reveal(client, token, session_id)
    ben_page = ben.get(f"/c/{code}").text
    reasons = ben_page[ben_page.index("data-reasons") :]
    assert "Only one probe." in reasons and "They justify." in reasons
    assert "Ana" not in ben_page and "You · Ben" in reasons[: reasons.index("</ul>")]
    report = ben.get(f"/api/calibration/{code}/report").json()
    assert {
        "rater": "Rater 1",
        "stimulus_id": sid,
        "value": 2,
        "reason": "Only one probe.",
    } in report["latest"]["items"]["questioning"]["reasons"]
    names = client.get(f"/calibration/{session_id}/report").text
    assert re.search(
        r"Only one probe\. <span class=\"hint\">— <span class=\"rater\" data-r=\"Ana\">Ana", names
    )


def test_the_page_follows_a_late_rating(client: TestClient, world: World, app: FastAPI) -> None:
    token, session_id, sid, room = _room(client, world, app)
    _reveal(client, token, session_id)
    code = room["code"]
    before = room["Ana"][0].get(f"/c/{code}").text
    assert "n=2" in before
    client.post(f"/calibration/{session_id}/status", data={"csrf_token": token, "action": "reopen"})
    cy = join_as_guest(app, code, "Cy")
    rate_as(*cy, code, {k: 1 for k in ITEMS}, sid)
    _reveal(client, token, session_id)
    after = room["Ana"][0].get(f"/c/{code}").text
    assert "n=3" in after and "n=2" not in after


def test_the_board_shows_which_excerpt_each_rater_is_on(
    client: TestClient, world: World, app: FastAPI
) -> None:
    _token, session_id, _sid, room = _room(client, world, app)
    board = client.get(f"/calibration/{session_id}", headers={"HX-Request": "true"}).text
    row = re.search(r'<tr data-rater="Ana">(.*?)</tr>', board, re.S)
    assert row and "Grade 4 fractions" in row.group(1) and "4 / 4" in row.group(1)
    join_as_guest(app, room["code"], "Dee")
    board = client.get(f"/calibration/{session_id}", headers={"HX-Request": "true"}).text
    row = re.search(r'<tr data-rater="Dee">(.*?)</tr>', board, re.S)
    assert row and "not started" in row.group(1)
    # The polled board keeps the count in an open reveal confirmation current (out of band).
    assert '<span id="rated-count" hx-swap-oob="true">2 of 3</span>' in board


def test_excerpts_can_be_corrected_or_removed_until_the_first_rating(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    fields = {"csrf_token": token, "stimulus_title": "Grade 4, corrected", "kind": "transcript"}
    fixed = client.post(
        f"/calibration/{calibration.id}/stimuli/{sid}",
        data={**fields, "transcript": "T: Fixed line."},
    )
    assert fixed.status_code == 303
    bad = client.post(
        f"/calibration/{calibration.id}/stimuli/{sid}", data={**fields, "transcript": " "}
    )
    assert bad.status_code == 422 and "Paste the transcript" in bad.text
    # The only excerpt cannot go; a second one can.
    only = client.post(
        f"/calibration/{calibration.id}/stimuli/{sid}/remove", data={"csrf_token": token}
    )
    assert only.status_code == 409 and "at least one excerpt" in only.text
    client.post(
        f"/calibration/{calibration.id}/stimuli",
        data={**fields, "stimulus_title": "Second", "transcript": "T: Two."},
    )
    page = client.get(f"/calibration/{calibration.id}").text
    second = int(re.findall(r'data-stimulus="(\d+)"', page)[1])
    assert (
        client.post(
            f"/calibration/{calibration.id}/stimuli/{second}/remove", data={"csrf_token": token}
        ).status_code
        == 303
    )
    page = client.get(f"/calibration/{calibration.id}").text
    assert "Grade 4, corrected" in page and "Second" not in page and "Edit or remove" in page
    # Another session's excerpt is not found here.
    assert (
        client.post(
            f"/calibration/{calibration.id}/stimuli/999999", data={**fields, "transcript": "x"}
        ).status_code
        == 404
    )
    # After the first rating, everyone must rate the same text.
    ana = join_as_guest(app, calibration.code, "Ana")
    rate_as(*ana, calibration.code, {"questioning": 2}, sid)
    late = client.post(
        f"/calibration/{calibration.id}/stimuli/{sid}", data={**fields, "transcript": "T: Changed."}
    )
    assert late.status_code == 409 and "once someone has rated" in late.text
    added = client.post(
        f"/calibration/{calibration.id}/stimuli", data={**fields, "transcript": "T: Three."}
    )
    assert added.status_code == 409
    page = client.get(f"/calibration/{calibration.id}").text
    assert "data-excerpts-locked" in page and "Edit or remove" not in page
    assert ana[0].get(f"/c/{calibration.code}").text.count("T: Fixed line.") == 1


def test_raters_with_the_same_name_keep_their_own_rows_in_the_heat_map(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    for name, level in (("Maria", 0), ("Maria", 3), ("Cy", 1)):
        rate_as(
            *join_as_guest(app, calibration.code, name),
            calibration.code,
            {"questioning": level, "explaining_thinking": level},
            sid,
        )
    _reveal(client, token, calibration.id or 0)
    page = client.get(f"/calibration/{calibration.id}/report").text
    heat = page[page.index('class="chart heatmap"') :]
    heat = heat[: heat.index("</svg>")]
    assert heat.count('data-r="Maria">Maria<') == 2 and heat.count('data-r="Cy">Cy<') == 1
    assert heat.count(">1.00</text>") == 3  # one diagonal cell per rater, none lost


def test_a_json_batch_naming_a_rating_twice_keeps_the_last(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guest, gtoken = join_as_guest(app, calibration.code, "Ana")
    saved = guest.post(
        f"/api/calibration/{calibration.code}/ratings",
        json=[
            {"stimulus_id": sid, "item_key": "questioning", "value": 1},
            {"stimulus_id": sid, "item_key": "questioning", "value": 2, "reason": "Second look."},
        ],
        headers={"X-CSRF-Token": gtoken},
    )
    assert saved.status_code == 200, saved.text
    mine = guest.get(f"/api/calibration/{calibration.code}/ratings").json()["ratings"]
    assert mine == [
        {"stimulus_id": sid, "item_key": "questioning", "value": 2, "reason": "Second look."}
    ]
