"""The verifier: screen, run in the sandbox, and judge on the host."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from occ_gym.verifier import protocol
from occ_gym.verifier.host_check import HostCheckRun
from occ_gym.verifier.judge import Budget, judge, rejected, settle
from occ_gym.verifier.sandbox import SandboxConfig, SandboxPool
from occ_gym.verifier.screen import DEFAULT_POLICY, ScreenPolicy
from occ_gym.verifier.verdict import Candidate, Verdict


class Verifier:
    """Runs candidates in a pool of sandboxes and judges their outputs on the host.

    The sandbox only ever sees the code and the test *inputs*. It sends back the outputs, and
    the host compares them with expected values it kept to itself, so a candidate that exits
    early, prints "passed", or tampers with the harness gains nothing.

    Use it as a context manager, or call :meth:`close`; the sandboxes are child processes.
    ``screen=None`` skips the AST screen (to test the sandbox itself; never needed otherwise).
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        screen: ScreenPolicy | None = DEFAULT_POLICY,
    ):
        self.config = config or SandboxConfig()
        self.screen = screen
        self.pool = SandboxPool(self.config)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the sandboxes."""
        self.pool.close()

    def verify(self, candidate: Candidate) -> Verdict:
        """Verify one candidate."""
        return self.verify_many([candidate])[0]

    def verify_many(
        self,
        candidates: Iterable[Candidate],
        progress: Callable[[int], None] | None = None,
    ) -> list[Verdict]:
        """Verify candidates across the pool; verdicts come back in the candidates' order.

        ``progress``, if given, is called with 1 as each verdict is ready.
        """
        futures = [self.submit(candidate) for candidate in candidates]
        verdicts = []
        for future in futures:
            verdicts.append(future.result())
            if progress is not None:
                progress(1)
        return verdicts

    def submit(self, candidate: Candidate) -> Future[Verdict]:
        """Start verifying ``candidate``; the future always ends with a verdict."""
        verdict: Future[Verdict] = Future()
        rejection = None if self.screen is None else self.screen.check(candidate.code)
        if rejection is not None:
            verdict.set_result(rejected(candidate, rejection))
            return verdict
        budget = self.budget(candidate)
        if candidate.host_check is not None:
            HostCheckRun(self.run, candidate, budget, verdict).start()
            return verdict

        def finish(answer: Future[dict[str, Any]]) -> None:
            verdict.set_result(settle(candidate, answer, budget, judge))

        inputs = [protocol.encode_value(list(test.args)) for test in candidate.tests]
        self.run(candidate, inputs, budget).add_done_callback(finish)
        return verdict

    def budget(self, candidate: Candidate) -> Budget:
        """The limits ``candidate`` runs under: its own CPU budget, or the sandbox's."""
        cpu_s = candidate.cpu_s or self.config.limits.cpu_s
        return Budget(cpu_s, self.config.limits.wall_backstop(cpu_s))

    def run(
        self, candidate: Candidate, inputs: list[Any], budget: Budget
    ) -> Future[dict[str, Any]]:
        """Run ``candidate``'s code in a sandbox and call its entry point on each of ``inputs``
        (argument lists as ``protocol.encode_value`` encodes them)."""
        return self.pool.submit(
            {
                "code": candidate.code,
                "entry_point": candidate.entry_point,
                "inputs": inputs,
                "cpu_s": budget.cpu_s,
                "wall_s": budget.wall_s,
            }
        )
