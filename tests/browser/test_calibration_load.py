"""Load: 60 raters join one session and submit every rating at once over real HTTP (uvicorn)."""

import re
import threading

import httpx

from app.demo import DEMO_PASSWORD
from tests.browser.conftest import LiveServer

ITEMS = ["questioning", "explaining_thinking", "sources_of_ideas", "responsibility_for_learning"]


def _csrf(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_sixty_raters_over_http_lose_nothing(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as facilitator:
        token = _csrf(facilitator, "/login")
        facilitator.post(
            "/login",
            data={
                "email": "facilitator@demo.walkthrough.test",
                "password": DEMO_PASSWORD,
                "csrf_token": token,
            },
        )
        token = _csrf(facilitator, "/calibration")
        rubric = re.search(
            r'<option value="(\d+)"[^>]*>Math-Talk Learning Community v1',
            facilitator.get("/calibration").text,
        )
        assert rubric
        created = facilitator.post(
            "/calibration",
            data={
                "csrf_token": token,
                "title": "Load test",
                "rubric_version_id": rubric.group(1),
                "stimulus_title": "Excerpt",
                "kind": "transcript",
                "transcript": "T: Why?\nS: Because.",
            },
        )
        session_id = int(created.headers["location"].rsplit("/", 1)[1])
        code = re.search(
            r"data-code>(\w+)<", facilitator.get(f"/calibration/{session_id}").text
        ).group(1)  # type: ignore[union-attr]
        stimulus = int(
            re.search(
                r'name="master-(\d+)-questioning"',
                facilitator.get(f"/calibration/{session_id}").text,
            ).group(1)
        )  # type: ignore[union-attr]

        raters = []
        for i in range(60):
            client = httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=60)
            join_token = _csrf(client, "/join")
            assert (
                client.post(
                    "/join", data={"csrf_token": join_token, "code": code, "name": f"Load {i:02d}"}
                ).status_code
                == 303
            )
            raters.append((client, join_token))

        barrier = threading.Barrier(60)
        failures: list[str] = []

        def rate(i: int) -> None:
            client, csrf = raters[i]
            body = [
                {"stimulus_id": stimulus, "item_key": key, "value": (i + k) % 4}
                for k, key in enumerate(ITEMS)
            ]
            barrier.wait()
            response = client.post(
                f"/api/calibration/{code}/ratings", json=body, headers={"X-CSRF-Token": csrf}
            )
            if response.status_code != 200 or response.json() != {"saved": 4}:
                failures.append(f"{i}: {response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=rate, args=(i,)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for client, _ in raters:
            client.close()
        assert failures == []
        assert (
            live_server.count("SELECT count(*) FROM rating WHERE session_id = :s", s=session_id)
            == 240
        )
        report = facilitator.get(f"/api/calibration/sessions/{session_id}/report").json()["latest"]
        assert len(report["raters"]) == 60
        for k, key in enumerate(ITEMS):
            assert report["items"][key]["distribution"] == {"0": 15, "1": 15, "2": 15, "3": 15}, key
