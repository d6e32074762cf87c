"""Training data for the nano code models: fresh examples and verifier-checked repair examples.

A fresh example is a ``models``-split prompt followed by its reference body. A repair example
holds one to three failed candidates, each with the feedback the real verifier gave on the
public tests, and then the reference body. The failures are mutations of the reference program
of the kinds small models make (a wrong constant, a wrong or missing operation, steps out of
order, a broken token), kept only when the verifier really rejects them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from occ_gym.tasks.synthetic import (
    OPERATIONS,
    Step,
    SyntheticProblem,
    make_problem,
    program_code,
)
from occ_gym.tiers.nano import EOS, TOKEN_PATTERN, CodeTokenizer, repair_context
from occ_gym.verifier import Verifier


@dataclass(frozen=True)
class DataRecipe:
    """How much data of each kind, from which problems, with which seed."""

    fresh_examples: int = 100_000
    repair_examples: int = 30_000
    round_mix: tuple[float, ...] = (0.6, 0.25, 0.15)
    """Share of repair examples with 1, 2, 3 failed candidates before the fix."""
    token_min_count: int = 50
    max_tokens: int = 448
    seed: int = 0

    def fingerprint(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Example:
    """Token ids, where the target (the body the model must write) starts, and the round."""

    tokens: np.ndarray
    target_start: int
    repair_round: int


def mutate(problem: SyntheticProblem, rng: np.random.Generator) -> str:
    """A plausible wrong body for ``problem`` (it may still pass: the verifier decides)."""
    steps = list(problem.steps)
    kind = rng.choice(["constant", "operation", "drop", "swap", "insert", "token"])
    position = int(rng.integers(len(steps)))
    step = steps[position]
    if kind == "constant" and len(step.spec.constants) > 1:
        others = [c for c in step.spec.constants if c != step.constant]
        steps[position] = replace(step, constant=int(rng.choice(others)))
    elif kind == "drop" and len(steps) > 1:
        del steps[position]
    elif kind == "swap" and len(steps) > 1 and position + 1 < len(steps):
        steps[position], steps[position + 1] = steps[position + 1], step
    elif kind == "insert" and step.spec.returns != "int":
        steps.insert(position, _random_step(problem.domain, "transform", rng))
    elif kind == "token":
        pieces = TOKEN_PATTERN.findall(problem.reference)
        index = int(rng.integers(len(pieces)))
        del pieces[index]
        return "".join(pieces)
    else:
        role = "reducer" if step.spec.returns == "int" else "transform"
        steps[position] = _random_step(problem.domain, role, rng)
    if steps[-1].spec.returns == "int" and any(s.spec.returns == "int" for s in steps[:-1]):
        steps = [s for s in steps[:-1] if s.spec.returns != "int"] + [steps[-1]]
    return program_code(problem.domain, tuple(steps))


def _random_step(domain: str, role: str, rng: np.random.Generator) -> Step:
    returns = "int" if role == "reducer" else domain
    pool = [op for op in OPERATIONS if op.domain == domain and op.returns == returns]
    operation = pool[int(rng.integers(len(pool)))]
    constant = int(rng.choice(operation.constants)) if operation.constants else 0
    return Step(operation.name, constant, 0)


def _problems(start: int, stop: int) -> Iterator[SyntheticProblem]:
    for index in range(start, stop):
        yield make_problem("models", index)


def build_examples(
    recipe: DataRecipe, verifier: Verifier, progress=None
) -> tuple[list[dict], list[dict]]:
    """Text examples: fresh ``{prompt, body}`` and repair ``{prompt, failures, body}``."""
    rng = np.random.default_rng(recipe.seed)
    fresh = [{"prompt": p.prompt, "body": p.reference} for p in _problems(0, recipe.fresh_examples)]
    if progress:
        progress(len(fresh))
    repairs: list[dict] = []
    first = recipe.fresh_examples
    while len(repairs) < recipe.repair_examples:
        batch = list(_problems(first, first + 2_000))
        first += len(batch)
        depths = rng.choice(
            np.arange(1, len(recipe.round_mix) + 1), size=len(batch), p=recipe.round_mix
        )
        candidates, owners = [], []
        for problem, depth in zip(batch, depths, strict=True):
            bodies = {mutate(problem, rng) for _ in range(depth * 2)} - {problem.reference}
            for body in list(bodies)[:depth]:
                candidates.append(problem.candidate(body))
                owners.append((problem, depth, body))
        verdicts = verifier.verify_many(candidates)
        chains: dict[str, list[tuple[str, str]]] = {}
        wanted: dict[str, tuple[SyntheticProblem, int]] = {}
        for (problem, depth, body), verdict in zip(owners, verdicts, strict=True):
            if not verdict.passed:
                chains.setdefault(problem.task_id, []).append((body, verdict.feedback()))
                wanted[problem.task_id] = (problem, depth)
        for task_id, failures in chains.items():
            problem, depth = wanted[task_id]
            if len(failures) == depth:
                repairs.append(
                    {"prompt": problem.prompt, "failures": failures, "body": problem.reference}
                )
        if progress:
            progress(len(batch))
    return fresh, repairs[: recipe.repair_examples]


def _texts(fresh: list[dict], repairs: list[dict]) -> Iterator[str]:
    for example in fresh:
        yield example["prompt"]
        yield example["body"]
    for example in repairs:
        for body, feedback in example["failures"]:
            yield body
            yield feedback


def tokenize(
    recipe: DataRecipe, fresh: list[dict], repairs: list[dict]
) -> tuple[CodeTokenizer, list[Example]]:
    """The vocabulary built from the examples, and the examples as token ids."""
    tokenizer = CodeTokenizer.build(_texts(fresh, repairs), recipe.token_min_count)
    return tokenizer, encode_examples(tokenizer, [*fresh, *repairs], recipe.max_tokens)


def encode_examples(
    tokenizer: CodeTokenizer, texts: Iterable[dict], max_tokens: int
) -> list[Example]:
    """Text examples as token ids; an example longer than ``max_tokens`` is left out."""
    examples = []
    for example in texts:
        failures = example.get("failures", [])
        context = repair_context(tokenizer, example["prompt"], failures)
        tokens = [*context, *tokenizer.encode(example["body"]), EOS]
        if len(tokens) <= max_tokens:
            examples.append(Example(np.array(tokens, dtype=np.int16), len(context), len(failures)))
    return examples


def load_or_build(
    recipe: DataRecipe, cache_dir: Path, verifier_factory, progress=None
) -> tuple[CodeTokenizer, list[Example]]:
    """The tokenized corpus, from ``cache_dir`` when built before with the same recipe."""
    path = cache_dir / f"nano-corpus-{recipe.fingerprint()}.json"
    if path.exists():
        texts = json.loads(path.read_text())
        fresh, repairs = texts["fresh"], texts["repairs"]
    else:
        with verifier_factory() as verifier:
            fresh, repairs = build_examples(recipe, verifier, progress)
        cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"fresh": fresh, "repairs": repairs}))
        temporary.replace(path)
    return tokenize(recipe, fresh, repairs)
