"""Choose MaskablePPO's hyperparameters for an env on the validation split, never on test.

    python benchmarks/ppo_selection.py [--env OCC-Code-v1] [--seeds 0 1] [--timesteps 300000]

Every setting of ``GRID`` (learning rate and its schedule, entropy bonus, network size) is
trained with ``occ-gym train --algo maskable_ppo`` on ``fit`` once per seed, two runs side by
side (one torch thread each). The step budget is chosen with them: each run keeps as
``best.zip`` its best of the evaluations every 20,000 steps on 200 ``val`` episodes. A run's
score is that ``best.zip`` on ``--score-episodes`` fresh ``val`` episodes (seed 10,000, so the
score is not the draw the checkpoint was picked on); a setting's is the mean over seeds. The
table goes to ``benchmarks/results/ppo_selection.{json,md}``; the chosen setting is the one in
``occ_gym/train/hyperparams/<env>.toml``'s ``[maskable_ppo]`` table. Test returns are not read.

The observation is not normalised: every feature is already scaled into [0, 1] by the env's
layout (``docs/environment.md``), so a running mean/std would only add state to ship.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
GRID: dict[str, tuple[Any, ...]] = {
    "learning_rate": (3e-4, "lin_1e-3"),
    "ent_coef": (0.01, 0.03),
    "policy_kwargs": ({"net_arch": [64, 64]}, {"net_arch": [128, 128]}),
}
SCORE_SEED = 10_000


def run_one(
    env_id: str,
    setting: dict[str, Any],
    seed: int,
    timesteps: int,
    folder: str,
    score_episodes: int,
) -> dict[str, Any]:
    """Train one setting with one seed; its best.zip's score on fresh val episodes."""
    import gymnasium as gym

    from occ_gym.evaluation import evaluate
    from occ_gym.policies.learned import load_policy
    from occ_gym.train.ppo import TrainConfig, train

    config = TrainConfig(
        env_id=env_id,
        algo="maskable_ppo",
        out=folder,
        seed=seed,
        timesteps=timesteps,
        overrides=setting,
    )
    record = train(config).record
    best = max(record["eval_curve"], key=lambda point: point["mean_return"])
    env = gym.make(env_id, split="val")
    score = evaluate(load_policy(Path(folder) / "best.zip"), env, score_episodes, seed=SCORE_SEED)
    env.close()
    return {
        "score": score.mean_return,
        "best_step": best["timesteps"],
        "seconds": record["wall_seconds"],
    }


def label(setting: dict[str, Any]) -> str:
    width = "x".join(map(str, setting["policy_kwargs"]["net_arch"]))
    return f"lr={setting['learning_rate']}, ent={setting['ent_coef']:g}, net={width}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="OCC-Code-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--score-episodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = [
        dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())
    ]
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory() as scratch,
        ProcessPoolExecutor(args.workers, mp_context=context) as pool,
    ):
        futures = {
            (i, seed): pool.submit(
                run_one,
                args.env,
                setting,
                seed,
                args.timesteps,
                str(Path(scratch) / f"{i}-{seed}"),
                args.score_episodes,
            )
            for i, setting in enumerate(settings)
            for seed in args.seeds
        }
        rows = []
        for i, setting in enumerate(settings):
            runs = [futures[i, seed].result() for seed in args.seeds]
            rows.append(
                {
                    "setting": setting,
                    "label": label(setting),
                    "val_returns": [round(run["score"], 4) for run in runs],
                    "val_mean": round(float(np.mean([run["score"] for run in runs])), 4),
                    "best_steps": [run["best_step"] for run in runs],
                    "train_seconds": round(float(np.mean([run["seconds"] for run in runs])), 1),
                }
            )
            print(rows[-1], flush=True)
    best = max(rows, key=lambda row: row["val_mean"])
    command = (
        f"python benchmarks/ppo_selection.py --env {args.env} --seeds "
        f"{' '.join(map(str, args.seeds))} --timesteps {args.timesteps} "
        f"--score-episodes {args.score_episodes}"
    )
    document = {"env_id": args.env, "command": command, "rows": rows, "chosen": best}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ppo_selection.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [
        f"MaskablePPO settings on `{args.env}` ({args.timesteps:,} steps on fit, seeds "
        f"{', '.join(map(str, args.seeds))}; each run's best.zip, chosen among its evaluations "
        f"every 20,000 steps on 200 val episodes, scored on {args.score_episodes:,} fresh val "
        f"episodes, seed {SCORE_SEED:,}):",
        "",
        "| learning rate | entropy | network | val return per seed | mean | best.zip at step "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['setting']['learning_rate']} | {r['setting']['ent_coef']:g} | "
            f"{'x'.join(map(str, r['setting']['policy_kwargs']['net_arch']))} | "
            f"{', '.join(f'{v:+.3f}' for v in r['val_returns'])} | {r['val_mean']:+.4f} | "
            f"{', '.join(f'{s:,}' for s in r['best_steps'])} | {r['train_seconds']} |"
            for r in rows
        ),
        "",
        f"Chosen: {best['label']}. Generated by `{command}`.",
    ]
    (args.out / "ppo_selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
