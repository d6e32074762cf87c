"""``occ-gym bench``: every policy on the same held-out problems, with error bars and curves.

Each **entry** is one policy at one setting of its knob (a tier, a retry count, a cascade depth,
or the compute weight λ it was trained for). Every entry plays the same ``episodes`` problems
for each of ``seeds`` evaluation seeds (seed block k plays ``env.reset(seed=base + k *
episodes + i)``), so all comparisons are paired. A **family** is one policy over its knob; its
entries trace a cost-quality curve.

The results are plain numbers (``results.json``); ``occ_gym.bench.report`` turns them into the
leaderboard, the Pareto plot and the findings. Every interval is a 95% percentile bootstrap
over episodes, drawn once and shared by every entry, so differences stay paired, except for a
learner shipped as several training seeds: seed block k plays its k-th seed, and its intervals
(and its differences with other entries, in the findings) are t-intervals across the blocks,
so they hold the spread between training seeds.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines import FixedTier, HeuristicOCC, HindsightOracle, RandomPolicy, VerifierGuided
from occ_gym.baselines.base import BaselinePolicy, Policy
from occ_gym.baselines.best_of_n import BestRoute, tune_best_route
from occ_gym.baselines.cascade import CascadeRule, ThresholdCascade, tune_cascade
from occ_gym.baselines.planner import fit_planner
from occ_gym.baselines.router import LearnedRouter, tune_router
from occ_gym.bench import stats
from occ_gym.bench.findings import compute_findings
from occ_gym.bench.labels import (
    AUTOMIX,
    BEST_ROUTE,
    ORACLE,
    PLANNER,
    REFERENCE,
    ROUTER,
    ROUTER_PROMPT_ONLY,
    SHIPPED,
    TUNED_CASCADE,
    seed_set_label,
)
from occ_gym.envs.code_env import occ_env
from occ_gym.evaluation import EPISODE_COLUMNS, run_episodes
from occ_gym.hashing import env_hash, file_digest, library_versions, stable_hash
from occ_gym.integrations.ray_scale import (
    RayCluster,
    ScaleError,
    UnitLost,
    enter,
    node_id,
    node_name,
)
from occ_gym.train.config import toml_value
from occ_gym.validation import positive_int

BENCH_VERSION = 1
RETRY_COUNTS = (1, 2, 3, 4)
HEADLINE_RETRIES = 3
CPT_LEVELS = (0.5, 0.8, 0.95)
ENTRY_METRICS = tuple(c for c in EPISODE_COLUMNS if c not in ("first_tier", "difficulty"))
"""Per-episode columns averaged for every entry (see ``evaluation.EPISODE_COLUMNS``)."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    env_id: str = "OCC-Code-v1"
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """``gym.make`` keywords of every env the bench makes (``traces=`` for OCC-Traces-v0); the
    split is the bench's own, and an entry trained at another λ replaces the oracle's."""
    split: str = "test"
    episodes: int = 1000
    """Problems per seed."""
    seeds: int = 5
    seed: int = 0
    """The first evaluation seed; seed block k starts at ``seed + k * episodes``."""
    policy_paths: tuple[str, ...] = ()
    """Trained policies (.zip or run folder) to add, each as its own family."""
    resamples: int = 1000
    """Bootstrap resamples behind every interval."""
    tune_episodes: int = 2000
    """Train-split episodes the tuned cascade's grid search plays per rule."""
    planner_episodes: int = 1_000_000
    """Train-split episodes the planner's empirical model is built from (chosen on
    OCC-Code-v1's val split by ``make planner-selection``)."""
    router_episodes: int = 50_000
    """Train-split episodes the routers' hidden-pass models are fitted on."""

    def __post_init__(self) -> None:
        if "split" in self.env_kwargs:
            raise ValueError("env_kwargs may not set split: the bench's split option does")
        unbatched = {
            key: self.env_kwargs[key]
            for key in ("budget", "render_mode", "mode")
            if self.env_kwargs.get(key) not in (None, "replay")
        }
        if unbatched:
            raise ValueError(
                f"env_kwargs {unbatched}: the bench fits its references on the native vector "
                "env, which has no budget, rendering or live mode; bench a replayed env"
            )
        for name in (
            "episodes",
            "seeds",
            "resamples",
            "tune_episodes",
            "planner_episodes",
            "router_episodes",
        ):
            positive_int(name, getattr(self, name))

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + k * self.episodes for k in range(self.seeds)]

    @property
    def command(self) -> str:
        env_kwargs = "".join(
            f" --env-kwarg {shlex.quote(f'{key}={toml_value(value)}')}"
            for key, value in self.env_kwargs.items()
        )
        return (
            f"occ-gym bench --env {self.env_id}{env_kwargs} --split {self.split} "
            f"--episodes {self.episodes} "
            f"--seeds {self.seeds} --seed {self.seed} --resamples {self.resamples} "
            f"--tune-episodes {self.tune_episodes} --planner-episodes {self.planner_episodes} "
            f"--router-episodes {self.router_episodes}"
        ) + "".join(f" --policy {path}" for path in self.policy_paths)


@dataclass(frozen=True)
class Entry:
    """One policy at one knob setting, played in the env of compute weight ``compute_penalty``."""

    label: str
    family: str
    knob: str
    knob_value: float | str | None
    compute_penalty: float
    headline: bool
    build: Callable[[gym.Env, int], Policy] = field(repr=False, compare=False)
    """A fresh policy for an env and an evaluation seed."""
    learned: bool = False
    training_seeds: int = 1
    """Training seeds behind the entry: above 1, seed block k plays the k-th (cycling)."""

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        del data["build"]
        return data


def baseline_suite(env: gym.Env, seed: int) -> list[BaselinePolicy]:
    """Every baseline at its headline setting, in table order; the hindsight oracle last."""
    tiers = occ_env(env).action_layout.tier_names
    return [
        *(FixedTier(env, name) for name in tiers),
        *(VerifierGuided(env, name, max_tries=HEADLINE_RETRIES) for name in tiers),
        HeuristicOCC(env),
        RandomPolicy(env, seed=seed),
        HindsightOracle(env),
    ]


def bench_entries(
    config: BenchConfig, env: gym.Env, fits: dict[str, dict[str, Any]] | None = None
) -> list[Entry]:
    """The rules over their knobs, the references fitted on the train split (the tuned
    cascade, the planner; what fitting found goes into ``fits``), the shipped policies over
    λ, the given policies, and the hindsight oracle at every λ any entry plays at."""
    from occ_gym.policies.learned import load_policy, shipped_policies, shipped_seed_sets

    inner = occ_env(env)
    tiers = inner.action_layout.tier_names
    penalty = inner.oracle.compute_penalty
    entries = [
        Entry(f"FixedTier({t})", "FixedTier", "tier", t, penalty, True, _fixed(t)) for t in tiers
    ]
    for tier in tiers:
        for tries in RETRY_COUNTS:
            entries.append(
                Entry(
                    f"VerifierGuided({tier}, {tries})",
                    f"VerifierGuided({tier})",
                    "max_tries",
                    tries,
                    penalty,
                    tries == HEADLINE_RETRIES,
                    _guided(tier, tries),
                )
            )
    for depth in range(1, len(tiers) + 1):
        name = "HeuristicOCC" if depth == len(tiers) else f"HeuristicOCC(depth {depth})"
        full = depth == len(tiers)
        entries.append(
            Entry(name, "HeuristicOCC", "depth", depth, penalty, full, _heuristic(depth))
        )
    entries.append(
        Entry(
            "HeuristicOCC(abstain)",
            "HeuristicOCC(abstain)",
            "",
            None,
            penalty,
            True,
            _heuristic(len(tiers), "abstain"),
        )
    )
    entries.append(Entry("RandomPolicy", "RandomPolicy", "", None, penalty, True, _random))
    answer_side = "candidate_confidence" in inner.observation_layout.fields
    for label, build in _fitted(config, penalty, answer_side, {} if fits is None else fits).items():
        entries.append(Entry(label, label, "", None, penalty, True, build))
    for trained_penalty, shipped in shipped_policies(config.env_id):
        default = trained_penalty == penalty
        label = SHIPPED if default else f"{SHIPPED[:-1]}, λ={trained_penalty:g})"
        policy = load_policy(shipped, name=label)
        entries.append(
            Entry(
                label, SHIPPED, "λ", trained_penalty, trained_penalty, default, _same(policy), True
            )
        )
    for algo, paths in shipped_seed_sets(config.env_id).items():
        label = seed_set_label(algo, len(paths))
        policies = [load_policy(path, name=f"{label}[{k}]") for k, path in enumerate(paths)]
        by_block = _by_seed_block(policies, config.seed_list)
        entries.append(Entry(label, label, "", None, penalty, True, by_block, True, len(policies)))
    for path in config.policy_paths:
        policy = load_policy(path)
        policy.check_fits(env, str(path))
        entries.append(
            Entry(policy.name, policy.name, "", None, penalty, True, _same(policy), True)
        )
    for value in sorted({e.compute_penalty for e in entries}):
        label = ORACLE if value == penalty else f"{ORACLE[:-1]}, λ={value:g})"
        entries.append(Entry(label, ORACLE, "λ", value, value, value == penalty, _oracle))
    labels = [e.label for e in entries]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"two policies share the name(s) {repeated}: give each file its own name")
    return entries


def _fitted(
    config: BenchConfig, penalty: float, answer_side: bool, fits: dict[str, dict[str, Any]]
) -> dict[str, Callable[[gym.Env, int], Policy]]:
    """Builders, by label, of the policies fitted on the train split at λ ``penalty``, each
    fitted once when first built (what fitting found goes into ``fits``): the tuned cascade,
    the AutoMix-style cascade and the answer-side router (on envs that show answer-side
    signals), best-of-n routed by the prompt, the prompt-only router, and the planner."""
    kwargs = {**config.env_kwargs, "oracle": with_penalty(config.env_kwargs, penalty)}
    rules: list[CascadeRule] = []
    made: dict[str, Policy] = {}

    def tuned_rule() -> CascadeRule:
        if not rules:
            fit = tune_cascade(config.env_id, episodes=config.tune_episodes, **kwargs)
            fits[TUNED_CASCADE] = fit.as_dict()
            rules.append(fit.rule)
        return rules[0]

    def cascade(env: gym.Env, seed: int) -> Policy:
        if TUNED_CASCADE not in made:
            made[TUNED_CASCADE] = ThresholdCascade(env, tuned_rule(), name=TUNED_CASCADE)
        return made[TUNED_CASCADE]

    def planner(env: gym.Env, seed: int) -> Policy:
        if PLANNER not in made:
            policy, fit = fit_planner(
                config.env_id, tuned_rule(), episodes=config.planner_episodes, **kwargs
            )
            fits[PLANNER] = fit.as_dict()
            made[PLANNER] = policy
        return made[PLANNER]

    def automix(env: gym.Env, seed: int) -> Policy:
        if AUTOMIX not in made:
            fit = tune_cascade(config.env_id, episodes=config.tune_episodes, verify=False, **kwargs)
            fits[AUTOMIX] = fit.as_dict()
            made[AUTOMIX] = ThresholdCascade(env, fit.rule, name=AUTOMIX)
        return made[AUTOMIX]

    def router(label: str, with_answers: bool) -> Callable[[gym.Env, int], Policy]:
        def build(env: gym.Env, seed: int) -> Policy:
            if label not in made:
                models, fit = tune_router(
                    config.env_id,
                    answer_side=with_answers,
                    episodes=config.tune_episodes,
                    data_episodes=config.router_episodes,
                    **kwargs,
                )
                fits[label] = fit.as_dict()
                made[label] = LearnedRouter(env, models, fit.settings, name=label)
            return made[label]

        return build

    def best_route(env: gym.Env, seed: int) -> Policy:
        if BEST_ROUTE not in made:
            fit = tune_best_route(config.env_id, episodes=config.tune_episodes, **kwargs)
            fits[BEST_ROUTE] = fit.as_dict()
            made[BEST_ROUTE] = BestRoute(env, fit.rules, name=BEST_ROUTE)
        return made[BEST_ROUTE]

    builders: dict[str, Callable[[gym.Env, int], Policy]] = {
        TUNED_CASCADE: cascade,
        BEST_ROUTE: best_route,
    }
    if answer_side:
        builders[AUTOMIX] = automix
        builders[ROUTER] = router(ROUTER, True)
    builders[ROUTER_PROMPT_ONLY] = router(ROUTER_PROMPT_ONLY, False)
    builders[PLANNER] = planner
    return builders


def with_penalty(env_kwargs: Mapping[str, Any], penalty: float) -> dict[str, Any]:
    """The oracle weights of ``env_kwargs`` with the compute weight λ set to ``penalty``."""
    return {**dict(env_kwargs.get("oracle") or {}), "compute_penalty": penalty}


def _fixed(tier: str) -> Callable[[gym.Env, int], Policy]:
    return lambda env, seed: FixedTier(env, tier)


def _guided(tier: str, tries: int) -> Callable[[gym.Env, int], Policy]:
    return lambda env, seed: VerifierGuided(env, tier, max_tries=tries)


def _heuristic(depth: int, on_exhausted: str = "submit") -> Callable[[gym.Env, int], Policy]:
    return lambda env, seed: HeuristicOCC(env, depth=depth, on_exhausted=on_exhausted)


def _random(env: gym.Env, seed: int) -> Policy:
    return RandomPolicy(env, seed=seed)


def _oracle(env: gym.Env, seed: int) -> Policy:
    return HindsightOracle(env)


def _same(policy: Policy) -> Callable[[gym.Env, int], Policy]:
    return lambda env, seed: policy


def _by_seed_block(
    policies: Sequence[Policy], seeds: list[int]
) -> Callable[[gym.Env, int], Policy]:
    """The k-th evaluation seed block meets the k-th policy (cycling over them)."""
    return lambda env, seed: policies[seeds.index(seed) % len(policies)]


class Bench:
    """Runs the entries and turns their episodes into ``results.json``'s numbers."""

    def __init__(self, config: BenchConfig):
        self.config = config
        self.envs: dict[float, gym.Env] = {}
        self.env = self._env(None)
        self.penalty = occ_env(self.env).oracle.compute_penalty
        self.envs[self.penalty] = self.env
        self.fits: dict[str, dict[str, Any]] = {}
        """What fitting the references on the train split found (after ``play``)."""
        self.entries = bench_entries(config, self.env, self.fits)
        self.logs: dict[str, dict[str, np.ndarray]] = {}
        """Per-episode columns of every entry, by label (after ``run``)."""
        self.columns: dict[str, dict[str, np.ndarray]] = {}
        """The logs with each entry's per-episode regret against the oracle at its λ."""

    def _env(self, penalty: float | None) -> gym.Env:
        kwargs: dict[str, Any] = {**self.config.env_kwargs, "split": self.config.split}
        if penalty is not None:
            kwargs["oracle"] = with_penalty(self.config.env_kwargs, penalty)
        return gym.make(self.config.env_id, **kwargs)

    def env_for(self, penalty: float) -> gym.Env:
        if penalty not in self.envs:
            self.envs[penalty] = self._env(penalty)
        return self.envs[penalty]

    def run(
        self, progress: Callable[[str], None] | None = None, cluster: RayCluster | None = None
    ) -> dict[str, Any]:
        """Play every entry on every seed, then compute every number of the results."""
        self.play(progress, cluster)
        try:
            return self.results()
        finally:
            self.close()

    def close(self) -> None:
        for env in self.envs.values():
            env.close()

    def play(
        self, progress: Callable[[str], None] | None = None, cluster: RayCluster | None = None
    ) -> None:
        """Play every entry on every seed into ``logs``: here, or on ``cluster``'s actors
        (one entry at a time each; the same numbers)."""
        if cluster is not None:
            self._play_on(cluster, progress)
            return
        for entry in self.entries:
            self.play_entry(entry)
            if progress is not None:
                progress(entry.label)

    def _play_on(self, cluster: RayCluster, progress: Callable[[str], None] | None) -> None:
        """``play`` with each entry on a ``BenchActor`` of ``cluster``; ``logs`` and ``fits``
        end as a local ``play`` leaves them (same numbers, same order)."""
        import torch

        units = [(entry.label, (entry.label,)) for entry in self.entries]
        played: dict[str, EntryResult] = {}
        actor_args = (self.config, torch.get_num_threads())
        for label, outcome in cluster.run(BenchActor, actor_args, "play", units):
            if isinstance(outcome, UnitLost):
                raise ScaleError(f"the bench entry {label!r} was not played: {outcome}")
            if isinstance(outcome, Exception):
                raise outcome
            played[str(label)] = outcome
            if progress is not None:
                progress(str(label))
        labels = [entry.label for entry in self.entries]
        for label in labels:
            self.logs[label] = played[label].logs
        fits = {key: value for label in labels for key, value in played[label].fits.items()}
        # A fit's key is the label of the entry a local run fits it for first.
        order = {label: i for i, label in enumerate(labels)}
        self.fits.update(sorted(fits.items(), key=lambda item: order.get(item[0], len(order))))

    def entry(self, label: str) -> Entry:
        for entry in self.entries:
            if entry.label == label:
                return entry
        raise KeyError(f"the bench has no entry {label!r}")

    def play_entry(self, entry: Entry) -> None:
        """Play ``entry`` on every seed block into ``logs[entry.label]``."""
        env = self.env_for(entry.compute_penalty)
        blocks = [
            run_episodes(entry.build(env, seed), env, self.config.episodes, seed=seed)
            for seed in self.config.seed_list
        ]
        self.logs[entry.label] = {
            name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]
        }

    # ------------------------------------------------------------------ numbers

    def results(self) -> dict[str, Any]:
        config = self.config
        rng = np.random.default_rng(config.seed)
        n = config.episodes * config.seeds
        # One resample of the episodes per row, shared by every entry: paired intervals.
        weights = stats.bootstrap_weights(rng, n, config.resamples)
        self.columns = self._with_regret()
        boot = {
            label: {name: weights @ log[name] for name in (*ENTRY_METRICS, "regret")}
            for label, log in self.columns.items()
        }
        weak, strong = self._weak_strong()
        entries = [self._entry_numbers(entry, boot, weak, strong) for entry in self.entries]
        cost_range = self._cost_range()
        curves = [
            self._curve_numbers(family, labels, boot, weak, strong, cost_range)
            for family, labels in self._families().items()
            if family != ORACLE
        ]
        results = {
            "bench_version": BENCH_VERSION,
            "command": config.command,
            "config": asdict(config),
            "cfg_hash": stable_hash({**asdict(config), "bench_version": BENCH_VERSION}),
            "env_id": config.env_id,
            "env_hash": env_hash(self.env),
            "policy_digests": self._policy_digests(),
            "split": config.split,
            "episodes": config.episodes,
            "seeds": config.seed_list,
            "compute_penalty": self.penalty,
            "reference": REFERENCE,
            "weak": weak,
            "strong": strong,
            "oracle": ORACLE,
            "cost_range": list(cost_range),
            "versions": library_versions(),
            "entries": entries,
            "curves": curves,
            "fits": self.fits,
        }
        results["findings"] = compute_findings(self, results, rng)
        return results

    def _with_regret(self) -> dict[str, dict[str, np.ndarray]]:
        oracle_return = {
            e.compute_penalty: self.logs[e.label]["return"]
            for e in self.entries
            if e.family == ORACLE
        }
        return {
            e.label: {
                **self.logs[e.label],
                "regret": oracle_return[e.compute_penalty] - self.logs[e.label]["return"],
            }
            for e in self.entries
        }

    def _entry_numbers(
        self, entry: Entry, boot: dict[str, dict[str, np.ndarray]], weak: str, strong: str
    ) -> dict[str, Any]:
        """Every metric's mean, interval and per-seed means; ΔIBC against weak → strong."""
        log = self.columns[entry.label]
        numbers = {}
        per_seed = self.config.episodes
        for name, draws in boot[entry.label].items():
            values = log[name]
            blocks = values.reshape(-1, per_seed).mean(axis=1)
            numbers[name] = {
                "mean": float(values.mean()),
                "ci": _interval(draws)
                if entry.training_seeds == 1
                else [_finite(v) for v in stats.t_interval(blocks)],
                "per_seed": [float(v) for v in blocks],
            }

        def point(columns: dict[str, Any], observed: bool) -> tuple[Any, Any]:
            if observed:
                return float(columns["compute"].mean()), float(columns["hidden_pass"].mean())
            return columns["compute"], columns["hidden_pass"]

        submits = not np.all(log["abstained"] + log["truncated"] >= 1)
        try:
            if not submits:  # no quality gained per cost to speak of: never ranked
                raise ValueError("ΔIBC is undefined for a policy that never submits")
            mean = stats.delta_ibc(
                point(log, True), point(self.logs[weak], True), point(self.logs[strong], True)
            )
            draws = stats.delta_ibc(
                point(boot[entry.label], False),
                point(boot[weak], False),
                point(boot[strong], False),
            )
            numbers["delta_ibc"] = {"mean": float(mean), "ci": _interval(draws)}
            defined = int(np.sum(~np.isnan(draws)))
            if defined < len(draws):
                numbers["delta_ibc"]["defined_resamples"] = defined
        except (ValueError, ZeroDivisionError, FloatingPointError):
            numbers["delta_ibc"] = {"mean": None, "ci": [None, None]}
        return {**entry.describe(), "metrics": numbers}

    def _weak_strong(self) -> tuple[str, str]:
        fixed = [e.label for e in self.entries if e.family == "FixedTier"]
        return fixed[0], REFERENCE if REFERENCE in fixed else fixed[-1]

    def _families(self) -> dict[str, list[str]]:
        families: dict[str, list[str]] = {}
        for entry in self.entries:
            families.setdefault(entry.family, []).append(entry.label)
        return families

    def _cost_range(self) -> tuple[float, float]:
        costs = [self.logs[e.label]["compute"].mean() for e in self.entries if e.family != ORACLE]
        return float(min(costs)), float(max(costs))

    def _curve_numbers(
        self,
        family: str,
        labels: list[str],
        boot: dict[str, dict[str, np.ndarray]],
        weak: str,
        strong: str,
        cost_range: tuple[float, float],
    ) -> dict[str, Any]:
        def points(means: dict[str, dict[str, Any]], row: int | None) -> dict[str, Any]:
            def point(label: str) -> tuple[float, float]:
                cost, quality = means[label]["compute"], means[label]["hidden_pass"]
                if row is None:
                    return float(cost), float(quality)
                return float(cost[row]), float(quality[row])

            return {
                "family": [point(x) for x in labels],
                "weak": point(weak),
                "strong": point(strong),
            }

        observed = {
            label: {name: self.logs[label][name].mean() for name in ("compute", "hidden_pass")}
            for label in {*labels, weak, strong}
        }
        full = _curve_metrics(points(observed, None), cost_range)
        draws = [
            _curve_metrics(points(boot, row), cost_range) for row in range(self.config.resamples)
        ]
        entry = next(e for e in self.entries if e.family == family)
        numbers = {}
        for name, value in full.items():
            values = [d[name] for d in draws]
            numbers[name] = {"mean": _finite(value), "ci": _interval(values)}
            defined = sum(not np.isnan(v) for v in values)
            if defined < len(values):  # undefined on some resamples: say on how many it was
                numbers[name]["defined_resamples"] = defined
        return {"family": family, "knob": entry.knob, "points": labels, "metrics": numbers}

    def _policy_digests(self) -> dict[str, str]:
        """SHA-256 of every policy file, shipped ones named inside the package (so the record
        does not depend on where it is installed), given ones as given."""
        from occ_gym.policies.learned import POLICIES_DIR, shipped_policies

        digests = {
            f"shipped:{path.relative_to(POLICIES_DIR).as_posix()}": file_digest(path)
            for _, path in shipped_policies(self.config.env_id)
        }
        for given in self.config.policy_paths:
            if Path(given).is_file():
                digests[given] = file_digest(Path(given))
        return digests


@dataclass
class EntryResult:
    """One bench entry played on every seed block, and the fits playing it made."""

    logs: dict[str, np.ndarray]
    fits: dict[str, dict[str, Any]]


class BenchActor:
    """A Ray actor playing bench entries (all their seed blocks) in its own ``Bench``."""

    def __init__(self, config: BenchConfig, torch_threads: int, cwd: str, index: int):
        self.problem: str | None = None
        try:
            import torch

            enter(cwd)
            # the driver's count: a policy's near-tie must break as it would in a local run
            torch.set_num_threads(torch_threads)
            self.bench = Bench(config)
        except Exception as error:  # reported by ready(), so the driver can name the node
            self.problem = f"a bench actor on {node_name()} cannot start: {error}"

    def ready(self) -> tuple[str | None, str]:
        return self.problem, node_id()

    def play(self, label: str) -> EntryResult:
        before = set(self.bench.fits)
        self.bench.play_entry(self.bench.entry(label))
        made = {key: value for key, value in self.bench.fits.items() if key not in before}
        return EntryResult(self.bench.logs[label], made)


def _curve_metrics(points: dict[str, Any], cost_range: tuple[float, float]) -> dict[str, float]:
    """Each curve metric, nan where it is undefined (a resample in which the strong model
    scores no higher than the weak one has no performance gap to recover)."""
    family, weak, strong = points["family"], points["weak"], points["strong"]
    formulas: dict[str, Callable[[], float]] = {
        "aiq": lambda: stats.aiq(family, cost_range),
        "apgr": lambda: stats.apgr(family, weak, strong),
        "cost_cut": lambda: stats.cost_cut_at(family, strong),
    }
    for level in CPT_LEVELS:
        formulas[f"cpt{round(level * 100)}"] = partial(stats.cpt, family, weak, strong, level)
    values = {}
    for name, formula in formulas.items():
        try:
            values[name] = float(formula())
        except (ValueError, ZeroDivisionError, FloatingPointError):
            values[name] = math.nan
    return values


def _interval(draws: Iterable[float]) -> list[float | None]:
    """The 2.5th and 97.5th percentiles of the draws where the metric is defined (order
    statistics, so a draw that never reached its target, inf, stays inf and becomes null)."""
    values = np.asarray(list(draws), dtype=float)
    values = np.sort(values[~np.isnan(values)])
    if not len(values):
        return [None, None]
    low, high = values[int(0.025 * (len(values) - 1))], values[-1 - int(0.025 * (len(values) - 1))]
    return [_finite(low), _finite(high)]


def _finite(value: float) -> float | None:
    """JSON has no inf or nan: a value that is not finite (never reached) is null."""
    return float(value) if np.isfinite(value) else None


EPISODES_FILE = "episodes.parquet"


def write_episodes(logs: dict[str, dict[str, np.ndarray]], out: Path) -> Path:
    """Every entry's per-episode columns as one Parquet table (``entry`` names the policy),
    written before any statistics so a run's played episodes are never lost."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = list(logs)
    columns: dict[str, Any] = {
        "entry": [label for label in labels for _ in range(len(next(iter(logs[label].values()))))]
    }
    for name in logs[labels[0]]:
        columns[name] = np.concatenate([logs[label][name] for label in labels])
    out.mkdir(parents=True, exist_ok=True)
    path = out / EPISODES_FILE
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path


def write_results(results: dict[str, Any], out: Path) -> Path:
    """Write ``results.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return path
