"""Cost-quality metrics of the routing literature, on (cost, quality) points of one policy.

A policy traced over a knob (the compute weight λ, a retry count, a cascade depth) gives
points ``(cost, quality)``. What it can achieve at a cost ``c`` is read off the
**non-decreasing convex hull** of its points: mixing two operating points at random gives any
point on the segment between them, and spending more never has to lower quality.

- ``aiq``: RouterBench's average improvement in quality, the area under that hull over a cost
  range, divided by the range's width.
- ``pgr`` / ``apgr`` / ``cpt``: RouteLLM's performance gap recovered against a weak and a
  strong model, its average over the cost range between them, and the cost share needed to
  recover x% of the gap (call-performance threshold).
- ``delta_ibc``: AutoMix's incremental benefit per cost, relative to mixing weak and strong.
- ``cost_cut_at``: FrugalGPT's cost saving at matched quality.
- ``bootstrap_interval``: a percentile bootstrap interval of a mean; ``t_interval``: Student's
  t interval of the mean of a few seed-block means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Point = tuple[float, float]


def hull(points: Sequence[Point]) -> np.ndarray:
    """The vertices ``(cost, quality)`` of the non-decreasing upper convex hull, by cost."""
    if not points:
        raise ValueError("a hull needs at least one (cost, quality) point")
    ordered = sorted({(float(c), float(q)) for c, q in points}, key=lambda p: (p[0], -p[1]))
    upper: list[Point] = []
    for point in ordered:
        if upper and point[0] == upper[-1][0]:
            continue  # same cost, lower quality
        if upper and point[1] <= upper[-1][1]:
            continue  # costs more for no gain: never on a non-decreasing frontier
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], point) >= 0:
            upper.pop()
        upper.append(point)
    return np.array(upper)


def _cross(a: Point, b: Point, c: Point) -> float:
    """> 0 when ``b`` lies below the segment ``a``-``c`` (so it is not on the upper hull)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def quality_at(points: Sequence[Point], cost: float | np.ndarray) -> np.ndarray:
    """The hull's quality at ``cost``: interpolated between vertices, flat after the last,
    and ``nan`` below the cheapest point (no operating point spends that little)."""
    vertices = hull(points)
    values = np.interp(cost, vertices[:, 0], vertices[:, 1])
    return np.where(np.asarray(cost) < vertices[0, 0], np.nan, values)


def cost_for(points: Sequence[Point], quality: float) -> float:
    """The least cost at which the hull reaches ``quality`` (``inf`` if it never does)."""
    vertices = hull(points)
    if quality <= vertices[0, 1]:
        return float(vertices[0, 0])
    if quality > vertices[-1, 1]:
        return float("inf")
    return float(np.interp(quality, vertices[:, 1], vertices[:, 0]))


def aiq(points: Sequence[Point], cost_range: tuple[float, float] | None = None) -> float:
    """Area under the hull over ``cost_range`` (default: the points' own), over its width.

    Below the policy's cheapest point it achieves nothing (quality 0 there)."""
    vertices = hull(points)
    low, high = cost_range if cost_range is not None else (vertices[0, 0], vertices[-1, 0])
    if high <= low:
        return float(quality_at(points, low)) if low >= vertices[0, 0] else 0.0
    knots = np.unique(np.clip(np.concatenate([[low, high], vertices[:, 0]]), low, high))
    inside = knots[knots >= vertices[0, 0]]  # below the cheapest point the policy achieves 0
    values = quality_at(points, inside)
    area = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(inside)))
    return area / (high - low)


def pgr(quality: float | np.ndarray, weak: Point, strong: Point) -> float | np.ndarray:
    """Share of the weak→strong quality gap that ``quality`` recovers."""
    gap = strong[1] - weak[1]
    if gap <= 0:
        raise ValueError("the strong model must be of higher quality than the weak one")
    return (quality - weak[1]) / gap


def apgr(points: Sequence[Point], weak: Point, strong: Point, grid: int = 1001) -> float:
    """The mean PGR of the policy's hull over costs from the weak model's to the strong one's,
    together with the weak and strong points themselves (a router can always call either)."""
    frontier = [*points, weak, strong]
    costs = np.linspace(weak[0], strong[0], grid)
    return float(np.mean(pgr(quality_at(frontier, costs), weak, strong)))


def cpt(points: Sequence[Point], weak: Point, strong: Point, recovered: float) -> float:
    """The cost share ``(c - c_weak) / (c_strong - c_weak)`` at which the hull (with weak and
    strong) first recovers ``recovered`` (e.g. 0.5) of the gap."""
    target = weak[1] + recovered * (strong[1] - weak[1])
    cost = cost_for([*points, weak, strong], target)
    return (cost - weak[0]) / (strong[0] - weak[0])


def delta_ibc(point: Point, weak: Point, strong: Point) -> Any:
    """AutoMix's ΔIBC: the policy's quality gained per cost over the weak model, relative to the
    strong model's (0 = no better than mixing weak and strong; > 0 better). Each coordinate may
    also be an array (one ΔIBC per element, e.g. per bootstrap resample)."""
    if np.any(np.asarray(point[0]) == np.asarray(weak[0])):
        raise ValueError("ΔIBC is undefined at the weak model's cost")
    with np.errstate(divide="ignore", invalid="ignore"):
        baseline = np.divide(np.subtract(strong[1], weak[1]), np.subtract(strong[0], weak[0]))
        method = np.divide(np.subtract(point[1], weak[1]), np.subtract(point[0], weak[0]))
        safe = np.where(baseline == 0, 1.0, baseline)
        value = np.where(baseline == 0, np.nan, (method - baseline) / safe)
    if np.ndim(value) == 0:
        if np.isnan(value):
            raise ValueError("ΔIBC is undefined when the strong model is no better than the weak")
        return float(value)
    return value  # nan where a resample's strong model is no better than its weak one


def cost_cut_at(points: Sequence[Point], reference: Point) -> float:
    """The share of ``reference``'s cost the hull saves at ``reference``'s quality
    (negative if it needs more; ``-inf`` if it never gets there)."""
    return 1.0 - cost_for(points, reference[1]) / reference[0]


def bootstrap_indices(rng: np.random.Generator, size: int, resamples: int) -> np.ndarray:
    """``(resamples, size)`` indices: each row one bootstrap resample of ``size`` cases."""
    return rng.integers(0, size, size=(resamples, size))


def bootstrap_weights(rng: np.random.Generator, size: int, resamples: int) -> np.ndarray:
    """``(resamples, size)`` weights summing to 1 per row: each row one bootstrap resample of
    ``size`` cases as multiplicities, so ``weights @ values`` is every resample's mean at once
    and several columns resampled with the same weights stay paired."""
    return rng.multinomial(size, np.full(size, 1.0 / size), size=resamples) / size


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a bootstrap needs at least one value")
    means = data[bootstrap_indices(rng, data.size, resamples)].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Student's t interval of the mean of a few values (the means of seed blocks): with
    several training seeds, the spread between them is the uncertainty that counts."""
    from scipy import stats as scipy_stats

    data = np.asarray(values, dtype=float)
    if data.size < 2:
        raise ValueError("a t interval needs at least two values")
    half = scipy_stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1)
    half /= np.sqrt(data.size)
    return float(data.mean() - half), float(data.mean() + half)
