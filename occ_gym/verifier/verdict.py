"""Test cases, verdicts, and the feedback text that REPAIR hands back to a tier."""

from __future__ import annotations

import hashlib
import math
import reprlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from occ_gym.attempt import ErrorKind

FEEDBACK_CLIP = 120
NOT_RUN = frozenset({"not run", "did not run"})
LIMITS = ("cpu", "wall", "memory", "output", "file_size")
"""The limits a verdict can name: CPU budget, wall backstop, address space, result stream
size, and the size of a file written (stdout and stderr included)."""


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


class Compare(str, Enum):
    """How a test call's output is judged, each exactly as the ``assert`` it stands for."""

    EQUAL = "=="
    """``assert candidate(*args) == expected``."""
    IS = "is"
    """``assert candidate(*args) is expected``, for ``True``, ``False`` or ``None``."""
    TRUTHY = "truthy"
    """``assert candidate(*args)``."""
    FALSY = "falsy"
    """``assert not candidate(*args)``."""
    CLOSE = "close"
    """``assert abs(candidate(*args) - expected) < abs_tol``."""


_SINGLETONS = (True, False, None)


@dataclass(frozen=True)
class Returned:
    """What a test call returned, as the host decoded it.

    ``value`` is a built-in value when the output could cross the wire; otherwise ``value`` is
    None, ``sendable`` False, and ``truthy`` what ``bool()`` of the output gave in the sandbox
    (the candidate decides its own return value, so it can forge nothing with it).
    """

    value: Any
    sendable: bool = True
    truthy: bool | None = None


@dataclass(frozen=True)
class TestCase:
    """One call and how its output is judged. ``expected`` never enters the sandbox.

    ``compare`` defaults to ``==``, or to ``abs(output - expected) < abs_tol`` when ``abs_tol``
    is set (strictly less, as HumanEval asserts).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    args: tuple[Any, ...]
    expected: Any = None
    abs_tol: float | None = None
    compare: Compare = Compare.EQUAL

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            raise TypeError(f"TestCase.args must be a tuple, got {type(self.args).__name__}")
        if self.abs_tol is not None and self.compare is Compare.EQUAL:
            object.__setattr__(self, "compare", Compare.CLOSE)
        if (self.compare is Compare.CLOSE) != (self.abs_tol is not None):
            raise ValueError("TestCase: abs_tol goes with compare=CLOSE, and only with it")
        if self.compare is Compare.IS and not any(self.expected is s for s in _SINGLETONS):
            raise ValueError("TestCase: compare=IS is only for True, False or None")

    def accepts(self, returned: Returned | Any) -> bool:
        """Whether the output passes; never raises (an error in comparing is a failure)."""
        if not isinstance(returned, Returned):
            returned = Returned(returned)
        if not returned.sendable:
            if self.compare is Compare.TRUTHY:
                return returned.truthy is True
            if self.compare is Compare.FALSY:
                return returned.truthy is False
            return False
        output = returned.value
        try:
            if self.compare is Compare.EQUAL:
                return bool(output == self.expected)
            if self.compare is Compare.IS:
                return output is self.expected
            if self.compare is Compare.TRUTHY:
                return bool(output)
            if self.compare is Compare.FALSY:
                return not output
            assert self.abs_tol is not None
            return bool(abs(output - self.expected) < self.abs_tol)
        except (ArithmeticError, TypeError, ValueError):
            return False  # the assert would have raised: the test fails

    @property
    def expected_text(self) -> str:
        """The expectation in words, for feedback."""
        if self.compare is Compare.TRUTHY:
            return "a truthy value"
        if self.compare is Compare.FALSY:
            return "a falsy value"
        if self.compare is Compare.IS:
            return f"{self.expected!r} itself"
        if self.compare is Compare.CLOSE:
            return f"{short_repr(self.expected)} within {self.abs_tol:g}"
        return short_repr(self.expected)


@dataclass(frozen=True)
class HostCheck:
    """A trusted assert suite that runs on the host, never in the sandbox.

    ``source`` defines ``check(candidate)``, as HumanEval's suites do; ``preamble`` is trusted
    code run first in the same namespace (HumanEval's prompt, for its helpers). The suite calls
    a proxy in place of the candidate: each call is executed in the sandbox and returns the
    decoded output, so nothing the candidate does can make the suite itself pass. ``import
    random`` inside the suite gets a private ``random.Random(seed)``, so a verdict is
    reproducible and the host's global random state is left alone.
    """

    source: str
    preamble: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    """Code to verify: ``entry_point`` is called on each test's arguments.

    ``host_check`` is an assert suite that could not be turned into test cases; it runs on the
    host and counts as one test after ``tests``. ``cpu_s`` overrides the sandbox's CPU budget.
    """

    code: str
    entry_point: str
    tests: tuple[TestCase, ...] = ()
    host_check: HostCheck | None = None
    cpu_s: float | None = None

    def __post_init__(self) -> None:
        if not self.entry_point.isidentifier():
            raise ValueError(f"entry_point must be an identifier, got {self.entry_point!r}")
        if not self.tests and self.host_check is None:
            raise ValueError("a Candidate needs tests or a host check")
        if self.cpu_s is not None and not (self.cpu_s > 0 and math.isfinite(self.cpu_s)):
            raise ValueError(f"cpu_s must be finite and > 0, got {self.cpu_s}")


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
    wall_s: float = 0.0
    cpu_s: float = 0.0
    limit: str | None = None
    """The limit the run met, if one ended it: one of ``LIMITS``."""
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

    def outputs_digest(self) -> str:
        """A short digest of what every test call returned, "" when one did not return: two
        candidates with equal digests agree on these inputs (whatever the expected outputs)."""
        returned = [outcome.got for outcome in self.tests]
        if not returned or not all(got.startswith("returned ") for got in returned):
            return ""
        text = "\n".join(returned).encode()
        return hashlib.blake2b(text, digest_size=8).hexdigest()

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


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, which also never renders a huge int's digits."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 24
_SHORT.maxstring = _SHORT.maxother = FEEDBACK_CLIP
_SHORT.maxlevel = 4


def short_repr(value: Any, limit: int = FEEDBACK_CLIP) -> str:
    """``repr(value)`` for feedback, built without rendering a huge value in full."""
    return clip(_SHORT.repr(value), limit)


def clip(text: str, limit: int = FEEDBACK_CLIP) -> str:
    """Shorten ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
