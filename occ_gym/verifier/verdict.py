"""Test cases, verdicts, and the feedback text that REPAIR hands back to a tier."""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from occ_gym.attempt import ErrorKind

FEEDBACK_CLIP = 120
NOT_RUN = frozenset({"not run", "did not run"})


class ExitKind(str, Enum):
    """How a candidate's run ended (the first failing test decides when several fail)."""

    OK = "ok"
    WRONG_ANSWER = "wrong_answer"
    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    CRASH = "crash"
    """Killed by a signal (a C-level crash) or the sandbox server died."""
    EARLY_EXIT = "early_exit"
    """The process ended before every test had run (``os._exit`` and the like)."""
    PROTOCOL = "protocol"
    """What the child wrote back is not what the harness writes: tampering."""
    SAFETY = "safety"
    SYNTAX = "syntax"


class FailureRoot(str, Enum):
    """Root category of a failure, as the event log records it."""

    SYNTAX = "syntax/build"
    IMPORT = "import"
    SEMANTIC = "semantic"
    TIMEOUT = "timeout"
    RESOURCE = "resource"
    SAFETY = "safety"


_ROOT_OF_EXIT = {
    ExitKind.WRONG_ANSWER: FailureRoot.SEMANTIC,
    ExitKind.EXCEPTION: FailureRoot.SEMANTIC,
    ExitKind.TIMEOUT: FailureRoot.TIMEOUT,
    ExitKind.MEMORY: FailureRoot.RESOURCE,
    ExitKind.OUTPUT_LIMIT: FailureRoot.RESOURCE,
    ExitKind.CRASH: FailureRoot.RESOURCE,
    ExitKind.EARLY_EXIT: FailureRoot.SEMANTIC,
    ExitKind.PROTOCOL: FailureRoot.SAFETY,
    ExitKind.SAFETY: FailureRoot.SAFETY,
    ExitKind.SYNTAX: FailureRoot.SYNTAX,
}
_ERROR_KIND_OF_ROOT = {
    FailureRoot.SYNTAX: ErrorKind.SYNTAX,
    FailureRoot.IMPORT: ErrorKind.IMPORT,
    FailureRoot.TIMEOUT: ErrorKind.TIMEOUT,
    FailureRoot.RESOURCE: ErrorKind.RESOURCE,
    FailureRoot.SAFETY: ErrorKind.SAFETY,
}
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


def failure_root(exit_kind: ExitKind, error_type: str | None = None) -> FailureRoot | None:
    """The event-log root of an exit kind (None for OK); a failed import is its own root."""
    if exit_kind is ExitKind.OK:
        return None
    if error_type in IMPORT_ERRORS:
        return FailureRoot.IMPORT
    return _ROOT_OF_EXIT[exit_kind]


@dataclass(frozen=True)
class TestCase:
    """One call and the output it must return. ``expected`` never enters the sandbox.

    With ``abs_tol`` set, a number within ``abs_tol`` of ``expected`` passes (strictly less,
    as HumanEval's ``abs(candidate(x) - y) < tol`` asserts); otherwise Python ``==`` decides.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    args: tuple[Any, ...]
    expected: Any
    abs_tol: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            raise TypeError(f"TestCase.args must be a tuple, got {type(self.args).__name__}")

    def accepts(self, output: Any) -> bool:
        """Whether ``output`` (decoded by the host, so only built-in types) passes."""
        if self.abs_tol is None:
            return bool(output == self.expected)
        numbers = (int, float)
        if isinstance(output, bool) or not isinstance(output, numbers):
            return False
        return math.isfinite(output) and abs(output - self.expected) < self.abs_tol


@dataclass(frozen=True)
class Candidate:
    """Code to verify: ``entry_point`` is called on each test's arguments.

    ``check`` is an assert-style suite (HumanEval's ``def check(candidate): ...``) that could
    not be turned into test cases. It runs inside the sandbox, so its verdict can be forged by
    hostile code; verdicts that rely on it say so (``Verdict.weak``).
    """

    code: str
    entry_point: str
    tests: tuple[TestCase, ...] = ()
    check: str | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not self.entry_point.isidentifier():
            raise ValueError(f"entry_point must be an identifier, got {self.entry_point!r}")
        if not self.tests and self.check is None:
            raise ValueError("a Candidate needs tests or a check suite")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class TestOutcome:
    """The host's judgement of one test call."""

    __test__: ClassVar[bool] = False

    index: int
    passed: bool
    exit_kind: ExitKind
    call: str
    expected: str
    got: str
    """What happened, as a phrase: "returned [3]", "raised ValueError: ...", "did not run"."""


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer for one candidate. ``passed`` only when the host confirmed all."""

    passed: bool
    exit_kind: ExitKind
    tests: tuple[TestOutcome, ...]
    message: str = ""
    """The first failure in words ("" when passed)."""
    error_type: str | None = None
    weak: bool = False
    """True when the verdict rests on an assert suite run inside the sandbox."""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    failure_root: FailureRoot | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failure_root", failure_root(self.exit_kind, self.error_type))

    @property
    def tests_passed(self) -> int:
        return sum(outcome.passed for outcome in self.tests)

    @property
    def tests_total(self) -> int:
        return len(self.tests)

    @property
    def first_failure(self) -> TestOutcome | None:
        return next((outcome for outcome in self.tests if not outcome.passed), None)

    @property
    def error_kind(self) -> ErrorKind:
        """The environment's observation category for this verdict."""
        if self.passed:
            return ErrorKind.NONE
        if self.exit_kind is ExitKind.WRONG_ANSWER:
            return ErrorKind.WRONG_ANSWER
        assert self.failure_root is not None
        return _ERROR_KIND_OF_ROOT.get(self.failure_root, ErrorKind.RUNTIME)

    def feedback(self) -> str:
        """The verifier's feedback in a few lines, as REPAIR appends it to a tier's context."""
        if self.passed:
            return f"All {self.tests_total} tests passed."
        lines = [
            f"Failed ({self.exit_kind.value}): {self.tests_passed}/{self.tests_total} tests passed."
        ]
        failure = self.first_failure
        if failure is not None and failure.got not in NOT_RUN:
            lines.append(f"{failure.call} {failure.got}; expected {failure.expected}.")
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)


_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 24
_SHORT.maxstring = _SHORT.maxother = FEEDBACK_CLIP
_SHORT.maxlevel = 4


def short_repr(value: Any, limit: int = FEEDBACK_CLIP) -> str:
    """``repr(value)`` for feedback, built without rendering a huge value in full."""
    return clip(_SHORT.repr(value), limit)


def clip(text: str, limit: int = FEEDBACK_CLIP) -> str:
    """Shorten ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
