"""The ``occ-gym`` command: ``bench`` compares policies on the same problems (``report``
re-renders its outputs), ``train`` trains a PPO / MaskablePPO allocator, ``record`` records
attempt traces, ``events`` checks and summarizes event logs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

import occ_gym
from occ_gym.bench.runner import BenchConfig
from occ_gym.train.config import ALGORITHM_NAMES, VEC_ENVS, TrainConfig

TABLE_NOTE = (
    "mean ± half its 95% bootstrap interval; regret is against the hindsight oracle, an upper "
    "bound and not a competitor"
)


def bench(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from occ_gym.bench.report import console_table, write_report
    from occ_gym.bench.runner import Bench, BenchConfig, write_episodes, write_results

    out = Path(args.out) if args.out else None
    if out is not None:  # fail on an unwritable folder before the run, not after it
        out.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(
        env_id=args.env,
        split=args.split,
        episodes=args.episodes,
        seeds=args.seeds,
        seed=args.seed,
        policy_paths=tuple(args.policy),
        resamples=args.resamples,
        tune_episodes=args.tune_episodes,
        planner_episodes=args.planner_episodes,
        router_episodes=args.router_episodes,
    )
    bench_run = Bench(config)
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        entries = len(bench_run.entries)
        job = bar.add_task(
            f"{entries} policies x {config.seeds} seeds x {config.episodes} problems", total=entries
        )
        bench_run.play(progress=lambda label: bar.advance(job))
    try:
        if out is not None:  # the played episodes first: statistics can then never lose them
            write_episodes(bench_run.logs, out)
        results = bench_run.results()
    finally:
        bench_run.close()
    if out is not None:
        write_results(results, out)
        written = write_report(results, out)
        console.print(f"wrote {out / 'results.json'}, " + ", ".join(str(p) for p in written))
    console.print(console_table(results))
    console.print(f"[dim]{config.command}; {TABLE_NOTE}[/dim]")
    return results


def report(args: argparse.Namespace, console: Console) -> list[Path]:
    from occ_gym.bench.report import console_table, load_results, write_report

    results = load_results(args.results_dir)
    written = write_report(results, args.results_dir)
    console.print("wrote " + ", ".join(str(p) for p in written))
    console.print(console_table(results))
    console.print(f"[dim]{results['command']}; {TABLE_NOTE}[/dim]")
    return written


def record_traces(args: argparse.Namespace, console: Console) -> Path:
    from rich.progress import Progress

    from occ_gym.traces.record import RecordPlan, record

    plan = RecordPlan.of(
        args.suite,
        args.split,
        args.tasks,
        samples=args.samples,
        repair_rounds=args.repair_rounds,
        chunk_size=args.chunk_size,
    )
    out = Path(args.out)
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
    config = with_overrides(config, args.set, args.env_kwarg)
    result = train(config, console)
    final = result.record["final_metrics"]
    for name in ("last", "best"):
        metrics = final[name]
        console.print(
            f"{name}.zip on {metrics['episodes']} test-split problems: return "
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
    bench = BenchConfig()
    bench_parser.add_argument("--env", default=bench.env_id, choices=occ_gym.ENV_IDS)
    bench_parser.add_argument(
        "--split", default=bench.split, help=f"task split (default: {bench.split})"
    )
    bench_parser.add_argument(
        "--episodes", type=_positive_int, default=bench.episodes, help="problems per seed"
    )
    bench_parser.add_argument(
        "--seeds", type=_positive_int, default=bench.seeds, help="evaluation seeds"
    )
    bench_parser.add_argument(
        "--seed",
        type=int,
        default=bench.seed,
        help="first seed; seed k plays seeds seed + k * episodes",
    )
    bench_parser.add_argument(
        "--resamples", type=_positive_int, default=bench.resamples, help="bootstrap resamples"
    )
    bench_parser.add_argument(
        "--tune-episodes",
        type=_positive_int,
        default=bench.tune_episodes,
        help="train-split episodes per rule of the tuned cascade's grid search",
    )
    bench_parser.add_argument(
        "--planner-episodes",
        type=_positive_int,
        default=bench.planner_episodes,
        help="train-split episodes the planner's empirical model is built from",
    )
    bench_parser.add_argument(
        "--router-episodes",
        type=_positive_int,
        default=bench.router_episodes,
        help="train-split episodes the routers' hidden-pass models are fitted on",
    )
    bench_parser.add_argument(
        "--out", help="results folder: results.json, leaderboard.md, findings.md, pareto.png"
    )
    bench_parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help="a trained policy (.zip or run folder) to add to the table; repeatable",
    )
    train_parser = commands.add_parser("train", help="train a PPO / MaskablePPO allocator")
    run = TrainConfig()
    train_parser.add_argument("--env", default=run.env_id, choices=occ_gym.ENV_IDS)
    train_parser.add_argument("--algo", default=run.algo, choices=ALGORITHM_NAMES)
    train_parser.add_argument(
        "--timesteps", type=int, help="total env steps (default: hyperparameter file)"
    )
    train_parser.add_argument("--seed", type=int, default=run.seed)
    train_parser.add_argument("--n-envs", type=int, help="(default: hyperparameter file)")
    train_parser.add_argument("--out", required=True, help="the run folder, e.g. runs/NAME")
    train_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (TOML value); repeatable",
    )
    train_parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a gym.make keyword (TOML value), e.g. 'oracle={compute_penalty = 0.002}'; repeatable",
    )
    train_parser.add_argument("--eval-episodes", type=int, default=run.eval_episodes)
    train_parser.add_argument("--eval-every", type=int, default=run.eval_every, help="env steps")
    train_parser.add_argument(
        "--vec-env",
        default=run.vec_env,
        choices=VEC_ENVS,
        help="how the training envs are batched (native: occ_gym.envs.vector_env)",
    )
    train_parser.add_argument("--resume", help="a checkpoint (.zip) to continue from")
    events_parser = commands.add_parser("events", help="check or summarize JSONL event logs")
    events_parser.add_argument("action", choices=["summarize", "validate"])
    events_parser.add_argument("files", nargs="+", help="event files (JSONL)")
    report_parser = commands.add_parser(
        "report", help="re-render a bench's leaderboard, findings and plot from results.json"
    )
    report_parser.add_argument("results_dir", help="a folder that occ-gym bench --out wrote")
    record_parser = commands.add_parser(
        "record", help="run the nano tiers over a split and write a Parquet trace table"
    )
    record_parser.add_argument("--split", default="test", choices=["train", "test"])
    record_parser.add_argument("--tasks", type=_positive_int, default=500)
    record_parser.add_argument(
        "--suite",
        default="nano",
        choices=["nano", "nano-v1"],
        help="the tiers and tasks of OCC-Code-v0 (nano) or OCC-Code-v1 (nano-v1)",
    )
    record_parser.add_argument(
        "--samples", type=_positive_int, default=None, help="default: the suite's (4 / 8)"
    )
    record_parser.add_argument(
        "--repair-rounds", type=int, default=None, help="default: the suite's (3 / 2)"
    )
    record_parser.add_argument("--chunk-size", type=_positive_int, default=50)
    record_parser.add_argument(
        "--out",
        required=True,
        help="the Parquet file to write or resume (never the shipped table by default: "
        "make traces re-records those, explicitly)",
    )
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
        elif args.command == "report":
            report(args, console)
        elif args.command == "events":
            events_command(args, console)
    except (ValueError, TypeError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
