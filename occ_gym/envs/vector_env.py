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
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from occ_gym.attempt import ANSWER_FIELDS, OUTCOME_FIELDS
from occ_gym.envs import rules
from occ_gym.envs.code_env import OCCCodeEnv
from occ_gym.tiers.base import BatchedTier, RecordedTier
from occ_gym.validation import positive_int


class OCCVectorEnv(VectorEnv):
    """``num_envs`` copies of ``OCCCodeEnv(**kwargs)`` stepped together (see the module doc).

    The final step of an episode puts the single env's final-info keys
    (``rules.FINAL_INFO_KEYS``) in ``info``, each with its ``_key`` mask: one entry per sub-env,
    ``(num_envs, tiers)`` for the per-tier counts, and ``score`` a dict of such arrays. With
    ``autoreset_mode=AutoresetMode.NEXT_STEP`` (the default) the next step resets that sub-env
    and ignores its action; with ``SAME_STEP`` it is reset at once and ``info["final_obs"]``
    holds the last observation.
    """

    # An instance attribute in gymnasium.vector.VectorEnv, so not a ClassVar here.
    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ):
        positive_int("num_envs", num_envs)
        if max_episode_steps is not None:
            positive_int("max_episode_steps", max_episode_steps)
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
        self._fields = OUTCOME_FIELDS + (
            ANSWER_FIELDS if self.observation_layout.answer_signals else ()
        )
        """The attempt numbers kept per sub-env: the outcome, and the answer-side signals
        where the observation shows them."""
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
        self._length_scale = env.length_scale
        self._draw_shape = env.executor.draw_shape
        self._max_round = env.executor.max_repair_rounds
        self._repair_limit = env.executor.repair_limit
        self._replay = [
            tier.outcome_table([t.task_id for t in tasks], self._max_round + 1)
            if isinstance(tier, RecordedTier)
            else None
            for tier in env.tiers
        ]
        self._batched: list[BatchedTier | None] = []
        self._samples_per_task: list[int] = []
        for tier in env.tiers:
            if isinstance(tier, RecordedTier):
                self._batched.append(None)
                self._samples_per_task.append(tier.samples_per_task)
            elif isinstance(tier, BatchedTier):
                self._batched.append(tier)
                self._samples_per_task.append(0)
            else:
                raise ValueError(f"the vector env cannot batch tier {tier.name!r}")
        self._tier_names = np.array([*env.tier_names, None], dtype=object)

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
        self._tier_public_passes = np.zeros((n, k), dtype=np.int64)
        self._tier_compute = np.zeros((n, k))
        self._key = np.full((n, 3), -1, dtype=np.int64)  # candidate's tier, sample, round
        self._candidate = {name: np.zeros(n) for name in self._fields}
        self._verdict = np.zeros(n, dtype=np.int64)
        self._best = {name: np.zeros(n) for name in self._fields}
        self._verified_outputs = np.zeros((n, self.horizon))
        """``outputs_key`` of the candidates each episode verified (a step verifies at most one)."""
        self._verified_count = np.zeros(n, dtype=np.int64)
        self._agrees = np.zeros(n, dtype=bool)
        """The best verified candidate; ``public_passed`` is ``rules.NO_BEST`` while none is."""
        self._best_tier = np.zeros(n, dtype=np.int64)
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
        reward = rules.step_reward(cost, self.template.oracle.compute_penalty)
        truncated = rules.is_truncated(active & ~terminated, self._steps, self.horizon)
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
            assert rng is not None
            task[i] = rules.draw_task(rng, task_count)
            rules.draw_attempts(rng, draws[i])
        for array in (self._steps, self._compute, self._tokens, self._wall_ms, self._return):
            array[envs] = 0
        for counts in (self._tier_attempts, self._tier_public_passes, self._tier_compute):
            counts[envs] = 0
        self._key[envs] = -1
        self._verified_count[envs] = 0
        self._agrees[envs] = False
        self._best["public_passed"][envs] = rules.NO_BEST
        self._verdict[envs] = rules.UNVERIFIED
        self._update_masks()

    def _attempts(
        self, envs: np.ndarray, tiers: np.ndarray, samples: np.ndarray, rounds: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The fixed attempts ``(tier, sample, round)`` of the episodes of ``envs``."""
        out = {name: np.zeros(len(envs)) for name in self._fields}
        for k, (batched, table) in enumerate(zip(self._batched, self._replay, strict=True)):
            rows = np.flatnonzero(tiers == k)
            if not len(rows):
                continue
            e, sample, r = envs[rows], samples[rows], rounds[rows]
            task = self._task[e]
            if batched is not None:
                found = batched.outcomes(
                    self._difficulty[task],
                    self._public_tests[task],
                    self._hidden_tests[task],
                    self._prompt_tokens[task],
                    self._draws[e, k, sample, r],
                    r,
                    self._candidate["error_kind"][e].astype(np.int64),
                )
            else:
                assert table is not None
                per_task = self._samples_per_task[k]
                offset = rules.rotation_offset(self._draws[e, k, 0, 0, -1], per_task)
                recorded = rules.rotated_sample(offset, sample, per_task)
                found = {name: table[name][task, recorded, r] for name in self._fields}
            for name in self._fields:
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
        self._tier_compute[envs, tiers] += spent
        self._tokens[envs] += attempt["tokens"].astype(np.int64)
        self._wall_ms[envs] += attempt["wall_ms"]
        for name in self._fields:
            self._candidate[name][envs] = attempt[name]
        self._key[envs] = np.stack([tiers, samples, rounds], axis=1)
        self._verdict[envs] = rules.UNVERIFIED
        self._agrees[envs] = False

    def _verify(self, envs: np.ndarray, cost: np.ndarray) -> None:
        candidate = self._candidate
        public = candidate["public_passed"][envs]
        passes = rules.passes_public(public, candidate["public_total"][envs])
        cost[envs] = self.template.verifier_cost
        self._verdict[envs] = rules.verdict_after_verify(passes)
        self._wall_ms[envs] += candidate["verify_ms"][envs]
        if self.observation_layout.answer_signals:
            key = candidate["outputs_key"][envs]
            count = self._verified_count[envs]
            earlier = self._verified_outputs[envs] * (np.arange(self.horizon) < count[:, None])
            self._agrees[envs] = (key != 0.0) & (earlier == key[:, None]).any(axis=1)
            self._verified_outputs[envs, count] = key
            self._verified_count[envs] += 1
        self._tier_public_passes[envs[passes], self._key[envs[passes], 0]] += 1
        better = envs[rules.improves_best(public, self._best["public_passed"][envs])]
        self._best_tier[better] = self._key[better, 0]
        for name in self._fields:
            self._best[name][better] = candidate[name][better]

    def _finish(
        self, ended: np.ndarray, submitted: np.ndarray, truncated: np.ndarray, reward: np.ndarray
    ) -> dict[str, Any]:
        """Score the episodes that end now (adding the outcome terms to ``reward``) and build
        their final info (``rules.FINAL_INFO_KEYS``), as the single env's ``_episode_summary``."""
        if not ended.any():
            return {}
        candidate, best = self._candidate, self._best
        use_best = submitted & rules.submits_best(
            self._verdict, candidate["public_passed"], best["public_passed"]
        )

        def handed_in(name: str) -> np.ndarray:
            return np.where(use_best, best[name], candidate[name])

        hidden = np.where(submitted, handed_in("hidden_passed"), 0).astype(np.int64)
        total = np.where(
            submitted, handed_in("hidden_total"), self._hidden_tests[self._task]
        ).astype(np.int64)
        score = self.template.oracle.score_arrays(submitted, hidden, total, self._compute)
        reward[ended] += (
            score["correctness"][ended] + score["pass_at_k"][ended] + score["regression"][ended]
        )
        hidden_pass = submitted & (hidden == total)
        public_pass = submitted & rules.passes_public(
            handed_in("public_passed"), handed_in("public_total")
        )
        outcome = np.where(submitted, 0, np.where(truncated, 2, 1))
        tier = np.where(use_best, self._best_tier, self._key[:, 0])
        numbers = {
            "outcome": np.array(rules.OUTCOMES)[outcome],
            "hidden_pass": hidden_pass,
            "is_success": hidden_pass,
            "public_pass": public_pass,
            "hidden_passed": hidden,
            "hidden_total": total,
            "submitted_tier": self._tier_names[np.where(submitted, tier, -1)],
            "compute": self._compute,
            "tokens": self._tokens,
            "wall_ms": self._wall_ms,
            "steps": self._steps,
            "score": score,
            "episode_return": self._return + reward,
            "tier_attempts": self._tier_attempts,
            "tier_public_passes": self._tier_public_passes,
            "tier_compute": self._tier_compute,
        }
        return {
            name: values
            for key, value in numbers.items()
            for name, values in _masked(key, value, ended).items()
        }

    def _update_masks(self) -> None:
        has = self._key[:, 0] >= 0
        rules.write_mask(
            self._mask, self.action_layout, has, self._verdict, self._key[:, 2], self._repair_limit
        )

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
        checked = has[self._verdict[has] != rules.UNVERIFIED]
        error = candidate["error_kind"][checked].astype(np.int64)
        obs[checked, s["error_kind"].start + error] = 1.0
        obs[checked, s["public_pass_fraction"].start] = rules.fraction(
            candidate["public_passed"][checked], candidate["public_total"][checked]
        )
        obs[has, s["context_length"].start] = rules.context_share(key[:, 2], self._max_round)
        if self.observation_layout.answer_signals:
            obs[has, s["candidate_confidence"].start] = rules.confidence(
                candidate["logprob_mean"][has]
            )
            obs[has, s["candidate_min_confidence"].start] = rules.confidence(
                candidate["logprob_min"][has]
            )
            obs[has, s["candidate_length"].start] = rules.length_share(
                candidate["tokens_out"][has], self._length_scale
            )
            obs[has, s["candidate_agrees"].start] = self._agrees[has]
        best = np.flatnonzero(self._best["public_passed"] != rules.NO_BEST)
        obs[best, s["best_public_fraction"].start] = rules.fraction(
            self._best["public_passed"][best], self._best["public_total"][best]
        )
        scale = self.template.cost_scale
        obs[:, s["cost_so_far"].start] = rules.cost_so_far(self._compute, scale)
        obs[:, s["budget_left"].start] = 1.0
        obs[:, s["steps_left"].start] = rules.steps_left(self._steps, max_steps)
        return obs.copy()


def occ_vector_env(env: Any) -> OCCVectorEnv:
    """The ``OCCVectorEnv`` under any vector wrappers, with a clear error for anything else."""
    inner = env.unwrapped
    if not isinstance(inner, OCCVectorEnv):
        raise TypeError(f"expected occ-gym's native vector env, got {type(inner).__name__}")
    return inner


def _masked(key: str, value: Any, ended: np.ndarray) -> dict[str, Any]:
    """``{key: value of the ended sub-envs (zero elsewhere), _key: ended}``, a dict value
    nested as Gymnasium's vector envs nest it."""
    if isinstance(value, dict):
        inner: dict[str, Any] = {}
        for name, values in value.items():
            inner.update(_masked(name, values, ended))
        return {key: inner, f"_{key}": ended.copy()}
    shape = (-1,) + (1,) * (value.ndim - 1)
    empty = np.full_like(value, None) if value.dtype == object else np.zeros_like(value)
    kept = np.where(ended.reshape(shape), value, empty)
    return {key: kept, f"_{key}": ended.copy()}
