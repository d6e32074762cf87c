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
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occ_gym.resources import MODELS_DIR

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<fb>", "<unk>")
PAD, BOS, EOS, FEEDBACK, UNK = range(len(SPECIAL_TOKENS))
TOKEN_PATTERN = re.compile(r"\n(?: {4})*| ?[A-Za-z_]+| ?\d+| ?(?:==|!=|<=|>=|->|::)| ?[^\w\s]|\s")
"""Words and numbers keep one leading space; a newline keeps the indent after it."""
FALLBACK_CHARACTERS = (*tuple(chr(code) for code in range(32, 127)), "\n")


class CodeTokenizer:
    """Token ids for the task language; pieces outside the vocabulary fall back to characters."""

    def __init__(self, pieces: Sequence[str]):
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary starts with the special tokens {SPECIAL_TOKENS}")
        if len(set(pieces)) != len(pieces):
            raise ValueError("the vocabulary has repeated pieces")
        missing = set(FALLBACK_CHARACTERS) - set(pieces)
        if missing:
            raise ValueError(f"the vocabulary lacks fallback characters {sorted(missing)}")
        self.pieces = tuple(pieces)
        self.ids = {piece: index for index, piece in enumerate(self.pieces)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int) -> CodeTokenizer:
        """The pieces seen at least ``min_count`` times in ``texts``, plus every character."""
        counts: dict[str, int] = {}
        for text in texts:
            for piece in TOKEN_PATTERN.findall(text):
                counts[piece] = counts.get(piece, 0) + 1
        frequent = sorted(p for p, n in counts.items() if n >= min_count and len(p) > 1)
        return cls([*SPECIAL_TOKENS, *FALLBACK_CHARACTERS, *frequent])

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in TOKEN_PATTERN.findall(text):
            index = self.ids.get(piece)
            if index is not None:
                ids.append(index)
            else:
                ids.extend(self.ids.get(ch, UNK) for ch in piece)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.pieces[i] for i in ids if i >= len(SPECIAL_TOKENS))


@dataclass(frozen=True)
class NanoConfig:
    """The shape of a NanoCodeGen model."""

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    block_size: int = 512
    max_repair_rounds: int = 3
    """Rounds beyond this share the last round's embedding."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


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
    ) -> list[list[int]]:
        """Sample one continuation per context, up to ``<eos>`` or ``uniforms.shape[1]`` tokens.

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
        finished = np.zeros(batch, dtype=bool)
        for step in range(budget):
            next_tokens = _pick(logits, uniforms[:, step], temperature)
            for row in np.flatnonzero(~finished):
                outputs[row].append(next_tokens[row])
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
        return [row[:-1] if row and row[-1] == EOS else row for row in outputs]


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


def matmul_parameters(config: NanoConfig) -> int:
    """Weights one token passes through in matrix multiplications (the output head included)."""
    per_layer = 4 * config.d_model * config.d_model + 2 * config.d_model * config.d_ff
    return config.n_layers * per_layer + config.d_model * config.vocab_size


def attempt_flops(config: NanoConfig, context_tokens: int, new_tokens: int) -> int:
    """Matmul FLOPs of one attempt: prefill ``context_tokens``, then decode ``new_tokens``.

    Every position fed through the model costs ``2 * matmul_parameters`` plus, per layer,
    ``4 * d_model * keys`` for the scores and the weighted sum over the ``keys`` it attends to
    (itself and everything before). The last new token is sampled but never fed back.
    """
    fed = context_tokens + max(new_tokens - 1, 0)
    dense = 2 * matmul_parameters(config) * fed
    attention = 4 * config.d_model * config.n_layers * (fed * (fed + 1) // 2)
    return dense + attention


def save_model(model: NanoCodeGen, tokenizer: CodeTokenizer, card: dict, stem: Path) -> None:
    """Write ``stem.safetensors`` (weights) and ``stem.json`` (config, vocabulary, model card)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    save_file(state, str(stem.with_suffix(".safetensors")))
    document = {"config": asdict(model.config), "vocabulary": list(tokenizer.pieces), "card": card}
    stem.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")


class CheckpointError(ValueError):
    """A model file is missing, truncated or does not match its card."""


def read_card(stem: Path) -> tuple[NanoConfig, CodeTokenizer, dict]:
    """The config, tokenizer and model card of a saved model, without loading its weights."""
    path = stem.with_suffix(".json")
    try:
        document = json.loads(path.read_text())
        config = NanoConfig(**document["config"])
        tokenizer = CodeTokenizer(document["vocabulary"])
        card = dict(document["card"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"cannot read model card {path}: {error}") from error
    if len(tokenizer) != config.vocab_size:
        raise CheckpointError(f"{path}: vocabulary size does not match the config")
    return config, tokenizer, card


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


MAX_NEW_TOKENS = 96
"""The longest body a tier writes (a reference body has at most about 60 tokens)."""
TEMPERATURE = 0.8
"""Sampling temperature of every recorded and live attempt."""
REPAIR_ESTIMATE_TOKENS = 70
"""Tokens a failed candidate and its feedback add to the context, for cost estimates."""
BODY_ESTIMATE_TOKENS = 35
"""Tokens of a typical body, for cost estimates made before an attempt."""
TIER_NAMES = ("cheap", "medium", "expensive")


def repair_context(
    tokenizer: CodeTokenizer,
    prompt: str,
    failures: Sequence[tuple[str, str]],
    limit: int | None = None,
) -> list[int]:
    """``<bos> prompt`` then ``body <eos> <fb> feedback <eos>`` for each failed attempt.

    With a ``limit``, the oldest failures are left out until the context fits (the prompt and
    the latest failure always stay).
    """
    head = [BOS, *tokenizer.encode(prompt)]
    turns = [
        [*tokenizer.encode(body), EOS, FEEDBACK, *tokenizer.encode(feedback), EOS]
        for body, feedback in failures
    ]
    while limit is not None and len(turns) > 1 and len(head) + sum(map(len, turns)) > limit:
        turns.pop(0)
    return head + [token for turn in turns for token in turn]


def attempt_seed(task_id: str, tier: str, sample: int, repair_round: int) -> int:
    """The seed of one attempt's sampling: a stable hash of its key, never Python's ``hash``."""
    text = f"{task_id}|{tier}|{sample}|{repair_round}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


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
        results: list[tuple[str, int]] = []
        for start in range(0, len(contexts), batch_size):
            chunk = slice(start, start + batch_size)
            rows = len(contexts[chunk])
            if seeds is None:
                uniforms, heat = np.zeros((rows, MAX_NEW_TOKENS)), 0.0
            else:
                uniforms = np.stack(
                    [np.random.default_rng(s).random(MAX_NEW_TOKENS) for s in seeds[chunk]]
                )
                heat = temperature
            outputs = self.network.generate(contexts[chunk], rounds[chunk], uniforms, heat)
            results.extend(
                (self.tokenizer.decode(ids), min(len(ids) + 1, MAX_NEW_TOKENS)) for ids in outputs
            )
        return results
