"""Bring your own models and tasks: task packs, pool files, and recording through a real
``occ-gym serve`` with the endpoint tier (the official ``openai`` client over real HTTP)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from occ_gym.resources import MODELS_DIR
from occ_gym.tasks.pack import PackError, humaneval_pack, read_pack, synthetic_pack, write_pack
from occ_gym.tiers.endpoint import EndpointError, EndpointWriter
from occ_gym.tiers.nano_card import read_card, repair_context
from occ_gym.tiers.pool import PoolError, PoolSpec, TierSpec, read_pool
from occ_gym.tiers.writing import AttemptRequest
from occ_gym.traces.record import RecordIncomplete, record_pool
from occ_gym.traces.recording import TRACES_FILE
from tests.helpers import SERVED_TIERS, endpoint_tier, free_port, pool_of, served

TIERS = SERVED_TIERS
KEY = ("task_id", "tier", "sample", "repair_round")
RECORDED_EQUAL = (
    "code",
    "kind",
    "context_tokens",
    "new_tokens",
    "flops",
    "public_passed",
    "public_total",
    "hidden_passed",
    "hidden_total",
    "exit_kind",
    "hidden_exit_kind",
    "error_kind",
    "feedback",
    "context_dropped",
    "cost",
)


def nano_pool() -> PoolSpec:
    return pool_of(*(TierSpec(name, "nano", name, temperature=0.8) for name in TIERS))


def rows(folder: Path) -> dict[tuple, dict]:
    """The rows of the recording in ``folder``, by key."""
    table = pq.read_table(folder / TRACES_FILE)
    return {tuple(r[k] for k in KEY): r for r in table.to_pylist()}


def assert_same_attempts(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for key, row in ours.items():
        for column in RECORDED_EQUAL:
            assert row[column] == theirs[key][column], (key, column)
        # Float rounding differs between batch sizes (the direct record writes 64 at a time).
        for column in ("logprob_mean", "logprob_min"):
            assert math.isclose(row[column], theirs[key][column], abs_tol=1e-4), (key, column)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with served() as (url, _):
        yield url


@pytest.fixture(scope="module")
def small_pack() -> list:
    return synthetic_pack("test", 4)


@pytest.fixture(scope="module")
def direct(tmp_path_factory, small_pack, verifier) -> dict:
    out = tmp_path_factory.mktemp("direct")
    record_pool(nano_pool(), small_pack, out, samples=2, repair_rounds=1, verifier=verifier)
    return rows(out)


# ---------------------------------------------------------------- task packs


def test_a_synthetic_pack_round_trips_and_keeps_ids_prompts_and_tests(tmp_path):
    problems = synthetic_pack("test", 5, "synthetic-v1")
    back = read_pack(write_pack(problems, tmp_path / "pack.jsonl"))
    assert back == problems
    assert back[0].task_id == "synthetic-v1/test/0"


def test_humaneval_is_a_pack_with_docstring_examples_public_and_check_hidden(tmp_path):
    from occ_gym.tasks.humaneval import load_humaneval

    problems = humaneval_pack()
    assert len(problems) == 114  # as docs/pools.md says
    assert all(p.public_tests and p.hidden_total >= 1 for p in problems)
    first = next(p for p in problems if p.task_id == "HumanEval/0")
    assert first.public_tests[0].args == ([1.0, 2.0, 3.0], 0.5)
    assert first.hidden_tests == load_humaneval()[0].tests
    assert read_pack(write_pack(problems, tmp_path / "he.jsonl")) == problems


def test_the_reference_solutions_pass_every_public_and_hidden_test_of_the_humaneval_pack(
    verifier,
):
    from occ_gym.tasks.humaneval import load_humaneval

    reference = {p.task_id: p.canonical_solution for p in load_humaneval()}
    problems = humaneval_pack()[:12]
    candidates = [p.candidate(reference[p.task_id]) for p in problems]
    candidates += [p.candidate(reference[p.task_id], hidden=True) for p in problems]
    assert all(v.passed for v in verifier.verify_many(candidates))


GOOD = {
    "task_id": "t0",
    "prompt": "def f(x):\n",
    "entry_point": "f",
    "public_tests": [{"args": "(1,)", "expected": "2"}],
    "hidden_tests": [{"args": "((1, 2),)", "expected": "{3}"}],
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"prompt": None}, "field prompt"),
        ({"entry_point": "not a name"}, "field entry_point"),
        ({"public_tests": []}, "field public_tests"),
        ({"hidden_tests": [{"args": "[1]"}]}, "field hidden_tests[0].args"),
        ({"hidden_tests": [{"args": "(1,)", "expected": "os.system('x')"}]}, "[0].expected"),
        ({"public_tests": [{"args": "(1,)", "compare": "~"}]}, "field public_tests[0]"),
        ({"hidden_check": "print(1)"}, "field hidden_check"),
        ({"colour": "red"}, "field colour"),
    ],
)
def test_a_bad_pack_line_is_refused_naming_file_line_and_field(tmp_path, change, named):
    bad = {**GOOD, **change}
    bad = {k: v for k, v in bad.items() if v is not None}
    path = tmp_path / "pack.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**bad, "task_id": "t1"}) + "\n")
    with pytest.raises(PackError) as error:
        read_pack(path)
    assert f"{path}, line 2" in str(error.value)
    assert named in str(error.value)


def test_a_pack_that_is_not_json_or_repeats_an_id_is_refused(tmp_path):
    path = tmp_path / "pack.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(PackError, match="line 2: not a JSON object"):
        read_pack(path)
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(PackError, match="line 2, field task_id: 't0' repeats line 1"):
        read_pack(path)
    with pytest.raises(PackError, match="cannot read task pack"):
        read_pack(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- pool files

POOL = """cost = "flops"

[[tiers]]
name = "small"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
parameters = 1000
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "line", "named"),
    [
        ('max_tokens = "96"', 8, "field max_tokens: must be of type int"),
        ('template = "fancy"', 8, "field template"),
        ("colour = 1", 8, "field colour: unknown"),
        ("layers = 4", 8, "field layers: the attention term needs both"),
        ("temperature = -1.0", 8, "field temperature: must be finite, >= 0"),
    ],
)
def test_a_bad_pool_field_is_refused_naming_file_line_and_field(tmp_path, extra, line, named):
    path = tmp_path / "pool.toml"
    path.write_text(POOL.format(extra=extra))
    with pytest.raises(PoolError) as error:
        read_pool(path)
    assert f"{path}, line {line}, {named}" in str(error.value)


def test_an_unpriced_endpoint_or_a_repeated_tier_is_refused(tmp_path):
    path = tmp_path / "pool.toml"
    path.write_text(POOL.format(extra="").replace("parameters = 1000\n", ""))
    with pytest.raises(PoolError, match=r"line 3, field parameters: cost = 'flops' needs"):
        read_pool(path)
    path.write_text(POOL.format(extra="").replace('"flops"', '"price"'))
    with pytest.raises(PoolError, match="field input_price: cost = 'price' needs"):
        read_pool(path)
    path.write_text(POOL.format(extra="") + "\n" + POOL.format(extra="").split("\n", 2)[2])
    with pytest.raises(PoolError, match="line 11, field name: tier name 'small' repeats"):
        read_pool(path)


def test_an_unset_key_variable_fails_before_any_request(tmp_path, small_pack, monkeypatch):
    monkeypatch.delenv("OCC_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "pool.toml"
    # Port 9 (discard) has no server: a request would fail differently, and later.
    path.write_text(POOL.format(extra='api_key_env = "OCC_TEST_UNSET_KEY"'))
    pool = read_pool(path)
    with pytest.raises(PoolError, match="OCC_TEST_UNSET_KEY that should hold its API key"):
        record_pool(pool, small_pack, tmp_path)
    assert not (tmp_path / "traces.parquet.parts").exists()
    assert "OCC_TEST_UNSET_KEY" in json.dumps(pool.identity())


# ---------------------------------------------------------------- through the server


def test_recording_through_the_server_equals_recording_the_nano_tiers_directly(
    server, small_pack, direct, tmp_path, verifier
):
    out = tmp_path
    pool = pool_of(*(endpoint_tier(name, server) for name in TIERS))
    record_pool(pool, small_pack, out, samples=2, repair_rounds=1, chunk_size=3, verifier=verifier)
    through = rows(out)
    assert_same_attempts(through, direct)
    assert any(r["kind"] == "repair" for r in through.values())
    assert all(math.isfinite(r["logprob_mean"]) for r in through.values())
    metadata = pq.read_schema(out / TRACES_FILE).metadata
    assert json.loads(metadata[b"occ_gym.tiers"]) == list(TIERS)
    assert metadata[b"occ_gym.cost_unit"] == b"1e6 FLOPs"


def test_the_chat_template_reaches_the_same_context_as_the_nano_template(
    server, small_pack, direct, tmp_path, verifier
):
    out = tmp_path
    pool = pool_of(endpoint_tier("cheap", server, template="chat"))
    record_pool(pool, small_pack, out, samples=2, repair_rounds=1, verifier=verifier)
    assert_same_attempts(rows(out), {k: r for k, r in direct.items() if k[1] == "cheap"})


def test_a_few_humaneval_problems_record_through_the_server(server, tmp_path, verifier):
    _, tokenizer, _ = read_card(MODELS_DIR / "cheap")
    short = [p for p in humaneval_pack() if len(repair_context(tokenizer, p.prompt, [])) < 300]
    out = tmp_path
    pool = pool_of(endpoint_tier("cheap", server))
    record_pool(pool, short[:3], out, samples=1, repair_rounds=1, verifier=verifier)
    table = rows(out)
    assert {k[0] for k in table} == {p.task_id for p in short[:3]}
    for problem in short[:3]:
        row = table[(problem.task_id, "cheap", 0, 0)]
        assert row["public_total"] == len(problem.public_tests)
        assert row["hidden_total"] == problem.hidden_total
        assert row["new_tokens"] >= 1 and math.isfinite(row["logprob_min"])


def test_a_server_killed_mid_recording_resumes_to_the_same_rows(
    small_pack, direct, tmp_path, verifier
):
    out, port = tmp_path, free_port()
    with served(port=port) as (url, process):
        pool = pool_of(*(endpoint_tier(n, url, max_retries=1, timeout_s=5.0) for n in TIERS))

        def kill_after_the_first_chunk(done: int, total: int) -> None:
            if done == 1:
                process.kill()
                process.wait()

        with pytest.raises(RecordIncomplete, match="1 of 2 chunks were not recorded"):
            record_pool(
                pool,
                small_pack,
                out,
                samples=2,
                repair_rounds=1,
                chunk_size=2,
                verifier=verifier,
                progress=kill_after_the_first_chunk,
            )
    assert not (out / TRACES_FILE).exists()
    assert (tmp_path / "traces.parquet.parts" / "part-00000.parquet").exists()
    with served(port=port):
        record_pool(pool, small_pack, out, 2, 1, chunk_size=2, verifier=verifier)
    assert_same_attempts(rows(out), direct)
    assert not (tmp_path / "traces.parquet.parts").exists()


def written(url: str, **settings) -> object:
    spec = endpoint_tier("cheap", url, **settings)
    problem = synthetic_pack("test", 1)[0]
    return EndpointWriter(spec, pool_of(spec)).write([AttemptRequest(problem, 0)])[0]


@pytest.mark.parametrize("status", ["500", "429"])
def test_an_endpoint_that_fails_for_a_while_is_retried_to_success(status):
    with served("--fault-status", status, "--fault-count", "2", tiers=("cheap",)) as (url, _):
        attempt = written(url, max_retries=3)
    assert attempt.new_tokens >= 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("flags", "settings", "message"),
    [
        (
            ("--fault-hang-s", "5", "--fault-count", "9"),
            {"timeout_s": 0.5, "max_retries": 1},
            "timed out",
        ),
        (("--fault-malformed", "--fault-count", "9"), {}, "malformed answer"),
        (("--served-name", "other"), {}, "the server answered as model 'other'"),
        (("--fault-status", "500", "--fault-count", "9"), {"max_retries": 1}, "HTTP 500"),
    ],
)
def test_an_endpoint_that_misbehaves_gets_a_clear_error_naming_the_tier(flags, settings, message):
    with served(*flags, tiers=("cheap",)) as (url, _), pytest.raises(EndpointError) as error:
        written(url, **settings)
    assert f"tier cheap ({url}, model cheap)" in str(error.value)
    assert message in str(error.value)


def test_the_cli_exports_a_pack_and_records_a_pool_on_it(server, tmp_path):
    from occ_gym.cli import main

    pack = tmp_path / "pack.jsonl"
    assert main(["pack", "--source", "synthetic-v1", "--tasks", "2", "--out", str(pack)]) == 0
    assert [p.task_id for p in read_pack(pack)] == ["synthetic-v1/test/0", "synthetic-v1/test/1"]
    spec = endpoint_tier("cheap", server)
    lines = "\n".join(
        f"{name} = {json.dumps(getattr(spec, name))}"
        for name in ("name", "kind", "model", "base_url", "template", "temperature", "max_tokens")
    )
    pool = tmp_path / "pool.toml"
    pool.write_text(f"[[tiers]]\n{lines}\nparameters = {spec.parameters}\n")
    out = tmp_path / "run"
    arguments = ["record", "--pool", str(pool), "--tasks", str(pack), "--out", str(out)]
    assert main([*arguments, "--samples", "1", "--repair-rounds", "0"]) == 0
    assert {k[0] for k in rows(out)} == {p.task_id for p in read_pack(pack)}
    assert main(["record", "--tasks", str(pack), "--out", str(out / "x.parquet")]) == 2


def test_seeds_go_out_signed_as_vllm_accepts_them_and_come_back_unsigned():
    from occ_gym.tiers.endpoint import signed_seed

    assert signed_seed(2**64 - 1) == -1
    assert signed_seed(2**63) == -(2**63)
    assert signed_seed(2**63 - 1) == 2**63 - 1
    assert all(-(2**63) <= signed_seed(s) < 2**63 for s in (0, 2**63, 2**64 - 1))


@pytest.mark.parametrize(
    "change",
    [
        {"repair_round": -1},
        {"repair_round": 10**23},
        {"seed": 2**64},
        {"temperature": -0.5},
        {"top_p": 2.0},
        {"n": 2},
        {"prompt": [10**9]},
        {"prompt": ["a", "b"]},
        {"echo": True},
    ],
)
def test_the_server_refuses_what_it_cannot_honour_with_a_400(server, change):
    body = {"model": "cheap", "prompt": "def f(x):\n", "max_tokens": 8, **change}
    request = urllib.request.Request(
        f"{server}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 400
    assert "message" in json.loads(error.value.read())["error"]


def test_a_pack_with_sets_has_the_same_identity_under_any_hash_seed(tmp_path):
    path = tmp_path / "pack.jsonl"
    hidden = [{"args": "({'b', 'a', 'c'},)", "expected": "{'x', 'y'}"}]
    path.write_text(json.dumps({**GOOD, "hidden_tests": hidden}) + "\n")
    script = (
        "import sys; from occ_gym.tasks.pack import read_pack; "
        "from occ_gym.traces.recording import problem_digest_text; "
        "print(problem_digest_text(read_pack(sys.argv[1])[0]))"
    )
    texts = {
        subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(texts) == 1


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('api_key_env = "sk-abc123-secret"', "field api_key_env: must be the NAME"),
        (
            "max_tokens = 99999999999999999999999",
            "field max_tokens: must be finite, >= 0 and < 2**63",
        ),
        ("top_p = 7.0", "field top_p"),
    ],
)
def test_pool_values_that_would_leak_a_key_or_overflow_are_refused(tmp_path, extra, named):
    path = tmp_path / "pool.toml"
    path.write_text(POOL.format(extra=extra).replace("[[tiers]]", "[[tiers]]  # cheapest first"))
    with pytest.raises(PoolError) as error:
        read_pool(path)
    assert f"{path}, line 8, {named}" in str(error.value)
    assert "secret" not in str(error.value)


def test_a_base_url_with_credentials_or_a_cost_that_is_not_a_name_is_refused(tmp_path):
    path = tmp_path / "pool.toml"
    path.write_text(POOL.format(extra="").replace("127.0.0.1:9", "user:secret@127.0.0.1:9"))
    with pytest.raises(PoolError, match="field base_url: holds credentials") as error:
        read_pool(path)
    assert "secret" not in str(error.value)
    path.write_text(POOL.format(extra="").replace('"flops"', '["flops"]'))
    with pytest.raises(PoolError, match="line 1, field cost"):
        read_pool(path)


def test_transport_settings_stay_out_of_the_plan_so_a_resume_may_raise_the_timeout():
    spec = endpoint_tier("cheap", "http://127.0.0.1:9/v1")
    patient = endpoint_tier("cheap", "http://127.0.0.1:9/v1", timeout_s=600.0, max_retries=9)
    assert pool_of(spec).identity() == pool_of(patient).identity()
