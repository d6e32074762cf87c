"""The ``occ-gym`` command: ``bench`` compares policies on the same problems, ``train`` trains a
PPO / MaskablePPO allocator, ``record`` records attempt traces."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.progress import track
from rich.table import Table

import occ_gym
from occ_gym.baselines import FixedTier, HeuristicOCC, HindsightOracle, RandomPolicy, VerifierGuided
from occ_gym.baselines.base import BaselinePolicy
from occ_gym.env import occ_env
from occ_gym.evaluation import EvaluationResult, evaluate
from occ_gym.hashing import library_versions

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


def policy_suite(env: gym.Env, env_id: str, seed: int, policy_paths: Sequence[str]) -> list[Any]:
    """The baselines, then the policy shipped for ``env_id`` and the given ones, with the
    hindsight oracle (an upper bound) last."""
    from occ_gym.train.policy import load_policy, shipped_policy_path

    *rules, oracle = baseline_suite(env, seed)
    learned = []
    shipped = shipped_policy_path(env_id)
    if shipped is not None:
        learned.append(load_policy(shipped, name="MaskablePPO (shipped)"))
    learned.extend(load_policy(path) for path in policy_paths)
    return [*rules, *learned, oracle]


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
    policies = policy_suite(env, args.env, args.seed, args.policy)
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
    ) + "".join(f" --policy {path}" for path in args.policy)
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
        "versions": library_versions(),
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


def train_allocator(args: argparse.Namespace, console: Console) -> Path:
    from occ_gym.train.ppo import TrainConfig, train, with_overrides

    config = TrainConfig(
        env_id=args.env,
        algo=args.algo,
        out=args.out,
        seed=args.seed,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        eval_episodes=args.eval_episodes,
        eval_every=args.eval_every,
        vec_env=args.vec_env,
        resume=args.resume,
    )
    config = with_overrides(config, args.set)
    result = train(config, console)
    final = result.record["final_metrics"]
    for name in ("last", "best"):
        metrics = final[name]
        console.print(
            f"{name}.zip on {metrics['episodes']} held-out problems: return "
            f"{metrics['mean_return']:+.3f}, hidden pass {metrics['hidden_pass_rate']:.3f}, "
            f"compute {metrics['mean_compute']:.0f}"
        )
    console.print(f"wrote {result.out} (run.json, best.zip, last.zip, tb/)")
    return result.out


def events_command(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from occ_gym.events import read_events, summarize

    events = [event for path in args.files for event in read_events(path)]
    if args.action == "validate":
        console.print(f"{len(events)} events in {len(args.files)} file(s) match the schema")
        return {"events": len(events)}
    summary = summarize(events)
    console.print_json(json.dumps(summary))
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occ-gym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="compare every baseline on the same problems")
    bench_parser.add_argument("--env", default="OCC-CodeSim-v0", choices=occ_gym.ENV_IDS)
    bench_parser.add_argument("--split", default="test", help="task split (default: held-out test)")
    bench_parser.add_argument("--episodes", type=_positive_int, default=1000)
    bench_parser.add_argument("--seed", type=int, default=0)
    bench_parser.add_argument("--out", help="folder for bench.json and leaderboard.md")
    bench_parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help="a trained policy (.zip or run folder) to add to the table; repeatable",
    )
    train_parser = commands.add_parser("train", help="train a PPO / MaskablePPO allocator")
    train_parser.add_argument("--env", default="OCC-Code-v0", help="env id")
    train_parser.add_argument("--algo", default="maskable_ppo", help="maskable_ppo or ppo")
    train_parser.add_argument(
        "--timesteps", type=int, help="total env steps (default: hyperparameter file)"
    )
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--n-envs", type=int, help="(default: hyperparameter file)")
    train_parser.add_argument("--out", required=True, help="the run folder, e.g. runs/NAME")
    train_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (TOML value); repeatable",
    )
    train_parser.add_argument("--eval-episodes", type=int, default=200)
    train_parser.add_argument("--eval-every", type=int, default=20_000, help="env steps")
    train_parser.add_argument("--vec-env", default="dummy", help="dummy or subproc")
    train_parser.add_argument("--resume", help="a checkpoint (.zip) to continue from")
    events_parser = commands.add_parser("events", help="check or summarize JSONL event logs")
    events_parser.add_argument("action", choices=["summarize", "validate"])
    events_parser.add_argument("files", nargs="+", help="event files (JSONL)")
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
        elif args.command == "train":
            train_allocator(args, console)
        elif args.command == "events":
            events_command(args, console)
    except (ValueError, TypeError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
