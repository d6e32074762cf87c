"""Trace tables: the shipped ones validate, damaged ones fail clearly, recording resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from occ_gym.attempt import ANSWER_FIELDS, OUTCOME_FIELDS
from occ_gym.tiers.nano import MAX_NEW_TOKENS
from occ_gym.tiers.nano_tier import traces_path
from occ_gym.tiers.suites import V0_SUITE
from occ_gym.traces.record import RecordPlan, record
from occ_gym.traces.table import (
    FLOPS_PER_COST_UNIT,
    KEY_COLUMNS,
    TRACE_SCHEMA,
    TRACE_VERSION,
    TraceError,
    TraceTable,
    read_table,
    write_table,
)

CONTEXT_LIMIT = 512 - MAX_NEW_TOKENS
SMALL_PLAN = RecordPlan(
    split="test", tasks=6, tiers=("cheap",), samples=2, repair_rounds=1, chunk_size=2
)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_tables_follow_the_schema(split):
    table = read_table(traces_path(split))
    assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in TRACE_SCHEMA]
    columns = table.to_pydict()
    assert set(columns["tier"]) == {"cheap", "medium", "expensive"}
    assert set(columns["sample"]) == set(range(V0_SUITE.samples))
    assert set(columns["kind"]) == {"fresh", "repair"}
    for kind, repair_round in zip(columns["kind"], columns["repair_round"], strict=True):
        assert (kind == "fresh") == (repair_round == 0)
    assert min(columns["flops"]) > 0
    assert all(
        p <= t for p, t in zip(columns["hidden_passed"], columns["hidden_total"], strict=True)
    )


def test_a_repair_row_exists_only_after_a_public_failure():
    table = TraceTable.read(traces_path("test"))
    columns = read_table(traces_path("test")).to_pydict()
    for task, tier, sample, repair_round in zip(*(columns[c] for c in KEY_COLUMNS), strict=True):
        if repair_round:
            parent = table.row((task, tier, sample, repair_round - 1))
            assert parent is not None and parent.public_passed < parent.public_total
            child = table.row((task, tier, sample, repair_round))
            # The context grows, until the oldest failures are left out to fit the block.
            assert child.context_tokens > parent.context_tokens or (
                child.context_tokens > CONTEXT_LIMIT - 200
            )
            assert child.context_tokens <= CONTEXT_LIMIT


def test_attempt_arrays_equal_the_rows_attempts():
    """The vector env's outcome arrays, computed on the columns, equal each row's ``attempt()``
    (and are nan exactly where the table has no row)."""
    table = TraceTable.read(traces_path("test"))
    task_ids = [*table.task_ids()[:120], "not/a-task"]
    arrays = table.attempt_arrays("medium", task_ids, V0_SUITE.samples, 3)
    rows = 0
    for t, task_id in enumerate(task_ids):
        for sample in range(V0_SUITE.samples):
            for repair_round in range(3):
                row = table.row((task_id, "medium", sample, repair_round))
                got = {name: arrays[name][t, sample, repair_round] for name in arrays}
                if row is None:
                    assert all(np.isnan(v) for v in got.values()), (task_id, sample)
                    continue
                rows += 1
                attempt = row.attempt()
                for name, value in got.items():
                    expected = getattr(attempt, name)
                    assert value == expected or (np.isnan(value) and np.isnan(expected)), name
    assert rows > 400
    assert set(arrays) == {*OUTCOME_FIELDS, *ANSWER_FIELDS}


def test_truncated_and_corrupt_files_fail_naming_the_file(tmp_path):
    source = traces_path("test").read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(source[: len(source) // 2])
    with pytest.raises(TraceError, match=r"truncated\.parquet"):
        TraceTable.read(truncated)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1" + os.urandom(4096) + b"PAR1")
    with pytest.raises(TraceError, match=r"garbage\.parquet"):
        read_table(garbage)
    with pytest.raises(TraceError, match=r"absent\.parquet"):
        read_table(tmp_path / "absent.parquet")


def test_wrong_schema_and_repeated_keys_are_refused(tmp_path):
    table = read_table(traces_path("test")).slice(0, 10)
    renamed = tmp_path / "renamed.parquet"
    pq.write_table(table.rename_columns([*table.column_names[:-1], "notes"]), renamed)
    with pytest.raises(TraceError, match=r"renamed\.parquet"):
        read_table(renamed)
    repeated = tmp_path / "repeated.parquet"
    write_table(pa.concat_tables([table, table.slice(0, 1)]), repeated)
    with pytest.raises(TraceError, match="repeats"):
        read_table(repeated)
    unknown_kind = tmp_path / "unknown_kind.parquet"
    kinds = pa.array(["retry"] * table.num_rows)
    write_table(table.set_column(table.schema.get_field_index("kind"), "kind", kinds), unknown_kind)
    with pytest.raises(TraceError, match="unknown values"):
        read_table(unknown_kind)
    unversioned = tmp_path / "unversioned.parquet"
    pq.write_table(table.replace_schema_metadata({}), unversioned)
    with pytest.raises(TraceError, match="version"):
        read_table(unversioned)


def _rows(path: Path) -> list[tuple]:
    table = read_table(path).drop_columns(["wall_ms", "verify_ms"])
    return sorted(zip(*table.to_pydict().values(), strict=True))


def test_record_killed_with_sigkill_resumes_to_the_same_rows(tmp_path, verifier):
    reference = record(SMALL_PLAN, tmp_path / "reference.parquet", verifier=verifier)
    assert set(read_table(reference).column("context_dropped").to_pylist()) == {0}
    interrupted = tmp_path / "interrupted.parquet"
    script = (
        "from pathlib import Path; from occ_gym.traces.record import RecordPlan, record; "
        f"record(RecordPlan(**{SMALL_PLAN.__dict__!r}), Path({str(interrupted)!r}))"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    parts = interrupted.with_name(interrupted.name + ".parts")
    deadline = time.monotonic() + 120
    while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = list(parts.glob("part-*.parquet"))
    assert 1 <= len(written) < SMALL_PLAN.chunks, "the kill must land mid-recording"
    record(SMALL_PLAN, interrupted, verifier=verifier)
    assert not parts.exists()
    assert _rows(interrupted) == _rows(reference)


def test_record_refuses_parts_of_another_plan(tmp_path, verifier):
    out = tmp_path / "t.parquet"
    parts = out.with_name(out.name + ".parts")
    parts.mkdir()
    (parts / "plan.json").write_text('{"split": "train"}')
    with pytest.raises(ValueError, match="different plan or models"):
        record(SMALL_PLAN, out, verifier=verifier)


def test_record_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tasks"):
        RecordPlan(split="test", tasks=0)
    with pytest.raises(ValueError, match="unknown tiers"):
        RecordPlan(split="test", tasks=1, tiers=("huge",))


def test_record_refuses_to_run_without_out(capsys):
    """Without --out, record used to overwrite the shipped table the env and results rest on."""
    from occ_gym.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["record", "--split", "test", "--tasks", "1"])
    assert raised.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_a_repair_context_drops_its_oldest_failures_to_fit():
    from occ_gym.resources import MODELS_DIR
    from occ_gym.tiers.nano_card import fit_repair_context, read_card

    _, tokenizer, _ = read_card(MODELS_DIR / "cheap")
    failures = [(f"    return {k}\n", f"expected {k + 1}") for k in range(4)]
    whole, none_dropped = fit_repair_context(tokenizer, "def f(x):", failures)
    assert none_dropped == 0
    head = len(fit_repair_context(tokenizer, "def f(x):", [])[0])
    turn = (len(whole) - head) // 4
    for limit, dropped in ((len(whole), 0), (len(whole) - 1, 1), (head + turn, 3), (1, 3)):
        context, cut = fit_repair_context(tokenizer, "def f(x):", failures, limit)
        assert cut == dropped, limit
        assert context == whole[:head] + whole[head + cut * turn :]  # the latest always stays


def test_an_older_table_reads_context_dropped_as_not_recorded_and_upgrades_exactly(tmp_path):
    """OCC-Code-v0's version 2 tables read with -1; the upgrade rebuilds each repair context
    from the recorded candidates and feedback, finds the ones cut to the window, and refuses a
    table whose recorded context lengths it cannot reproduce."""
    from occ_gym.traces.upgrade import upgrade_file

    assert set(read_table(traces_path("test")).column("context_dropped").to_pylist()) == {-1}
    path = tmp_path / "v0-test.parquet"
    path.write_bytes(traces_path("test").read_bytes())
    cut = upgrade_file(path)
    table = read_table(path)
    assert table.schema.metadata[b"occ_gym.trace_version"] == TRACE_VERSION.encode()
    assert b"occ_gym.upgraded_from" not in table.schema.metadata
    flops = table.column("flops").to_pylist()
    assert table.column("cost").to_pylist() == [f / FLOPS_PER_COST_UNIT for f in flops]
    dropped = table.column("context_dropped").to_pylist()
    rounds = table.column("repair_round").to_pylist()
    assert min(dropped) == 0 and cut == sum(d > 0 for d in dropped) > 0
    assert all(d == 0 or d < r for d, r in zip(dropped, rounds, strict=True))
    assert upgrade_file(path) == 0  # already current: left as it is
    tampered = tmp_path / "tampered.parquet"
    column = table.schema.get_field_index("context_tokens")
    lengths = pa.array([n + 1 for n in table.column("context_tokens").to_pylist()], pa.int32())
    stale = table.set_column(column, TRACE_SCHEMA.field("context_tokens"), lengths)
    metadata = {**stale.schema.metadata, b"occ_gym.trace_version": b"3"}
    older = stale.drop_columns(["context_dropped", "cost"])
    write_table(older.replace_schema_metadata(metadata), tampered)
    with pytest.raises(TraceError, match="rebuilt context"):
        upgrade_file(tampered)
    assert read_table(tampered).schema.metadata[b"occ_gym.upgraded_from"] == b"3"


def test_context_dropped_must_fit_its_round(tmp_path):
    table = read_table(traces_path("test")).slice(0, 10)
    rounds = table.column("repair_round").to_pylist()
    bad = tmp_path / "bad.parquet"
    values = pa.array([r + 1 for r in rounds], pa.int8())
    column = table.schema.get_field_index("context_dropped")
    broken = table.set_column(column, TRACE_SCHEMA.field("context_dropped"), values)
    metadata = {**broken.schema.metadata, b"occ_gym.trace_version": b"4"}
    write_table(broken.replace_schema_metadata(metadata), bad)
    with pytest.raises(TraceError, match="context_dropped"):
        read_table(bad)
