import numpy as np
import pytest

from riskdesk.assess.scale import MASTER_SCALE, grade_for_pd, grade_info, grades_for_pd, notch


def test_bands_are_contiguous_and_worsen() -> None:
    for a, b in zip(MASTER_SCALE, MASTER_SCALE[1:], strict=False):
        assert a.pd_high == b.pd_low
        assert a.pd_mid < b.pd_mid


def test_pd_maps_to_the_grade_holding_it() -> None:
    assert grade_for_pd(0.0) == 1
    assert grade_for_pd(0.02) == 5
    assert grade_for_pd(0.025) == 6
    assert grade_for_pd(1.0) == 10
    assert grades_for_pd([0.0, 0.02, 0.5]).tolist() == [1, 5, 10]
    assert np.all(
        grades_for_pd(np.linspace(0, 1, 50)) == [grade_for_pd(p) for p in np.linspace(0, 1, 50)]
    )


def test_grade_mid_pd_lies_in_its_band() -> None:
    for g in MASTER_SCALE:
        assert grade_for_pd(g.pd_mid) == g.grade


def test_notching_stays_on_the_scale() -> None:
    assert notch(9, 3) == 10 and notch(2, -5) == 1 and notch(5, 2) == 7
    with pytest.raises(ValueError):
        grade_info(11)
