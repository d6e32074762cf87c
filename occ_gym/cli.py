"""The ``occ-gym`` command: ``bench`` compares policies on the same problems (``report``
re-renders its outputs), ``train`` trains a PPO / MaskablePPO allocator, ``record`` records
attempt traces (of the nano suites, or of any pool on a task pack), ``pack`` exports task packs,
``serve`` puts the nano tiers behind an OpenAI-compatible API, ``events`` checks and summarizes
event logs."""

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
from occ_gym.integrations.ray_scale import RayCluster, ScaleError
from occ_gym.train.config import ALGORITHM_NAMES, VEC_ENVS, TrainConfig, parse_env_kwarg

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
        env_kwargs=dict(parse_env_kwarg(text) for text in args.env_kwarg),
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
    cluster = _cluster(args)  # an unreachable cluster fails before the envs are made
    bench_run = Bench(config)
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        entries = len(bench_run.entries)
        job = bar.add_task(
            f"{entries} policies x {config.seeds} seeds x {config.episodes} problems", total=entries
        )
        bench_run.play(progress=lambda label: bar.advance(job), cluster=cluster)
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
    if args.pool:
        return record_pool_traces(args, console)
    from rich.progress import Progress

    from occ_gym.traces.record import RecordIncomplete, RecordPlan, record

    tasks = args.tasks or "500"
    if not tasks.isdigit() or int(tasks) < 1:
        raise ValueError(
            f"--tasks is a count of tasks >= 1 (a pack path needs --pool), got {tasks!r}"
        )
    plan = RecordPlan.of(
        args.suite,
        args.split,
        int(tasks),
        samples=args.samples,
        repair_rounds=args.repair_rounds,
        chunk_size=args.chunk_size,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cluster = _cluster(args)
    with Progress(console=console, transient=True) as bar:
        job = bar.add_task(f"recording {plan.tasks} {plan.split} tasks", total=plan.chunks)
        try:
            record(
                plan,
                out,
                progress=lambda done, total: bar.update(job, completed=done),
                cluster=cluster,
                torch_threads=args.torch_threads,
            )
        except RecordIncomplete as error:
            console.print(f"[red]incomplete:[/red] {error}")
            raise SystemExit(1) from None
    console.print(f"wrote {out}")
    return out


def record_pool_traces(args: argparse.Namespace, console: Console) -> Path:
    """``occ-gym record --pool POOL.toml --tasks PACK --out DIR``: DIR/traces.parquet."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from occ_gym.tasks.pack import read_pack
    from occ_gym.tiers.pool import read_pool
    from occ_gym.traces.record import RecordIncomplete, record_pool

    if not args.tasks:
        raise ValueError("record --pool needs --tasks PACK.jsonl (a task pack)")
    pool = read_pool(args.pool)
    problems = read_pack(args.tasks)
    if args.limit:
        problems = problems[: args.limit]
    out = Path(args.out)
    samples = args.samples or 4
    rounds = 2 if args.repair_rounds is None else args.repair_rounds
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task(
            f"{len(pool.tiers)} tiers x {len(problems)} tasks x {samples} samples", total=None
        )
        try:
            table = record_pool(
                pool,
                problems,
                out,
                samples,
                rounds,
                args.chunk_size,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
                cluster=_cluster(args),
                torch_threads=args.torch_threads,
            )
        except RecordIncomplete as error:
            console.print(f"[red]incomplete:[/red] {error}")
            raise SystemExit(1) from None
    console.print(f"wrote {table} ({pool.cost_unit} per cost unit)")
    return table


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


def pack_command(args: argparse.Namespace, console: Console) -> Path:
    """``occ-gym pack``: export a built-in task source as a task pack (JSONL)."""
    from occ_gym.tasks.pack import humaneval_pack, synthetic_pack, write_pack

    if args.source == "humaneval":
        problems = humaneval_pack()[: args.tasks] if args.tasks else humaneval_pack()
    else:
        problems = synthetic_pack(args.split, args.tasks or 100, args.source)
    out = write_pack(problems, args.out)
    console.print(f"wrote {len(problems)} {args.source} problems to {out}")
    return out


def serve_command(args: argparse.Namespace, console: Console) -> None:
    from occ_gym.integrations.serve import Faults, serve, shipped_tiers
    from occ_gym.resources import MODELS_DIR

    models_dir = Path(args.models) if args.models else MODELS_DIR
    tiers = args.tier or shipped_tiers(models_dir)
    faults = Faults(
        status=args.fault_status,
        hang_s=args.fault_hang_s,
        malformed=args.fault_malformed,
        count=args.fault_count,
        served_name=args.served_name,
    )
    console.print(f"serving {', '.join(tiers)} on http://{args.host}:{args.port}/v1")
    serve(args.host, args.port, tiers, models_dir, faults)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occ-gym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="compare every baseline on the same problems")
    bench = BenchConfig()
    bench_parser.add_argument("--env", default=bench.env_id, choices=occ_gym.ENV_IDS)
    bench_parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a gym.make keyword (TOML value), e.g. 'traces=\"runs/my-pool\"'; repeatable",
    )
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
    _add_ray_arguments(bench_parser, "entries (policy x lambda, every seed) run on Ray actors")
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
        "record",
        help="run the nano tiers over a split, or a pool over a task pack, into a trace table",
    )
    record_parser.add_argument("--split", default="test", choices=["train", "test"])
    record_parser.add_argument(
        "--tasks",
        help="how many tasks of the split (default 500); with --pool, a task pack (JSONL)",
    )
    record_parser.add_argument("--pool", help="a pool file (TOML): record its tiers")
    record_parser.add_argument(
        "--limit", type=_positive_int, help="with --pool: only the pack's first N tasks"
    )
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
    _add_ray_arguments(record_parser, "chunks run on Ray actors (each loads the tiers once)")
    record_parser.add_argument(
        "--torch-threads",
        type=_positive_int,
        help="torch threads per recording process (log-probabilities depend on it; default: "
        "a resumed run's, else this process's, on Ray the CPUs per actor)",
    )
    record_parser.add_argument(
        "--out",
        required=True,
        help="the Parquet file to write or resume (never the shipped table by default: "
        "make traces re-records those, explicitly); with --pool, a folder for traces.parquet",
    )
    pack_parser = commands.add_parser(
        "pack", help="export the synthetic tasks or HumanEval as a task pack (JSONL)"
    )
    pack_parser.add_argument(
        "--source", default="synthetic", choices=["synthetic", "synthetic-v1", "humaneval"]
    )
    pack_parser.add_argument("--split", default="test", choices=["train", "test"])
    pack_parser.add_argument(
        "--tasks", type=_positive_int, help="how many (default: 100 synthetic, all HumanEval)"
    )
    pack_parser.add_argument("--out", required=True, help="the JSONL file to write")
    serve_parser = commands.add_parser(
        "serve", help="serve the nano tiers over an OpenAI-compatible HTTP API"
    )
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument(
        "--tier", action="append", default=[], help="a model to serve (default: every shipped one)"
    )
    serve_parser.add_argument("--models", help="a folder of model cards and weights")
    faults = serve_parser.add_argument_group("faults", "misbehave on purpose (for fault tests)")
    faults.add_argument("--fault-count", type=int, default=0, help="requests that get the fault")
    faults.add_argument("--fault-status", type=int, default=0, help="answer this HTTP status")
    faults.add_argument("--fault-hang-s", type=float, default=0.0, help="hang this long first")
    faults.add_argument("--fault-malformed", action="store_true", help="answer broken JSON")
    faults.add_argument("--served-name", default="", help="claim this model name in answers")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_ray_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help=f"{what}: the cluster at ADDRESS (HOST:PORT), or the one `ray start` made "
        "here (auto, the default); needs occ-gym[ray]",
    )
    parser.add_argument(
        "--actors", type=_positive_int, help="Ray actors (default: as many as the CPUs hold)"
    )
    parser.add_argument(
        "--cpus-per-actor",
        type=float,
        help="CPUs each Ray actor reserves: its torch threads and sandboxes (default: 1)",
    )


def _cluster(args: argparse.Namespace) -> RayCluster | None:
    if args.ray is None:
        if args.actors is not None or args.cpus_per_actor is not None:
            raise ValueError("--actors and --cpus-per-actor need --ray")
        return None
    return RayCluster(args.ray, args.actors, args.cpus_per_actor or 1.0)


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
        elif args.command == "pack":
            pack_command(args, console)
        elif args.command == "serve":
            serve_command(args, console)
    except (ValueError, TypeError, OSError, ScaleError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
