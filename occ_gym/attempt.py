"""What one call to a code model produced, and how the verifier judged it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorKind(IntEnum):
    """Root category of a failed verification (``NONE`` when every public test passed).

    The order is part of the observation layout: do not reorder, only append.
    """

    NONE = 0
    SYNTAX = 1
    IMPORT = 2
    RUNTIME = 3
    WRONG_ANSWER = 4
    TIMEOUT = 5
    RESOURCE = 6
    SAFETY = 7


@dataclass(frozen=True, slots=True)
class Attempt:
    """One candidate solution and its (pre-determined) test results.

    The environment reveals the public results only after VERIFY and the hidden results only
    after SUBMIT; the attempt itself always carries both.
    """

    sample: int
    """Which fresh sample of that tier this chain started from (0, 1, ...)."""
    repair_round: int
    """0 for a fresh attempt, r for the r-th repair of that sample."""
    public_passed: int
    public_total: int
    hidden_passed: int
    hidden_total: int
    error_kind: ErrorKind
    """What VERIFY reports: ``ErrorKind.NONE`` when every public test passed."""
    cost: float
    """Compute spent writing the candidate, in cost units."""
    tokens_in: int
    tokens_out: int
    code: str | None = None
    """The candidate's code, where a real model wrote one (None for simulated tiers)."""
    feedback: str | None = None
    """The verifier's feedback on the public tests (what a REPAIR of this attempt reads)."""
    verify_ms: float = 0.0
    """Wall time the verifier took on the public tests (0 where nothing ran: simulated tiers)."""
    wall_ms: float = 0.0
    """Wall time the model took to write the candidate (0 for simulated tiers)."""
    logprob_mean: float = float("nan")
    """Mean log-probability of the written tokens under the tier (nan: not reported)."""
    logprob_min: float = float("nan")
    """Log-probability of the least likely written token (nan: not reported)."""
    public_outputs: str = ""
    """Digest of the outputs on the public inputs ("" unknown): equal means the candidates
    agree where the verifier looks."""
    context_dropped: int = -1
    """Earlier failed attempts of its chain left out of its context to fit the model's window
    (0 for a fresh attempt or an uncut repair; -1: not recorded)."""

    @property
    def public_pass(self) -> bool:
        return self.public_passed == self.public_total

    @property
    def hidden_pass(self) -> bool:
        return self.hidden_passed == self.hidden_total

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def outputs_key(self) -> float:
        """``public_outputs`` as a number (``outputs_key``), as both envs compare candidates."""
        return outputs_key(self.public_outputs)


def outputs_key(public_outputs: str) -> float:
    """A digest of public outputs as a number: its first 52 bits, exact in a float; 0 for
    unknown (""), which agrees with nothing."""
    return float(int(public_outputs[:13], 16)) if public_outputs else 0.0


OUTCOME_FIELDS = (
    "public_passed",
    "public_total",
    "hidden_passed",
    "hidden_total",
    "error_kind",
    "cost",
    "tokens",
    "wall_ms",
    "verify_ms",
)
"""The numbers of an ``Attempt`` that the vector env keeps as arrays, one per attempt."""
ANSWER_FIELDS = ("logprob_mean", "logprob_min", "tokens_out", "outputs_key")
"""The numbers behind the observation's answer-side signals (recorded tiers, OCC-Code-v1)."""
