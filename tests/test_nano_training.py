"""The nano training code at toy scale: pretraining steps and the repair stage's mining."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from occ_gym.tasks.synthetic import make_problem
from occ_gym.tiers.nano import MODELS_DIR, NanoModel
from occ_gym.train.nano import (
    RepairStage,
    Schedule,
    TierRecipe,
    fit,
    mine_failures,
    repair_stage,
    train_tier,
)
from occ_gym.train.nano_data import encode_examples
from occ_gym.verifier import Verifier


@pytest.fixture(scope="module")
def cheap() -> NanoModel:
    return NanoModel.load("cheap")


@pytest.fixture(scope="module")
def toy_corpus(cheap):
    problems = [make_problem("models", i) for i in range(64)]
    texts = [{"prompt": p.prompt, "body": p.reference} for p in problems]
    return encode_examples(cheap.tokenizer, texts, max_tokens=448)


def test_a_few_pretraining_steps_lower_the_loss_deterministically(cheap, toy_corpus):
    recipe = TierRecipe(6, name="toy", d_model=32, n_layers=1, n_heads=2, d_ff=64, warmup_steps=1)
    runs = [train_tier(recipe, cheap.tokenizer, toy_corpus, log=lambda _: None) for _ in range(2)]
    (model_a, record_a), (model_b, _) = runs
    curve = record_a["loss_curve"]
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert record_a["training_tokens"] > 0
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key


def test_mined_repairs_hold_the_tiers_own_rejected_attempts_with_feedback(cheap):
    problems = [make_problem("models", 2_000_000 + i) for i in range(12)]
    stage = RepairStage(samples=2)
    with Verifier() as verifier:
        repairs = mine_failures(cheap, problems, stage, verifier)
        assert repairs, "the cheap tier fails some of 12 problems"
        for repair in repairs:
            problem = next(p for p in problems if p.prompt == repair["prompt"])
            assert repair["body"] == problem.reference
            assert 1 <= len(repair["failures"]) <= 3
            for body, feedback in repair["failures"]:
                assert not verifier.verify(problem.candidate(body)).passed
                assert feedback.startswith("Failed")
    depths = [len(r["failures"]) for r in repairs]
    assert depths.count(1) >= depths.count(2)  # every chain of k failures adds depths 1..k


def test_fit_draws_from_every_pool_and_changes_the_weights(cheap, toy_corpus):
    network = NanoModel.load("cheap").network
    before = {k: v.clone() for k, v in network.state_dict().items()}
    pools = [(toy_corpus[:32], 0.5), (toy_corpus[32:], 0.5)]
    record = fit(network, pools, Schedule(3, batch_size=4, warmup_steps=1), "toy", lambda _: None)
    assert record["training_tokens"] > 0
    assert any(not torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_the_repair_stage_runs_once_per_pretrained_tier(tmp_path, toy_corpus):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    card_file = models / "cheap.json"
    document = json.loads(card_file.read_text())
    document["card"].pop("repair_stage", None)  # as it was after pretraining
    card_file.write_text(json.dumps(document))
    stage = RepairStage(steps=2, warmup_steps=1, mining_problems=6, samples=1, fresh_problems=8)
    with Verifier() as verifier:
        _, record = repair_stage("cheap", stage, toy_corpus, models, verifier, lambda _: None)
        assert record["steps"] == 2 and len(record["own_repair_examples_by_round"]) == 3
        assert np.isfinite(record["loss_curve"][-1]["loss"])
        document["card"]["repair_stage"] = record
        card_file.write_text(json.dumps(document))
        with pytest.raises(SystemExit, match="already went through the repair stage"):
            repair_stage("cheap", stage, toy_corpus, models, verifier, lambda _: None)
