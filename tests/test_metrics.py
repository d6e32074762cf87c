"""Cost-quality metrics against hand-computed cases, and bootstrap coverage."""

from __future__ import annotations

import numpy as np
import pytest

from occ_gym.bench.stats import (
    aiq,
    apgr,
    bootstrap_interval,
    cost_cut_at,
    cost_for,
    cpt,
    delta_ibc,
    hull,
    pgr,
    quality_at,
)

POINTS = [(0.0, 0.0), (1.0, 0.5), (2.0, 0.6), (3.0, 1.0), (2.5, 0.4)]
WEAK, STRONG = (0.0, 0.2), (1.0, 0.8)


def test_the_hull_drops_points_under_it_and_points_that_cost_more_for_less():
    # (2, 0.6) lies under the segment (1, 0.5)-(3, 1.0), whose value at 2 is 0.75;
    # (2.5, 0.4) costs more than (1, 0.5) for less.
    assert hull(POINTS).tolist() == [[0.0, 0.0], [1.0, 0.5], [3.0, 1.0]]
    assert hull([(2.0, 0.3), (2.0, 0.7)]).tolist() == [[2.0, 0.7]]


def test_quality_and_cost_read_off_the_hull():
    assert quality_at(POINTS, 2.0) == pytest.approx(0.75)
    assert quality_at(POINTS, 5.0) == pytest.approx(1.0)  # flat after the dearest point
    assert np.isnan(quality_at([(1.0, 0.5)], 0.5))  # nothing spends that little
    assert cost_for(POINTS, 0.75) == pytest.approx(2.0)
    assert cost_for(POINTS, 1.1) == float("inf")


def test_aiq_is_the_area_under_the_hull_over_the_cost_range():
    # 0.5 * 1 * 0.5 + (0.5 + 1.0) / 2 * 2 = 1.75 over a width of 3
    assert aiq(POINTS) == pytest.approx(1.75 / 3)
    # on [0, 4] the hull stays at 1.0 from 3 to 4: (1.75 + 1.0) / 4
    assert aiq(POINTS, (0.0, 4.0)) == pytest.approx(2.75 / 4)
    # a policy whose cheapest point costs 2 achieves nothing on [0, 2]
    assert aiq([(2.0, 1.0)], (0.0, 4.0)) == pytest.approx(0.5)


def test_pgr_apgr_and_cpt_against_routellms_definitions():
    assert pgr(0.5, WEAK, STRONG) == pytest.approx(0.5)
    policy = [(0.5, 0.8)]
    # PGR climbs linearly from 0 to 1 over costs 0-0.5, then stays 1: mean 0.25 + 0.5
    assert apgr(policy, WEAK, STRONG) == pytest.approx(0.75, abs=1e-3)
    assert apgr([], WEAK, STRONG) == pytest.approx(0.5, abs=1e-3)  # mixing weak and strong
    assert cpt(policy, WEAK, STRONG, 0.5) == pytest.approx(0.25)
    assert cpt(policy, WEAK, STRONG, 0.95) == pytest.approx(0.475)
    with pytest.raises(ValueError, match="higher quality"):
        pgr(0.5, STRONG, WEAK)


def test_delta_ibc_and_cost_cut_against_automix_and_frugalgpt():
    # IBC of the policy 0.6 / 0.5 = 1.2 against the strong model's 0.6 / 1.0 = 0.6
    assert delta_ibc((0.5, 0.8), WEAK, STRONG) == pytest.approx(1.0)
    assert delta_ibc((1.0, 0.8), WEAK, STRONG) == pytest.approx(0.0)
    assert cost_cut_at([(0.5, 0.8), (2.0, 0.9)], STRONG) == pytest.approx(0.5)
    assert cost_cut_at([(0.5, 0.3)], STRONG) == float("-inf")


def test_bootstrap_intervals_cover_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, covered = 300, 0
    for _ in range(trials):
        sample = rng.normal(loc=2.0, scale=3.0, size=60)
        low, high = bootstrap_interval(sample, rng, resamples=1000)
        covered += low <= 2.0 <= high
    assert 0.90 <= covered / trials <= 0.98
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_interval([], rng)
