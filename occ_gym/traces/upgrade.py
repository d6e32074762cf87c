"""Rewrite a nano trace table as the current version: ``python -m occ_gym.traces.upgrade PATH``.

A version 3 table lacks ``context_dropped``. For the nano tiers it is recomputed exactly: each
repair's context is rebuilt from the prompt and the recorded candidates and feedback before it,
cut to the tier's window as ``nano_card.fit_repair_context`` cuts it when recording. A table
where the rebuilt length differs from a row's recorded ``context_tokens`` is refused (it was
recorded with other models or another rule), and nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa

from occ_gym.resources import MODELS_DIR
from occ_gym.tasks.synthetic import problem_for
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS, fit_repair_context, read_card
from occ_gym.traces.table import (
    KEY_COLUMNS,
    TRACE_SCHEMA,
    TRACE_VERSION,
    TraceError,
    read_table,
    write_table,
)


def recomputed_context_dropped(table: pa.Table, models_dir: Path = MODELS_DIR) -> list[int]:
    """Per row, the earlier failed attempts its context left out (``TraceError`` when the
    rebuilt context does not have the recorded length)."""
    columns = table.select([*KEY_COLUMNS, "context_tokens", "code", "feedback"]).to_pydict()
    keys = list(zip(*(columns[name] for name in KEY_COLUMNS), strict=True))
    index = {key: i for i, key in enumerate(keys)}
    windows, prompts, dropped = {}, {}, []
    for i, (task_id, tier, sample, repair_round) in enumerate(keys):
        if tier not in windows:
            config, tokenizer, _ = read_card(models_dir / tier)
            windows[tier] = (tokenizer, config.block_size - MAX_NEW_TOKENS)
        tokenizer, window = windows[tier]
        if task_id not in prompts:
            prompts[task_id] = problem_for(task_id).prompt
        chain = [index[(task_id, tier, sample, r)] for r in range(repair_round)]
        failures = [(columns["code"][j], columns["feedback"][j]) for j in chain]
        context, cut = fit_repair_context(tokenizer, prompts[task_id], failures, window)
        if len(context) != columns["context_tokens"][i]:
            raise TraceError(
                f"{keys[i]}: the rebuilt context has {len(context)} tokens, the row records "
                f"{columns['context_tokens'][i]}: not recorded with these models and this rule"
            )
        dropped.append(cut)
    return dropped


def upgrade_file(path: Path, models_dir: Path = MODELS_DIR) -> int:
    """Rewrite ``path`` as the current trace version; the number of repairs whose context was
    cut. A table already at the current version is left as it is."""
    stored = read_table(path)
    metadata = dict(stored.schema.metadata or {})
    if b"occ_gym.upgraded_from" not in metadata:
        return 0  # already current
    dropped = recomputed_context_dropped(stored, models_dir)
    field = TRACE_SCHEMA.field("context_dropped")
    table = stored.set_column(
        stored.schema.get_field_index("context_dropped"), field, pa.array(dropped, field.type)
    )
    del metadata[b"occ_gym.upgraded_from"]
    metadata[b"occ_gym.trace_version"] = TRACE_VERSION.encode()
    write_table(table.replace_schema_metadata(metadata), path)
    return sum(1 for value in dropped if value > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+")
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    args = parser.parse_args()
    for path in args.paths:
        cut = upgrade_file(path, args.models)
        print(f"{path}: trace version {TRACE_VERSION}, {cut} repair contexts cut to fit")


if __name__ == "__main__":
    main()
