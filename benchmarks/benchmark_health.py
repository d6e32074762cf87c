"""The benchmark's own health: does allocation matter in each env, measured, with targets.

    python benchmarks/benchmark_health.py [--env OCC-Code-v0 OCC-Code-v1] [--episodes 1000]

For each env id, from its shipped trace tables and from the test episodes of its bench run
(``occ-gym bench --env ID --out benchmarks/results/code[-v1]``, which make demo runs first):

- headroom: the empirical-MDP planner against the best tuned threshold cascade (both fitted
  on the train split only, by the bench), paired per episode, with the hindsight oracle and
  the shipped MaskablePPO policy (where one exists) beside them;
- no dominant tier: the share of test tasks where a cheaper tier's hidden-pass rate (over its
  recorded fresh samples) beats the most expensive tier's;
- fallible verification: P(hidden fail | public pass) of the cheapest tier's fresh samples;
- diversity: per tier, the share of tasks whose recorded fresh samples are all the same code;
- signals: per tier, the test AUC of "this fresh candidate passes the hidden tests" from a
  logistic regression fitted on train, with prompt features only and with the answer-side
  signals added (mean and min token log-probability, length, agreement with an earlier sample).

Writes ``benchmarks/results/health.{json,md}``; every number comes from this run (seeds in the
JSON). The targets are OCC-Code-v1's design targets; v0 is measured against them too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import occ_gym  # noqa: F401  (registers the ids)
from occ_gym.bench.labels import ORACLE, PLANNER, TUNED_CASCADE
from occ_gym.bench.runner import EPISODES_FILE
from occ_gym.bench.stats import bootstrap_interval, t_interval
from occ_gym.tasks.synthetic import problem_for, prompt_features
from occ_gym.tiers.suites import SUITES, NanoSuite
from occ_gym.traces.table import read_table

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "headroom": 0.05,
    "no_dominant_tier": 0.20,
    "fallible_verification": 0.10,
    "identical_samples": 0.30,
}
"""planner - cascade ≥; share of tasks a cheaper tier wins ≥; P(hidden fail | public pass) ≥;
share of tasks with all samples identical ≤ (every tier)."""


def suite_of(env_id: str) -> NanoSuite:
    return SUITES[gym.spec(env_id).kwargs["tiers"]]


def fresh_rows(suite: NanoSuite, split: str) -> dict[str, np.ndarray]:
    """The fresh attempts (round 0) of a shipped table, as arrays."""
    columns = read_table(suite.traces_path(split)).to_pydict()
    keep = np.array(columns["repair_round"]) == 0
    return {name: np.array(values, dtype=object)[keep] for name, values in columns.items()}


def per_task(rows: dict[str, np.ndarray], tier: str, column: str) -> dict[str, list[Any]]:
    """``column`` of every fresh sample of ``tier``, by task, in sample order."""
    chosen = np.flatnonzero(rows["tier"] == tier)
    order = chosen[np.lexsort((rows["sample"][chosen].astype(int), rows["task_id"][chosen]))]
    found: dict[str, list[Any]] = {}
    for i in order:
        found.setdefault(str(rows["task_id"][i]), []).append(rows[column][i])
    return found


def trace_properties(suite: NanoSuite) -> dict[str, Any]:
    """No dominant tier, fallible verification and diversity, from the test table."""
    rows = fresh_rows(suite, "test")
    hidden = rows["hidden_passed"] == rows["hidden_total"]
    public = rows["public_passed"] == rows["public_total"]
    rows = {**rows, "hidden_pass": hidden, "public_pass": public}
    rates = {
        tier: {t: float(np.mean(v)) for t, v in per_task(rows, tier, "hidden_pass").items()}
        for tier in suite.tiers
    }
    top = suite.tiers[-1]
    tasks = sorted(rates[top])
    beaten = [any(rates[t][task] > rates[top][task] for t in suite.tiers[:-1]) for task in tasks]
    # The max over several noisy rates beats one rate by chance alone: the stricter measure
    # picks the best cheaper tier on the first half of the samples and compares it with the
    # most expensive tier on the other half.
    passes = {tier: per_task(rows, tier, "hidden_pass") for tier in suite.tiers}
    half = suite.samples // 2

    def held_out_win(task: str) -> bool:
        pick = max(suite.tiers[:-1], key=lambda t: np.mean(passes[t][task][:half]))
        return bool(np.mean(passes[pick][task][half:]) > np.mean(passes[top][task][half:]))

    beaten_held_out = [held_out_win(task) for task in tasks]
    cheapest = rows["tier"] == suite.tiers[0]
    passed_public = cheapest & public
    identical = {
        tier: float(
            np.mean([len(set(codes)) == 1 for codes in per_task(rows, tier, "code").values()])
        )
        for tier in suite.tiers
    }
    tiers = {
        tier: {
            "hidden_pass": round(float(hidden[rows["tier"] == tier].mean()), 4),
            "public_pass": round(float(public[rows["tier"] == tier].mean()), 4),
            "p_hidden_fail_given_public_pass": round(
                float(1 - hidden[(rows["tier"] == tier) & public].mean()), 4
            ),
            "all_samples_identical": round(identical[tier], 4),
            "beats_most_expensive_on": round(
                float(np.mean([rates[tier][task] > rates[top][task] for task in tasks])), 4
            ),
        }
        for tier in suite.tiers
    }
    return {
        "test_tasks": len(tasks),
        "samples_per_tier": suite.samples,
        "tiers": tiers,
        "no_dominant_tier": round(float(np.mean(beaten)), 4),
        "no_dominant_tier_held_out": round(float(np.mean(beaten_held_out)), 4),
        "fallible_verification": round(float(1 - hidden[passed_public].mean()), 4),
        "identical_samples_worst": round(max(identical.values()), 4),
    }


def signal_features(
    rows: dict[str, np.ndarray], tier: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt features, answer-side features, hidden pass) of ``tier``'s fresh samples."""
    prompt_rows, answer_rows, labels = [], [], []
    outputs = per_task(rows, tier, "public_outputs")
    logprob_mean = per_task(rows, tier, "logprob_mean")
    logprob_min = per_task(rows, tier, "logprob_min")
    length = per_task(rows, tier, "new_tokens")
    passed = per_task(rows, tier, "hidden_passed")
    total = per_task(rows, tier, "hidden_total")
    for task, digests in outputs.items():
        features = prompt_features(problem_for(task).prompt)
        for s, digest in enumerate(digests):
            agrees = bool(digest) and digest in digests[:s]
            prompt_rows.append(features)
            answer_rows.append(
                [logprob_mean[task][s], logprob_min[task][s], length[task][s] / 96, agrees]
            )
            labels.append(passed[task][s] == total[task][s])
    return (
        np.array(prompt_rows, dtype=float),
        np.array(answer_rows, dtype=float),
        np.array(labels, dtype=bool),
    )


def signal_auc(suite: NanoSuite) -> dict[str, Any]:
    """Per tier: test AUC of a hidden pass from prompt features, and with the answer side."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = fresh_rows(suite, "train"), fresh_rows(suite, "test")
    if np.isnan(train["logprob_mean"].astype(float)).all():
        return {"recorded": False}
    result: dict[str, Any] = {"recorded": True, "tiers": {}}
    for tier in suite.tiers:
        scores = {}
        fitted = {"train": signal_features(train, tier), "test": signal_features(test, tier)}
        for name, use_answer in (("prompt_only", False), ("with_answer_side", True)):
            design = {
                split: np.hstack([prompt, answer]) if use_answer else prompt
                for split, (prompt, answer, _) in fitted.items()
            }
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            model.fit(design["train"], fitted["train"][2])
            labels = fitted["test"][2]
            scores[name] = (
                round(float(roc_auc_score(labels, model.predict_proba(design["test"])[:, 1])), 4)
                if 0 < labels.sum() < len(labels)
                else None
            )
        result["tiers"][tier] = scores
    result["raised_for_every_tier"] = all(
        s["with_answer_side"] is not None
        and s["prompt_only"] is not None
        and s["with_answer_side"] > s["prompt_only"]
        for s in result["tiers"].values()
    )
    return result


BENCH_DIRS = {"OCC-Code-v0": RESULTS / "code", "OCC-Code-v1": RESULTS / "code-v1"}
"""Where ``make demo``'s ``occ-gym bench`` runs write each env's results."""
POLICIES = {
    "tuned cascade": TUNED_CASCADE,
    "planner": PLANNER,
    "hindsight oracle": ORACLE,
}
"""This report's names for the bench's entries (the shipped MaskablePPO's is found in each run:
``MaskablePPO (shipped)``, or ``MaskablePPO (5 seeds)`` where it ships several seeds)."""
LEARNED = "MaskablePPO"


def headroom(env_id: str, bench_dir: Path) -> dict[str, Any]:
    """The tuned cascade, the planner (both fitted on train by the bench), the oracle and the
    shipped policy, paired on the bench's test episodes: read from its ``results.json`` and
    ``episodes.parquet``, so the report and the leaderboard are the same run."""
    import pyarrow.parquet as pq

    results_path, episodes_path = bench_dir / "results.json", bench_dir / EPISODES_FILE
    if not results_path.is_file() or not episodes_path.is_file():
        raise SystemExit(
            f"{bench_dir} holds no bench run: run `occ-gym bench --env {env_id} --out "
            f"{bench_dir}` first (make demo does)"
        )
    results = json.loads(results_path.read_text())
    if results["env_id"] != env_id or results["split"] != "test":
        raise SystemExit(f"{results_path} is a {results['env_id']} run on {results['split']}")
    episodes = pq.read_table(episodes_path, columns=["entry", "return"]).to_pydict()
    entry, values = np.array(episodes["entry"]), np.array(episodes["return"])
    learned = [
        e
        for e in results["entries"]
        if e.get("learned") and e.get("headline") and e["label"].startswith("MaskablePPO (")
    ]
    labels = {**POLICIES, **({LEARNED: learned[0]["label"]} if learned else {})}
    seeds = learned[0].get("training_seeds", 1) if learned else 1
    returns = {
        name: values[entry == label] for name, label in labels.items() if (entry == label).any()
    }
    rng = np.random.default_rng(0)
    summary = {
        name: {
            "return": round(float(values.mean()), 4),
            "interval": [round(x, 4) for x in bootstrap_interval(values, rng)],
        }
        for name, values in returns.items()
    }
    gap = returns["planner"] - returns["tuned cascade"]
    paired: dict[str, Any] = {
        "planner_minus_cascade": round(float(gap.mean()), 4),
        "interval": [round(x, 4) for x in bootstrap_interval(gap, rng)],
    }
    if LEARNED in returns:
        for other in ("tuned cascade", "planner"):
            diff = returns[LEARNED] - returns[other]
            # Over several training seeds, the interval is across seed blocks (as the bench's).
            blocks = diff.reshape(len(results["seeds"]), -1).mean(axis=1)
            interval = t_interval(blocks) if seeds > 1 else bootstrap_interval(diff, rng)
            paired[f"ppo_minus_{other.split()[-1]}"] = {
                "mean": round(float(diff.mean()), 4),
                "interval": [round(x, 4) for x in interval],
                "policy": labels[LEARNED],
                "training_seeds": seeds,
            }
    return {
        "bench": results["command"],
        "episodes": len(gap),
        "seeds": results["seeds"],
        "cascade_fit": results["fits"][TUNED_CASCADE],
        "planner_fit": results["fits"][PLANNER],
        "policies": summary,
        "paired": paired,
    }


def verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each property: met (True), missed (False), or not measurable here (None)."""
    traces, signals, gap = report["traces"], report["signals"], report["headroom"]["paired"]
    return {
        "headroom": gap["planner_minus_cascade"] >= TARGETS["headroom"],
        "no_dominant_tier": traces["no_dominant_tier"] >= TARGETS["no_dominant_tier"],
        "no_dominant_tier_held_out": traces["no_dominant_tier_held_out"]
        >= TARGETS["no_dominant_tier"],
        "fallible_verification": traces["fallible_verification"]
        >= TARGETS["fallible_verification"],
        "diversity": traces["identical_samples_worst"] <= TARGETS["identical_samples"],
        "signals": signals.get("raised_for_every_tier") if signals["recorded"] else None,
        "ppo_reported": LEARNED in report["headroom"]["policies"],
    }


def markdown(reports: dict[str, dict[str, Any]]) -> str:
    def mark(value: bool | None) -> str:
        return "met" if value else ("not measurable" if value is None else "**not met**")

    ids = list(reports)
    lines = [
        "| property (target) | " + " | ".join(ids) + " |",
        "|---|" + "---|" * len(ids),
    ]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(reports[i]) for i in ids) + " |")

    def gap_cell(r: dict) -> str:
        gap = r["headroom"]["paired"]
        low, high = gap["interval"]
        return (
            f"{gap['planner_minus_cascade']:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"({mark(r['verdicts']['headroom'])})"
        )

    row("planner minus tuned cascade, test return (≥ +0.05)", gap_cell)

    def ppo_cell(r: dict) -> str:
        found = r["headroom"]["paired"].get("ppo_minus_cascade")
        if found is None:
            return "no shipped policy"
        low, high = found["interval"]
        seeds = found.get("training_seeds", 1)
        over = "one seed" if seeds == 1 else f"mean of {seeds} seeds, t-interval across them"
        return f"{found['mean']:+.3f} [{low:+.3f}, {high:+.3f}] ({over})"

    row("shipped MaskablePPO minus tuned cascade, test return", ppo_cell)
    row(
        "test tasks where a cheaper tier beats the most expensive (≥ 20%)",
        lambda r: (
            f"{r['traces']['no_dominant_tier']:.1%} ({mark(r['verdicts']['no_dominant_tier'])})"
        ),
    )
    row(
        "the same, the cheaper tier picked on half the samples, compared on the other half",
        lambda r: (
            f"{r['traces']['no_dominant_tier_held_out']:.1%} "
            f"({mark(r['verdicts']['no_dominant_tier_held_out'])})"
        ),
    )
    row(
        "cheapest tier P(hidden fail \\| public pass) (≥ 10%)",
        lambda r: (
            f"{r['traces']['fallible_verification']:.1%} "
            f"({mark(r['verdicts']['fallible_verification'])})"
        ),
    )
    row(
        "worst tier: tasks with all samples identical (≤ 30%)",
        lambda r: (
            f"{r['traces']['identical_samples_worst']:.1%} ({mark(r['verdicts']['diversity'])})"
        ),
    )

    def auc_cell(r: dict) -> str:
        signals = r["signals"]
        if not signals["recorded"]:
            return "not recorded (no log-probabilities in its traces)"
        pairs = ", ".join(
            f"{tier} {s['prompt_only']:.2f}→{s['with_answer_side']:.2f}"
            for tier, s in signals["tiers"].items()
        )
        return f"{pairs} ({mark(r['verdicts']['signals'])})"

    row("hidden-pass AUC, prompt only → with answer side (raised, every tier)", auc_cell)
    first = next(iter(reports.values()))["headroom"]
    lines += [
        "",
        f"Test returns ({len(first['seeds'])} seeds, {first['episodes']:,} episodes in all; "
        "95% bootstrap intervals):",
        "",
    ]
    lines.append("| policy | " + " | ".join(ids) + " |")
    lines.append("|---|" + "---|" * len(ids))
    names = list(dict.fromkeys(n for r in reports.values() for n in r["headroom"]["policies"]))
    for name in names:

        def cell(r: dict, name: str = name) -> str:
            found = r["headroom"]["policies"].get(name)
            if found is None:
                return "—"
            low, high = found["interval"]
            return f"{found['return']:+.3f} [{low:+.3f}, {high:+.3f}]"

        row(name, cell)
    lines += ["", "Per tier (test table, fresh samples):", ""]
    for env_id in ids:
        lines += [
            f"**{env_id}**",
            "",
            "| tier | hidden pass | public pass | P(hidden fail \\| public pass) | all samples "
            "identical | beats the most expensive on |",
            "|---|---|---|---|---|---|",
        ]
        for tier, t in reports[env_id]["traces"]["tiers"].items():
            lines.append(
                f"| {tier} | {t['hidden_pass']:.3f} | {t['public_pass']:.3f} | "
                f"{t['p_hidden_fail_given_public_pass']:.3f} | {t['all_samples_identical']:.1%} | "
                f"{t['beats_most_expensive_on']:.1%} |"
            )
        fit = reports[env_id]["headroom"]["cascade_fit"]
        lines += [
            "",
            f"Tuned cascade ({fit['rules_tried']} rules on {fit['episodes']} train episodes): "
            f"{fit['rule']['label']} (train return {fit['train_return']:+.3f}).",
            "",
        ]
    lines.append("Generated by `python benchmarks/benchmark_health.py` (make demo).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=list(BENCH_DIRS), choices=list(BENCH_DIRS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    reports = {}
    for env_id in args.env:
        suite = suite_of(env_id)
        report = {
            "env_id": env_id,
            "traces": trace_properties(suite),
            "signals": signal_auc(suite),
            "headroom": headroom(env_id, BENCH_DIRS[env_id]),
        }
        report["verdicts"] = verdicts(report)
        reports[env_id] = report
        print(env_id, json.dumps(report["verdicts"]))
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"targets": TARGETS, "command": "python benchmarks/benchmark_health.py", **reports}
    (args.out / "health.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / "health.md").write_text(markdown(reports))
    print(markdown(reports))


if __name__ == "__main__":
    main()
