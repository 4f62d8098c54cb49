"""Server-rendered charts: what a reader sees in each cell."""

from app.charts import heatmap


def test_an_undefined_pair_is_labelled_and_explained_not_left_blank() -> None:
    svg = heatmap(
        ["Ana", "Ben", "Cy"],
        {(0, 0): 1.0, (1, 1): 1.0, (2, 2): 1.0, (0, 1): None, (1, 0): None, (0, 2): 0.25},
        title="Kappa",
    )
    assert ">n/a</text>" in svg and "–" not in svg
    assert "Ana / Ben: kappa cannot be computed for this pair" in svg
    assert ">0.25</text>" in svg
