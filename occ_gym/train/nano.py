"""Train the three NanoCodeGen tiers from scratch on CPU: ``python -m occ_gym.train.nano``.

Two stages per tier. Pretraining (``TierRecipe``) learns from the corpus of ``nano_data``:
fresh examples and repairs of mutated reference programs. The repair stage (``RepairStage``)
samples the pretrained tier on unseen ``models``-split problems, keeps the attempts the
verifier rejects, and fine-tunes on repairs of those mistakes with their real feedback, mixed
with new fresh problems and the corpus, so REPAIR learns from the errors the tier really makes.

Every stage has fixed steps and seeds, so a retrain gives the same weights on the same torch
build and thread count; wall-clock budgets are avoided because they are noisy on shared
machines. After each stage, a tier is scored on held-out ``test``-split problems through the
real verifier and the numbers go into its model card.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from occ_gym.resources import user_cache_dir
from occ_gym.tasks.synthetic import V1_TASKS, SyntheticProblem, make_problem
from occ_gym.tiers.nano import (
    PAD,
    CodeTokenizer,
    NanoCodeGen,
    NanoConfig,
    NanoModel,
    attempt_flops,
    attempt_seed,
    matmul_parameters,
    repair_context,
    save_model,
)
from occ_gym.train.nano_data import DataRecipe, Example, encode_examples, load_or_build
from occ_gym.verifier import Verifier

CACHE_DIR = user_cache_dir() / "nano-corpus"
"""The training corpus, built once (about 5 minutes) and reused."""


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train: steps, batch, peak learning rate, warm-up, seed."""

    steps: int
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class TierRecipe(Schedule):
    """Stage 1 of a tier: its shape and schedule, trained from scratch on the corpus."""

    name: str = ""
    d_model: int = 0
    n_layers: int = 0
    n_heads: int = 0
    d_ff: int = 0

    def config(self, vocab_size: int) -> NanoConfig:
        return NanoConfig(vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff)


RECIPES: dict[str, TierRecipe] = {
    recipe.name: recipe
    for recipe in (
        TierRecipe(1500, name="cheap", d_model=64, n_layers=2, n_heads=2, d_ff=256, seed=1),
        TierRecipe(1600, name="medium", d_model=96, n_layers=4, n_heads=4, d_ff=384, seed=2),
        TierRecipe(2000, name="expensive", d_model=128, n_layers=6, n_heads=4, d_ff=512, seed=3),
    )
}


@dataclass(frozen=True)
class RepairStage(Schedule):
    """Stage 2 of every tier: fine-tuning on repairs of the tier's own sampled mistakes.

    The mined and new fresh problems come from the ``models`` split, past the corpus's.
    """

    steps: int = 800
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    first_problem: int = 1_000_000
    mining_problems: int = 4_000
    samples: int = 4
    fresh_problems: int = 20_000
    own_repair_share: float = 0.4
    fresh_share: float = 0.4
    corpus_share: float = 0.2
    max_tokens: int = 448


REPAIR_STAGE = RepairStage()


@dataclass(frozen=True)
class SpecialistStage(Schedule):
    """A specialist tier: a trained generalist fine-tuned on ``OCC-Code-v1``-mix problems that
    use its operation family, mixed with the corpus so that it keeps repairing (stage 3)."""

    name: str = ""
    base: str = ""
    family: tuple[str, ...] = ()
    steps: int = 600
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    first_problem: int = 2_000_000
    fresh_problems: int = 12_000
    corpus_share: float = 0.3
    max_tokens: int = 448


SPECIALISTS: dict[str, SpecialistStage] = {
    stage.name: stage
    for stage in (
        SpecialistStage(
            name="medium-filters",
            base="medium",
            family=(
                "keep_greater",
                "keep_less",
                "keep_even",
                "keep_odd",
                "keep_multiples",
                "count_equal",
            ),
            seed=4,
        ),
        SpecialistStage(
            name="medium-arithmetic",
            base="medium",
            family=("add", "subtract", "multiply", "square", "absolute", "modulo"),
            seed=5,
        ),
    )
}
"""The v1 specialists: medium-sized, each fine-tuned where the expensive generalist is weakest
(parity and threshold filters; element-wise arithmetic)."""


def cosine_lr(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of ``peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _length_sorted_buckets(examples: Sequence[Example]) -> list[np.ndarray]:
    """Example indices per repair round, sorted by length: a batch is a window of one bucket,
    so it holds examples of similar length and little padding."""
    by_round: dict[int, list[int]] = {}
    for index, example in enumerate(examples):
        by_round.setdefault(example.repair_round, []).append(index)
    return [
        np.array(sorted(by_round[r], key=lambda i: (len(examples[i].tokens), i)))
        for r in sorted(by_round)
    ]


def _batch(examples: Sequence[Example], indices: np.ndarray) -> tuple[torch.Tensor, ...]:
    chosen = [examples[i] for i in indices]
    length = max(len(e.tokens) for e in chosen)
    tokens = torch.full((len(chosen), length), PAD, dtype=torch.long)
    weights = torch.zeros((len(chosen), length - 1))
    for row, example in enumerate(chosen):
        tokens[row, : len(example.tokens)] = torch.from_numpy(example.tokens.astype(np.int64))
        weights[row, example.target_start - 1 : len(example.tokens) - 1] = 1.0
    rounds = torch.tensor([e.repair_round for e in chosen], dtype=torch.long)
    return tokens, weights, rounds


def fit(
    model: NanoCodeGen,
    pools: Sequence[tuple[Sequence[Example], float]],
    schedule: Schedule,
    name: str,
    log=print,
) -> dict:
    """Train ``model`` in place on batches drawn from ``pools`` (examples, share of batches);
    returns the training record (tokens, seconds, loss curve)."""
    rng = np.random.default_rng(schedule.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": schedule.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=schedule.learning_rate,
        betas=(0.9, 0.95),
    )
    sources: list[tuple[Sequence[Example], np.ndarray]] = []
    weights_of_sources: list[float] = []
    for examples, share in pools:
        for bucket in _length_sorted_buckets(examples):
            sources.append((examples, bucket))
            weights_of_sources.append(share * len(bucket) / len(examples))
    shares = np.array(weights_of_sources) / sum(weights_of_sources)  # empty pools drop out
    tokens_seen, curve, started = 0, [], time.perf_counter()
    model.train()
    for step in range(schedule.steps):
        examples, bucket = sources[int(rng.choice(len(sources), p=shares))]
        start = int(rng.integers(len(bucket)))
        window = np.arange(start, start + schedule.batch_size) % len(bucket)
        tokens, weights, rounds = _batch(examples, bucket[window])
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(
                step, schedule.steps, schedule.learning_rate, schedule.warmup_steps
            )
        logits = model(tokens[:, :-1], rounds)
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        )
        loss = (losses * weights.reshape(-1)).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens_seen += int((tokens != PAD).sum())
        if step % 100 == 0 or step == schedule.steps - 1:
            value = round(loss.item(), 4)
            curve.append({"step": step, "loss": value})
            elapsed = time.perf_counter() - started
            log(f"{name}: step {step}/{schedule.steps} loss {value} ({elapsed:.0f} s)")
    model.eval()
    return {
        "training_tokens": tokens_seen,
        "training_seconds": round(time.perf_counter() - started, 1),
        "loss_curve": curve,
    }


def train_tier(
    recipe: TierRecipe, tokenizer: CodeTokenizer, examples: Sequence[Example], log=print
) -> tuple[NanoCodeGen, dict]:
    """Stage 1: train one tier from scratch; returns the model and its training record."""
    torch.manual_seed(recipe.seed)
    model = NanoCodeGen(recipe.config(len(tokenizer)))
    return model, fit(model, [(examples, 1.0)], recipe, recipe.name, log)


def mine_failures(
    model: NanoModel, problems: Sequence[SyntheticProblem], stage: RepairStage, verifier: Verifier
) -> list[dict]:
    """Repair examples from the tier's own mistakes: ``stage.samples`` sampled attempts per
    problem, and for a problem with k distinct public failures, examples with its first 1..k
    failures (at most 3) before the reference body."""
    contexts = [repair_context(model.tokenizer, p.prompt, []) for p in problems]
    keys = [(i, s) for i in range(len(problems)) for s in range(stage.samples)]
    seeds = [attempt_seed(problems[i].task_id, f"mine-{model.name}", s, 0) for i, s in keys]
    bodies = model.write([contexts[i] for i, _ in keys], [0] * len(keys), seeds)
    verdicts = verifier.verify_many(
        problems[i].candidate(body) for (i, _), (body, _) in zip(keys, bodies, strict=True)
    )
    failures: dict[int, dict[str, str]] = {}
    for (i, _), (body, _), verdict in zip(keys, bodies, verdicts, strict=True):
        if not verdict.passed:
            failures.setdefault(i, {}).setdefault(body, verdict.feedback())
    repairs = []
    for i, found in failures.items():
        chain = list(found.items())[: NanoConfig.max_repair_rounds]
        for depth in range(1, len(chain) + 1):
            repairs.append(
                {
                    "prompt": problems[i].prompt,
                    "failures": chain[:depth],
                    "body": problems[i].reference,
                }
            )
    return repairs


def repair_stage(
    name: str,
    stage: RepairStage,
    corpus: Sequence[Example],
    models_dir: Path,
    verifier: Verifier,
    log=print,
) -> tuple[NanoModel, dict]:
    """Stage 2: fine-tune a stage-1 tier on repairs of its own mistakes, mixed with new fresh
    problems and the stage-1 corpus; returns the model and the stage's record."""
    model = NanoModel.load(name, models_dir)
    if "repair_stage" in model.card:
        raise SystemExit(f"{name}: {models_dir / name} already went through the repair stage")
    first = stage.first_problem
    mined = [make_problem("models", i) for i in range(first, first + stage.mining_problems)]
    first += stage.mining_problems
    fresh = [make_problem("models", i) for i in range(first, first + stage.fresh_problems)]
    started = time.perf_counter()
    repairs = mine_failures(model, mined, stage, verifier)
    mining_seconds = round(time.perf_counter() - started, 1)
    log(f"{name}: {len(repairs)} repair examples from its own failures ({mining_seconds} s)")
    own = encode_examples(model.tokenizer, repairs, stage.max_tokens)
    new = encode_examples(
        model.tokenizer,
        ({"prompt": p.prompt, "body": p.reference} for p in fresh),
        stage.max_tokens,
    )
    pools = [(own, stage.own_repair_share), (new, stage.fresh_share), (corpus, stage.corpus_share)]
    record = fit(model.network, pools, stage, f"{name} repair stage", log)
    rounds = np.bincount([e.repair_round for e in own], minlength=4)[1:].tolist()
    return model, {
        **asdict(stage),
        "own_repair_examples_by_round": rounds,
        "mining_seconds": mining_seconds,
        **record,
    }


def specialist_stage(
    stage: SpecialistStage, corpus: Sequence[Example], models_dir: Path, log=print
) -> tuple[NanoModel, dict]:
    """Stage 3: fine-tune a copy of ``stage.base`` on its family's problems and the corpus."""
    model = NanoModel.load(stage.base, models_dir)
    family = set(stage.family)
    problems: list[SyntheticProblem] = []
    index = stage.first_problem
    while len(problems) < stage.fresh_problems:
        problem = make_problem("models", index, V1_TASKS)
        index += 1
        if family & {step.operation for step in problem.steps}:
            problems.append(problem)
    fresh = encode_examples(
        model.tokenizer,
        ({"prompt": p.prompt, "body": p.reference} for p in problems),
        stage.max_tokens,
    )
    pools = [(fresh, 1.0 - stage.corpus_share), (corpus, stage.corpus_share)]
    record = fit(model.network, pools, stage, stage.name, log)
    return NanoModel(stage.name, model.network, model.tokenizer, {}), {
        **asdict(stage),
        "problems_drawn": index - stage.first_problem,
        **record,
    }


def evaluate_tier(
    model: NanoModel, problems: Sequence[SyntheticProblem], verifier: Verifier
) -> dict:
    """Greedy hidden and public pass rates on ``problems``, overall and per operation count,
    and how often one greedy repair with the verifier's feedback fixes a public failure."""
    tokenizer = model.tokenizer
    contexts = [repair_context(tokenizer, p.prompt, []) for p in problems]
    started = time.perf_counter()
    bodies = model.write(contexts, [0] * len(problems), None)
    seconds = time.perf_counter() - started
    public = verifier.verify_many(
        p.candidate(b) for p, (b, _) in zip(problems, bodies, strict=True)
    )
    hidden = verifier.verify_many(
        p.candidate(b, hidden=True) for p, (b, _) in zip(problems, bodies, strict=True)
    )
    by_operations: dict[str, list[bool]] = {}
    for problem, verdict in zip(problems, hidden, strict=True):
        by_operations.setdefault(str(problem.operations), []).append(verdict.passed)
    failed = [i for i, v in enumerate(public) if not v.passed]
    repair_contexts = [
        repair_context(tokenizer, problems[i].prompt, [(bodies[i][0], public[i].feedback())])
        for i in failed
    ]
    repaired = model.write(repair_contexts, [1] * len(failed), None)
    repaired_hidden = verifier.verify_many(
        problems[i].candidate(body, hidden=True)
        for i, (body, _) in zip(failed, repaired, strict=True)
    )
    config = model.config
    mean_context = float(np.mean([len(c) for c in contexts]))
    mean_new = float(np.mean([n for _, n in bodies]))
    return {
        "problems": len(problems),
        "hidden_pass": round(float(np.mean([v.passed for v in hidden])), 4),
        "public_pass": round(float(np.mean([v.passed for v in public])), 4),
        "hidden_pass_by_operations": {
            k: round(float(np.mean(v)), 4) for k, v in sorted(by_operations.items())
        },
        "repair_fixes_public_failure": round(
            float(np.mean([v.passed for v in repaired_hidden])) if failed else 0.0, 4
        ),
        "public_failures_repaired": len(failed),
        "mean_context_tokens": round(mean_context, 1),
        "mean_new_tokens": round(mean_new, 1),
        "flops_per_fresh_attempt": attempt_flops(config, round(mean_context), round(mean_new)),
        "attempts_per_second_greedy": round(len(problems) / seconds, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiers", nargs="+", default=list(RECIPES), choices=[*RECIPES, *SPECIALISTS]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=user_cache_dir() / "models",
        help="where the weights and cards go (make models: the checkout's occ_gym/assets/models)",
    )
    parser.add_argument("--eval-problems", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--stage",
        choices=("all", "pretrain", "repair"),
        default="all",
        help="pretrain from scratch, fine-tune a pretrained tier on its own failures, or both",
    )
    parser.add_argument(
        "--data-only", action="store_true", help="build (or find) the training corpus and stop"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data_recipe = DataRecipe()
    tokenizer, examples = load_or_build(data_recipe, CACHE_DIR, Verifier, None)
    print(f"corpus: {len(examples)} examples, vocabulary {len(tokenizer)}")
    if args.data_only:
        return
    problems = [make_problem("test", i) for i in range(args.eval_problems)]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.tiers:
        if name in SPECIALISTS:
            train_specialist(SPECIALISTS[name], examples, args.out, args.eval_problems)
            continue
        if args.stage in ("all", "pretrain"):
            pretrain(name, data_recipe, tokenizer, examples, problems, args.out)
        if args.stage in ("all", "repair"):
            with Verifier() as verifier:
                model, record = repair_stage(name, REPAIR_STAGE, examples, args.out, verifier)
                evaluation = evaluate_tier(model, problems, verifier)
            card = {
                **model.card,
                "repair_stage": record,
                "threads": torch.get_num_threads(),
                "held_out_after_pretraining": model.card["held_out"],
                "held_out": evaluation,
            }
            save_model(model.network, model.tokenizer, card, args.out / name)
            print(f"{name} after the repair stage: {evaluation}")


def train_specialist(
    stage: SpecialistStage, corpus: Sequence[Example], out: Path, eval_problems: int
) -> None:
    """Stage 3 for a specialist: fine-tune its base (in ``out``), score it, save its card."""
    model, record = specialist_stage(stage, corpus, out)
    problems = [make_problem("test", i, V1_TASKS) for i in range(eval_problems)]
    with Verifier() as verifier:
        evaluation = evaluate_tier(model, problems, verifier)
    base_card = NanoModel.load(stage.base, out).card
    card = {
        **base_card,
        "tier": stage.name,
        "specialist_stage": record,
        "threads": torch.get_num_threads(),
        "held_out": {**evaluation, "tasks": V1_TASKS.prefix},
        "command": "make models",
    }
    save_model(model.network, model.tokenizer, card, out / stage.name)
    print(f"{stage.name}: {evaluation}")


def pretrain(
    name: str,
    data_recipe: DataRecipe,
    tokenizer: CodeTokenizer,
    examples: Sequence[Example],
    problems: Sequence[SyntheticProblem],
    out: Path,
) -> None:
    """Stage 1 of tier ``name``: train, score on held-out ``problems``, save with its card."""
    recipe = RECIPES[name]
    network, record = train_tier(recipe, tokenizer, examples)
    with Verifier() as verifier:
        evaluation = evaluate_tier(NanoModel(name, network, tokenizer, {}), problems, verifier)
    card = {
        "tier": name,
        "parameters": network.parameter_count(),
        "matmul_parameters": matmul_parameters(network.config),
        "recipe": asdict(recipe),
        "data": {**asdict(data_recipe), "fingerprint": data_recipe.fingerprint()},
        **record,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "held_out": evaluation,
        "command": "make models",
    }
    save_model(network, tokenizer, card, out / name)
    print(f"{name}: {evaluation}")


if __name__ == "__main__":
    main()
