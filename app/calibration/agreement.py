"""Inter-rater agreement statistics. Pure: no database, no web; numbers in, numbers out.

Conventions (the same everywhere in Walkthrough):
- The data are a raters x units table; None is a missing rating (never imputed).
- The scale is the full declared list of categories, in order, including levels nobody used.
  Weights and "within one" use a level's *position* on that list; interval alpha uses the
  categories' numeric values.
- Proportions are in [0, 1]. A statistic that is undefined for the data (one level used
  by everyone, chance agreement of 1, too few ratings) is None with a reason, never a
  made-up number.

References: Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability"; Fleiss (1971);
Cohen (1960, 1968); Gwet (2008, 2014) for AC1/AC2; Landis & Koch (1977) for kappa bands.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Level = Literal["nominal", "ordinal", "interval"]
Category = int | float | str
DEFAULT_SEED = 20_261_122
Float = NDArray[np.float64]


class AgreementInputError(ValueError):
    """The ratings cannot be analysed as given; the message says exactly why."""


@dataclass(frozen=True)
class Stat:
    """A statistic's value, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None

    def __post_init__(self) -> None:
        # Floating-point noise (a perfect kappa of 1.0000000000000013) is not information.
        if self.value is not None:
            object.__setattr__(self, "value", round(float(self.value), 12))

    def as_dict(self, band: str | None = None) -> dict[str, Any]:
        """JSON form, with an interpretation in plain words when one applies."""
        out: dict[str, Any] = {"value": self.value, "reason": self.reason}
        if band is not None:
            out["interpretation"] = band
        return out


class Ratings:
    """A validated raters x units table, coded as positions on the declared scale."""

    def __init__(
        self, ratings: Sequence[Sequence[Category | None]], categories: Sequence[Category]
    ):
        if len(categories) < 2:
            raise AgreementInputError("Declare at least two categories.")
        if len(set(categories)) != len(categories):
            raise AgreementInputError("Each category may be declared only once.")
        if len(ratings) < 2:
            raise AgreementInputError("Agreement needs at least 2 raters.")
        n_units = len(ratings[0])
        if n_units < 1:
            raise AgreementInputError("There are no units to compare.")
        index = {c: i for i, c in enumerate(categories)}
        rows = []
        for r, row in enumerate(ratings):
            if len(row) != n_units:
                raise AgreementInputError(
                    f"Rater {r + 1} has {len(row)} ratings but rater 1 has {n_units}: every "
                    "rater needs one value (or null) per unit."
                )
            coded_row = [-1 if v is None else index.get(v, -2) for v in row]
            if -2 in coded_row:
                u = coded_row.index(-2)
                raise AgreementInputError(
                    f"Rater {r + 1}, unit {u + 1}: {row[u]!r} is not one of the categories "
                    f"{list(categories)}."
                )
            rows.append(coded_row)
        coded = np.array(rows, dtype=np.int64)
        self.categories = list(categories)
        self.coded = coded
        self.q = len(categories)
        # counts[u, k]: how many raters put unit u in category k
        valid = coded >= 0
        flat = np.nonzero(valid)[1] * self.q + coded[valid]
        self.counts = (
            np.bincount(flat, minlength=n_units * self.q)
            .reshape(n_units, self.q)
            .astype(np.float64)
        )
        self._onehot: Float | None = None

    @property
    def onehot(self) -> Float:
        """onehot[r, u, k] = 1 where rater r put unit u in category k (built on first use)."""
        if self._onehot is None:
            onehot = np.zeros((*self.coded.shape, self.q), dtype=np.float64)
            rr, uu = np.nonzero(self.coded >= 0)
            onehot[rr, uu, self.coded[rr, uu]] = 1.0
            self._onehot = onehot
        return self._onehot

    @property
    def n_raters(self) -> int:
        return int(self.coded.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.coded.shape[1])


# --- weights and distances ------------------------------------------------------------------


def agreement_weights(q: int, kind: Literal["identity", "linear", "quadratic"]) -> Float:
    """Agreement weights by position: 1 on the diagonal, 0 for the farthest pair."""
    i, j = np.indices((q, q))
    if kind == "identity":
        return (i == j).astype(np.float64)
    d = np.abs(i - j) / (q - 1)
    return 1.0 - d if kind == "linear" else 1.0 - d**2


def _delta2(level: Level, categories: list[Category], marginals: Float) -> Float:
    """Krippendorff's squared difference function for each pair of categories."""
    q = len(categories)
    i, j = np.indices((q, q))
    if level == "nominal":
        return (i != j).astype(np.float64)
    if level == "interval":
        values = np.asarray(categories, dtype=np.float64)
        return np.square(values[:, None] - values[None, :])
    # ordinal: (sum of n_g from c to k, minus half the ends)^2, using the marginals
    cum = np.concatenate([[0.0], np.cumsum(marginals)])
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    between = cum[hi + 1] - cum[lo]
    return (between - (marginals[i] + marginals[j]) / 2.0) ** 2


# --- simple agreement -----------------------------------------------------------------------


def _pair_shares(counts: Float, within: int) -> tuple[Float, Float]:
    """Per unit: agreeing rater pairs (positions within `within`) and all pairs."""
    m = counts.sum(axis=1)
    q = counts.shape[1]
    near = np.zeros_like(counts)
    for shift in range(-within, within + 1):
        lo, hi = max(0, shift), min(q, q + shift)
        near[:, lo - shift : hi - shift] += counts[:, lo:hi]
    agreeing = (counts * near).sum(axis=1) - m
    return agreeing, m * (m - 1)


def exact_agreement(data: Ratings) -> Stat:
    """For each unit rated at least twice, the share of rater pairs that agree; averaged."""
    agreeing, pairs = _pair_shares(data.counts, 0)
    ok = pairs > 0
    if not ok.any():
        return Stat(None, "No unit has two or more ratings.")
    return Stat(float(np.mean(agreeing[ok] / pairs[ok])))


def within_one_agreement(data: Ratings, level: Level) -> Stat:
    """As exact agreement, counting pairs at most one level apart as agreeing."""
    if level == "nominal":
        return Stat(None, "Within-one agreement needs ordered categories (not nominal).")
    agreeing, pairs = _pair_shares(data.counts, 1)
    ok = pairs > 0
    if not ok.any():
        return Stat(None, "No unit has two or more ratings.")
    return Stat(float(np.mean(agreeing[ok] / pairs[ok])))


# --- Krippendorff's alpha -------------------------------------------------------------------


def _unit_coincidences(counts: Float) -> tuple[Float, Float]:
    """Each pairable unit's coincidence matrix (flattened) and its value counts."""
    m = counts.sum(axis=1)
    keep = m >= 2
    c = counts[keep]
    w = 1.0 / (m[keep] - 1.0)
    o = np.einsum("u,uk,ul->ukl", w, c, c)
    idx = np.arange(counts.shape[1])
    o[:, idx, idx] -= c * w[:, None]
    return o.reshape(c.shape[0], counts.shape[1] ** 2), c


def _alpha_from(o: Float, n_c: Float, level: Level, categories: list[Category]) -> float:
    """Alpha from a (flattened) coincidence matrix and its marginals; nan when undefined."""
    q = len(categories)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    d2 = _delta2(level, categories, n_c)
    observed = float((o.reshape(q, q) * d2).sum()) / n
    expected = float((np.outer(n_c, n_c) * d2).sum()) / (n * (n - 1))
    if expected <= 0:
        return float("nan")
    return 1.0 - observed / expected


def krippendorff_alpha(
    data: Ratings,
    level: Level,
    *,
    resamples: int = 1000,
    seed: int = DEFAULT_SEED,
) -> tuple[Stat, tuple[float, float] | None]:
    """Krippendorff's alpha (missing ratings allowed) and a bootstrap 95% interval.

    The interval resamples units with replacement (seeded, so reproducible) and recomputes
    alpha, marginals included, for each resample; undefined resamples are left out.
    """
    stat, ci, _below = krippendorff_alpha_with_risk(data, level, resamples=resamples, seed=seed)
    return stat, ci


def krippendorff_alpha_with_risk(
    data: Ratings,
    level: Level,
    *,
    resamples: int = 1000,
    seed: int = DEFAULT_SEED,
    minimum: float = 0.800,
) -> tuple[Stat, tuple[float, float] | None, float | None]:
    """Alpha, its bootstrap 95% interval, and the share of bootstrap resamples whose alpha
    falls below `minimum` (Krippendorff's q, the probability of failing to reach it)."""
    if level == "interval" and not all(
        isinstance(c, int | float) and not isinstance(c, bool) for c in data.categories
    ):
        raise AgreementInputError("Interval alpha needs numeric categories.")
    per_unit, unit_counts = _unit_coincidences(data.counts)
    if per_unit.shape[0] == 0:
        return Stat(None, "No unit has two or more ratings."), None, None
    o = per_unit.sum(axis=0)
    n_c = unit_counts.sum(axis=0)
    value = _alpha_from(o, n_c, level, data.categories)
    if np.isnan(value):
        return (
            Stat(None, "Every rating is the same level: there is no variation to agree on."),
            None,
            None,
        )
    if resamples <= 0:
        return Stat(float(value)), None, None
    alphas = _bootstrap(per_unit, unit_counts, level, data.categories, resamples, seed)
    if alphas.size == 0:
        return Stat(float(value)), None, None
    low, high = np.percentile(alphas, [2.5, 97.5])
    return Stat(float(value)), (float(low), float(high)), float((alphas < minimum).mean())


def _bootstrap(
    per_unit: Float,
    unit_counts: Float,
    level: Level,
    categories: list[Category],
    resamples: int,
    seed: int,
) -> Float:
    """Alpha of each bootstrap resample of the units (undefined ones left out)."""
    rng = np.random.default_rng(seed)
    units = per_unit.shape[0]
    q = len(categories)
    weights = rng.multinomial(units, np.full(units, 1.0 / units), size=resamples).astype(np.float64)
    o = weights @ per_unit  # resamples x q*q
    n_c = weights @ unit_counts  # resamples x q
    n = n_c.sum(axis=1)
    if level == "ordinal":
        cum = np.concatenate([np.zeros((resamples, 1)), np.cumsum(n_c, axis=1)], axis=1)
        i, j = np.indices((q, q))
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        between = cum[:, hi + 1] - cum[:, lo]
        d2 = (between - (n_c[:, i] + n_c[:, j]) / 2.0) ** 2
    else:
        d2 = np.broadcast_to(_delta2(level, categories, n_c[0]), (resamples, q, q))
    observed = (o.reshape(resamples, q, q) * d2).sum(axis=(1, 2)) / n
    expected = (np.einsum("rk,rl->rkl", n_c, n_c) * d2).sum(axis=(1, 2)) / (n * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = np.where(expected > 0, 1.0 - observed / expected, np.nan)
    return alphas[~np.isnan(alphas)]


# --- kappas ---------------------------------------------------------------------------------


def _kappa(table: Float, w: Float) -> Stat:
    """Weighted kappa from a q x q table of paired ratings (rows: first rater)."""
    n = table.sum()
    if n == 0:
        return Stat(None, "The two never rated the same unit.")
    p = table / n
    po = float((w * p).sum())
    pe = float((w * np.outer(p.sum(axis=1), p.sum(axis=0))).sum())
    if pe >= 1.0 - 1e-12:
        return Stat(None, "Chance agreement is 1 (one level used by both): kappa is undefined.")
    return Stat((po - pe) / (1.0 - pe))


def cohen_kappa(
    a: Sequence[Category | None],
    b: Sequence[Category | None],
    categories: Sequence[Category],
    weights: Literal["identity", "linear", "quadratic"] = "identity",
) -> Stat:
    """Cohen's kappa for two raters (weighted by position); units missing either are dropped."""
    data = Ratings([a, b], categories)
    table = data.onehot[0].T @ data.onehot[1]
    return _kappa(table, agreement_weights(data.q, weights))


def fleiss_kappa(data: Ratings) -> tuple[Stat, int]:
    """Fleiss' kappa over the units every rater rated; also how many units that was."""
    complete = (data.coded >= 0).all(axis=0)
    counts = data.counts[complete]
    units = int(counts.shape[0])
    if units == 0:
        return Stat(
            None, "No unit was rated by every rater (Fleiss' kappa needs complete data)."
        ), 0
    m = data.n_raters
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = float(p_i.mean())
    p_j = counts.sum(axis=0) / (units * m)
    pe = float((p_j**2).sum())
    if pe >= 1.0 - 1e-12:
        return Stat(None, "Every rating is the same level: kappa is undefined."), units
    return Stat((p_bar - pe) / (1.0 - pe)), units


def gwet_ac(data: Ratings, weights: Literal["identity", "quadratic"]) -> Stat:
    """Gwet's AC1 (identity weights) or AC2 (quadratic), with missing ratings (Gwet 2014)."""
    w = agreement_weights(data.q, weights)
    counts = data.counts
    r_i = counts.sum(axis=1)
    rated = r_i >= 1
    two = r_i >= 2
    if not two.any():
        return Stat(None, "No unit has two or more ratings.")
    weighted = counts @ w.T
    pa_units = (counts * (weighted - 1.0)).sum(axis=1)
    pa = float((pa_units[two] / (r_i[two] * (r_i[two] - 1))).sum() / two.sum())
    pi = (counts[rated] / r_i[rated, None]).mean(axis=0)
    pe = float(w.sum() * (pi * (1 - pi)).sum() / (data.q * (data.q - 1)))
    if pe >= 1.0 - 1e-12:
        return Stat(None, "Chance agreement is 1: the coefficient is undefined.")
    return Stat((pa - pe) / (1.0 - pe))


# --- interpretation ---------------------------------------------------------------------------


def kappa_band(value: float | None) -> str | None:
    """Landis & Koch (1977) words for a kappa-like coefficient."""
    if value is None:
        return None
    if value < 0:
        return "poor: less agreement than chance"
    for upper, words in (
        (0.20, "slight agreement"),
        (0.40, "fair agreement"),
        (0.60, "moderate agreement"),
        (0.80, "substantial agreement"),
    ):
        if value <= upper:
            return words
    return "almost perfect agreement"


def alpha_band(value: float | None) -> str | None:
    """Krippendorff's (2004) thresholds in plain words."""
    if value is None:
        return None
    if value >= 0.800:
        return "reliable: ratings can be trusted for decisions (alpha of .800 or more)"
    if value >= 0.667:
        return "tentative: good enough for tentative conclusions only (.667 to .800)"
    return "not reliable: observers do not yet rate alike (below .667)"


# Krippendorff (2004, 2019): rely on data only where alpha >= .800, draw tentative
# conclusions where it is >= .667, and judge by the low end of the interval, not the point.
RELIABLE_MINIMUM = 0.800
TENTATIVE_MINIMUM = 0.667
# Fewer units with two or more ratings than this: too few to judge reliability at all.
MIN_UNITS_TO_JUDGE = 5
# The prevalence paradox is flagged when the most used level holds this share of all ratings,
# or (scales of four or more levels) the two most used levels hold the second share.
PREVALENCE_ONE_LEVEL = 0.80
PREVALENCE_TWO_LEVELS = 0.90


def within_one_by_chance(levels: int) -> float | None:
    """Within-one agreement of two raters guessing uniformly at random on `levels` ordered
    levels: (3q - 2) / q^2, so .52 on 5 levels, .63 on 4, .78 on 3."""
    if levels < 2:
        return None
    return (3 * levels - 2) / levels**2


def alpha_verdict(
    value: float | None,
    ci: tuple[float, float] | None,
    p_below: float | None,
    units: int,
    minimum: float = RELIABLE_MINIMUM,
    tentative: float = TENTATIVE_MINIMUM,
) -> dict[str, Any]:
    """Whether alpha lets the ratings be trusted, judged by its bootstrap interval: reliable
    only when even the interval's low end reaches `minimum`."""

    def verdict(code: str, words: str) -> dict[str, Any]:
        return {
            "code": code,
            "words": words,
            "minimum": minimum,
            "tentative": tentative,
            "p_below_minimum": p_below,
        }

    if value is None:
        return verdict("undefined", "Alpha cannot be computed for these ratings (see why).")
    if units < MIN_UNITS_TO_JUDGE or ci is None:
        return verdict(
            "too_few",
            f"Too few rated units to judge reliability ({units}; at least {MIN_UNITS_TO_JUDGE} "
            "with two or more ratings): rate more excerpts or items before trusting alpha.",
        )
    low = ci[0]
    chance = f"{p_below:.0%}" if p_below is not None else "unknown"
    if low >= minimum:
        return verdict(
            "reliable",
            f"Reliable: even the low end of the 95% interval ({low:.3f}) reaches the required "
            f"{minimum:.3f}.",
        )
    if low >= tentative:
        return verdict(
            "tentative",
            f"Tentative: the 95% interval's low end ({low:.3f}) is above {tentative:.3f} but "
            f"below the required {minimum:.3f} (chance alpha is below it: {chance}).",
        )
    if value >= minimum:
        return verdict(
            "uncertain",
            f"Not yet reliable: alpha is {value:.3f}, but its 95% interval starts at {low:.3f}, "
            f"so the data cannot rule out much lower agreement (chance alpha is below "
            f"{minimum:.3f}: {chance}). Rate more excerpts to narrow it.",
        )
    return verdict(
        "not_reliable",
        f"Not reliable: observers do not yet rate alike (chance alpha is below {minimum:.3f}: "
        f"{chance}).",
    )


def _notes(
    data: Ratings,
    ordered: bool,
    complete_units: int,
    stats: dict[str, Stat],
    exact: Stat,
    within: Stat,
) -> list[dict[str, str]]:
    """Plain-word notes on what the numbers mean, each with a code a script can test."""
    notes: list[dict[str, str]] = []
    totals = data.counts.sum(axis=0)
    n = float(totals.sum())
    if complete_units and complete_units < data.n_units:
        notes.append(
            {
                "code": "fleiss_complete_units",
                "message": f"Fleiss' kappa uses the {complete_units} of {data.n_units} units "
                "that every rater rated; Krippendorff's alpha uses every unit with two or more "
                "ratings.",
            }
        )
    if not ordered:
        notes.append(
            {
                "code": "nominal",
                "message": "Nominal data: within-one agreement and weighted statistics are "
                "not reported.",
            }
        )
    used = [(float(totals[k]), c) for k, c in enumerate(data.categories) if totals[k] > 0]
    used.sort(key=lambda t: -t[0])
    if n > 0 and len(used) == 1:
        notes.append(
            {
                "code": "one_level",
                "message": f"Every rating was level {used[0][1]}: alpha and the kappas cannot "
                "be computed, because there is no variation to agree on. Exact agreement is "
                "100%.",
            }
        )
    elif n > 0:
        top = used[0][0] / n
        top_two = (used[0][0] + used[1][0]) / n
        concentrated = top >= PREVALENCE_ONE_LEVEL or (
            len(data.categories) >= 4 and top_two >= PREVALENCE_TWO_LEVELS
        )
        if concentrated:
            where = (
                f"{top:.0%} of all ratings were level {used[0][1]}"
                if top >= PREVALENCE_ONE_LEVEL
                else f"{top_two:.0%} of all ratings were levels {used[0][1]} and {used[1][1]}"
            )
            agree = f" ({exact.value:.0%} exact agreement)" if exact.value is not None else ""
            notes.append(
                {
                    "code": "prevalence",
                    "message": f"{where}. When nearly every rating is the same, the agreement "
                    "expected by chance is close to 100%, so Krippendorff's alpha and the kappas "
                    f"come out low even though raters agree{agree}: the prevalence paradox. Read "
                    "Gwet's AC1/AC2, which resist it, and exact and within-one agreement instead.",
                }
            )
    for name, stat in stats.items():
        if stat.value is None and stat.reason:
            notes.append({"code": "undefined", "message": f"{name}: {stat.reason}"})
    if ordered and within.value is not None:
        chance = within_one_by_chance(len(data.categories))
        if chance is not None:
            notes.append(
                {
                    "code": "within_one_chance",
                    "message": f"Within-one agreement {within.value:.0%}; raters guessing at "
                    f"random on these {len(data.categories)} levels would reach {chance:.0%}.",
                }
            )
    return notes


# --- the full report --------------------------------------------------------------------------


def _round(x: float | None) -> float | None:
    return None if x is None else float(x)


def report(
    ratings: Sequence[Sequence[Category | None]],
    categories: Sequence[Category],
    level: Level = "ordinal",
    *,
    raters: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    master: Sequence[Category | None] | None = None,
    resamples: int = 1000,
    seed: int = DEFAULT_SEED,
    minimum: float = RELIABLE_MINIMUM,
    tentative: float = TENTATIVE_MINIMUM,
) -> dict[str, Any]:
    """Every statistic of the agreement report, as JSON-ready data, with notes that explain
    undefined and paradoxical values and a verdict on alpha that respects its interval."""
    data = Ratings(ratings, categories)
    rater_names = list(raters) if raters else [f"Rater {i + 1}" for i in range(data.n_raters)]
    unit_names = list(units) if units else [f"Unit {i + 1}" for i in range(data.n_units)]
    if len(rater_names) != data.n_raters:
        raise AgreementInputError(f"{len(rater_names)} rater names for {data.n_raters} raters.")
    if len(unit_names) != data.n_units:
        raise AgreementInputError(f"{len(unit_names)} unit names for {data.n_units} units.")
    ordered = level != "nominal"

    alpha, ci, p_below = krippendorff_alpha_with_risk(
        data, level, resamples=resamples, seed=seed, minimum=minimum
    )
    fleiss, complete_units = fleiss_kappa(data)
    exact = exact_agreement(data)
    within = within_one_agreement(data, level)
    ac1 = gwet_ac(data, "identity")
    ac2 = gwet_ac(data, "quadratic") if ordered else Stat(None, "AC2 needs ordered categories.")

    pairwise = _pairwise(data, rater_names, ordered)
    vs_master = _vs_master(data, rater_names, master, ordered) if master is not None else []
    unit_rows = []
    agreeing, pairs = _pair_shares(data.counts, 0)
    for u, name in enumerate(unit_names):
        dist = {str(c): int(data.counts[u, k]) for k, c in enumerate(data.categories)}
        unit_rows.append(
            {
                "unit": name,
                "n": int(data.counts[u].sum()),
                "distribution": dist,
                "exact_agreement": float(agreeing[u] / pairs[u]) if pairs[u] > 0 else None,
            }
        )
    notes = _notes(
        data,
        ordered,
        complete_units,
        {
            "Krippendorff's alpha": alpha,
            "Fleiss' kappa": fleiss,
            "Gwet's AC1": ac1,
            **({"Gwet's AC2": ac2} if ordered else {}),
        },
        exact,
        within,
    )
    judged_units = int((data.counts.sum(axis=1) >= 2).sum())
    verdict = alpha_verdict(alpha.value, ci, p_below, judged_units, minimum, tentative)
    return {
        "n_raters": data.n_raters,
        "n_units": data.n_units,
        "categories": data.categories,
        "level": level,
        "exact_agreement": _round(exact.value),
        "within_one_agreement": _round(within.value),
        "within_one_by_chance": _round(within_one_by_chance(len(data.categories)))
        if ordered
        else None,
        "krippendorff_alpha": {
            "value": alpha.value,
            "ci95": list(ci) if ci else None,
            "level": level,
            "resamples": resamples,
            "seed": seed,
            "reason": alpha.reason,
            "interpretation": verdict["words"] if alpha.value is not None else None,
            "verdict": verdict,
        },
        "fleiss_kappa": {**fleiss.as_dict(kappa_band(fleiss.value)), "units": complete_units},
        "gwet_ac1": ac1.as_dict(kappa_band(ac1.value)),
        "gwet_ac2": ac2.as_dict(kappa_band(ac2.value)),
        "pairwise": pairwise,
        "vs_master": vs_master,
        "units": unit_rows,
        "notes": notes,
    }


def _pairwise(data: Ratings, names: list[str], ordered: bool) -> list[dict[str, Any]]:
    tables = np.einsum("auk,bul->abkl", data.onehot, data.onehot)
    weights = {
        "cohen_kappa": agreement_weights(data.q, "identity"),
        "weighted_kappa_linear": agreement_weights(data.q, "linear"),
        "weighted_kappa_quadratic": agreement_weights(data.q, "quadratic"),
    }
    out = []
    for a in range(data.n_raters):
        for b in range(a + 1, data.n_raters):
            table = tables[a, b]
            n = int(table.sum())
            row: dict[str, Any] = {
                "raters": [names[a], names[b]],
                "n": n,
                "exact_agreement": float(np.trace(table) / n) if n else None,
            }
            for key, w in weights.items():
                if not ordered and key != "cohen_kappa":
                    row[key] = None
                    continue
                row[key] = _kappa(table, w).value
            out.append(row)
    return out


def _vs_master(
    data: Ratings, names: list[str], master: Sequence[Category | None], ordered: bool
) -> list[dict[str, Any]]:
    if len(master) != data.n_units:
        raise AgreementInputError(
            f"The master has {len(master)} values but there are {data.n_units} units."
        )
    m = Ratings([master, master], data.categories)
    master_pos = m.coded[0]
    quadratic = agreement_weights(data.q, "quadratic")
    out = []
    for r, name in enumerate(names):
        both = (data.coded[r] >= 0) & (master_pos >= 0)
        n = int(both.sum())
        diff = np.abs(data.coded[r][both] - master_pos[both])
        table = data.onehot[r].T @ m.onehot[0]
        out.append(
            {
                "rater": name,
                "n": n,
                "exact_agreement": float((diff == 0).mean()) if n else None,
                "within_one_agreement": float((diff <= 1).mean()) if n and ordered else None,
                "weighted_kappa_quadratic": _kappa(table, quadratic).value if ordered else None,
            }
        )
    return out
