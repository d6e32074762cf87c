"""The JSONL event log: schema-valid events per episode, crash safety, reading, summaries."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings
from collections import defaultdict

import gymnasium as gym
import pytest

from occ_gym.baselines import HeuristicOCC, VerifierGuided
from occ_gym.cli import main as cli_main
from occ_gym.evaluation import evaluate
from occ_gym.events import EventLogError, EventLogger, read_events, summarize, validate_event


@pytest.fixture(params=["OCC-Code-v0", "OCC-CodeSim-v0"])
def logged(request, tmp_path):
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make(request.param, split="test"), path, policy_id="VerifierGuided")
    return env, path


def test_every_episode_is_logged_in_order_and_matches_the_schema(logged):
    env, path = logged
    policy = VerifierGuided(env, "cheap", max_tries=3)
    result = evaluate(policy, env, 20, seed=0)
    events = list(read_events(path))  # validates every line
    runs = defaultdict(list)
    for event in events:
        runs[event["run_id"]].append(event)
    assert len(runs) == 20
    returns = []
    for run in runs.values():
        assert run[0]["event"] == "run_start" and run[-1]["event"] == "run_stop"
        assert [e["step_id"] for e in run] == sorted(e["step_id"] for e in run)
        assert {e["task_id"] for e in run} == {run[0]["task_id"]}
        steps = [e for e in run if e["event"] == "step"]
        assert run[-1]["steps"] == len(steps)
        verifies = [e for e in steps if e["action"] == "VERIFY"]
        tool_calls = [e for e in run if e["event"] == "tool_call"]
        assert len(tool_calls) == len(verifies)
        failed = [e for e in tool_calls if e["exit_kind"] != "none"]
        assert len([e for e in run if e["event"] == "failure"]) == len(failed)
        returns.append(run[-1]["return"])
    assert sum(returns) / len(returns) == pytest.approx(result.mean_return)
    starts = [e for e in events if e["event"] == "run_start"]
    assert {e["cfg_hash"] for e in starts} == {env.cfg_hash}
    assert [e["seed"] for e in starts] == list(range(20))


def test_real_failures_carry_the_verifiers_feedback_as_evidence(tmp_path):
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-Code-v0", split="test"), path)
    evaluate(VerifierGuided(env, "cheap", max_tries=3), env, 30, seed=0)
    failures = [e for e in read_events(path) if e["event"] == "failure"]
    assert failures, "the cheap tier fails some public tests in 30 problems"
    assert all(e["evidence"].startswith("Failed") for e in failures)
    assert {e["root"] for e in failures} <= {"syntax/build", "import", "semantic", "timeout"}
    latencies = [e["latency_ms"] for e in read_events(path) if e["event"] == "tool_call"]
    # recorded sandbox times; a candidate the host-side syntax or safety screen rejects never
    # reaches the sandbox and takes 0 ms
    assert sorted(latencies)[len(latencies) // 2] > 0


def test_a_reset_mid_episode_logs_the_abandoned_episode(tmp_path):
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-CodeSim-v0"), path)
    env.reset(seed=0)
    env.step(0)
    env.reset(seed=1)
    env.close()
    stops = [e for e in read_events(path) if e["event"] == "run_stop"]
    assert [s["outcome"] for s in stops] == ["abandoned", "abandoned"]
    assert stops[0]["steps"] == 1 and stops[0]["early_stop_reason"] == "abandoned"


KILLED_WRITER = """
import sys, gymnasium as gym, occ_gym
from occ_gym.baselines import HeuristicOCC
from occ_gym.evaluation import evaluate
from occ_gym.events import EventLogger
env = EventLogger(gym.make("OCC-CodeSim-v0"), sys.argv[1])
policy, seed = HeuristicOCC(env), 0
while True:
    evaluate(policy, env, 10, seed=seed)
    seed += 10
"""


def test_a_run_killed_with_sigkill_leaves_a_readable_log(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().count('"run_stop"') >= 50:
                break
            time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn last line is possible and allowed here
        events = list(read_events(path))
    stops = [e for e in events if e["event"] == "run_stop"]
    starts = [e for e in events if e["event"] == "run_start"]
    assert len(stops) >= 50 and len(starts) == len(stops)  # whole episodes only


def test_a_torn_last_line_is_skipped_with_a_warning_and_a_bad_middle_line_raises(tmp_path):
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-CodeSim-v0"), path)
    evaluate(HeuristicOCC(env), env, 2, seed=0)
    whole = path.read_text()
    path.write_text(whole + '{"event": "step", "run_')
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(list(read_events(path))) == whole.count("\n")
    path.write_text('{"event": "step"\n' + whole)
    with pytest.raises(EventLogError, match=r"events.jsonl:1: not a JSON event"):
        list(read_events(path))


def test_schema_violations_name_the_field():
    event = {"event": "run_stop", "version": 1, "run_id": "r", "task_id": "t", "step_id": 0}
    with pytest.raises(EventLogError, match="'ts' is a required property"):
        validate_event(event)
    event["ts"] = 1.0
    with pytest.raises(EventLogError, match="'success' is a required property"):
        validate_event(event)


def test_summaries_count_the_failure_taxonomy_and_the_cli_prints_them(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-Code-v0", split="test"), path)
    evaluate(VerifierGuided(env, "medium", max_tries=3), env, 25, seed=0)
    events = list(read_events(path))
    summary = summarize(events)
    assert summary["episodes"] == 25
    assert sum(summary["failures"].values()) == sum(e["event"] == "failure" for e in events)
    assert summary["tiers"]["medium"]["calls"] > 0
    assert summary["tiers"]["medium"]["mean_tokens_in"] > 0
    assert cli_main(["events", "summarize", str(path)]) == 0
    assert '"episodes": 25' in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event": "nope"}\n')
    assert cli_main(["events", "validate", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().out


def test_each_repair_of_a_failure_is_logged_with_its_outcome(tmp_path):
    """VerifierGuided repairs a failed candidate until it passes: every REPAIR gets a recovery
    event naming the failure it answers, its place in the chain, and the next VERIFY's verdict."""
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-Code-v1", split="test"), path)
    evaluate(VerifierGuided(env, "cheap", max_tries=3), env, 30, seed=0)
    runs = defaultdict(list)
    for event in read_events(path):
        runs[event["run_id"]].append(event)
    recoveries = 0
    for run in runs.values():
        repairs = [e for e in run if e["event"] == "step" and e["action"] == "REPAIR"]
        recovery = [e for e in run if e["event"] == "recovery"]
        assert len(recovery) == len(repairs)
        failures = {e["step_id"] for e in run if e["event"] == "failure"}
        verdicts = {e["step_id"]: e["exit_kind"] for e in run if e["event"] == "tool_call"}
        for number, event in enumerate(recovery, start=1):
            assert event["failure_step"] in failures and event["attempt"] == number
            if event["outcome"] != "unverified":  # logged at the VERIFY after the repair
                kind = verdicts[event["step_id"]]
                assert event["outcome"] == ("passed" if kind == "none" else "failed")
                assert event["error_kind"] == kind
        recoveries += len(recovery)
    assert recoveries > 0, "the cheap tier fails and repairs in 30 problems"


def test_a_repair_keeps_its_outcome_across_an_illegal_action_and_is_closed_on_reset(tmp_path):
    from occ_gym.wrappers import IllegalActionPenalty

    path = tmp_path / "events.jsonl"
    env = EventLogger(IllegalActionPenalty(gym.make("OCC-Code-v1", split="test"), 0.1), path)
    layout = env.unwrapped.action_layout
    for seed in range(50):  # a task whose cheap candidate fails VERIFY
        env.reset(seed=seed)
        env.step(layout.attempt("cheap"))
        if env.step(layout.verify)[4]["error_kind"] != "none":
            break
    env.step(layout.repair)
    env.step(layout.repair)  # illegal: the repaired candidate is not verified yet
    verdict = env.step(layout.verify)[4]["error_kind"]
    env.step(layout.repair)
    env.reset(seed=0)  # abandons the episode with that repair pending
    env.close()
    run = [e for e in read_events(path) if e["event"] == "recovery"][-2:]
    assert [e["attempt"] for e in run] == [1, 2]
    assert run[0]["outcome"] == ("passed" if verdict == "none" else "failed")
    assert run[0]["error_kind"] == verdict and run[1]["outcome"] == "unverified"


def test_training_writes_a_schema_valid_optimizer_update_per_evaluation(tmp_path):
    from occ_gym.train.ppo import train
    from tests.test_train import tiny_config

    result = train(tiny_config(tmp_path / "run", "OCC-CodeSim-v0", "maskable_ppo"))
    updates = list(read_events(result.out / "events.jsonl"))
    curve = result.record["eval_curve"]
    assert [e["event"] for e in updates] == ["optimizer_update"] * len(curve)
    assert [e["timesteps"] for e in updates] == [p["timesteps"] for p in curve]
    assert [e["metrics"]["mean_return"] for e in updates] == [p["mean_return"] for p in curve]
    assert {e["checkpoint"] for e in updates} == {"last.zip"}
    assert any(e["best"] for e in updates) and updates[0]["config"]["n_steps"] == 64


def test_each_repair_logs_what_its_context_kept(tmp_path):
    """A context_decision per REPAIR: the failed attempts before it, how many its context held
    (v1's tables record the cut: none of its contexts reached the window), and on OCC-Code-v0,
    whose tables predate the column, null for "not recorded"."""
    for env_id, recorded in (("OCC-Code-v1", True), ("OCC-Code-v0", False)):
        path = tmp_path / f"{env_id}.jsonl"
        env = EventLogger(gym.make(env_id, split="test"), path)
        evaluate(VerifierGuided(env, "cheap", max_tries=3), env, 30, seed=0)
        events = list(read_events(path))
        repairs = [e for e in events if e["event"] == "step" and e["action"] == "REPAIR"]
        decisions = [e for e in events if e["event"] == "context_decision"]
        assert len(decisions) == len(repairs) > 0
        for step, decision in zip(repairs, decisions, strict=True):
            assert decision["step_id"] == step["step_id"]
            assert decision["context_tokens"] == step["context_tokens"]
            assert decision["failures_before"] >= 1
            if recorded:
                assert decision["dropped"] == 0
                assert decision["kept"] == decision["failures_before"]
            else:
                assert decision["dropped"] is None and decision["kept"] is None
        assert {d["failures_before"] for d in decisions} >= {1, 2}


def test_a_repair_whose_context_was_cut_logs_what_it_left_out(tmp_path):
    """OCC-Code-v0's table upgraded to record its cuts (the cheap tier's third repairs often
    outgrow the window): the event names the failures kept and dropped."""
    from occ_gym.tiers.nano_tier import traces_path
    from occ_gym.traces.upgrade import upgrade_file

    table = tmp_path / "v0-test.parquet"
    table.write_bytes(traces_path("test").read_bytes())
    upgrade_file(table)
    path = tmp_path / "events.jsonl"
    env = EventLogger(gym.make("OCC-Code-v0", split="test", traces=str(table)), path)
    evaluate(VerifierGuided(env, "cheap", max_tries=4), env, 200, seed=0)
    decisions = [e for e in read_events(path) if e["event"] == "context_decision"]
    cut = [d for d in decisions if d["dropped"]]
    assert cut, "some third repairs of the cheap tier are cut to fit"
    for decision in decisions:
        assert decision["kept"] + decision["dropped"] == decision["failures_before"]
        assert decision["kept"] >= 1
    assert all(d["failures_before"] == 3 for d in cut)
