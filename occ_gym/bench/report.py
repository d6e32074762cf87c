"""``occ-gym report RESULTS_DIR``: the leaderboard, Pareto plot and findings of a bench run,
rendered from its ``results.json`` alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from occ_gym.bench.findings import render_findings

RESULTS_FILE = "results.json"
OUTPUTS = ("leaderboard.md", "points.md", "findings.md", "pareto.png")

Format = Callable[[float], str]


def _number(fmt: str) -> Format:
    # round away float noise first, so that a zero never prints as -0.00
    return lambda value: fmt.format(round(value, 9) + 0.0)


ENTRY_COLUMNS: tuple[tuple[str, str, Format, bool], ...] = (
    ("hidden pass", "hidden_pass", _number("{:.3f}"), True),
    ("public pass", "public_pass", _number("{:.3f}"), False),
    ("compute", "compute", _number("{:.0f}"), True),
    ("tokens", "tokens", _number("{:.0f}"), False),
    ("wall ms", "wall_ms", _number("{:.0f}"), False),
    ("return", "return", _number("{:+.3f}"), True),
    ("abstain", "abstained", _number("{:.3f}"), False),
    ("regret", "regret", _number("{:.3f}"), True),
    ("ΔIBC", "delta_ibc", _number("{:+.2f}"), True),
)
"""Leaderboard columns: heading, metric, format, whether the cell shows its interval."""
CURVE_COLUMNS: tuple[tuple[str, str, Format], ...] = (
    ("AIQ", "aiq", _number("{:.3f}")),
    ("APGR", "apgr", _number("{:.3f}")),
    ("CPT(50%)", "cpt50", _number("{:.2f}")),
    ("CPT(80%)", "cpt80", _number("{:.2f}")),
    ("CPT(95%)", "cpt95", _number("{:.2f}")),
    ("cost cut", "cost_cut", _number("{:+.1%}")),
)


class ReportError(ValueError):
    """A results folder without a readable ``results.json``."""


def load_results(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ReportError(f"no {RESULTS_FILE} in {folder} (run occ-gym bench --out)") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(results, dict):
        raise ReportError(f"{path} is not a bench result (not a JSON object)")
    missing = {"entries", "curves", "findings", "command"} - set(results)
    if missing:
        raise ReportError(f"{path} is not a bench result (missing {sorted(missing)})")
    return results


def _cell(metric: dict[str, Any], fmt: Format, interval: bool, compact: bool = False) -> str:
    """``mean (low, high)``, or ``mean ±half-width`` when compact; — for a missing value."""
    if metric["mean"] is None:
        return "—"
    text = fmt(metric["mean"])
    low, high = metric["ci"]
    if not interval or (low is None and high is None):
        return text
    if compact:
        return text + (f" ±{fmt((high - low) / 2).lstrip('+')}" if None not in (low, high) else "")
    ends = ["—" if end is None else fmt(end) for end in (low, high)]
    text += f" ({ends[0]}, {ends[1]})"
    if "defined_resamples" in metric:  # an interval over only the resamples where it exists
        text += f" [defined in {metric['defined_resamples']} resamples]"
    return text


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|---" + "|---:" * (len(headings) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def entry_table(results: dict[str, Any], headline: bool | None = True) -> str:
    """The policies' table (headline entries, or every entry when ``headline`` is None)."""
    rows = [
        [entry["label"]]
        + [_cell(entry["metrics"][key], fmt, ci) for _, key, fmt, ci in ENTRY_COLUMNS]
        for entry in results["entries"]
        if headline is None or entry["headline"] == headline
    ]
    return _table(["policy", *(heading for heading, *_ in ENTRY_COLUMNS)], rows)


def console_table(results: dict[str, Any]) -> Table:
    """The headline entries for a terminal: mean ± half the 95% interval."""
    table = Table(title=f"{results['env_id']}, {results['split']} split")
    table.add_column("policy", no_wrap=True)
    for heading, *_ in ENTRY_COLUMNS:
        table.add_column(heading, justify="right", no_wrap=True)
    for entry in results["entries"]:
        if entry["headline"]:
            table.add_row(
                entry["label"],
                *(
                    _cell(entry["metrics"][k], fmt, ci, compact=True)
                    for _, k, fmt, ci in ENTRY_COLUMNS
                ),
            )
    return table


def curve_table(results: dict[str, Any]) -> str:
    rows = [
        [
            f"{curve['family']}" + (f" over {curve['knob']}" if curve["knob"] else ""),
            str(len(curve["points"])),
        ]
        + [_cell(curve["metrics"][key], fmt, True) for _, key, fmt in CURVE_COLUMNS]
        for curve in results["curves"]
    ]
    return _table(["policy", "points", *(heading for heading, *_ in CURVE_COLUMNS)], rows)


def render_leaderboard(results: dict[str, Any]) -> str:
    seeds = results["seeds"]
    episodes = results["episodes"] * len(seeds)
    low, high = results["cost_range"]
    seeded = [e["label"] for e in results["entries"] if e.get("training_seeds", 1) > 1]
    across = (
        f" Rows over several training seeds ({', '.join(seeded)}) play training seed k in "
        "evaluation block k; their brackets are 95% t-intervals across the blocks."
        if seeded
        else ""
    )
    return "\n".join(
        [
            f"**{results['env_id']}, {results['split']} split.** "
            f"{len(seeds)} seeds x {results['episodes']} problems (evaluation seeds "
            f"{', '.join(map(str, seeds))}), compute weight λ = {results['compute_penalty']:g}. "
            f"Command: `{results['command']}`; cfg_hash `{results['cfg_hash']}`, env_hash "
            f"`{results['env_hash']}`. Each cell is the mean over {episodes} episodes and, in "
            "brackets, its 95% bootstrap interval. Compute is in cost units; regret is the "
            f"hindsight oracle's return minus the policy's; ΔIBC (AutoMix) is against "
            f"{results['weak']} → {results['strong']}." + across,
            "",
            entry_table(results),
            "**Cost-quality curves.** Each policy traced over its knob (tier, retry count, cascade "
            "depth, or the λ it was trained at). AIQ (RouterBench): the area under the "
            "non-decreasing convex hull of its "
            f"points over compute {low:.0f} to {high:.0f}, divided by that range. APGR and "
            f"CPT (RouteLLM): against {results['weak']} → {results['strong']}; CPT is the share of "
            "that cost gap spent to recover 50/80/95% of the quality gap. Cost cut (FrugalGPT): "
            f"compute saved at {results['reference']}'s hidden pass (— where the hull never "
            "reaches it). Every point of every curve is in points.md, the curves in pareto.png, "
            "and what they show in findings.md.",
            "",
            curve_table(results),
        ]
    )


def render_points(results: dict[str, Any]) -> str:
    """Every entry: each policy at each setting of its knob."""
    return (
        f"**Every point of {results['env_id']}, {results['split']} split** "
        f"(`{results['command']}`):\n\n{entry_table(results, headline=None)}"
    )


def plot_pareto(results: dict[str, Any], path: Path) -> None:
    """Compute against hidden pass: one curve per policy over its knob (its leaderboard
    setting ringed), and the oracle's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(figsize=(9, 5.5))
    families: dict[str, list[dict[str, Any]]] = {}
    for entry in results["entries"]:
        families.setdefault(entry["family"], []).append(entry)
    colors = plt.get_cmap("tab10")
    for index, (family, entries) in enumerate(families.items()):
        entries = sorted(entries, key=lambda e: e["metrics"]["compute"]["mean"])
        x, xerr = _with_errors(entries, "compute")
        y, yerr = _with_errors(entries, "hidden_pass")
        oracle = family == results["oracle"]
        axes.errorbar(
            x,
            y,
            xerr=xerr,
            yerr=yerr,
            label=family,
            color="black" if oracle else colors(index % 10),
            marker="*" if oracle else "o",
            markersize=10 if oracle else 5,
            linestyle=":" if oracle else "-",
            linewidth=1.2,
            capsize=2,
        )
        headline = [(px, py) for px, py, e in zip(x, y, entries, strict=True) if e["headline"]]
        if len(entries) > 1 and headline:
            headline_x, headline_y = zip(*headline, strict=True)
            axes.scatter(
                headline_x,
                headline_y,
                s=120,
                facecolors="none",
                edgecolors="black" if oracle else colors(index % 10),
                linewidths=1.2,
                zorder=3,
            )
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(ScalarFormatter())
    axes.tick_params(axis="x", which="both", labelsize=7)
    axes.set_xlabel("mean compute per problem (cost units, log scale)")
    axes.set_ylabel("hidden-test pass rate")
    axes.set_title(
        f"{results['env_id']}, {results['split']} split: cost vs quality "
        f"({len(results['seeds'])} seeds x {results['episodes']} problems, 95% intervals)",
        fontsize=10,
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.text(0.01, 0.01, results["command"], fontsize=6, color="gray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _with_errors(
    entries: list[dict[str, Any]], metric: str
) -> tuple[list[float], list[list[float]]]:
    """Means and their distances to the interval's ends (0 where the mean sits on an end)."""
    means = [e["metrics"][metric]["mean"] for e in entries]
    below = [
        max(0.0, m - e["metrics"][metric]["ci"][0]) for m, e in zip(means, entries, strict=True)
    ]
    above = [
        max(0.0, e["metrics"][metric]["ci"][1] - m) for m, e in zip(means, entries, strict=True)
    ]
    return means, [below, above]


def write_report(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``leaderboard.md``, ``points.md``, ``findings.md`` and ``pareto.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(render_leaderboard(results))
    (out / "points.md").write_text(render_points(results))
    (out / "findings.md").write_text(render_findings(results))
    plot_pareto(results, out / "pareto.png")
    return [out / name for name in OUTPUTS]
