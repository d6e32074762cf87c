"""Counter-based episode randomness: the reference mixer, its statistics, and episodes that are
addressable without playing their predecessors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import occ_gym
from occ_gym.envs import rules


def test_the_mixer_is_splitmix64():
    """The first two outputs of SplitMix64 seeded 0 (Steele, Lea and Flood's reference)."""
    golden = 0x9E3779B97F4A7C15
    assert rules.mix64(golden) == 0xE220A8397B1DCDAF
    assert rules.mix64(2 * golden % 2**64) == 0x6E789E6AA1B965F4


def test_python_ints_and_uint64_arrays_give_the_same_draws():
    keys = [0, 1, 2**63 + 5, 2**64 - 1]
    episodes = [0, 1, 7, 2**40]
    bases = rules.episode_base(np.array(keys, dtype=np.uint64), np.array(episodes, np.uint64))
    counters = rules.draw_counter(np.arange(4), 3, 2, np.arange(4) % 4)
    hashed = rules.counter_hash(counters)
    draws = rules.uniforms(bases, hashed)
    for i, (key, episode) in enumerate(zip(keys, episodes, strict=True)):
        base = rules.episode_base(key, episode)
        assert base == int(bases[i])
        assert rules.uniforms(base, rules.counter_hash(int(counters[i]))) == draws[i]
    # Pinned: a change here changes every recorded number (regenerate them, with a new
    # version id for the changed dynamics).
    pinned = rules.uniforms(
        rules.episode_base(123, 4), rules.counter_hash(rules.draw_counter(1, 2, 3, 0))
    )
    assert pinned == 0.6127934827282991


def test_numpy_scalars_and_int64_arrays_give_the_same_words_without_warnings():
    assert rules.episode_base(np.uint64(5), np.int64(3)) == rules.episode_base(5, 3)
    bases = rules.episode_base(5, np.arange(3))  # int64 episodes
    assert [int(b) for b in bases] == [rules.episode_base(5, k) for k in range(3)]
    assert rules.counter_hash(np.uint64(7)) == rules.counter_hash(7)
    assert rules.uniforms(np.uint64(9), np.uint64(11)) == rules.uniforms(9, 11)


def test_draws_are_uniform_and_independent_across_episodes_and_counters():
    bases = rules.episode_base(np.uint64(987654321), np.arange(4000, dtype=np.uint64))
    hashed = rules.counter_hash(np.arange(1, 51, dtype=np.uint64))
    draws = rules.uniforms(bases[:, None], hashed[None, :])  # (episodes, counters)
    assert draws.min() >= 0.0 and draws.max() < 1.0
    counts = np.histogram(draws, bins=20, range=(0.0, 1.0))[0]
    expected = draws.size / 20
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 43.8  # the 99.9th percentile of chi-square with 19 degrees of freedom
    for a, b in ((draws[:-1], draws[1:]), (draws[:, :-1], draws[:, 1:])):
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(r) < 4.0 / np.sqrt(a.size), r  # neighbouring episodes, neighbouring counters
    tasks = rules.episode_task(bases, 7)
    assert set(tasks.tolist()) == set(range(7))
    assert np.bincount(tasks).min() > 4000 / 7 * 0.85


def test_an_attempts_draws_do_not_depend_on_max_steps():
    short, long = (gym.make("OCC-CodeSim-v0", max_steps=m).unwrapped for m in (4, 40))
    for env in (short, long):
        env.reset(seed=5)
    key = (2, 1, 1)
    assert short.peek_attempt(*key) == long.peek_attempt(*key)


@pytest.mark.parametrize("env_id", ["OCC-CodeSim-v0", "OCC-Code-v1"])
def test_episode_k_of_a_seed_plays_without_its_predecessors(env_id, monkeypatch):
    def play(env: gym.Env, first: tuple) -> list[str]:
        obs, info = first
        record = [obs.tobytes().hex(), info["task_id"]]
        for _ in range(6):
            action = int(np.flatnonzero(env.unwrapped.action_masks())[-2])  # SUBMIT when legal
            obs, reward, terminated, truncated, _ = env.step(action)
            record.append(f"{obs.tobytes().hex()} {reward!r}")
            if terminated or truncated:
                break
        return record

    in_order = gym.make(env_id, split="test")
    played = [play(in_order, in_order.reset(seed=21))]
    played += [play(in_order, in_order.reset()) for _ in range(9)]
    assert len({p[1] for p in played}) > 3  # the episodes differ

    computed: list[int] = []
    episode_base = rules.episode_base
    monkeypatch.setattr(
        rules, "episode_base", lambda key, k: computed.append(k) or episode_base(key, k)
    )
    jumping = gym.make(env_id, split="test")
    assert play(jumping, jumping.reset(seed=21, options={"episode_index": 7})) == played[7]
    assert computed == [7]  # episodes 0..6 were never computed
    assert play(jumping, jumping.reset()) == played[8]  # and the stream goes on from there
    assert jumping.unwrapped.episode_index == 8
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="episode_index"):
            jumping.reset(options={"episode_index": bad})


def test_every_id_takes_the_episode_option():
    for env_id in occ_gym.ENV_IDS:
        env = gym.make(env_id, split="test")
        a = env.reset(seed=3, options={"episode_index": 2})[0]
        env.reset(seed=3)
        env.reset()
        assert np.array_equal(env.reset()[0], a)


def test_a_refused_reset_changes_nothing():
    env, again = gym.make("OCC-CodeSim-v0"), gym.make("OCC-CodeSim-v0")
    for each in (env, again):
        each.reset(seed=1)
        each.reset()
    with pytest.raises(ValueError, match="episode_index"):
        env.reset(seed=7, options={"episode_index": -1})
    assert np.array_equal(env.reset()[0], again.reset()[0])  # episode 2 of seed 1, not 0 of 7
