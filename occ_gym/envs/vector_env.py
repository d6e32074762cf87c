"""A native batched ``VectorEnv``: numpy over all sub-environments at once.

``gym.make_vec("OCC-Code-v0", num_envs=N)`` returns ``OCCVectorEnv`` (the ids register it as
their ``vector_entry_point``). Sub-env ``i`` behaves exactly like ``gym.make(id)`` reset with
seed ``seed + i``: each sub-env's stream key comes from its own seeded ``np_random`` and every
draw is a pure function of (key, episode index, draw counter) (``rules.episode_base``), so the
vector env computes the draws of all sub-envs in one array call and plays steps as array
operations, with no loop over sub-envs.
``tests/test_vector.py`` checks that it equals N single envs step for step.

Replay, live and simulated tiers are supported (live: each step's attempts that the table lacks
are written in one batch per tier for all sub-envs, ``_write_live``); budgets and rendering
need the single env. ``action_masks()`` returns the ``(N, actions)`` batch of masks.
``occ_gym.integrations.sb3.SB3VecEnv`` adapts it to stable-baselines3 so MaskablePPO trains
on it directly (kept there, so this module imports neither SB3 nor torch).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from occ_gym.attempt import ANSWER_FIELDS, OUTCOME_FIELDS, ErrorKind
from occ_gym.envs import rules
from occ_gym.envs.code_env import OCCCodeEnv
from occ_gym.envs.layout import VERDICTS, ObservationLayout
from occ_gym.tiers.base import BatchedTier, RecordedTier
from occ_gym.tiers.replay import TableTier
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
        for name, value in (("budget", template.budget), ("render_mode", template.render_mode)):
            if value is not None:
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
        """Per-task arrays, and for replay every recorded attempt as one array per tier."""
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
        hashes = env.executor.draw_hashes
        self._draw_hashes = hashes
        self._rotation_hashes = hashes[:, 0, 0, -1]
        """The draw each tier's sample rotation reads (the executor's ``_tier_sample``)."""
        self._max_round = env.executor.max_repair_rounds
        self._rounds = self._max_round + 1
        self._repair_limit = env.executor.repair_limit
        self._column = {name: j for j, name in enumerate(self._fields)}
        """Where each ``Attempt`` number sits in the attempt arrays' last axis."""
        task_ids = [t.task_id for t in tasks]
        self._replay: list[np.ndarray | None] = []
        """Per replayed tier, its recorded attempts: rows ``(task, sample, round)`` flattened
        (``_replay_row``), columns ``_column``."""
        self._batched: list[BatchedTier | None] = []
        self._live: list[TableTier | None] = []
        """Per tier, the tier that writes what its table lacks (live mode), else None."""
        self._task_ids = task_ids
        self._samples_per_task: list[int] = []
        for tier in env.tiers:
            live = isinstance(tier, TableTier) and tier.live is not None
            self._live.append(tier if live and isinstance(tier, TableTier) else None)
            if isinstance(tier, RecordedTier):
                table = tier.outcome_table(task_ids, self._max_round + 1)
                stacked = np.stack([table[name] for name in self._fields], axis=-1)
                self._replay.append(stacked.reshape(-1, len(self._fields)))
                self._batched.append(None)
                self._samples_per_task.append(tier.samples_per_task)
            elif isinstance(tier, BatchedTier):
                self._replay.append(None)
                self._batched.append(tier)
                self._samples_per_task.append(1)
            else:
                raise ValueError(f"the vector env cannot batch tier {tier.name!r}")
        self._tier_names = np.array([*env.tier_names, None], dtype=object)

    def _allocate(self) -> None:
        n, layout = self.num_envs, self.action_layout
        k = layout.num_tiers
        self._stream_keys = np.zeros(n, dtype=np.uint64)
        self._keyed = np.zeros(n, dtype=bool)
        self._episode_index = np.zeros(n, dtype=np.uint64)
        """Each sub-env's next episode index in its seed's stream."""
        self._base = np.zeros(n, dtype=np.uint64)
        self._offsets = np.zeros((n, k), dtype=np.int64)
        """Each episode's first recorded sample of each replayed tier."""
        self._per_task = np.array(self._samples_per_task)
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
        self._candidate = np.zeros((n, len(self._fields)))
        """The current candidate's ``Attempt`` numbers (``_column``)."""
        self._best = np.zeros((n, len(self._fields)))
        """The best verified candidate's; its ``public_passed`` is ``rules.NO_BEST`` while
        there is none."""
        self._candidate[:, self._column["public_total"]] = 1.0  # read only where there is one
        self._best[:, self._column["public_total"]] = 1.0
        self._verdict = np.zeros(n, dtype=np.int64)
        self._verified_outputs = np.zeros((n, self.horizon))
        """``outputs_key`` of the candidates each episode verified (a step verifies at most one)."""
        self._verified_count = np.zeros(n, dtype=np.int64)
        self._agrees = np.zeros(n, dtype=bool)
        self._best_tier = np.zeros(n, dtype=np.int64)
        self._mask = np.zeros((n, layout.size), dtype=bool)
        self._obs = np.zeros((n, self.observation_layout.size), dtype=np.float32)
        self._obs[:, self.observation_layout.index("budget_left")] = 1.0  # no budget here
        self._pending_reset = np.zeros(n, dtype=bool)
        self._rows = np.arange(n)
        self._episode_features = np.zeros((n, self._features.shape[1]), dtype=np.float32)
        self._candidate_block, self._candidate_codes = _candidate_block(self.observation_layout, k)

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
            if value is not None or not self._keyed[i]:
                self._stream_keys[i] = rules.stream_key(seeding.np_random(value)[0])
                self._episode_index[i] = 0
                self._keyed[i] = True
        self._begin(self._rows)
        self._pending_reset[:] = False
        self._update_masks()
        return self._observe(), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._checked_actions(actions)
        layout = self.action_layout
        resetting = self._pending_reset
        active = ~resetting
        cost = np.zeros(self.num_envs)

        # Every attempt of the step first (fresh and repairs together: one live batch per
        # tier), so an attempt that cannot be made changes nothing.
        fresh = np.flatnonzero(active & (actions < layout.num_tiers))
        repair = np.flatnonzero(active & (actions == layout.repair))
        writing = np.concatenate([fresh, repair])
        if len(writing):
            key = self._key[repair]
            fresh_tiers = actions[fresh]
            tiers = np.concatenate([fresh_tiers, key[:, 0]])
            samples = np.concatenate([self._tier_attempts[fresh, fresh_tiers], key[:, 1]])
            rounds = np.concatenate([np.zeros(len(fresh), dtype=np.int64), key[:, 2] + 1])
            attempt = self._attempts(writing, tiers, samples, rounds)
            self._tier_attempts[fresh, fresh_tiers] += 1
            self._take(writing, tiers, samples, rounds, attempt, cost)
        self._steps[active] += 1
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
        """Start the next episodes of ``envs`` exactly as the single env's reset does."""
        base = rules.episode_base(self._stream_keys[envs], self._episode_index[envs])
        self._episode_index[envs] += 1
        self._base[envs] = base
        task = rules.episode_task(base, len(self._features))
        self._task[envs] = task
        self._episode_features[envs] = self._features[task]
        draws = rules.uniforms(base[:, None], self._rotation_hashes)
        self._offsets[envs] = rules.rotation_offset(draws, self._per_task)
        for array in (self._steps, self._compute, self._tokens, self._wall_ms, self._return):
            array[envs] = 0
        for counts in (self._tier_attempts, self._tier_public_passes, self._tier_compute):
            counts[envs] = 0
        self._key[envs] = -1
        self._verified_count[envs] = 0
        self._agrees[envs] = False
        self._best[envs, self._column["public_passed"]] = rules.NO_BEST
        self._verdict[envs] = rules.UNVERIFIED

    def _attempts(
        self, envs: np.ndarray, tiers: np.ndarray, samples: np.ndarray, rounds: np.ndarray
    ) -> np.ndarray:
        """The fixed attempts ``(tier, sample, round)`` of the episodes of ``envs``, as rows of
        ``Attempt`` numbers (``_column``)."""
        out = np.zeros((len(envs), len(self._fields)))
        used = np.flatnonzero(np.bincount(tiers, minlength=len(self._batched))).tolist()
        for k in used:
            rows = np.flatnonzero(tiers == k) if len(used) > 1 else slice(None)
            e, sample, r = envs[rows], samples[rows], rounds[rows]
            task = self._task[e]
            batched, table = self._batched[k], self._replay[k]
            if batched is not None:
                found = batched.outcomes(
                    self._difficulty[task],
                    self._public_tests[task],
                    self._hidden_tests[task],
                    self._prompt_tokens[task],
                    rules.uniforms(self._base[e, None], self._draw_hashes[k, sample, r]),
                    r,
                    self._candidate[e, self._column["error_kind"]].astype(np.int64),
                )
                out[rows] = np.stack([found[name] for name in self._fields], axis=-1)
            else:
                assert table is not None
                per_task = self._samples_per_task[k]
                recorded = rules.rotated_sample(self._offsets[e, k], sample, per_task)
                flat = (task * per_task + recorded) * self._rounds + r
                found = table.take(flat, axis=0)
                missing = np.isnan(found[:, self._column["cost"]])
                live = self._live[k]
                if live is not None and missing.any():
                    self._write_live(
                        live, table, flat[missing], task[missing], recorded[missing], r[missing]
                    )
                    found = table.take(flat, axis=0)
                out[rows] = found
        missing = np.isnan(out[:, self._column["cost"]])
        if missing.any():
            raise KeyError(
                f"sub-env {int(envs[missing][0])}: the trace table has no row for this attempt"
            )
        return out

    def _write_live(
        self,
        tier: TableTier,
        table: np.ndarray,
        flat: np.ndarray,
        tasks: np.ndarray,
        samples: np.ndarray,
        rounds: np.ndarray,
    ) -> None:
        """Live mode: write the attempts ``table`` lacks, all sub-envs' in one batch of the
        tier (``TableTier.rows``), and keep them in ``table`` for later steps."""
        keys = [
            (self._task_ids[t], s, r)
            for t, s, r in zip(tasks.tolist(), samples.tolist(), rounds.tolist(), strict=True)
        ]
        for row_index, row in zip(flat.tolist(), tier.rows(keys), strict=True):
            attempt = row.attempt()
            table[row_index] = [getattr(attempt, name) for name in self._fields]

    def _checked_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        if array.shape != (self.num_envs,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} integers (one per sub-env), got {actions!r}"
            )
        array = array.astype(np.int64, copy=False)
        size = self.action_layout.size
        inside = (array >= 0) & (array < size)
        legal = inside & self._mask[self._rows, np.where(inside, array, 0)]
        if legal.all() or (legal | self._pending_reset).all():
            return array
        live = ~self._pending_reset
        outside = live & ~inside
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise ValueError(f"sub-env {i}: action {array[i]} is outside Discrete({size})")
        i = int(np.flatnonzero(live & ~legal)[0])
        names = [self.action_layout.name(int(a)) for a in np.flatnonzero(self._mask[i])]
        raise ValueError(
            f"sub-env {i}: action {array[i]} ({self.action_layout.name(int(array[i]))}) is "
            f"illegal now; legal: {names}"
        )

    def _take(
        self,
        envs: np.ndarray,
        tiers: np.ndarray,
        samples: np.ndarray,
        rounds: np.ndarray,
        attempt: np.ndarray,
        cost: np.ndarray,
    ) -> None:
        """Make ``attempt`` (rows from ``_attempts``) the candidates of ``envs``."""
        at = self._column
        spent = attempt[:, at["cost"]]
        cost[envs] = spent
        self._tier_compute[envs, tiers] += spent
        self._tokens[envs] += attempt[:, at["tokens"]].astype(np.int64)
        self._wall_ms[envs] += attempt[:, at["wall_ms"]]
        self._candidate[envs] = attempt
        self._key[envs, 0] = tiers
        self._key[envs, 1] = samples
        self._key[envs, 2] = rounds
        self._verdict[envs] = rules.UNVERIFIED
        self._agrees[envs] = False

    def _verify(self, envs: np.ndarray, cost: np.ndarray) -> None:
        at = self._column
        candidate = self._candidate[envs]
        public = candidate[:, at["public_passed"]]
        passes = rules.passes_public(public, candidate[:, at["public_total"]])
        cost[envs] = self.template.verifier_cost
        self._verdict[envs] = rules.verdict_after_verify(passes)
        self._wall_ms[envs] += candidate[:, at["verify_ms"]]
        if self.observation_layout.answer_signals:
            key = candidate[:, at["outputs_key"]]
            count = self._verified_count[envs]
            earlier = self._verified_outputs[envs] * (np.arange(self.horizon) < count[:, None])
            self._agrees[envs] = (key != 0.0) & (earlier == key[:, None]).any(axis=1)
            self._verified_outputs[envs, count] = key
            self._verified_count[envs] += 1
        self._tier_public_passes[envs[passes], self._key[envs[passes], 0]] += 1
        improves = rules.improves_best(public, self._best[envs, at["public_passed"]])
        better = envs[improves]
        self._best_tier[better] = self._key[better, 0]
        self._best[better] = candidate[improves]

    def _finish(
        self, ended: np.ndarray, submitted: np.ndarray, truncated: np.ndarray, reward: np.ndarray
    ) -> dict[str, Any]:
        """Score the episodes that end now (adding the outcome terms to ``reward``) and build
        their final info (``rules.FINAL_INFO_KEYS``), as the single env's ``_episode_summary``."""
        if not ended.any():
            return {}
        at = self._column
        candidate, best = self._candidate, self._best
        use_best = submitted & rules.submits_best(
            self._verdict, candidate[:, at["public_passed"]], best[:, at["public_passed"]]
        )
        handed_in = np.where(use_best[:, None], best, candidate)
        hidden = np.where(submitted, handed_in[:, at["hidden_passed"]], 0).astype(np.int64)
        total = np.where(
            submitted, handed_in[:, at["hidden_total"]], self._hidden_tests[self._task]
        ).astype(np.int64)
        score = self.template.oracle.score_arrays(submitted, hidden, total, self._compute)
        outcome_terms = score["correctness"] + score["pass_at_k"] + score["regression"]
        reward += np.where(ended, outcome_terms, 0.0)
        hidden_pass = submitted & (hidden == total)
        public_pass = submitted & rules.passes_public(
            handed_in[:, at["public_passed"]], handed_in[:, at["public_total"]]
        )
        outcome = np.where(submitted, 0, np.where(truncated, 2, 1))
        tier = np.where(use_best, self._best_tier, self._key[:, 0])
        numbers = {
            "outcome": _OUTCOMES[outcome],
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
        return _masked_info(numbers, ended)

    def _update_masks(self) -> None:
        has = self._key[:, 0] >= 0
        rules.write_mask(
            self._mask, self.action_layout, has, self._verdict, self._key[:, 2], self._repair_limit
        )

    def _observe(self) -> np.ndarray:
        """Every sub-env's observation, as the single env's ``_observation`` builds it: each
        field written in full every step (no zeroing pass), the candidate's one-hots in one
        lookup (``_candidate_block``)."""
        obs, layout, at = self._obs, self.observation_layout, self._column
        candidate, max_steps = self._candidate, self.template.max_steps
        tier = self._key[:, 0]
        has = tier >= 0
        checked = has & (self._verdict != rules.UNVERIFIED)
        error = candidate[:, at["error_kind"]].astype(np.int64)
        obs[:, layout["prompt_features"]] = self._episode_features
        obs[:, layout["tier_attempts"]] = self._tier_attempts / max_steps
        codes = _candidate_code(tier, self._verdict, error, checked, len(ErrorKind))
        obs[:, self._candidate_block] = self._candidate_codes[codes]
        fraction = rules.fraction(
            candidate[:, at["public_passed"]], candidate[:, at["public_total"]]
        )
        # A product, not np.where, where the value is finite and >= 0 (several times faster).
        obs[:, layout.index("public_pass_fraction")] = fraction * checked
        share = rules.context_share(self._key[:, 2], self._max_round)
        obs[:, layout.index("context_length")] = np.where(has, share, 0.0)
        if layout.answer_signals:
            signals = (
                ("candidate_confidence", rules.confidence(candidate[:, at["logprob_mean"]])),
                ("candidate_min_confidence", rules.confidence(candidate[:, at["logprob_min"]])),
                (
                    "candidate_length",
                    rules.length_share(candidate[:, at["tokens_out"]], self._length_scale),
                ),
                ("candidate_agrees", self._agrees),
            )
            for name, values in signals:
                obs[:, layout.index(name)] = values * has
        best = self._best[:, at["public_passed"]]
        best_fraction = rules.fraction(best, self._best[:, at["public_total"]])
        obs[:, layout.index("best_public_fraction")] = np.where(
            best != rules.NO_BEST, best_fraction, 0.0
        )
        obs[:, layout.index("cost_so_far")] = rules.cost_so_far(
            self._compute, self.template.cost_scale
        )
        obs[:, layout.index("steps_left")] = rules.steps_left(self._steps, max_steps)
        return obs.copy()


_OUTCOMES = np.array(rules.OUTCOMES)


def _candidate_block(layout: ObservationLayout, tiers: int) -> tuple[slice, np.ndarray]:
    """The observation's contiguous candidate fields (``has_candidate``, ``candidate_tier``,
    ``candidate_verdict``, ``error_kind``) and, for every ``_candidate_code``, their values:
    the one-hots the single env writes one by one, as rows of a lookup table."""
    names = ("has_candidate", "candidate_tier", "candidate_verdict", "error_kind")
    fields = [layout.fields[name] for name in names]
    start, stop = fields[0].start, fields[-1].start + fields[-1].size
    assert all(a.start + a.size == b.start for a, b in itertools.pairwise(fields))
    kinds = len(ErrorKind)
    codes = np.zeros(((tiers + 1) * len(VERDICTS) * (kinds + 1), stop - start), dtype=np.float32)
    for tier in range(tiers):
        for verdict in range(len(VERDICTS)):
            for error in range(-1, kinds):
                checked = error >= 0
                row = codes[_candidate_code(tier, verdict, max(error, 0), checked, kinds)]
                row[0] = 1.0
                row[fields[1].start - start + tier] = 1.0
                row[fields[2].start - start + verdict] = 1.0
                if checked:
                    row[fields[3].start - start + error] = 1.0
    return slice(start, stop), codes


def _candidate_code(tier: Any, verdict: Any, error: Any, checked: Any, kinds: int) -> Any:
    """A row of ``_candidate_block``'s table: 0 (all zeros) without a candidate (tier -1)."""
    return ((tier + 1) * len(VERDICTS) + verdict) * (kinds + 1) + (error + 1) * checked


def occ_vector_env(env: Any) -> OCCVectorEnv:
    """The ``OCCVectorEnv`` under any vector wrappers, with a clear error for anything else."""
    inner = env.unwrapped
    if not isinstance(inner, OCCVectorEnv):
        raise TypeError(f"expected occ-gym's native vector env, got {type(inner).__name__}")
    return inner


def _masked_info(numbers: dict[str, Any], ended: np.ndarray) -> dict[str, Any]:
    """``{key: value of the ended sub-envs (empty elsewhere), _key: ended}`` for every key, a
    dict value nested as Gymnasium's vector envs nest it. The ``_key`` masks are one read-only
    array (writing to one would change all)."""
    mask = ended.copy()
    mask.flags.writeable = False
    return _masked_into(numbers, mask)


def _masked_into(numbers: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    rows = mask[:, None]
    info: dict[str, Any] = {}
    for key, value in numbers.items():
        if isinstance(value, dict):
            info[key] = _masked_into(value, mask)
        elif value.dtype.kind in "biuf":  # finite numbers: a product, faster than np.where
            info[key] = value * (mask if value.ndim == 1 else rows)
        else:
            empty = None if value.dtype == object else np.zeros((), value.dtype)[()]  # "" for text
            info[key] = np.asarray(np.where(mask, value, empty))
        info[f"_{key}"] = mask
    return info
