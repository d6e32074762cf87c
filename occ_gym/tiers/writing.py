"""Writing attempts: the request a tier answers, what a writer reports, and ``run_attempts``,
which writes a batch of requests with any writer and verifies each body on the public and
hidden tests. ``occ-gym record`` and live mode both write through it, so a live attempt equals
the recorded row with the same key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from occ_gym.tasks.base import CodeProblem
from occ_gym.traces.table import TraceRow
from occ_gym.verifier import Verifier

WRITE_BATCH = 64
"""Requests handed to a writer at once (the sandbox verifies one batch while the next is
written)."""


@dataclass(frozen=True)
class AttemptRequest:
    """One attempt to write: the problem, which sample, and the failed attempts before it."""

    problem: CodeProblem
    sample: int
    history: tuple[TraceRow, ...] = ()

    @property
    def repair_round(self) -> int:
        return len(self.history)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """The earlier candidates of the chain with the verifier's feedback on each."""
        return [(row.code, row.feedback) for row in self.history]


@dataclass(frozen=True)
class WrittenAttempt:
    """What a writer reports for one request: the body and what writing it took."""

    body: str
    context_tokens: int
    new_tokens: int
    flops: int
    wall_ms: float
    logprob_mean: float
    logprob_min: float
    context_dropped: int
    cost: float
    """In the cost unit of the writer's pool (a million FLOPs for a nano model)."""


class Writer(Protocol):
    """Who writes the bodies of one tier's attempts: a nano model here, or an endpoint
    (``occ_gym.tiers.endpoint``). ``name`` is the tier's name in the trace and in each
    attempt's sampling seed (``attempt_seed``)."""

    name: str

    def write(self, requests: Sequence[AttemptRequest]) -> list[WrittenAttempt]: ...


def run_attempts(
    writer: Writer, requests: Sequence[AttemptRequest], verifier: Verifier
) -> list[TraceRow]:
    """Write every request's body in batches, verify it on public and hidden tests, make rows."""
    written: list[WrittenAttempt] = []
    public, hidden = [], []
    # Batch by batch, so the sandbox verifies one batch while the next is written.
    for start in range(0, len(requests), WRITE_BATCH):
        batch = requests[start : start + WRITE_BATCH]
        bodies = writer.write(batch)
        for request, attempt in zip(batch, bodies, strict=True):
            public.append(verifier.submit(request.problem.candidate(attempt.body)))
            hidden.append(verifier.submit(request.problem.candidate(attempt.body, hidden=True)))
        written += bodies
    rows = []
    for request, attempt, public_future, hidden_future in zip(
        requests, written, public, hidden, strict=True
    ):
        verdict, hidden_verdict = public_future.result(), hidden_future.result()
        rows.append(
            TraceRow(
                task_id=request.problem.task_id,
                tier=writer.name,
                kind="repair" if request.repair_round else "fresh",
                sample=request.sample,
                repair_round=request.repair_round,
                context_tokens=attempt.context_tokens,
                new_tokens=attempt.new_tokens,
                flops=attempt.flops,
                wall_ms=attempt.wall_ms,
                verify_ms=1000 * verdict.wall_s,
                code=attempt.body,
                public_passed=verdict.tests_passed,
                public_total=verdict.tests_total,
                hidden_passed=hidden_verdict.tests_passed,
                hidden_total=hidden_verdict.tests_total,
                exit_kind=verdict.exit_kind.value,
                hidden_exit_kind=hidden_verdict.exit_kind.value,
                failure_root=""
                if verdict.passed or verdict.failure_root is None
                else verdict.failure_root.value,
                error_kind=verdict.error_kind.name.lower(),
                feedback=verdict.feedback(),
                logprob_mean=attempt.logprob_mean,
                logprob_min=attempt.logprob_min,
                public_outputs=verdict.outputs_digest(),
                context_dropped=attempt.context_dropped,
                cost=attempt.cost,
            )
        )
    return rows
