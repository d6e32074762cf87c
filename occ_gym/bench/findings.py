"""Findings computed from a benchmark's episodes, each with its numbers and the test behind it.

``compute_findings`` runs at the end of ``occ-gym bench`` and stores plain numbers in
``results.json``; ``render_findings`` writes them as "Finding N: ..." from those numbers alone.
A finding whose data is missing (no learned policy, no task difficulty, no repairs, too few
episodes) or that its test does not support is left out: nothing is printed for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from occ_gym.bench.labels import ORACLE, PLANNER, ROUTER, ROUTER_PROMPT_ONLY, TUNED_CASCADE
from occ_gym.bench.stats import bootstrap_indices, bootstrap_interval, t_interval
from occ_gym.envs.code_env import occ_env
from occ_gym.tiers.base import RecordedTier

if TYPE_CHECKING:
    from occ_gym.bench.runner import Bench

MIN_CASES = 30
"""Fewer cases than this and a finding is not computed."""
PERMUTATIONS = 2000
SIGNIFICANCE = 0.01
DIFFICULTY_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Bins of the tasks' latent difficulty (synthetic tasks: 1, 2, 3, 4 operations)."""


@dataclass
class Evidence:
    """What a finding may read: the bench's episodes, its numbers so far, a seeded generator."""

    bench: Bench
    results: dict[str, Any]
    rng: np.random.Generator

    @cached_property
    def attempts(self) -> dict[str, dict[str, np.ndarray]]:
        return _fixed_attempts(self.bench)


def compute_findings(
    bench: Bench, results: dict[str, Any], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Every finding the run supports, as numbers (see the module docstring)."""
    evidence = Evidence(bench, results, rng)
    found = []
    for compute in (
        planner_vs_tuned_cascade,
        answer_side_router,
        learned_vs_best_rule,
        tier_tracks_difficulty,
        where_learned_saves_compute,
        repair_vs_fresh,
        public_pass_hidden_fail,
        cost_cut_at_matched_quality,
    ):
        finding = compute(evidence)
        if finding is not None:
            found.append({"key": compute.__name__, **finding})
    return found


def _learned(bench: Bench) -> list[str]:
    return [e.label for e in bench.entries if e.learned and e.headline]


def _best_learned(bench: Bench) -> str | None:
    """The learned headline policy with the highest mean return (the one findings describe)."""
    learned = _learned(bench)
    return max(learned, key=lambda label: bench.logs[label]["return"].mean()) if learned else None


def _ci(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    return list(bootstrap_interval(values, rng, resamples=1000))


def _verdict(interval: list[float], null: float = 0.0) -> str:
    low, high = interval
    return "higher" if low > null else "lower" if high < null else "indistinguishable"


def _paired_difference(bench: Bench, a: str, b: str, rng: np.random.Generator) -> dict[str, Any]:
    """Entry ``a``'s return minus ``b``'s on the same episodes, with its 95% interval: a paired
    bootstrap over episodes, or, when either entry is a learner over several training seeds,
    a t-interval over the seed blocks' mean differences (so it holds the seeds' spread)."""
    delta = bench.logs[a]["return"] - bench.logs[b]["return"]
    seeds = max(e.training_seeds for e in bench.entries if e.label in (a, b))
    if seeds > 1:
        blocks = delta.reshape(len(bench.config.seed_list), -1).mean(axis=1)
        interval, over = list(t_interval(blocks)), "seeds"
    else:
        interval, over = _ci(delta, rng), "episodes"
    return {
        "delta": float(delta.mean()),
        "ci": interval,
        "verdict": _verdict(interval),
        "interval_over": over,
    }


def learned_vs_best_rule(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """Each learned policy's return against the best rule's (the best fitted or hand-made
    baseline) and, when that is another, the tuned cascade's, paired by episode."""
    bench, rng = evidence.bench, evidence.rng
    learned = _learned(bench)
    rules = [
        e.label
        for e in bench.entries
        if e.headline and not e.learned and e.family not in (ORACLE, PLANNER, "RandomPolicy")
    ]
    if not learned or not rules:
        return None
    logs = bench.logs
    best = max(rules, key=lambda label: logs[label]["return"].mean())
    versus = [best]
    if TUNED_CASCADE in logs and best != TUNED_CASCADE:
        versus.append(TUNED_CASCADE)
    comparisons = []
    for label in learned:
        for rule in versus:
            comparisons.append(
                {
                    "policy": label,
                    "rule": rule,
                    "return": float(logs[label]["return"].mean()),
                    "rule_return": float(logs[rule]["return"].mean()),
                    **_paired_difference(bench, label, rule, rng),
                    "hidden_pass_delta": float(
                        logs[label]["hidden_pass"].mean() - logs[rule]["hidden_pass"].mean()
                    ),
                    "compute_delta": float(
                        logs[label]["compute"].mean() - logs[rule]["compute"].mean()
                    ),
                }
            )
    return {
        "rule": best,
        "episodes": len(logs[best]["return"]),
        "seed_blocks": len(bench.config.seed_list),
        "comparisons": comparisons,
    }


def planner_vs_tuned_cascade(evidence: Evidence) -> dict[str, Any] | None:
    """The allocation headroom: the planner's return against the tuned cascade's, paired, and
    each learned policy's share of the planner's return."""
    logs = evidence.bench.logs
    if PLANNER not in logs or TUNED_CASCADE not in logs:
        return None
    delta = logs[PLANNER]["return"] - logs[TUNED_CASCADE]["return"]
    interval = _ci(delta, evidence.rng)
    planner_return = float(logs[PLANNER]["return"].mean())
    return {
        "planner_return": planner_return,
        "cascade_return": float(logs[TUNED_CASCADE]["return"].mean()),
        "delta": float(delta.mean()),
        "ci": interval,
        "verdict": _verdict(interval),
        "episodes": len(delta),
        # A share of a return that is not positive says nothing (a tiny recording's planner
        # may abstain on every task).
        "learned_share_of_planner": {
            label: float(logs[label]["return"].mean()) / planner_return
            for label in _learned(evidence.bench)
        }
        if planner_return > 0
        else {},
    }


def answer_side_router(evidence: Evidence) -> dict[str, Any] | None:
    """What the answer-side signals are worth to a router: the router that reads them against
    the same router without them, and each against the tuned cascade, paired by episode."""
    logs = evidence.bench.logs
    if ROUTER not in logs or ROUTER_PROMPT_ONLY not in logs or TUNED_CASCADE not in logs:
        return None
    pairs = {
        "answer_side_gain": (ROUTER, ROUTER_PROMPT_ONLY),
        "router_minus_cascade": (ROUTER, TUNED_CASCADE),
        "prompt_only_minus_cascade": (ROUTER_PROMPT_ONLY, TUNED_CASCADE),
    }
    out: dict[str, Any] = {"episodes": len(logs[ROUTER]["return"])}
    for key, (a, b) in pairs.items():
        delta = logs[a]["return"] - logs[b]["return"]
        interval = _ci(delta, evidence.rng)
        out[key] = {"delta": float(delta.mean()), "ci": interval, "verdict": _verdict(interval)}
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2.0) - 1)[inverse]


def _difficulty_bins(difficulty: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
    edges = DIFFICULTY_BINS
    bins = []
    for k, (low, high) in enumerate(itertools.pairwise(edges)):
        last = k == len(edges) - 2
        inside = (difficulty >= low) & ((difficulty <= high) if last else (difficulty < high))
        bins.append((low, high, inside))
    return bins


def tier_tracks_difficulty(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """Does the best learned policy's first tier rise with the task's (hidden) difficulty?

    Spearman's rho between difficulty and the first tier attempted, with a permutation test."""
    bench, rng = evidence.bench, evidence.rng
    policy = _best_learned(bench)
    if policy is None:
        return None
    log = bench.logs[policy]
    chose = (log["first_tier"] >= 0) & np.isfinite(log["difficulty"])
    tiers, difficulty = log["first_tier"][chose], log["difficulty"][chose]
    if chose.sum() < MIN_CASES or len(np.unique(tiers)) < 2 or len(np.unique(difficulty)) < 2:
        return None
    x, y = _ranks(difficulty), _ranks(tiers)
    x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    rho = float(np.mean(x * y))
    shuffled = np.array([rng.permutation(y) for _ in range(PERMUTATIONS)])
    null = shuffled @ x / len(x)
    p_value = float((1 + np.sum(np.abs(null) >= abs(rho))) / (PERMUTATIONS + 1))
    if p_value >= SIGNIFICANCE:
        return None
    names = occ_env(bench.env).action_layout.tier_names
    bins: list[dict[str, Any]] = []
    for low, high, inside in _difficulty_bins(difficulty):
        if inside.sum() == 0:
            continue
        shares = np.bincount(tiers[inside].astype(int), minlength=len(names)) / inside.sum()
        bins.append(
            {
                "range": [low, high],
                "episodes": int(inside.sum()),
                "first_tier_share": dict(zip(names, shares.tolist(), strict=True)),
            }
        )
    return {
        "policy": policy,
        "rho": rho,
        "p_value": p_value,
        "permutations": PERMUTATIONS,
        "episodes": int(chose.sum()),
        "bins": bins,
    }


def where_learned_saves_compute(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """Per difficulty bin: the best learned policy's compute and hidden pass against the reference's
    on the same episodes; kept if it saves compute in at least one bin."""
    bench, results, rng = evidence.bench, evidence.results, evidence.rng
    policy = _best_learned(bench)
    reference = results["reference"]
    if policy is None or reference not in bench.logs:
        return None
    ours, theirs = bench.logs[policy], bench.logs[reference]
    difficulty = ours["difficulty"]
    if not np.isfinite(difficulty).all():
        return None
    bins: list[dict[str, Any]] = []
    for low, high, inside in _difficulty_bins(difficulty):
        if inside.sum() < MIN_CASES:
            continue
        saved = theirs["compute"][inside] - ours["compute"][inside]
        gained = ours["hidden_pass"][inside] - theirs["hidden_pass"][inside]
        bins.append(
            {
                "range": [low, high],
                "episodes": int(inside.sum()),
                "reference_compute": float(theirs["compute"][inside].mean()),
                "compute_saved": float(saved.mean()),
                "compute_saved_ci": _ci(saved, rng),
                "hidden_pass_delta": float(gained.mean()),
                "hidden_pass_delta_ci": _ci(gained, rng),
            }
        )
    if not any(b["compute_saved_ci"][0] > 0 for b in bins):
        return None
    return {"policy": policy, "reference": reference, "bins": bins}


def _fixed_attempts(bench: Bench) -> dict[str, dict[str, np.ndarray]]:
    """Per tier, over the bench's episodes: the first fresh sample's public and hidden result,
    and, where it failed VERIFY, what its first repair and a second fresh sample would give."""
    env = occ_env(bench.env)
    names = env.action_layout.tier_names
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    # A repair exists as deep as the mask allows (a table may hold none); a second fresh sample
    # differs from the first only where more than one was recorded.
    comparable = [
        env.executor.repair_limit > 0
        and not (isinstance(tier, RecordedTier) and tier.samples_per_task < 2)
        for tier in env.tiers
    ]
    for seed in bench.config.seed_list:
        for episode in range(bench.config.episodes):
            env.reset(seed=seed + episode)
            for tier, name in enumerate(names):
                first = env.peek_attempt(tier, 0, 0)
                if first.public_pass or not comparable[tier]:
                    rows[name].append((1.0 * first.public_pass, first.hidden_pass, *[np.nan] * 4))
                    continue
                repair, fresh = env.peek_attempt(tier, 0, 1), env.peek_attempt(tier, 1, 0)
                failed = (0.0, first.hidden_pass, repair.hidden_pass, repair.cost)
                rows[name].append((*failed, fresh.hidden_pass, fresh.cost))
    columns = ("public", "hidden", "repair_pass", "repair_cost", "fresh_pass", "fresh_cost")
    return {
        name: dict(zip(columns, np.array(table, dtype=float).T, strict=True))
        for name, table in rows.items()
    }


def repair_vs_fresh(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """After a failed VERIFY: hidden passes per unit of compute of a REPAIR against a second
    fresh sample of the same tier; kept for the tiers where the ratio's interval excludes 1."""
    rng = evidence.rng
    tiers = []
    for name, table in evidence.attempts.items():
        failed = table["public"] == 0.0
        if failed.sum() < MIN_CASES or np.isnan(table["repair_pass"][failed]).all():
            continue
        rp, rc = table["repair_pass"][failed], table["repair_cost"][failed]
        fp, fc = table["fresh_pass"][failed], table["fresh_cost"][failed]
        if rp.sum() == 0 or fp.sum() == 0:
            continue
        draws = bootstrap_indices(rng, len(rp), 1000)
        ratio = (rp[draws].mean(1) / rc[draws].mean(1)) / (fp[draws].mean(1) / fc[draws].mean(1))
        interval = [float(v) for v in np.quantile(ratio, [0.025, 0.975])]
        verdict = _verdict(interval, null=1.0)
        if verdict == "indistinguishable":
            continue
        tiers.append(
            {
                "tier": name,
                "cases": int(failed.sum()),
                "repair_pass": float(rp.mean()),
                "repair_cost": float(rc.mean()),
                "fresh_pass": float(fp.mean()),
                "fresh_cost": float(fc.mean()),
                "ratio": float((rp.mean() / rc.mean()) / (fp.mean() / fc.mean())),
                "ratio_ci": interval,
                "winner": "repair" if verdict == "higher" else "fresh",
            }
        )
    return {"tiers": tiers} if tiers else None


def public_pass_hidden_fail(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """How often a candidate that passes the public tests fails hidden ones: per tier (first
    fresh samples) and per headline policy (its submissions)."""
    bench, rng = evidence.bench, evidence.rng
    tiers = []
    for name, table in evidence.attempts.items():
        passed = table["public"] == 1.0
        if passed.sum() >= MIN_CASES:
            missed = 1.0 - table["hidden"][passed]
            tiers.append(
                {
                    "tier": name,
                    "public_passes": int(passed.sum()),
                    "hidden_fail": float(missed.mean()),
                    "ci": _ci(missed, rng),
                }
            )
    if not tiers:
        return None
    policies = []
    for entry in bench.entries:
        log = bench.logs[entry.label]
        passed = log["public_pass"] == 1.0
        if entry.headline and passed.sum() >= MIN_CASES:
            missed = 1.0 - log["hidden_pass"][passed]
            policies.append(
                {
                    "policy": entry.label,
                    "public_passes": int(passed.sum()),
                    "hidden_fail": float(missed.mean()),
                }
            )
    return {"tiers": tiers, "policies": policies}


def cost_cut_at_matched_quality(
    evidence: Evidence,
) -> dict[str, Any] | None:
    """The families whose cost-quality hull reaches the reference's hidden pass for less
    compute, with the cut's interval above 0."""
    results = evidence.results
    cuts = [
        {"family": curve["family"], **curve["metrics"]["cost_cut"]}
        for curve in results["curves"]
        if curve["family"] != "FixedTier"
        and curve["metrics"]["cost_cut"]["ci"][0] is not None
        and curve["metrics"]["cost_cut"]["ci"][0] > 0
    ]
    if not cuts:
        return None
    return {"reference": results["reference"], "families": sorted(cuts, key=lambda c: -c["mean"])}


# ---------------------------------------------------------------------- rendering


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _interval_text(interval: list[float], fmt: Callable[[float], str]) -> str:
    return f"95% CI {fmt(interval[0])} to {fmt(interval[1])}"


def _render_planner_vs_tuned_cascade(f: dict[str, Any]) -> str:
    verb = {
        "higher": "beats",
        "lower": "falls short of",
        "indistinguishable": "cannot be told apart from",
    }[f["verdict"]]
    shares = "; ".join(
        f"{label} reaches {share:.2f}x the planner's return"
        for label, share in f["learned_share_of_planner"].items()
    )
    text = (
        f"Allocation headroom: the planner (optimal for its discretised empirical model, so a "
        f"lower bound on what the observation allows) {verb} the tuned cascade on return, "
        f"{f['planner_return']:+.3f} against {f['cascade_return']:+.3f}, a difference of "
        f"{f['delta']:+.3f} ({_interval_text(f['ci'], lambda v: f'{v:+.3f}')})"
        + (f"; {shares}." if shares else ".")
    )
    test = (
        f"*Test:* paired bootstrap of per-episode return differences over {f['episodes']} episodes."
    )
    return f"{text}\n{test}"


def _render_answer_side_router(f: dict[str, Any]) -> str:
    def part(key: str, what: str) -> str:
        d = f[key]
        return f"{what} {d['delta']:+.3f} ({_interval_text(d['ci'], lambda v: f'{v:+.3f}')})"

    text = (
        f"Answer-side signals in a learned router: {ROUTER} minus {ROUTER_PROMPT_ONLY} "
        + part("answer_side_gain", "is")
        + "; against the tuned cascade, "
        + part("router_minus_cascade", f"{ROUTER}")
        + " and "
        + part("prompt_only_minus_cascade", f"{ROUTER_PROMPT_ONLY}")
        + "."
    )
    test = (
        f"*Test:* paired bootstrap of per-episode return differences over {f['episodes']} episodes."
    )
    return f"{text}\n{test}"


def _render_learned_vs_best_rule(f: dict[str, Any]) -> str:
    lines = []
    for c in f["comparisons"]:
        verb = {
            "higher": "beats",
            "lower": "falls short of",
            "indistinguishable": "cannot be told apart from",
        }[c["verdict"]]
        rule = c.get("rule", f["rule"])
        which = f"the best rule, {rule}" if rule == f["rule"] else rule
        lines.append(
            f"{c['policy']} {verb} {which}, on return: {c['return']:+.3f} "
            f"against {c['rule_return']:+.3f}, a difference of {c['delta']:+.3f} "
            f"({_interval_text(c['ci'], lambda v: f'{v:+.3f}')}); hidden pass "
            f"{c['hidden_pass_delta']:+.3f}, compute {c['compute_delta']:+.0f} units."
        )
    kinds = {c.get("interval_over", "episodes") for c in f["comparisons"]}
    tests = []
    if "episodes" in kinds:
        tests.append(
            f"paired bootstrap of per-episode return differences over {f['episodes']} episodes"
        )
    if "seeds" in kinds:
        tests.append(
            "for a learner over several training seeds, a t-interval over the "
            f"{f.get('seed_blocks')} seed blocks' mean differences (block k plays training seed "
            "k), so the spread between seeds is in it"
        )
    return " ".join(lines) + "\n*Test:* " + "; ".join(tests) + "."


def _render_tier_tracks_difficulty(f: dict[str, Any]) -> str:
    rows = "; ".join(
        f"difficulty {b['range'][0]:.2f} to {b['range'][1]:.2f} ({b['episodes']} episodes): "
        + ", ".join(f"{tier} {_pct(share)}" for tier, share in b["first_tier_share"].items())
        for b in f["bins"]
    )
    direction = "a bigger" if f["rho"] > 0 else "a smaller"
    return (
        f"{f['policy']} starts harder problems with {direction} tier, though it only sees the "
        f"prompt: Spearman's rho = {f['rho']:+.3f} between the task's latent difficulty and the "
        f"first tier it calls. First tier by difficulty: {rows}.\n"
        f"*Test:* permutation test of rho ({f['permutations']} permutations, {f['episodes']} "
        f"episodes), p = {f['p_value']:.4f}."
    )


def _render_where_learned_saves_compute(f: dict[str, Any]) -> str:
    parts = []
    for b in f["bins"]:
        saved, reference = b["compute_saved"], b["reference_compute"]
        verb = "saves" if saved >= 0 else "spends"
        extra = "" if saved >= 0 else " more"
        parts.append(
            f"at difficulty {b['range'][0]:.2f} to {b['range'][1]:.2f} it {verb} "
            f"{abs(saved):.0f} units{extra} per problem ({_pct(abs(saved) / reference)} of "
            f"{reference:.0f}; saving {_interval_text(b['compute_saved_ci'], _units)}) for a "
            f"hidden pass {b['hidden_pass_delta']:+.3f} "
            f"({_interval_text(b['hidden_pass_delta_ci'], lambda v: f'{v:+.3f}')})"
        )
    return (
        f"Where {f['policy']} saves compute against {f['reference']}, on the same episodes: "
        + "; ".join(parts)
        + ".\n*Test:* paired bootstrap of per-episode differences within each difficulty bin."
    )


def _units(value: float) -> str:
    return f"{value:+.0f}"


def _render_repair_vs_fresh(f: dict[str, Any]) -> str:
    parts = []
    for t in f["tiers"]:
        parts.append(
            f"{t['tier']}: a repair passes the hidden tests {_pct(t['repair_pass'])} of the time "
            f"for {t['repair_cost']:.0f} units, a fresh sample {_pct(t['fresh_pass'])} for "
            f"{t['fresh_cost']:.0f}; {t['winner']} wins at equal compute (passes per unit, "
            f"repair / fresh = {t['ratio']:.2f}, "
            f"{_interval_text(t['ratio_ci'], lambda v: f'{v:.2f}')}; {t['cases']} failures)"
        )
    return (
        "After a failed VERIFY, REPAIR against a second fresh sample of the same tier: "
        + "; ".join(parts)
        + ".\n*Test:* bootstrap of the ratio of hidden passes per unit of compute over the "
        "failures met in the bench's episodes."
    )


def _render_public_pass_hidden_fail(f: dict[str, Any]) -> str:
    tiers = "; ".join(
        f"{t['tier']} {_pct(t['hidden_fail'])} of {t['public_passes']} "
        f"({_interval_text(t['ci'], _pct)})"
        for t in f["tiers"]
    )
    policies = ", ".join(
        f"{p['policy']} {_pct(p['hidden_fail'])}" for p in f["policies"] if p["hidden_fail"] > 0
    )
    text = (
        f"Passing the public tests is not passing the hidden ones. Of the first samples that "
        f"pass every public test, this share fails a hidden test: {tiers}."
    )
    if policies:
        text += f" Among the submissions that passed public tests: {policies}."
    return text + "\n*Test:* bootstrap interval of the share, over the bench's episodes."


def _render_cost_cut_at_matched_quality(f: dict[str, Any]) -> str:
    parts = "; ".join(
        f"{c['family']} {_pct(c['mean'])} ({_interval_text(c['ci'], _pct)})" for c in f["families"]
    )
    return (
        f"At {f['reference']}'s hidden pass, these policies' cost-quality hulls need less "
        f"compute (FrugalGPT's cost cut): {parts}.\n"
        "*Test:* bootstrap over episodes, re-tracing every hull in each resample."
    )


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "planner_vs_tuned_cascade": _render_planner_vs_tuned_cascade,
    "answer_side_router": _render_answer_side_router,
    "learned_vs_best_rule": _render_learned_vs_best_rule,
    "tier_tracks_difficulty": _render_tier_tracks_difficulty,
    "where_learned_saves_compute": _render_where_learned_saves_compute,
    "repair_vs_fresh": _render_repair_vs_fresh,
    "public_pass_hidden_fail": _render_public_pass_hidden_fail,
    "cost_cut_at_matched_quality": _render_cost_cut_at_matched_quality,
}


def render_findings(results: dict[str, Any]) -> str:
    """``findings.md`` from the numbers in ``results.json``."""
    lines = [
        f"**Findings on {results['env_id']}, {results['split']} split**, computed by "
        f"`{results['command']}` (cfg_hash `{results['cfg_hash']}`). "
        "A finding the run does not support is not listed.",
        "",
    ]
    for number, finding in enumerate(results["findings"], start=1):
        lines += [f"**Finding {number}.** {RENDERERS[finding['key']](finding)}", ""]
    if not results["findings"]:
        lines += ["This run supports no finding.", ""]
    return "\n".join(lines)
