"""AHP: weights, consistency and refusal of contradictory judgements."""

from __future__ import annotations

import pytest

from riskdesk.assess import ahp

# Saaty (1990), "How to make a decision: the analytic hierarchy process", EJOR 48:9-26 —
# the house-buying example. Published: priorities .173 .054 .188 .018 .031 .036 .167 .333,
# λmax = 9.669, CI = 0.238, CR = 0.169.
HOUSE = ["size", "transport", "neighbourhood", "age", "yard", "modern", "condition", "financing"]
HOUSE_MATRIX = [
    [1, 5, 3, 7, 6, 6, 1 / 3, 1 / 4],
    [1 / 5, 1, 1 / 3, 5, 3, 3, 1 / 5, 1 / 7],
    [1 / 3, 3, 1, 6, 3, 4, 6, 1 / 5],
    [1 / 7, 1 / 5, 1 / 6, 1, 1 / 3, 1 / 4, 1 / 7, 1 / 8],
    [1 / 6, 1 / 3, 1 / 3, 3, 1, 1 / 2, 1 / 5, 1 / 6],
    [1 / 6, 1 / 3, 1 / 4, 4, 2, 1, 1 / 5, 1 / 6],
    [3, 5, 1 / 6, 7, 5, 5, 1, 1 / 2],
    [4, 7, 5, 8, 6, 6, 2, 1],
]


def test_saaty_house_example_reproduces_the_published_weights_and_cr() -> None:
    r = ahp.weights(HOUSE_MATRIX, HOUSE)
    assert [round(w, 3) for w in r.weights] == [
        0.173,
        0.054,
        0.188,
        0.018,
        0.031,
        0.036,
        0.167,
        0.333,
    ]
    assert r.lambda_max == pytest.approx(9.669, abs=5e-4)
    assert r.ci == pytest.approx(0.238, abs=5e-4)
    assert r.cr == pytest.approx(0.169, abs=5e-4)
    assert not r.consistent


def test_inconsistent_matrix_is_refused_naming_the_conflicting_judgements() -> None:
    with pytest.raises(ahp.InconsistentMatrix) as err:
        ahp.consistent_weights(HOUSE_MATRIX, HOUSE)
    worst = err.value.result.conflicts[0]
    # neighbourhood judged 6x as important as condition, while the other judgements imply ~1
    assert (worst.row, worst.col, worst.given) == ("neighbourhood", "condition", 6.0)
    assert worst.implied == pytest.approx(1.13, abs=0.01)
    assert "neighbourhood vs condition" in str(err.value)
    assert "CR = 0.169" in str(err.value)


def test_consistent_matrix_recovers_the_weights_exactly() -> None:
    w = [0.5, 0.25, 0.125, 0.125]
    m = [[wi / wj for wj in w] for wi in w]
    r = ahp.consistent_weights(m, ["a", "b", "c", "d"])
    assert r.weights == pytest.approx(w, abs=1e-9)
    assert r.lambda_max == pytest.approx(4.0, abs=1e-9)
    assert r.cr == pytest.approx(0.0, abs=1e-9)


def test_a_small_inconsistency_is_accepted() -> None:
    m = [[1, 3, 5], [1 / 3, 1, 2], [1 / 5, 1 / 2, 1]]
    r = ahp.consistent_weights(m)
    assert 0 < r.cr < 0.1
    assert r.weights[0] > r.weights[1] > r.weights[2]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1, 3], [3, 1]], "not reciprocal"),
        ([[2, 3], [1 / 3, 1]], "diagonal"),
        ([[1, -3], [-1 / 3, 1]], "positive"),
        ([[1, 12], [1 / 12, 1]], "Saaty"),
        ([[1, 2, 3], [1 / 2, 1, 4]], "square"),
        ([[1]], "two criteria"),
    ],
)
def test_malformed_matrices_are_refused(matrix: list[list[float]], message: str) -> None:
    with pytest.raises(ahp.AhpError, match=message):
        ahp.weights(matrix)


def test_parse_matrix_reads_fractions_written_as_text() -> None:
    crit, m = ahp.parse_matrix({"criteria": ["x", "y"], "matrix": [[1, "3"], ["1/3", 1]]})
    assert crit == ["x", "y"]
    assert m[1][0] == pytest.approx(1 / 3)
    with pytest.raises(ahp.AhpError):
        ahp.parse_matrix({"matrix": [[1, "three"], ["1/3", 1]]})
