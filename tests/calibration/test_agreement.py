"""Agreement statistics against published worked examples and reference packages.

Reference packages (test dependencies): krippendorff (alpha), statsmodels (Cohen's and
Fleiss' kappa), irrCAC (Gwet's AC1/AC2, a port of Gwet's own R package).
"""

import random

import krippendorff
import numpy as np
import pandas as pd
import pytest
from irrCAC.raw import CAC
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohen
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from app.calibration import agreement as ag
from app.calibration.agreement import AgreementInputError, Ratings

TOL = 1e-9
N = None

# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
# Communication, University of Pennsylvania, section C ("ordinal", "interval" metrics on the
# same data): 4 observers, 12 units, values 1-5, missing data. Published: nominal .743,
# ordinal .815, interval .849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]

# Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological
# Bulletin 76(5), 378-382 — the 10 subjects x 14 raters x 5 categories example as reproduced
# in the Wikipedia article "Fleiss' kappa": P-bar = 0.378, P-bar-e = 0.213, kappa = 0.210.
FLEISS_1971_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed. — the 4 raters x 12
# subjects example with missing ratings (irrCAC's raw_4raters data set): AC1 = 0.77544,
# percent agreement 0.81818, chance agreement 0.19032.
GWET_2014 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


def _from_counts(counts: list[list[int]]) -> list[list[int]]:
    """Raters x units ratings that give these per-unit category counts (categories 1..q)."""
    raters = sum(counts[0])
    out = [[0] * len(counts) for _ in range(raters)]
    for u, row in enumerate(counts):
        values = [k + 1 for k, c in enumerate(row) for _ in range(c)]
        for r in range(raters):
            out[r][u] = values[r]
    return out


def test_krippendorff_2011_worked_example() -> None:
    data = Ratings(KRIPPENDORFF_2011, [1, 2, 3, 4, 5])
    published = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849}
    for level, value in published.items():
        alpha, _ = ag.krippendorff_alpha(data, level, resamples=0)  # type: ignore[arg-type]
        assert alpha.value == pytest.approx(value, abs=5e-4), level


def test_fleiss_1971_worked_example() -> None:
    data = Ratings(_from_counts(FLEISS_1971_COUNTS), [1, 2, 3, 4, 5])
    kappa, units = ag.fleiss_kappa(data)
    assert units == 10
    assert kappa.value == pytest.approx(0.210, abs=5e-4)


def test_cohen_1960_style_two_by_two_example() -> None:
    # The "Cohen's kappa" article's worked example: 50 proposals, yes/yes 20, yes/no 5,
    # no/yes 10, no/no 15: p_o = 0.70, p_e = 0.50, kappa = 0.40.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert ag.cohen_kappa(a, b, ["yes", "no"]).value == pytest.approx(0.40, abs=TOL)


def test_gwet_2014_worked_example() -> None:
    data = Ratings(GWET_2014, [1, 2, 3, 4, 5])
    assert ag.gwet_ac(data, "identity").value == pytest.approx(0.77544, abs=5e-6)


def test_exact_and_within_one_agreement_by_hand() -> None:
    # unit 1: 3,3,4 -> exact 1/3 of pairs, within-one 3/3; unit 2: 1,5 -> 0 and 0;
    # unit 3: one rating -> left out.
    data = Ratings([[3, 1, 2], [3, 5, N], [4, N, N]], [1, 2, 3, 4, 5])
    assert ag.exact_agreement(data).value == pytest.approx((1 / 3 + 0) / 2, abs=TOL)
    assert ag.within_one_agreement(data, "ordinal").value == pytest.approx(0.5, abs=TOL)


# --- random data against the reference packages ------------------------------------------------


def _random_ratings(rng: random.Random, q: int) -> list[list[int | None]]:
    raters, units = rng.randint(3, 8), rng.randint(12, 40)
    truth = [rng.randint(1, q) for _ in range(units)]
    data: list[list[int | None]] = []
    for _ in range(raters):
        row: list[int | None] = []
        for t in truth:
            if rng.random() < 0.12:
                row.append(None)
            else:
                row.append(min(q, max(1, t + rng.choice([-1, 0, 0, 0, 1, 2]))))
        data.append(row)
    return data


DATASETS = [(seed, 5 if seed % 3 else 4) for seed in range(24)]


@pytest.mark.parametrize(("seed", "q"), DATASETS)
def test_alpha_matches_the_krippendorff_package(seed: int, q: int) -> None:
    ratings = _random_ratings(random.Random(seed), q)
    categories = list(range(1, q + 1))
    matrix = np.array([[np.nan if v is None else v for v in row] for row in ratings], dtype=float)
    data = Ratings(ratings, categories)
    for level in ("nominal", "ordinal", "interval"):
        ours, _ = ag.krippendorff_alpha(data, level, resamples=0)  # type: ignore[arg-type]
        theirs = krippendorff.alpha(
            reliability_data=matrix, level_of_measurement=level, value_domain=categories
        )
        assert ours.value == pytest.approx(theirs, abs=TOL), (seed, level)


@pytest.mark.parametrize(("seed", "q"), DATASETS)
def test_pairwise_kappas_match_statsmodels(seed: int, q: int) -> None:
    ratings = _random_ratings(random.Random(100 + seed), q)
    categories = list(range(1, q + 1))
    report = ag.report(ratings, categories, "ordinal", resamples=0)
    for pair, (a, b) in zip(
        report["pairwise"],
        [(a, b) for a in range(len(ratings)) for b in range(a + 1, len(ratings))],
        strict=True,
    ):
        table = np.zeros((q, q))
        for x, y in zip(ratings[a], ratings[b], strict=True):
            if x is not None and y is not None:
                table[x - 1, y - 1] += 1
        assert pair["n"] == table.sum()
        for key, wt in (
            ("cohen_kappa", None),
            ("weighted_kappa_linear", "linear"),
            ("weighted_kappa_quadratic", "quadratic"),
        ):
            expected = sm_cohen(table, wt=wt, return_results=False)
            assert pair[key] == pytest.approx(expected, abs=TOL), (seed, key)


@pytest.mark.parametrize(("seed", "q"), DATASETS)
def test_fleiss_matches_statsmodels_on_complete_units(seed: int, q: int) -> None:
    ratings = _random_ratings(random.Random(200 + seed), q)
    categories = list(range(1, q + 1))
    complete = [u for u in range(len(ratings[0])) if all(r[u] is not None for r in ratings)]
    table = np.zeros((len(complete), q))
    for i, u in enumerate(complete):
        for r in ratings:
            table[i, r[u] - 1] += 1  # type: ignore[operator]
    ours, units = ag.fleiss_kappa(Ratings(ratings, categories))
    assert units == len(complete)
    if complete:
        assert ours.value == pytest.approx(sm_fleiss(table, method="fleiss"), abs=TOL)


@pytest.mark.parametrize(("seed", "q"), DATASETS)
def test_gwet_matches_irrcac(seed: int, q: int) -> None:
    ratings = _random_ratings(random.Random(300 + seed), q)
    categories = list(range(1, q + 1))
    frame = pd.DataFrame(
        {f"R{i}": [np.nan if v is None else float(v) for v in row] for i, row in enumerate(ratings)}
    )
    data = Ratings(ratings, categories)
    for ours_w, theirs_w in (("identity", "identity"), ("quadratic", "quadratic")):
        theirs = CAC(frame, weights=theirs_w, categories=[float(c) for c in categories], digits=15)
        expected = theirs.gwet()["est"]["coefficient_value"]
        assert ag.gwet_ac(data, ours_w).value == pytest.approx(expected, abs=TOL), (seed, ours_w)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seed", "q"), DATASETS[:8])
def test_exact_agreement_matches_counting_pairs(seed: int, q: int) -> None:
    ratings = _random_ratings(random.Random(400 + seed), q)
    shares = []
    for u in range(len(ratings[0])):
        values = [r[u] for r in ratings if r[u] is not None]
        pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
        if pairs:
            shares.append(sum(a == b for a, b in pairs) / len(pairs))
    data = Ratings(ratings, list(range(1, q + 1)))
    assert ag.exact_agreement(data).value == pytest.approx(sum(shares) / len(shares), abs=TOL)


# --- undefined cases, the bootstrap, bad input -------------------------------------------------


def test_undefined_statistics_are_null_with_a_reason() -> None:
    same = [[3, 3, 3], [3, 3, 3]]
    report = ag.report(same, [1, 2, 3, 4, 5], "ordinal", resamples=50)
    assert report["krippendorff_alpha"]["value"] is None
    assert "same level" in report["krippendorff_alpha"]["reason"]
    assert report["krippendorff_alpha"]["ci95"] is None
    assert report["fleiss_kappa"]["value"] is None
    assert report["gwet_ac1"]["value"] is not None  # AC1 stays defined here, by design
    assert report["pairwise"][0]["cohen_kappa"] is None
    assert report["exact_agreement"] == 1.0
    lonely = ag.report([[1, N], [N, 2]], [1, 2, 3], "ordinal", resamples=10)
    assert lonely["krippendorff_alpha"]["reason"] == "No unit has two or more ratings."
    assert lonely["exact_agreement"] is None
    assert lonely["fleiss_kappa"]["value"] is None


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    data = Ratings(KRIPPENDORFF_2011, [1, 2, 3, 4, 5])
    alpha, ci = ag.krippendorff_alpha(data, "ordinal", resamples=2000, seed=7)
    again = ag.krippendorff_alpha(data, "ordinal", resamples=2000, seed=7)[1]
    other = ag.krippendorff_alpha(data, "ordinal", resamples=2000, seed=8)[1]
    assert ci == again
    assert ci != other
    assert ci is not None and alpha.value is not None
    assert ci[0] < alpha.value < ci[1] <= 1.0


def test_nominal_strings_and_the_report_shape() -> None:
    report = ag.report(
        [["yes", "no", "yes"], ["yes", "no", "no"]],
        ["yes", "no"],
        "nominal",
        raters=["Ana", "Ben"],
        units=["Q1", "Q2", "Q3"],
        master=["yes", "no", "yes"],
        resamples=100,
    )
    assert report["within_one_agreement"] is None
    assert report["gwet_ac2"]["value"] is None
    assert report["vs_master"][0] == {
        "rater": "Ana",
        "n": 3,
        "exact_agreement": 1.0,
        "within_one_agreement": None,
        "weighted_kappa_quadratic": None,
    }
    assert report["units"][1] == {
        "unit": "Q2",
        "n": 2,
        "distribution": {"yes": 0, "no": 2},
        "exact_agreement": 1.0,
    }


def test_interpretation_bands() -> None:
    assert ag.kappa_band(-0.1) == "poor: less agreement than chance"
    assert ag.kappa_band(0.2) == "slight agreement"
    assert ag.kappa_band(0.61) == "substantial agreement"
    assert ag.kappa_band(0.95) == "almost perfect agreement"
    assert ag.alpha_band(0.81).startswith("reliable")  # type: ignore[union-attr]
    assert ag.alpha_band(0.7).startswith("tentative")  # type: ignore[union-attr]
    assert ag.alpha_band(0.5).startswith("not reliable")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ratings", "categories", "message"),
    [
        ([[1, 2], [1, 7]], [1, 2, 3], "Rater 2, unit 2: 7 is not one of the categories"),
        ([[1, 2], [1]], [1, 2, 3], "Rater 2 has 1 ratings but rater 1 has 2"),
        ([[1, 2]], [1, 2, 3], "at least 2 raters"),
        ([[1], [2]], [1], "at least two categories"),
        ([[1], [2]], [1, 1, 2], "only once"),
    ],
)
def test_bad_input_says_exactly_what_is_wrong(ratings, categories, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AgreementInputError, match=message):
        ag.report(ratings, categories, "ordinal", resamples=0)


def test_interval_needs_numbers() -> None:
    with pytest.raises(AgreementInputError, match="numeric categories"):
        ag.report([["a", "b"], ["a", "a"]], ["a", "b"], "interval", resamples=0)


# --- numbers that explain themselves ----------------------------------------------------------


def _codes(report: dict) -> list[str]:  # type: ignore[type-arg]
    return [n["code"] for n in report["notes"]]


def test_the_prevalence_paradox_is_named_and_explained() -> None:
    # Nine raters, nine units: nearly everything is level 3, one rater sometimes says 2.
    ratings = [[3] * 9 for _ in range(8)] + [[3, 3, 2, 3, 3, 3, 3, 2, 3]]
    report = ag.report(ratings, [1, 2, 3, 4, 5], "ordinal", resamples=200)
    assert report["exact_agreement"] > 0.9
    assert report["krippendorff_alpha"]["value"] < 0.2  # low although raters agree
    assert "prevalence" in _codes(report)
    [note] = [n for n in report["notes"] if n["code"] == "prevalence"]
    assert "98% of all ratings were level 3" in note["message"]
    assert "AC1" in note["message"] and "exact agreement" in note["message"]
    assert report["gwet_ac1"]["value"] > 0.9  # the paradox-resistant coefficient stays high


def test_spread_ratings_carry_no_prevalence_note() -> None:
    ratings = [[1, 2, 3, 4, 5, 1, 2, 3], [1, 2, 3, 4, 5, 2, 2, 3], [2, 2, 3, 5, 5, 1, 3, 3]]
    report = ag.report(ratings, [1, 2, 3, 4, 5], "ordinal", resamples=0)
    assert "prevalence" not in _codes(report)


def test_a_single_level_says_why_nothing_can_be_computed() -> None:
    report = ag.report([[3, 3, 3], [3, 3, 3]], [1, 2, 3, 4], "ordinal", resamples=0)
    assert report["krippendorff_alpha"]["value"] is None
    [note] = [n for n in report["notes"] if n["code"] == "one_level"]
    assert note["message"].startswith("Every rating was level 3: alpha and the kappas cannot")
    assert "undefined" in _codes(report)


@pytest.mark.parametrize(("levels", "chance"), [(5, 0.52), (4, 0.625), (3, 0.778)])
def test_within_one_by_chance(levels: int, chance: float) -> None:
    assert ag.within_one_by_chance(levels) == pytest.approx(chance, abs=0.001)
    ratings = [list(range(1, levels + 1)), list(range(1, levels + 1))]
    report = ag.report(ratings, list(range(1, levels + 1)), "ordinal", resamples=0)
    assert report["within_one_by_chance"] == pytest.approx(chance, abs=0.001)
    assert "within_one_chance" in _codes(report)


@pytest.mark.parametrize(
    ("value", "ci", "units", "code"),
    [
        (0.90, (0.800, 0.95), 20, "reliable"),  # the low end exactly at the minimum
        (0.90, (0.7999, 0.95), 20, "tentative"),
        (0.80, (0.667, 0.90), 20, "tentative"),
        (0.869, (0.355, 0.95), 20, "uncertain"),  # the point is high, the interval is not
        (0.70, (0.6669, 0.80), 20, "not_reliable"),
        (0.95, (0.90, 0.99), 4, "too_few"),
        (0.95, None, 20, "too_few"),
        (None, None, 20, "undefined"),
    ],
)
def test_the_alpha_verdict_follows_the_interval(
    value: float | None, ci: tuple[float, float] | None, units: int, code: str
) -> None:
    verdict = ag.alpha_verdict(value, ci, 0.25, units)
    assert verdict["code"] == code
    if code in ("tentative", "uncertain", "not_reliable"):
        assert "25%" in verdict["words"]  # the chance alpha is below the minimum


def test_the_district_bar_moves_the_verdict() -> None:
    assert ag.alpha_verdict(0.8, (0.70, 0.9), 0.3, 20)["code"] == "tentative"
    assert ag.alpha_verdict(0.8, (0.70, 0.9), 0.3, 20, minimum=0.7)["code"] == "reliable"


def test_the_report_gives_the_share_of_resamples_below_the_minimum() -> None:
    rng = random.Random(3)
    truth = [rng.randint(1, 5) for _ in range(40)]
    ratings = [[min(5, max(1, t + rng.choice([-1, 0, 1]))) for t in truth] for _ in range(4)]
    report = ag.report(ratings, [1, 2, 3, 4, 5], "ordinal", resamples=500)
    verdict = report["krippendorff_alpha"]["verdict"]
    assert 0.0 <= verdict["p_below_minimum"] <= 1.0
    low = report["krippendorff_alpha"]["ci95"][0]
    assert (verdict["code"] == "reliable") == (low >= 0.8)
