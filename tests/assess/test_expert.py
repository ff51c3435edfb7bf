"""Expert forms, consensus and the 5x5 matrix."""

from __future__ import annotations

import pytest

from riskdesk.assess import expert as ex


def test_consensus_takes_the_median_and_reports_the_spread() -> None:
    js = [
        ex.Judgement("credit", 2, 4, "ana"),
        ex.Judgement("credit", 4, 4, "bob"),
        ex.Judgement("credit", 5, 3, "eve"),
        ex.Judgement("market", 1, 2, "ana"),
    ]
    by = {c.source: c for c in ex.consensus(js)}
    c = by["credit"]
    assert (c.n, c.likelihood, c.impact) == (3, 4.0, 4.0)
    assert c.likelihood_range == 3 and c.impact_range == 1
    assert c.likelihood_iqr == 1.5
    assert c.zone == "high"
    assert by["market"].zone == "low"


def test_matrix_counts_place_points_by_impact_row_and_likelihood_column() -> None:
    grid = ex.matrix_counts([(1, 5), (2.5, 3), (5, 1), (5, 1)])
    assert grid[4][0] == 1
    assert grid[2][2] == 1  # 2.5 rounds half up to 3
    assert grid[0][4] == 2
    assert sum(map(sum, grid)) == 4


@pytest.mark.parametrize(
    ("scores", "notches"),
    [([(5, 4)], 2), ([(4, 3), (1, 1)], 1), ([(2, 2), (1, 3)], -1), ([(3, 2)], 0), ([], 0)],
)
def test_qualitative_notches_follow_the_worst_source(
    scores: list[tuple[int, int]], notches: int
) -> None:
    js = [ex.Judgement(f"s{i}", lik, imp, "ana") for i, (lik, imp) in enumerate(scores)]
    assert ex.qualitative_notches(ex.consensus(js)) == notches


@pytest.mark.parametrize(
    ("source", "lik", "imp", "who"),
    [("", 3, 3, "ana"), ("credit", 0, 3, "ana"), ("credit", 3, 6, "ana"), ("credit", 3, 3, "")],
)
def test_invalid_forms_are_refused(source: str, lik: int, imp: int, who: str) -> None:
    with pytest.raises(ex.AssessmentError):
        ex.validate(source, lik, imp, who)


def test_every_level_is_described_in_both_languages() -> None:
    for levels in (ex.LIKELIHOOD_LEVELS, ex.IMPACT_LEVELS):
        assert sorted(levels) == [1, 2, 3, 4, 5]
        assert all(en and zh and en != zh for en, zh in levels.values())
