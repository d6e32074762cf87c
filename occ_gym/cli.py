"""The ``occ-gym`` command: ``occ-gym bench`` compares every baseline on the same problems."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import occ_gym
from occ_gym.baselines import FixedTier, HeuristicOCC, HindsightOracle, RandomPolicy, VerifierGuided
from occ_gym.baselines.base import BaselinePolicy
from occ_gym.env import occ_env
from occ_gym.evaluation import EvaluationResult, evaluate

REFERENCE = "FixedTier(expensive)"
"""The policy every other one is compared with: always the big model."""


def baseline_suite(env: gym.Env, seed: int) -> list[BaselinePolicy]:
    """Every baseline, in table order; the hindsight oracle (an upper bound) last."""
    tiers = occ_env(env).action_layout.tier_names
    return [
        *(FixedTier(env, name) for name in tiers),
        *(VerifierGuided(env, name, max_tries=3) for name in tiers),
        HeuristicOCC(env),
        RandomPolicy(env, seed=seed),
        HindsightOracle(env),
    ]


def comparison_rows(results: Sequence[EvaluationResult]) -> list[dict[str, Any]]:
    """Each result with its compute saving and hidden-pass delta against the reference."""
    by_name = {r.policy: r for r in results}
    reference = by_name.get(REFERENCE, results[0])
    rows = []
    for result in results:
        row = result.as_dict()
        row["compute_saving_vs_reference"] = 1.0 - result.mean_compute / reference.mean_compute
        row["hidden_pass_delta_vs_reference"] = result.hidden_pass_rate - reference.hidden_pass_rate
        rows.append(row)
    return rows


COLUMNS = (
    ("policy", "policy", "{}"),
    ("hidden pass", "hidden_pass_rate", "{:.3f}"),
    ("public pass", "public_pass_rate", "{:.3f}"),
    ("compute", "mean_compute", "{:.0f}"),
    ("compute saved", "compute_saving_vs_reference", "{:+.1%}"),
    ("Δ hidden pass", "hidden_pass_delta_vs_reference", "{:+.3f}"),
    ("return", "mean_return", "{:+.3f}"),
    ("abstain", "abstain_rate", "{:.3f}"),
    ("steps", "mean_steps", "{:.2f}"),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for title, _, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key == "policy" else "---:" for _, key, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for _, key, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def rich_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for heading, key, _ in COLUMNS:
        table.add_column(heading, justify="left" if key == "policy" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(fmt.format(row[key]) for _, key, fmt in COLUMNS))
    return table


def bench(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    out = Path(args.out) if args.out else None
    if out is not None:  # fail on an unwritable folder before the run, not after it
        out.mkdir(parents=True, exist_ok=True)
    env = gym.make(args.env, split=args.split)
    policies = baseline_suite(env, args.seed)
    results = [
        evaluate(policy, env, args.episodes, seed=args.seed)
        for policy in track(
            policies,
            description=f"{args.episodes} problems x {len(policies)} policies",
            console=console,
            transient=True,
        )
    ]
    env.close()
    rows = comparison_rows(results)
    command = (
        f"occ-gym bench --env {args.env} --split {args.split} "
        f"--episodes {args.episodes} --seed {args.seed}"
    )
    title = f"{args.env}, {args.split} split, {args.episodes} problems, seed {args.seed}"
    console.print(rich_table(rows, title))
    console.print(
        f"[dim]compute saved and Δ hidden pass are against {REFERENCE}; "
        "HindsightOracle reads hidden outcomes and is an upper bound, not a competitor.[/dim]"
    )
    report = {
        "command": command,
        "env_id": args.env,
        "split": args.split,
        "episodes": args.episodes,
        "seed": args.seed,
        "reference": REFERENCE,
        "versions": {
            "occ_gym": occ_gym.__version__,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "results": rows,
    }
    if out is not None:
        (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "leaderboard.md").write_text(
            f"{title}. Command: `{command}`\n\n{markdown_table(rows)}"
        )
        console.print(f"wrote {out / 'bench.json'} and {out / 'leaderboard.md'}")
    return report


def record_traces(args: argparse.Namespace, console: Console) -> Path:
    from rich.progress import Progress

    from occ_gym.record import RecordPlan, record
    from occ_gym.tiers.nano_tier import traces_path

    plan = RecordPlan(
        split=args.split,
        tasks=args.tasks,
        samples=args.samples,
        repair_rounds=args.repair_rounds,
        chunk_size=args.chunk_size,
    )
    out = Path(args.out) if args.out else traces_path(args.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as bar:
        job = bar.add_task(f"recording {plan.tasks} {plan.split} tasks", total=plan.chunks)
        record(plan, out, progress=lambda done, total: bar.update(job, completed=done))
    console.print(f"wrote {out}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occ-gym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="compare every baseline on the same problems")
    bench_parser.add_argument("--env", default="OCC-CodeSim-v0", choices=occ_gym.ENV_IDS)
    bench_parser.add_argument("--split", default="test", help="task split (default: held-out test)")
    bench_parser.add_argument("--episodes", type=_positive_int, default=1000)
    bench_parser.add_argument("--seed", type=int, default=0)
    bench_parser.add_argument("--out", help="folder for bench.json and leaderboard.md")
    record_parser = commands.add_parser(
        "record", help="run the nano tiers over a split and write a Parquet trace table"
    )
    record_parser.add_argument("--split", default="test", choices=["train", "test"])
    record_parser.add_argument("--tasks", type=_positive_int, default=500)
    record_parser.add_argument("--samples", type=_positive_int, default=4)
    record_parser.add_argument("--repair-rounds", type=int, default=3)
    record_parser.add_argument("--chunk-size", type=_positive_int, default=50)
    record_parser.add_argument("--out", help="the Parquet file (default: the shipped table)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Piped output (make demo, CI logs) would otherwise wrap the table at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        if args.command == "bench":
            bench(args, console)
        elif args.command == "record":
            record_traces(args, console)
    except (ValueError, TypeError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
