"""HumanEval through the real sandbox: reference solutions pass, stubs fail."""

from __future__ import annotations

import pytest

from occ_gym.tasks import TaskSource
from occ_gym.tasks.humaneval import (
    HUMANEVAL_SCREEN,
    HumanEvalTaskSource,
    convert_check,
    load_humaneval,
)
from occ_gym.verifier import Compare, SandboxConfig, SandboxLimits, TestCase, Verifier


@pytest.fixture(scope="module")
def humaneval_verifier():
    config = SandboxConfig(workers=2, limits=SandboxLimits(cpu_s=10.0))
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
