"""The public agreement calculator: POST /api/agreement and the CSV page."""

import pytest
from fastapi.testclient import TestClient

from app.calibration.routes import calculator_limit
from tests.helpers import World, csrf_from, login

GOOD = {
    "categories": [1, 2, 3, 4, 5],
    "level": "ordinal",
    "ratings": [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5],
    ],
    "raters": ["Ana", "Ben", "Cy"],
    "master": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5],
    "resamples": 200,
}


@pytest.fixture(autouse=True)
def _fresh_limit() -> None:
    calculator_limit._hits.clear()


def test_calculator_answers_every_statistic(client: TestClient) -> None:
    response = client.post("/api/agreement", json=GOOD)  # no sign-in, no CSRF token: stateless
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_raters"], body["n_units"]) == (3, 10)
    assert 0 < body["krippendorff_alpha"]["value"] <= 1
    low, high = body["krippendorff_alpha"]["ci95"]
    assert low <= body["krippendorff_alpha"]["value"] <= high
    for key in ("fleiss_kappa", "gwet_ac1", "gwet_ac2"):
        assert body[key]["value"] is not None and body[key]["interpretation"]
    assert [p["raters"] for p in body["pairwise"]] == [["Ana", "Ben"], ["Ana", "Cy"], ["Ben", "Cy"]]
    assert {
        "n",
        "exact_agreement",
        "cohen_kappa",
        "weighted_kappa_linear",
        "weighted_kappa_quadratic",
    } <= set(body["pairwise"][0])
    assert body["vs_master"][1] == {
        "rater": "Ben",
        "n": 10,
        "exact_agreement": 1.0,
        "within_one_agreement": 1.0,
        "weighted_kappa_quadratic": 1.0,
    }
    assert body["units"][0]["distribution"] == {"1": 2, "2": 0, "3": 0, "4": 0, "5": 0}
    assert client.post("/api/agreement", json=GOOD).json() == body  # seeded: reproducible


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ratings": [[1, 2], [1, 9]]}, "Rater 2, unit 2: 9 is not one of the categories"),
        ({"ratings": [[1, 2, 3], [1, 2]]}, "Rater 2 has 2 ratings but rater 1 has 3"),
        ({"ratings": [[1, 2, 3]]}, "ratings: List should have at least 2 items"),
        ({"level": "fancy"}, "level: Input should be 'nominal', 'ordinal' or 'interval'"),
        ({"categories": [1]}, "categories: List should have at least 2 items"),
        ({"master": [1, 2]}, "The master has 2 values but there are 10 units."),
        ({"raters": ["only one"]}, "1 rater names for 3 raters."),
        ({"ratings": [[1] * 1000] * 201}, "At most 200,000 ratings"),
    ],
)
def test_bad_requests_get_422_saying_what_is_wrong(
    client: TestClient, change: dict, message: str
) -> None:  # type: ignore[type-arg]
    response = client.post("/api/agreement", json={**GOOD, **change})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_not_json_and_too_large(client: TestClient) -> None:
    response = client.post(
        "/api/agreement", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    big = client.post(
        "/api/agreement",
        content=b" " * (1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413


def test_calculator_is_rate_limited(client: TestClient) -> None:
    statuses = [
        client.post("/api/agreement", json={**GOOD, "resamples": 0}).status_code for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    limited = client.post("/api/agreement", json=GOOD)
    assert "at most 30 requests a minute" in limited.json()["detail"]
    assert int(limited.headers["retry-after"]) >= 1


CSV = "unit,Ana,Ben,Cy,master\r\nQ1,1,1,,1\r\nQ2,2,2,3,2\r\nQ3,3,3,3,3\r\nQ4,4,2,4,4\r\n"


def test_csv_page_shows_the_report(client: TestClient) -> None:
    token = csrf_from(client, "/agreement")
    response = client.post(
        "/agreement",
        data={"csrf_token": token, "categories": "1, 2, 3, 4, 5", "level": "ordinal"},
        files={"file": ("ratings.csv", CSV.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert "3 raters, 4 units" in response.text
    assert 'data-stat="alpha"' in response.text
    assert "Agreement with the master scores" in response.text


def test_csv_page_names_the_bad_row_and_column(client: TestClient) -> None:
    token = csrf_from(client, "/agreement")
    bad = CSV.replace("Q3,3,3,3,3", "Q3,3,seven,3,3")
    response = client.post(
        "/agreement",
        data={"csrf_token": token, "categories": "1, 2, 3, 4, 5", "level": "ordinal"},
        files={"file": ("ratings.csv", bad.encode(), "text/csv")},
    )
    assert response.status_code == 422
    assert (
        "Row 4, column &#39;Ben&#39;: &#39;seven&#39; is not one of the categories" in response.text
    )
    ragged = client.post(
        "/agreement",
        data={"csrf_token": token, "categories": "1,2,3", "level": "ordinal"},
        files={"file": ("r.csv", b"Ana,Ben\n1,2,3\n", "text/csv")},
    )
    assert "Row 2 has 3 cells but the header has 2." in ragged.text


def test_the_api_returns_coded_notes_for_the_prevalence_case(client: TestClient) -> None:
    ratings = [[3] * 9 for _ in range(8)] + [[3, 3, 2, 3, 3, 3, 3, 2, 3]]
    body = client.post(
        "/api/agreement", json={"ratings": ratings, "categories": [1, 2, 3, 4, 5]}
    ).json()
    codes = {n["code"] for n in body["notes"]}
    assert "prevalence" in codes
    assert all(set(n) == {"code", "message"} for n in body["notes"])
    assert body["krippendorff_alpha"]["verdict"]["minimum"] == 0.8


def test_the_calculator_keeps_the_navigation_of_a_signed_in_visitor(
    client: TestClient, world: World
) -> None:
    assert 'aria-label="Main"' not in client.get("/agreement").text  # public, signed out
    login(client, world.observer)
    assert 'aria-label="Main"' in client.get("/agreement").text
