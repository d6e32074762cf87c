"""Train an allocator with MaskablePPO (sb3-contrib), plain PPO (SB3) or GRPO
(``occ_gym.train.grpo``): ``occ-gym train``.

A run trains on the env's ``fit`` split (``train`` less its ``val`` tenth) with ``n_envs``
Monitor-wrapped envs, evaluates on the ``val`` split (those tenth tasks, carved from ``train``,
never trained on) every ``eval_freq`` steps (the same episodes each time), picks ``best.zip`` on
those returns, scores both checkpoints on ``test`` at the end, and writes into its folder::

    runs/NAME/
      last.zip        the latest weights (saved at every evaluation, so a killed run resumes)
      best.zip        the weights with the best ``val`` return (the final model included)
      run.json        config, cfg_hash, env_hash, seed, library versions, the ``val`` curve,
                      and both checkpoints' ``test`` metrics
      events.jsonl    an ``optimizer_update`` event per evaluation (config, metrics, checkpoint)
      evaluations/    SB3's evaluation log (evaluations.npz)
      monitor/        one Monitor CSV per training env
      tb/             TensorBoard logs (``tensorboard --logdir runs/NAME/tb``)

Hyperparameters come from ``hyperparams/<env id>.toml`` (one table per algorithm) and can be
overridden per run; plain PPO, which cannot read masks, trains through
``occ_gym.wrappers.IllegalActionPenalty``.
"""

from __future__ import annotations

import inspect
import json
import shlex
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor
from torch.utils.tensorboard import SummaryWriter

import occ_gym
from occ_gym.evaluation import evaluate
from occ_gym.events import training_event
from occ_gym.hashing import env_hash, library_versions, stable_hash
from occ_gym.integrations.sb3 import make_sb3_vec_env
from occ_gym.policies.learned import RUN_FILE, LearnedPolicy
from occ_gym.train.config import (
    VEC_ENVS,
    TrainConfig,
    TrainError,
    parse_env_kwarg,
    parse_override,
    toml_value,
)
from occ_gym.train.grpo import GRPO
from occ_gym.validation import positive_int
from occ_gym.wrappers import IllegalActionPenalty

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SB3_ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"maskable_ppo": MaskablePPO, "ppo": PPO}
ALGORITHMS: dict[str, type[Any]] = {**SB3_ALGORITHMS, "grpo": GRPO}
HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
HYPERPARAMS_VERSION = 1
RUN_KEYS = ("n_timesteps", "n_envs", "policy", "illegal_action_penalty")
"""Keys of a hyperparameter table that ``occ-gym train`` reads itself (the rest go to the
algorithm's constructor)."""
SCHEDULED_KEYS = ("learning_rate", "clip_range")
"""SB3 hyperparameters that may be written ``"lin_<start>"`` (RL Zoo's notation): decayed
linearly from ``start`` to 0 over the run."""
MONITOR_KEYWORDS = ("hidden_pass", "compute")
EVENTS_FILE = "events.jsonl"
"""The run folder's event log: one ``optimizer_update`` per held-out evaluation."""


def hyperparameters(env_id: str, algo: str) -> dict[str, Any]:
    """The table for ``algo`` in ``hyperparams/<env_id>.toml`` (``TrainError`` if missing)."""
    path = HYPERPARAMS_DIR / f"{env_id}.toml"
    if not path.is_file():
        raise TrainError(f"no hyperparameter file for {env_id!r} (looked for {path})")
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise TrainError(f"{path}: not valid TOML: {error}") from error
    if document.get("version") != HYPERPARAMS_VERSION:
        raise TrainError(f"{path}: expected version = {HYPERPARAMS_VERSION}")
    if algo not in document:
        raise TrainError(f"{path} has no [{algo}] table")
    return dict(document[algo])


def linear_schedule(key: str, text: str, algo: str) -> LinearSchedule:
    """``"lin_3e-4"``: SB3's schedule from 3e-4 at the start to 0 at the end of training."""
    if algo not in SB3_ALGORITHMS:
        raise TrainError(f"{key}={text!r}: schedules are for {sorted(SB3_ALGORITHMS)}, not {algo}")
    prefix, _, start = text.partition("lin_")
    try:
        value = float(start)
    except ValueError:
        value = float("nan")
    if prefix or not 0 < value < float("inf"):
        raise TrainError(f"{key}={text!r}: expected a number or 'lin_<start>' with start > 0")
    return LinearSchedule(value, 0.0, 1.0)


@dataclass(frozen=True)
class ResolvedRun:
    """A validated config with its hyperparameters and the folder it writes."""

    config: TrainConfig
    hyperparams: dict[str, Any]
    algo_kwargs: dict[str, Any]
    timesteps: int
    n_envs: int
    out: Path

    def as_dict(self) -> dict[str, Any]:
        config = asdict(self.config)
        config.update(timesteps=self.timesteps, n_envs=self.n_envs)
        return {"config": config, "hyperparams": self.hyperparams}


def resolve(config: TrainConfig) -> ResolvedRun:
    """Check every argument and the output folder, before anything is trained."""
    if config.env_id not in occ_gym.ENV_IDS:
        raise TrainError(f"unknown env id {config.env_id!r}; expected one of {occ_gym.ENV_IDS}")
    if config.algo not in ALGORITHMS:
        raise TrainError(f"unknown algo {config.algo!r}; expected one of {sorted(ALGORITHMS)}")
    if config.vec_env not in VEC_ENVS:
        raise TrainError(f"unknown vec_env {config.vec_env!r}; expected one of {VEC_ENVS}")
    if config.vec_env == "native" and config.algo == "ppo":
        raise TrainError("vec_env native has no illegal-action wrapper: train maskable_ppo on it")
    hyperparams = {**hyperparameters(config.env_id, config.algo), **dict(config.overrides)}
    timesteps = config.timesteps if config.timesteps is not None else hyperparams["n_timesteps"]
    n_envs = config.n_envs if config.n_envs is not None else hyperparams.get("n_envs", 1)
    for name, value in (
        ("timesteps", timesteps),
        ("n_envs", n_envs),
        ("eval_episodes", config.eval_episodes),
        ("eval_every", config.eval_every),
        ("torch_threads", config.torch_threads),
    ):
        positive_int(name, value, TrainError)
    hyperparams.update(n_timesteps=timesteps, n_envs=n_envs)
    algo_kwargs = {k: v for k, v in hyperparams.items() if k not in RUN_KEYS}
    for key in SCHEDULED_KEYS:
        if isinstance(algo_kwargs.get(key), str):
            algo_kwargs[key] = linear_schedule(key, algo_kwargs[key], config.algo)
    accepted = set(inspect.signature(ALGORITHMS[config.algo]).parameters)
    # What the run itself decides (the env, its split, the seed, the model) is no hyperparameter.
    decided = {"env_id", "env_kwargs", "split", "seed", "model", "device", "verbose"}
    decided |= {"tensorboard_log"}
    unknown = sorted(set(algo_kwargs) - (accepted - decided) - {"policy", "env"})
    if unknown:
        raise TrainError(f"{config.algo} takes no hyperparameter(s) {unknown}")
    if "illegal_action_penalty" in hyperparams and config.algo != "ppo":
        raise TrainError("illegal_action_penalty is for plain PPO (MaskablePPO reads masks)")
    if config.test_split in (config.train_split, config.eval_split):
        raise TrainError(
            f"the test split {config.test_split!r} may be neither trained on nor used to choose "
            f"a checkpoint (train {config.train_split!r}, eval {config.eval_split!r})"
        )
    if "split" in config.env_kwargs:
        raise TrainError("env_kwargs may not set split: training and evaluation choose their own")
    try:
        gym.make(config.env_id, **config.env_kwargs).close()
    except (TypeError, ValueError) as error:
        raise TrainError(
            f"{config.env_id} refuses env_kwargs {dict(config.env_kwargs)}: {error}"
        ) from error
    if config.resume is not None and not Path(config.resume).is_file():
        raise TrainError(f"no checkpoint to resume at {config.resume}")
    out = Path(config.out)
    if ((out / RUN_FILE).exists() or (out / "last.zip").exists()) and config.resume is None:
        raise TrainError(
            f"{out} already holds a run; choose another --out, or --resume {out}/last.zip"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise TrainError(f"cannot write the run folder {out}: {error}") from error
    return ResolvedRun(config, hyperparams, algo_kwargs, timesteps, n_envs, out)


class SeedEachEpisode(gym.Wrapper):
    """Seeds every reset: ``reset(seed=s)`` and then ``s + 1``, ``s + 2``, ... for the resets a
    vector env makes on its own. One env evaluated this way meets exactly the episodes of
    ``occ_gym.evaluation.evaluate(policy, env, n, seed=s)``, so the held-out curve is on the
    same problems as ``occ-gym bench --seed s``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.next_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.next_seed = seed
        if self.next_seed is not None:
            seed, self.next_seed = self.next_seed, self.next_seed + 1
        return self.env.reset(seed=seed, options=options)


def make_training_env(
    run: ResolvedRun,
    split: str,
    n_envs: int,
    monitor_dir: Path | None,
    seed_each_episode: bool = False,
) -> VecEnv:
    """``n_envs`` Monitor-wrapped envs of ``split`` (with the illegal-action wrapper for PPO)."""
    penalty = run.hyperparams.get("illegal_action_penalty")
    env_id, env_kwargs = run.config.env_id, {**run.config.env_kwargs, "split": split}

    def factory(rank: int) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            env = gym.make(env_id, **env_kwargs)
            if seed_each_episode:
                env = SeedEachEpisode(env)
            if penalty is not None:
                env = IllegalActionPenalty(env, penalty)
            filename = None if monitor_dir is None else str(monitor_dir / str(rank))
            return Monitor(env, filename=filename, info_keywords=MONITOR_KEYWORDS)

        return build

    if monitor_dir is not None:
        monitor_dir.mkdir(parents=True, exist_ok=True)
    if run.config.vec_env == "native" and not seed_each_episode:
        filename = None if monitor_dir is None else str(monitor_dir / "native")
        native = make_sb3_vec_env(env_id, n_envs, **env_kwargs)
        return VecMonitor(native, filename=filename, info_keywords=MONITOR_KEYWORDS)
    builders = [factory(rank) for rank in range(n_envs)]
    if run.config.vec_env == "subproc":  # the eval env too: SB3 wants both of one type
        return SubprocVecEnv(builders)
    return DummyVecEnv(builders)


class RichProgress(BaseCallback):
    """A rich progress bar with the mean return and hidden-pass rate of recent episodes."""

    def __init__(self, total: int, console: Console | None = None, every: int = 512):
        super().__init__()
        self.total, self.every = total, every
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    def _on_training_start(self) -> None:
        self.progress.start()
        self.job = self.progress.add_task(
            "training", total=self.total, completed=self.num_timesteps, stats=""
        )

    def _on_step(self) -> bool:
        if self.n_calls % max(1, self.every // self.training_env.num_envs) == 0:
            self.progress.update(self.job, completed=self.num_timesteps, stats=self._stats())
        return True

    def _stats(self) -> str:
        episodes = self.model.ep_info_buffer
        if not episodes:
            return ""
        mean_return = np.mean([e["r"] for e in episodes])
        hidden = np.mean([e["hidden_pass"] for e in episodes])
        return f"return {mean_return:+.3f}  hidden pass {hidden:.3f}"

    def _on_training_end(self) -> None:
        self.progress.stop()


class EpisodeMetrics(BaseCallback):
    """Logs the recent episodes' hidden-pass rate and compute (Monitor's info keywords) to
    TensorBoard beside SB3's return."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if episodes:
            for key in MONITOR_KEYWORDS:
                self.logger.record(
                    f"rollout/{key}_mean", float(np.mean([e[key] for e in episodes]))
                )


class SaveTo(BaseCallback):
    """Saves the model to ``path`` whenever it is called (as an eval callback's hook)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        self.model.save(self.path)
        return True


@dataclass
class UpdateLog:
    """Writes an ``optimizer_update`` event per held-out evaluation to the run's events.jsonl."""

    run: ResolvedRun
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    written: int = 0

    def write(self, point: dict[str, float], best: bool) -> None:
        config = self.run.config
        self.written += 1
        training_event(
            self.run.out / EVENTS_FILE,
            self.run_id,
            f"{config.env_id}/{config.eval_split}",
            self.written,
            algo=config.algo,
            timesteps=int(point["timesteps"]),
            updates=int(point["updates"]),
            config=self.run.hyperparams,
            metrics={k: v for k, v in point.items() if k not in ("timesteps", "updates")},
            checkpoint="last.zip",
            best=best,
        )


class HeldOutCurve(EvalCallback):
    """SB3's eval callback (or, mixed in first, sb3-contrib's maskable one) where every
    evaluation meets the same val episodes and appends (steps, gradient updates, wall seconds,
    return, hidden pass) to ``curve``."""

    def init_curve(self, eval_seed: int, started: float, log: UpdateLog) -> None:
        self.eval_seed, self.started, self.log = eval_seed, started, log
        self.curve: list[dict[str, float]] = []

    def evaluate_final(self, model: BaseAlgorithm) -> None:
        """One more evaluation after the last update, unless the last one saw this model, so
        best.zip is chosen among every model the run produced, the final one included.

        SB3 calls back while it collects a rollout, before that rollout's update: an
        evaluation at the run's last step count still saw the model one update short."""
        if self.curve and self.curve[-1]["updates"] == model._n_updates:
            return
        self.num_timesteps = model.num_timesteps
        self.n_calls = self.eval_freq * (self.n_calls // self.eval_freq + 1)
        self._on_step()

    def _init_callback(self) -> None:
        # The native vector env trains while one seeded Python env evaluates (so that held-out
        # episodes are the bench's): different types on purpose, not the mistake SB3 warns of.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Training and eval env are not of the same type")
            super()._init_callback()

    def _on_step(self) -> bool:
        evaluating = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if evaluating:
            self.eval_env.seed(self.eval_seed)
        best_before = self.best_mean_reward
        keep_going = super()._on_step()
        if evaluating:
            self.curve.append(
                {
                    "timesteps": int(self.num_timesteps),
                    "updates": int(self.model._n_updates),
                    "wall_seconds": round(time.perf_counter() - self.started, 2),
                    "mean_return": float(self.last_mean_reward),
                    "hidden_pass_rate": float(np.mean(self._is_success_buffer)),
                }
            )
            self.log.write(self.curve[-1], best=self.best_mean_reward > best_before)
        return keep_going


class MaskableHeldOutEval(HeldOutCurve, MaskableEvalCallback):
    pass


class HeldOutEval(HeldOutCurve):
    pass


@dataclass
class RunResult:
    """What a run produced: its folder, the model, and the run.json it wrote."""

    out: Path
    model: BaseAlgorithm
    record: dict[str, Any]


def train(
    config: TrainConfig, console: Console | None = None, command: str | None = None
) -> RunResult:
    """Train as ``config`` says and write the run folder (see the module docstring). Torch's
    thread count is ``config.torch_threads`` while it trains, and the caller's again after."""
    run = resolve(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        if config.algo == "grpo":
            return train_grpo(run, console, command)
        return _train_sb3(run, console, command)
    finally:
        torch.set_num_threads(threads)


def _train_sb3(run: ResolvedRun, console: Console | None, command: str | None) -> RunResult:
    config = run.config
    algorithm = SB3_ALGORITHMS[config.algo]
    envs = make_training_env(run, config.train_split, run.n_envs, run.out / "monitor")
    eval_env = make_training_env(run, config.eval_split, 1, None, seed_each_episode=True)
    envs.seed(config.seed)
    model: BaseAlgorithm | None = None
    try:
        if config.resume is not None:
            model = algorithm.load(config.resume, env=envs, device="cpu")
            model.tensorboard_log = str(run.out / "tb")
        else:
            model = algorithm(
                run.hyperparams["policy"],
                envs,
                seed=config.seed,
                device="cpu",
                tensorboard_log=str(run.out / "tb"),
                verbose=0,
                **run.algo_kwargs,
            )
        started = time.perf_counter()
        evaluator_class = MaskableHeldOutEval if config.algo == "maskable_ppo" else HeldOutEval
        evaluator = evaluator_class(
            eval_env,
            callback_on_new_best=SaveTo(run.out / "best.zip"),
            callback_after_eval=SaveTo(run.out / "last.zip"),
            n_eval_episodes=config.eval_episodes,
            eval_freq=max(1, config.eval_every // run.n_envs),
            log_path=str(run.out / "evaluations"),
            deterministic=True,
            verbose=0,
            warn=False,
        )
        evaluator.init_curve(config.eval_seed, started, UpdateLog(run))
        already = model.num_timesteps
        remaining = max(0, run.timesteps - already)
        callbacks = CallbackList(
            [evaluator, EpisodeMetrics(), RichProgress(run.timesteps, console)]
        )
        model.learn(
            remaining,
            callback=callbacks,
            reset_num_timesteps=config.resume is None,
            tb_log_name="run",
        )
        evaluator.evaluate_final(model)  # best.zip may be the model after its last update
        wall_seconds = time.perf_counter() - started
        model.save(run.out / "last.zip")
        if not (run.out / "best.zip").exists():
            model.save(run.out / "best.zip")
    finally:
        envs.close()
        eval_env.close()
        if model is not None and getattr(model, "_logger", None) is not None:
            model.logger.close()  # the TensorBoard writer's file and thread
    earlier = [] if config.resume is None else _earlier_curve(Path(config.resume).parent, already)
    curve = earlier + evaluator.curve
    record = _run_record(run, model, curve, already, wall_seconds, command)
    (run.out / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return RunResult(run.out, model, record)


def train_grpo(
    run: ResolvedRun, console: Console | None = None, command: str | None = None
) -> RunResult:
    """``train`` for GRPO (``occ_gym.train.grpo``): its own update loop, the same run folder.

    Every ``eval_every`` env steps (and after the last update) the policy plays the same
    ``eval_episodes`` val episodes; ``best.zip`` keeps the best, ``last.zip`` the latest."""
    config = run.config
    model = None
    if config.resume is not None:
        single = gym.make(config.env_id, split=config.train_split, **config.env_kwargs)
        model = MaskablePPO.load(config.resume, env=single, device="cpu")
        single.close()
    trainer = GRPO(
        config.env_id,
        split=config.train_split,
        env_kwargs=dict(config.env_kwargs),
        seed=config.seed,
        model=model,
        **run.algo_kwargs,
    )
    eval_env = gym.make(config.env_id, **{**config.env_kwargs, "split": config.eval_split})
    writer = SummaryWriter(str(run.out / "tb" / "run_1"))
    already = trainer.model.num_timesteps
    started = time.perf_counter()
    curve: list[dict[str, float]] = []
    next_eval = [already + config.eval_every]
    best = [-np.inf]
    log = UpdateLog(run)
    console = console or Console(stderr=True)

    def evaluate_now(grpo: GRPO) -> None:
        point = grpo.evaluate(eval_env, config.eval_episodes, config.eval_seed)
        curve.append(
            {
                "timesteps": int(grpo.model.num_timesteps),
                "updates": grpo.updates,
                "wall_seconds": round(time.perf_counter() - started, 2),
                **point,
            }
        )
        writer.add_scalar("eval/mean_reward", point["mean_return"], grpo.model.num_timesteps)
        grpo.model.save(run.out / "last.zip")
        improved = point["mean_return"] > best[0]
        if improved:
            best[0] = point["mean_return"]
            grpo.model.save(run.out / "best.zip")
        log.write(curve[-1], best=improved)
        console.print(
            f"GRPO {grpo.model.num_timesteps:,}/{run.timesteps:,} steps: "
            f"val return {point['mean_return']:+.3f}"
        )

    def on_update(grpo: GRPO) -> None:
        if grpo.model.num_timesteps >= next_eval[0]:
            while next_eval[0] <= grpo.model.num_timesteps:  # an update may span several
                next_eval[0] += config.eval_every
            evaluate_now(grpo)

    try:
        trainer.learn(run.timesteps, writer=writer, on_update=on_update)
        if not curve or curve[-1]["updates"] != trainer.updates:
            evaluate_now(trainer)
        wall_seconds = time.perf_counter() - started
        trainer.model.save(run.out / "last.zip")
    finally:
        trainer.close()
        eval_env.close()
        writer.close()
    earlier = [] if config.resume is None else _earlier_curve(Path(config.resume).parent, already)
    record = _run_record(run, trainer.model, earlier + curve, already, wall_seconds, command)
    (run.out / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return RunResult(run.out, trainer.model, record)


def _earlier_curve(folder: Path, resumed_at: int) -> list[dict[str, float]]:
    """The held-out curve of the run a checkpoint came from, up to where this one resumed."""
    try:
        earlier = json.loads((folder / RUN_FILE).read_text()).get("eval_curve", [])
    except (OSError, ValueError):
        return []
    return [point for point in earlier if point.get("timesteps", 0) <= resumed_at]


def _run_record(
    run: ResolvedRun,
    model: BaseAlgorithm,
    curve: list[dict[str, float]],
    resumed_at: int,
    wall_seconds: float,
    command: str | None,
) -> dict[str, Any]:
    config = run.config
    test_env = gym.make(config.env_id, **{**config.env_kwargs, "split": config.test_split})
    final = {}
    for name in ("last", "best"):
        policy = LearnedPolicy.load(run.out / f"{name}.zip")
        result = evaluate(
            policy, test_env, config.eval_episodes, seed=config.eval_seed, name=policy.name
        )
        final[name] = result.as_dict()
    hashed = run.as_dict()
    trained = model.num_timesteps - resumed_at
    return {
        "command": command or _command_for(run),
        **hashed,
        "cfg_hash": stable_hash(hashed),
        "env_id": config.env_id,
        "env_hash": env_hash(test_env),
        "algo": config.algo,
        "seed": config.seed,
        "timesteps_done": int(model.num_timesteps),
        "resumed_at": resumed_at,
        "wall_seconds": round(wall_seconds, 1),
        "fps": round(trained / wall_seconds, 1) if wall_seconds > 0 else None,
        "versions": library_versions(),
        "eval_curve": curve,
        "final_metrics": final,
    }


def _command_for(run: ResolvedRun) -> str:
    """The ``occ-gym train`` command that reproduces this run, every setting spelled out."""
    config = run.config
    parts = [
        f"occ-gym train --env {config.env_id} --algo {config.algo}",
        f"--timesteps {run.timesteps} --seed {config.seed} --n-envs {run.n_envs}",
        f"--eval-episodes {config.eval_episodes} --eval-every {config.eval_every}",
        f"--vec-env {config.vec_env} --out {shlex.quote(config.out)}",
    ]
    if config.resume is not None:
        parts.append(f"--resume {shlex.quote(config.resume)}")
    for flag, values in (("--set", config.overrides), ("--env-kwarg", config.env_kwargs)):
        parts += [
            f"{flag} {shlex.quote(f'{k}={toml_value(v)}')}" for k, v in sorted(values.items())
        ]
    return " ".join(parts)


def with_overrides(
    config: TrainConfig, texts: Sequence[str], env_texts: Sequence[str] = ()
) -> TrainConfig:
    """``config`` with ``key=value`` hyperparameter and env-kwarg overrides added."""
    overrides = dict(config.overrides)
    overrides.update(parse_override(text) for text in texts)
    env_kwargs = dict(config.env_kwargs)
    env_kwargs.update(parse_env_kwarg(text) for text in env_texts)
    return replace(config, overrides=overrides, env_kwargs=env_kwargs)
