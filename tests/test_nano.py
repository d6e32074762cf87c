"""NanoCodeGen: tokenizer, FLOP count, KV-cache generation, and the shipped tiers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from occ_gym.tasks.synthetic import make_problem
from occ_gym.tiers.nano import (
    EOS,
    MODELS_DIR,
    TIER_NAMES,
    CheckpointError,
    CodeTokenizer,
    NanoCodeGen,
    NanoConfig,
    NanoModel,
    attempt_flops,
    matmul_parameters,
    read_card,
    repair_context,
)
from occ_gym.verifier.verdict import ExitKind


@pytest.fixture(scope="module")
def models() -> dict[str, NanoModel]:
    return {name: NanoModel.load(name) for name in TIER_NAMES}


def test_tokenizer_round_trips_prompts_and_bodies(models):
    tokenizer = models["cheap"].tokenizer
    for index in range(50):
        problem = make_problem("test", index)
        for text in (problem.prompt, problem.reference):
            assert tokenizer.decode(tokenizer.encode(text)) == text
    body = make_problem("test", 0).reference
    assert len(tokenizer.encode(body)) < len(body) / 2  # words and indents are single tokens


def test_tokenizer_falls_back_to_characters_for_unseen_words():
    tokenizer = CodeTokenizer.build(["keep the numbers"], min_count=1)
    assert tokenizer.decode(tokenizer.encode("keep zebras\n")) == "keep zebras\n"
    assert tokenizer.encode(" the") == [tokenizer.ids[" the"]]
    with pytest.raises(ValueError, match="special tokens"):
        CodeTokenizer(["a", "b"])


def test_attempt_flops_counts_dense_and_attention_terms():
    config = NanoConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16, block_size=64)
    per_token = 2 * (2 * (4 * 8 * 8 + 2 * 8 * 16) + 8 * 10)
    assert matmul_parameters(config) == 2 * (4 * 64 + 256) + 80
    # 3 context tokens and 2 new ones: 4 positions fed, attending to 1+2+3+4 keys.
    assert attempt_flops(config, 3, 2) == 4 * per_token + 4 * 8 * 2 * 10
    # The attention term makes cost grow faster than linearly in the context.
    assert attempt_flops(config, 200, 1) > 2 * attempt_flops(config, 100, 1)


def _tiny_model() -> NanoCodeGen:
    torch.manual_seed(0)
    config = NanoConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, block_size=64)
    return NanoCodeGen(config).eval()


def test_kv_cache_generation_equals_full_recomputation():
    model = _tiny_model()
    contexts, rounds = [[1, 5, 6, 7, 8], [1, 9], [1, 10, 11, 12, 13, 14, 15]], [0, 1, 3]
    generated = model.generate(contexts, rounds, np.zeros((3, 8)), temperature=0.0)
    for context, repair_round, (output, logprobs) in zip(contexts, rounds, generated, strict=True):
        sequence, expected, expected_logprobs = list(context), [], []
        for _ in range(8):
            with torch.no_grad():
                logits = model(torch.tensor([sequence]), torch.tensor([repair_round]))[0, -1]
            token = int(logits.argmax())
            expected_logprobs.append(float(torch.log_softmax(logits.double(), -1)[token]))
            if token == EOS:
                break
            expected.append(token)
            sequence.append(token)
        assert output == expected
        assert logprobs == pytest.approx(expected_logprobs, abs=1e-5)


def test_a_rows_sample_depends_on_its_own_numbers_not_its_batch():
    model = _tiny_model()
    contexts, rounds = [[1, 5, 6], [1, 9], [1, 10, 11, 12]], [0, 1, 2]
    uniforms = np.random.default_rng(1).random((3, 8))
    batched = model.generate(contexts, rounds, uniforms, temperature=1.0)
    alone = [
        model.generate([c], [r], uniforms[i : i + 1], temperature=1.0)[0]
        for i, (c, r) in enumerate(zip(contexts, rounds, strict=True))
    ]
    assert [tokens for tokens, _ in batched] == [tokens for tokens, _ in alone]
    for (_, batched_logprobs), (_, alone_logprobs) in zip(batched, alone, strict=True):
        assert batched_logprobs == pytest.approx(alone_logprobs, abs=1e-5)


def test_generation_refuses_a_context_beyond_the_block():
    with pytest.raises(ValueError, match="block size"):
        _tiny_model().generate([[1] * 60], [0], np.zeros((1, 8)), temperature=0.0)


def test_each_tier_writes_code_the_verifier_runs(models, verifier):
    problems = [make_problem("test", i) for i in range(24)]
    passes = {}
    for name, model in models.items():
        contexts = [repair_context(model.tokenizer, p.prompt, []) for p in problems]
        bodies = model.write(contexts, [0] * len(problems), seeds=None)
        verdicts = verifier.verify_many(
            p.candidate(body, hidden=True) for p, (body, _) in zip(problems, bodies, strict=True)
        )
        assert all(v.exit_kind is not ExitKind.PROTOCOL for v in verdicts)
        passes[name] = sum(v.passed for v in verdicts)
        # Far below the card's held-out rate only if the shipped weights are broken.
        held_out = read_card(MODELS_DIR / name)[2]["held_out"]["hidden_pass"]
        assert passes[name] >= 0.4 * held_out * len(problems), (name, passes)


def test_model_cards_carry_the_numbers_the_readme_reports():
    flops = {}
    for name in TIER_NAMES:
        _, _, card = read_card(MODELS_DIR / name)
        for field in ("parameters", "training_tokens", "training_seconds", "recipe", "held_out"):
            assert field in card, (name, field)
        assert set(card["held_out"]["hidden_pass_by_operations"]) == {"1", "2", "3", "4"}
        flops[name] = card["held_out"]["flops_per_fresh_attempt"]
    assert flops["expensive"] >= 5 * flops["cheap"]


def test_damaged_checkpoints_fail_with_the_file_named(tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(MODELS_DIR / f"cheap{suffix}", tmp_path / f"cheap{suffix}")
    weights = tmp_path / "cheap.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cheap\.safetensors"):
        NanoModel.load("cheap", tmp_path)
    (tmp_path / "cheap.json").write_text('{"config": ')
    with pytest.raises(CheckpointError, match=r"cheap\.json"):
        NanoModel.load("cheap", tmp_path)
    with pytest.raises(CheckpointError, match=r"missing\.json"):
        NanoModel.load("missing", tmp_path)
