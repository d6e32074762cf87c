"""Render the shipped nano models' cards as one Markdown table (no numbers typed by hand).

python benchmarks/model_cards.py [--out benchmarks/results]   # writes model_cards.md there
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from occ_gym.tasks.synthetic import make_problem
from occ_gym.tiers.nano import MODELS_DIR, TIER_NAMES, read_card

RESULTS = Path(__file__).resolve().parent / "results"


def table() -> str:
    lines = [
        "| tier | parameters | layers x width | training steps (pretrain + repair stage) "
        "| training tokens | wall minutes | seed | MFLOPs / attempt | greedy hidden pass "
        "(after pretraining) | by operations (1 / 2 / 3 / 4) | one repair fixes (after "
        "pretraining) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in TIER_NAMES:
        config, _, card = read_card(MODELS_DIR / name)
        held_out, recipe = card["held_out"], card["recipe"]
        stage = card.get("repair_stage")
        before = card.get("held_out_after_pretraining", held_out)
        steps = f"{recipe['steps']:,}" + (f" + {stage['steps']:,}" if stage else "")
        tokens = card["training_tokens"] + (stage["training_tokens"] if stage else 0)
        seconds = card["training_seconds"] + (
            stage["training_seconds"] + stage["mining_seconds"] if stage else 0
        )
        by_operations = " / ".join(
            f"{held_out['hidden_pass_by_operations'][k]:.2f}" for k in ("1", "2", "3", "4")
        )
        lines.append(
            f"| {name} | {card['parameters']:,} | {config.n_layers} x {config.d_model} "
            f"| {steps} | {tokens / 1e6:.1f}M | {seconds / 60:.1f} | {recipe['seed']} "
            f"| {held_out['flops_per_fresh_attempt'] / 1e6:.1f} "
            f"| {held_out['hidden_pass']:.3f} ({before['hidden_pass']:.3f}) | {by_operations} "
            f"| {held_out['repair_fixes_public_failure']:.3f} "
            f"({before['repair_fixes_public_failure']:.3f}) |"
        )
    problems = read_card(MODELS_DIR / TIER_NAMES[0])[2]["held_out"]["problems"]
    return (
        f"Held-out: the first {problems} `test`-split problems, greedy decoding, hidden tests "
        'run by the verifier; "one repair fixes": share of public failures that one greedy '
        "REPAIR with the verifier's feedback turns into a hidden pass. Wall minutes include "
        "mining the repair stage's failures. Command: `make models`.\n\n" + "\n".join(lines) + "\n"
    )


def specialist_table() -> str:
    """OCC-Code-v1's specialists: what they were fine-tuned from and on, and how they score."""
    from occ_gym.train.nano import SPECIALISTS

    lines = [
        "| specialist | fine-tuned from | operation family | steps | wall minutes | seed "
        "| greedy hidden pass, v1 tasks | by operations (2 / 3 / 4) | one repair fixes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    problems = 0
    for name, stage in SPECIALISTS.items():
        _, _, card = read_card(MODELS_DIR / name)
        held_out, record = card["held_out"], card["specialist_stage"]
        problems = held_out["problems"]
        by_operations = " / ".join(
            f"{held_out['hidden_pass_by_operations'][k]:.2f}" for k in ("2", "3", "4")
        )
        lines.append(
            f"| {name} | {stage.base} | {', '.join(stage.family)} | {record['steps']:,} "
            f"| {record['training_seconds'] / 60:.1f} | {record['seed']} "
            f"| {held_out['hidden_pass']:.3f} | {by_operations} "
            f"| {held_out['repair_fixes_public_failure']:.3f} |"
        )
    return (
        f"OCC-Code-v1's specialists, scored on the first {problems} `test`-split problems of "
        "its task mix (greedy): they write ints pipelines and have forgotten text (see "
        "docs/health.md for their sampled rates on every v1 test task).\n\n"
        + "\n".join(lines)
        + "\n"
    )


def tokenizer_lengths(problems: int = 1000) -> str:
    """How much shorter the task-language tokens make prompts and bodies than characters."""
    _, tokenizer, _ = read_card(MODELS_DIR / TIER_NAMES[0])
    sample = [make_problem("test", i) for i in range(problems)]
    parts = []
    for field in ("prompt", "reference"):
        chars = np.mean([len(getattr(p, field)) for p in sample])
        tokens = np.mean([len(tokenizer.encode(getattr(p, field))) for p in sample])
        ratio = chars / tokens
        parts.append(f"{field} {tokens:.1f} tokens vs {chars:.1f} characters ({ratio:.1f}x)")
    return (
        f"Vocabulary: {len(tokenizer)} tokens. Mean over {problems} test problems: "
        + "; ".join(parts)
        + ".\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for model_cards.md")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    text = table() + "\n" + specialist_table() + "\n" + tokenizer_lengths()
    (args.out / "model_cards.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
