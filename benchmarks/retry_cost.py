"""What a retry costs: context, FLOPs and latency per repair round and tier, and whether REPAIR
beats a fresh attempt at equal compute.

    python benchmarks/retry_cost.py [--split test] [--latency-samples 32]

Reads the shipped trace table (context and new tokens, FLOPs, outcomes of every recorded
attempt) and times real single-attempt generation (batch of one, CPU) on recorded contexts of
each round, measuring the KV cache that generation holds at its end (the keys and values of
every layer, read off the cache tensors themselves): how memory grows with each retry, beside
tokens and wall time. Writes ``benchmarks/results/retry_cost.{json,md}``.

REPAIR vs fresh compares, on the same (task, tier) pairs, the r-th repair of a sample whose
previous round failed its public tests with a fresh sample of the same tier that was not
looked at before: pass rates on the hidden tests, FLOPs per attempt, and hidden passes per
GFLOP. A fresh attempt is drawn blind (its predecessor's outcome is not used), so it answers
"should the allocator repair, or sample again?".
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from occ_gym.tasks.synthetic import problem_for
from occ_gym.tiers.nano import TIER_NAMES, NanoModel, repair_context
from occ_gym.tiers.nano_tier import traces_path
from occ_gym.traces.table import TraceTable, read_table

RESULTS = Path(__file__).resolve().parent / "results"


def round_costs(columns: dict, model: NanoModel) -> list[dict]:
    """Mean context, new tokens and FLOPs per repair round, with the attention share."""
    rows = []
    config = model.config
    for repair_round in sorted(set(columns["repair_round"])):
        chosen = [
            i
            for i, (tier, r) in enumerate(
                zip(columns["tier"], columns["repair_round"], strict=True)
            )
            if tier == model.name and r == repair_round
        ]
        if not chosen:
            continue
        context = float(np.mean([columns["context_tokens"][i] for i in chosen]))
        new = float(np.mean([columns["new_tokens"][i] for i in chosen]))
        flops = float(np.mean([columns["flops"][i] for i in chosen]))
        fed = context + new - 1
        attention = 4 * config.d_model * config.n_layers * fed * (fed + 1) / 2
        rows.append(
            {
                "tier": model.name,
                "repair_round": repair_round,
                "attempts": len(chosen),
                "context_tokens": round(context, 1),
                "new_tokens": round(new, 1),
                "mflops": round(flops / 1e6, 2),
                "attention_share": round(attention / flops, 4),
            }
        )
    return rows


class CacheMeter:
    """Forward hooks on a model's blocks that keep the largest KV cache one generation held:
    the bytes of every block's key and value tensors, summed over blocks."""

    def __init__(self, model: NanoModel):
        self.current: dict[int, int] = {}
        self.peak = 0
        for index, block in enumerate(model.network.blocks):
            block.register_forward_hook(self._hook(index))

    def _hook(self, index: int):
        def record(_module: torch.nn.Module, _inputs: object, output: tuple) -> None:
            keys, values = output[1]
            self.current[index] = keys.nelement() * keys.element_size() + (
                values.nelement() * values.element_size()
            )
            self.peak = max(self.peak, sum(self.current.values()))

        return record

    def start(self) -> None:
        self.current, self.peak = {}, 0


def latency_ms(
    model: NanoModel, table: TraceTable, columns: dict, samples: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Median wall time of one attempt (batch of one) per repair round, on recorded contexts,
    and the median KV cache (KiB) it held at its largest."""
    by_round: dict[int, list[tuple]] = defaultdict(list)
    for key in zip(
        columns["task_id"], columns["tier"], columns["sample"], columns["repair_round"], strict=True
    ):
        if key[1] == model.name and len(by_round[key[3]]) < samples:
            by_round[key[3]].append(key)
    medians, caches = {}, {}
    meter = CacheMeter(model)
    for repair_round, keys in sorted(by_round.items()):
        times, sizes = [], []
        for task_id, tier, sample, _ in keys:
            history = [table.row((task_id, tier, sample, r)) for r in range(repair_round)]
            context = repair_context(
                model.tokenizer,
                problem_for(task_id).prompt,
                [(row.code, row.feedback) for row in history],
                model.context_limit,
            )
            meter.start()
            started = time.perf_counter()
            model.write([context], [repair_round], seeds=[0])
            times.append(1000 * (time.perf_counter() - started))
            sizes.append(meter.peak / 1024)
        medians[repair_round] = round(float(np.median(times)), 2)
        caches[repair_round] = round(float(np.median(sizes)), 1)
    return medians, caches


def repair_versus_fresh(table: TraceTable, columns: dict) -> list[dict]:
    """Per tier: the first repair of a failed sample against another fresh sample of it."""
    samples: dict[tuple[str, str], set[int]] = defaultdict(set)
    for task_id, tier, sample in zip(
        columns["task_id"], columns["tier"], columns["sample"], strict=True
    ):
        samples[(task_id, tier)].add(sample)
    outcome: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for task_id, tier, sample, repair_round in zip(
        columns["task_id"], columns["tier"], columns["sample"], columns["repair_round"], strict=True
    ):
        if repair_round != 1:
            continue
        repair = table.row((task_id, tier, sample, 1))
        other = (sample + 1) % len(samples[(task_id, tier)])
        fresh = table.row((task_id, tier, other, 0))
        for name, row in (("repair", repair), ("fresh", fresh)):
            outcome[tier][f"{name}_pass"].append(row.hidden_passed == row.hidden_total)
            outcome[tier][f"{name}_flops"].append(row.flops)
    rows = []
    for tier in TIER_NAMES:
        data = outcome.get(tier)
        if not data:
            continue
        repair_pass, fresh_pass = np.mean(data["repair_pass"]), np.mean(data["fresh_pass"])
        repair_flops, fresh_flops = np.mean(data["repair_flops"]), np.mean(data["fresh_flops"])
        rows.append(
            {
                "tier": tier,
                "failed_samples": len(data["repair_pass"]),
                "repair_hidden_pass": round(float(repair_pass), 4),
                "fresh_hidden_pass": round(float(fresh_pass), 4),
                "repair_mflops": round(float(repair_flops) / 1e6, 2),
                "fresh_mflops": round(float(fresh_flops) / 1e6, 2),
                "repair_passes_per_gflop": round(float(repair_pass / repair_flops * 1e9), 3),
                "fresh_passes_per_gflop": round(float(fresh_pass / fresh_flops * 1e9), 3),
            }
        )
    return rows


def markdown(costs: list[dict], versus: list[dict], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| tier | repair round | attempts | context tokens | new tokens | MFLOPs | "
        "attention share | latency ms (batch 1) | KV cache KiB (batch 1) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in costs:
        lines.append(
            f"| {row['tier']} | {row['repair_round']} | {row['attempts']} | "
            f"{row['context_tokens']} | {row['new_tokens']} | {row['mflops']} | "
            f"{row['attention_share']:.1%} | {row['latency_ms']} | {row['kv_cache_kib']} |"
        )
    lines += [
        "",
        "REPAIR (first repair of a sample that failed its public tests) against a fresh sample "
        "of the same tier on the same tasks:",
        "",
        "| tier | failed samples | repair hidden pass | fresh hidden pass | repair MFLOPs | "
        "fresh MFLOPs | repair passes/GFLOP | fresh passes/GFLOP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in versus:
        lines.append(
            f"| {row['tier']} | {row['failed_samples']} | {row['repair_hidden_pass']:.3f} | "
            f"{row['fresh_hidden_pass']:.3f} | {row['repair_mflops']} | {row['fresh_mflops']} | "
            f"{row['repair_passes_per_gflop']} | {row['fresh_passes_per_gflop']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--latency-samples", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = traces_path(args.split)
    table, columns = TraceTable.read(path), read_table(path).to_pydict()
    costs = []
    for name in TIER_NAMES:
        model = NanoModel.load(name)
        latencies, caches = latency_ms(model, table, columns, args.latency_samples)
        for row in round_costs(columns, model):
            r = row["repair_round"]
            costs.append({**row, "latency_ms": latencies.get(r), "kv_cache_kib": caches.get(r)})
    versus = repair_versus_fresh(table, columns)
    command = f"python benchmarks/retry_cost.py --split {args.split}"
    report = {"command": command, "threads": 1, "round_costs": costs, "repair_vs_fresh": versus}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retry_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(costs, versus, command)
    (RESULTS / "retry_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
