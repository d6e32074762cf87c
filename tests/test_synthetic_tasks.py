"""The synthetic task grammar: deterministic, disjoint splits, references that pass."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest

from occ_gym.tasks import TaskSource, make_task_source
from occ_gym.tasks.synthetic import (
    HIDDEN_TESTS,
    OPERATIONS,
    SyntheticTaskSource,
    make_problem,
    problem_for,
    prompt_features,
)


def test_problems_are_deterministic_across_processes():
    here = [make_problem("test", i).prompt for i in range(5)]
    script = (
        "from occ_gym.tasks.synthetic import make_problem\n"
        "print(repr([make_problem('test', i).prompt for i in range(5)]))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert repr(here) == there.strip()
    assert make_problem("train", 3) == make_problem("train", 3)
    assert make_problem("train", 3) != make_problem("train", 4)


def test_splits_share_no_program_and_no_description():
    """The allocator's train and test splits and the code models' ``models`` split."""
    splits = {
        "train": [make_problem("train", i) for i in range(2000)],
        "test": [make_problem("test", i) for i in range(1000)],
        "models": [make_problem("models", i) for i in range(4000)],
    }
    for first, second in (("train", "test"), ("train", "models"), ("test", "models")):
        for field in ("reference", "description", "prompt"):
            seen = {getattr(p, field) for p in splits[first]}
            assert not seen & {getattr(p, field) for p in splits[second]}, (first, second, field)


def test_task_ids_name_their_problem():
    assert problem_for("synthetic/test/7") == make_problem("test", 7)
    for bad in ("synthetic/dev/1", "humaneval/1", "synthetic/test/x"):
        with pytest.raises(ValueError, match="synthetic task id"):
            problem_for(bad)


def test_every_operation_count_and_operation_occurs():
    problems = [make_problem("train", i) for i in range(2000)]
    assert {p.operations for p in problems} == {1, 2, 3, 4}
    used = {step.operation for p in problems for step in p.steps}
    assert used == {op.name for op in OPERATIONS}


def test_hidden_tests_cover_edge_cases():
    for index in range(200):
        problem = make_problem("test", index)
        inputs = [test.args[0] for test in problem.hidden_tests]
        assert len(inputs) == HIDDEN_TESTS >= 8
        assert inputs[0] in ([], "")
        if problem.domain == "ints":
            assert any(any(x < 0 for x in xs) for xs in inputs)
            assert any(len(set(xs)) < len(xs) for xs in inputs)
        assert len({repr(test.expected) for test in problem.hidden_tests}) >= 3


def test_prompt_shows_the_public_examples_and_no_hidden_one():
    problem = make_problem("test", 0)
    for test in problem.public_tests:
        assert f"f({test.args[0]!r}) == {test.expected!r}" in problem.prompt
    assert problem.prompt.rstrip().endswith(":")
    assert problem.prompt.startswith("# " + problem.description)


@pytest.mark.parametrize(
    "split, count",
    [("test", 200), ("train", 200), pytest.param("test", 1000, marks=pytest.mark.slow)],
)
def test_every_reference_passes_its_public_and_hidden_tests(verifier, split, count):
    problems = [make_problem(split, i) for i in range(count)]
    candidates = [p.candidate(p.reference, hidden=h) for p in problems for h in (False, True)]
    verdicts = verifier.verify_many(candidates)
    failed = [c.code for c, v in zip(candidates, verdicts, strict=True) if not v.passed]
    assert failed == []


def test_a_wrong_body_fails_hidden_tests(verifier):
    problem = make_problem("test", 1)
    verdict = verifier.verify(problem.candidate("    return None\n", hidden=True))
    assert not verdict.passed and verdict.tests_total == HIDDEN_TESTS


def test_task_source_protocol_and_features():
    source = make_task_source("synthetic", "test")
    assert isinstance(source, TaskSource) and isinstance(source, SyntheticTaskSource)
    assert len(source) == SyntheticTaskSource.SPLITS["test"]
    task = source.task(0)
    assert task.task_id == "synthetic/test/0"
    assert task.public_tests == 2 and task.hidden_tests == HIDDEN_TESTS
    assert 0.0 <= task.difficulty <= 1.0
    features = prompt_features(source.problem(0).prompt)
    assert features.shape == (len(source.feature_names),) and features.dtype.name == "float32"
    assert ((features >= 0) & (features <= 1)).all()
    with pytest.raises(IndexError):
        source.problem(len(source))
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticTaskSource("validation")


def test_simulated_tiers_run_on_synthetic_tasks():
    env = gym.make("OCC-CodeSim-v0", tasks="synthetic", split="test")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
