"""A native batched ``VectorEnv``: numpy over all sub-environments at once.

``gym.make_vec("OCC-Code-v0", num_envs=N)`` returns ``OCCVectorEnv`` (the ids register it as
their ``vector_entry_point``). Sub-env ``i`` behaves exactly like ``gym.make(id)`` reset with
seed ``seed + i``: each keeps its own ``np_random`` and draws its episodes as the single env does,
and every attempt of an episode is fixed at reset (the executor's contract), so the vector env
computes each episode's whole outcome table at reset and plays steps as array operations.
``tests/test_vector.py`` checks that it equals N single envs step for step.

Replay mode (recorded nano tiers) and simulated tiers are supported; live mode, budgets and
rendering need the single env. ``action_masks()`` returns the ``(N, actions)`` batch of masks.
``occ_gym.integrations.sb3.SB3VecEnv`` adapts it to stable-baselines3 so MaskablePPO trains
on it directly (kept there, so this module imports neither SB3 nor torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from occ_gym.attempt import OUTCOME_FIELDS
from occ_gym.envs.code_env import OCCCodeEnv
from occ_gym.envs.executor import draw_attempts
from occ_gym.envs.layout import VERDICTS

UNVERIFIED, PASSED, FAILED = (VERDICTS.index(v) for v in ("unverified", "passed", "failed"))
OUTCOMES = ("submitted", "abstained", "truncated")


class OCCVectorEnv(VectorEnv):
    """``num_envs`` copies of ``OCCCodeEnv(**kwargs)`` stepped together (see the module doc).

    The final step of an episode puts its numbers in ``info`` (each key with its ``_key`` mask):
    ``hidden_pass``, ``is_success``, ``public_pass``, ``compute``, ``tokens``, ``wall_ms``,
    ``steps``, ``outcome`` and ``episode_return``. With ``autoreset_mode=AutoresetMode.NEXT_STEP``
    (the default) the next step resets that sub-env and ignores its action; with ``SAME_STEP`` it
    is reset at once and ``info["final_obs"]`` holds the last observation.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be an int >= 1, got {max_episode_steps!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be NEXT_STEP or SAME_STEP")
        self.metadata = {"autoreset_mode": mode}
        template = OCCCodeEnv(**env_kwargs)
        for name, value, why in (
            ("mode", env_kwargs.get("mode", "replay"), "live"),
            ("budget", template.budget, None),
            ("render_mode", template.render_mode, None),
        ):
            if value is not None and (why is None or value == why):
                template.close()
                raise ValueError(
                    f"the vector env does not support {name}={value!r}; use gym.make_vec(..., "
                    "vectorization_mode='sync') for it"
                )
        self.template = template
        self.horizon = min(template.max_steps, max_episode_steps or template.max_steps)
        """Steps before truncation: ``max_steps``, or Gymnasium's ``max_episode_steps`` (as
        ``TimeLimit`` would truncate each sub-env) when that is shorter."""
        self.num_envs = num_envs
        self.single_observation_space = template.observation_space
        # A plain Discrete: the single env's MaskedDiscrete samples from that env's own mask.
        self.single_action_space = gym.spaces.Discrete(template.action_layout.size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self.action_layout = template.action_layout
        self.observation_layout = template.observation_layout
        self._build_tables(template)
        self._allocate()

    # ------------------------------------------------------------------ setup

    def _build_tables(self, env: OCCCodeEnv) -> None:
        """Per-task arrays, and for replay every recorded attempt as arrays."""
        source = env.task_source
        tasks = [source.task(i) for i in range(len(source))]
        self._features = np.array([t.prompt_features for t in tasks], dtype=np.float32)
        self._public_tests = np.array([t.public_tests for t in tasks])
        self._hidden_tests = np.array([t.hidden_tests for t in tasks])
        self._prompt_tokens = np.array([t.prompt_tokens for t in tasks])
        self._difficulty = np.array(
            [np.nan if t.difficulty is None else t.difficulty for t in tasks]
        )
        self._draw_shape = env.executor.draw_shape
        self._max_round = env.executor.max_repair_rounds
        self._repair_limit = env.executor.repair_limit
        self._replay = [
            tier.outcome_table([t.task_id for t in tasks], self._max_round + 1)
            if hasattr(tier, "outcome_table")
            else None
            for tier in env.tiers
        ]
        for tier, table in zip(env.tiers, self._replay, strict=True):
            if table is None and not hasattr(tier, "outcomes"):
                raise ValueError(f"the vector env cannot batch tier {tier.name!r}")

    def _allocate(self) -> None:
        n, layout = self.num_envs, self.action_layout
        k = layout.num_tiers
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._draws = np.zeros((n, *self._draw_shape))
        self._task = np.zeros(n, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._compute = np.zeros(n)
        self._tokens = np.zeros(n, dtype=np.int64)
        self._wall_ms = np.zeros(n)
        self._return = np.zeros(n)
        self._tier_attempts = np.zeros((n, k), dtype=np.int64)
        self._key = np.full((n, 3), -1, dtype=np.int64)  # candidate's tier, sample, round
        self._candidate = {name: np.zeros(n) for name in OUTCOME_FIELDS}
        self._verdict = np.zeros(n, dtype=np.int64)
        self._has_best = np.zeros(n, dtype=bool)
        self._best = {name: np.zeros(n) for name in OUTCOME_FIELDS}
        self._mask = np.zeros((n, layout.size), dtype=bool)
        self._obs = np.zeros((n, self.observation_layout.size), dtype=np.float32)
        self._pending_reset = np.zeros(n, dtype=bool)
        self._rows = np.arange(n)
        self._slices = {name: field.slice for name, field in self.observation_layout.fields.items()}

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"the vector env takes no reset options, got {options!r}")
        if seed is None:
            seeds: Sequence[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        for i, value in enumerate(seeds):
            if value is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(value)[0]
        self._begin(self._rows)
        self._pending_reset[:] = False
        return self._observe(), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._checked_actions(actions)
        layout = self.action_layout
        resetting = self._pending_reset
        active = ~resetting
        self._steps[active] += 1
        cost = np.zeros(self.num_envs)

        fresh = np.flatnonzero(active & (actions < layout.num_tiers))
        if len(fresh):
            tiers = actions[fresh]
            samples = self._tier_attempts[fresh, tiers]
            self._tier_attempts[fresh, tiers] += 1
            self._generate(fresh, tiers, samples, np.zeros_like(samples), cost)
        repair = np.flatnonzero(active & (actions == layout.repair))
        if len(repair):
            key = self._key[repair]
            self._generate(repair, key[:, 0], key[:, 1], key[:, 2] + 1, cost)
        verify = np.flatnonzero(active & (actions == layout.verify))
        if len(verify):
            self._verify(verify, cost)

        terminated = active & (actions >= layout.submit)
        self._compute += cost
        reward = -self.template.oracle.compute_penalty * cost
        truncated = active & ~terminated & (self._steps >= self.horizon)
        ended = terminated | truncated
        submitted = active & (actions == layout.submit)
        info = self._finish(ended, submitted, truncated, reward)
        reward[resetting] = 0.0
        self._return += reward

        if resetting.any():
            self._begin(np.flatnonzero(resetting))
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and ended.any():
            final_obs = self._observe()
            self._begin(np.flatnonzero(ended))
            info["final_obs"] = np.where(ended[:, None], final_obs, 0.0).astype(np.float32)
            info["_final_obs"] = ended.copy()
            self._pending_reset = np.zeros(self.num_envs, dtype=bool)
        else:
            self._pending_reset = ended
        self._update_masks()
        return self._observe(), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Legal actions of every sub-env now, ``(num_envs, actions)`` bool (a copy)."""
        return self._mask.copy()

    def close_extras(self, **kwargs: Any) -> None:
        self.template.close()

    # ------------------------------------------------------------------ episode mechanics

    def _begin(self, envs: np.ndarray) -> None:
        """Draw new episodes for ``envs`` exactly as the single env's reset does (the task,
        then every draw the episode's attempts will read)."""
        task_count = len(self._features)
        task, draws = self._task, self._draws
        for i in envs.tolist():
            rng = self._rngs[i]
            task[i] = rng.integers(task_count)  # as OCCCodeEnv._task_index draws it
            draw_attempts(rng, draws[i])
        for array in (self._steps, self._compute, self._tokens, self._wall_ms, self._return):
            array[envs] = 0
        self._tier_attempts[envs] = 0
        self._key[envs] = -1
        self._has_best[envs] = False
        self._verdict[envs] = UNVERIFIED
        self._update_masks()

    def _attempts(
        self, envs: np.ndarray, tiers: np.ndarray, samples: np.ndarray, rounds: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The fixed attempts ``(tier, sample, round)`` of the episodes of ``envs``."""
        out = {name: np.zeros(len(envs)) for name in OUTCOME_FIELDS}
        for k, tier in enumerate(self.template.tiers):
            rows = np.flatnonzero(tiers == k)
            if not len(rows):
                continue
            e, sample, r = envs[rows], samples[rows], rounds[rows]
            task = self._task[e]
            table = self._replay[k]
            if table is None:
                found = tier.outcomes(
                    self._difficulty[task],
                    self._public_tests[task],
                    self._hidden_tests[task],
                    self._prompt_tokens[task],
                    self._draws[e, k, sample, r],
                    r,
                    self._candidate["error_kind"][e].astype(np.int64),
                )
            else:
                per_task = tier.samples_per_task
                offset = (self._draws[e, k, 0, 0, -1] * per_task).astype(np.int64)
                recorded = (offset + sample) % per_task
                found = {name: table[name][task, recorded, r] for name in OUTCOME_FIELDS}
            for name in OUTCOME_FIELDS:
                out[name][rows] = found[name]
        return out

    def _checked_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        if array.shape != (self.num_envs,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} integers (one per sub-env), got {actions!r}"
            )
        array = array.astype(np.int64)
        live = ~self._pending_reset
        size = self.action_layout.size
        outside = live & ((array < 0) | (array >= size))
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise ValueError(f"sub-env {i}: action {array[i]} is outside Discrete({size})")
        illegal = live & ~self._mask[self._rows, np.clip(array, 0, size - 1)]
        if illegal.any():
            i = int(np.flatnonzero(illegal)[0])
            legal = [self.action_layout.name(int(a)) for a in np.flatnonzero(self._mask[i])]
            raise ValueError(
                f"sub-env {i}: action {array[i]} ({self.action_layout.name(int(array[i]))}) is "
                f"illegal now; legal: {legal}"
            )
        return array

    def _generate(
        self,
        envs: np.ndarray,
        tiers: np.ndarray,
        samples: np.ndarray,
        rounds: np.ndarray,
        cost: np.ndarray,
    ) -> None:
        attempt = self._attempts(envs, tiers, samples, rounds)
        spent = attempt["cost"]
        if np.isnan(spent).any():
            i = int(envs[np.isnan(spent)][0])
            raise KeyError(f"sub-env {i}: the trace table has no row for this attempt")
        cost[envs] = spent
        self._tokens[envs] += attempt["tokens"].astype(np.int64)
        self._wall_ms[envs] += attempt["wall_ms"]
        for name in OUTCOME_FIELDS:
            self._candidate[name][envs] = attempt[name]
        self._key[envs] = np.stack([tiers, samples, rounds], axis=1)
        self._verdict[envs] = UNVERIFIED

    def _verify(self, envs: np.ndarray, cost: np.ndarray) -> None:
        candidate = self._candidate
        public = candidate["public_passed"][envs]
        passed = public == candidate["public_total"][envs]
        cost[envs] = self.template.verifier_cost
        self._verdict[envs] = np.where(passed, PASSED, FAILED)
        self._wall_ms[envs] += candidate["verify_ms"][envs]
        better = envs[~self._has_best[envs] | (public > self._best["public_passed"][envs])]
        self._has_best[better] = True
        for name in OUTCOME_FIELDS:
            self._best[name][better] = candidate[name][better]

    def _finish(
        self, ended: np.ndarray, submitted: np.ndarray, truncated: np.ndarray, reward: np.ndarray
    ) -> dict[str, Any]:
        """Score the episodes that end now (adding the outcome terms to ``reward``)."""
        if not ended.any():
            return {}
        envs = np.flatnonzero(submitted)
        candidate, best = self._candidate, self._best
        use_best = (
            (self._verdict[envs] == FAILED)
            & self._has_best[envs]
            & (best["public_passed"][envs] > candidate["public_passed"][envs])
        )

        def handed_in(name: str) -> np.ndarray:
            return np.where(use_best, best[name][envs], candidate[name][envs])

        hidden, total = handed_in("hidden_passed"), handed_in("hidden_total")
        full = hidden == total
        reward[envs] += self.template.oracle.outcome_values(hidden, total)
        hidden_pass = np.zeros(self.num_envs, dtype=bool)
        public_pass = np.zeros(self.num_envs, dtype=bool)
        hidden_pass[envs] = full
        public_pass[envs] = handed_in("public_passed") == handed_in("public_total")
        outcome = np.where(submitted, 0, np.where(truncated, 2, 1))
        numbers = {
            "hidden_pass": hidden_pass,
            "is_success": hidden_pass,
            "public_pass": public_pass,
            "compute": self._compute,
            "tokens": self._tokens,
            "wall_ms": self._wall_ms,
            "steps": self._steps,
            "outcome": np.array(OUTCOMES)[outcome],
            "episode_return": self._return + reward,
        }
        info: dict[str, Any] = {}
        for name, values in numbers.items():
            info[name] = np.where(ended, values, np.zeros_like(values))
            info[f"_{name}"] = ended.copy()
        return info

    def _update_masks(self) -> None:
        layout, mask = self.action_layout, self._mask
        has = self._key[:, 0] >= 0
        mask[:, : layout.num_tiers] = True
        mask[:, layout.verify] = has & (self._verdict == UNVERIFIED)
        mask[:, layout.repair] = (
            has & (self._verdict == FAILED) & (self._key[:, 2] < self._repair_limit)
        )
        mask[:, layout.submit] = has
        mask[:, layout.abstain] = True

    def _observe(self) -> np.ndarray:
        obs, s = self._obs, self._slices
        candidate, max_steps = self._candidate, self.template.max_steps
        obs[:] = 0.0
        obs[:, s["prompt_features"]] = self._features[self._task]
        obs[:, s["tier_attempts"]] = self._tier_attempts / max_steps
        has = np.flatnonzero(self._key[:, 0] >= 0)
        key = self._key[has]
        obs[has, s["has_candidate"].start] = 1.0
        obs[has, s["candidate_tier"].start + key[:, 0]] = 1.0
        obs[has, s["candidate_verdict"].start + self._verdict[has]] = 1.0
        checked = has[self._verdict[has] != UNVERIFIED]
        error = candidate["error_kind"][checked].astype(np.int64)
        obs[checked, s["error_kind"].start + error] = 1.0
        obs[checked, s["public_pass_fraction"].start] = (
            candidate["public_passed"][checked] / candidate["public_total"][checked]
        )
        obs[has, s["context_length"].start] = key[:, 2] / max(1, self._max_round)
        best = np.flatnonzero(self._has_best)
        obs[best, s["best_public_fraction"].start] = (
            self._best["public_passed"][best] / self._best["public_total"][best]
        )
        scale = self.template.cost_scale
        obs[:, s["cost_so_far"].start] = np.minimum(1.0, self._compute / scale)
        obs[:, s["budget_left"].start] = 1.0
        obs[:, s["steps_left"].start] = (max_steps - self._steps) / max_steps
        return obs.copy()
