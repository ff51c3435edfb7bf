"""Delphi consensus as a pure state machine.

Assessors answer a round (likelihood and impact of one risk source, with a comment). When the
round is closed, everybody sees its anonymous summary — medians, spread and the comments
without names — and answers the next round. The study stops when the spread falls below
``threshold`` (``converged``) or after ``max_rounds`` (``exhausted``).

    state = start("credit", DelphiConfig(threshold=1.0, max_rounds=3))
    state = submit(state, Judgement("credit", 4, 3, "ana"))
    ...
    state = close_round(state)   # → next round, or converged / exhausted
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from riskdesk.assess.expert import Consensus, Judgement, consensus, validate

OPEN, CONVERGED, EXHAUSTED = "open", "converged", "exhausted"


class DelphiError(ValueError):
    """An action the Delphi state does not allow."""


@dataclass(frozen=True)
class DelphiConfig:
    threshold: float = 1.0
    """Stop when the spread (larger IQR of likelihood and impact) is below this."""
    max_rounds: int = 3
    min_answers: int = 2

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise DelphiError("the spread threshold must be positive")
        if self.max_rounds < 1:
            raise DelphiError("at least one round is needed")
        if self.min_answers < 1:
            raise DelphiError("at least one answer per round is needed")


@dataclass(frozen=True)
class RoundSummary:
    """What assessors see of a closed round: no names."""

    round_no: int
    n: int
    likelihood: float
    impact: float
    spread: float
    likelihood_iqr: float
    impact_iqr: float
    comments: tuple[str, ...]
    converged: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "round": self.round_no,
            "n": self.n,
            "likelihood": self.likelihood,
            "impact": self.impact,
            "spread": self.spread,
            "likelihood_iqr": self.likelihood_iqr,
            "impact_iqr": self.impact_iqr,
            "comments": list(self.comments),
            "converged": self.converged,
        }


@dataclass(frozen=True)
class DelphiState:
    source: str
    config: DelphiConfig
    round_no: int = 1
    answers: tuple[Judgement, ...] = ()
    history: tuple[RoundSummary, ...] = ()
    closed_answers: tuple[tuple[Judgement, ...], ...] = field(default_factory=tuple)
    status: str = OPEN

    @property
    def feedback(self) -> RoundSummary | None:
        """The anonymous summary of the previous round (None in round 1)."""
        return self.history[-1] if self.history else None

    @property
    def result(self) -> Consensus | None:
        """The consensus of the last closed round."""
        if not self.closed_answers:
            return None
        return consensus(self.closed_answers[-1])[0]


def start(source: str, config: DelphiConfig | None = None) -> DelphiState:
    if not source or not source.strip():
        raise DelphiError("a risk source code is required")
    return DelphiState(source=source, config=config or DelphiConfig())


def submit(state: DelphiState, answer: Judgement) -> DelphiState:
    """Record (or replace) one assessor's answer in the open round."""
    if state.status != OPEN:
        raise DelphiError(f"the study is {state.status}; no more answers")
    if answer.source != state.source:
        raise DelphiError(f"this study is about {state.source!r}, not {answer.source!r}")
    validate(answer.source, answer.likelihood, answer.impact, answer.assessor)
    kept = tuple(a for a in state.answers if a.assessor != answer.assessor)
    return replace(state, answers=(*kept, answer))


def summarise(round_no: int, answers: tuple[Judgement, ...], threshold: float) -> RoundSummary:
    c = consensus(answers)[0]
    comments = tuple(sorted(a.comment.strip() for a in answers if a.comment and a.comment.strip()))
    return RoundSummary(
        round_no=round_no,
        n=c.n,
        likelihood=c.likelihood,
        impact=c.impact,
        spread=c.spread,
        likelihood_iqr=c.likelihood_iqr,
        impact_iqr=c.impact_iqr,
        comments=comments,
        converged=c.spread < threshold,
    )


def close_round(state: DelphiState) -> DelphiState:
    """Close the open round: converge, run out of rounds, or open the next round."""
    if state.status != OPEN:
        raise DelphiError(f"the study is {state.status} already")
    if len(state.answers) < state.config.min_answers:
        raise DelphiError(
            f"round {state.round_no} has {len(state.answers)} answers; "
            f"{state.config.min_answers} are needed to close it"
        )
    summary = summarise(state.round_no, state.answers, state.config.threshold)
    closed = (*state.closed_answers, state.answers)
    history = (*state.history, summary)
    if summary.converged:
        return replace(state, history=history, closed_answers=closed, status=CONVERGED)
    if state.round_no >= state.config.max_rounds:
        return replace(state, history=history, closed_answers=closed, status=EXHAUSTED)
    return replace(
        state, round_no=state.round_no + 1, answers=(), history=history, closed_answers=closed
    )


def run_script(
    source: str, rounds: list[list[Judgement]], config: DelphiConfig | None = None
) -> DelphiState:
    """Play a scripted study: each inner list is one round's answers. Stops early when the
    state is no longer open."""
    state = start(source, config)
    for answers in rounds:
        if state.status != OPEN:
            break
        for a in answers:
            state = submit(state, a)
        state = close_round(state)
    return state
