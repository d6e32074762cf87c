"""ImpactOracle: turns a submission's hidden-test results and its compute into a score."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """The oracle's score of one episode, term by term; ``total`` is their sum."""

    correctness: float
    pass_at_k: float
    regression: float
    compute_penalty: float
    total: float

    def as_dict(self) -> dict[str, float]:
        return {
            "correctness": self.correctness,
            "pass_at_k": self.pass_at_k,
            "regression": self.regression,
            "compute_penalty": self.compute_penalty,
            "total": self.total,
        }


@dataclass(frozen=True)
class ImpactOracle:
    """Correctness-minus-compute score of an episode (weights of the original OCC benchmark).

    For a submission that passes ``h`` of ``H`` hidden tests after spending ``c`` cost units:

    - **correctness**: ``correctness`` if the submission passes every hidden test (h = H);
    - **pass_at_k** (partial credit): ``pass_at_k * h / H`` if it fails at least one hidden test,
      so a near-miss is worth more than code that does nothing, but never as much as a pass;
    - **regression**: ``regression`` (a penalty, <= 0) if it fails at least one hidden test:
      shipping wrong code is worse than shipping nothing;
    - **compute**: ``-compute_penalty * c``, charged whether or not anything is submitted.

    Abstaining (or running out of steps) scores only the compute term. With the defaults a
    wrong submission scores at most ``0.3 - 0.5 < 0``, so abstaining beats guessing when the
    chance of a correct submission is low.
    """

    correctness: float = 1.0
    pass_at_k: float = 0.3
    regression: float = -0.5
    compute_penalty: float = 0.001
    """λ: score lost per cost unit (the environment charges it step by step)."""

    def __post_init__(self) -> None:
        for name in ("correctness", "pass_at_k", "regression", "compute_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"ImpactOracle.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"ImpactOracle.{name} must be finite, got {value!r}")
        if self.correctness < 0 or self.pass_at_k < 0 or self.compute_penalty < 0:
            raise ValueError(
                "ImpactOracle: correctness, pass_at_k and compute_penalty must be >= 0"
            )
        if self.regression > 0:
            raise ValueError(
                f"ImpactOracle.regression is a penalty and must be <= 0, got {self.regression}"
            )

    def outcome_terms(
        self, submitted: bool, hidden_passed: int, hidden_total: int
    ) -> tuple[float, float, float]:
        """(correctness, pass_at_k, regression) terms of a submission; zeros if none."""
        if not submitted:
            return 0.0, 0.0, 0.0
        if hidden_total <= 0 or not 0 <= hidden_passed <= hidden_total:
            raise ValueError(f"hidden tests passed {hidden_passed} of {hidden_total} is impossible")
        if hidden_passed == hidden_total:
            return float(self.correctness), 0.0, 0.0
        return 0.0, self.pass_at_k * hidden_passed / hidden_total, float(self.regression)

    def outcome_value(self, submitted: bool, hidden_passed: int, hidden_total: int) -> float:
        """Everything but the compute term: what SUBMIT adds to the reward."""
        return sum(self.outcome_terms(submitted, hidden_passed, hidden_total))

    def outcome_term_arrays(
        self, submitted: np.ndarray, hidden_passed: np.ndarray, hidden_total: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``outcome_terms`` of many episodes at once (the vector env's), each equal to the
        scalar one (``tests/test_oracle_ledger_broker.py``)."""
        full = submitted & (hidden_passed == hidden_total)
        failed = submitted & ~full
        with np.errstate(divide="ignore", invalid="ignore"):
            partial = self.pass_at_k * hidden_passed / hidden_total
        return (
            np.where(full, float(self.correctness), 0.0),
            np.where(failed, partial, 0.0),
            np.where(failed, float(self.regression), 0.0),
        )

    def outcome_values(self, hidden_passed: np.ndarray, hidden_total: np.ndarray) -> np.ndarray:
        """``outcome_value`` of many submissions at once, summed in the same order, so each
        equals the scalar value exactly."""
        submitted = np.ones(len(hidden_passed), dtype=bool)
        correctness, partial, regression = self.outcome_term_arrays(
            submitted, hidden_passed, hidden_total
        )
        return np.zeros(len(hidden_passed)) + correctness + partial + regression

    def score_arrays(
        self,
        submitted: np.ndarray,
        hidden_passed: np.ndarray,
        hidden_total: np.ndarray,
        compute: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """``score(...).as_dict()`` of many episodes at once, term for term."""
        correctness, partial, regression = self.outcome_term_arrays(
            submitted, hidden_passed, hidden_total
        )
        penalty = -self.compute_penalty * compute
        return {
            "correctness": correctness,
            "pass_at_k": partial,
            "regression": regression,
            "compute_penalty": penalty,
            "total": correctness + partial + regression + penalty,
        }

    def score(
        self, *, submitted: bool, hidden_passed: int, hidden_total: int, compute: float
    ) -> ScoreBreakdown:
        """The full score of an episode."""
        if not math.isfinite(compute) or compute < 0:
            raise ValueError(f"compute must be finite and >= 0, got {compute!r}")
        correctness, partial, regression = self.outcome_terms(
            submitted, hidden_passed, hidden_total
        )
        penalty = -self.compute_penalty * compute
        return ScoreBreakdown(
            correctness=correctness,
            pass_at_k=partial,
            regression=regression,
            compute_penalty=penalty,
            total=correctness + partial + regression + penalty,
        )
