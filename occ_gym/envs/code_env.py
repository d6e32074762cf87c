"""OCCCodeEnv: one programming problem per episode; the policy allocates compute to solve it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from occ_gym.attempt import Attempt, ErrorKind
from occ_gym.economics.broker import ResourceBroker
from occ_gym.economics.ledger import CreditLedger
from occ_gym.economics.oracle import ImpactOracle
from occ_gym.envs import rules
from occ_gym.envs.executor import AttemptKey, Executor
from occ_gym.envs.layout import (
    MAX_STEPS,
    VERDICTS,
    ActionLayout,
    MaskedDiscrete,
    ObservationLayout,
)
from occ_gym.resources import DEMO_RECORDING
from occ_gym.tasks import SyntheticTaskSource, make_task_source
from occ_gym.tasks.base import Task, TaskSource, base_split, carve_split
from occ_gym.tasks.pack import PackTaskSource, read_pack
from occ_gym.tiers import make_tiers
from occ_gym.tiers.base import ClosableTier, RecordedTier, Tier
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS
from occ_gym.tiers.pool import COST_MODELS
from occ_gym.tiers.suites import V0_SUITE
from occ_gym.validation import build_dataclass, finite_number

ERROR_NAMES = tuple(kind.name.lower() for kind in ErrorKind)
"""VERIFY's ``error_kind`` in the step info, by ``ErrorKind``."""
DEFAULT_VERIFIER_COST = 50.0
"""VERIFY's cost in cost units unless ``verifier_cost`` says otherwise (not for a recorded pool)."""
NANO_COST_UNIT = COST_MODELS["flops"]
"""The nano suites' cost unit (``traces.table.FLOPS_PER_COST_UNIT`` FLOPs)."""
RESET_OPTIONS = {
    "task_index": "play this task of the split instead of the episode's own draw",
    "episode_index": "play episode k of the current seed (0 is the one reset(seed=s) plays), "
    "without playing episodes 0..k-1; later resets go on from k + 1",
}
"""What ``reset(options=...)`` takes, with what each does."""
RECORDED = "recorded"
"""``tiers=`` and ``tasks=`` of ``OCC-Traces-v0``: a recorded pool on its recorded tasks."""
RECORDED_PENALTY = 0.15
"""A recorded pool's default compute weight λ makes a fresh attempt of its costliest tier cost
this much of a correct answer's reward (OCC-Code-v1's expensive tier: 0.0005 x 333 = 0.17)."""
RECORDED_VERIFY_SHARE = 0.06
"""A recorded pool's default VERIFY cost, as a share of its costliest tier's fresh attempt
(OCC-Code-v1: 20 / 333)."""


def recorded_pool(
    tasks: str,
    split: str,
    mode: str,
    traces: str | None,
    models: str | None,
    simulation: Mapping[str, Any] | None,
    pool: str | None,
) -> tuple[list[Tier], TaskSource, str]:
    """``OCC-Traces-v0``'s tiers, tasks and cost unit: the recording in folder ``traces`` (a folder
    `occ-gym record --pool POOL --tasks PACK --out DIR` wrote; the shipped demo by default), on
    its recorded tasks or on the task pack at path ``tasks`` (live mode writes what the
    recording lacks)."""
    from occ_gym.tiers.pool_tier import make_pool_tiers
    from occ_gym.traces.recording import Recording

    if models is not None or simulation is not None:
        raise ValueError("models and simulation do not apply to a recorded pool (see pool=)")
    recording = Recording.read(DEMO_RECORDING if traces is None else traces)
    problems = recording.problems if tasks == RECORDED else recording.problems_of(read_pack(tasks))
    tiers: list[Tier] = list(make_pool_tiers(recording, mode, pool, problems))
    source = carve_split(PackTaskSource(problems, base_split(split)), split)
    return tiers, source, recording.cost_unit


class OCCCodeEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    Each episode is one programming problem. The policy decides, step by step, which code model
    tier to call, whether to run the public tests on the candidate (VERIFY), whether to REPAIR a
    candidate that failed them with the verifier's feedback in the context, and when to SUBMIT
    (hidden tests decide) or ABSTAIN. It is scored by correctness on the hidden tests minus the
    compute it spent (``ImpactOracle``). ``OCC-CodeSim-v0`` uses simulated tiers: the parametric
    model of the original OCC benchmark, where a task's latent difficulty is seen only through
    noisy prompt features.

    ## Action Space

    ``Discrete(K + 4)`` for K tiers, sorted cheapest first (``env.unwrapped.action_layout`` names
    every index; K = 3 by default):

    | Num      | Action       | Legal when (``action_masks()``)                                  |
    |----------|--------------|------------------------------------------------------------------|
    | 0..K-1   | ATTEMPT(k)   | the broker allows tier k's cost (always, without a budget)       |
    | K        | VERIFY       | the current candidate is unverified (and the broker allows it)   |
    | K+1      | REPAIR       | the current candidate failed VERIFY (and the broker allows it)   |
    | K+2      | SUBMIT       | a candidate exists                                               |
    | K+3      | ABSTAIN      | always                                                           |

    ATTEMPT(k) replaces the current candidate with a fresh, unchecked one from tier k. REPAIR
    asks the current candidate's tier again with the candidate and the feedback appended: it is
    likelier to pass and costs more each round as the context grows. SUBMIT hands in the current
    candidate, unless it failed VERIFY and an earlier verified candidate passed more public
    tests, in which case that one. An illegal action raises ``ValueError``; a policy that cannot
    read masks (plain PPO) trains through ``occ_gym.wrappers.IllegalActionPenalty``. The action
    space is a ``Discrete`` that never samples an illegal action (``MaskedDiscrete``):
    ``sample(mask=env.unwrapped.action_masks())`` draws among all legal actions; ``sample()``
    alone only among those that stay legal across a reset (allowed ATTEMPTs and ABSTAIN).

    ## Observation Space

    A flat ``float32`` ``Box(0, 1, (F + 2K + 17,))``; F = 4 prompt features and K = 3 tiers give
    shape ``(28,)``. ``env.unwrapped.observation_layout`` is the one source of this table:

    | Index | Field                | Meaning                                                   |
    |-------|----------------------|-----------------------------------------------------------|
    | 0-3   | prompt_features      | features of the prompt text (task source's)               |
    | 4-6   | tier_attempts        | fresh attempts made with each tier / max_steps            |
    | 7     | has_candidate        | 1 if a candidate exists                                   |
    | 8-10  | candidate_tier       | one-hot: tier that wrote the current candidate            |
    | 11-13 | candidate_verdict    | one-hot: current candidate unverified/passed/failed       |
    | 14-21 | error_kind           | one-hot ErrorKind of the current candidate's VERIFY       |
    | 22    | public_pass_fraction | public tests the current candidate passed (if verified)   |
    | 23    | best_public_fraction | best public-test fraction of any verified candidate       |
    | 24    | context_length       | repair round of the current candidate / max repair rounds |
    | 25    | cost_so_far          | compute spent / the most an episode can spend             |
    | 26    | budget_left          | budget left / budget (1 when there is no budget)          |
    | 27    | steps_left           | steps left / max_steps                                    |

    Only what a deployed allocator could see: never hidden-test results or the latent difficulty.
    ``cost_so_far`` divides by ``max_steps * max(costliest fresh attempt, verifier cost)`` and is
    clipped at 1.

    ## Rewards

    Each step costs ``-λ * cost`` (λ = the oracle's ``compute_penalty``; ATTEMPT and REPAIR cost
    the tier's price, VERIFY the verifier's, SUBMIT and ABSTAIN nothing). SUBMIT adds the oracle's
    outcome terms (correctness, partial credit, regression). So the return of an episode equals
    ``info["score"]["total"]``, the ImpactOracle's correctness-minus-compute score.

    ## Starting State

    A task drawn uniformly from the split (or ``options={"task_index": i}``); no candidate;
    nothing spent. Every draw of an episode is a pure function of the seed, the episode's index
    since the seeded reset and the draw's own counter (``rules.episode_base``; the seed's key is
    one draw from ``np_random``): a seed fixes the whole episode whatever the policy does,
    sub-env ``i`` of the vector env computes the same draws in one batch, and
    ``options={"episode_index": k}`` plays episode k of the seed without playing 0..k-1.
    Assigning ``env.np_random`` starts the stream of that generator (its episode 0); pickle the
    env to resume a run where it stood.

    ## Episode End

    - Termination: SUBMIT or ABSTAIN.
    - Truncation: ``max_steps`` steps without either (nothing is submitted). The env truncates
      itself; its registrations set no ``max_episode_steps`` so the two can never disagree.
      A ``TimeLimit`` added by hand (``gym.make(id, max_episode_steps=N)``) is invisible to
      the env: wrap it in ``occ_gym.wrappers.TruncationInfo`` for the keys below.

    The last step's ``info`` holds the episode contract: ``outcome`` ("submitted", "abstained"
    or "truncated"), ``hidden_pass`` (bool; also as ``is_success``, which SB3 logs as a success
    rate), ``public_pass`` (bool), ``hidden_passed``,
    ``hidden_total``, ``submitted_tier``, ``compute`` (cost units), ``tokens``, ``wall_ms`` (the
    recorded writing and verifying time; 0 for simulated tiers), ``steps``,
    ``score`` (the oracle's breakdown, a dict) and per-tier ``tier_attempts``,
    ``tier_public_passes`` and ``tier_compute``. Every step's ``info`` has ``action``, ``tier``,
    ``cost`` and ``verdict``; ATTEMPT and REPAIR add ``tokens_in`` (the context) and
    ``tokens_out``, REPAIR ``repair_round`` and ``context_dropped`` (how many of the
    ``repair_round`` earlier failed attempts its context left out to fit the model's window;
    -1 where the trace does not record it); VERIFY adds ``error_kind``, ``public_passed``,
    ``public_total``, ``verify_ms`` (the sandbox's wall time; 0 for simulated tiers) and, on a
    failure with real code, the verifier's ``feedback``.

    ## Arguments

    | Argument      | Default       | Meaning                                                    |
    |---------------|---------------|------------------------------------------------------------|
    | tiers         | "simulated"   | "simulated", a list of ``SimulatedTierSpec`` mappings,     |
    |               |               | "nano" (the trained code models; needs tasks="synthetic"), |
    |               |               | or "recorded" (any recorded pool: ``OCC-Traces-v0``)       |
    | tasks         | "simulated"   | the task source: "simulated", "synthetic" (nano tiers), or |
    |               |               | "recorded" (the recording's tasks) or a task pack's path   |
    | split         | "train"       | "train", "test" (held out), or "val" / "fit": a tenth of   |
    |               |               | train (v1: by program) / the rest (select on val); a       |
    |               |               | recorded pool also has "all"                               |
    | mode          | "replay"      | nano or recorded tiers: "replay" (the table) or "live"     |
    |               |               | (write and verify what the table lacks)                    |
    | traces        | None          | nano tiers: a trace table to replay instead of the shipped |
    |               |               | one; recorded: the folder ``occ-gym record --pool`` wrote  |
    |               |               | (the shipped demo recording if None)                       |
    | pool          | None          | recorded, live: the pool file that writes the misses (the  |
    |               |               | folder's ``pool.toml`` if None)                            |
    | models        | None          | nano tiers: a folder of model cards and weights instead of |
    |               |               | the shipped ones (live mode loads them all at make)        |
    | simulation    | None          | overrides of ``SimulationConfig`` (repairs, test outcomes) |
    | oracle        | None          | overrides of ``ImpactOracle`` weights                      |
    | verifier_cost | None          | cost units of one VERIFY (None: 50, or for a recorded pool |
    |               |               | 6% of its costliest tier's fresh attempt)                  |
    | max_steps     | 8             | steps before truncation (2 to 64)                          |
    | budget        | None          | cost units an episode may spend; the broker masks the rest |
    | render_mode   | None          | None or "ansi" (a readable timeline)                       |

    ```python
    env = gym.make("OCC-CodeSim-v0", split="test", oracle={"compute_penalty": 0.002}, budget=600)
    ```

    ## Version History

    - v0: first version (``OCC-Code-v0``, ``OCC-CodeSim-v0``, ``OCC-Traces-v0``); v1:
      ``OCC-Code-v1``'s tiers, tasks and answer-side observation.
    """

    # An instance attribute in gymnasium.Env, so not a ClassVar here.
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012
    action_space: MaskedDiscrete
    AGENT = "allocator"
    """Who spends compute in the env's ledger."""

    def __init__(
        self,
        *,
        tiers: str | Sequence[Mapping[str, Any]] = "simulated",
        tasks: str = "simulated",
        split: str = "train",
        mode: str = "replay",
        traces: str | None = None,
        models: str | None = None,
        simulation: Mapping[str, Any] | None = None,
        oracle: Mapping[str, Any] | None = None,
        verifier_cost: float | None = None,
        pool: str | None = None,
        max_steps: int = 8,
        budget: float | None = None,
        render_mode: str | None = None,
    ):
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)):
            raise TypeError(f"max_steps must be an int, got {type(max_steps).__name__}")
        if max_steps < 2:
            raise ValueError(f"max_steps must be >= 2 (an attempt and a submit), got {max_steps}")
        if max_steps > MAX_STEPS:
            raise ValueError(
                f"max_steps must be <= {MAX_STEPS}, got {max_steps}: each reset draws every "
                "attempt the episode could reach, which grows with max_steps squared"
            )
        self.budget = None if budget is None else finite_number("budget", budget, minimum=0.0)
        if self.budget == 0.0:
            raise ValueError("budget must be > 0 (or None for no budget)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        if not isinstance(tasks, str) or not isinstance(split, str):
            raise TypeError("tasks and split must be strings")
        if oracle is not None and not isinstance(oracle, Mapping):
            raise TypeError(f"oracle must be a mapping of weights, got {type(oracle).__name__}")

        self.render_mode = render_mode
        self.max_steps = int(max_steps)
        recorded_split = base_split(split)
        answer_signals = False
        self.cost_unit = "cost units"
        """What costs, compute and the budget are counted in (a recorded pool's own unit)."""
        if tiers == RECORDED:
            self.tiers, self.task_source, self.cost_unit = recorded_pool(
                tasks, split, mode, traces, models, simulation, pool
            )
            answer_signals = True
        else:
            if pool is not None:
                raise ValueError(f"pool= is for tiers={RECORDED!r} (OCC-Traces-v0) only")
            self.tiers = make_tiers(tiers, tasks, recorded_split, mode, traces, simulation, models)
            first = self.tiers[0]
            if isinstance(first, RecordedTier):
                # A nano suite's tiers say which tasks they recorded and what the observation
                # shows.
                suite = getattr(first, "suite", V0_SUITE)
                self.cost_unit = NANO_COST_UNIT
                self.task_source = carve_split(
                    SyntheticTaskSource(recorded_split, first.task_count, suite.tasks), split
                )
                answer_signals = suite.answer_signals
            else:
                self.task_source = make_task_source(tasks, split)
        costliest_tier = max(tier.nominal_cost for tier in self.tiers)
        oracle = dict(oracle or {})
        if tiers == RECORDED:
            # A pool's costs come in its own unit: the defaults scale with its costliest tier.
            oracle.setdefault("compute_penalty", RECORDED_PENALTY / costliest_tier)
            if verifier_cost is None:
                verifier_cost = RECORDED_VERIFY_SHARE * costliest_tier
        self.verifier_cost = finite_number(
            "verifier_cost",
            DEFAULT_VERIFIER_COST if verifier_cost is None else verifier_cost,
            minimum=0.0,
        )
        self.oracle: ImpactOracle = build_dataclass(ImpactOracle, oracle, "oracle")
        self.length_scale = max(
            (t.max_new_tokens for t in self.tiers if isinstance(t, RecordedTier)),
            default=MAX_NEW_TOKENS,
        )
        """What ``candidate_length`` divides a candidate's new tokens by."""
        self.tier_names = tuple(tier.name for tier in self.tiers)
        self.action_layout = ActionLayout(self.tier_names)
        self.observation_layout = ObservationLayout(
            self.task_source.feature_names, self.tier_names, self.max_steps, answer_signals
        )
        self._mask = np.zeros(self.action_layout.size, dtype=bool)
        self._action_count = self.action_layout.size
        self.action_space = MaskedDiscrete(self._mask, len(self.tiers))
        self.observation_space = spaces.Box(
            0.0, 1.0, shape=(self.observation_layout.size,), dtype=np.float32
        )
        self._executor = Executor(self.tiers, self.max_steps)
        costliest = max(costliest_tier, self.verifier_cost)
        self._cost_scale = self.max_steps * costliest
        self._starts = {name: f.start for name, f in self.observation_layout.fields.items()}
        self._answer_signals = answer_signals
        self._obs_size = self.observation_layout.size
        self._feature_slice = self.observation_layout["prompt_features"]
        self._attempts_slice = self.observation_layout["tier_attempts"]
        self._episode: Episode | None = None
        """The current episode's state (``None`` before the first reset)."""
        self.episode_index = -1
        """The current episode's index in its seed's stream (``rules.episode_base``)."""
        self._keyed_rng: np.random.Generator | None = None
        """The ``np_random`` that ``_stream_key`` was drawn from."""
        self._stream_key = 0
        self._next_episode = 0
        self._tasks: dict[int, TaskEntry] = {}
        """Tasks met so far, with what every episode of them starts from."""
        self._mask_rows = self._mask_table()
        fields = self.observation_layout.fields
        self._candidate_block = slice(
            fields["has_candidate"].start, fields["error_kind"].start + fields["error_kind"].size
        )
        self._empty_block = [0.0] * (self._candidate_block.stop - self._candidate_block.start)
        self._timeline: list[str] = []
        self._ledger: CreditLedger | None = None
        self._broker: ResourceBroker | None = None

    # ------------------------------------------------------------------ Gymnasium API

    def close(self) -> None:
        """Stop what live tiers started (the verifier's sandbox servers)."""
        for tier in self.tiers:
            if isinstance(tier, ClosableTier):
                tier.close()
        super().close()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = self._checked_options(options)  # before anything changes
        super().reset(seed=seed)
        rng = self.np_random
        if rng is not self._keyed_rng:  # seeded now, the first reset, or np_random replaced
            self._keyed_rng = rng
            self._stream_key = rules.stream_key(rng)
            self._next_episode = 0
        episode = options.get("episode_index", self._next_episode)
        self._next_episode = episode + 1
        self.episode_index = episode
        base = rules.episode_base(self._stream_key, episode)
        index = options.get("task_index")
        if index is None:
            index = rules.episode_task(base, len(self.task_source))
        entry = self._tasks.get(index)
        if entry is None:
            entry = self._tasks[index] = self._task_entry(index)
        task = entry.task
        self._executor.begin_episode(task, base)
        self._episode = Episode(task, entry.observation.copy(), entry.fresh_costs)
        if self.budget is not None:
            self._ledger = CreditLedger()
            self._broker = ResourceBroker(self._ledger, budget=self.budget)
        if self.render_mode == "ansi":
            self._timeline = [f"task {task.task_id} ({self.task_source.split} split)"]
        self._update_mask()
        return self._observation(), {"task_id": task.task_id, "split": self.task_source.split}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        ep = self._require_active("step()")
        action = self._checked_action(action)
        layout = self.action_layout
        cost = 0.0
        terminated = False
        submission: tuple[AttemptKey, Attempt] | None = None
        info: dict[str, Any] = {"action": layout.names[action], "tier": None, "cost": 0.0}

        if action < layout.num_tiers:
            cost = self._generate(ep, AttemptKey(action, ep.tier_attempts[action], 0))
            written = ep.require_candidate()
            info["tier"] = self.tier_names[action]
            info["verdict"] = "unverified"
            info["tokens_in"] = written.tokens_in
            info["tokens_out"] = written.tokens_out
        elif action == layout.repair:
            key = ep.require_candidate_key()
            cost = self._generate(ep, key._replace(repair_round=key.repair_round + 1))
            info.update(tier=self.tier_names[key.tier], verdict="unverified", **ep.token_info())
            repaired = ep.require_candidate()
            info.update(
                repair_round=repaired.repair_round, context_dropped=repaired.context_dropped
            )
        elif action == layout.verify:
            cost = self.verifier_cost
            self._verify(ep, info)
        else:
            terminated = True
            submission = self._submission(ep) if action == layout.submit else None
            if submission is None:
                info["verdict"] = "abstained"
            else:
                info["verdict"] = "hidden_pass" if submission[1].hidden_pass else "hidden_fail"

        ep.steps += 1  # after the attempt, so one that cannot be made changes nothing
        return self._finish_step(ep, action, info, cost, terminated, submission)

    def _finish_step(
        self,
        ep: Episode,
        action: int | None,
        info: dict[str, Any],
        cost: float,
        terminated: bool,
        submission: tuple[AttemptKey, Attempt] | None,
        penalty: float = 0.0,
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Charge ``cost``, end the episode when it is over, and build the step's result."""
        layout = self.action_layout
        ep.compute += cost
        info["cost"] = cost
        if self._ledger is not None and cost > 0:
            self._ledger.spend(
                self.AGENT,
                "verifier" if action == layout.verify else info["tier"],
                cost,
                reason=info["action"],
                task_id=ep.task.task_id,
                action_id=ep.steps,
            )
        reward = rules.step_reward(cost, self.oracle.compute_penalty)
        truncated = rules.is_truncated(not terminated, ep.steps, self.max_steps)
        if terminated or truncated:
            outcome = "truncated" if truncated else ("submitted" if submission else "abstained")
            summary, outcome_value = self._episode_summary(ep, outcome, submission)
            reward += outcome_value
            info.update(summary)
            ep.active = False
        reward -= penalty
        ep.episode_return += reward
        if not ep.active:
            info["episode_return"] = ep.episode_return
        if self.render_mode == "ansi":
            self._timeline.append(self._timeline_line(ep, info, reward))
        self._update_mask()
        return self._observation(), float(reward), terminated, truncated, info

    def idle_step(self, penalty: float = 0.0) -> tuple[np.ndarray, float, bool, bool, dict]:
        """A step that does nothing but use up one of the episode's ``max_steps``: no attempt, no
        cost, reward ``-penalty``, truncation at ``max_steps`` as for any step. Its info has
        ``action="IDLE"``. ``occ_gym.wrappers.IllegalActionPenalty`` turns illegal actions into it.
        """
        ep = self._require_active("idle_step()")
        penalty = finite_number("penalty", penalty, minimum=0.0)
        ep.steps += 1
        info: dict[str, Any] = {"action": "IDLE", "tier": None, "cost": 0.0, "verdict": None}
        return self._finish_step(ep, None, info, 0.0, False, None, penalty)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "\n".join(self._timeline) + "\n"
        return None

    # ------------------------------------------------------------------ public helpers

    def truncation_summary(self) -> dict[str, Any]:
        """The end-of-episode info keys for an episode an outer wrapper cut short (Gymnasium's
        ``TimeLimit``, which the env cannot see): what the env's own truncation would report at
        this step. ``occ_gym.wrappers.TruncationInfo`` and ``run_episodes`` add them when a
        final info lacks them."""
        ep = self._require_episode("truncation_summary()")
        summary, _ = self._episode_summary(ep, "truncated", None)
        summary["episode_return"] = ep.episode_return
        return summary

    def action_masks(self) -> np.ndarray:
        """Legal actions now, as a bool array of the action space's size (MaskablePPO reads it)."""
        self._require_episode("action_masks()")
        return self._mask.copy()

    def peek_attempt(self, tier: int, sample: int, repair_round: int) -> Attempt:
        """The attempt fixed for this episode, hidden results included.

        For upper-bound baselines (``HindsightOracle``) and analysis only: a policy that reads it
        is cheating. Peeking changes nothing about the episode.
        """
        return self._executor.attempt(self.action_layout.tier_index(tier), sample, repair_round)

    def action_cost(self, action: int) -> float:
        """Cost units ``action`` would spend now."""
        layout = self.action_layout
        ep = self._require_episode("action_cost()")
        if action < layout.num_tiers:
            return ep.fresh_costs[action]
        if action == layout.verify:
            return self.verifier_cost
        if action == layout.repair and ep.candidate_key is not None:
            key = ep.candidate_key
            return self._executor.cost(key.tier, key.repair_round + 1)
        return 0.0

    @property
    def task(self) -> Task:
        """The current episode's task, latent difficulty included: for analysis only (like
        ``peek_attempt``), never for a policy."""
        return self._require_episode("reading the task").task

    @property
    def candidate(self) -> Attempt | None:
        """The current candidate, hidden results included: for analysis and tests only."""
        return self._require_episode("reading the candidate").candidate

    @property
    def executor(self) -> Executor:
        """The episode's memoised attempts (the vector env reads its shapes)."""
        return self._executor

    @property
    def cost_scale(self) -> float:
        """What ``cost_so_far`` in the observation divides by."""
        return self._cost_scale

    @property
    def tier_costs(self) -> tuple[float, ...]:
        """Nominal cost of a fresh attempt of each tier, cheapest first."""
        return tuple(tier.nominal_cost for tier in self.tiers)

    # ------------------------------------------------------------------ episode mechanics

    def _checked_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """``reset``'s options, each an int in its range."""
        if not options:
            return {}
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; known: {sorted(RESET_OPTIONS)}"
            )
        limits = {"task_index": len(self.task_source), "episode_index": 1 << 62}
        for name, value in options.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not (0 <= value < limits[name])
            ):
                raise ValueError(f"{name} must be an int in [0, {limits[name]}), got {value!r}")
        return {name: int(value) for name, value in options.items()}

    def _task_entry(self, index: int) -> TaskEntry:
        task = self.task_source.task(index)
        observation = [0.0] * self._obs_size
        observation[self._feature_slice] = task.prompt_features.tolist()
        observation[self._starts["budget_left"]] = 1.0
        observation[self._starts["steps_left"]] = 1.0
        costs = [tier.attempt_cost(task, 0) for tier in self.tiers]
        return TaskEntry(task, observation, costs)

    def _mask_table(self) -> np.ndarray:
        """``rules.write_mask`` for every state it reads, as rows: no candidate first, then
        (verdict, repair round) at ``1 + verdict * rounds + round``; ``_update_mask`` copies
        the row that holds (a budget's broker then masks further)."""
        self._rounds = self._executor.max_repair_rounds + 1
        rows = np.zeros((1 + len(VERDICTS) * self._rounds, self.action_layout.size), dtype=bool)
        limit = self._executor.repair_limit
        rules.write_mask(rows[0], self.action_layout, False, rules.UNVERIFIED, 0, limit)
        for verdict in range(len(VERDICTS)):
            for repair_round in range(self._rounds):
                row = rows[1 + verdict * self._rounds + repair_round]
                rules.write_mask(row, self.action_layout, True, verdict, repair_round, limit)
        return rows

    def _checked_action(self, action: Any) -> int:
        if type(action) in (int, np.int64):  # the common case, without building an array
            value = int(action)
            if 0 <= value < self._action_count and self._mask[value]:
                return value
        array = np.asarray(action)
        if array.shape not in ((), (1,)) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"action must be one integer in Discrete({self.action_space.n}), got {action!r}"
            )
        value = int(array.reshape(()))
        if not 0 <= value < self.action_space.n:
            raise ValueError(f"action {value} is outside Discrete({self.action_space.n})")
        if not self._mask[value]:
            raise ValueError(
                f"action {value} ({self.action_layout.name(value)}) is illegal now: "
                f"{self.illegal_reason(value)}; legal: {self._legal_names()}"
            )
        return value

    def _require_episode(self, call: str) -> Episode:
        if self._episode is None:
            raise RuntimeError(f"call reset() before {call}")
        return self._episode

    def _require_active(self, call: str) -> Episode:
        ep = self._episode
        if ep is None or not ep.active:
            raise RuntimeError(
                f"the episode has ended (or never started): call reset() before {call}"
            )
        return ep

    def illegal_reason(self, action: int) -> str:
        """Why ``action`` is masked now (for error messages and ``IllegalActionPenalty``)."""
        layout = self.action_layout
        ep = self._require_episode("illegal_reason()")
        if action == layout.submit:
            return "there is no candidate to submit"
        if action == layout.verify and ep.candidate is None:
            return "there is no candidate to verify"
        if action == layout.verify and ep.verdict != rules.UNVERIFIED:
            return "the current candidate is already verified"
        if action == layout.repair and ep.verdict != rules.FAILED:
            return "REPAIR needs a candidate that failed VERIFY"
        if self._broker is not None:
            scope = self.tier_names[action] if action < layout.num_tiers else "verifier"
            return self._broker.request(self.AGENT, scope, self.action_cost(action)).reason
        return "masked"

    def _legal_names(self) -> list[str]:
        return [self.action_layout.name(int(a)) for a in np.flatnonzero(self._mask)]

    def _generate(self, ep: Episode, key: AttemptKey) -> float:
        attempt = self._executor.attempt(*key)
        if key.repair_round == 0:
            ep.tier_attempts[key.tier] += 1
        ep.candidate = attempt
        ep.candidate_key = key
        ep.verdict = rules.UNVERIFIED
        ep.agrees = False
        ep.tokens += attempt.tokens
        ep.wall_ms += attempt.wall_ms
        ep.tier_compute[key.tier] += attempt.cost
        if key.repair_round == 0:
            ep.values[self._starts["tier_attempts"] + key.tier] = rules.fraction(
                ep.tier_attempts[key.tier], self.max_steps
            )
        self._show_candidate(ep)
        return attempt.cost

    def _verify(self, ep: Episode, info: dict[str, Any]) -> None:
        candidate, key = ep.require_candidate(), ep.require_candidate_key()
        passes = rules.passes_public(candidate.public_passed, candidate.public_total)
        ep.verdict = rules.verdict_after_verify(passes)
        ep.wall_ms += candidate.verify_ms
        outputs = candidate.outputs_key
        ep.agrees = rules.agrees(outputs, ep.verified_outputs)
        ep.verified_outputs.append(outputs)
        if passes:
            ep.tier_public_passes[key.tier] += 1
        if rules.improves_best(candidate.public_passed, ep.best_public_passed):
            ep.best, ep.best_key = candidate, key
            ep.best_public_passed = candidate.public_passed
        self._show_candidate(ep)
        info.update(
            tier=self.tier_names[key.tier],
            verdict=VERDICTS[ep.verdict],
            error_kind=ERROR_NAMES[candidate.error_kind],
            public_passed=candidate.public_passed,
            public_total=candidate.public_total,
            verify_ms=candidate.verify_ms,
        )
        if not passes and candidate.feedback is not None:
            info["feedback"] = candidate.feedback

    def _submission(self, ep: Episode) -> tuple[AttemptKey, Attempt]:
        """The (key, attempt) SUBMIT hands in (``rules.submits_best`` says which)."""
        candidate, key = ep.require_candidate(), ep.require_candidate_key()
        if (
            ep.best is not None
            and ep.best_key is not None
            and rules.submits_best(ep.verdict, candidate.public_passed, ep.best_public_passed)
        ):
            return ep.best_key, ep.best
        return key, candidate

    def _episode_summary(
        self, ep: Episode, outcome: str, submission: tuple[AttemptKey, Attempt] | None
    ) -> tuple[dict[str, Any], float]:
        """The end-of-episode info contract (``rules.FINAL_INFO_KEYS`` but the return, which
        the step adds), and the reward SUBMIT adds (the outcome terms)."""
        attempt = submission[1] if submission is not None else None
        hidden_passed = attempt.hidden_passed if attempt is not None else 0
        hidden_total = attempt.hidden_total if attempt is not None else ep.task.hidden_tests
        score = self.oracle.score(
            submitted=attempt is not None,
            hidden_passed=hidden_passed,
            hidden_total=hidden_total,
            compute=ep.compute,
        )
        summary = {
            "outcome": outcome,
            "hidden_pass": bool(attempt is not None and attempt.hidden_pass),
            "is_success": bool(attempt is not None and attempt.hidden_pass),
            "public_pass": bool(attempt is not None and attempt.public_pass),
            "hidden_passed": hidden_passed,
            "hidden_total": hidden_total,
            "submitted_tier": self.tier_names[submission[0].tier] if submission else None,
            "compute": ep.compute,
            "tokens": ep.tokens,
            "wall_ms": ep.wall_ms,
            "steps": ep.steps,
            "score": score.as_dict(),
            "tier_attempts": list(ep.tier_attempts),
            "tier_public_passes": list(ep.tier_public_passes),
            "tier_compute": list(ep.tier_compute),
        }
        return summary, score.correctness + score.pass_at_k + score.regression

    def _allowed(self, scope: str, cost: float) -> bool:
        return self._broker is None or self._broker.request(self.AGENT, scope, cost).allowed

    def _update_mask(self) -> None:
        layout, mask, ep = self.action_layout, self._mask, self._episode
        assert ep is not None
        key = ep.candidate_key
        if key is None:
            mask[:] = self._mask_rows[0]
        else:
            mask[:] = self._mask_rows[1 + ep.verdict * self._rounds + key.repair_round]
        if self._broker is None:
            return
        for tier, name in enumerate(self.tier_names):
            mask[tier] = self._allowed(name, ep.fresh_costs[tier])
        if mask[layout.verify]:
            mask[layout.verify] = self._allowed("verifier", self.verifier_cost)
        if mask[layout.repair] and key is not None:
            mask[layout.repair] = self._allowed(
                self.tier_names[key.tier], self.action_cost(layout.repair)
            )

    def _observation(self) -> np.ndarray:
        # The episode keeps its observation as Python floats (``Episode.values``): what an
        # action changes is written when it happens (``_show_candidate``), what every step
        # changes here, and the list is converted once (the values, rounded to float32, equal
        # the vector env's).
        ep = self._episode
        assert ep is not None
        values, at = ep.values, self._starts
        values[at["cost_so_far"]] = rules.cost_so_far(ep.compute, self._cost_scale)
        if self.budget is not None:
            values[at["budget_left"]] = max(0.0, 1.0 - ep.compute / self.budget)
        values[at["steps_left"]] = rules.steps_left(ep.steps, self.max_steps)
        return np.array(values, dtype=np.float32)

    def _show_candidate(self, ep: Episode) -> None:
        """Write the current candidate's fields (and the best verified one's) into
        ``ep.values``, after an attempt or a VERIFY."""
        candidate, key = ep.require_candidate(), ep.require_candidate_key()
        values, at = ep.values, self._starts
        values[self._candidate_block] = self._empty_block
        values[at["has_candidate"]] = 1.0
        values[at["candidate_tier"] + key.tier] = 1.0
        values[at["candidate_verdict"] + ep.verdict] = 1.0
        if ep.verdict != rules.UNVERIFIED:
            values[at["error_kind"] + candidate.error_kind] = 1.0
            values[at["public_pass_fraction"]] = rules.fraction(
                candidate.public_passed, candidate.public_total
            )
        else:
            values[at["public_pass_fraction"]] = 0.0
        values[at["context_length"]] = rules.context_share(
            key.repair_round, self._executor.max_repair_rounds
        )
        if self._answer_signals:
            values[at["candidate_confidence"]] = rules.confidence(candidate.logprob_mean)
            values[at["candidate_min_confidence"]] = rules.confidence(candidate.logprob_min)
            values[at["candidate_length"]] = rules.length_share(
                candidate.tokens_out, self.length_scale
            )
            values[at["candidate_agrees"]] = float(ep.agrees)
        best = ep.best
        if best is not None:
            values[at["best_public_fraction"]] = rules.fraction(
                best.public_passed, best.public_total
            )

    def _timeline_line(self, ep: Episode, info: dict[str, Any], reward: float) -> str:
        line = f"step {ep.steps:>2}  {info['action']:<20} cost {info['cost']:>7.1f}"
        if "public_passed" in info:
            line += (
                f"  public {info['public_passed']}/{info['public_total']} {info['verdict']} "
                f"({info['error_kind']})"
            )
        elif info.get("verdict") == "unverified":
            line += f"  new candidate ({ep.tokens} tokens so far)"
        if "outcome" in info:
            line += (
                f"  -> {info['outcome']}: hidden {info['hidden_passed']}/{info['hidden_total']}, "
                f"compute {info['compute']:.0f}, score {info['score']['total']:+.3f}"
            )
        return line


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """What every episode of one task starts from (``OCCCodeEnv`` keeps one per task met)."""

    task: Task
    observation: list[float]
    """The observation before any step: the prompt features, nothing spent or seen."""
    fresh_costs: list[float]
    """What a fresh attempt of each tier costs on the task (a pure function of the task)."""


class Episode:
    """The state of one episode of ``OCCCodeEnv``, built by ``reset`` (a plain slotted class:
    a reset builds one, and a dataclass with defaults took several microseconds of it)."""

    __slots__ = (
        "active",
        "agrees",
        "best",
        "best_key",
        "best_public_passed",
        "candidate",
        "candidate_key",
        "compute",
        "episode_return",
        "fresh_costs",
        "steps",
        "task",
        "tier_attempts",
        "tier_compute",
        "tier_public_passes",
        "tokens",
        "values",
        "verdict",
        "verified_outputs",
        "wall_ms",
    )

    def __init__(self, task: Task, values: list[float], fresh_costs: list[float]):
        tiers = len(fresh_costs)
        self.task = task
        self.values = values
        """The observation as Python floats, kept up to date (``OCCCodeEnv._observation``)."""
        self.fresh_costs = fresh_costs
        """What a fresh attempt of each tier costs on this task."""
        self.steps = 0
        self.compute = 0.0
        self.tokens = 0
        self.wall_ms = 0.0
        self.episode_return = 0.0
        self.active = True
        # Per-tier counters as lists: one env touches one element per step, where numpy is slow.
        self.tier_attempts = [0] * tiers
        self.tier_public_passes = [0] * tiers
        self.tier_compute = [0.0] * tiers
        self.candidate: Attempt | None = None
        self.candidate_key: AttemptKey | None = None
        self.verdict = rules.UNVERIFIED
        self.best: Attempt | None = None
        """The verified candidate that passed the most public tests so far."""
        self.best_key: AttemptKey | None = None
        self.best_public_passed = rules.NO_BEST
        self.verified_outputs: list[float] = []
        """``Attempt.outputs_key`` of every candidate verified so far."""
        self.agrees = False
        """Whether the current candidate, verified, agrees with an earlier verified one."""

    def require_candidate(self) -> Attempt:
        if self.candidate is None:
            raise RuntimeError("no candidate yet (the mask allows no such action)")
        return self.candidate

    def require_candidate_key(self) -> AttemptKey:
        if self.candidate_key is None:
            raise RuntimeError("no candidate yet (the mask allows no such action)")
        return self.candidate_key

    def token_info(self) -> dict[str, int]:
        candidate = self.require_candidate()
        return {"tokens_in": candidate.tokens_in, "tokens_out": candidate.tokens_out}


def occ_env(env: gym.Env) -> OCCCodeEnv:
    """The ``OCCCodeEnv`` under any wrappers, with a clear error for anything else."""
    inner = env.unwrapped
    if not isinstance(inner, OCCCodeEnv):
        raise TypeError(f"expected an occ-gym environment, got {type(inner).__name__}")
    return inner
