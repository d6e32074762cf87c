"""The episode rules, written once for the single env and the vector env.

Each rule takes Python scalars (one episode, ``OCCCodeEnv``) or numpy arrays with one entry per
sub-env (``OCCVectorEnv``) and uses only arithmetic, comparisons and ``&``/``|``, which mean the
same on both; where a scalar needs another spelling to stay fast (``min`` for ``np.minimum``)
the rule says so. ``tests/test_vector.py`` checks step for step that the two envs agree.

State the rules read: a candidate's ``verdict`` (``UNVERIFIED``/``PASSED``/``FAILED``), its
``repair_round``, and the public tests passed by the best verified candidate, ``NO_BEST`` while
there is none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from occ_gym.envs.layout import MAX_STEPS, VERDICTS, ActionLayout, max_repair_rounds
from occ_gym.tiers.base import DRAWS_PER_ATTEMPT
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS

UNVERIFIED, PASSED, FAILED = range(len(VERDICTS))
NO_BEST = -1
"""``best_public_passed`` before any candidate is verified: below every count of passed tests."""
OUTCOMES = ("submitted", "abstained", "truncated")
"""The final info's ``outcome``, by its index."""
FINAL_INFO_KEYS = (
    "outcome",
    "hidden_pass",
    "is_success",
    "public_pass",
    "hidden_passed",
    "hidden_total",
    "submitted_tier",
    "compute",
    "tokens",
    "wall_ms",
    "steps",
    "score",
    "episode_return",
    "tier_attempts",
    "tier_public_passes",
    "tier_compute",
)
"""What the last step's info holds, in both envs (the vector env adds each key's ``_key`` mask)."""

Number = Any
"""A Python number, or a numpy array of them (one per sub-env)."""


def write_mask(
    mask: np.ndarray,
    layout: ActionLayout,
    has_candidate: Any,
    verdict: Number,
    repair_round: Number,
    repair_limit: int,
) -> None:
    """The legal actions without a budget, into ``mask`` (``(actions,)`` or ``(envs, actions)``):
    every tier; VERIFY an unverified candidate; REPAIR one that failed VERIFY, up to
    ``repair_limit`` rounds; SUBMIT any candidate; ABSTAIN always."""
    mask[..., : layout.num_tiers] = True
    mask[..., layout.verify] = has_candidate & (verdict == UNVERIFIED)
    mask[..., layout.repair] = has_candidate & (verdict == FAILED) & (repair_round < repair_limit)
    mask[..., layout.submit] = has_candidate
    mask[..., layout.abstain] = True


def passes_public(public_passed: Number, public_total: Number) -> Any:
    """A candidate passes VERIFY when it passes every public test."""
    return public_passed == public_total


def verdict_after_verify(passes: Any) -> Number:
    """``PASSED`` or ``FAILED`` (as ints), from ``passes_public``."""
    return FAILED + (PASSED - FAILED) * passes


def improves_best(public_passed: Number, best_public_passed: Number) -> Any:
    """A verified candidate becomes the best verified one when it passes more public tests
    (any does, while ``best_public_passed`` is ``NO_BEST``)."""
    return public_passed > best_public_passed


def submits_best(verdict: Number, public_passed: Number, best_public_passed: Number) -> Any:
    """SUBMIT hands in the best verified candidate instead of the current one when the current
    one failed VERIFY and the best passed more public tests."""
    return (verdict == FAILED) & (best_public_passed > public_passed)


def is_truncated(running: Any, steps: Number, horizon: int) -> Any:
    """An episode still running after ``horizon`` steps is truncated."""
    return running & (steps >= horizon)


def step_reward(cost: Number, compute_penalty: float) -> Number:
    """Every step's reward: ``-λ`` times the compute it spent (SUBMIT adds the oracle's outcome
    terms on top)."""
    return -compute_penalty * cost


def rotated_sample(offset: Number, fresh_attempt: Number, samples_per_task: int) -> Number:
    """The recorded sample the ``fresh_attempt``-th fresh attempt of a tier replays: the samples
    in turn from the episode's ``offset``, so none repeats before every one was used."""
    return (offset + fresh_attempt) % samples_per_task


def rotation_offset(draw: Number, samples_per_task: Number) -> Any:
    """The episode's first recorded sample of a tier, from its draw in [0, 1) (an int, or an
    int64 array)."""
    share = draw * samples_per_task
    return share.astype(np.int64) if isinstance(share, np.ndarray) else int(share)


# ---------------------------------------------------------------- episode randomness
#
# An episode's draws are a pure function of (stream key, episode index, draw counter): the
# stream key comes from ``np_random`` when the env is seeded, the episode index counts resets
# since then, and each draw an episode can read has a fixed counter. So the single env and any
# batch of sub-envs compute the same numbers, the vector env computes all of them in one array
# call, and episode k of a seed needs none of episodes 0..k-1.

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
"""SplitMix64's increment: 2^64 over the golden ratio."""
_TO_UNIT = 2.0**-53
ROUND_SLOTS = max_repair_rounds(MAX_STEPS) + 1
"""Repair rounds an attempt's draw counter has room for (every round ``max_steps`` reaches)."""
TASK_COUNTER = 0
"""The draw counter of the episode's task."""


def words(x: Number) -> Any:
    """``x`` as the mixers take it: a Python int, or a uint64 array (numpy scalars would warn
    of overflow and int64 arrays refuse the constants)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.uint64, copy=False)
    return int(x) if isinstance(x, np.integer) else x


def mix64(x: Number) -> Any:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014; the mixer of Java's SplittableRandom):
    a bijection of 64-bit words whose outputs on a counter pass BigCrush. Python ints or uint64
    arrays (which wrap, so they need no mask; ``words`` makes either)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def stream_key(rng: np.random.Generator) -> int:
    """The key of a seed's episodes: one 64-bit draw from the env's freshly seeded
    ``np_random`` (so seeding stays Gymnasium's)."""
    return int(rng.integers(1 << 64, dtype=np.uint64))


def episode_base(key: Number, episode: Number) -> Any:
    """The word every draw of episode ``episode`` (0, 1, ... after a seeded reset) derives
    from. Python ints, or uint64 arrays with one entry per sub-env."""
    key, episode = words(key), words(episode)
    return mix64((key + mix64((episode + 1) * _GOLDEN & _MASK64)) & _MASK64)


def draw_counter(tier: Number, sample: Number, repair_round: Number, draw: Number) -> Number:
    """The counter of draw ``draw`` of attempt (tier, sample, round): fixed whatever
    ``max_steps`` is, so an attempt's draws do not depend on how long episodes may run."""
    return 1 + ((tier * MAX_STEPS + sample) * ROUND_SLOTS + repair_round) * DRAWS_PER_ATTEMPT + draw


def counter_hash(counter: Number) -> Any:
    """A draw counter, mixed (``uniforms`` takes it; callers precompute the ones they use)."""
    return mix64(words(counter) * _GOLDEN & _MASK64)


def uniforms(base: Number, hashed_counter: Number) -> Any:
    """The draws in [0, 1) at ``hashed_counter`` (from ``counter_hash``) of the episodes with
    ``base`` (from ``episode_base``): 53-bit floats, broadcast over arrays."""
    return (mix64(words(base) ^ words(hashed_counter)) >> 11) * _TO_UNIT


TASK_HASH = counter_hash(TASK_COUNTER)


def episode_task(base: Number, task_count: int) -> Any:
    """The episode's task: uniform over the split's ``task_count`` tasks (an int, or an int64
    array for a batch of episodes)."""
    share = uniforms(base, TASK_HASH) * task_count
    return share.astype(np.int64) if isinstance(share, np.ndarray) else int(share)


def fraction(part: Number, whole: Number) -> Number:
    """An observation's pass fraction (``whole`` is at least 1: tables are checked for it)."""
    return part / whole


def context_share(repair_round: Number, max_repair_rounds: int) -> Number:
    """The observation's ``context_length``: repair rounds in the context, as a share."""
    return repair_round / max(1, max_repair_rounds)


def steps_left(steps: Number, max_steps: int) -> Number:
    """The observation's ``steps_left``, as a share of ``max_steps``."""
    return (max_steps - steps) / max_steps


def cost_so_far(compute: Number, cost_scale: float) -> Number:
    """The observation's ``cost_so_far``: compute over ``cost_scale``, at most 1 (``min`` on a
    scalar, which is several times faster there than ``np.minimum``)."""
    share = compute / cost_scale
    return np.minimum(1.0, share) if isinstance(share, np.ndarray) else min(1.0, share)


def confidence(logprob: Number) -> Number:
    """A log-probability as the observation's probability; 0 where none was reported (nan)."""
    if isinstance(logprob, np.ndarray):
        return np.exp(np.nan_to_num(logprob, nan=-np.inf))
    return 0.0 if math.isnan(logprob) else math.exp(logprob)


def length_share(tokens_out: Number, scale: int = MAX_NEW_TOKENS) -> Number:
    """The observation's ``candidate_length``: new tokens over ``scale``, the most the env's
    tiers write (``OCCCodeEnv.length_scale``)."""
    share = tokens_out / scale
    return np.minimum(1.0, share) if isinstance(share, np.ndarray) else min(1.0, share)


def agrees(outputs_key: float, earlier_keys: Sequence[float]) -> bool:
    """A verified candidate agrees when an earlier verified one of the episode returned the same
    public outputs (keys from ``Attempt.outputs_key``; 0, unknown, agrees with nothing). The
    vector env spells it over arrays: ``(key != 0) & (earlier == key).any(axis=1)``."""
    return outputs_key != 0.0 and outputs_key in earlier_keys
