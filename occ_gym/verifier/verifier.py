"""The verifier: screen, run in the sandbox, and judge on the host."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from occ_gym.verifier import protocol
from occ_gym.verifier.sandbox import SandboxConfig, SandboxFailure, SandboxPool
from occ_gym.verifier.screen import DEFAULT_POLICY, ScreenPolicy, ScreenRejection
from occ_gym.verifier.verdict import (
    Candidate,
    ExitKind,
    TestOutcome,
    Verdict,
    clip,
    short_repr,
)


class Verifier:
    """Runs candidates in a pool of sandboxed fork servers and judges their outputs.

    The sandbox only ever sees the code and the test *inputs*. It sends back the outputs, and
    the host compares them with expected values it kept to itself, so a candidate that exits
    early, prints "passed", or tampers with the harness gains nothing.

    Use it as a context manager, or call :meth:`close`; the servers are child processes.
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
        """Stop the fork servers."""
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
        """Start verifying ``candidate``; the future holds its verdict."""
        verdict: Future[Verdict] = Future()
        rejection = None if self.screen is None else self.screen.check(candidate.code)
        if rejection is not None:
            verdict.set_result(_rejected(candidate, rejection))
            return verdict
        timeout_s = self._timeout(candidate)

        def finish(answer: Future[dict[str, Any]]) -> None:
            try:
                verdict.set_result(judge(candidate, answer.result(), timeout_s))
            except SandboxFailure as error:
                verdict.set_result(_unrun(candidate, ExitKind.CRASH, f"sandbox failure: {error}"))
            except BaseException as error:  # a bug in judging must not hang the caller
                verdict.set_exception(error)

        self.pool.submit(self._request(candidate)).add_done_callback(finish)
        return verdict

    def _timeout(self, candidate: Candidate) -> float:
        return candidate.timeout_s or self.config.limits.timeout_s

    def _request(self, candidate: Candidate) -> dict[str, Any]:
        return {
            "code": candidate.code,
            "entry_point": candidate.entry_point,
            "inputs": [protocol.encode_value(list(test.args)) for test in candidate.tests],
            "check": candidate.check,
            "timeout": self._timeout(candidate),
        }


def judge(candidate: Candidate, answer: dict[str, Any], timeout_s: float) -> Verdict:
    """Turn a fork server's answer into a verdict, trusting nothing the child wrote."""
    timing = {"wall_s": float(answer["wall_s"]), "cpu_s": float(answer["cpu_s"])}
    try:
        return _judge_records(candidate, _records(answer["payload"]), answer, timeout_s, timing)
    except protocol.WireError as error:
        return _unrun(
            candidate, ExitKind.PROTOCOL, f"result stream tampered with: {error}", **timing
        )


def _judge_records(
    candidate: Candidate,
    records: list[dict[str, Any]],
    answer: dict[str, Any],
    timeout_s: float,
    timing: dict[str, float],
) -> Verdict:
    if not records:
        kind, message = _process_end(answer, timeout_s)
        return _unrun(candidate, kind, message, **timing)
    if "jail" in records[0]:
        message = f"sandbox setup failed: {records[0]['jail']}"
        return _unrun(candidate, ExitKind.CRASH, message, **timing)
    if "load" not in records[0]:
        return _unrun(candidate, ExitKind.PROTOCOL, "result stream tampered with", **timing)
    load = records[0]
    if load["load"] != "ok":
        error_type = str(load.get("type"))
        kind = _exception_kind(error_type)
        message = f"raised {error_type}: {clip(str(load.get('message')))} while loading the code"
        return _unrun(candidate, kind, message, error_type=error_type, **timing)

    outcomes: list[TestOutcome] = []
    position = 1
    first_error_type: str | None = None
    for index, test in enumerate(candidate.tests):
        record = records[position] if position < len(records) else None
        if record is None or "i" not in record:
            break
        if record["i"] != index:
            return _unrun(candidate, ExitKind.PROTOCOL, "result stream out of order", **timing)
        position += 1
        outcome = _judge_call(candidate, test, index, record)
        if outcome is None:
            return _unrun(candidate, ExitKind.PROTOCOL, "malformed test record", **timing)
        if not outcome.passed and first_error_type is None and "type" in record:
            first_error_type = str(record["type"])
        outcomes.append(outcome)

    check_outcome: TestOutcome | None = None
    if candidate.check is not None and len(outcomes) == len(candidate.tests):
        record = records[position] if position < len(records) else None
        if record is not None and "check" in record:
            position += 1
            check_outcome = _judge_check(candidate, record)
            if not check_outcome.passed and first_error_type is None:
                first_error_type = str(record.get("type"))
    done = position < len(records) and "done" in records[position]
    if done:
        all_ran = len(outcomes) == len(candidate.tests)
        checked = candidate.check is None or check_outcome is not None
        if records[position]["done"] != len(candidate.tests) or not all_ran or not checked:
            return _unrun(
                candidate, ExitKind.PROTOCOL, "result stream claims an early end", **timing
            )
        position += 1
    if position != len(records):
        return _unrun(candidate, ExitKind.PROTOCOL, "unexpected records in result stream", **timing)
    complete = done and not answer["timed_out"] and not answer["over_limit"]

    end_kind, end_message = (ExitKind.OK, "") if complete else _process_end(answer, timeout_s)
    for index in range(len(outcomes), len(candidate.tests)):
        phrase = f"did not finish ({end_kind.value})" if index == len(outcomes) else "did not run"
        outcomes.append(_outcome(candidate, index, False, end_kind, phrase))
    if candidate.check is not None:
        if check_outcome is None:
            phrase = f"did not finish ({end_kind.value})"
            check_outcome = _check_outcome(candidate, False, end_kind, phrase)
        outcomes.append(check_outcome)

    failure = next((outcome for outcome in outcomes if not outcome.passed), None)
    passed = complete and failure is None
    if passed:
        exit_kind, message = ExitKind.OK, ""
    elif failure is not None and failure.exit_kind is not ExitKind.OK:
        exit_kind, message = failure.exit_kind, end_message if failure.exit_kind is end_kind else ""
    else:
        exit_kind, message = end_kind, end_message
    return _verdict(candidate, passed, exit_kind, outcomes, message, first_error_type, **timing)


def _rejected(candidate: Candidate, rejection: ScreenRejection) -> Verdict:
    where = f" (line {rejection.line})" if rejection.line else ""
    message = f"{rejection.reason}{where}"
    if rejection.kind == "import":
        error_type = "ModuleNotFoundError"
        return _unrun(candidate, ExitKind.EXCEPTION, message, "not run", error_type=error_type)
    kind = ExitKind.SYNTAX if rejection.kind == "syntax" else ExitKind.SAFETY
    return _unrun(candidate, kind, message, "not run")


def _records(payload: str) -> list[dict[str, Any]]:
    """The complete JSON lines of the child's result stream (a torn last line is dropped)."""
    lines = payload.split("\n")
    return [protocol.loads(line.encode()) for line in lines[:-1]]


def _judge_call(
    candidate: Candidate, test: Any, index: int, record: dict[str, Any]
) -> TestOutcome | None:
    if "out" in record:
        output = protocol.decode_value(record["out"])
        passed = test.accepts(output)
        kind = ExitKind.OK if passed else ExitKind.WRONG_ANSWER
        return _outcome(candidate, index, passed, kind, f"returned {short_repr(output)}")
    if "type" in record:
        error_type = str(record["type"])
        phrase = f"raised {error_type}: {clip(str(record.get('message')))}"
        return _outcome(candidate, index, False, _exception_kind(error_type), phrase)
    if "unsendable" in record:
        phrase = f"returned a value that cannot be compared ({clip(str(record.get('message')))})"
        return _outcome(candidate, index, False, ExitKind.WRONG_ANSWER, phrase)
    return None


def _judge_check(candidate: Candidate, record: dict[str, Any]) -> TestOutcome:
    if record["check"] == "ok":
        return _check_outcome(candidate, True, ExitKind.OK, "passed")
    error_type = str(record.get("type"))
    kind = ExitKind.WRONG_ANSWER if error_type == "AssertionError" else _exception_kind(error_type)
    phrase = f"raised {error_type}: {clip(str(record.get('message')))}"
    return _check_outcome(candidate, False, kind, phrase)


def _check_outcome(candidate: Candidate, passed: bool, kind: ExitKind, got: str) -> TestOutcome:
    """The outcome of an assert suite, counted as one test after the test cases."""
    call = f"check({candidate.entry_point})"
    return TestOutcome(len(candidate.tests), passed, kind, call, "no failing assert", got)


def _outcome(
    candidate: Candidate, index: int, passed: bool, kind: ExitKind, got: str
) -> TestOutcome:
    test = candidate.tests[index]
    arguments = ", ".join(short_repr(argument) for argument in test.args)
    return TestOutcome(
        index=index,
        passed=passed,
        exit_kind=kind,
        call=clip(f"{candidate.entry_point}({arguments})"),
        expected=short_repr(test.expected),
        got=got,
    )


def _exception_kind(error_type: str) -> ExitKind:
    return ExitKind.MEMORY if error_type == "MemoryError" else ExitKind.EXCEPTION


def _process_end(answer: dict[str, Any], timeout_s: float) -> tuple[ExitKind, str]:
    """Why the child stopped before writing everything."""
    if answer["timed_out"]:
        return ExitKind.TIMEOUT, f"timed out after {timeout_s:g} s"
    if answer["over_limit"]:
        return ExitKind.OUTPUT_LIMIT, "returned more output than the result limit"
    number = answer.get("signal")
    if number is not None:
        if number == signal.SIGXCPU:
            return ExitKind.TIMEOUT, "exceeded the CPU time limit"
        if number == signal.SIGXFSZ:
            return ExitKind.OUTPUT_LIMIT, "printed more than the output limit"
        return ExitKind.CRASH, f"killed by {signal.Signals(number).name}"
    return ExitKind.EARLY_EXIT, f"exited with status {answer.get('exit_code')} before all tests ran"


def _unrun(
    candidate: Candidate,
    kind: ExitKind,
    message: str,
    phrase: str = "did not run",
    *,
    error_type: str | None = None,
    wall_s: float = 0.0,
    cpu_s: float = 0.0,
) -> Verdict:
    """A verdict where no test produced an output."""
    outcomes = [
        _outcome(candidate, index, False, kind, phrase) for index in range(len(candidate.tests))
    ]
    if candidate.check is not None:
        outcomes.append(_check_outcome(candidate, False, kind, phrase))
    return _verdict(candidate, False, kind, outcomes, message, error_type, wall_s, cpu_s)


def _verdict(
    candidate: Candidate,
    passed: bool,
    exit_kind: ExitKind,
    outcomes: list[TestOutcome],
    message: str,
    error_type: str | None,
    wall_s: float,
    cpu_s: float,
) -> Verdict:
    """The one place a Verdict is assembled: weak whenever an assert suite was involved."""
    weak = candidate.check is not None
    return Verdict(passed, exit_kind, tuple(outcomes), message, error_type, weak, wall_s, cpu_s)
