"""Synthetic programming tasks: small Python functions composed of 1 to 4 primitive operations.

A task is a pipeline over a list of ints (``xs``) or a string (``s``): filters, maps, slicing,
sorting, dedup, then optionally a reducer. Each operation has several English phrasings, one
line of reference code, and a Python function that computes the expected outputs on the host.
The prompt is a comment block (the description and two public examples) and the signature; a
model writes the body. Hidden tests add edge cases: empty input, negatives, duplicates.

Splits are disjoint by construction: a hash of a program's reference code puts it in one of
three splits, so no program (and hence no description, which names the program's operations
and constants) appears in two of them, however many tasks a trainer draws:

- ``test`` (1 program in 8): held-out tasks, for scoring allocators and code models;
- ``train`` (1 in 8): tasks for training allocation policies;
- ``models`` (the other 6 in 8): the only programs the nano code models are trained on, so that
  a tier solves policy-training tasks exactly as well as held-out ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from occ_gym.tasks.base import CARVED_SPLITS, Task
from occ_gym.verifier.verdict import Candidate, TestCase

SYNTHETIC_SEED = 20_261_121
ENTRY_POINT = "f"
SPLIT_BUCKETS = 8
SPLITS = ("train", "test", "models")
"""Program hash mod ``SPLIT_BUCKETS``: 0 is ``test``, 1 is ``train``, the rest ``models``."""
PUBLIC_TESTS = 2
HIDDEN_TESTS = 10
MAX_OPERATIONS = 4
OPERATION_MIX = (0.25, 0.25, 0.25, 0.25)
"""Share of tasks with 1, 2, 3 and 4 operations (the difficulty mix)."""


@dataclass(frozen=True)
class TaskMix:
    """Which tasks a benchmark version draws: their id prefix, difficulty mix, public inputs."""

    prefix: str
    """Task ids are ``<prefix>/<split>/<index>``."""
    operation_mix: tuple[float, ...]
    """Share of tasks with 1 .. ``MAX_OPERATIONS`` operations."""
    public_kind: str
    """How public examples are drawn: ``random`` (as hidden random inputs) or ``plain``
    (short, positive, no repeated values: edge cases stay hidden, so a public pass can lie)."""
    stream: tuple[int, ...] = ()
    """Appended to the random stream's key, so each mix draws its own problems."""
    validation_by_program: bool = False
    """Carve ``val`` from ``train`` by program (a hash of the reference code), so no ``val``
    task shares its program with a ``fit`` task, as no ``test`` task does with ``train``;
    else by index (every 10th task)."""


V0_TASKS = TaskMix("synthetic", OPERATION_MIX, "random")
"""OCC-Code-v0: 1 to 4 operations, public examples drawn like the hidden random ones."""
V1_TASKS = TaskMix("synthetic-v1", (0.0, 0.4, 0.35, 0.25), "plain", (1,), True)
"""OCC-Code-v1: 2 to 4 operations (1-operation programs are too few to fill a split), plain
public examples, edge cases only among the hidden tests."""
TASK_MIXES = {mix.prefix: mix for mix in (V0_TASKS, V1_TASKS)}


@dataclass(frozen=True)
class Operation:
    """One step of a pipeline: its code line, its meaning, and the ways to say it."""

    name: str
    domain: str
    """``ints`` (a list of ints) or ``str``."""
    returns: str
    """The domain it produces: ``ints``, ``str`` or ``int`` (a reducer, always last)."""
    code: str
    phrases: tuple[str, ...]
    apply: Callable[[Any, int], Any]
    constants: tuple[int, ...] = ()
    """The constants it draws from (empty when it takes none)."""


def _dedup(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


OPERATIONS: tuple[Operation, ...] = (
    # --- list of ints -> list of ints
    Operation(
        "keep_greater",
        "ints",
        "ints",
        "xs = [x for x in xs if x > {c}]",
        ("keep the numbers greater than {c}", "drop every number not above {c}"),
        lambda xs, c: [x for x in xs if x > c],
        (-2, 0, 1, 3, 5),
    ),
    Operation(
        "keep_less",
        "ints",
        "ints",
        "xs = [x for x in xs if x < {c}]",
        ("keep the numbers less than {c}", "remove every number that is {c} or more"),
        lambda xs, c: [x for x in xs if x < c],
        (0, 2, 4, 7),
    ),
    Operation(
        "keep_even",
        "ints",
        "ints",
        "xs = [x for x in xs if x % 2 == 0]",
        ("keep the even numbers", "drop the odd numbers"),
        lambda xs, c: [x for x in xs if x % 2 == 0],
    ),
    Operation(
        "keep_odd",
        "ints",
        "ints",
        "xs = [x for x in xs if x % 2 == 1]",
        ("keep the odd numbers", "drop the even numbers"),
        lambda xs, c: [x for x in xs if x % 2 == 1],
    ),
    Operation(
        "keep_multiples",
        "ints",
        "ints",
        "xs = [x for x in xs if x % {c} == 0]",
        ("keep the multiples of {c}", "keep only numbers divisible by {c}"),
        lambda xs, c: [x for x in xs if x % c == 0],
        (3, 4, 5),
    ),
    Operation(
        "add",
        "ints",
        "ints",
        "xs = [x + {c} for x in xs]",
        ("add {c} to each number", "increase every number by {c}"),
        lambda xs, c: [x + c for x in xs],
        (1, 2, 3, 5, 10),
    ),
    Operation(
        "subtract",
        "ints",
        "ints",
        "xs = [x - {c} for x in xs]",
        ("subtract {c} from each number", "decrease every number by {c}"),
        lambda xs, c: [x - c for x in xs],
        (1, 2, 4, 7),
    ),
    Operation(
        "multiply",
        "ints",
        "ints",
        "xs = [x * {c} for x in xs]",
        ("multiply each number by {c}", "scale every number by {c}"),
        lambda xs, c: [x * c for x in xs],
        (2, 3, -1, 10),
    ),
    Operation(
        "square",
        "ints",
        "ints",
        "xs = [x * x for x in xs]",
        ("square each number", "replace every number by its square"),
        lambda xs, c: [x * x for x in xs],
    ),
    Operation(
        "absolute",
        "ints",
        "ints",
        "xs = [abs(x) for x in xs]",
        ("take the absolute value of each number", "make every number non-negative"),
        lambda xs, c: [abs(x) for x in xs],
    ),
    Operation(
        "modulo",
        "ints",
        "ints",
        "xs = [x % {c} for x in xs]",
        ("replace each number by its remainder modulo {c}", "take every number mod {c}"),
        lambda xs, c: [x % c for x in xs],
        (2, 3, 5, 10),
    ),
    Operation(
        "take",
        "ints",
        "ints",
        "xs = xs[:{c}]",
        ("keep the first {c} numbers", "cut the list after {c} items"),
        lambda xs, c: xs[:c],
        (1, 2, 3, 4),
    ),
    Operation(
        "drop",
        "ints",
        "ints",
        "xs = xs[{c}:]",
        ("drop the first {c} numbers", "skip {c} items at the start"),
        lambda xs, c: xs[c:],
        (1, 2, 3),
    ),
    Operation(
        "every_other",
        "ints",
        "ints",
        "xs = xs[::2]",
        ("keep every other number, starting with the first", "keep the items at even positions"),
        lambda xs, c: xs[::2],
    ),
    Operation(
        "reverse",
        "ints",
        "ints",
        "xs = xs[::-1]",
        ("reverse the list", "put the numbers in reverse order"),
        lambda xs, c: xs[::-1],
    ),
    Operation(
        "sort",
        "ints",
        "ints",
        "xs = sorted(xs)",
        ("sort the numbers in ascending order", "order the list from smallest to largest"),
        lambda xs, c: sorted(xs),
    ),
    Operation(
        "sort_descending",
        "ints",
        "ints",
        "xs = sorted(xs, reverse=True)",
        ("sort the numbers in descending order", "order the list from largest to smallest"),
        lambda xs, c: sorted(xs, reverse=True),
    ),
    Operation(
        "dedup",
        "ints",
        "ints",
        "xs = list(dict.fromkeys(xs))",
        ("remove duplicates, keeping first occurrences", "drop repeated numbers"),
        lambda xs, c: _dedup(xs),
    ),
    # --- list of ints -> int (reducers)
    Operation(
        "sum",
        "ints",
        "int",
        "return sum(xs)",
        ("return the sum", "return the total"),
        lambda xs, c: sum(xs),
    ),
    Operation(
        "max",
        "ints",
        "int",
        "return max(xs, default=0)",
        ("return the largest number, or 0 if there is none", "return the maximum (0 if empty)"),
        lambda xs, c: max(xs, default=0),
    ),
    Operation(
        "min",
        "ints",
        "int",
        "return min(xs, default=0)",
        ("return the smallest number, or 0 if there is none", "return the minimum (0 if empty)"),
        lambda xs, c: min(xs, default=0),
    ),
    Operation(
        "count",
        "ints",
        "int",
        "return len(xs)",
        ("return how many numbers are left", "return the count"),
        lambda xs, c: len(xs),
    ),
    Operation(
        "count_equal",
        "ints",
        "int",
        "return xs.count({c})",
        ("return how many times {c} occurs", "count the occurrences of {c}"),
        lambda xs, c: xs.count(c),
        (0, 1, 2, 3),
    ),
    # --- str -> str
    Operation(
        "upper",
        "str",
        "str",
        "s = s.upper()",
        ("convert the text to upper case", "capitalise every letter"),
        lambda s, c: s.upper(),
    ),
    Operation(
        "reverse_text",
        "str",
        "str",
        "s = s[::-1]",
        ("reverse the text", "write the string backwards"),
        lambda s, c: s[::-1],
    ),
    Operation(
        "drop_vowels",
        "str",
        "str",
        "s = ''.join(ch for ch in s if ch not in 'aeiou')",
        ("remove the lower-case vowels", "delete every a, e, i, o and u"),
        lambda s, c: "".join(ch for ch in s if ch not in "aeiou"),
    ),
    Operation(
        "drop_spaces",
        "str",
        "str",
        "s = s.replace(' ', '')",
        ("remove the spaces", "delete every space"),
        lambda s, c: s.replace(" ", ""),
    ),
    Operation(
        "take_text",
        "str",
        "str",
        "s = s[:{c}]",
        ("keep the first {c} characters", "cut the text after {c} characters"),
        lambda s, c: s[:c],
        (2, 3, 5),
    ),
    Operation(
        "dedup_text",
        "str",
        "str",
        "s = ''.join(dict.fromkeys(s))",
        ("remove repeated characters, keeping first occurrences", "drop repeated characters"),
        lambda s, c: "".join(dict.fromkeys(s)),
    ),
    Operation(
        "sort_text",
        "str",
        "str",
        "s = ''.join(sorted(s))",
        ("sort the characters", "put the characters in alphabetical order"),
        lambda s, c: "".join(sorted(s)),
    ),
    # --- str -> int (reducers)
    Operation(
        "length",
        "str",
        "int",
        "return len(s)",
        ("return the length", "return how many characters are left"),
        lambda s, c: len(s),
    ),
    Operation(
        "count_words",
        "str",
        "int",
        "return len(s.split())",
        ("return the number of words", "return how many words there are"),
        lambda s, c: len(s.split()),
    ),
)
OPERATIONS_BY_NAME = {operation.name: operation for operation in OPERATIONS}
_PARAMETER = {"ints": "xs", "str": "s"}
_LETTERS = "abcdeilnorstu "


@dataclass(frozen=True)
class Step:
    """An operation with its constant (0 when it takes none) and the phrasing chosen."""

    operation: str
    constant: int
    phrasing: int

    @property
    def spec(self) -> Operation:
        return OPERATIONS_BY_NAME[self.operation]


@dataclass(frozen=True)
class SyntheticProblem:
    """One synthetic task: prompt, reference solution and tests."""

    task_id: str
    domain: str
    steps: tuple[Step, ...]
    description: str
    prompt: str
    reference: str
    """The reference body (what follows the prompt)."""
    public_tests: tuple[TestCase, ...]
    hidden_tests: tuple[TestCase, ...]

    @property
    def operations(self) -> int:
        return len(self.steps)

    @property
    def entry_point(self) -> str:
        return ENTRY_POINT

    @property
    def difficulty(self) -> float:
        """(operations - 1) / 3, in [0, 1]."""
        return (self.operations - 1) / (MAX_OPERATIONS - 1)

    def candidate(
        self, body: str, *, hidden: bool = False, cpu_s: float | None = None
    ) -> Candidate:
        """The candidate for a model-written ``body``, on the public or the hidden tests."""
        tests = self.hidden_tests if hidden else self.public_tests
        return Candidate(self.prompt + body, ENTRY_POINT, tests, cpu_s=cpu_s)


def program_code(domain: str, steps: tuple[Step, ...]) -> str:
    """The reference body: one line per step, then a return unless a reducer returned."""
    lines = [step.spec.code.format(c=step.constant) for step in steps]
    if steps[-1].spec.returns != "int":
        lines.append(f"return {_PARAMETER[domain]}")
    return "".join(f"    {line}\n" for line in lines)


def split_of(domain: str, steps: tuple[Step, ...]) -> str:
    """The split a program belongs to, by a hash of its reference code (see ``SPLITS``)."""
    digest = hashlib.blake2b(program_code(domain, steps).encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "little") % SPLIT_BUCKETS
    return "test" if bucket == 0 else "train" if bucket == 1 else "models"


def run_program(steps: tuple[Step, ...], value: Any) -> Any:
    """The expected output of the pipeline on ``value``, computed on the host."""
    for step in steps:
        value = step.spec.apply(value, step.constant)
    return value


def describe(steps: tuple[Step, ...]) -> str:
    """The English description: the steps' phrasings joined as one instruction."""
    phrases = [step.spec.phrases[step.phrasing].format(c=step.constant) for step in steps]
    if steps[-1].spec.returns != "int":
        phrases.append("return the result")
    text = (
        phrases[0] if len(phrases) == 1 else ", then ".join(phrases[:-1]) + ", and " + phrases[-1]
    )
    return text[0].upper() + text[1:] + "."


def _draw_steps(
    rng: np.random.Generator, operation_mix: tuple[float, ...] = OPERATION_MIX
) -> tuple[str, tuple[Step, ...]]:
    domain = "ints" if rng.random() < 0.75 else "str"
    count = int(rng.choice(np.arange(1, MAX_OPERATIONS + 1), p=operation_mix))
    transforms = [op for op in OPERATIONS if op.domain == domain and op.returns == domain]
    reducers = [op for op in OPERATIONS if op.domain == domain and op.returns == "int"]
    chosen: list[Operation] = []
    for position in range(count):
        last = position == count - 1
        pool = transforms + reducers if last else transforms
        options = [op for op in pool if not chosen or op.name != chosen[-1].name]
        chosen.append(options[int(rng.integers(len(options)))])
    steps = tuple(
        Step(
            op.name,
            int(rng.choice(op.constants)) if op.constants else 0,
            int(rng.integers(len(op.phrases))),
        )
        for op in chosen
    )
    return domain, steps


def _draw_input(rng: np.random.Generator, domain: str, kind: str) -> Any:
    """One input: ``random``, ``plain`` (no edge case in it) or an edge case (``empty``,
    ``negatives``, ``duplicates``, ``one``)."""
    if kind == "plain":
        if domain == "ints":
            size = int(rng.integers(3, 7))
            return [int(v) for v in rng.choice(np.arange(1, 10), size=size, replace=False)]
        size = int(rng.integers(4, 9))
        letters = rng.choice(list(_LETTERS.strip()), size=size, replace=False)
        return "".join(str(letter) for letter in letters)
    if domain == "ints":
        if kind == "empty":
            return []
        if kind == "one":
            return [int(rng.integers(-9, 10))]
        size = int(rng.integers(3, 8))
        low = -9 if kind == "negatives" else -3
        values = [int(v) for v in rng.integers(low, 10, size=size)]
        if kind == "negatives":
            values[0] = -abs(values[0]) - 1
        if kind == "duplicates":
            values += values[: max(2, size // 2)]
        return values
    if kind == "empty":
        return ""
    if kind == "one":
        return _LETTERS[int(rng.integers(len(_LETTERS) - 1))]
    size = int(rng.integers(4, 12))
    text = "".join(_LETTERS[int(i)] for i in rng.integers(len(_LETTERS), size=size)).strip()
    if kind == "duplicates":
        text += text[: max(2, len(text) // 2)]
    return text or "a"


def _draw_public_inputs(
    rng: np.random.Generator, domain: str, steps: tuple[Step, ...], kind: str
) -> list[Any]:
    """The public examples' inputs; plain ones are redrawn (a few times at most) until their
    outputs differ and none is empty, so the examples say something about the program."""
    for _ in range(PLAIN_REDRAWS):
        inputs = [_draw_input(rng, domain, kind) for _ in range(PUBLIC_TESTS)]
        outputs = [run_program(steps, x) for x in inputs]
        informative = len({repr(o) for o in outputs}) == len(outputs) and all(
            o != [] and o != "" for o in outputs
        )
        if kind != "plain" or informative:
            break
    return inputs


PLAIN_REDRAWS = 20
HIDDEN_KINDS = ("empty", "one", "negatives", "duplicates") + ("random",) * (HIDDEN_TESTS - 4)


def _format_call(argument: Any, output: Any) -> str:
    return f"# {ENTRY_POINT}({argument!r}) == {output!r}\n"


def make_problem(split: str, index: int, mix: TaskMix = V0_TASKS) -> SyntheticProblem:
    """Problem ``index`` of ``split`` in ``mix``: deterministic, drawn until its program lands
    in ``split``.

    Programs whose outputs barely vary over the tests (fewer than 3 distinct) are redrawn, so
    no task is solved by a constant.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if index < 0:
        raise IndexError(f"problem index must be >= 0, got {index}")
    rng = np.random.default_rng([SYNTHETIC_SEED, SPLITS.index(split), index, *mix.stream])
    while True:
        domain, steps = _draw_steps(rng, mix.operation_mix)
        if split_of(domain, steps) != split:
            continue
        public_inputs = _draw_public_inputs(rng, domain, steps, mix.public_kind)
        hidden_inputs = [_draw_input(rng, domain, kind) for kind in HIDDEN_KINDS]
        public = tuple(TestCase((x,), run_program(steps, x)) for x in public_inputs)
        hidden = tuple(TestCase((x,), run_program(steps, x)) for x in hidden_inputs)
        if len({repr(test.expected) for test in hidden}) >= 3:
            break
    description = describe(steps)
    parameter = _PARAMETER[domain]
    annotation = "list[int]" if domain == "ints" else "str"
    result = "int" if steps[-1].spec.returns == "int" else annotation
    prompt = (
        f"# {description}\n"
        + "".join(_format_call(test.args[0], test.expected) for test in public)
        + f"def {ENTRY_POINT}({parameter}: {annotation}) -> {result}:\n"
    )
    return SyntheticProblem(
        task_id=f"{mix.prefix}/{split}/{index}",
        domain=domain,
        steps=steps,
        description=description,
        prompt=prompt,
        reference=program_code(domain, steps),
        public_tests=public,
        hidden_tests=hidden,
    )


class SyntheticTaskSource:
    """A fixed number of synthetic problems of one split, as a ``TaskSource``."""

    SPLITS: ClassVar[dict[str, int]] = {"train": 5_000, "test": 1_000}
    feature_names: tuple[str, ...] = ("prompt_length", "clauses", "constants", "text_domain")

    def __init__(self, split: str = "train", size: int | None = None, mix: TaskMix = V0_TASKS):
        if split not in self.SPLITS:
            raise ValueError(
                f"unknown split {split!r}; expected one of {sorted([*self.SPLITS, *CARVED_SPLITS])}"
            )
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.split = split
        self.size = size or self.SPLITS[split]
        self.mix = mix

    def __len__(self) -> int:
        return self.size

    def problem(self, index: int) -> SyntheticProblem:
        if not 0 <= index < self.size:
            raise IndexError(f"task index {index} out of range for {self.size} tasks")
        return _cached_problem(self.split, index, self.mix.prefix)

    def validation_group(self, index: int) -> int:
        """The task's group for carving ``val`` (see ``TaskMix.validation_by_program``)."""
        if not self.mix.validation_by_program:
            return index
        code = self.problem(index).reference.encode()
        return int.from_bytes(hashlib.blake2b(code, digest_size=8, person=b"val").digest(), "big")

    def task(self, index: int) -> Task:
        problem = self.problem(index)
        return Task(
            task_id=problem.task_id,
            prompt_features=prompt_features(problem.prompt),
            public_tests=len(problem.public_tests),
            hidden_tests=len(problem.hidden_tests),
            prompt_tokens=len(problem.prompt) // 4,
            difficulty=problem.difficulty,
        )


@lru_cache(maxsize=1 << 16)
def _cached_problem(split: str, index: int, prefix: str = V0_TASKS.prefix) -> SyntheticProblem:
    return make_problem(split, index, TASK_MIXES[prefix])


def prompt_features(prompt: str) -> np.ndarray:
    """Four features in [0, 1] read off the prompt text alone."""
    description = prompt.split("\n", 1)[0]
    clauses = description.count(", then ") + description.count(", and ") + 1
    constants = sum(token.strip(".,-").isdigit() for token in description.split())
    raw = (
        len(description) / 250,
        (clauses - 1) / MAX_OPERATIONS,
        constants / 4,
        "(s: str)" in prompt,
    )
    return np.clip(np.array(raw, dtype=np.float32), 0.0, 1.0)


def problem_for(task_id: str) -> SyntheticProblem:
    """The problem behind a ``<prefix>/<split>/<index>`` task id of any ``TaskMix``."""
    prefix, split, index = ([*task_id.split("/"), "", "", ""])[:3]
    if prefix not in TASK_MIXES or split not in SPLITS or not index.isdigit():
        raise ValueError(f"not a synthetic task id: {task_id!r}")
    return _cached_problem(split, int(index), prefix)
