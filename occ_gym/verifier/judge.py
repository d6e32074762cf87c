"""Host-side judging: a sandbox's answer becomes a :class:`Verdict`, and judging never raises.

Every answer a sandbox can give, and every byte a candidate can write, ends in a verdict
(``protocol`` for streams the harness did not write, ``wrong_answer`` for values that cannot
be compared).
"""

from __future__ import annotations

import base64
import signal
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from occ_gym.verifier import protocol
from occ_gym.verifier.sandbox import SandboxFailure
from occ_gym.verifier.screen import ScreenRejection
from occ_gym.verifier.verdict import (
    Candidate,
    ExitKind,
    Returned,
    TestOutcome,
    Verdict,
    clip,
    short_repr,
)


@dataclass(frozen=True)
class Budget:
    """The CPU budget and wall backstop one candidate ran under."""

    cpu_s: float
    wall_s: float


def settle(
    candidate: Candidate,
    answer: Future[dict[str, Any]],
    budget: Budget,
    judging: Callable[[Candidate, dict[str, Any], Budget], Verdict],
) -> Verdict:
    """The verdict for a finished sandbox request, whatever went wrong on the way."""
    try:
        return judging(candidate, answer.result(), budget)
    except SandboxFailure as error:
        return unrun(candidate, ExitKind.CRASH, f"sandbox failure: {error}")
    except Exception as error:  # judging never raises: a bug here is reported, not thrown
        return unrun(candidate, ExitKind.CRASH, f"could not be judged ({type(error).__name__})")


@dataclass
class Run:
    """One sandbox run, parsed: how loading went, each call's record in order, how it ended."""

    wall_s: float
    cpu_s: float
    load_error: tuple[str, str] | None = None
    jail_error: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    end: tuple[ExitKind, str, str | None] = (ExitKind.OK, "", None)
    """Why the run stopped early (exit kind, message, limit), when it is not complete."""


def read_run(answer: dict[str, Any], expected_calls: int, budget: Budget) -> Run:
    """Parse a sandbox's answer, trusting nothing the child wrote; raises WireError."""
    run = Run(wall_s=float(answer["wall_s"]), cpu_s=float(answer["cpu_s"]))
    records = _records(answer["payload"])
    limited = bool(answer["timed_out"] or answer["cpu_exceeded"] or answer["over_limit"])
    run.end = _process_end(answer, budget)
    if not records:
        return run
    first = records[0]
    if "jail" in first:
        run.jail_error = clip(str(first["jail"]))
        return run
    if "load" not in first:
        raise protocol.WireError("result stream tampered with")
    if first["load"] != "ok":
        run.load_error = (clip(str(first.get("type")), 80), clip(str(first.get("message"))))
        if len(records) > 1:
            raise protocol.WireError("unexpected records in result stream")
        return run
    position = 1
    while position < len(records) and "i" in records[position]:
        record = records[position]
        if record["i"] != len(run.calls) or len(run.calls) >= expected_calls:
            raise protocol.WireError("result stream out of order")
        if not any(key in record for key in ("out", "type", "unsendable")):
            raise protocol.WireError("malformed test record")
        run.calls.append(record)
        position += 1
    if position < len(records):
        if "done" not in records[position] or position != len(records) - 1:
            raise protocol.WireError("unexpected records in result stream")
        if records[position]["done"] != expected_calls or len(run.calls) != expected_calls:
            raise protocol.WireError("result stream claims an early end")
        run.complete = not limited
    return run


def _records(payload: Any) -> list[dict[str, Any]]:
    """The complete JSON lines of the child's result stream (a torn last line is dropped)."""
    if not isinstance(payload, str):
        raise protocol.WireError("malformed payload")
    try:
        raw = base64.b64decode(payload, validate=True)
    except ValueError:
        raise protocol.WireError("malformed payload encoding") from None
    lines = raw.split(b"\n")[:-1]
    records = []
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise protocol.WireError("result stream is not UTF-8") from None
        records.append(protocol.loads(line))
    return records


def returned(record: dict[str, Any], opaque_if_uncomparable: bool = False) -> Returned:
    """What one call record says the call returned; raises WireError when malformed.

    A hash-flooded or unhashable set raises UncomparableValue, or with
    ``opaque_if_uncomparable`` comes back as an output that cannot be compared.
    """
    if "out" in record:
        try:
            return Returned(protocol.decode_value(record["out"]))
        except protocol.UncomparableValue:
            if not opaque_if_uncomparable:
                raise
            return Returned(None, sendable=False)
    truthy = record.get("truthy")
    return Returned(None, sendable=False, truthy=truthy if isinstance(truthy, bool) else None)


def _process_end(answer: dict[str, Any], budget: Budget) -> tuple[ExitKind, str, str | None]:
    """Why the child stopped before writing everything: exit kind, message, limit."""
    if answer["cpu_exceeded"]:
        return ExitKind.TIMEOUT, f"exceeded the CPU budget of {budget.cpu_s:g} s", "cpu"
    if answer["timed_out"]:
        return ExitKind.TIMEOUT, f"exceeded the wall-clock backstop of {budget.wall_s:g} s", "wall"
    if answer["over_limit"]:
        return ExitKind.OUTPUT_LIMIT, "returned more output than the result limit", "output"
    number = answer.get("signal")
    if number is not None:
        number = int(number)
        if number == signal.SIGXCPU:
            return ExitKind.TIMEOUT, f"exceeded the CPU budget of {budget.cpu_s:g} s", "cpu"
        if number == signal.SIGXFSZ:
            return ExitKind.OUTPUT_LIMIT, "wrote a file over the size limit", "file_size"
        return ExitKind.CRASH, f"killed by {signal_name(number)}", None
    code = answer.get("exit_code")
    return ExitKind.EARLY_EXIT, f"exited with status {code} before all tests ran", None


def signal_name(number: int) -> str:
    """A signal's name, for any number the kernel can report (real-time ones included)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


def judge(candidate: Candidate, answer: dict[str, Any], budget: Budget) -> Verdict:
    """Turn a sandbox's answer on ``candidate.tests`` into a verdict. Never raises."""
    try:
        run = read_run(answer, len(candidate.tests), budget)
        return _judge_tests(candidate, run)
    except Exception as error:  # WireError, or anything else a crafted answer provokes
        reason = str(error) if isinstance(error, protocol.WireError) else type(error).__name__
        wall_s, cpu_s = answer_timing(answer)
        message = f"result stream tampered with: {reason}"
        return unrun(candidate, ExitKind.PROTOCOL, message, wall_s=wall_s, cpu_s=cpu_s)


def answer_timing(answer: dict[str, Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) an answer reports, zeros if it reports them badly."""
    try:
        return float(answer["wall_s"]), float(answer["cpu_s"])
    except (KeyError, TypeError, ValueError):
        return 0.0, 0.0


def _judge_tests(candidate: Candidate, run: Run) -> Verdict:
    early = early_verdict(candidate, run)
    if early is not None:
        return early
    outcomes, first_error_type = test_outcomes(candidate, run)
    return assemble(
        candidate, run, outcomes, first_error_type, None, wall_s=run.wall_s, cpu_s=run.cpu_s
    )


def early_verdict(candidate: Candidate, run: Run) -> Verdict | None:
    """The verdict when the code never got to its tests: setup failed, or loading it did."""
    if run.jail_error is not None:
        message = f"sandbox setup failed: {run.jail_error}"
        return unrun(candidate, ExitKind.CRASH, message, wall_s=run.wall_s, cpu_s=run.cpu_s)
    if run.load_error is not None:
        error_type, text = run.load_error
        kind, limit = exception_kind(error_type)
        message = f"raised {error_type}: {text} while loading the code"
        return unrun(
            candidate,
            kind,
            message,
            error_type=error_type,
            limit=limit,
            wall_s=run.wall_s,
            cpu_s=run.cpu_s,
        )
    return None


def test_outcomes(candidate: Candidate, run: Run) -> tuple[list[TestOutcome], str | None]:
    outcomes: list[TestOutcome] = []
    first_error_type: str | None = None
    for index, test in enumerate(candidate.tests[: len(run.calls)]):
        record = run.calls[index]
        if "type" in record:
            error_type = clip(str(record["type"]), 80)
            phrase = f"raised {error_type}: {clip(str(record.get('message')))}"
            kind, _ = exception_kind(error_type)
            outcomes.append(_outcome(candidate, index, False, kind, phrase))
            first_error_type = first_error_type or error_type
            continue
        try:
            result = returned(record)
        except protocol.UncomparableValue as error:
            phrase = f"returned a value that cannot be compared ({error})"
            outcomes.append(_outcome(candidate, index, False, ExitKind.WRONG_ANSWER, phrase))
            continue
        passed = test.accepts(result)
        kind = ExitKind.OK if passed else ExitKind.WRONG_ANSWER
        if result.sendable:
            phrase = f"returned {short_repr(result.value)}"
        else:
            phrase = (
                f"returned a value that cannot be compared ({clip(str(record.get('message')))})"
            )
        outcomes.append(_outcome(candidate, index, passed, kind, phrase))
    return outcomes, first_error_type


def assemble(
    candidate: Candidate,
    run: Run,
    outcomes: list[TestOutcome],
    first_error_type: str | None,
    check_outcome: TestOutcome | None,
    *,
    wall_s: float,
    cpu_s: float,
) -> Verdict:
    """Fill in the tests that did not run, then decide the verdict from the first failure."""
    end_kind, end_message, end_limit = (ExitKind.OK, "", None) if run.complete else run.end
    for index in range(len(outcomes), len(candidate.tests)):
        phrase = f"did not finish ({end_kind.value})" if index == len(outcomes) else "did not run"
        outcomes.append(_outcome(candidate, index, False, end_kind, phrase))
    if candidate.host_check is not None:
        if check_outcome is None:
            phrase = f"did not finish ({end_kind.value})"
            check_outcome = suite_outcome(candidate, False, end_kind, phrase)
        outcomes.append(check_outcome)
    failure = next((outcome for outcome in outcomes if not outcome.passed), None)
    passed = failure is None and (run.complete or candidate.host_check is not None)
    limit = None
    if passed:
        exit_kind, message = ExitKind.OK, ""
    elif failure is not None and failure.exit_kind is not ExitKind.OK:
        exit_kind = failure.exit_kind
        from_end = failure.exit_kind is end_kind and failure.got.startswith("did not")
        message, limit = (end_message, end_limit) if from_end else ("", None)
        if exit_kind is ExitKind.MEMORY:
            limit = "memory"
    else:
        exit_kind, message, limit = end_kind, end_message, end_limit
    return Verdict(
        passed, exit_kind, tuple(outcomes), message, first_error_type, wall_s, cpu_s, limit
    )


# --- judging a host check -----------------------------------------------------------------


def rejected(candidate: Candidate, rejection: ScreenRejection) -> Verdict:
    where = f" (line {rejection.line})" if rejection.line else ""
    message = f"{rejection.reason}{where}"
    if rejection.kind == "import":
        error_type = "ModuleNotFoundError"
        return unrun(candidate, ExitKind.EXCEPTION, message, "not run", error_type=error_type)
    kind = ExitKind.SYNTAX if rejection.kind == "syntax" else ExitKind.SAFETY
    return unrun(candidate, kind, message, "not run")


def suite_outcome(candidate: Candidate, passed: bool, kind: ExitKind, got: str) -> TestOutcome:
    """The outcome of a host check, counted as one test after the test cases."""
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
        expected=test.expected_text,
        got=got,
    )


def exception_kind(error_type: str) -> tuple[ExitKind, str | None]:
    if error_type == "MemoryError":
        return ExitKind.MEMORY, "memory"
    return ExitKind.EXCEPTION, None


def unrun(
    candidate: Candidate,
    kind: ExitKind,
    message: str,
    phrase: str = "did not run",
    *,
    error_type: str | None = None,
    limit: str | None = None,
    wall_s: float = 0.0,
    cpu_s: float = 0.0,
) -> Verdict:
    """A verdict where no test produced an output."""
    outcomes = [
        _outcome(candidate, index, False, kind, phrase) for index in range(len(candidate.tests))
    ]
    if candidate.host_check is not None:
        outcomes.append(suite_outcome(candidate, False, kind, phrase))
    return Verdict(False, kind, tuple(outcomes), message, error_type, wall_s, cpu_s, limit)
