"""NanoCodeGen: a tiny decoder-only transformer that writes the body of a synthetic task.

The vocabulary is the token set of the task language (see ``CodeTokenizer``): whole words,
whole small numbers, newline-plus-indent and operators are single tokens, and anything else
falls back to single characters. A body is 2.4x shorter than in characters, and a constant is
one token to copy rather than several digits.

A sequence for repair round ``r`` is ``<bos> prompt`` followed, for each earlier failed
candidate, by ``body <eos> <fb> feedback <eos>``, and then the body the model writes. The
round ``r`` has a learned embedding added at every position, so the same weights write fresh
attempts (``r = 0``) and repairs. Compute is counted in matmul FLOPs (``attempt_flops``):
2 x the weights a token passes through, plus the attention term that grows with the context.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occ_gym.resources import MODELS_DIR
from occ_gym.tiers.nano_card import (  # re-exported: the torch-free half of this module
    BODY_ESTIMATE_TOKENS,
    BOS,
    EOS,
    FALLBACK_CHARACTERS,
    FEEDBACK,
    MAX_NEW_TOKENS,
    PAD,
    REPAIR_ESTIMATE_TOKENS,
    SPECIAL_TOKENS,
    TEMPERATURE,
    TIER_NAMES,
    TOKEN_PATTERN,
    UNK,
    CheckpointError,
    CodeTokenizer,
    NanoConfig,
    attempt_flops,
    attempt_seed,
    matmul_parameters,
    read_card,
    repair_context,
    sampling_uniforms,
)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention and an MLP, each residual."""

    def __init__(self, config: NanoConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.ln_attention = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.attention_out = nn.Linear(config.d_model, config.d_model)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),
            nn.GELU(),
            nn.Linear(config.d_ff, config.d_model),
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.ln_attention(x)).split(width, dim=2)
        q, k, v = (
            t.view(batch, length, self.n_heads, width // self.n_heads).transpose(1, 2)
            for t in (q, k, v)
        )
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(batch, length, width))
        x = x + self.mlp(self.ln_mlp(x))
        return x, (k, v)


class NanoCodeGen(nn.Module):
    """Decoder-only transformer with token, position and repair-round embeddings."""

    def __init__(self, config: NanoConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.block_size, config.d_model)
        self.round_embedding = nn.Embedding(config.max_repair_rounds + 1, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight
        self.apply(_init_weights)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(
        self, tokens: torch.Tensor, positions: torch.Tensor, rounds: torch.Tensor
    ) -> torch.Tensor:
        rounds = rounds.clamp(max=self.config.max_repair_rounds)
        return (
            self.token_embedding(tokens)
            + self.position_embedding(positions)
            + self.round_embedding(rounds)[:, None, :]
        )

    def forward(self, tokens: torch.Tensor, rounds: torch.Tensor) -> torch.Tensor:
        """Logits for right-padded ``tokens`` (batch, length) written in repair ``rounds``."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
        x = self._embed(tokens, positions, rounds)
        for block in self.blocks:
            x, _ = block(x, None)
        return self.head(self.ln_final(x))

    @torch.no_grad()
    def generate(
        self,
        contexts: Sequence[Sequence[int]],
        rounds: Sequence[int],
        uniforms: np.ndarray,
        temperature: float,
    ) -> list[tuple[list[int], list[float]]]:
        """Sample one continuation per context, up to ``<eos>`` or ``uniforms.shape[1]`` tokens,
        with each written token's log-probability under the model (at temperature 1).

        ``uniforms[i, t]`` in [0, 1) picks token ``t`` of row ``i`` by inverting the sampling
        distribution's CDF, so a row's output depends on its own numbers, not on the batch it
        runs in. ``temperature == 0`` is greedy. Contexts are left-padded; a KV cache keeps
        each new token's cost to one position.
        """
        batch, budget = len(contexts), uniforms.shape[1]
        longest = max(len(c) for c in contexts)
        if longest + budget > self.config.block_size:
            raise ValueError(
                f"context of {longest} tokens plus {budget} new ones exceeds the block size "
                f"{self.config.block_size}"
            )
        tokens = torch.full((batch, longest), PAD, dtype=torch.long)
        valid = torch.ones((batch, longest + budget), dtype=torch.bool)
        for row, context in enumerate(contexts):
            tokens[row, longest - len(context) :] = torch.tensor(context, dtype=torch.long)
            valid[row, : longest - len(context)] = False
        positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        round_ids = torch.tensor(list(rounds), dtype=torch.long)
        causal = torch.ones(longest, longest, dtype=torch.bool).tril()
        mask = (causal[None] & valid[:, None, :longest])[:, None]
        # A padded row's first query would attend to nothing; let it see itself.
        mask = mask | torch.eye(longest, dtype=torch.bool)[None, None]
        x = self._embed(tokens, positions[:, :longest], round_ids)
        caches = []
        for block in self.blocks:
            x, cache = block(x, mask)
            caches.append(cache)
        logits = self.head(self.ln_final(x[:, -1]))
        outputs: list[list[int]] = [[] for _ in range(batch)]
        scores: list[list[float]] = [[] for _ in range(batch)]
        finished = np.zeros(batch, dtype=bool)
        for step in range(budget):
            next_tokens = _pick(logits, uniforms[:, step], temperature)
            logprobs = torch.log_softmax(logits.double(), dim=-1)
            chosen = logprobs[torch.arange(batch), torch.tensor(next_tokens)].tolist()
            for row in np.flatnonzero(~finished).tolist():
                outputs[row].append(int(next_tokens[row]))
                scores[row].append(chosen[row])
                finished[row] = next_tokens[row] == EOS
            if finished.all() or step == budget - 1:
                break
            length = longest + step + 1
            step_mask = valid[:, None, None, :length]
            x = self._embed(
                torch.tensor(next_tokens, dtype=torch.long)[:, None],
                positions[:, longest + step : longest + step + 1],
                round_ids,
            )
            for index, block in enumerate(self.blocks):
                x, caches[index] = block(x, step_mask, caches[index])
            logits = self.head(self.ln_final(x[:, -1]))
        return [
            (row[:-1] if row and row[-1] == EOS else row, score)
            for row, score in zip(outputs, scores, strict=True)
        ]


def _pick(logits: torch.Tensor, uniforms: np.ndarray, temperature: float) -> list[int]:
    if temperature <= 0:
        return logits.argmax(-1).tolist()
    probabilities = torch.softmax(logits.double() / temperature, dim=-1).numpy()
    cumulative = np.cumsum(probabilities, axis=1)
    picks = (cumulative < (uniforms * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(picks, logits.shape[1] - 1).tolist()


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def save_model(model: NanoCodeGen, tokenizer: CodeTokenizer, card: dict, stem: Path) -> None:
    """Write ``stem.safetensors`` (weights) and ``stem.json`` (config, vocabulary, model card)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    save_file(state, str(stem.with_suffix(".safetensors")))
    document = {"config": asdict(model.config), "vocabulary": list(tokenizer.pieces), "card": card}
    stem.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")


def load_model(stem: Path) -> tuple[NanoCodeGen, CodeTokenizer, dict]:
    """Read what ``save_model`` wrote; a damaged file raises ``CheckpointError`` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config, tokenizer, card = read_card(stem)
    weights_path = stem.with_suffix(".safetensors")
    model = NanoCodeGen(config)
    try:
        state = load_file(str(weights_path))
        state["head.weight"] = state["token_embedding.weight"]
        model.load_state_dict(state, strict=True)
    except (OSError, SafetensorError, RuntimeError, KeyError) as error:
        raise CheckpointError(f"cannot load weights {weights_path}: {error}") from error
    model.eval()
    return model, tokenizer, card


class NanoModel:
    """A trained tier: the network, its tokenizer and model card, and batched writing."""

    def __init__(self, name: str, network: NanoCodeGen, tokenizer: CodeTokenizer, card: dict):
        self.name = name
        self.network = network
        self.tokenizer = tokenizer
        self.card = card

    @classmethod
    def load(cls, name: str, models_dir: Path = MODELS_DIR) -> NanoModel:
        """The tier ``name`` as saved in ``models_dir`` (``CheckpointError`` if damaged)."""
        return cls(name, *load_model(models_dir / name))

    @property
    def config(self) -> NanoConfig:
        return self.network.config

    def weights_sha256(self) -> str:
        """A digest of the weights in memory (the model may not come from a file)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.network.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def flops(self, context_tokens: int, new_tokens: int) -> int:
        return attempt_flops(self.config, context_tokens, new_tokens)

    @property
    def context_limit(self) -> int:
        """The longest context that leaves room for a full body."""
        return self.config.block_size - MAX_NEW_TOKENS

    def write(
        self,
        contexts: Sequence[list[int]],
        rounds: Sequence[int],
        seeds: Sequence[int] | None,
        temperature: float = TEMPERATURE,
        batch_size: int = 64,
    ) -> list[tuple[str, int]]:
        """The body written for each context and its new-token count (``<eos>`` included).

        ``seeds=None`` writes greedily; otherwise row ``i`` samples with ``seeds[i]`` alone.
        """
        written = self.write_scored(contexts, rounds, seeds, temperature, batch_size)
        return [(w.body, w.new_tokens) for w in written]

    def write_scored(
        self,
        contexts: Sequence[list[int]],
        rounds: Sequence[int],
        seeds: Sequence[int] | None,
        temperature: float = TEMPERATURE,
        batch_size: int = 64,
    ) -> list[Written]:
        """``write`` with each body's token log-probabilities summarised (``Written``)."""
        results: list[Written] = []
        for start in range(0, len(contexts), batch_size):
            chunk = slice(start, start + batch_size)
            rows = len(contexts[chunk])
            if seeds is None:
                uniforms, heat = np.zeros((rows, MAX_NEW_TOKENS)), 0.0
            else:
                uniforms = np.stack([sampling_uniforms(s, MAX_NEW_TOKENS) for s in seeds[chunk]])
                heat = temperature
            outputs = self.network.generate(contexts[chunk], rounds[chunk], uniforms, heat)
            results.extend(
                Written(
                    self.tokenizer.decode(ids),
                    min(len(ids) + 1, MAX_NEW_TOKENS),
                    float(np.mean(scores)),
                    float(np.min(scores)),
                )
                for ids, scores in outputs
            )
        return results


class Written(NamedTuple):
    """A written body, its new tokens (``<eos>`` included) and their log-probabilities under
    the model at temperature 1: the mean and the least likely token's."""

    body: str
    new_tokens: int
    logprob_mean: float
    logprob_min: float


__all__ = [
    "BODY_ESTIMATE_TOKENS",
    "BOS",
    "EOS",
    "FALLBACK_CHARACTERS",
    "FEEDBACK",
    "MAX_NEW_TOKENS",
    "MODELS_DIR",
    "PAD",
    "REPAIR_ESTIMATE_TOKENS",
    "SPECIAL_TOKENS",
    "TEMPERATURE",
    "TIER_NAMES",
    "TOKEN_PATTERN",
    "UNK",
    "Block",
    "CheckpointError",
    "CodeTokenizer",
    "NanoCodeGen",
    "NanoConfig",
    "NanoModel",
    "Written",
    "attempt_flops",
    "attempt_seed",
    "load_model",
    "matmul_parameters",
    "read_card",
    "repair_context",
    "save_model",
]
