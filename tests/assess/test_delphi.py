"""Delphi consensus state machine."""

from __future__ import annotations

import pytest

from riskdesk.assess import delphi as dl
from riskdesk.assess.expert import Judgement


def J(lik: int, imp: int, who: str, comment: str | None = None) -> Judgement:
    return Judgement("credit", lik, imp, who, comment)


def test_scripted_answers_converge_in_the_second_round() -> None:
    rounds = [
        [J(1, 2, "ana", "pays on time"), J(3, 3, "bob"), J(5, 4, "eve", "court case pending")],
        [J(3, 3, "ana"), J(3, 3, "bob"), J(4, 3, "eve")],
        [J(3, 3, "ana"), J(3, 3, "bob"), J(3, 3, "eve")],  # never played
    ]
    state = dl.run_script("credit", rounds, dl.DelphiConfig(threshold=1.0, max_rounds=3))
    assert state.status == dl.CONVERGED
    assert state.round_no == 2
    assert len(state.history) == 2
    first = state.history[0]
    assert first.spread == 2.0 and not first.converged
    # feedback is anonymous: comments without names
    assert first.comments == ("court case pending", "pays on time")
    assert state.result is not None
    assert (state.result.likelihood, state.result.impact) == (3.0, 3.0)


def test_study_stops_at_max_rounds_without_agreement() -> None:
    split = [J(1, 1, "ana"), J(3, 3, "bob"), J(5, 5, "eve")]
    state = dl.run_script("credit", [split, split, split, split], dl.DelphiConfig(max_rounds=3))
    assert state.status == dl.EXHAUSTED
    assert len(state.history) == 3
    with pytest.raises(dl.DelphiError):
        dl.submit(state, J(3, 3, "ana"))


def test_an_assessor_revises_within_a_round_and_feedback_shows_the_previous_round() -> None:
    s = dl.start("credit", dl.DelphiConfig(threshold=0.5, max_rounds=4))
    assert s.feedback is None
    s = dl.submit(s, J(2, 2, "ana"))
    s = dl.submit(s, J(4, 4, "ana"))
    s = dl.submit(s, J(1, 1, "bob"))
    assert len(s.answers) == 2
    s = dl.close_round(s)
    assert s.status == dl.OPEN and s.round_no == 2
    assert s.feedback is not None and s.feedback.likelihood == 2.5


def test_a_round_needs_enough_answers_and_the_right_source() -> None:
    s = dl.start("credit", dl.DelphiConfig(min_answers=2))
    s = dl.submit(s, J(2, 2, "ana"))
    with pytest.raises(dl.DelphiError, match="needed"):
        dl.close_round(s)
    with pytest.raises(dl.DelphiError, match="market"):
        dl.submit(s, Judgement("market", 2, 2, "bob"))
